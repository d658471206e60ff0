"""The load ledger `_dreambolt_loads`: one row per file attempt, and which loads are live.

`active` marks the load whose rows are in the table now; replacing a file's rows, or the whole
table, clears it on the old rows. All functions run inside the caller's transaction.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import duckdb
import polars as pl

from ..report import FileResult

__all__ = ["LEDGER", "active_among", "active_loads", "add", "create", "deactivate", "rows_of"]

LEDGER = "_dreambolt_loads"
_STAGED = "__dreambolt_ledger"

_DDL = f"""
CREATE TABLE IF NOT EXISTS {LEDGER} (
    table_name  VARCHAR NOT NULL,
    uri         VARCHAR NOT NULL,
    etag        VARCHAR,
    size        BIGINT,
    rows        BIGINT,
    status      VARCHAR NOT NULL,  -- loaded | unchanged | skipped | failed
    error_type  VARCHAR,
    error_code  VARCHAR,
    error       VARCHAR,
    run_id      VARCHAR,
    loaded_at   TIMESTAMPTZ NOT NULL,
    active      BOOLEAN NOT NULL   -- this row describes the rows now in the table
)
"""
_SCHEMA = {"uri": pl.String, "etag": pl.String, "size": pl.Int64, "rows": pl.Int64,
           "status": pl.String, "error_type": pl.String, "error_code": pl.String,
           "error": pl.String}


def create(con: Any) -> None:
    """Create the ledger table if it is missing."""
    con.execute(_DDL)


def rows_of(results: Sequence[FileResult]) -> pl.DataFrame:
    """Ledger rows (without table, run and time) for these results."""
    return pl.DataFrame({
        "uri": [r.uri for r in results], "etag": [r.etag for r in results],
        "size": [r.bytes for r in results], "rows": [r.rows for r in results],
        "status": [r.status for r in results],
        "error_type": [r.error.type if r.error else None for r in results],
        "error_code": [r.error.code if r.error else None for r in results],
        "error": [r.error.message if r.error else None for r in results],
    }, schema=_SCHEMA)


def add(con: Any, table: str, rows: pl.DataFrame, *, run_id: str, at: datetime,
        active: bool) -> None:
    """Append ledger rows in one statement."""
    con.register(_STAGED, rows.to_arrow())
    try:
        con.execute(
            f"INSERT INTO {LEDGER} SELECT ?, uri, etag, size, rows, status, error_type, "
            f"error_code, error, ?, ?::TIMESTAMPTZ, ? FROM {_STAGED}",
            [table, run_id, at, active],
        )
    finally:
        with contextlib.suppress(duckdb.Error):  # fails too inside an aborted transaction
            con.unregister(_STAGED)


def active_loads(con: Any, table: str) -> dict[str, str | None]:
    """uri -> etag of every file whose rows are in `table` now."""
    rows = con.execute(
        f"SELECT uri, etag FROM {LEDGER} WHERE table_name = ? AND active", [table]
    ).fetchall()
    return {uri: etag for uri, etag in rows}


def active_among(con: Any, table: str, uris: Sequence[str]) -> set[str]:
    """Which of `uris` have a live load in `table`."""
    # fetchall, never fetchone: DuckDB 2 keeps a half-read result open on the connection
    return {uri for (uri,) in con.execute(
        f"SELECT DISTINCT uri FROM {LEDGER} WHERE table_name = ? AND active "
        "AND uri IN (SELECT unnest(?::VARCHAR[]))", [table, list(uris)],
    ).fetchall()}


def deactivate(con: Any, table: str, uris: Sequence[str] | None = None) -> None:
    """Mark the live loads of these files (or of the whole table) as no longer live."""
    if uris is None:
        con.execute(f"UPDATE {LEDGER} SET active = false WHERE table_name = ?", [table])
    else:
        con.execute(f"UPDATE {LEDGER} SET active = false WHERE table_name = ? AND active "
                    "AND uri IN (SELECT unnest(?::VARCHAR[]))", [table, list(uris)])
