"""Corrupt Parquet and IPC files: each is read as pyarrow reads it or refused with a
`FormatError` naming the file, within seconds, and the process neither hangs nor crashes.

parquet-testing's bad_data files are rebuilt by hand (levels that lie, negative and huge
dictionary sizes, a zero or oversized bit width, repetition levels starting at 1, columns of
different lengths), and valid files of several writers' options are mutated with fixed seeds
(bits flipped, bytes of the footer replaced, cut short, zeroed, sizes made huge). With polars'
own readers some of these panicked, and some aborted the process (2 of 1,000 mutated IPC files,
1 of 2,000 Parquet files).
"""

from __future__ import annotations

import io
import random
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.ipc as pa_ipc
import pyarrow.parquet as pq
import pytest
from polars.testing import assert_frame_equal
from test_columnar_craft import (
    OPTIONAL,
    PBYTES,
    PINT32,
    REPEATED,
    REQUIRED,
    UTF8,
    Chunk,
    Node,
    parquet_file,
    pyarrow_table,
    read_ways,
)

from dreambolt.errors import FormatError
from dreambolt.formats import read as formats
from dreambolt.formats.detect import FileFormat

SECONDS = 10  # what any one of these files may take, all entry points together


def _ints(**lies: int) -> bytes:
    base = {"values": [1, 2, 3], "defs": [1, 1, 1, 1]}
    chunk = Chunk(["a"], PINT32, max_def=1, **base | lies)  # type: ignore[arg-type]
    return parquet_file([Node("a", OPTIONAL, PINT32)], [chunk], 4)


def _words(**lies: int | list[int]) -> bytes:
    chunk = Chunk(["s"], PBYTES, [0, 1, 1, 0], [1, 1, 1, 1], None, 1, dictionary=["x", "yy"])
    for name, value in lies.items():
        setattr(chunk, name, value)
    return parquet_file([Node("s", OPTIONAL, PBYTES, converted=UTF8)], [chunk], 4)


BAD = {
    "levels fewer than the page's values (ARROW-GH-41321)": _ints(num_values=1000),
    "values fewer than the levels say": _ints(values=[1]),
    "a negative count of values": _ints(num_values=-5),
    "a negative dictionary size (ARROW-RS-GH-6229)": _words(dict_count=-1),
    "a huge dictionary size": _words(dict_count=2**31 - 1),
    "indices of bit width 0 (ARROW-GH-43605)": _words(bit_width=0),
    "indices of bit width 40": _words(bit_width=40),
    "an index past the dictionary": _words(values=[0, 5, 1, 0]),
    "a huge page size": _ints(page_size=2**31 - 1),
    "a negative page size": _ints(page_size=-100),
    "repetition levels starting at 1 (ARROW-GH-45185)": parquet_file(
        [Node("l", REPEATED, PINT32)],
        [Chunk(["l"], PINT32, [1, 2, 3], [1, 1, 1], [1, 0, 1], 1, 1)],
        2,
    ),
    "columns of different lengths (ARROW-GH-41317)": parquet_file(
        [Node("a", REQUIRED, PINT32), Node("b", REQUIRED, PINT32)],
        [Chunk(["a"], PINT32, [1, 2, 3]), Chunk(["b"], PINT32, [1, 2, 3, 4, 5])],
        5,
    ),
    "2**62 rows declared": parquet_file(
        [Node("a", REQUIRED, PINT32)], [Chunk(["a"], PINT32, [1, 2, 3])], 2**62
    ),
}


def _reference(raw: bytes) -> pl.DataFrame | None:
    """What pyarrow reads from `raw` as a frame, or None if it (or polars) refuses it, or if
    it reads other than the rows the Parquet footer counts (which DreamBolt refuses)."""
    try:
        table = pyarrow_table(raw)
        table.validate(full=True)
        frame = pl.from_arrow(table)
        footer = pq.ParquetFile(pa.BufferReader(raw)).metadata if raw[:4] == b"PAR1" else None
        if footer is not None and table.num_rows != footer.num_rows:
            return None
    except Exception:
        return None
    assert isinstance(frame, pl.DataFrame)
    return frame


def _as_pyarrow_or_refused(raw: bytes, kind: str, tmp_path: Path) -> None:
    want = _reference(raw)
    start = time.monotonic()
    try:
        ways = read_ways(raw, kind, tmp_path, batch_rows=500)
    except FormatError as exc:
        assert str(exc).startswith(f"file.{kind}: ")
        assert want is None or want.width == 0, "pyarrow reads what DreamBolt refused"
    else:
        assert want is not None, "DreamBolt read what pyarrow refuses"
        for frame in ways.values():
            assert_frame_equal(frame, want, categorical_as_str=True)
    assert time.monotonic() - start < SECONDS


@pytest.mark.parametrize("case", BAD)
def test_bad_data_is_refused_or_read_as_pyarrow_reads_it(tmp_path: Path, case: str) -> None:
    _as_pyarrow_or_refused(BAD[case], "parquet", tmp_path)


