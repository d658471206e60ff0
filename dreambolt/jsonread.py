"""JSON text: one document or JSON lines, and reading it as polars, else as DuckDB, reads it."""

from __future__ import annotations

import json

import duckdb
import polars as pl

from . import duckread
from .detect import first_char

__all__ = ["is_document", "read_json"]


def is_document(kind: str, start: bytes) -> bool:
    """Whether JSON text of `kind` starting with `start` is one document (a ``json`` array, or
    an object whose first line is not a whole JSON value: pretty-printed), not JSON lines."""
    first = first_char(start)
    if first == b"[":
        return kind == "json"
    line, newline, _ = start.partition(b"\n")
    if first != b"{" or not newline:
        return False  # one line so far: JSON lines (a one-line document reads as one record)
    try:
        json.loads(line)
    except RecursionError:
        return False  # deeper than Python goes: a whole value, refused later as too deep
    except ValueError:
        return True
    return False


def read_json(raw: bytes, array: bool) -> pl.DataFrame:
    """JSON (a document if `array`, else lines) as polars infers it from every record, else as
    DuckDB reads it, which types a field whose values change type (a string here, a list
    there) as JSON text; if neither can, polars' reason."""
    try:
        return (pl.read_json if array else pl.read_ndjson)(raw, infer_schema_length=None)
    except Exception as exc:
        try:
            return duckread.read_json(raw, array=array)
        except duckdb.Error:
            raise exc from None
