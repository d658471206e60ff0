"""A hostile-input corpus through the real command: one clear result per file, the right exit
code, peak RSS under 1 GiB (measured in the subprocess), and the good file beside it loaded.

The corpus is generated at test time (bombs are streamed into their compressors, never held
whole), so nothing big is checked in.
"""

from __future__ import annotations

import bz2
import gzip
import io
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.ipc as pa_ipc
import pytest
import zstandard

GIB = 2**30
MIB = 2**20

# Runs the CLI in this interpreter and writes its peak RSS (bytes) where DREAMBOLT_RSS_FILE says:
# the high-water mark of its own memory map (ru_maxrss would start at pytest's size at fork).
_WRAPPER = """
import os
from dreambolt.cli import main
try:
    main()
finally:
    with open("/proc/self/status") as status:
        hwm = next(line for line in status if line.startswith("VmHWM"))
    with open(os.environ["DREAMBOLT_RSS_FILE"], "w") as out:
        out.write(str(int(hwm.split()[1]) * 1024))
"""


def _stream(
    path: Path, opener: Callable[[Path], io.BufferedIOBase], chunks: Iterator[bytes]
) -> None:
    with opener(path) as out:
        for chunk in chunks:
            out.write(chunk)


def _zeros(total: int, line: bytes | None = None) -> Iterator[bytes]:
    piece = (line * (MIB // len(line))) if line else b"0" * MIB
    for _ in range(total // len(piece)):
        yield piece


def _gz(p: Path) -> io.BufferedIOBase:
    return gzip.open(p, "wb", compresslevel=1)  # type: ignore[return-value]


def _bz(p: Path) -> io.BufferedIOBase:
    return bz2.open(p, "wb", compresslevel=1)  # type: ignore[return-value]


def _zst(p: Path) -> io.BufferedIOBase:
    return zstandard.ZstdCompressor(level=1).stream_writer(p.open("wb"))  # type: ignore[return-value]


def _nested(depth: int) -> str:
    return '{"a": ' * depth + "1" + "}" * depth


def _parquet_bytes() -> bytes:
    buffer = io.BytesIO()
    pl.DataFrame({"a": list(range(1000)), "b": ["x"] * 1000}).write_parquet(buffer)
    return buffer.getvalue()


def _ipc_bytes(stream: bool) -> bytes:
    table = pa.table({"a": list(range(1000))})
    sink = io.BytesIO()
    opener = pa_ipc.new_stream if stream else pa_ipc.new_file
    with opener(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue()


def _make(case: str, folder: Path) -> Path:
    """Write the hostile file `case` into `folder`; returns its path."""
    path = folder / case
    if case == "bomb.csv.gz":
        _stream(path, _gz, _zeros(256 * MIB))
    elif case == "bomb.csv.zst":
        _stream(path, _zst, _zeros(256 * MIB))
    elif case == "bomb.csv.bz2":
        _stream(path, _bz, _zeros(256 * MIB))
    elif case == "bomb_lines.csv.gz":  # many rows: streamed through, memory bounded by a block
        _stream(path, _gz, iter([b"a,b\n", *_zeros(48 * MIB, b"0,1\n")]))
    elif case == "deep.ndjson":
        path.write_text(_nested(100) + "\n")
    elif case == "deep.json":
        path.write_text("[" + _nested(100) + "]")
    elif case == "nul_header.csv":
        path.write_bytes(b"a\x00b,c\n1,2\n")
    elif case == "nul_value.csv":
        path.write_bytes(b"x,y\n1,a\x00b\n")
    elif case == "wide.csv":
        names = ",".join(f"c{i}" for i in range(20_000))
        path.write_text(names + "\n" + ",".join("1" for _ in range(20_000)) + "\n")
    elif case == "long_line.csv":
        path.write_bytes(b"p,q\n1," + b"x" * (50 * 10**6) + b"\n")
    elif case == "late_keys.ndjson":
        rows = [json.dumps({"id": i}) for i in range(20_000)]
        rows.append(json.dumps({"id": 20_000, "late": "here"}))
        path.write_text("\n".join(rows) + "\n")
    elif case == "types_change.csv":
        path.write_text("n\n" + "".join(f"{i}\n" for i in range(20_000)) + "abc\n")
    elif case == "latin1.csv":
        path.write_bytes("name,city\nJosé,Málaga\n".encode("latin-1"))
    elif case == "utf16.csv":
        path.write_bytes("name,n\nä,1\n".encode("utf-16"))
    elif case == "empty.csv":
        path.write_bytes(b"")
    elif case == "header_only.csv":
        path.write_bytes(b"a,b,c\n")
    elif case == "truncated.parquet":
        data = _parquet_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif case == "garbage.parquet":
        path.write_bytes(b"PAR1" + os.urandom(4000) + b"PAR1")
    elif case == "truncated.arrow":
        data = _ipc_bytes(stream=False)
        path.write_bytes(data[: len(data) // 2])
    elif case == "truncated_stream.arrows":
        data = _ipc_bytes(stream=True)
        path.write_bytes(data[: len(data) - 40])
    elif case == "garbage.arrow":
        path.write_bytes(b"ARROW1\x00\x00" + os.urandom(3000))
    elif case in ("truncated.csv.gz", "truncated.csv.zst", "truncated.csv.bz2"):
        body = b"a,b\n" + b"".join(b"%d,%d\n" % (i, i) for i in range(50_000))
        packed = {
            "gz": gzip.compress,
            "zst": zstandard.ZstdCompressor().compress,
            "bz2": bz2.compress,
        }[case.rsplit(".", 1)[1]](body)
        path.write_bytes(packed[: len(packed) // 2])
    elif case == "garbage.csv.gz":
        path.write_bytes(b"\x1f\x8b" + os.urandom(3000))
    else:
        raise AssertionError(case)
    return path


# case -> what must happen to it: "loaded" (with all its values) or "refused" (skipped/failed).
CASES = {
    "bomb.csv.gz": "refused",
    "bomb.csv.zst": "refused",
    "bomb.csv.bz2": "refused",
    "bomb_lines.csv.gz": "loaded",
    "deep.ndjson": "refused",
    "deep.json": "refused",
    "nul_header.csv": "either",
    "nul_value.csv": "either",
    "wide.csv": "refused",
    "long_line.csv": "loaded",
    "late_keys.ndjson": "loaded",
    "types_change.csv": "loaded",
    "latin1.csv": "either",
    "utf16.csv": "either",
    "empty.csv": "loaded",
    "header_only.csv": "loaded",
    "truncated.parquet": "refused",
    "garbage.parquet": "refused",
    "truncated.arrow": "refused",
    "truncated_stream.arrows": "refused",
    "garbage.arrow": "refused",
    "truncated.csv.gz": "refused",
    "truncated.csv.zst": "refused",
    "truncated.csv.bz2": "refused",
    "garbage.csv.gz": "refused",
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_hostile_file_beside_a_good_one(case: str, tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    hostile = _make(case, folder)
    (folder / "good.csv").write_text("a,b\n1,2\n3,4\n")
    db, rss_file = tmp_path / "h.duckdb", tmp_path / "rss"
    env = dict(os.environ, DREAMBOLT_RSS_FILE=str(rss_file))
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            _WRAPPER,
            "ingest",
            str(folder),
            "--db",
            str(db),
            "--table",
            "t",
            "--json",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=240,
    )
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    assert done.stdout.startswith("{"), (done.stdout[:500], done.stderr[-2000:])
    report = json.loads(done.stdout)
    results = {Path(f["uri"]).name: f for f in report["files"]}
    assert results["good.csv"]["status"] == "loaded"
    got = results[hostile.name]
    expected = CASES[case]
    if expected == "loaded":
        assert got["status"] == "loaded", got
    elif expected == "refused":
        assert got["status"] in ("skipped", "failed"), got
    if got["status"] != "loaded":
        assert hostile.name in got["error"]["message"], got
        assert done.returncode == 1
    else:
        assert done.returncode == 0, done.stderr[-3000:]
    peak = int(rss_file.read_text())
    assert peak < GIB, f"{case}: peak RSS {peak / MIB:.0f} MiB"
    with duckdb.connect(str(db), read_only=True) as con:
        counts = dict(con.execute("SELECT _source_uri, count(*) FROM t GROUP BY 1").fetchall())
        if case == "late_keys.ndjson":
            assert con.execute("SELECT count(late) FROM t").fetchall() == [(1,)]
        if case == "types_change.csv":
            assert con.execute(
                "SELECT count(n) FROM t WHERE _source_uri LIKE '%types%'"
            ).fetchall() == [(20_001,)]
        if case == "long_line.csv":
            assert con.execute("SELECT max(length(q)) FROM t").fetchall() == [(50 * 10**6,)]
    assert counts[(folder / "good.csv").resolve().as_uri()] == 2
    if case == "bomb_lines.csv.gz":
        assert counts[hostile.resolve().as_uri()] == 48 * MIB // 4