def test_bad_data_that_pyarrow_refuses_is_refused(tmp_path: Path) -> None:
    refused = {case for case, raw in BAD.items() if _reference(raw) is None}
    assert len(refused) >= 10  # most of them: the check above is not vacuous
    with pytest.raises(FormatError, match="cannot read as parquet: The repetition level"):
        read_ways(BAD["repetition levels starting at 1 (ARROW-GH-45185)"], "parquet", tmp_path)
    with pytest.raises(
        FormatError,
        match=("it holds 3 rows where its footer says 4,611,686,018,427,387,904: is it truncated"),
    ):
        read_ways(BAD["2**62 rows declared"], "parquet", tmp_path)


# --- mutated files -------------------------------------------------------------------------------


def _table() -> pa.Table:
    n = 1_200
    return pa.table(
        {
            "i": pa.array(range(n)),
            "f": pa.array([i / 3 for i in range(n)]),
            "s": pa.array([None if i % 11 == 0 else f"w{i % 50}" for i in range(n)]),
            "u": pa.array([f"unique text {i}" for i in range(n)]),
            "l": pa.array(
                [list(range(i % 4)) if i % 5 else None for i in range(n)], pa.list_(pa.int32())
            ),
            "st": pa.array([{"a": i, "b": str(i)} if i % 7 else None for i in range(n)]),
            "ts": pa.array(range(0, n * 10**9, 10**9), pa.timestamp("us")),
            "b": pa.array([i % 3 == 0 for i in range(n)]),
        }
    )


def _parquet(**options: object) -> bytes:
    sink = io.BytesIO()
    pq.write_table(_table(), sink, **options)  # type: ignore[arg-type]
    return sink.getvalue()


def _ipc(*, file: bool, compression: str | None) -> bytes:
    sink = io.BytesIO()
    opener = pa_ipc.new_file if file else pa_ipc.new_stream
    options = pa_ipc.IpcWriteOptions(compression=compression)
    with opener(sink, _table().schema, options=options) as writer:
        writer.write_table(_table(), max_chunksize=400)
    return sink.getvalue()


VALID = {
    "snappy v1": lambda: _parquet(compression="snappy"),
    "zstd v2 with page index and checksums": lambda: _parquet(
        compression="zstd", data_page_version="2.0", write_page_index=True, write_page_checksum=True
    ),
    "plain pages, small row groups": lambda: _parquet(
        compression="none", use_dictionary=False, row_group_size=400, data_page_size=1024
    ),
    "gzip, INT96": lambda: _parquet(compression="gzip", use_deprecated_int96_timestamps=True),
    "ipc file": lambda: _ipc(file=True, compression=None),
    "ipc stream, lz4": lambda: _ipc(file=False, compression="lz4"),
    "ipc file, zstd": lambda: _ipc(file=True, compression="zstd"),
}


def _mutated(data: bytes, rng: random.Random) -> bytes:
    raw = bytearray(data)
    how = rng.choice(["flip", "flip", "footer", "cut", "zero", "huge"])
    if how == "flip":
        for _ in range(rng.randint(1, 8)):
            raw[rng.randrange(len(raw))] ^= 1 << rng.randrange(8)
    elif how == "footer":
        for _ in range(rng.randint(1, 4)):
            raw[len(raw) - 1 - rng.randrange(min(len(raw), 3000))] = rng.randrange(256)
    elif how == "cut":
        del raw[rng.randrange(len(raw)) :]
    elif how == "zero":
        at, size = rng.randrange(len(raw)), rng.randint(1, 64)
        raw[at : at + size] = bytes(len(raw[at : at + size]))
    else:
        at = rng.randrange(len(raw) - 4)
        raw[at : at + 4] = rng.choice([b"\xff\xff\xff\x7f", b"\x00\x00\x00\x80", b"\xff" * 4])
    return bytes(raw)


@pytest.mark.parametrize("base", VALID)
def test_mutated_files_are_refused_or_read_as_pyarrow_reads_them(tmp_path: Path, base: str) -> None:
    data = VALID[base]()
    kind = "ipc" if base.startswith("ipc") else "parquet"
    rng = random.Random(f"dreambolt {base}")
    for _ in range(40):
        _as_pyarrow_or_refused(_mutated(data, rng), kind, tmp_path)


# --- the process itself --------------------------------------------------------------------------

_EXIT_AT_ONCE = """
import sys
from dreambolt.formats import read as formats
from dreambolt.formats.detect import FileFormat
from dreambolt.errors import FormatError
try:
    formats.read_bytes(open(sys.argv[1], "rb").read(), FileFormat("parquet"), name="bad")
except FormatError:
    pass
"""


def test_the_process_exits_cleanly_right_after_a_failed_read(tmp_path: Path) -> None:
    """pyarrow's threaded `read()` of this file left tasks running after it failed, and a
    process exiting right then aborted ("terminate called without an active exception") in
    9 runs of 10."""
    path = tmp_path / "bad.parquet"
    path.write_bytes(BAD["2**62 rows declared"])
    for _ in range(4):
        done = subprocess.run(
            [sys.executable, "-c", _EXIT_AT_ONCE, str(path)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr[-500:]


def test_a_corrupt_file_fails_alone_among_good_ones(tmp_path: Path) -> None:
    good = VALID["snappy v1"]()
    for data in (good, BAD["columns of different lengths (ARROW-GH-41317)"], good):
        try:
            frame = formats.read_bytes(data, FileFormat("parquet"), name="x")
        except FormatError:
            assert data != good
        else:
            assert frame.height == 1_200
