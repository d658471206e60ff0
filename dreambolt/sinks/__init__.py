"""Destinations DreamBolt writes to: the `Sink` protocol, and `open_sink` choosing one by `--db`.

Importing this package is light (no DuckDB, no polars): the implementation is imported when a
sink is opened, and the names below are loaded on first use (PEP 562).
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dreambolt.errors import SinkError
from dreambolt.sinks.names import DELTA_PREFIX, is_delta

if TYPE_CHECKING:
    from dreambolt.s3.options import S3Options
    from dreambolt.sinks.base import FileWrite, Sink, Written
    from dreambolt.sinks.duckdb import DuckDBSink
    from dreambolt.sinks.names import validate_table_name

__all__ = [
    "DELTA_PREFIX",
    "DuckDBSink",
    "FileWrite",
    "Sink",
    "Written",
    "is_delta",
    "open_sink",
    "validate_table_name",
]


_LAZY = {
    "DuckDBSink": "dreambolt.sinks.duckdb",
    "FileWrite": "dreambolt.sinks.base",
    "Sink": "dreambolt.sinks.base",
    "Written": "dreambolt.sinks.base",
    "validate_table_name": "dreambolt.sinks.names",
}


def open_sink(db: str | Path, *, preserve_order: bool = False, s3: S3Options | None = None) -> Sink:
    """Open the destination `db` names (a blocking call: run it on the sink's thread).

    `delta:ROOT` is a folder of Delta Lake tables (`dreambolt.sinks.delta.DeltaSink`, reached
    on S3 with the options `s3` and the AWS chain); anything else a DuckDB file (or
    ':memory:'). `preserve_order` keeps each file's rows in file order where the destination
    otherwise may not (DuckDB writes row groups from several threads; a Delta commit keeps
    them in order). Raises SinkError (fatal) when the destination cannot be opened.
    """
    text = str(db)
    if is_delta(text):
        try:
            from dreambolt.sinks.delta import DeltaSink
        except ImportError as exc:
            raise SinkError(
                f"--db {text!r} needs the Delta Lake extra: pip install 'dreambolt[delta]' ({exc})",
                code="Unsupported",
                fatal=True,
            ) from exc
        return DeltaSink(text, s3=s3)
    from dreambolt.sinks.duckdb import DuckDBSink  # DuckDB is imported when it is used

    return DuckDBSink(text, preserve_order=preserve_order)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
