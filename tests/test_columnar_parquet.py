"""Parquet through pyarrow: INT96, legacy repeated fields, zero-column files, checksums, types.

Each file is written to disk and read by every public entry point (`formats.read_bytes`,
`iter_file`, `iter_bytes`), and compared with what it holds and with pyarrow's own reading.
"""

from __future__ import annotations

import datetime as dt
import io
import struct
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from polars.testing import assert_frame_equal
from test_columnar_craft import (
    PBYTES,
    PINT96,
    UTF8,
    Chunk,
    Node,
    parquet_file,
    pyarrow_table,
    read_ways,
    repeated_no_annotation,
    repeated_primitive,
)

from dreambolt.errors import FormatError

WAYS = ("read_bytes", "iter_file", "iter_bytes")


def _parquet(table: pa.Table, **options: Any) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink, **options)
    return sink.getvalue()


def _micros(frame: pl.DataFrame, column: str) -> list[int | None]:
    return frame[column].cast(pl.Int64).to_list()


# --- INT96 ---------------------------------------------------------------------------------------

# parquet-testing's int96_from_spark.parquet: Spark timestamps (microseconds), some outside the
# 1677-2262 range of 64-bit nanoseconds.
SPARK = [
    1704112496123456,  # 2024-01-01 12:34:56.123456
    1704070800000000,  # 2024-01-01 01:00:00
    253402308000000000,  # 9999-12-31 01:00:00-02:00
    None,
    9089348884560000000,  # year 290000
    -62135596800000000,  # 0001-01-01
]


@pytest.mark.parametrize("way", WAYS)
def test_int96_timestamps_keep_spark_range(tmp_path: Path, way: str) -> None:
    raw = _parquet(
        pa.table({"a": pa.array(SPARK, pa.timestamp("us"))}), use_deprecated_int96_timestamps=True
    )
    assert pq.ParquetFile(io.BytesIO(raw)).schema.column(0).physical_type == "INT96"
    frame = read_ways(raw, "parquet", tmp_path)[way]
    assert frame.schema == pl.Schema({"a": pl.Datetime("us")})
    assert _micros(frame, "a") == SPARK


def _int96(micros: int) -> tuple[int, int]:
    """(nanoseconds of the day, Julian day), as INT96 holds a timestamp."""
    days, rest = divmod(micros, 86_400_000_000)
    return rest * 1000, 2440588 + days


@pytest.mark.parametrize("dictionary", [True, False])
def test_int96_as_spark_writes_it(tmp_path: Path, dictionary: bool) -> None:
    """No Arrow schema in the footer and a dictionary page, as parquet-mr writes: polars read
    these as nanoseconds, 2024 as 1704112496123456000 and years 1, 9999 and 290000 as
    9223372036854775807."""
    values = [_int96(v) for v in SPARK if v is not None]
    defs = [int(v is not None) for v in SPARK]
    chunk = (
        Chunk(["a"], PINT96, list(range(len(values))), defs, max_def=1, dictionary=values)
        if dictionary
        else Chunk(["a"], PINT96, values, defs, max_def=1)
    )
    raw = parquet_file([Node("a", 1, PINT96)], [chunk], len(SPARK))
    assert b"ARROW:schema" not in raw
    for frame in read_ways(raw, "parquet", tmp_path, batch_rows=4).values():
        assert frame.schema == pl.Schema({"a": pl.Datetime("us")})
        assert _micros(frame, "a") == SPARK


def test_int96_by_hand_drops_only_digits_below_a_microsecond(tmp_path: Path) -> None:
    """Impala's INT96 carries nanoseconds: they are cut to microseconds, nothing else moves."""
    day = 2440588  # the Julian day of 1970-01-01
    values = [(1_000_000_123, day), (0, day - 719162), (86_399_999_999_999, day + 2932896)]
    schema = [Node("t", 1, PINT96)]
    raw = parquet_file(schema, [Chunk(["t"], PINT96, values, [1, 1, 1, 0], max_def=1)], 4)
    for frame in read_ways(raw, "parquet", tmp_path).values():
        assert _micros(frame, "t") == [1_000_000, -62135596800000000, 253402300799999999, None]


# --- legacy repeated fields ----------------------------------------------------------------------


@pytest.mark.parametrize("make", [repeated_no_annotation, repeated_primitive])
def test_repeated_fields_without_list_annotation(tmp_path: Path, make: Any) -> None:
    raw, rows = make()
    for way, frame in read_ways(raw, "parquet", tmp_path, batch_rows=2).items():
        assert frame.to_dicts() == rows, way


def test_legacy_two_level_lists_from_pyarrow(tmp_path: Path) -> None:
    table = pa.table({"l": pa.array([[1, None], None, [], [4]], pa.list_(pa.int64()))})
    raw = _parquet(table, use_compliant_nested_type=False)
    for frame in read_ways(raw, "parquet", tmp_path).values():
        assert frame["l"].to_list() == [[1, None], None, [], [4]]


# --- files with no columns, or no rows -----------------------------------------------------------


@pytest.mark.parametrize("way", WAYS)
def test_a_parquet_file_with_no_columns_is_refused(tmp_path: Path, way: str) -> None:
    raw = parquet_file([], [], 6)  # as fastparquet's no_columns.parquet: rows, no columns
    assert pyarrow_table(raw).shape == (6, 0)
    with pytest.raises(FormatError, match=r"file\.parquet: it has no columns \(but 6 rows\)"):
        read_ways(raw, "parquet", tmp_path)[way]


