"""A hostile corpus at the parse level, generated at test time.

For every input the parse stage gives either what a reference reader gives (polars with
whole-file inference, pyarrow) or a `FormatError` naming the file: never another exception,
never a crash or a hang, never lost values, and bounded memory. Cases that could crash or hang
the process, or whose peak memory is the point, run in a subprocess (with a timeout) that
imports the parse stage alone.
"""

from __future__ import annotations

import bz2
import dataclasses
import errno
import gzip
import io
import itertools
import random
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from dreambolt.errors import FormatError
from dreambolt.formats import read as formats
from dreambolt.formats.compression import decompress_capped
from dreambolt.formats.many import read_many
from dreambolt.formats.read import (
    DEFAULT_LIMITS,
    CsvOptions,
    FileFormat,
    ParseLimits,
    iter_bytes,
    iter_file,
    read_bytes,
)

ROOT = Path(__file__).resolve().parent.parent
GIB = 2**30
NAME = "s3://bucket/hostile/file"


# --- helpers -----------------------------------------------------------------------------------


def isolated(code: str, *, timeout: float = 60) -> tuple[list[str], int]:
    """Run `code` in a fresh interpreter that imports only the parse stage (not the package's
    S3/DuckDB machinery); return its output lines and its peak RSS in bytes. A crash or a hang
    fails the test instead of taking pytest down."""
    prelude = textwrap.dedent(f"""
        import resource, sys, types
        package = types.ModuleType("dreambolt")
        package.__path__ = [{str(ROOT / "dreambolt")!r}]
        sys.modules["dreambolt"] = package
        from dreambolt.errors import FormatError
        from dreambolt.formats.read import (
            FileFormat, ParseLimits, iter_bytes, iter_file, read_bytes)
        def outcome(parse):
            try:
                return parse()
            except FormatError as exc:
                return "FormatError " + str(exc)
    """)
    # VmHWM, not ru_maxrss: a child's ru_maxrss starts at its parent's size at fork (pytest's,
    # over 1 GiB late in a full run); the high-water mark of its own memory map does not.
    epilogue = (
        "\nprint('PEAK', int(next(l for l in open('/proc/self/status') "
        "if l.startswith('VmHWM')).split()[1]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", prelude + textwrap.dedent(code) + epilogue],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )
    assert done.returncode == 0, f"exit {done.returncode}: {done.stderr[-3000:]}"
    lines = done.stdout.splitlines()
    assert lines and lines[-1].startswith("PEAK "), done.stdout
    return lines[:-1], int(lines[-1].split()[1]) * 1024  # VmHWM is in KiB


def compressed(compression: str, unit: bytes, repeats: int, path: Path) -> Path:
    """Write `unit` * `repeats`, compressed, as a stream: the unit is compressed once and its
    member (gzip) or frame (zstd, bz2) repeated, which decompressors read as one stream."""
    if compression == "gzip":
        member = gzip.compress(unit, compresslevel=6)
    elif compression == "bz2":
        member = bz2.compress(unit, compresslevel=9)
    else:
        member = zstandard.ZstdCompressor().compress(unit)
    with path.open("wb") as out:
        for _ in range(repeats):
            out.write(member)
    return path


def _zstd(data: bytes) -> bytes:
    return zstandard.ZstdCompressor().compress(data)


COMPRESS: dict[str, Callable[[bytes], bytes]] = {
    "gzip": gzip.compress,
    "zstd": _zstd,
    "bz2": bz2.compress,
}


def both(data: bytes, fmt: FileFormat, tmp_path: Path) -> list[pl.DataFrame]:
    """read_bytes, then iter_file and iter_bytes each concatenated (their schema may grow)."""
    path = tmp_path / "spooled"
    path.write_bytes(data)
    frames = [read_bytes(data, fmt, name=NAME)]
    for batches in (iter_file(path, fmt, name=NAME), iter_bytes(data, fmt, name=NAME)):
        frames.append(pl.concat(list(batches), how="diagonal_relaxed"))
    return frames


