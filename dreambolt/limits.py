"""Limits on what one file may make the parse stage do, and the checks that keep it safe.

`ParseLimits` holds the limits; the checks raise `Refused`, which `formats` turns into a
`FormatError` naming the file. Each message says which limit was passed, its value, and how to
raise it. Checks run before polars sees the bytes where that is cheap (a record's length, a CSV
header's columns, how deep JSON text nests: polars takes time cubic in that depth), and on the
parsed schema (columns, nesting, names) so that every frame handed on converts to Arrow. Also
here: cutting text into blocks of whole records, and the type rules that keep values intact when
a later block brings other types (`merged`) or small CSVs are parsed together (`faithful`).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, fields

import numpy as np
import polars as pl
import pyarrow as pa
from polars.datatypes import DataTypeClass

__all__ = [
    "ARROW_MAX_NESTING", "DEFAULT_LIMITS", "LineGuard", "ParseLimits", "Refused", "Unreadable",
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

    def __init__(self, limits: ParseLimits, *, quoted: bool) -> None:
        self.limits, self.quoted = limits, quoted
        self.run = 0  # bytes of the line still open

    def feed(self, piece: bytes) -> None:
        limit = self.limits.max_record_bytes
        first = piece.find(b"\n")
        if first < 0:
            self.run += len(piece)
        else:
            last = piece.rfind(b"\n")
            if self.run + first > limit or _gap_over(piece, first, last, limit):
                raise too_long(self.limits, quoted=self.quoted)
            self.run = len(piece) - last - 1
        if self.run > limit:
            raise too_long(self.limits, quoted=self.quoted)


def _gap_over(data: bytes, start: int, end: int, limit: int) -> bool:
    """Tell whether two newlines at or between `start` and `end` are over `limit` bytes apart.

    A gap that long holds a whole aligned window of `step` bytes, so only windows without a
    newline are looked at: a few `find` calls per `limit` bytes.
    """
    step = (limit + 2) // 2
    position = (start // step + 1) * step
    while position + step <= end:
        if data.find(b"\n", position, position + step) >= 0:
            position += step
            continue
        before = data.rfind(b"\n", start, position)
        after = data.find(b"\n", position + step, end + 1)
        if after - before - 1 > limit:
            return True
        position = (after // step + 1) * step
    return False


# --- CSV headers -------------------------------------------------------------------------------


def check_csv_header(data: bytes, separator: str, limits: ParseLimits) -> None:
    """Refuse a CSV/TSV whose first line holds NUL bytes, is not UTF-8, or has too many columns
    (NUL would reach column names, which Arrow cannot carry; polars replaces bytes that are not
    UTF-8 in names, so names would change silently)."""
    end = data.find(b"\n", 0, limits.max_record_bytes + 1)
    header = data[: end if end >= 0 else limits.max_record_bytes + 1]
    if b"\x00" in header:
        raise Unreadable("its header (first line) holds a NUL byte: is it really text?")
    try:
        text = header.decode()
    except UnicodeDecodeError as exc:
        raise Unreadable(
            f"its header (first line) is not UTF-8 text ({exc.reason} at byte {exc.start:,}): "
            "convert the file to UTF-8, e.g. with iconv -f LATIN1 -t UTF-8"
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
_PLAIN = frozenset({
    pl.Int8, pl.Int16, pl.Int32, pl.Int64, pl.UInt8, pl.UInt16, pl.UInt32, pl.UInt64,
    pl.Float32, pl.Float64, pl.Decimal, pl.String, pl.Boolean, pl.Null, pl.Binary, pl.Date,
    pl.Datetime, pl.Time, pl.Duration,
})


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


# --- JSON text ---------------------------------------------------------------------------------

_CHUNK = 4 * 2**20
_NOT_BACKSLASH = re.compile(rb"[^\\]")


def json_too_deep(data: bytes, limit: int, *, lines: bool) -> int | None:
    """The byte offset where JSON text first nests more than `limit` levels deep, else None.

    Brackets inside strings do not count; with `lines`, each line is a document (NDJSON). Done
    with numpy over chunks of `_CHUNK` bytes (never cut after a backslash), carrying the depth
    and whether a string is open from one chunk to the next.
    """
    if lines:  # a line cannot nest deeper than it has opening brackets
        openers = data.translate(None, _NOT_OPENERS)
        if max(map(len, openers.split(b"\n"))) <= limit:
            return None
    elif data.count(b"[") + data.count(b"{") <= limit:
        return None
    depth, in_string, start = 0, 0, 0
    while start < len(data):
        end = min(start + _CHUNK, len(data))
        if end < len(data) and data[end - 1] == 0x5C:
            match = _NOT_BACKSLASH.search(data, end)
            end = match.start() + 1 if match else len(data)
        found, depth, in_string = _scan(data[start:end], depth, in_string, limit, lines)
        if found >= 0:
            return start + found
        start = end
    return None


_NOT_OPENERS = bytes(b for b in range(256) if b not in b"[{\n")


def _scan(
    chunk: bytes, depth: int, in_string: int, limit: int, lines: bool
) -> tuple[int, int, int]:
    # Escapes first: \\ and \" (left to right, as JSON reads them) become two plain bytes.
    if b"\\" in chunk:
        chunk = chunk.replace(b"\\\\", b"__").replace(b'\\"', b"__")
    plain = np.frombuffer(chunk, np.uint8)
    quotes = np.flatnonzero(plain == 0x22)
    folded = plain | 0x20  # [ ] become { }
    brackets = np.flatnonzero((folded == 0x7B) | (folded == 0x7D))
    newlines = np.flatnonzero(plain == 0x0A) if lines else np.zeros(0, np.int64)
    if newlines.size:  # the state after the last newline: a fresh document
        after = quotes.size - np.searchsorted(quotes, newlines[-1])
        end_string, end_depth = int(after % 2), 0
    else:
        end_string, end_depth = int((in_string + quotes.size) % 2), depth
    if not brackets.size:
        return -1, end_depth, end_string
    before = np.searchsorted(quotes, brackets)  # quotes before each bracket
    line = np.searchsorted(newlines, brackets)  # newlines before it: 0 is the carried document
    first = line == 0
    if newlines.size:
        line_quotes = np.searchsorted(quotes, newlines)
        before = before - np.where(first, 0, line_quotes[np.maximum(line - 1, 0)])
    inside = (before + np.where(first, in_string, 0)) % 2 == 1
    step = np.where(folded[brackets] == 0x7B, 1, -1)
    step[inside] = 0
    levels = np.cumsum(step)
    if newlines.size:  # count from the start of each line
        starts = np.flatnonzero(np.diff(line, prepend=-1))
        group = np.zeros(brackets.size, np.int64)
        group[starts] = 1
        levels = levels - np.where(starts > 0, levels[starts - 1], 0)[np.cumsum(group) - 1]
    levels = levels + np.where(first, depth, 0)
    over = np.flatnonzero(levels > limit)
    if over.size:
        return int(brackets[over[0]]), depth, in_string
    if not newlines.size or newlines[-1] < brackets[-1]:
        end_depth = int(levels[-1])
    return -1, end_depth, end_string


# --- records and bounded joins -----------------------------------------------------------------


def record_blocks(
    pieces: Iterable[bytes], *, quoted: bool, limits: ParseLimits, block_bytes: int,
    first_records: int,
) -> Iterator[bytes]:
    """Regroup pieces into blocks of about `block_bytes`, each ending on a record boundary.

    The first is stretched to hold `first_records` records (so inference sees what `read_bytes`
    sees). A record over `limits.max_record_bytes` is refused as soon as that is clear.
    """
    pending: list[bytes] = []
    size = newlines = 0
    carry, first = b"", True
    guard = LineGuard(limits, quoted=quoted)
    for piece in pieces:
        guard.feed(piece)
        pending.append(piece)
        size += len(piece)
        newlines += piece.count(b"\n") if first else 0
        if size < block_bytes or (
            first and newlines <= first_records and size < limits.max_record_bytes
        ):
            continue
        scanned, buf = len(carry), b"".join([carry, *pending])
        pending, size = [], 0
        cut = _record_end(buf, scanned, quoted=quoted)
        if cut:
            first = False
            yield buf[:cut]
            carry = buf[cut:]
        elif len(buf) <= limits.max_record_bytes:
            carry = buf
        else:
            raise too_long(limits, quoted=quoted)
    rest = b"".join([carry, *pending])
    if rest or first:
        yield rest


def _record_end(buf: bytes, scanned: int, *, quoted: bool) -> int:
    """Return the offset past the last record boundary in `buf` after `scanned`, else 0.

    `buf` starts on a boundary; in CSV a newline after an even number of quotes ends a record.
    """
    if not quoted:
        return buf.rfind(b"\n", scanned) + 1
    quotes, end, after = buf.count(b'"'), len(buf), 0
    while (newline := buf.rfind(b"\n", scanned, end)) >= 0:
        after += buf.count(b'"', newline, end)
        if (quotes - after) % 2 == 0:
            return newline + 1
        end = newline
    return 0


def csv_rows(body: bytes) -> int:
    """The rows polars will make of a quote-free CSV body ending in a newline (blank lines are
    skipped). Never more than polars makes, so equal totals mean equal counts file by file."""
    if b"\n\n" not in body and b"\n\r\n" not in body and not body.startswith((b"\n", b"\r\n")):
        return body.count(b"\n")  # no blank line: one row per line, counted in C
    return sum(1 for line in body.split(b"\n") if line.strip())


def joined(pieces: Iterable[bytes], limits: ParseLimits, guard: LineGuard | None) -> bytes:
    """Join pieces, refusing past `limits.max_bytes` and (with a guard) a line too long."""
    out, size = io.BytesIO(), 0
    for piece in pieces:
        size += len(piece)
        if limits.max_bytes is not None and size > limits.max_bytes:
            raise too_big(limits)
        if guard is not None:
            guard.feed(piece)
        out.write(piece)
    return out.getvalue()


# --- types: what a later block may change, what a joint parse must keep -------------------------


def later_block(
    block: bytes, kind: str, schema: pl.Schema, limits: ParseLimits
) -> pl.DataFrame:
    """Parse a block after the first: with the schema so far, widened or grown where its values
    need it, without loss (else an error saying which column)."""
    separator = "\t" if kind == "tsv" else ","
    decimal = pl.Decimal(38, 0)  # Int128 as handed on (`arrow_ready`): read it as polars infers
    schema = pl.Schema({c: replaced(d, decimal, pl.Int128) for c, d in schema.items()})
    if kind != "ndjson":
        try:
            return pl.read_csv(block, separator=separator, has_header=False, schema=schema,
                               raise_if_empty=False)
        except pl.exceptions.ComputeError:  # a value that does not fit: see what the block holds
            found = pl.read_csv(block, separator=separator, has_header=False, raise_if_empty=False,
                                new_columns=list(schema), infer_schema_length=None)
    else:
        if (at := json_too_deep(block, nesting(limits) + 1, lines=True)) is not None:
            raise too_deep(f"the JSON at byte {at:,} of this part", None, limits)
        found = pl.read_ndjson(block, infer_schema_length=None)
        if found.schema == schema:
            return found
    target: dict[str, DType] = dict(schema)
    for column, dtype in found.schema.items():
        wider = merged(target[column], dtype, json=kind == "ndjson") if column in target else dtype
        if wider is None:
            raise ValueError(f"column {column!r} holds {dtype} values here, {target[column]} "
                             "before, and no one type holds both")
        target[column] = wider
    if kind == "ndjson" and all(target[c] == found.schema[c] for c in found.columns):
        missing = (pl.lit(None, d).alias(c) for c, d in target.items() if c not in found.schema)
        return found.with_columns(missing).select(list(target))
    frame = (pl.read_ndjson(block, schema=target) if kind == "ndjson" else
             pl.read_csv(block, separator=separator, has_header=False, schema=target,
                         raise_if_empty=False))
    for column, dtype in found.schema.items():  # integers read as Float64 must stay exact
        if target[column] == pl.Float64 and dtype.is_integer():
            exact = frame[column].cast(dtype, strict=False).eq_missing(found[column]).all()
            if not exact:
                raise ValueError(f"column {column!r} holds integers here that Float64, the "
                                 "type of its earlier values, cannot hold exactly")
    return frame


def merged(old: DType, new: DType, *, json: bool) -> DType | None:
    """The type of a column of `old` values that gets `new` ones too, as polars infers it from
    both at once (for CSV text, or JSON); None if there is none."""
    if old == new or new == pl.Null:
        return old
    if old == pl.Null:
        return new
    if _numeric(old) and _numeric(new):
        return pl.Float64() if pl.Float64 in (old, new) else pl.Int128()
    if not json or pl.String in (old, new):
        return pl.String()  # CSV keeps the text as written; JSON of mixed kinds is read as text
    if isinstance(old, pl.List) and isinstance(new, pl.List):
        inner = merged(old.inner, new.inner, json=json)
        return pl.List(inner) if inner is not None else None
    if isinstance(old, pl.Struct) and isinstance(new, pl.Struct):
        fields = {field.name: field.dtype for field in old.fields}
        for field in new.fields:
            both = merged(fields.get(field.name, pl.Null()), field.dtype, json=json)
            if both is None:
                return None
            fields[field.name] = both
        return pl.Struct(fields)
    return None


def _numeric(dtype: DType) -> bool:
    return dtype.is_integer() or dtype == pl.Float64


# polars types a CSV column by the kinds of its values (these are its own regular expressions):
# one kind gives its type, integers with floats Float64, anything else String (so does no value).
_BOOLEAN, _INTEGER = r"^(?i:true|false)$", r"^-?(\d+)$"
_FLOAT = r"^[-+]?((\d*\.\d+)([eE][-+]?\d+)?|inf|NaN|(\d+)[eE][-+]?\d+|\d+\.)$"


def faithful(schema: pl.Schema, text: pl.DataFrame, counts: list[int]) -> list[bool]:
    """For each file of a joint CSV parse (`counts` rows each, `text` its values as written),
    whether inference over that file alone gives every column its joint type. Errs to False."""
    tests = []
    for name, dtype in schema.items():
        value = pl.col(name)
        if dtype in (pl.Int64, pl.Boolean):  # every value is of that kind: one value is enough
            tests.append(value.is_not_null().any())
        elif dtype == pl.Float64:  # needs a float, and no integer big enough for Int128
            small = value.str.contains(_FLOAT) | value.str.contains(r"^-?\d{1,18}$")
            tests.append(value.str.contains(_FLOAT).any() & (value.is_null() | small).all())
        elif dtype == pl.String:  # needs no value, or one of none of the other kinds
            kind = value.str.contains(_BOOLEAN) | value.str.contains(_INTEGER)
            kind = kind | value.str.contains(_FLOAT)
            tests.append(value.is_null().all() | (value.is_not_null() & ~kind).any())
        else:
            tests.append(pl.lit(False))
    file = "file"
    while file in schema:
        file += "_"
    numbers = pl.Series(file, np.repeat(np.arange(len(counts)), counts))
    verdict = text.with_columns(numbers).group_by(file).agg(pl.all_horizontal(tests).alias("ok"))
    good = {int(i) for i, ok in verdict.iter_rows() if ok}
    return [i in good for i in range(len(counts))]  # a file without rows is parsed alone
