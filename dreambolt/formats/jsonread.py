"""JSON text: one document or JSON lines, and reading it as polars, else as DuckDB, reads it."""

from __future__ import annotations

import json
import re

import duckdb
import polars as pl

from dreambolt.formats import duckread
from dreambolt.formats.detect import first_char

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
    """JSON as DuckDB, the reference, reads it, in the order keys first appear.

    A document (`array`) is read by DuckDB: polars orders the keys of a big object at random
    and makes a list of a string that sits among lists. JSON lines are read by polars, inferred
    from every record, columns put in the order their keys first appear; where polars cannot
    build a column (a string here, a list there), by DuckDB, which makes it JSON text. An empty
    array has no columns (DuckDB would invent one named ``json``). If neither reader can,
    polars' reason.
    """
    if array:
        try:
            frame = duckread.read_json(raw, array=True)
        except duckdb.Error:
            return pl.read_json(raw, infer_schema_length=None)  # its reason, if it fails too
        return pl.DataFrame() if frame.height == 0 and frame.columns == ["json"] else frame
    try:
        return in_key_order(pl.read_ndjson(raw, infer_schema_length=None), raw)
    except Exception as exc:
        try:
            return duckread.read_json(raw, array=False)
        except duckdb.Error:
            raise exc from None


def in_key_order(frame: pl.DataFrame, raw: bytes) -> pl.DataFrame:
    """`frame` with its columns in the order their keys first appear in `raw` (as a key, at any
    depth: a cheap, deterministic stand-in for document order; polars' own order is random
    past the first record's keys)."""
    if frame.width < 2:
        return frame

    def first(name: str) -> int:
        plain = json.dumps(name, ensure_ascii=False).encode()
        spellings = {plain, json.dumps(name).encode(), plain.replace(b"/", b"\\/")}
        found = [
            m.start()
            for key in spellings
            if (m := re.search(re.escape(key) + rb"\s*:", raw)) is not None
        ]
        return min(found, default=len(raw))

    order = sorted(frame.columns, key=first)
    return frame if order == frame.columns else frame.select(order)