def refused(
    data: bytes,
    fmt: FileFormat,
    tmp_path: Path,
    match: str,
    limits: ParseLimits = DEFAULT_LIMITS,
) -> None:
    """Each entry point raises FormatError naming the file, matching `match`."""
    path = tmp_path / "spooled"
    path.write_bytes(data)
    entries: list[Callable[[], object]] = [
        lambda: read_bytes(data, fmt, name=NAME, limits=limits),
        lambda: list(iter_file(path, fmt, name=NAME, limits=limits)),
        lambda: list(iter_bytes(data, fmt, name=NAME, limits=limits)),
    ]
    for entry in entries:
        with pytest.raises(FormatError, match=match) as info:
            entry()
        assert str(info.value).startswith(NAME)


@pytest.fixture
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(formats, "BLOCK_BYTES", 4096)
    monkeypatch.setattr(formats, "READ_BYTES", 1000)


# --- limits ------------------------------------------------------------------------------------


def test_parse_limits_are_validated_and_frozen() -> None:
    assert ParseLimits(64 * 2**20, 10_000, 64, None) == DEFAULT_LIMITS
    for bad in (
        {"max_record_bytes": 0},
        {"max_columns": -1},
        {"max_nesting": True},
        {"max_bytes": 0},
        {"max_columns": 1.5},
    ):
        with pytest.raises(ValueError, match=next(iter(bad))):
            ParseLimits(**bad)  # type: ignore[arg-type]
    with pytest.raises(dataclasses.FrozenInstanceError):
        DEFAULT_LIMITS.max_columns = 1  # type: ignore[misc]


# --- nesting -----------------------------------------------------------------------------------


def _nested(levels: int) -> bytes:
    """A JSON record nested `levels` deep: its column's type nests `levels - 1` deep."""
    return b'{"a":' * levels + b"1" + b"}" * levels


@pytest.mark.parametrize("kind", ["ndjson", "json"])
def test_deep_nesting_is_refused_with_the_limit(kind: str, tmp_path: Path) -> None:
    record = _nested(100)  # ~600 bytes; polars reads it, Arrow cannot take it
    data = record + b"\n" if kind == "ndjson" else b"[" + record + b"]"
    refused(data, FileFormat(kind), tmp_path, r"nests deeper .*62 levels Arrow")  # type: ignore[arg-type]
    shallow = _nested(8) + b"\n" if kind == "ndjson" else b"[" + _nested(8) + b"]"
    refused(
        shallow,
        FileFormat(kind),
        tmp_path,
        r"limit of 5 \(ParseLimits\(max_nesting",  # type: ignore[arg-type]
        limits=ParseLimits(max_nesting=5),
    )


@pytest.mark.parametrize("kind", ["ndjson", "json"])
def test_nesting_arrow_takes_is_read_and_converts(kind: str, tmp_path: Path) -> None:
    record = _nested(63)  # the column nests 62 deep: the most Arrow takes
    data = record + b"\n" if kind == "ndjson" else b"[" + record + b"]"
    reference = pl.read_ndjson(data) if kind == "ndjson" else pl.read_json(data)
    for frame in both(data, FileFormat(kind), tmp_path):  # type: ignore[arg-type]
        assert_frame_equal(frame, reference)
        frame.to_arrow()


def test_nesting_inside_strings_does_not_count(tmp_path: Path) -> None:
    data = b'{"a": "' + b"[{" * 500 + b'\\"]"}\n{"a": "\\\\"}\n'
    for frame in both(data, FileFormat("ndjson"), tmp_path):
        assert_frame_equal(frame, pl.read_ndjson(data))


def test_deep_parquet_schema_is_refused_before_reading(tmp_path: Path) -> None:
    value: object = 1
    for _ in range(12):
        value = [value]
    out = io.BytesIO()
    pq.write_table(pa.table({"deep": [value]}), out)
    refused(
        out.getvalue(),
        FileFormat("parquet"),
        tmp_path,
        r"'deep' nests 12 levels deep",
        limits=ParseLimits(max_nesting=10),
    )


def test_deep_json_never_hangs() -> None:
    """Polars takes time cubic in nesting depth (1,000 levels: over a minute)."""
    lines, _ = isolated(
        """
        for levels in (1_000, 5_000, 100_000):
            record = b'{"a":' * levels + b"1" + b"}" * levels
            print(outcome(lambda: read_bytes(record + b"\\n", FileFormat("ndjson"), name="n")))
            print(outcome(lambda: read_bytes(b"[" + record + b"]", FileFormat("json"), name="j")))
            lists = b'{"a":' + b"[" * levels + b"]" * levels + b"}\\n"
            print(outcome(lambda: read_bytes(lists, FileFormat("ndjson"), name="l")))
    """,
        timeout=60,
    )
    assert len(lines) == 9
    assert all(line.startswith("FormatError ") and "nests deeper" in line for line in lines)


