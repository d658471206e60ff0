"""`dreambolt.sinks.deltatypes`: frames in Delta's types, fitted to a table, through delta-rs."""

from __future__ import annotations

import datetime as dt
import tempfile
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import deltalake
import hypothesis.strategies as st
import polars as pl
import pyarrow as pa
import pytest
from deltalake import DeltaTable
from hypothesis import event, given, settings
from polars.testing import assert_series_equal

from dreambolt.errors import SinkError
from dreambolt.sinks.deltatypes import arrow_schema, fit_to_table, storable, void_columns

URI = "s3://bucket/in/part-7.parquet"
TABLE = "events"
NS_2020 = 1_577_836_800_000_000_000  # 2020-01-01T00:00:00Z in ns
Back = Callable[[pl.Series], pl.Series]


def _times(nanos: list[int | None]) -> pl.Series:
    return pl.Series("t", nanos, dtype=pl.Int64).cast(pl.Time)


def _from_iso(s: pl.Series) -> pl.Series:
    return s.str.to_time("%H:%M:%S%.f")


def _cast(dtype: pl.DataType) -> Back:
    return lambda s: s.cast(dtype)


def _ints(dtype: pl.DataType, values: list[int | None]) -> pl.Series:
    return pl.Series("c", values, dtype=dtype)


