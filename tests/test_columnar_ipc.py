"""Arrow IPC through pyarrow: compressed buffers, big-endian files, and the types polars cannot
hold as they are (converted, or refused naming the column).

Each file is read by every public entry point (`formats.read_bytes`, `iter_file`, `iter_bytes`).
"""

from __future__ import annotations

import datetime as dt
import io
from decimal import Decimal
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.feather as feather
import pyarrow.ipc as pa_ipc
import pytest
from polars.testing import assert_frame_equal
from test_columnar_craft import pyarrow_table, read_ways
from test_columnar_ipc_craft import every_type, ipc_bytes

from dreambolt.errors import FormatError


def _ipc(
    table: pa.Table, *, file: bool = True, compression: str | None = None, chunk: int | None = None
) -> bytes:
    sink = io.BytesIO()
    options = pa_ipc.IpcWriteOptions(compression=compression)
    opener = pa_ipc.new_file if file else pa_ipc.new_stream
    with opener(sink, table.schema, options=options) as writer:
        writer.write_table(table, max_chunksize=chunk)
    return sink.getvalue()


def _frame(table: pa.Table) -> pl.DataFrame:
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    return frame


# --- compression and byte order ------------------------------------------------------------------


def test_lz4_feather_of_pyarrow_0_17(tmp_path: Path) -> None:
    """pyarrow's own test file: polars' reader gave 40, 1838102379389329924, ... for 0, 1, ..."""
    path = (
        Path(pa.__file__).parent
        / "tests"
        / "data"
        / "feather"
        / "v0.17.0.version.2-compression.lz4.feather"
    )
    assert path.exists(), f"pyarrow 26 ships {path}: is the pinned pyarrow installed?"
    want = _frame(feather.read_table(path))
    assert want["a"].to_list()[:3] == [0, 1, 2]
    for frame in read_ways(path.read_bytes(), "ipc", tmp_path).values():
        assert_frame_equal(frame, want)


@pytest.mark.parametrize("compression", ["lz4", "zstd", None])
@pytest.mark.parametrize("file", [True, False])
def test_compressed_ipc_files_and_streams(
    tmp_path: Path, compression: str | None, file: bool
) -> None:
    rows = 5_000
    table = pa.table(
        {
            "n": pa.array(range(rows)),
            "s": pa.array([None if i % 3 == 0 else f"v{i % 17}" for i in range(rows)]),
            "l": pa.array([[i, None] if i % 4 else None for i in range(rows)]),
        }
    )
    raw = _ipc(table, file=file, compression=compression, chunk=700)
    for frame in read_ways(raw, "ipc", tmp_path, batch_rows=1000).values():
        assert_frame_equal(frame, _frame(table))


@pytest.mark.parametrize("file", [True, False])
def test_big_endian_ipc_reads_as_its_little_endian_twin(tmp_path: Path, file: bool) -> None:
    table = every_type()
    want = _frame(table)
    little = ipc_bytes(table, big_endian=False, file=file)
    big = ipc_bytes(table, big_endian=True, file=file)
    assert little != big
    for raw in (little, big):
        for frame in read_ways(raw, "ipc", tmp_path, batch_rows=2).values():
            assert_frame_equal(frame, want, categorical_as_str=True)


# --- conversions ---------------------------------------------------------------------------------