# --- NUL bytes ---------------------------------------------------------------------------------


def test_nul_in_a_csv_header_is_refused(tmp_path: Path) -> None:
    data = b"a\x00b,c\n1,2\n"  # polars reads it; its column name then panics Arrow
    refused(data, FileFormat("csv"), tmp_path, r"cannot read as csv: its header .*NUL byte")
    result = read_many([(data, FileFormat("csv"), NAME), (data, FileFormat("csv"), NAME)])
    assert all(isinstance(r, FormatError) for r in result)


@pytest.mark.parametrize("data", [b'{"a\\u0000b": 1}\n', b'{"s": {"x\\u0000y": 1}}\n'])
def test_nul_in_a_json_name_is_refused(data: bytes, tmp_path: Path) -> None:
    refused(data, FileFormat("ndjson"), tmp_path, r"the name .* holds a NUL byte")


@pytest.mark.parametrize(
    ("kind", "data"),
    [
        ("csv", b"a,b\n1,x\x00y\n2,\x00\n"),
        ("ndjson", b'{"a": "x\\u0000y"}\n{"a": "\\u0000"}\n'),
    ],
)
def test_nul_in_values_is_kept(kind: str, data: bytes, tmp_path: Path) -> None:
    reference = pl.read_csv(data) if kind == "csv" else pl.read_ndjson(data)
    assert "\x00" in reference.to_series(-1)[0]
    for frame in both(data, FileFormat(kind), tmp_path):  # type: ignore[arg-type]
        assert_frame_equal(frame, reference)
        frame.to_arrow()


def test_a_polars_panic_becomes_a_format_error(monkeypatch: pytest.MonkeyPatch) -> None:
    try:
        pl.DataFrame({"a\x00b": [1]}).to_arrow()
    except BaseException as exc:  # pyo3_runtime.PanicException
        panic = exc
    assert type(panic).__name__ == "PanicException" and not isinstance(panic, Exception)

    def panicking(*args: object, **kwargs: object) -> pl.DataFrame:
        raise panic

    monkeypatch.setattr(pl, "read_csv", panicking)
    with pytest.raises(FormatError, match=f"{NAME}: cannot read as csv: .*polars panic"):
        read_bytes(b"a\n1\n", FileFormat("csv"), name=NAME)


