"""The load ledger `_dreambolt_loads`: one row per file attempt, and which loads are live.

`active` marks the load whose rows are in the table now; replacing a file's rows, or the whole
table, clears it on the old rows. All functions but `create`, `ensure_table` and `ensure_claim`
run inside the caller's transaction.

`_dreambolt_claims` holds one row per table, which every write transaction of that table updates
first (`claim`). DuckDB lets only one open transaction update a row, and refuses the update to
a transaction that began before another one updated it and committed ("Conflict on update"):
so once a writer holds the claim, what it reads of the ledger stays true until it commits, and
the decision "this (uri, etag) is loaded already" cannot race with another writer's insert.
"""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import duckdb
import polars as pl

from dreambolt.sinks.ledgerrows import LEDGER, rows_of

__all__ = [
    "CLAIMS",
    "LEDGER",
    "active_among",
    "active_etags",
    "active_loads",
    "add",
    "claim",
    "create",
    "deactivate",
    "ensure_claim",
    "ensure_table",
    "rows_of",
]


CLAIMS = "_dreambolt_claims"
_STAGED = "__dreambolt_ledger"
_RACES = 50  # tries of a statement that another connection's identical one can beat

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
_CLAIMS_DDL = f"""
CREATE TABLE IF NOT EXISTS {CLAIMS} (
    table_name  VARCHAR PRIMARY KEY,
    n           BIGINT NOT NULL    -- write transactions of the table committed so far
)
"""


def create(con: Any) -> None:
    """Create the ledger and claims tables if they are missing (outside a transaction)."""
    ensure_table(con, LEDGER, _DDL)
    ensure_table(con, CLAIMS, _CLAIMS_DDL)


def ensure_table(con: Any, name: str, ddl: str) -> None:
    """Run `ddl` (CREATE TABLE IF NOT EXISTS `name` ...) outside a transaction.

    Another connection of this process may be creating it this very moment: DuckDB then refuses
    one of the two ("Catalog write-write conflict"), even with IF NOT EXISTS; that one retries.
    """
    _racing(con, ddl, [], lambda: _exists(con, name))


def ensure_claim(con: Any, table: str) -> None:
    """Make sure `table` has its claim row (outside a transaction)."""
    _racing(
        con,
        f"INSERT INTO {CLAIMS} VALUES (?, 0) ON CONFLICT DO NOTHING",
        [table],
        lambda: bool(
            con.execute(f"SELECT 1 FROM {CLAIMS} WHERE table_name = ?", [table]).fetchall()
        ),
    )


def claim(con: Any, table: str) -> int | None:
    """Take the write claim of `table`: the first statement of a write transaction.

    Returns how many write transactions of the table had committed before this one (None if
    the claim row is missing). Raises duckdb.TransactionException while another open
    transaction holds the claim, or when one committed since this transaction began.
    """
    rows = con.execute(
        f"UPDATE {CLAIMS} SET n = n + 1 WHERE table_name = ? RETURNING n", [table]
    ).fetchall()
    return int(rows[0][0]) - 1 if rows else None


def _exists(con: Any, name: str) -> bool:
    return bool(
        con.execute(
            "SELECT 1 FROM duckdb_tables() WHERE schema_name = 'main' AND table_name = ?", [name]
        ).fetchall()
    )


def _racing(con: Any, sql: str, params: list[object], done: Callable[[], bool]) -> None:
    """Run an idempotent autocommit statement that a concurrent twin may beat (then retry)."""
    for attempt in range(_RACES):
        if done():
            return
        try:
            con.execute(sql, params).fetchall()
            return
        except (duckdb.TransactionException, duckdb.ConstraintException):
            if attempt == _RACES - 1:
                raise
            time.sleep(random.uniform(0.001, 0.02))


def add(
    con: Any, table: str, rows: pl.DataFrame, *, run_id: str, at: datetime, active: bool
) -> None:
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


def active_etags(con: Any, table: str, uris: Sequence[str]) -> dict[str, str | None]:
    """uri -> etag of those of `uris` with a live load in `table`."""
    return {
        uri: etag
        for uri, etag in con.execute(
            f"SELECT uri, etag FROM {LEDGER} WHERE table_name = ? AND active "
            "AND uri IN (SELECT unnest(?::VARCHAR[]))",
            [table, list(uris)],
        ).fetchall()
    }


def active_among(con: Any, table: str, uris: Sequence[str]) -> set[str]:
    """Which of `uris` have a live load in `table`."""
    # fetchall, never fetchone: DuckDB 2 keeps a half-read result open on the connection
    return {
        uri
        for (uri,) in con.execute(
            f"SELECT DISTINCT uri FROM {LEDGER} WHERE table_name = ? AND active "
            "AND uri IN (SELECT unnest(?::VARCHAR[]))",
            [table, list(uris)],
        ).fetchall()
    }


def deactivate(con: Any, table: str, uris: Sequence[str] | None = None) -> None:
    """Mark the live loads of these files (or of the whole table) as no longer live."""
    if uris is None:
        con.execute(f"UPDATE {LEDGER} SET active = false WHERE table_name = ?", [table])
    else:
        con.execute(
            f"UPDATE {LEDGER} SET active = false WHERE table_name = ? AND active "
            "AND uri IN (SELECT unnest(?::VARCHAR[]))",
            [table, list(uris)],
        )
