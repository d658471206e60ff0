"""ParseLimits, the limits on what one file may make the parse stage do, and their checks.

`ParseLimits` holds the limits; the checks raise `Refused`, which `formats` turns into a
`FormatError` naming the file. Each message says which limit was passed, its value, and how to
raise it. Checks run before polars sees the bytes where that is cheap (a record's length, a CSV
header's columns; how deep JSON text nests is measured by `jsondepth`), and on the parsed schema
(columns, nesting, names) so that every frame handed on converts to Arrow. Cutting text into
blocks of records is in `blocks`; the type rules across blocks and joint parses in `widening`.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass, fields

import polars as pl
import pyarrow as pa
from polars.datatypes import DataTypeClass

__all__ = [
    "ARROW_MAX_NESTING",
    "DEFAULT_LIMITS",
    "LineGuard",
    "ParseLimits",
    "Refused",
    "Unreadable",
]

DType = pl.DataType | DataTypeClass
ARROW_MAX_NESTING = 62  # pyarrow refuses a schema nested deeper ("Recursion level exceeded")


@dataclass(frozen=True)
class ParseLimits:
    """How much one file may ask of the parser; over a limit the file fails with `FormatError`.

    `max_record_bytes`: one CSV/TSV/NDJSON record (line); `max_columns`: columns of a file;
    `max_nesting`: lists/structs within one another in a column (Arrow takes at most 62);
    `max_bytes`: decompressed bytes `read_bytes` may hold at once (None: no limit).
    """

    max_record_bytes: int = 64 * 2**20
    max_columns: int = 10_000
    max_nesting: int = 64
    max_bytes: int | None = None

    def __post_init__(self) -> None:
        for field in fields(self):
            value = getattr(self, field.name)
            if value is None and field.name == "max_bytes":
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{field.name} must be a positive integer, not {value!r}")


DEFAULT_LIMITS = ParseLimits()


class Refused(Exception):
    """A file passed a limit; the message says which and how to raise it, without the name."""


class Unreadable(ValueError):
    """The content is not what its format says, or cannot be handed on (as Arrow)."""


def too_long(limits: ParseLimits, *, quoted: bool) -> Refused:
    why = "an unbalanced quote character?" if quoted else "is it really NDJSON?"
    return Refused(
        f"a record (line) is longer than {limits.max_record_bytes:,} bytes, the limit ({why}); "
        "if the file is right, raise it with --max-line-size SIZE (Ingester(max_line_bytes=...))"
    )


def too_wide(count: int, limits: ParseLimits) -> Refused:
    return Refused(
        f"it has {count:,} columns, more than the limit of {limits.max_columns:,}; if that is "
        "right, raise it with --max-columns N (Ingester(max_columns=...))"
    )


def too_big(limits: ParseLimits) -> Refused:
    return Refused(
        f"it decompresses to more than {limits.max_bytes:,} bytes, the memory budget for a file "
        "parsed in memory (ParseLimits.max_bytes, which Ingester(memory_budget=...) sets): "
        "raise the budget if it is right"
    )


def too_deep(what: str, depth: int | None, limits: ParseLimits) -> Refused:
    levels = f"{depth} levels deep" if depth is not None else "deeper"
    if limits.max_nesting <= ARROW_MAX_NESTING:
        limit = (
            f"more than the limit of {limits.max_nesting} (ParseLimits(max_nesting=...); "
            f"Arrow takes at most {ARROW_MAX_NESTING})"
        )
    else:
        limit = f"more than the {ARROW_MAX_NESTING} levels Arrow (and so DuckDB) can take"
    return Refused(f"{what} nests {levels} (lists and structs within one another), {limit}")


def nesting(limits: ParseLimits) -> int:
    """The nesting a column may have: the limit, or what Arrow takes if that is less."""
    return min(limits.max_nesting, ARROW_MAX_NESTING)


# --- records -----------------------------------------------------------------------------------


class LineGuard:
    """Follow text piece by piece and refuse a line longer than the record limit."""

    def __init__(self, limits: ParseLimits, *, quoted: bool, eol: bytes = b"\n") -> None:
        self.limits, self.quoted, self.eol = limits, quoted, eol
        self.run = 0  # bytes of the line still open

    def feed(self, piece: bytes) -> None:
        limit = self.limits.max_record_bytes
        first = piece.find(self.eol)
        if first < 0:
            self.run += len(piece)
        else:
            last = piece.rfind(self.eol)
            if self.run + first > limit or _gap_over(piece, first, last, limit, self.eol):
                raise too_long(self.limits, quoted=self.quoted)
            self.run = len(piece) - last - 1
        if self.run > limit:
            raise too_long(self.limits, quoted=self.quoted)


def _gap_over(data: bytes, start: int, end: int, limit: int, eol: bytes = b"\n") -> bool:
    """Tell whether two newlines at or between `start` and `end` are over `limit` bytes apart.

    A gap that long holds a whole aligned window of `step` bytes, so only windows without a
    newline are looked at: a few `find` calls per `limit` bytes.
    """
    step = (limit + 2) // 2
    position = (start // step + 1) * step
    while position + step <= end:
        if data.find(eol, position, position + step) >= 0:
            position += step
            continue
        before = data.rfind(eol, start, position)
        after = data.find(eol, position + step, end + 1)
        if after - before - 1 > limit:
            return True
        position = (after // step + 1) * step
    return False


# --- CSV headers -------------------------------------------------------------------------------


def check_csv_header(data: bytes, separator: str, limits: ParseLimits) -> None:
    """Refuse a CSV/TSV whose first line holds NUL bytes, is not UTF-8, or has too many columns
    (NUL would reach column names, which Arrow cannot carry; polars replaces bytes that are not
    UTF-8 in names, so names would change silently)."""
    window = data[: limits.max_record_bytes + 1]
    ends = [at for at in (window.find(b"\n"), window.find(b"\r")) if at >= 0]  # \r: classic Mac
    header = window[: min(ends)] if ends else window
    if b"\x00" in header:
        raise Unreadable("its header (first line) holds a NUL byte: is it really text?")
    try:
        text = header.decode()
    except UnicodeDecodeError as exc:
        raise Unreadable(
            f"its header (first line) is not UTF-8 text ({exc.reason} at byte {exc.start:,}): "
            "give its encoding, e.g. --encoding latin-1 (CsvOptions(encoding=...)), or convert "
            "it, e.g. with iconv -f LATIN1 -t UTF-8"
        ) from None
    if text.count(separator) + 1 > limits.max_columns:  # an upper bound: quotes may hold some
        count = len(next(csv.reader([text.rstrip("\r")], delimiter=separator), []))
        if count > limits.max_columns:
            raise too_wide(count, limits)


def check_utf16(data: bytes) -> None:
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise Unreadable(
            "it starts with a UTF-16 byte order mark, and text must be UTF-8: convert it, e.g. "
            "with iconv -f UTF-16 -t UTF-8"
        )


# --- nesting and schemas -----------------------------------------------------------------------


def _walk(dtype: DType) -> Iterator[tuple[DType, int]]:
    """`dtype` and every type nested in it, with how deep (lists and structs) it sits."""
    stack: list[tuple[DType, int]] = [(dtype, 0)]
    while stack:
        current, level = stack.pop()
        yield current, level
        if isinstance(current, pl.List | pl.Array):
            stack.append((current.inner, level + 1))
        elif isinstance(current, pl.Struct):
            stack.extend((field.dtype, level + 1) for field in current.fields)


def arrow_depth(dtype: pa.DataType) -> int:
    deepest, stack = 0, [(dtype, 0)]
    while stack:
        current, level = stack.pop()
        deepest = max(deepest, level)
        children = current.num_fields if pa.types.is_nested(current) else 0
        stack.extend((current.field(i).type, level + 1) for i in range(children))
    return deepest


def check_arrow_schema(schema: pa.Schema, limits: ParseLimits) -> None:
    """Refuse a Parquet/IPC schema with too many columns or too deep, before reading data."""
    if len(schema) > limits.max_columns:
        raise too_wide(len(schema), limits)
    for field in schema:
        depth = arrow_depth(field.type)
        if depth > nesting(limits):
            raise too_deep(f"column {field.name!r}", depth, limits)


def arrow_ready(frame: pl.DataFrame) -> pl.DataFrame:
    """Polars infers Int128 for integers past Int64, which Arrow has no type for: make such
    columns Decimal(38, 0) (DuckDB's HUGEINT range but one digit), or String where a value has
    39 digits. Both keep every value."""
    wide = {n: d for n, d in frame.schema.items() if any(t == pl.Int128 for t, _ in _walk(d))}
    if not wide:
        return frame
    try:
        return frame.cast({n: replaced(d, pl.Int128, pl.Decimal(38, 0)) for n, d in wide.items()})
    except pl.exceptions.InvalidOperationError:
        return frame.cast({n: replaced(d, pl.Int128, pl.String) for n, d in wide.items()})


def replaced(dtype: DType, old: DType, new: DType) -> DType:
    """`dtype` with `old` replaced by `new` wherever it is, nested or not."""
    if dtype == old:
        return new
    if isinstance(dtype, pl.List):
        return pl.List(replaced(dtype.inner, old, new))
    if isinstance(dtype, pl.Array):
        return pl.Array(replaced(dtype.inner, old, new), dtype.shape)
    if isinstance(dtype, pl.Struct):
        return pl.Struct({f.name: replaced(f.dtype, old, new) for f in dtype.fields})
    return dtype


# Types that always convert to Arrow (a probe costs about 0.1 ms a frame, as much as parsing
# a small file); others (nested, or e.g. Int128) are converted to see.
_PLAIN = frozenset(
    {
        pl.Int8,
        pl.Int16,
        pl.Int32,
        pl.Int64,
        pl.UInt8,
        pl.UInt16,
        pl.UInt32,
        pl.UInt64,
        pl.Float32,
        pl.Float64,
        pl.Decimal,
        pl.String,
        pl.Boolean,
        pl.Null,
        pl.Binary,
        pl.Date,
        pl.Datetime,
        pl.Time,
        pl.Duration,
    }
)


def check_frame(frame: pl.DataFrame, limits: ParseLimits) -> None:
    """Refuse a parsed frame with too many columns, too deep, or that Arrow cannot take."""
    if frame.width > limits.max_columns:
        raise too_wide(frame.width, limits)
    for name, dtype in frame.schema.items():
        depth = max(level for _, level in _walk(dtype))
        if depth > nesting(limits):
            raise too_deep(f"column {name!r}", depth, limits)
        fields = [f.name for t, _ in _walk(dtype) if isinstance(t, pl.Struct) for f in t.fields]
        for label in (name, *fields):
            if "\x00" in label:
                raise Unreadable(
                    f"the name {label!r} holds a NUL byte, which Arrow and DuckDB cannot take"
                )
    if all(dtype.base_type() in _PLAIN for dtype in frame.schema.values()):
        return  # nothing the names do not cover can go wrong
    try:
        frame.clear().to_arrow()  # the schema as it will be handed on
    except BaseException as exc:  # a polars panic is a BaseException
        if isinstance(exc, KeyboardInterrupt | SystemExit | MemoryError):
            raise
        raise Unreadable(f"its columns cannot be handed on as Arrow: {exc}") from exc
