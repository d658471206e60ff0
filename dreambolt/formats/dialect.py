"""CSV dialects: what the user declares (`CsvOptions`), and what a file turns out to use.

A file's `Dialect` (delimiter, quote, escape, line end, header or not, preamble lines to skip,
comment prefix) is decided the way DuckDB's CSV sniffer decides it, because that is the
reference users compare with. Sniffing costs DuckDB about 5 ms a file, as much as parsing a
small one, so a file that is plainly RFC 4180 with the format's own delimiter (`plain`) is
parsed without it; once parsed, `header_in_doubt` tells whether its first line might be data
(DuckDB's rule: a first row is a header unless every value of it fits its column's type), and
such a file is sniffed after all. Everything else goes to DuckDB (`sniff`) on the first part
of the file; each `CsvOptions` value the user set is passed to it and wins.

Polars cannot read an escape character other than the quote (``\\"``); such files are read by
DuckDB itself (`duckread.read_csv`). Column names follow DuckDB's rules (`duckdb_names`).
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from typing import Any

import polars as pl

from dreambolt.formats.detect import CsvOptions
from dreambolt.formats.duckread import on_disk

__all__ = [
    "Dialect",
    "default_dialect",
    "duckdb_names",
    "header_in_doubt",
    "plain",
    "polars_options",
    "sniff",
]

DELIMITERS = (",", "\t", ";", "|")
SAMPLE_LINES = 64  # lines `plain` looks at for delimiters and quotes
SAMPLE_BYTES = 1 << 20  # bytes it looks at for line ends and escapes


@dataclass(frozen=True)
class Dialect:
    """How one CSV/TSV file is written; `names` are DuckDB's when it was sniffed."""

    separator: str = ","
    quote: str | None = '"'
    escape: str | None = None  # only when it is not the quote
    eol: str = "\n"  # "\r" for classic Mac files; "\r\n" is read as "\n"
    header: bool = True
    skip_rows: int = 0
    comment: str | None = None
    names: tuple[str, ...] | None = None


def default_dialect(kind: str, options: CsvOptions) -> Dialect:
    separator = options.delimiter or ("\t" if kind == "tsv" else ",")
    header = True if options.header is None else options.header
    return Dialect(separator=separator, header=header, skip_rows=options.skip_rows or 0)


# --- the plain case ----------------------------------------------------------------------------


def plain(sample: bytes, kind: str, options: CsvOptions) -> Dialect | None:
    """The dialect of a plain file (the format's delimiter on every line, as many fields on
    each of the first `SAMPLE_LINES`, `"` quotes, ``\n`` line ends, no preamble or comment
    lines), or None when DuckDB must sniff it."""
    if options.delimiter is not None or options.skip_rows is not None:
        return None
    dialect = default_dialect(kind, options)
    sep = dialect.separator.encode()
    cut = len(sample) > SAMPLE_BYTES
    sample = sample[:SAMPLE_BYTES] if cut else sample
    lines = sample.split(b"\n", SAMPLE_LINES)[:SAMPLE_LINES]
    if cut and len(lines) < SAMPLE_LINES:
        lines.pop()  # cut short
    lines = [line for line in lines if line.strip()]
    if not lines or sample.count(b"\r") != sample.count(b"\r\n") or b'\\"' in sample:
        return None
    first = lines[0].lstrip(b"\xef\xbb\xbf")
    if first.startswith(b"#") or sep not in first:
        return None
    if any(d.encode() in first for d in DELIMITERS if d.encode() != sep):
        return None
    if any(line.startswith(b"#") for line in lines):
        return None
    head = sample[: sum(map(len, lines)) + len(lines) * 2]
    if b"'" in head:
        quote = re.compile(rb"(?:^|" + re.escape(sep) + rb")'|'(?:\r?$|" + re.escape(sep) + rb")")
        if any(quote.search(line) for line in lines):
            return None
    width = _width(first, sep)
    return dialect if all(_width(line, sep) == width for line in lines[1:]) else None


def _width(line: bytes, sep: bytes) -> int:
    if b'"' not in line:
        return line.count(sep) + 1
    try:
        return len(
            next(csv.reader([line.decode(errors="replace").rstrip("\r")], delimiter=sep.decode()))
        )
    except (csv.Error, StopIteration):
        return -1


