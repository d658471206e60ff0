"""Arrow data as polars frames: the types polars cannot hold converted or refused, by the file.

`pl.from_arrow` silently gets some Arrow types wrong and chokes on others, so a file's schema
is looked at once (`Fit`) and each batch converted before it becomes a frame:

- timestamp[s] and duration[s] become ms (polars' coarsest unit) by a checked cast: polars
  itself multiplies without a check (2**62 s came out as 0), so a value that milliseconds
  cannot hold (past some 292 million years) is refused, naming the column;
- a time zone polars does not know (a fixed offset such as "+05:30") becomes UTC: the instants
  are kept (DuckDB's TIMESTAMPTZ keeps instants, not zones);
- float16 becomes float32 (DuckDB has no half float); decimal256 becomes decimal128 up to 38
  digits (polars panics on decimal256), a string past that (DuckDB's DECIMAL stops at 38);
- a run-end encoded column is decoded; an extension type whose storage needs one of these
  conversions becomes its converted storage.

Intervals, unions, list views (pyarrow 26 casts them to lists wrongly) and run-end encoding
inside a nested column are refused, naming the column. Any other column type polars rejects is
found by converting an empty column of it, also refused by name. date64 becomes a ms timestamp
(polars' reading, every value kept); dictionaries become polars categoricals (or plain values).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeAlias

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from dreambolt.formats.arrowstrings import PLAIN_TYPES, strings
from dreambolt.formats.limits import Unreadable

__all__ = ["Fit", "to_frame"]

_Data: TypeAlias = "pa.RecordBatch | pa.Table"
_REFUSED: dict[str, Callable[[pa.DataType], bool]] = {
    "an interval": pa.types.is_interval,
    "a union": pa.types.is_union,
    "a list view": lambda t: pa.types.is_list_view(t) or pa.types.is_large_list_view(t),
    "run-end encoded inside a nested column": pa.types.is_run_end_encoded,
}


class Fit:
    """How to convert the batches of one schema into frames (worked out once per file), and
    the polars schema they come out with (`polars`).

    A string or binary column of the schema may come as a dictionary of such values (a
    Parquet column read as its dictionary: `arrowstrings`); it becomes the same plain polars
    column, never a Categorical."""

    def __init__(self, schema: pa.Schema) -> None:
        self.schema = schema
        self.decode = [i for i, f in enumerate(schema) if pa.types.is_run_end_encoded(f.type)]
        plain = [
            f.with_type(f.type.value_type) if i in self.decode else f for i, f in enumerate(schema)
        ]
        self.target = pa.schema(
            [f.with_type(_fitted_type(f)) for f in plain], metadata=schema.metadata
        )
        self.cast = [i for i, f in enumerate(plain) if f.type != self.target.field(i).type]
        self.polars = pl.Schema([(f.name, _polars_type(f)) for f in self.target])
        self.strings = [i for i, f in enumerate(schema) if f.type in PLAIN_TYPES]

    def fits(self, schema: pa.Schema) -> bool:
        """Whether data of `schema` is of this one, maybe with strings as dictionaries."""
        if schema.names != self.schema.names:
            return False
        return all(
            ours.nullable == theirs.nullable
            and (
                ours.type == theirs.type or (i in self.strings and _spelled(theirs.type, ours.type))
            )
            for i, (ours, theirs) in enumerate(zip(self.schema, schema, strict=True))
        )

    def frame(self, data: _Data) -> pl.DataFrame:
        """`data` (of this schema, strings maybe as dictionaries) converted and made a frame."""
        words = [i for i in self.strings if pa.types.is_dictionary(data.schema.field(i).type)]
        if words:
            return self._with_words(data, words)
        if self.decode or self.cast:
            data = self._converted(data)
        return to_frame(data)

    def _with_words(self, data: _Data, words: list[int]) -> pl.DataFrame:
        """The frame of `data` whose `words` columns are dictionaries of strings or bytes."""
        rest = [i for i in range(data.num_columns) if i not in words]
        if self.decode or self.cast:
            data = self._converted(data, keep=words)
        frame = to_frame(data.select(rest)) if rest else None
        series = dict(zip(rest, frame.get_columns() if frame is not None else [], strict=True))
        for i in words:
            series[i] = strings(data.column(i), self.schema.field(i).name)
        return pl.DataFrame([series[i] for i in range(data.num_columns)])

    def _converted(self, data: _Data, keep: list[int] | None = None) -> _Data:
        columns = list(data.columns)
        for i in self.decode:
            columns[i] = pc.run_end_decode(columns[i])
        for i in self.cast:
            try:
                columns[i] = columns[i].cast(self.target.field(i).type, safe=True)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                name = self.schema.field(i).name
                raise Unreadable(f"column {name!r} cannot be converted for polars: {exc}") from exc
        schema = self.target
        for i in keep or ():  # left as they came (dictionaries of what the schema says)
            schema = schema.set(i, schema.field(i).with_type(columns[i].type))
        kind = pa.Table if isinstance(data, pa.Table) else pa.RecordBatch
        converted: _Data = kind.from_arrays(columns, schema=schema)
        return converted


def _spelled(dictionary: pa.DataType, plain: pa.DataType) -> bool:
    """Whether `dictionary` is a dictionary of the kind of values `plain` is (text or bytes)."""
    if not pa.types.is_dictionary(dictionary):
        return False
    values = dictionary.value_type
    text = pa.types.is_string(plain) or pa.types.is_large_string(plain)
    if text:
        return bool(pa.types.is_string(values) or pa.types.is_large_string(values))
    return bool(pa.types.is_binary(values) or pa.types.is_large_binary(values))


def to_frame(data: _Data) -> pl.DataFrame:
    frame = pl.from_arrow(data)
    if not isinstance(frame, pl.DataFrame):
        raise TypeError(f"pyarrow gave {type(data).__name__}, not a table")
    return frame


def _fitted_type(field: pa.Field) -> pa.DataType:
    """The type of `field` as polars can hold it, or `Unreadable` naming the column."""
    try:
        return _fitted(field.type)
    except _Refusal as refusal:
        raise Unreadable(
            f"column {field.name!r} is {refusal.args[0]} ({field.type}), which polars (and so "
            "DreamBolt) cannot take: convert that column before loading the file"
        ) from None


class _Refusal(Exception):
    """A type polars cannot hold (the argument says what it is)."""


@functools.lru_cache(maxsize=1024)
def _fitted(dtype: pa.DataType) -> pa.DataType:
    """`dtype` as polars can hold it (see the module docstring), or `_Refusal`."""
    for what, test in _REFUSED.items():
        if test(dtype):
            raise _Refusal(what)
    for test, fit in _FITS:
        if test(dtype):
            return fit(dtype)
    return dtype


def _fitted_timestamp(dtype: pa.TimestampType) -> pa.DataType:
    zone = dtype.tz if dtype.tz is None or _zone_known(dtype.tz) else "UTC"
    return pa.timestamp("ms" if dtype.unit == "s" else dtype.unit, zone)


def _fitted_extension(dtype: pa.BaseExtensionType) -> pa.DataType:
    storage = _fitted(dtype.storage_type)
    return dtype if storage == dtype.storage_type else storage


# (test, conversion) in order: the first test that holds gives the type polars can hold.
_FITS: tuple[tuple[Callable[[Any], bool], Callable[[Any], pa.DataType]], ...] = (
    (pa.types.is_timestamp, _fitted_timestamp),
    (lambda t: pa.types.is_duration(t) and t.unit == "s", lambda t: pa.duration("ms")),
    (pa.types.is_float16, lambda t: pa.float32()),
    (
        pa.types.is_decimal256,
        lambda t: pa.decimal128(t.precision, t.scale) if t.precision <= 38 else pa.string(),
    ),
    (lambda t: isinstance(t, pa.BaseExtensionType), _fitted_extension),
    (
        pa.types.is_dictionary,
        lambda t: pa.dictionary(t.index_type, _fitted(t.value_type), t.ordered),
    ),
    (
        pa.types.is_map,
        lambda t: pa.map_(_child(t.key_field), _child(t.item_field), t.keys_sorted),
    ),
    (pa.types.is_fixed_size_list, lambda t: pa.list_(_child(t.value_field), t.list_size)),
    (pa.types.is_list, lambda t: pa.list_(_child(t.value_field))),
    (pa.types.is_large_list, lambda t: pa.large_list(_child(t.value_field))),
    (pa.types.is_struct, lambda t: pa.struct([_child(t.field(i)) for i in range(t.num_fields)])),
)


def _child(field: pa.Field) -> pa.Field:
    return field.with_type(_fitted(field.type))


@functools.lru_cache(maxsize=64)
def _zone_known(zone: str) -> bool:
    return not isinstance(_converted_type(pa.timestamp("us", zone)), BaseException)


def _polars_type(field: pa.Field) -> pl.DataType:
    """The polars type a column of `field`'s type becomes, or `Unreadable` naming it."""
    found = _converted_type(field.type)
    if not isinstance(found, BaseException):
        return found
    if "\ufffd" in str(field.type):  # pyarrow's stand-in for bytes that are not text
        raise Unreadable(
            f"column {field.name!r} holds a field name that is not valid text: is the file corrupt?"
        ) from found
    raise Unreadable(
        f"column {field.name!r} is of type {field.type}, which polars (and so DreamBolt) "
        f"cannot take ({type(found).__name__}: {str(found)[:200]})"
    ) from found


@functools.lru_cache(maxsize=1024)
def _converted_type(dtype: pa.DataType) -> pl.DataType | BaseException:
    """The polars type an empty column of `dtype` becomes, or what polars raised making it
    (worked out once per type: about 0.1 ms)."""
    try:
        return to_frame(pa.schema([("column", dtype)]).empty_table()).schema["column"]
    except BaseException as exc:  # a polars panic is a BaseException
        if isinstance(exc, KeyboardInterrupt | SystemExit | MemoryError):
            raise
        return exc.with_traceback(None)
