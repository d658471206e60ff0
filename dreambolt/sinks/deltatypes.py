"""Polars frames in the types a Delta Lake table stores: converted without loss, or refused.

Delta has string, long, integer, short, byte, float, double, decimal(p <= 38, s), boolean,
binary, date, timestamp (a UTC instant), timestamp_ntz (both in µs), struct, array and map.
delta-rs converts other types itself, sometimes wrongly (ns cut to µs, UInt8 written as Int8),
so `storable` converts each column first, unsigned integers as Spark reads them from Parquet:

- UInt8, UInt16, UInt32 become Int16, Int32, Int64; UInt64 decimal(20, 0); Int128 and UInt128
  decimal(38, 0) (a value of more than 38 digits is refused); Float16 becomes Float32;
- a Datetime in ns or ms becomes µs; a value with digits below the microsecond, or past what
  microseconds can count, is refused. A time zone becomes UTC (the same instant: Delta's
  timestamp); a naive Datetime stays naive (timestamp_ntz);
- **Time becomes a string** in ISO 8601 form: 'HH:MM:SS', 'HH:MM:SS.ffffff' when it has a
  fraction, with nine digits when it has nanoseconds (so no value loses a digit, and the
  strings sort as the times do). Delta has no time type;
- **Duration becomes a long: a count of microseconds** (a value with nanoseconds is refused);
- Categorical and Enum become String; Array(inner, n) becomes List(inner) (the embedding
  vectors: Array(Float32, dim) is stored as array<float>);
- Object, extension types and a time inside a map are refused (polars' Decimal stops at 38
  digits, so a wider decimal cannot reach here).

Null columns stay Null. Delta's column names ignore case, so two names equal but for case (of
columns, or of fields of one struct) are refused. `fit_to_table` then shapes a storable frame
to an existing table (see there); `arrow_schema` reads a delta-rs schema as pyarrow's.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable

import polars as pl
import pyarrow as pa
from polars.datatypes import DataTypeClass

from dreambolt.errors import SinkError

__all__ = ["arrow_schema", "fit_to_table", "storable", "void_columns"]

DType = pl.DataType | DataTypeClass

_DIGITS38 = 10**38 - 1
_MS_LIMIT = (2**63 - 1) // 1000  # ms past this overflow an i64 count of µs
_DIRECT: dict[object, DType] = {  # Time and Duration: see the module's text
    **{pl.UInt8: pl.Int16(), pl.UInt16: pl.Int32(), pl.UInt32: pl.Int64()},
    **{pl.UInt64: pl.Decimal(20, 0), pl.Int128: pl.Decimal(38, 0), pl.UInt128: pl.Decimal(38, 0)},
    **{pl.Float16: pl.Float32(), pl.Categorical: pl.String(), pl.Enum: pl.String()},
    **{pl.Time: pl.String(), pl.Duration: pl.Int64()},
}
_AS_IS = frozenset(  # (polars' own Decimal stops at 38 digits: every one is Delta's)
    {pl.Int8, pl.Int16, pl.Int32, pl.Int64, pl.Float32, pl.Float64, pl.String, pl.Binary}
    | {pl.Boolean, pl.Date, pl.Null, pl.Decimal}
)
_DELTA_NAMES: dict[object, str] = {
    **{pl.Int8: "byte", pl.Int16: "short", pl.Int32: "integer", pl.Int64: "long"},
    **{pl.Float32: "float", pl.Float64: "double", pl.String: "string", pl.Binary: "binary"},
    **{pl.Boolean: "boolean", pl.Date: "date", pl.Null: "void"},
}
_CASE = "differ only in case, and Delta Lake's names ignore case"
_ADVICE = "load the file into another table (--table) or rebuild this one (--mode replace)"


class _Refused(Exception):
    """A type Delta cannot store; the message completes "column X ..."."""


# --- storable --------------------------------------------------------------------------------


def storable(frame: pl.DataFrame, uri: str) -> pl.DataFrame:
    """`frame` with every column in a type Delta stores, converted without loss (the frame
    itself when nothing needs converting). Raises SinkError naming `uri` and the column."""
    names = frame.columns
    clash = _case_clash(names)
    if clash is not None:
        raise SinkError(f"{uri}: columns {clash[0]!r} and {clash[1]!r} {_CASE}")
    changes: list[pl.Expr] = []
    for name, dtype in zip(names, frame.dtypes, strict=True):
        if type(dtype) in _AS_IS:  # most columns: no cache look-up, no comparison
            continue
        try:
            target = _stored(dtype)
        except _Refused as exc:
            raise SinkError(f"{uri}: column {name!r} {exc}") from None
        if target == dtype:
            continue
        why = _loss(frame.get_column(name), name) if _lossy(dtype) else None
        if why is not None:
            raise SinkError(f"{uri}: {why}")
        changes.append(_converted(pl.col(name), dtype, target).alias(name))
    return frame.with_columns(changes) if changes else frame


def _case_clash(names: Iterable[str]) -> tuple[str, str] | None:
    """The first two of `names` that Delta takes for one (equal but for case)."""
    if isinstance(names, list) and len({n.lower() for n in names}) == len(names):
        return None
    seen: dict[str, str] = {}
    for name in names:
        other = seen.setdefault(name.lower(), name)
        if other != name:
            return other, name
    return None


@functools.lru_cache(maxsize=1024)
def _stored(dtype: DType) -> DType:
    """The type Delta stores `dtype` as (`dtype` itself when it can), or _Refused."""
    base = dtype.base_type()
    if isinstance(dtype, pl.Datetime):
        return pl.Datetime("us", "UTC" if dtype.time_zone else None)
    if base in _DIRECT:
        return _DIRECT[base]
    if isinstance(dtype, pl.List | pl.Array):
        return pl.List(_stored(dtype.inner))
    if isinstance(dtype, pl.Struct):
        clash = _case_clash(f.name for f in dtype.fields)
        if clash is not None:
            raise _Refused(f"has fields {clash[0]!r} and {clash[1]!r}, which {_CASE}")
        return pl.Struct([pl.Field(f.name, _stored(f.dtype)) for f in dtype.fields])
    if isinstance(dtype, pl.Map):
        stored = pl.Map(_stored(dtype.key), _stored(dtype.value))
        if stored != dtype and _has(dtype, pl.Time):
            raise _Refused("holds times inside a map, which DreamBolt cannot convert for Delta")
        return stored
    if base in _AS_IS:
        return dtype
    raise _Refused(f"has type {dtype}, which Delta Lake cannot store")


def _children(dtype: DType) -> list[DType]:
    if isinstance(dtype, pl.List | pl.Array):
        return [dtype.inner]
    if isinstance(dtype, pl.Struct):
        return [f.dtype for f in dtype.fields]
    if isinstance(dtype, pl.Map):
        return [dtype.key, dtype.value]
    return []


def _has(dtype: DType, kind: type[pl.DataType]) -> bool:
    return isinstance(dtype, kind) or any(_has(d, kind) for d in _children(dtype))


def _lossy_leaf(dtype: DType) -> bool:
    if isinstance(dtype, pl.Datetime | pl.Duration):
        return dtype.time_unit != "us"
    return isinstance(dtype, pl.Int128 | pl.UInt128)


@functools.lru_cache(maxsize=1024)
def _lossy(dtype: DType) -> bool:
    """Whether a value of `dtype` could lose something on its way to the stored type."""
    return _lossy_leaf(dtype) or any(_lossy(d) for d in _children(dtype))


def _loss(series: pl.Series, path: str) -> str | None:
    """Why the first value in `series` that would not survive storing does not (None: all do)."""
    dtype = series.dtype
    if isinstance(dtype, pl.Struct):
        lossy = (f for f in dtype.fields if _lossy(f.dtype))
        found = (_loss(series.struct.field(f.name), f"{path}.{f.name}") for f in lossy)
        return next((why for why in found if why is not None), None)
    if isinstance(dtype, pl.List | pl.Array):
        return _loss(series.explode(), f"{path}[]")
    if isinstance(dtype, pl.Map):
        return _loss(series.map.entries().explode(), path)
    return _leaf_loss(series, path) if _lossy_leaf(dtype) else None


def _leaf_loss(series: pl.Series, path: str) -> str | None:
    dtype, raw = series.dtype, series.to_physical()
    if isinstance(dtype, pl.Datetime | pl.Duration) and dtype.time_unit == "ns":
        bad = series.filter(raw % 1000 != 0)
        if bad.is_empty():
            return None
        stamp = isinstance(dtype, pl.Datetime)
        what = "timestamps to the microsecond" if stamp else "durations as microseconds"
        shown = bad.cast(pl.String)[0] if stamp else f"{bad.to_physical()[0]}ns"
        return f"Delta stores {what}; value {shown} in column {path!r} has nanoseconds"
    if isinstance(dtype, pl.Datetime | pl.Duration):  # more ms than µs can count
        bad = raw.filter((raw > _MS_LIMIT) | (raw < -_MS_LIMIT))
        why = "is past the range of Delta's microseconds"
        return None if bad.is_empty() else f"value {bad[0]}ms in column {path!r} {why}"
    over = raw > _DIGITS38  # (not abs(): the least Int128 is its own abs())
    bad = raw.filter(over | (raw < -_DIGITS38) if dtype.is_signed_integer() else over)
    why = "has more than 38 digits (Delta: decimal(38, 0))"
    return None if bad.is_empty() else f"value {bad[0]} in column {path!r} {why}"


def _converted(expr: pl.Expr, dtype: DType, target: DType) -> pl.Expr:
    """`expr` of `dtype` as `target` (checked lossless already)."""
    if dtype == target:
        return expr
    if not _has(dtype, pl.Time):
        steps = _micro_durations(dtype)  # a cast to Int64 counts the duration's own unit
        return (expr if steps == dtype else expr.cast(steps)).cast(target)
    if isinstance(dtype, pl.Time):
        return _iso_time(expr)
    return _rebuilt(expr, dtype, target, _converted)


@functools.lru_cache(maxsize=256)
def _micro_durations(dtype: DType) -> DType:
    if isinstance(dtype, pl.Duration):
        return pl.Duration("us")
    if isinstance(dtype, pl.Struct):
        return pl.Struct([pl.Field(f.name, _micro_durations(f.dtype)) for f in dtype.fields])
    kids = [_micro_durations(d) for d in _children(dtype)]
    return pl.List(kids[0]) if len(kids) == 1 else pl.Map(*kids) if kids else dtype


def _iso_time(expr: pl.Expr) -> pl.Expr:
    nanos = expr.cast(pl.Int64)
    return (
        pl.when(nanos % 1_000_000_000 == 0)
        .then(expr.dt.strftime("%H:%M:%S"))
        .when(nanos % 1000 == 0)
        .then(expr.dt.strftime("%H:%M:%S%.6f"))
        .otherwise(expr.dt.strftime("%H:%M:%S%.9f"))
    )


_Leaf = Callable[[pl.Expr, DType, DType], pl.Expr]


def _rebuilt(expr: pl.Expr, dtype: DType, target: DType, leaf: _Leaf) -> pl.Expr:
    """`expr` rebuilt field by field and element by element as `target`, a type of the same
    shape (fields in the same order, maybe named otherwise); `leaf` converts the rest."""
    if isinstance(dtype, pl.Struct) and isinstance(target, pl.Struct):
        fields = [
            leaf(expr.struct.field(a.name), a.dtype, b.dtype).alias(b.name)
            for a, b in zip(dtype.fields, target.fields, strict=True)
        ]
        return pl.when(expr.is_null()).then(None).otherwise(pl.struct(fields))
    if isinstance(dtype, pl.List | pl.Array) and isinstance(target, pl.List):
        items = expr.arr.to_list() if isinstance(dtype, pl.Array) else expr
        return items.list.eval(leaf(pl.element(), dtype.inner, target.inner))
    raise _Refused(f"has type {dtype}, which DreamBolt cannot convert to {target}")


# --- fitting to an existing table ------------------------------------------------------------


def arrow_schema(delta_schema: object) -> pa.Schema:
    """A delta-rs schema (`DeltaTable.schema()`, or its `to_arrow()`: an arro3 schema) as a
    pyarrow schema, through the Arrow PyCapsule interface."""
    to_arrow = getattr(delta_schema, "to_arrow", None)
    return pa.schema(to_arrow() if callable(to_arrow) else delta_schema)


_Types = dict[str, tuple[str, pl.DataType]]
_TABLES: dict[int, tuple[pa.Schema, _Types]] = {}  # by id: hashing a pa.Schema costs ~70 µs


def _table_types(table: pa.Schema) -> _Types:
    """Lower-cased column name -> (the table's spelling, polars type), as polars reads them."""
    known = _TABLES.get(id(table))
    if known is not None and known[0] is table:
        return known[1]
    schema = pl.DataFrame(table.empty_table()).schema
    types = {name.lower(): (name, dtype) for name, dtype in schema.items()}
    if len(_TABLES) >= 32:
        _TABLES.clear()
    _TABLES[id(table)] = (table, types)
    return types


def fit_to_table(
    frame: pl.DataFrame, table: pa.Schema | None, uri: str, table_name: str
) -> pl.DataFrame:
    """`frame` (storable) shaped to be appended to a table of schema `table` (None: none yet)
    with `schema_mode="merge"`: names spelt as the table spells them (whatever their case),
    an all-null column in the table's type, and other types converted to the table's when
    every value survives the conversion back; else SinkError. New columns are kept; table
    columns of type void keep the frame's type (`void_columns`); missing ones are left out."""
    if table is None:
        return frame
    types = _table_types(table)
    renames: dict[str, str] = {}
    fitted: list[pl.Series] = []
    for name, dtype in zip(frame.columns, frame.dtypes, strict=True):
        spelt, wanted = types.get(name.lower(), (name, dtype))  # a new column: as it is
        if spelt != name:
            renames[name] = spelt
        if dtype != wanted and not isinstance(wanted, pl.Null):
            fitted.append(_fit_column(frame.get_column(name), wanted, uri, table_name))
    if fitted:
        frame = frame.with_columns(fitted)
    return frame.rename(renames) if renames else frame


def void_columns(frame: pl.DataFrame, table: pa.Schema) -> list[str]:
    """The table's columns of type void (Null) to which `frame` brings a real type."""
    kinds = {n.lower(): d for n, d in zip(frame.columns, frame.dtypes, strict=True)}
    void = [f.name for f in table if pa.types.is_null(f.type)]
    return [n for n in void if not isinstance(kinds.get(n.lower(), pl.Null()), pl.Null)]


def _fit_column(series: pl.Series, wanted: DType, uri: str, table_name: str) -> pl.Series:
    dtype = series.dtype

    def refused(how: str) -> SinkError:
        return SinkError(
            f"{uri}: column {series.name!r} is {_delta_name(dtype)} in this file but "
            f"{_delta_name(wanted)} in table {table_name!r}, and {how}; {_ADVICE}"
        )

    if isinstance(dtype, pl.Null):
        return series.cast(wanted)
    try:
        target = _fitted(dtype, wanted)
        if target == dtype:
            return series
        there = _cast(series, dtype, target)
        if there.dtype != target:
            raise _Refused("polars made something else of it")
        back = _cast(there, target, dtype)  # (a Null in a nested type stays what it became)
        lost = back.ne_missing(series if back.dtype == dtype else _cast(series, dtype, back.dtype))
    except (_Refused, pl.exceptions.PolarsError):
        raise refused("it does not convert") from None
    if lost.any():
        value = series.filter(lost).to_list()[0]
        raise refused(f"a value ({value!r}) does not convert without loss")
    return there


def _kind(dtype: DType) -> str:
    return "number" if dtype.is_numeric() else dtype.base_type().__name__.lower()


def _convertible(have: str, want: str) -> bool:
    """Whether a value of kind `have` may be converted to `want`, if it survives the trip."""
    if have == want:
        return True
    if want == "string":
        return have in ("number", "boolean")
    if have == "string":
        return want in ("number", "binary")
    return {have, want} == {"date", "datetime"}


def _fitted(dtype: DType, wanted: DType) -> DType:
    """The type of the same shape as `dtype` that goes into a column of type `wanted`: struct
    fields as the table spells them (new ones kept), leaves in the table's types."""
    if dtype == wanted or isinstance(wanted, pl.Null):
        return dtype
    if isinstance(dtype, pl.Null):
        return wanted
    if isinstance(dtype, pl.Struct) and isinstance(wanted, pl.Struct):
        theirs = {f.name.lower(): f for f in wanted.fields}
        pairs = [(f, theirs.get(f.name.lower(), f)) for f in dtype.fields]  # a new one: itself
        return pl.Struct([pl.Field(t.name, _fitted(f.dtype, t.dtype)) for f, t in pairs])
    if isinstance(dtype, pl.List) and isinstance(wanted, pl.List):
        return pl.List(_fitted(dtype.inner, wanted.inner))
    if isinstance(dtype, pl.Map) and isinstance(wanted, pl.Map):
        fitted = pl.Map(_fitted(dtype.key, wanted.key), _fitted(dtype.value, wanted.value))
        if _names(fitted) != _names(dtype):
            raise _Refused("struct fields inside a map spelt otherwise")
        return fitted
    if dtype.is_nested() or wanted.is_nested() or not _convertible(_kind(dtype), _kind(wanted)):
        raise _Refused("no conversion")
    return wanted


def _names(dtype: DType) -> list[str]:
    """The struct field names in `dtype`, depth first."""
    own = [f.name for f in dtype.fields] if isinstance(dtype, pl.Struct) else []
    return own + [n for d in _children(dtype) for n in _names(d)]


def _cast(series: pl.Series, dtype: DType, target: DType) -> pl.Series:
    """`series` as `target`, a type of the same shape; a value that does not convert is null.
    Polars casts structs by field name, so fields spelt otherwise are rebuilt by position."""
    converted = _renamed(pl.col(series.name), dtype, target).alias(series.name)
    return series.to_frame().select(converted).to_series()


def _renamed(expr: pl.Expr, dtype: DType, target: DType) -> pl.Expr:
    if _names(dtype) == _names(target):
        return expr.cast(target, strict=False)
    return _rebuilt(expr, dtype, target, _renamed)


def _delta_name(dtype: DType) -> str:
    """`dtype` as Delta names the type it is stored as, for messages."""
    if isinstance(dtype, pl.Decimal):
        return f"decimal({dtype.precision},{dtype.scale})"
    if isinstance(dtype, pl.Datetime):
        return "timestamp" if dtype.time_zone else "timestamp_ntz"
    if isinstance(dtype, pl.List):
        return f"array<{_delta_name(dtype.inner)}>"
    if isinstance(dtype, pl.Map):
        return f"map<{_delta_name(dtype.key)},{_delta_name(dtype.value)}>"
    if isinstance(dtype, pl.Struct):
        inner = ",".join(f"{f.name}:{_delta_name(f.dtype)}" for f in dtype.fields)
        return f"struct<{inner}>"
    return _DELTA_NAMES.get(dtype.base_type(), str(dtype))