_TEMPORAL = re.compile(
    r"^\s*(\d{4}[-/.]\d{1,2}[-/.]\d{1,2}|\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4}|\d{1,2}:\d{2})"
)
_NUMBER = re.compile(r"^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$|^\s*[-+]?(inf|nan)\s*$", re.I)
_BOOLEAN = re.compile(r"^\s*(true|false|t|f)\s*$", re.I)


def header_in_doubt(frame: pl.DataFrame, names: list[str]) -> bool:
    """Whether DuckDB might take the first line (`names`, as written) of a file parsed with a
    header as data: every name fits its column's type, or looks like a date or time that
    DuckDB would type (polars leaves those as text). A file with no typed column has a header;
    a file of one line is in doubt."""
    if frame.height == 0:
        return True
    typed = False
    for name, dtype in zip(names, frame.schema.values(), strict=False):
        if dtype == pl.String:
            if _TEMPORAL.match(name):
                return True
            continue
        typed = True
        if dtype.is_numeric() and not _NUMBER.match(name):
            return False
        if dtype == pl.Boolean and not _BOOLEAN.match(name):
            return False
        if not (dtype.is_numeric() or dtype == pl.Boolean):
            return False
    return typed


# --- sniffing with DuckDB ----------------------------------------------------------------------


def sniff(sample: bytes, kind: str, options: CsvOptions) -> Dialect:
    """Ask DuckDB's sniffer about the first part of a file (whole records, UTF-8)."""
    given: dict[str, Any] = {}
    if options.delimiter is not None:
        given["delim"] = options.delimiter
    if options.header is not None:
        given["header"] = options.header
    if options.skip_rows is not None:
        given["skip"] = options.skip_rows
    query = (
        "SELECT Delimiter, Quote, Escape, NewLineDelimiter, Comment, SkipRows, HasHeader, "
        "Columns FROM sniff_csv($path, sample_size := -1{args})"
    )
    with on_disk(sample, query, given) as relation:
        rows = relation.fetchall()
    row = rows[0] if rows else None
    assert row is not None
    delimiter, quote, escape, newline, comment, skip, header, columns = row
    quote = None if quote == "(empty)" else quote
    if quote is None and b'"' not in sample:
        quote = '"'  # nothing quoted in the sample: a later quoted value is still read as one
    escape = None if escape in ("(empty)", quote) else escape
    return Dialect(
        separator=delimiter,
        quote=quote,
        escape=escape,
        eol="\r" if newline == "\\r" else "\n",
        header=bool(header),
        skip_rows=int(skip),
        comment=None if comment == "(empty)" else comment,
        names=tuple(column["name"] for column in columns),
    )


# --- polars ------------------------------------------------------------------------------------


def polars_options(dialect: Dialect, *, first: bool = True) -> dict[str, Any]:
    """`pl.read_csv` keyword arguments for a file's first part (`first`) or a later one."""
    options: dict[str, Any] = {
        "separator": dialect.separator,
        "quote_char": dialect.quote,
        "eol_char": dialect.eol,
        "comment_prefix": dialect.comment,
        "null_values": [""],  # a quoted empty value too is NULL, as in DuckDB
    }
    if first:
        options["has_header"] = dialect.header
        options["skip_lines"] = dialect.skip_rows
    else:
        options["has_header"] = False
    return options


def duckdb_names(names: list[str], header: bool) -> list[str]:
    """Column names as DuckDB gives them: trimmed; ``column0``… (zero-padded) for a file without
    a header or an empty name; a repeated name (in any case) gets ``_1``, ``_2``…"""
    width = len(str(max(len(names) - 1, 0)))
    out: list[str] = []
    counts: dict[str, int] = {}
    for index, name in enumerate(names):
        name = name.strip()
        if not header or not name:
            name = f"column{index:0{width}d}"
        key = name.lower()
        if key in counts:
            counts[key] += 1
            name = f"{name}_{counts[key]}"
            while name.lower() in counts:  # taken as well: DuckDB appends another suffix
                counts[key] += 1
                name = f"{name}_{counts[key]}"
        counts[name.lower()] = 0
        out.append(name)
    return out