def test_real_io_errors_are_not_format_errors(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = tmp_path / "x.parquet.gz"
    path.write_bytes(b"\x1f\x8b")

    def full(*args: object) -> Iterator[Path]:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(formats, "decompressed_copy", full)
    with pytest.raises(OSError, match="No space") as info:
        list(iter_file(path, FileFormat("parquet", "gzip"), name=NAME))
    assert not isinstance(info.value, FormatError)


class DownloadFailed(Exception):
    pass


@pytest.mark.parametrize("compression", [None, "gzip"])
def test_what_the_pieces_raise_is_not_a_format_error(
    compression: str | None, tmp_path: Path
) -> None:
    """A download failing under a file parsed while it arrives is the download's error."""
    data = b"a,b\n" + b"1,2\n" * 1000
    data = gzip.compress(data) if compression else data

    def pieces() -> Iterator[bytes]:
        yield data[:100]
        raise DownloadFailed("this range never arrives")

    with pytest.raises(DownloadFailed):
        list(
            iter_file(
                tmp_path / "spool",
                FileFormat("csv", compression),  # type: ignore[arg-type]
                name=NAME,
                pieces=pieces(),
            )
        )


# --- decompression bombs -----------------------------------------------------------------------


@pytest.mark.parametrize("compression", ["gzip", "zstd", "bz2"])
def test_decompression_bomb_is_refused_in_bounded_memory(compression: str, tmp_path: Path) -> None:
    """256 MiB of b'0' without a newline (once 6.85 GiB peak in read_bytes for gzip)."""
    bomb = compressed(compression, b"0" * (16 * 2**20), 16, tmp_path / "bomb")
    assert bomb.stat().st_size < 2**20
    lines, peak = isolated(f"""
        from dreambolt.formats.compression import decompress_capped
        data = open({str(bomb)!r}, "rb").read()
        fmt = FileFormat("csv", {compression!r})
        print(outcome(lambda: read_bytes(data, fmt, name="bomb.csv")))
        print(outcome(lambda: sum(f.height for f in iter_bytes(data, fmt, name="bomb.csv"))))
        print(decompress_capped(data, {compression!r}, 64 * 2**20))
        budget = ParseLimits(max_bytes=32 * 2**20, max_record_bytes=2**30)
        print(outcome(lambda: read_bytes(data, fmt, name="bomb.csv", limits=budget)))
    """)
    assert lines[0].startswith("FormatError bomb.csv: a record (line) is longer than 67,108,864")
    assert "--max-line-size" in lines[0] and "max_line_bytes" in lines[0]
    assert lines[1] == lines[0]
    assert lines[2] == "None"
    assert lines[3].startswith("FormatError bomb.csv: it decompresses to more than 33,554,432")
    assert peak < GIB, f"peak RSS {peak / 2**20:.0f} MiB"


def test_bomb_of_lines_streams_in_bounded_memory(tmp_path: Path) -> None:
    """~200 MiB of short lines: iter_bytes parses it block by block, many frames."""
    bomb = compressed(
        "gzip", b"a\n" + (b"x" * 99 + b"\n") * (8 * 2**20 // 100), 25, tmp_path / "lines"
    )
    lines, peak = isolated(f"""
        data = open({str(bomb)!r}, "rb").read()
        frames = rows = 0
        for frame in iter_bytes(data, FileFormat("csv", "gzip"), name="lines.csv"):
            frames += 1
            rows += frame.height
        print(frames, rows)
    """)
    frames, rows = map(int, lines[0].split())
    assert frames > 20
    assert rows == 25 * (8 * 2**20 // 100) + 24  # the repeats' "a" lines after the first are rows
    assert peak < GIB, f"peak RSS {peak / 2**20:.0f} MiB"


def test_max_bytes_bounds_compressed_binary_formats_in_memory(tmp_path: Path) -> None:
    out = io.BytesIO()
    frame = pl.DataFrame({"s": [f"{i:01000d}" for i in range(2000)]})
    frame.write_parquet(out, compression="uncompressed")
    data, fmt = gzip.compress(out.getvalue()), FileFormat("parquet", "gzip")
    budget = ParseLimits(max_bytes=100_000)
    for entry in (read_bytes, lambda *a, **k: list(iter_bytes(*a, **k))):
        with pytest.raises(
            FormatError,
            match=f"{NAME}: it decompresses to more than 100,000 "
            r"bytes, the memory budget .*Ingester\(memory_budget",
        ):
            entry(data, fmt, name=NAME, limits=budget)
    path = tmp_path / "spooled"  # on disk it is decompressed to disk, not memory
    path.write_bytes(data)
    assert_frame_equal(pl.concat(iter_file(path, fmt, name=NAME, limits=budget)), frame)
    assert decompress_capped(data, "gzip", 100_000) is None
    assert decompress_capped(data, "gzip", len(out.getvalue())) == out.getvalue()
    assert decompress_capped(data[:-10], "gzip", 10**9) is None  # unreadable: parse to see why


# --- columns and long lines --------------------------------------------------------------------


def test_twenty_thousand_csv_columns_are_refused_from_the_header() -> None:
    lines, peak = isolated("""
        header = b",".join(b"c%d" % i for i in range(20_000))
        data = header + b"\\n" + (b",".join(b"%d" % i for i in range(20_000)) + b"\\n") * 50
        print(outcome(lambda: read_bytes(data, FileFormat("csv"), name="wide.csv")))
        print(outcome(lambda: list(iter_bytes(data, FileFormat("csv"), name="wide.csv"))))
        wide = ParseLimits(max_columns=20_000)
        print(read_bytes(data, FileFormat("csv"), name="wide.csv", limits=wide).shape)
    """)
    assert lines[0] == lines[1]
    assert lines[0] == (
        "FormatError wide.csv: it has 20,000 columns, more than the limit of 10,000; if that is "
        "right, raise it with --max-columns N (Ingester(max_columns=...))"
    )
    assert lines[2] == "(50, 20000)"
    assert peak < GIB


@pytest.mark.parametrize("writer", ["ndjson", "parquet", "ipc", "ipc-stream"])
def test_too_many_columns_are_refused(writer: str, tmp_path: Path) -> None:
    frame = pl.DataFrame({f"c{i}": [i] for i in range(300)})
    out = io.BytesIO()
    {
        "ndjson": frame.write_ndjson,
        "parquet": frame.write_parquet,
        "ipc": frame.write_ipc,
        "ipc-stream": frame.write_ipc_stream,
    }[writer](out)
    kind = {"ndjson": "ndjson", "parquet": "parquet"}.get(writer, "ipc")
    fmt = FileFormat(kind)  # type: ignore[arg-type]
    refused(
        out.getvalue(),
        fmt,
        tmp_path,
        "it has 300 columns, more than the limit of 200",
        limits=ParseLimits(max_columns=200),
    )


def test_fifty_megabyte_line_is_read_with_the_default_limits() -> None:
    """Decision: a 50 MB record is under the 64 MiB default, so it is read."""
    lines, peak = isolated("""
        data = b"a,b\\n" + b"x" * 50_000_000 + b",1\\n"
        frame = read_bytes(data, FileFormat("csv"), name="long.csv")
        print(frame.shape, len(frame["a"][0]))
        print(sum(f.height for f in iter_bytes(data, FileFormat("csv"), name="long.csv")))
        record = b'{"a": "' + b"x" * 50_000_000 + b'"}\\n'
        print(read_bytes(record, FileFormat("ndjson"), name="long.ndjson").shape)
    """)
    assert lines == ["(1, 2) 50000000", "1", "(1, 1)"]
    assert peak < GIB, f"peak RSS {peak / 2**20:.0f} MiB"


@pytest.mark.parametrize("compression", [None, "gzip"])
@pytest.mark.parametrize("kind", ["csv", "ndjson"])
def test_line_over_the_record_limit_is_refused(
    kind: str, compression: str | None, tmp_path: Path
) -> None:
    long = b"x" * 300_000
    data = b"a\n1\n" + long + b"\n2\n" if kind == "csv" else b'{"a": "' + long + b'"}\n'
    if compression:
        data = gzip.compress(data)
    refused(
        data,
        FileFormat(kind, compression),
        tmp_path,  # type: ignore[arg-type]
        r"longer than 100,000 bytes, the limit .*--max-line-size SIZE",
        limits=ParseLimits(max_record_bytes=100_000),
    )


# --- late keys and late types ------------------------------------------------------------------


def test_ndjson_key_first_seen_at_row_20000_is_kept_in_memory(tmp_path: Path) -> None:
    data = b"".join(b'{"a": %d}\n' % i for i in range(20_000)) + b'{"a": 1, "b": "late"}\n'
    reference = pl.read_ndjson(data, infer_schema_length=None)
    assert reference.columns == ["a", "b"]
    assert_frame_equal(read_bytes(data, FileFormat("ndjson"), name=NAME), reference)
    array = b"[" + data.strip().replace(b"\n", b",") + b"]"
    assert_frame_equal(read_bytes(array, FileFormat("json"), name=NAME), reference)


@pytest.mark.usefixtures("small_blocks")
@pytest.mark.parametrize("compression", [None, "zstd"])
def test_ndjson_blocks_grow_the_schema_and_lose_nothing(
    compression: str | None, tmp_path: Path
) -> None:
    data = b"".join(b'{"a": %d}\n' % i for i in range(20_000))
    data += b'{"a": 1, "b": "late"}\n' + b'{"a": 2, "s": {"x": 1}}\n' * 300
    data += b'{"a": 2.5, "s": {"x": 1, "y": [1]}}\n{"a": "text", "b": null}\n'
    reference = pl.read_ndjson(data, infer_schema_length=None)
    packed = COMPRESS[compression](data) if compression else data
    fmt = FileFormat("ndjson", compression)  # type: ignore[arg-type]
    path = tmp_path / "late.ndjson"
    path.write_bytes(packed)
    for frames in (list(iter_file(path, fmt, name=NAME)), list(iter_bytes(packed, fmt, name=NAME))):
        assert len(frames) > 1
        assert frames[0].columns == ["a"]
        for before, after in itertools.pairwise(frames):  # columns only ever appended
            assert after.columns[: before.width] == before.columns
        assert_frame_equal(pl.concat(frames, how="diagonal_relaxed"), reference)
    assert_frame_equal(read_bytes(packed, fmt, name=NAME), reference)


@pytest.mark.parametrize(
    ("early", "late", "match"),
    [
        (b"%d", b'{"a": true}\n', r"column 'a' holds Boolean values here, Int64 before"),
        (b"%d", b'{"a": [1]}\n', r"column 'a' holds List\(Int64\) values here, Int64 before"),
        (b"%d.5", b'{"a": 9007199254740993}\n', r"column 'a' holds integers here that Float64"),
    ],
)
def test_ndjson_block_that_fits_no_type_says_where(
    early: bytes, late: bytes, match: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(formats, "BLOCK_BYTES", 1)  # each piece (ending a line) is a block
    first = b"".join(b'{"a": ' + early % i + b"}\n" for i in range(20_000))
    pieces = [first, late * 10]
    with pytest.raises(
        FormatError,
        match=f"{NAME}: cannot read as ndjson \\(in the part from "
        f"byte {len(first):,}, data row 20,001 on\\): {match}",
    ):
        list(iter_file(tmp_path, FileFormat("ndjson"), name=NAME, pieces=pieces))


@pytest.mark.parametrize("late", [b"1.5", b"x", b"true", b"99999999999999999999"])
def test_csv_type_changing_after_row_10000_is_read_in_memory(late: bytes, tmp_path: Path) -> None:
    data = b"a,b\n" + b"".join(b"%d,v\n" % i for i in range(10_005)) + late + b",w\n"
    reference = arrow_ready(pl.read_csv(data, infer_schema_length=None))
    assert_frame_equal(read_bytes(data, FileFormat("csv"), name=NAME), reference)


def arrow_ready(frame: pl.DataFrame) -> pl.DataFrame:
    """What polars gives, as handed on: Int128 (which Arrow lacks) as Decimal(38, 0)."""
    return frame.cast({c: pl.Decimal(38, 0) for c, d in frame.schema.items() if d == pl.Int128})


@pytest.mark.usefixtures("small_blocks")
@pytest.mark.parametrize(
    ("late", "dtype"),
    [
        (b"1.5", pl.Float64),
        (b"x", pl.String),
        (b"true", pl.String),
        (b"99999999999999999999", pl.Decimal(38, 0)),
    ],
)
def test_csv_blocks_widen_a_column_and_lose_nothing(
    late: bytes, dtype: pl.DataType, tmp_path: Path
) -> None:
    data = b"a,b\n" + b"".join(b"%d,v\n" % i for i in range(12_000)) + late + b",w\n"
    data += b"".join(b"%d,v\n" % i for i in range(500))
    reference = arrow_ready(pl.read_csv(data, infer_schema_length=None))
    path = tmp_path / "late.csv"
    path.write_bytes(data)
    frames = list(iter_file(path, FileFormat("csv"), name=NAME))
    assert frames[0].schema["a"] == pl.Int64 and frames[-1].schema["a"] == dtype
    assert_frame_equal(pl.concat(frames, how="diagonal_relaxed"), reference)


# --- encodings ---------------------------------------------------------------------------------


def test_latin1_text_is_refused_saying_to_convert(tmp_path: Path) -> None:
    refused(
        "a,b\n1,café\n".encode("latin-1"),
        FileFormat("csv"),
        tmp_path,
        r"cannot read as csv: .*utf-8.*iconv",
    )
    # polars would replace the byte in a name silently, making columns 'caf�'
    refused(
        "café,b\n1,2\n".encode("latin-1"),
        FileFormat("csv"),
        tmp_path,
        r"its header \(first line\) is not UTF-8 text .*iconv",
    )
    refused('{"a": "café"}\n'.encode("latin-1"), FileFormat("ndjson"), tmp_path, "UTF-8")


@pytest.mark.parametrize("kind", ["csv", "ndjson", "json"])
@pytest.mark.parametrize("codec", ["utf-16-le", "utf-16-be"])
def test_utf16_with_bom_is_read_as_utf16(kind: str, codec: str, tmp_path: Path) -> None:
    # A byte order mark is unambiguous: DuckDB and pandas read such text, and so do we.
    text = {"csv": "a,b\n1,é\n", "ndjson": '{"a": "é"}\n', "json": '[{"a": "é"}]'}[kind]
    data = "\ufeff".encode(codec) + text.encode(codec)
    for frame in both(data, FileFormat(kind), tmp_path):  # type: ignore[arg-type]
        assert frame.row(0)[-1] == "é"


def test_declared_encoding_is_read_and_a_wrong_byte_named(tmp_path: Path) -> None:
    data = "name,city\nZoë,Zürich\nJosé,Bogotá\n".encode("latin-1")
    fmt = FileFormat("csv", options=CsvOptions(encoding="latin-1"))
    for frame in both(data, fmt, tmp_path):
        assert frame.rows() == [("Zoë", "Zürich"), ("José", "Bogotá")]
    cp = FileFormat("csv", options=CsvOptions(encoding="utf-16"))
    refused(b"a,b\n1", cp, tmp_path, r"it is not utf-16 text .*--encoding")


def test_utf8_with_bom_is_read(tmp_path: Path) -> None:
    data = "\ufeffa,b\n1,é\n".encode()
    for frame in both(data, FileFormat("csv"), tmp_path):
        assert_frame_equal(frame, pl.read_csv(data))


# --- empty, truncated and garbage files --------------------------------------------------------


@pytest.mark.parametrize("compression", [None, "gzip", "zstd", "bz2"])
@pytest.mark.parametrize(
    ("kind", "data", "shape"),
    [
        ("csv", b"", (0, 0)),
        ("csv", b"a,b\n", (0, 2)),
        ("tsv", b"a\tb", (0, 2)),
        ("ndjson", b"\n\n", (0, 0)),
        ("json", b"[]", (0, 0)),
        ("json", b"  ", (0, 0)),
    ],
)
def test_empty_and_header_only_files(
    kind: str, data: bytes, shape: tuple[int, int], compression: str | None, tmp_path: Path
) -> None:
    packed = COMPRESS[compression](data) if compression else data
    for frame in both(packed, FileFormat(kind, compression), tmp_path):  # type: ignore[arg-type]
        assert frame.shape == shape


def _truncated_and_garbled(data: bytes, rng: random.Random) -> list[bytes]:
    cases = [data[:n] for n in range(0, len(data), max(1, len(data) // 25))]
    for _ in range(40):
        flipped = bytearray(data)
        for _ in range(rng.randint(1, 8)):
            flipped[rng.randrange(len(flipped))] = rng.randrange(256)
        cases.append(bytes(flipped))
    cases.append(data[:8] + rng.randbytes(2000))
    return cases


def test_truncated_and_garbage_binary_files_never_crash(tmp_path: Path) -> None:
    """pyarrow reads some corrupt IPC files into arrays that crash the process (SIGSEGV) once
    polars touches them; polars panics on others. Run in a subprocess: a crash fails here."""
    frame = pl.DataFrame(
        {
            "id": range(60),
            "s": [f"value {i}" for i in range(60)],
            "l": [[i, i + 1] for i in range(60)],
            "st": [{"a": i, "b": f"x{i}"} for i in range(60)],
        }
    )
    rng = random.Random(5)
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for writer in ("parquet", "ipc", "ipc_stream"):
        out = io.BytesIO()
        getattr(frame, f"write_{writer}")(out)
        for number, case in enumerate(_truncated_and_garbled(out.getvalue(), rng)):
            (corpus / f"{writer}-{number}").write_bytes(case)
    lines, _ = isolated(
        f"""
        import pathlib
        for path in sorted(pathlib.Path({str(corpus)!r}).iterdir()):
            fmt = FileFormat("parquet" if path.name.startswith("parquet") else "ipc")
            data = path.read_bytes()
            for entry in (
                lambda: [read_bytes(data, fmt, name="f")],
                lambda: list(iter_file(path, fmt, name="f", batch_rows=7)),
                lambda: list(iter_bytes(data, fmt, name="f", batch_rows=7)),
            ):
                try:
                    for frame in entry():
                        frame.to_arrow()
                    print("ok")
                except FormatError as exc:
                    print("FormatError" if str(exc).startswith("f: ") else "unnamed: " + str(exc))
                except BaseException as exc:
                    print("OTHER", type(exc).__name__, exc)
    """,
        timeout=120,
    )
    assert len(lines) == 3 * len(list(corpus.iterdir()))
    assert set(lines) <= {"ok", "FormatError"}, sorted(set(lines))
    assert lines.count("FormatError") > len(lines) // 2


@pytest.mark.parametrize("compression", ["gzip", "zstd", "bz2"])
def test_truncated_and_garbage_compressed_text(compression: str, tmp_path: Path) -> None:
    packed = COMPRESS[compression](b"a,b\n" + b"1,2\n" * 20_000)
    for data in (packed[: len(packed) // 2], packed[:-3], packed[:4] + bytes(200)):
        refused(data, FileFormat("csv", compression), tmp_path, "cannot read as csv")  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", ["csv", "tsv", "ndjson", "json"])
def test_garbage_text_is_a_format_error_or_a_frame(kind: str, tmp_path: Path) -> None:
    rng = random.Random(kind)
    for _ in range(20):
        data = rng.randbytes(rng.randint(1, 3000))
        try:
            for frame in both(data, FileFormat(kind), tmp_path):  # type: ignore[arg-type]
                frame.to_arrow()
        except FormatError as exc:
            assert str(exc).startswith(NAME)


# --- small CSVs parsed together ----------------------------------------------------------------

VALUES = [
    "0",
    "7",
    "-12",
    "1.5",
    "-0.25",
    "1.",
    ".5",
    "1e5",
    "inf",
    "NaN",
    "true",
    "FALSE",
    "x",
    "+1",
    " 1",
    "1_000",
    "",
    "",
    "99999999999999999999",
    "2020-01-01",
]


@st.composite
def csv_files(draw: st.DrawFn) -> list[bytes]:
    width = draw(st.integers(1, 3))
    header = ",".join(f"c{i}" for i in range(width)).encode()
    row = st.lists(st.sampled_from(VALUES), min_size=width, max_size=width)
    bodies = draw(st.lists(st.lists(row, max_size=5), min_size=2, max_size=6))
    return [
        header + b"\n" + b"".join(",".join(r).encode() + b"\n" for r in body) for body in bodies
    ]


@settings(
    max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(files=csv_files())
def test_read_many_gives_each_file_what_it_gets_alone(files: list[bytes]) -> None:
    items = [(data, FileFormat("csv"), f"s3://b/{i}.csv") for i, data in enumerate(files)]
    for (data, fmt, name), got in zip(items, read_many(items), strict=True):
        try:
            alone: pl.DataFrame | FormatError = read_bytes(data, fmt, name=name)
        except FormatError as exc:
            alone = exc
        if isinstance(alone, FormatError):
            assert isinstance(got, FormatError) and str(got) == str(alone)
        else:
            assert isinstance(got, pl.DataFrame)
            assert_frame_equal(got, alone)


def test_read_many_keeps_ints_of_one_file_beside_text_of_another() -> None:
    items = [
        (b"id,v\n1,a\n", FileFormat("csv"), "one"),
        (b"id,v\nx,b\n", FileFormat("csv"), "two"),
        (b"id,v\n2,c\n", FileFormat("csv"), "three"),
    ]
    got = read_many(items)
    assert isinstance(got[0], pl.DataFrame) and got[0].schema["id"] == pl.Int64
    assert isinstance(got[1], pl.DataFrame) and got[1]["id"].to_list() == ["x"]
    assert isinstance(got[2], pl.DataFrame) and got[2]["id"].to_list() == [2]


def test_read_many_applies_the_limits() -> None:
    header = b",".join(b"c%d" % i for i in range(30))
    items = [
        (header + b"\n" + b",".join([b"1"] * 30) + b"\n", FileFormat("csv"), f"f{i}")
        for i in range(3)
    ]
    got = read_many(items, limits=ParseLimits(max_columns=20))
    assert all(isinstance(r, FormatError) and "more than the limit of 20" in str(r) for r in got)
