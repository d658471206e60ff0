"""Destinations DreamBolt writes to: the `Sink` protocol, and `open_sink` choosing one by `--db`.

Importing this package is light (no DuckDB, no polars): the implementation is imported when a
sink is opened, and the names below are loaded on first use (PEP 562).
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dreambolt.errors import SinkError

if TYPE_CHECKING:
    from dreambolt.sinks.base import FileWrite, Sink, Written
    from dreambolt.sinks.duckdb import DuckDBSink
    from dreambolt.sinks.names import validate_table_name

__all__ = [
    "DELTA_PREFIX",
    "DuckDBSink",
    "FileWrite",
    "Sink",
    "Written",
    "open_sink",
    "validate_table_name",
]

DELTA_PREFIX = "delta:"

_LAZY = {
    "DuckDBSink": "dreambolt.sinks.duckdb",
    "FileWrite": "dreambolt.sinks.base",
    "Sink": "dreambolt.sinks.base",
    "Written": "dreambolt.sinks.base",
    "validate_table_name": "dreambolt.sinks.names",
}


def open_sink(db: str | Path, *, preserve_order: bool = False) -> Sink:
    """Open the destination `db` names (a blocking call: run it on the sink's thread).

    A DuckDB file (or ':memory:') is the only destination today; `delta:ROOT` is refused with
    a fatal SinkError (code Unsupported). `preserve_order` keeps each file's rows in file order
    where the destination otherwise may not (DuckDB writes row groups from several threads).
    Raises SinkError (fatal) when the destination cannot be opened.
    """
    text = str(db)
    if text.lower().startswith(DELTA_PREFIX):
        raise SinkError(
            f"--db {text!r}: Delta Lake destinations are not supported yet; name a DuckDB "
            "file instead, e.g. --db dreambolt.duckdb",
            code="Unsupported",
            fatal=True,
        )
    from dreambolt.sinks.duckdb import DuckDBSink  # DuckDB is imported when it is used

    return DuckDBSink(text, preserve_order=preserve_order)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