def _stamps(unit: str, nanos: list[int | None], zone: str | None = None) -> pl.Series:
    scale = {"ns": 1, "us": 1000, "ms": 1_000_000}[unit]
    raw = [None if n is None else n // scale for n in nanos]
    s = pl.Series("c", raw, dtype=pl.Int64).cast(pl.Datetime(unit))  # type: ignore[arg-type]
    return s.dt.replace_time_zone(zone) if zone else s


_TIME_NANOS = [3723_000_000_000, 3723_500_000_000, 3723_000_001_000, 3723_000_000_001, None]
_TIME_ISO = ["01:02:03", "01:02:03.500000", "01:02:03.000001", "01:02:03.000000001", None]
_STRUCT_TD = pl.DataFrame(
    {"t": _times(_TIME_NANOS[:3]), "d": pl.Series([1000, -5000, None]).cast(pl.Duration("ns"))}
).select(pl.when(pl.int_range(3) == 1).then(None).otherwise(pl.struct("t", "d")).alias("c"))["c"]

# name, column as read, the type it is stored as, the stored column read back as the original
CASES: list[tuple[str, pl.Series, pl.DataType, Back]] = [
    ("uint8", _ints(pl.UInt8(), [0, 127, 200, 255, None]), pl.Int16(), _cast(pl.UInt8())),
    ("uint16", _ints(pl.UInt16(), [0, 65535, None]), pl.Int32(), _cast(pl.UInt16())),
    ("uint32", _ints(pl.UInt32(), [0, 2**32 - 1]), pl.Int64(), _cast(pl.UInt32())),
    (
        "uint64",
        _ints(pl.UInt64(), [0, 2**63, 2**64 - 1, None]),
        pl.Decimal(20, 0),
        _cast(pl.UInt64()),
    ),
    (
        "int128",
        _ints(pl.Int128(), [10**38 - 1, -(10**38 - 1), 5, None]),
        pl.Decimal(38, 0),
        _cast(pl.Int128()),
    ),
    ("uint128", _ints(pl.UInt128(), [10**38 - 1, 0]), pl.Decimal(38, 0), _cast(pl.UInt128())),
    (
        "float16",
        pl.Series("c", [1.5, -0.25, None], dtype=pl.Float16),
        pl.Float32(),
        _cast(pl.Float16()),
    ),
    (
        "datetime-ns",
        _stamps("ns", [NS_2020 + 123_456_000, -86_400_000_000_000, None]),
        pl.Datetime("us"),
        _cast(pl.Datetime("ns")),
    ),
    (
        "datetime-ms",
        _stamps("ms", [NS_2020 + 5_000_000, 253_402_300_799_000_000_000 * 4]),
        pl.Datetime("us"),
        _cast(pl.Datetime("ms")),
    ),
    (
        "datetime-zone",
        _stamps("ns", [NS_2020 + 7_000, None], "Europe/Paris"),
        pl.Datetime("us", "UTC"),
        lambda s: s.dt.convert_time_zone("Europe/Paris").cast(pl.Datetime("ns", "Europe/Paris")),
    ),
    (
        "datetime-utc-us",
        _stamps("us", [NS_2020], "UTC"),
        pl.Datetime("us", "UTC"),
        lambda s: s,
    ),
    ("time", _times(_TIME_NANOS).alias("c"), pl.String(), _from_iso),
    (
        "duration-ns",
        pl.Series("c", [1_000, -3_000, 86_400_000_000_000, None]).cast(pl.Duration("ns")),
        pl.Int64(),
        lambda s: s.cast(pl.Duration("us")).cast(pl.Duration("ns")),
    ),
    (
        "duration-ms",
        pl.Series("c", [1, -3, None]).cast(pl.Duration("ms")),
        pl.Int64(),
        lambda s: s.cast(pl.Duration("us")).cast(pl.Duration("ms")),
    ),
    (
        "categorical",
        pl.Series("c", ["a", None, "b", "a"], dtype=pl.Categorical),
        pl.String(),
        _cast(pl.Categorical()),
    ),
    (
        "enum",
        pl.Series("c", ["x", "y", None], dtype=pl.Enum(["x", "y"])),
        pl.String(),
        _cast(pl.Enum(["x", "y"])),
    ),
    (
        "embedding",
        pl.Series("c", [[0.5, -1.0, 2.0], None], dtype=pl.Array(pl.Float32, 3)),
        pl.List(pl.Float32()),
        _cast(pl.Array(pl.Float32, 3)),
    ),
    (
        "array-of-arrays",
        pl.Series("c", [[[1, 2], [3, 4]]], dtype=pl.Array(pl.Array(pl.UInt8, 2), 2)),
        pl.List(pl.List(pl.Int16())),
        _cast(pl.Array(pl.Array(pl.UInt8, 2), 2)),
    ),
    (
        "list-uint8",
        pl.Series("c", [[1, 200], None, [], [None]], dtype=pl.List(pl.UInt8)),
        pl.List(pl.Int16()),
        _cast(pl.List(pl.UInt8())),
    ),
    (
        "struct-datetime-ns",
        pl.Series(
            "c",
            [{"a": dt.datetime(2020, 1, 1, 0, 0, 0, 5), "b": 250}, None, {"a": None, "b": 1}],
            dtype=pl.Struct({"a": pl.Datetime("ns"), "b": pl.UInt8}),
        ),
        pl.Struct({"a": pl.Datetime("us"), "b": pl.Int16()}),
        _cast(pl.Struct({"a": pl.Datetime("ns"), "b": pl.UInt8})),
    ),
    (
        "list-time",
        pl.Series("c", [_TIME_NANOS, None, []], dtype=pl.List(pl.Int64)).cast(pl.List(pl.Time)),
        pl.List(pl.String()),
        lambda s: s.list.eval(_from_iso(pl.element())),  # type: ignore[arg-type]
    ),
    (
        "struct-time-duration",
        _STRUCT_TD,
        pl.Struct({"t": pl.String(), "d": pl.Int64()}),
        lambda s: (
            s.to_frame()
            .select(
                pl.when(pl.col("c").is_null())
                .then(None)
                .otherwise(
                    pl.struct(
                        pl.col("c").struct.field("t").str.to_time("%H:%M:%S%.f"),
                        pl.col("c").struct.field("d").cast(pl.Duration("us")),
                    )
                )
                .alias("c")
            )["c"]
            .cast(pl.Struct({"t": pl.Time, "d": pl.Duration("ns")}))
        ),
    ),
    (
        "array-time",
        pl.Series("c", [[1, 2_000_000_001], None], dtype=pl.List(pl.Int64))
        .cast(pl.List(pl.Time))
        .cast(pl.Array(pl.Time, 2)),
        pl.List(pl.String()),
        lambda s: s.list.eval(_from_iso(pl.element())).cast(pl.Array(pl.Time, 2)),  # type: ignore[arg-type]
    ),
    (
        "struct-embedding",
        pl.Series(
            "c",
            [{"v": [1.0, 2.0], "n": 1}],
            dtype=pl.Struct({"v": pl.Array(pl.Float32, 2), "n": pl.UInt32}),
        ),
        pl.Struct({"v": pl.List(pl.Float32()), "n": pl.Int64()}),
        _cast(pl.Struct({"v": pl.Array(pl.Float32, 2), "n": pl.UInt32})),
    ),
    (
        "map-uint8",
        pl.Series("c", [{"k": 200}, None, {}], dtype=pl.Map(pl.String, pl.UInt8)),
        pl.Map(pl.String(), pl.Int16()),
        _cast(pl.Map(pl.String, pl.UInt8)),
    ),
]


def _write(path: Path, frame: pl.DataFrame, **options: object) -> pl.DataFrame:
    deltalake.write_deltalake(str(path), frame.to_arrow(), **options)  # type: ignore[call-overload]
    return pl.read_delta(str(path))


@pytest.mark.parametrize(("name", "column", "stored", "back"), CASES, ids=[c[0] for c in CASES])
def test_storable_maps_and_round_trips_without_loss(
    tmp_path: Path, name: str, column: pl.Series, stored: pl.DataType, back: Back
) -> None:
    frame = pl.DataFrame({"id": range(len(column)), "c": column})
    converted = storable(frame, URI)
    assert converted.schema["c"] == stored
    assert converted.schema["id"] == pl.Int64
    read = _write(tmp_path / name, converted).sort("id")
    assert read.schema["c"] == stored  # what delta-rs reads back is what was written
    assert_series_equal(back(read["c"]), column)


def test_time_is_iso_with_the_digits_it_needs() -> None:
    frame = pl.DataFrame({"t": _times(_TIME_NANOS)})
    assert storable(frame, URI)["t"].to_list() == _TIME_ISO


def test_duration_is_a_count_of_microseconds() -> None:
    frame = pl.DataFrame({"d": pl.Series([2_000, -1_000, None]).cast(pl.Duration("ns"))})
    assert storable(frame, URI)["d"].to_list() == [2, -1, None]


def test_null_columns_stay_null(tmp_path: Path) -> None:
    frame = pl.DataFrame(
        {"n": pl.Series([None, None], dtype=pl.Null), "l": pl.Series([[None], None])}
    )
    assert storable(frame, URI) is frame
    assert _write(tmp_path / "t", frame).schema == frame.schema


def test_a_frame_delta_stores_as_is_is_returned_itself() -> None:
    frame = pl.DataFrame(
        {
            "s": ["a"],
            "i": pl.Series([1], dtype=pl.Int8),
            "f": [1.5],
            "d": pl.Series([Decimal("1.25")], dtype=pl.Decimal(10, 2)),
            "t": _stamps("us", [NS_2020], "UTC"),
            "v": pl.Series([[1.0]], dtype=pl.List(pl.Float32)),
            "st": [{"a": 1, "b": [dt.date(2020, 1, 1)]}],
            "m": pl.Series([{"k": b"v"}], dtype=pl.Map(pl.String, pl.Binary)),
            "b": [True],
        }
    )
    assert storable(frame, URI) is frame


def test_only_the_columns_that_need_it_are_converted() -> None:
    frame = pl.DataFrame({"keep": ["x"], "u": pl.Series([3], dtype=pl.UInt8)})
    converted = storable(frame, URI)
    assert converted.columns == ["keep", "u"]
    assert converted.schema == pl.Schema({"keep": pl.String, "u": pl.Int16})


def _refused(frame: pl.DataFrame, *parts: str) -> str:
    with pytest.raises(SinkError) as caught:
        storable(frame, URI)
    message = str(caught.value)
    assert URI in message
    for part in parts:
        assert part in message
    return message


def test_nanoseconds_are_refused_naming_file_column_and_value() -> None:
    frame = pl.DataFrame({"ok": [1, 2], "at": _stamps("ns", [NS_2020, NS_2020 + 1])})
    message = _refused(frame, "'at'", "2020-01-01 00:00:00.000000001", "nanoseconds")
    assert "microsecond" in message


def test_nanoseconds_inside_a_struct_and_a_list_name_the_path() -> None:
    inner = _stamps("ns", [NS_2020, NS_2020 + 7])
    frame = pl.DataFrame({"s": pl.DataFrame({"a": inner}).select(pl.struct("a"))["a"]})
    _refused(frame, "'s.a'", "00:00:00.000000007")
    listed = pl.DataFrame({"l": pl.Series([[NS_2020, NS_2020 + 9]]).cast(pl.List(pl.Int64))})
    listed = listed.with_columns(pl.col("l").cast(pl.List(pl.Datetime("ns"))))
    _refused(listed, "'l[]'", "00:00:00.000000009")


def test_duration_nanoseconds_are_refused() -> None:
    frame = pl.DataFrame({"d": pl.Series([1000, 1001]).cast(pl.Duration("ns"))})
    _refused(frame, "'d'", "1001ns", "microseconds")


@pytest.mark.parametrize("kind", [pl.Datetime("ms"), pl.Duration("ms")])
def test_milliseconds_past_microseconds_range_are_refused(kind: pl.DataType) -> None:
    frame = pl.DataFrame({"c": pl.Series([0, 2**62]).cast(kind)})
    _refused(frame, "'c'", f"{2**62}ms", "range")


@pytest.mark.parametrize(
    ("dtype", "value"),
    [
        (pl.Int128(), 10**38),
        (pl.Int128(), -(10**38)),
        (pl.Int128(), -(2**127)),
        (pl.UInt128(), 2**128 - 1),
    ],
)
def test_numbers_past_38_digits_are_refused(dtype: pl.DataType, value: int) -> None:
    frame = pl.DataFrame({"n": pl.Series([1, value], dtype=dtype)})
    _refused(frame, "'n'", str(value), "38 digits")


def test_a_wide_number_inside_a_map_is_refused() -> None:
    frame = pl.DataFrame({"m": pl.Series([{"k": 10**38}], dtype=pl.Map(pl.String, pl.Int128))})
    _refused(frame, "'m.value'", str(10**38))


def test_objects_and_times_inside_maps_are_refused() -> None:
    _refused(pl.DataFrame({"o": pl.Series([object()], dtype=pl.Object)}), "'o'", "Object")
    times = pl.Series([{"k": 1}], dtype=pl.Map(pl.String, pl.Int64)).cast(
        pl.Map(pl.String, pl.Time)
    )
    _refused(pl.DataFrame({"m": times}), "'m'", "times inside a map")


def test_names_equal_but_for_case_are_refused() -> None:
    _refused(pl.DataFrame({"Name": [1], "x": [2], "name": [3]}), "'Name'", "'name'", "case")
    fields = pl.DataFrame({"s": [{"Id": 1, "ID": 2}]})
    _refused(fields, "'s'", "'Id'", "'ID'", "case")


# --- fit_to_table ------------------------------------------------------------------------------


def _table(path: Path, frame: pl.DataFrame) -> pa.Schema:
    """Create a Delta table of `frame` at `path`; its schema as delta-rs reports it."""
    deltalake.write_deltalake(str(path), frame.to_arrow())
    return arrow_schema(DeltaTable(str(path)).schema())


def _fit_refused(frame: pl.DataFrame, table: pa.Schema, *parts: str) -> str:
    with pytest.raises(SinkError) as caught:
        fit_to_table(frame, table, URI, TABLE)
    message = str(caught.value)
    assert URI in message
    assert f"in table {TABLE!r}" in message
    assert "(--table)" in message
    for part in parts:
        assert part in message
    return message


def test_arrow_schema_reads_delta_rs_schemas(tmp_path: Path) -> None:
    frame = storable(pl.DataFrame({c[0]: c[1].head(1) for c in CASES}), URI)
    table = _table(tmp_path / "t", frame)
    assert isinstance(table, pa.Schema)
    assert arrow_schema(DeltaTable(str(tmp_path / "t")).schema().to_arrow()) == table
    assert table.names == frame.columns
    # the table's types, read by polars, are the frame's: nothing to fit
    assert fit_to_table(frame, table, URI, TABLE) is frame


def test_no_table_yet_leaves_the_frame() -> None:
    frame = pl.DataFrame({"a": [1]})
    assert fit_to_table(frame, None, URI, TABLE) is frame


def test_names_take_the_tables_spelling_and_new_columns_stay(tmp_path: Path) -> None:
    table = _table(tmp_path / "t", pl.DataFrame({"UserId": [1], "Old": ["x"]}))
    frame = pl.DataFrame({"userid": [2], "NEW": [True]})
    fitted = fit_to_table(frame, table, URI, TABLE)
    assert fitted.columns == ["UserId", "NEW"]
    read = _write(tmp_path / "t", fitted, mode="append", schema_mode="merge")
    assert read.sort("UserId").to_dicts() == [
        {"UserId": 1, "Old": "x", "NEW": None},
        {"UserId": 2, "Old": None, "NEW": True},
    ]


def test_struct_fields_take_the_tables_spelling(tmp_path: Path) -> None:
    table = _table(tmp_path / "t", pl.DataFrame({"s": [{"name": 1, "n": [{"x": 1}]}]}))
    row = {"Name": 2, "N": [{"X": 3}, None], "extra": "e"}
    frame = pl.DataFrame({"s": [row, None]}, schema_overrides={"s": pl.Struct({
        "Name": pl.Int32, "N": pl.List(pl.Struct({"X": pl.Int64})), "extra": pl.String,
    })})  # fmt: skip
    fitted = fit_to_table(frame, table, URI, TABLE)
    assert fitted.schema["s"] == pl.Struct(
        {"name": pl.Int64, "n": pl.List(pl.Struct({"x": pl.Int64})), "extra": pl.String}
    )
    assert fitted["s"].to_list() == [{"name": 2, "n": [{"x": 3}, None], "extra": "e"}, None]
    read = _write(tmp_path / "t", fitted, mode="append", schema_mode="merge")
    assert {"name": 2, "n": [{"x": 3}, None], "extra": "e"} in read["s"].to_list()


def test_an_all_null_column_takes_the_tables_type(tmp_path: Path) -> None:
    table = _table(tmp_path / "t", pl.DataFrame({"a": [1], "s": [{"x": "y"}]}))
    frame = pl.DataFrame({"A": pl.Series([None], dtype=pl.Null), "s": pl.Series([None])})
    fitted = fit_to_table(frame, table, URI, TABLE)
    assert fitted.schema == pl.Schema([("a", pl.Int64()), ("s", pl.Struct({"x": pl.String}))])


def test_nulls_inside_nested_columns_take_the_tables_types(tmp_path: Path) -> None:
    table = _table(tmp_path / "t", pl.DataFrame({"s": [{"a": 1, "b": "x"}], "l": [[1.5]]}))
    frame = pl.DataFrame(
        {
            "s": pl.Series(
                [{"a": None, "b": "y"}], dtype=pl.Struct({"a": pl.Null, "b": pl.String})
            ),
            "l": pl.Series([[None], None], dtype=pl.List(pl.Null)).head(1),
        }
    )
    fitted = fit_to_table(frame, table, URI, TABLE)
    assert fitted.schema == pl.DataFrame(table.empty_table()).schema
    assert fitted.to_dicts() == [{"s": {"a": None, "b": "y"}, "l": [None]}]


def test_void_table_columns_keep_the_frames_type(tmp_path: Path) -> None:
    table = _table(tmp_path / "t", pl.DataFrame({"v": pl.Series([None], dtype=pl.Null)}))
    assert pa.types.is_null(table.field("v").type)
    frame = pl.DataFrame({"V": [5]})
    fitted = fit_to_table(frame, table, URI, TABLE)
    assert fitted.schema == pl.Schema({"v": pl.Int64})
    assert void_columns(frame, table) == ["v"]
    assert void_columns(pl.DataFrame({"v": pl.Series([None], dtype=pl.Null)}), table) == []
    assert void_columns(pl.DataFrame({"w": [1]}), table) == []


def test_values_that_fit_are_converted_to_the_tables_type(tmp_path: Path) -> None:
    table = _table(
        tmp_path / "t",
        pl.DataFrame(
            {
                "i": pl.Series([1], dtype=pl.Int32),
                "f": [1.0],
                "n": [1],
                "s": ["x"],
                "ts": _stamps("us", [NS_2020], "UTC"),
                "l": pl.Series([[1]], dtype=pl.List(pl.Int16)),
            }
        ),
    )
    frame = pl.DataFrame(
        {
            "i": [5, None, -(2**31)],
            "f": pl.Series([1, 2**53, None], dtype=pl.Int64),
            "n": pl.Series([Decimal(7), Decimal(2**63 - 1), None], dtype=pl.Decimal(20, 0)),
            "s": [1, -2, None],
            "ts": [dt.date(2020, 1, 2), None, dt.date(1900, 1, 1)],
            "l": pl.Series([[1, None], None, []], dtype=pl.List(pl.Int64)),
        }
    )
    fitted = fit_to_table(frame, table, URI, TABLE)
    assert fitted.schema == pl.DataFrame(table.empty_table()).schema
    assert fitted["s"].to_list() == ["1", "-2", None]
    read = _write(tmp_path / "t", fitted, mode="append", schema_mode="merge")
    assert read.filter(pl.col("s").ne_missing("x")).sort("i").equals(fitted.sort("i"))


def test_the_message_says_what_to_do(tmp_path: Path) -> None:
    table = _table(tmp_path / "t", pl.DataFrame({"Count": pl.Series([1], dtype=pl.Int32)}))
    with pytest.raises(SinkError) as caught:
        fit_to_table(pl.DataFrame({"count": [7, 2**40, 2**41]}), table, URI, TABLE)
    assert str(caught.value) == (
        f"{URI}: column 'count' is long in this file but integer in table 'events', and a value "
        "(1099511627776) does not convert without loss; load the file into another table "
        "(--table) or rebuild this one (--mode replace)"
    )
    assert not caught.value.fatal


@pytest.mark.parametrize(
    ("table_frame", "column", "shown", "kinds"),
    [
        (pl.DataFrame({"c": pl.Series([1], dtype=pl.Int32)}), [7, 2**40], "1099511627776",
         ("long in this file but integer",)),
        (pl.DataFrame({"c": [1]}), [1.0, 1.5, None], "1.5", ("double", "long")),
        (pl.DataFrame({"c": [1]}), ["12", "abc"], "'abc'", ("string", "long")),
        (pl.DataFrame({"c": [1]}), ["12", "012"], "'012'", ("string", "long")),
        (pl.DataFrame({"c": [1.0]}), pl.Series([1, 2**53 + 1], dtype=pl.Int64),
         str(2**53 + 1), ("long", "double")),
        (pl.DataFrame({"c": pl.Series([1.0], dtype=pl.Float32)}), [0.1], "0.1",
         ("double", "float")),
        (pl.DataFrame({"c": [1]}), pl.Series([Decimal(2**64 - 1)], dtype=pl.Decimal(20, 0)),
         "Decimal('18446744073709551615')", ("decimal(20,0)", "long")),
        (pl.DataFrame({"c": [dt.date(2020, 1, 1)]}), [dt.datetime(2020, 1, 1, 12)],
         "datetime.datetime(2020, 1, 1, 12, 0)", ("timestamp_ntz", "date")),
        (pl.DataFrame({"c": pl.Series([[1]], dtype=pl.List(pl.Int8))}), [[1], [1, 300]],
         "[1, 300]", ("array<long>", "array<byte>")),
        (pl.DataFrame({"c": [{"a": 1}]}), [{"a": 1.5}], "{'a': 1.5}",
         ("struct<a:double>", "struct<a:long>")),
    ],
)  # fmt: skip
def test_a_value_that_does_not_survive_fails_the_file(
    tmp_path: Path,
    table_frame: pl.DataFrame,
    column: list[object] | pl.Series,
    shown: str,
    kinds: tuple[str, ...],
) -> None:
    table = _table(tmp_path / "t", table_frame)
    frame = pl.DataFrame({"c": column})
    message = _fit_refused(frame, table, "column 'c'", f"a value ({shown})", *kinds)
    assert message.endswith("or rebuild this one (--mode replace)")


@pytest.mark.parametrize(
    ("table_frame", "column"),
    [
        (pl.DataFrame({"c": [1]}), [{"a": 1}]),
        (pl.DataFrame({"c": [{"a": 1}]}), [1]),
        (pl.DataFrame({"c": [1]}), [[1]]),
        (pl.DataFrame({"c": [dt.date(2020, 1, 1)]}), [18262]),
        (pl.DataFrame({"c": [True]}), ["true"]),
        (pl.DataFrame({"c": ["x"]}), [b"x"]),
        (pl.DataFrame({"c": ["x"]}), [dt.date(2020, 1, 1)]),
        (pl.DataFrame({"c": [{"a": 1}]}), [{"a": [1]}]),
        (pl.DataFrame({"c": pl.Series([{"k": {"a": 1}}], dtype=pl.Map(pl.String,
         pl.Struct({"a": pl.Int64})))}),
         pl.Series([{"k": {"A": 1}}], dtype=pl.Map(pl.String, pl.Struct({"A": pl.Int64})))),
    ],
)  # fmt: skip
def test_a_type_with_no_conversion_fails_the_file(
    tmp_path: Path, table_frame: pl.DataFrame, column: list[object] | pl.Series
) -> None:
    table = _table(tmp_path / "t", table_frame)
    message = _fit_refused(pl.DataFrame({"c": column}), table, "column 'c'", "does not convert;")
    assert "a value" not in message


# --- property: fit_to_table either refuses or the round trip is exact --------------------------

_FRAME_TYPES: list[pl.DataType] = [
    *(pl.Int8(), pl.Int16(), pl.Int32(), pl.Int64()),
    *(pl.UInt8(), pl.UInt16(), pl.UInt32(), pl.UInt64()),
    *(pl.Float32(), pl.Float64()),
    *(pl.Datetime("ns"), pl.Datetime("us"), pl.Datetime("ms"), pl.Datetime("us", "UTC")),
]
_TABLE_TYPES: list[pl.DataType] = [
    *(pl.Int8(), pl.Int16(), pl.Int32(), pl.Int64(), pl.Float32(), pl.Float64()),
    *(pl.Decimal(20, 0), pl.Decimal(38, 6), pl.String(), pl.Date()),
    *(pl.Datetime("us"), pl.Datetime("us", "UTC")),
]
_DAY_NS = 86_400_000_000_000
_BITS: dict[object, int] = {pl.Int8: 8, pl.Int16: 16, pl.Int32: 32, pl.Int64: 64}
_BITS |= {pl.UInt8: 8, pl.UInt16: 16, pl.UInt32: 32, pl.UInt64: 64}


@st.composite
def _column(draw: st.DrawFn) -> pl.Series:
    dtype = draw(st.sampled_from(_FRAME_TYPES))
    size = draw(st.integers(1, 6))
    if dtype.is_integer():
        bits = _BITS[dtype.base_type()]
        signed = dtype.is_signed_integer()
        low, high = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)
        edges = [v for v in (low, high, 0, 1, -1, 127, 128, 2**63) if low <= v <= high]
        values = st.one_of(st.none(), st.sampled_from(edges), st.integers(low, high))
        return pl.Series("c", draw(st.lists(values, min_size=size, max_size=size)), dtype)
    if dtype.is_float():
        floats = st.floats(width=32) if dtype == pl.Float32 else st.floats()
        values = st.one_of(st.none(), floats, st.integers(-(2**60), 2**60))
        drawn = [None if v is None else float(v) for v in draw(st.lists(values, min_size=size,
                                                                       max_size=size))]  # fmt: skip
        return pl.Series("c", drawn, dtype)
    # datetimes: whole days, whole µs, or anything, in ns since 1970, up to ~2200
    nanos = st.one_of(
        st.none(),
        st.integers(-30_000, 80_000).map(lambda d: d * _DAY_NS),
        st.integers(-(2**61) // 1000, 2**62 // 1000).map(lambda u: u * 1000),
        st.integers(-(2**61), 2**62),
    )
    unit = dtype.time_unit  # type: ignore[attr-defined]
    zone = dtype.time_zone  # type: ignore[attr-defined]
    return _stamps(unit, draw(st.lists(nanos, min_size=size, max_size=size)), zone)


@settings(max_examples=100, deadline=None)
@given(column=_column(), table_type=st.sampled_from(_TABLE_TYPES))
def test_fit_either_refuses_or_round_trips_exactly(
    column: pl.Series, table_type: pl.DataType
) -> None:
    with tempfile.TemporaryDirectory() as root:
        path = str(Path(root) / "t")
        deltalake.write_deltalake(
            path, pl.DataFrame(schema={"id": pl.Int64, "c": table_type}).to_arrow()
        )
        frame = pl.DataFrame({"id": range(len(column)), "c": column})
        table = arrow_schema(DeltaTable(path).schema())
        try:
            fitted = fit_to_table(storable(frame, URI), table, URI, TABLE)
        except SinkError as exc:
            assert URI in str(exc)
            event("refused")
            return
        event("written")
        deltalake.write_deltalake(path, fitted.to_arrow(), mode="append", schema_mode="merge")
        read = pl.read_delta(path).sort("id")
        assert read.schema["c"] == table_type
        assert_series_equal(read["c"].cast(column.dtype), column)
