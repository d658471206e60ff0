"""Reading with DuckDB itself, the reference reader, where polars cannot: sniffing a CSV
dialect, CSV with an escape character, JSON whose values change type from record to record.

DuckDB reads files, so the bytes are written to a temporary file first. One in-memory DuckDB
is kept for this (a cursor per call: cursors may be used from any thread).
"""

from __future__ import annotations

import contextlib
import tempfile
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import duckdb
import polars as pl

if TYPE_CHECKING:
    from dreambolt.formats.dialect import Dialect

__all__ = ["on_disk", "read_csv", "read_json"]

_LOCK = threading.Lock()
_DATABASE: list[duckdb.DuckDBPyConnection] = []


def _cursor() -> duckdb.DuckDBPyConnection:
    """A cursor on one in-memory DuckDB kept for sniffing (cursors are per thread)."""
    with _LOCK:
        if not _DATABASE:
            _DATABASE.append(duckdb.connect(":memory:", config={"threads": 1}))
        return _DATABASE[0].cursor()


@contextlib.contextmanager
def on_disk(data: bytes, query: str, options: dict[str, Any]) -> Iterator[duckdb.DuckDBPyRelation]:
    """Run `query` (with ``$path`` and ``{args}``: `options` as named parameters) on `data`,
    written to a temporary file for DuckDB to read."""
    args = "".join(f", {key} := ${key}" for key in options)
    with tempfile.NamedTemporaryFile(suffix=".csv") as handle:
        handle.write(data)
        handle.flush()
        cursor = _cursor()
        try:
            yield cursor.sql(query.format(args=args), params={"path": handle.name, **options})
        finally:
            cursor.close()


def read_csv(data: bytes, dialect: Dialect) -> pl.DataFrame:
    """Read a whole CSV file with DuckDB in the given dialect (one polars cannot read)."""
    options: dict[str, Any] = {
        "delim": dialect.separator,
        "quote": dialect.quote or "",
        "escape": dialect.escape or "",
        "header": dialect.header,
        "skip": dialect.skip_rows,
        "comment": dialect.comment or "",
    }
    if dialect.eol == "\r":
        options["new_line"] = "\\r"
    with on_disk(data, "SELECT * FROM read_csv($path{args})", options) as relation:
        return _frame(relation)


def read_json(data: bytes, *, array: bool) -> pl.DataFrame:
    """Read JSON (an array or document if `array`, else JSON lines) with DuckDB: columns in
    document order, a field whose values change type as JSON text, every record's evidence."""
    options: dict[str, Any] = {
        "format": "auto" if array else "newline_delimited",
        "maximum_object_size": min(max(len(data) + 1, 16 << 20), 2**32 - 1),
        "sample_size": -1,  # types from every record, as polars infers them
        "map_inference_threshold": -1,  # objects stay structs (polars has no MAP)
    }
    with on_disk(data, "SELECT * FROM read_json($path{args})", options) as relation:
        return _frame(relation)


def _frame(relation: duckdb.DuckDBPyRelation) -> pl.DataFrame:
    frame = pl.from_arrow(relation.to_arrow_table())
    assert isinstance(frame, pl.DataFrame)
    return frame