def test_a_parquet_file_of_pyarrow_with_no_columns_is_refused(tmp_path: Path) -> None:
    raw = _parquet(pa.table({"a": [1, 2]}).drop_columns(["a"]))
    with pytest.raises(FormatError, match="it has no columns: there is nothing to load"):
        read_ways(raw, "parquet", tmp_path)


def test_a_parquet_file_with_columns_but_no_rows_gives_its_schema(tmp_path: Path) -> None:
    schema = pa.schema([("a", pa.int32()), ("s", pa.string())])
    raw = _parquet(schema.empty_table())
    for frame in read_ways(raw, "parquet", tmp_path).values():
        assert frame.schema == pl.Schema({"a": pl.Int32, "s": pl.String})
        assert frame.height == 0


# --- checksums and the many types ----------------------------------------------------------------


@pytest.mark.parametrize("way", WAYS)
def test_a_page_whose_checksum_fails_is_refused(tmp_path: Path, way: str) -> None:
    """`pl.read_parquet` (which read files held in memory before) does not check them."""
    table = pa.table({"n": pa.array(range(1000), pa.int64())})
    raw = bytearray(
        _parquet(table, compression="none", use_dictionary=False, write_page_checksum=True)
    )
    at = raw.index(struct.pack("<q", 500))
    raw[at] ^= 0x01  # 500 becomes 501: only the checksum can tell
    assert pl.read_parquet(bytes(raw))["n"][500] == 501
    with pytest.raises(FormatError, match=r"(?i)crc|checksum"):
        read_ways(bytes(raw), "parquet", tmp_path)[way]


def test_a_string_that_is_not_utf8_is_refused_naming_its_column(tmp_path: Path) -> None:
    schema = [Node("fine", 0, PINT96), Node("s", 0, PBYTES, converted=UTF8)]
    chunks = [
        Chunk(["fine"], PINT96, [(0, 2440588)] * 2),
        Chunk(["s"], PBYTES, [b"ok", b"\xff\xfe"]),
    ]
    with pytest.raises(FormatError, match=r"cannot read as parquet: column 's': .*UTF8"):
        read_ways(parquet_file(schema, chunks, 2), "parquet", tmp_path)


def _many_types() -> pa.Table:
    n = 2_000
    rng = np.random.default_rng(7)
    return pa.table(
        {
            "i8": pa.array(rng.integers(-128, 127, n), pa.int8()),
            "u64": pa.array(rng.integers(0, 2**63, n, dtype=np.uint64) * 2, pa.uint64()),
            "f16": pa.array(rng.random(n).astype(np.float16)),
            "f64": pa.array([None if i % 9 == 0 else i / 7 for i in range(n)]),
            "dec": pa.array([Decimal(i) / 100 for i in range(n)], pa.decimal128(12, 2)),
            "wide": pa.array([Decimal(10) ** 30 + i for i in range(n)], pa.decimal128(38, 0)),
            "text": pa.array([f"w{i % 50}" if i % 11 else None for i in range(n)]),
            "big": pa.array([f"long {i}" for i in range(n)], pa.large_string()),
            "cat": pa.array([f"c{i % 3}" for i in range(n)]).dictionary_encode(),
            "day": pa.array([dt.date(1, 1, 1) + dt.timedelta(days=i * 1000) for i in range(n)]),
            "at": pa.array(
                rng.integers(-(2**60), 2**60, n), pa.timestamp("us", "America/New_York")
            ),
            "ns": pa.array(rng.integers(-(2**62), 2**62, n), pa.timestamp("ns")),
            "t": pa.array(rng.integers(0, 86_400_000_000, n), pa.time64("us")),
            "list": pa.array([[j for j in range(i % 4)] if i % 5 else None for i in range(n)]),
            "rec": pa.array([{"a": i, "b": str(i)} if i % 7 else None for i in range(n)]),
            "map": pa.array([[("k", i)] for i in range(n)], pa.map_(pa.string(), pa.int64())),
            "id": pa.array([uuid.UUID(int=i).bytes for i in range(n)], pa.binary(16)),
        }
    )


@pytest.mark.parametrize("compression", ["snappy", "zstd", "gzip", "none"])
def test_many_types_read_as_pyarrow_reads_them(tmp_path: Path, compression: str) -> None:
    table = _many_types()
    raw = _parquet(
        table,
        compression=compression,
        row_group_size=700,
        data_page_size=4096,
        data_page_version="2.0" if compression == "zstd" else "1.0",
    )
    want = pl.from_arrow(
        pyarrow_table(raw).cast(
            pa.schema([f.with_type(pa.float32()) if f.name == "f16" else f for f in table.schema])
        )
    )
    assert isinstance(want, pl.DataFrame)
    for frame in read_ways(raw, "parquet", tmp_path, batch_rows=500).values():
        assert_frame_equal(frame, want, categorical_as_str=True)
        assert frame.schema["f16"] == pl.Float32  # DuckDB has no half float
        assert frame.schema["at"] == pl.Datetime("us", "America/New_York")


def test_pyarrow_installed_parquet_files(tmp_path: Path) -> None:
    folder = Path(pa.__file__).parent / "tests" / "data" / "parquet"
    files = sorted(folder.glob("*.parquet"))
    assert len(files) >= 4, f"pyarrow 26 ships four Parquet files in {folder}"
    for path in files:
        want = pl.from_arrow(pyarrow_table(path.read_bytes()))
        for frame in read_ways(path.read_bytes(), "parquet", tmp_path).values():
            assert_frame_equal(frame, want)
