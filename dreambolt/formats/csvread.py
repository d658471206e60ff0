"""Reading CSV/TSV text with polars in the file's own dialect, named as DuckDB names columns.

`read_first` reads a whole file or its first block: it decides the dialect (`dialect.plain`, or
DuckDB's sniffer), reads with polars, and returns the dialect for the blocks after it
(`widening.later_block`). Types come from the first `infer_rows` rows, or from every row when
a later value misfits.
"""

from __future__ import annotations

import contextlib
import csv
import re
from typing import Any

import duckdb
import polars as pl

from dreambolt.formats import duckread
from dreambolt.formats.detect import CsvOptions
from dreambolt.formats.dialect import (
    Dialect,
    default_dialect,
    duckdb_names,
    header_in_doubt,
    plain,
    polars_options,
    sniff,
)
from dreambolt.formats.limits import Unreadable

__all__ = [
    "SNIFF_BYTES",
    "eol_of",
    "may_hold_blank_lines",
    "read_first",
    "read_polars",
    "sample_of",
    "without_blank_lines",
]

SNIFF_BYTES = 1 << 20  # of a file's start that DuckDB's sniffer reads
_SAMPLE_ROWS = 100  # rows whose types are tried on the whole text first (`read_polars`)


def read_first(
    raw: bytes, kind: str, options: CsvOptions, infer_rows: int | None
) -> tuple[pl.DataFrame, Dialect]:
    """Read CSV text (a whole file, or its first block of whole records) and say its dialect."""
    dialect = plain(raw, kind, options)
    failure: pl.exceptions.ComputeError | None = None
    if dialect is not None:
        try:
            frame = read_polars(raw, dialect, infer_rows)
        except pl.exceptions.ComputeError as exc:
            frame, failure = None, exc  # ragged, say: let the sniffer look
        if frame is not None and not header_in_doubt(frame, _header(raw, dialect) or []):
            return _named(_blanks_skipped(frame, raw, dialect, infer_rows), raw, dialect), dialect
    try:
        dialect = sniff(sample_of(raw, eol_of(raw[:SNIFF_BYTES])), kind, options)
    except duckdb.Error as exc:
        if failure is not None:
            raise failure from None  # polars' reason is about the file as it looked plain
        raise Unreadable(f"DuckDB's CSV sniffer cannot make sense of it: {_reason(exc)}") from None
    if dialect.names is not None and len(dialect.names) < 2 and mostly_delimited(raw, kind):
        # The sniffer gave up (one column) on lines that are plainly delimited but for a ragged
        # one: DuckDB would load each line as one text value; saying which line is better.
        read_polars(raw, default_dialect(kind, options), infer_rows)
    if dialect.escape is not None:
        return duckread.read_csv(raw, dialect), dialect
    frame = _blanks_skipped(read_polars(raw, dialect, infer_rows), raw, dialect, infer_rows)
    if dialect.names is not None and len(dialect.names) == frame.width:
        frame.columns = list(dialect.names)
    else:
        frame = _named(frame, raw, dialect)
    return frame, dialect


def _blanks_skipped(
    frame: pl.DataFrame, raw: bytes, dialect: Dialect, infer_rows: int | None
) -> pl.DataFrame:
    if not may_hold_blank_lines(frame) and not raw.startswith((b"\r", dialect.eol.encode())):
        return frame
    cleaned = without_blank_lines(raw, dialect, dialect.skip_rows)
    return frame if cleaned is raw else read_polars(cleaned, dialect, infer_rows)


def may_hold_blank_lines(frame: pl.DataFrame) -> bool:
    """Whether the frame polars read may hold rows made of blank lines: it has two or more
    columns and every one holds a null (each blank line is a row of nulls). Free to ask: Arrow
    keeps null counts. Only then is it worth scanning the text for blank lines."""
    return frame.width >= 2 and all(column.null_count() for column in frame.iter_columns())


def read_polars(raw: bytes, dialect: Dialect, infer_rows: int | None) -> pl.DataFrame:
    """Parse with polars, column types from the first `infer_rows` rows (None: all), or from
    every row where a later value misfits them.

    polars infers types row by row on one thread (10,000 rows of a 1 MiB file: 60 ms, where
    the parse itself takes 6 ms), so they are first inferred from `_SAMPLE_ROWS` rows and the
    whole text parsed strictly with them. That gives what the long inference gives whenever it
    succeeds: every value then fits those types, and inference picks the narrowest types that
    fit. A value that misfits, or a column with no value in the sample (typed String by
    polars), means the long inference after all."""
    options: dict[str, Any] = polars_options(dialect)
    if infer_rows is None or infer_rows > _SAMPLE_ROWS:
        with contextlib.suppress(pl.exceptions.ComputeError):
            sample = pl.read_csv(
                raw,
                n_rows=_SAMPLE_ROWS,
                infer_schema_length=_SAMPLE_ROWS,
                raise_if_empty=False,
                **options,
            )
            if sample.height and all(c.null_count() < sample.height for c in sample.iter_columns()):
                return pl.read_csv(raw, schema=sample.schema, raise_if_empty=False, **options)
    with contextlib.suppress(pl.exceptions.ComputeError):
        return pl.read_csv(raw, infer_schema_length=infer_rows, raise_if_empty=False, **options)
    return pl.read_csv(raw, infer_schema_length=None, raise_if_empty=False, **options)