def test_conversions_keep_every_value(tmp_path: Path) -> None:
    offset = dt.timezone(dt.timedelta(hours=5, minutes=30))
    instant = dt.datetime(2024, 3, 1, 12, 0, tzinfo=offset)
    table = pa.table(
        {
            "secs": pa.array([0, 253402300799, None], pa.timestamp("s")),
            "span": pa.array([1, -86400, None], pa.duration("s")),
            "zoned": pa.array([instant, None, instant], pa.timestamp("us", "+05:30")),
            "half": pa.array([1.5, None, -0.25], pa.float16()),
            "dec": pa.array([Decimal("12.50"), None, Decimal("-1.25")], pa.decimal256(20, 2)),
            "huge": pa.array([Decimal("1" * 50), None, Decimal(-7)], pa.decimal256(50, 0)),
            "runs": pa.RunEndEncodedArray.from_arrays(
                pa.array([2, 3], pa.int32()), pa.array(["a", None])
            ),
            "nested": pa.array([[1.5], None, []], pa.list_(pa.float16())),
        }
    )
    for frame in read_ways(_ipc(table), "ipc", tmp_path, batch_rows=2).values():
        assert frame.schema == pl.Schema(
            {
                "secs": pl.Datetime("ms"),
                "span": pl.Duration("ms"),
                "zoned": pl.Datetime("us", "UTC"),
                "half": pl.Float32,
                "dec": pl.Decimal(20, 2),
                "huge": pl.String,
                "runs": pl.String,
                "nested": pl.List(pl.Float32),
            }
        )
        assert frame["secs"].cast(pl.Int64).to_list() == [0, 253402300799000, None]
        assert frame["span"].cast(pl.Int64).to_list() == [1000, -86400000, None]
        assert frame["zoned"].to_list() == [instant, None, instant]  # the same instants
        assert frame["half"].to_list() == [1.5, None, -0.25]
        assert frame["dec"].to_list() == [Decimal("12.50"), None, Decimal("-1.25")]
        assert frame["huge"].to_list() == ["1" * 50, None, "-7"]
        assert frame["runs"].to_list() == ["a", "a", None]
        assert frame["nested"].to_list() == [[1.5], None, []]


def test_seconds_past_what_milliseconds_hold_are_refused(tmp_path: Path) -> None:
    """polars' own conversion multiplied by 1,000 without a check: the value came out as 0."""
    table = pa.table({"ok": [1], "far": pa.array([2**62], pa.timestamp("s"))})
    with pytest.raises(FormatError, match="column 'far' cannot be converted for polars"):
        read_ways(_ipc(table), "ipc", tmp_path)


@pytest.mark.parametrize(
    ("column", "what"),
    [
        (pa.array([pa.MonthDayNano([1, 2, 3])], pa.month_day_nano_interval()), "an interval"),
        (
            pa.UnionArray.from_sparse(pa.array([0], pa.int8()), [pa.array([1]), pa.array(["a"])]),
            "a union",
        ),
        (pa.array([[1]], pa.list_view(pa.int8())), "a list view"),
        (
            pa.StructArray.from_arrays(
                [pa.RunEndEncodedArray.from_arrays(pa.array([1], pa.int32()), pa.array(["x"]))],
                names=["r"],
            ),
            "run-end encoded inside a nested column",
        ),
    ],
)
def test_types_polars_cannot_hold_are_refused_by_name(
    tmp_path: Path, column: pa.Array, what: str
) -> None:
    table = pa.table({"fine": [1], "odd": column})
    with pytest.raises(FormatError, match=f"file.ipc: cannot read as ipc: column 'odd' is {what}"):
        read_ways(_ipc(table), "ipc", tmp_path)


# --- no columns, no batches ----------------------------------------------------------------------


@pytest.mark.parametrize("file", [True, False])
def test_an_ipc_file_with_no_columns_is_refused(tmp_path: Path, file: bool) -> None:
    raw = _ipc(pa.table({"a": [1, 2]}).drop_columns(["a"]), file=file)
    for way in ("read_bytes", "iter_file", "iter_bytes"):
        with pytest.raises(FormatError, match="it has no columns: there is nothing to load"):
            read_ways(raw, "ipc", tmp_path)[way]


@pytest.mark.parametrize("file", [True, False])
def test_an_ipc_file_without_batches_gives_its_schema(tmp_path: Path, file: bool) -> None:
    schema = pa.schema([("a", pa.int64()), ("at", pa.timestamp("s"))])
    sink = io.BytesIO()
    with (pa_ipc.new_file if file else pa_ipc.new_stream)(sink, schema):
        pass
    assert pyarrow_table(sink.getvalue()).num_rows == 0
    for frame in read_ways(sink.getvalue(), "ipc", tmp_path).values():
        assert frame.schema == pl.Schema({"a": pl.Int64, "at": pl.Datetime("ms")})
        assert frame.height == 0