def without_blank_lines(raw: bytes, dialect: Dialect, skip: int = 0) -> bytes:
    """`raw` without blank lines outside quoted values: DuckDB skips them in a file of two or
    more columns, where polars makes rows of nulls (a line of empty fields, like ``,``, stays a
    row). The first `skip` lines are left as they are. Returns `raw` itself when there is
    nothing to drop."""
    eol = dialect.eol.encode()
    if not (raw.startswith(eol) or eol + eol in raw or eol + b"\r" + eol in raw):
        return raw
    if skip:  # the lines to skip are counted as written: keep them as they are
        start = 0
        for _ in range(skip):
            start = raw.find(eol, start) + 1
            if start == 0:
                return raw
        rest = without_blank_lines(raw[start:], dialect)
        return raw if rest is raw[start:] else raw[:start] + rest
    quote = dialect.quote.encode() if dialect.quote else None
    kept: list[bytes] = []
    last = scanned = quotes = 0
    for match in re.finditer(re.escape(eol) + rb"(?:\r?" + re.escape(eol) + rb")+", raw):
        if quote is not None:
            quotes += raw.count(quote, scanned, match.start())
            scanned = match.start()
        if quotes % 2 == 0:
            kept.append(raw[last : match.start() + len(eol)])
            last = match.end()
    kept.append(raw[last:])
    out = b"".join(kept) if last else raw
    lead = re.match(rb"(?:\r?" + re.escape(eol) + rb")+", out)  # a part starting on blank lines
    return out[lead.end() :] if lead else out


def _named(frame: pl.DataFrame, raw: bytes, dialect: Dialect) -> pl.DataFrame:
    """`frame` with DuckDB's names where polars' differ: no header, empty or repeated names."""
    columns = frame.columns
    odd = any(not c or c != c.strip() or "_duplicated_" in c for c in columns)
    if dialect.header and not odd and len({c.lower() for c in columns}) == len(columns):
        return frame
    written = [""] * frame.width
    if dialect.header:
        fields = _header(raw, dialect)
        written = fields if fields is not None and len(fields) == frame.width else frame.columns
    frame.columns = duckdb_names(written, dialect.header)
    return frame


def _header(raw: bytes, dialect: Dialect) -> list[str] | None:
    """The fields of the header line as written (polars renames repeated ones)."""
    eol, start = dialect.eol.encode(), 0
    for _ in range(dialect.skip_rows):  # no split: that would copy the rest of a big file
        start = raw.find(eol, start) + 1
        if start == 0:
            return None
    end = raw.find(eol, start)
    line = raw[start:] if end < 0 else raw[start:end]
    text = line.decode(errors="replace").lstrip("\ufeff").rstrip("\r")
    quote = dialect.quote or '"'
    return next(csv.reader([text], delimiter=dialect.separator, quotechar=quote), [])


def mostly_delimited(raw: bytes, kind: str) -> bool:
    """Whether all but one in ten (at least one) of the first lines have as many (two or more)
    fields, split by the format's own delimiter, as the first."""
    sep = b"\t" if kind == "tsv" else b","
    lines = [line for line in raw[:SNIFF_BYTES].split(b"\n", 1000)[:1000] if line.strip()]
    width = lines[0].count(sep) if lines else 0
    same = sum(1 for line in lines if line.count(sep) == width)
    return width > 0 and same >= len(lines) - max(1, len(lines) // 10)


def _reason(exc: BaseException) -> str:
    """The first sentences of a DuckDB error, without the temporary file's name."""
    text = str(exc).split("\n", 1)[0].split(" file = ", 1)[0]
    return text.split("Possible Solution", 1)[0].strip()


def eol_of(start: bytes) -> str:
    """``\\r`` for text whose lines end in a lone CR (classic Mac), else ``\\n``."""
    return "\r" if b"\r" in start and b"\n" not in start else "\n"


def sample_of(raw: bytes, eol: str) -> bytes:
    """The first `SNIFF_BYTES` of `raw`, cut after a line end (all of it if shorter)."""
    if len(raw) <= SNIFF_BYTES:
        return raw
    cut = raw.rfind(eol.encode(), 0, SNIFF_BYTES)
    return raw[: cut + 1] if cut > 0 else raw[:SNIFF_BYTES]
