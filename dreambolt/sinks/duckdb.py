"""The DuckDB sink: data tables with lineage columns, and the per-file load ledger.

One `DuckDBSink` owns the database connection and is only used from one thread at a time (the
ingester runs it on a single worker thread). Each file's rows and its ledger row commit in one
transaction, so a killed process leaves every file either fully loaded or not at all.
"""

from __future__ import annotations

import contextlib
import re
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from ..errors import SinkError
from ..report import ErrorInfo

__all__ = ["LEDGER", "DuckDBSink", "quote", "validate_table_name"]

LEDGER = "_dreambolt_loads"
LINEAGE = ("_source_uri", "_source_etag", "_ingested_at")
_FRAME = "__dreambolt_frame"
_MEMORY = re.compile(r"^\d+(\.\d+)?\s*[KMGT]?i?B$", re.IGNORECASE)
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")

_LEDGER_DDL = f"""
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


def quote(name: str) -> str:
    """Quote an SQL identifier (names are validated too; quoting is never skipped)."""
    return '"' + name.replace('"', '""') + '"'


def validate_table_name(name: str) -> str:
    """Return `name` if it is a safe table name, else raise SinkError saying what is allowed."""
    if not _NAME.match(name) or name.lower().startswith("_dreambolt"):
        raise SinkError(
            f"invalid table name {name!r}: use letters, digits and underscores, starting with a "
            "letter or underscore, at most 63 characters (and not starting with _dreambolt), "
            "e.g. --table events_2024"
        )
    return name


class DuckDBSink:
    """Writes frames into DuckDB tables and keeps the load ledger."""

    def __init__(self, path: str | Path, *, memory_limit: str | None = "256MB") -> None:
        """Open (or create) the database; `memory_limit` caps DuckDB's buffer pool, which
        otherwise keeps every block it wrote cached (DuckDB spills to disk past the cap)."""
        self.path = str(path)
        if memory_limit and not _MEMORY.match(memory_limit):
            raise SinkError(f"invalid DuckDB memory limit {memory_limit!r}; write e.g. '256MB'")
        try:
            if self.path != ":memory:":
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            self.con = duckdb.connect(self.path)
            if memory_limit:
                self.con.execute(f"SET memory_limit = '{memory_limit}'")
            self.con.execute(_LEDGER_DDL)
            self._drop_stale_stages()
        except (duckdb.Error, OSError) as exc:
            raise SinkError(
                f"cannot open DuckDB database {self.path!r}: {exc}; check that the directory is "
                "writable and that no other process has the file open (DuckDB allows one writer)"
            ) from exc
        self._columns: dict[str, dict[str, str]] = {}  # table -> column -> DuckDB type
        self._accepted: dict[str, set[tuple[tuple[str, str], ...]]] = {}  # table -> polars schemas

    def _drop_stale_stages(self) -> None:
        """Remove scratch tables a killed run left behind (their file was never committed)."""
        stale = self.con.execute(
            "SELECT table_name FROM information_schema.tables "
            "WHERE starts_with(table_name, '_dreambolt_stage_')"
        ).fetchall()
        for (name,) in stale:
            self.con.execute(f"DROP TABLE IF EXISTS {quote(name)}")

    def close(self) -> None:
        """Close the connection (uncommitted work is rolled back)."""
        self.con.close()

    # --- reading state -----------------------------------------------------------------

    def loaded(self, table: str) -> dict[str, str | None]:
        """uri -> etag of every file whose rows are in `table` now."""
        rows = self.con.execute(
            f"SELECT uri, etag FROM {LEDGER} WHERE table_name = ? AND active", [table]
        ).fetchall()
        return {uri: etag for uri, etag in rows}

    def table_columns(self, table: str) -> dict[str, str]:
        """Column -> DuckDB type of `table` ({} when it does not exist)."""
        if table not in self._columns:
            rows = self.con.execute(
                "SELECT column_name, data_type FROM information_schema.columns "
                "WHERE table_schema = 'main' AND table_name = ? ORDER BY ordinal_position",
                [table],
            ).fetchall()
            self._columns[table] = {name: kind for name, kind in rows}
        return self._columns[table]

    # --- writing -------------------------------------------------------------------------

    def write_file(
        self, table: str, *, uri: str, etag: str | None, size: int,
        frames: Iterable[pl.DataFrame], run_id: str, rebuild: bool = False, staged: bool = False,
    ) -> tuple[int, bool]:
        """Load one file (replacing an earlier version's rows); returns (rows, replaced).

        With `rebuild` (mode="replace"), the table is first dropped and its loads forgotten in
        the same transaction, so a replace whose files all fail leaves the old table in place.
        With `staged` (big files), batches are first committed one by one into a scratch table
        and then moved in one transaction: DuckDB holds a transaction's appends in memory, so
        this keeps memory bounded by a batch instead of by the file.
        """
        now = datetime.now(UTC)
        stage = f"_dreambolt_stage_{uuid.uuid4().hex}" if staged else None
        try:
            if stage is not None:
                rows, signature = self._stage(stage, frames, uri)
                parts: Iterable[tuple[str, tuple[tuple[str, str], ...], int]] = (
                    [(stage, signature, rows)] if signature else []
                )
            else:
                parts = (self._registered(frame, uri) for frame in frames if frame.width)
            rows = 0
            with self._transaction():
                if rebuild:
                    self.con.execute(f"DROP TABLE IF EXISTS {quote(table)}")
                    self.con.execute(
                        f"UPDATE {LEDGER} SET active = false WHERE table_name = ?", [table]
                    )
                    self._forget(table)
                replaced = self._drop_previous(table, uri)
                for source, signature, count in parts:
                    try:
                        self._insert(table, source, signature, uri, etag, now)
                    finally:
                        if source == _FRAME:
                            # In a transaction DuckDB has aborted, unregister fails too; that
                            # error must not hide the one that aborted it.
                            with contextlib.suppress(duckdb.Error):
                                self.con.unregister(_FRAME)
                    rows += count
                self._ledger(table, uri, etag, size, rows, "loaded", None, run_id, now, True)
        except BaseException:
            self._forget(table)  # DDL may have been rolled back with the transaction
            raise
        finally:
            if stage is not None:
                with contextlib.suppress(duckdb.Error):
                    self.con.execute(f"DROP TABLE IF EXISTS {quote(stage)}")
        return rows, replaced

    def _registered(
        self, frame: pl.DataFrame, uri: str
    ) -> tuple[str, tuple[tuple[str, str], ...], int]:
        """Expose a frame to SQL as `_FRAME`; returns (name, signature, rows)."""
        _check_lineage(frame, uri)
        self.con.register(_FRAME, frame.to_arrow())
        return _FRAME, _signature(frame), frame.height

    def _stage(
        self, stage: str, frames: Iterable[pl.DataFrame], uri: str
    ) -> tuple[int, tuple[tuple[str, str], ...]]:
        """Commit batches one by one into a scratch table; returns (rows, signature)."""
        rows = 0
        signature: tuple[tuple[str, str], ...] = ()
        for frame in frames:
            if not frame.width:
                continue
            self._registered(frame, uri)
            try:
                if not signature:
                    self.con.execute(f"CREATE TABLE {quote(stage)} AS SELECT * FROM {_FRAME}")
                    signature = _signature(frame)
                else:
                    self.con.execute(f"INSERT INTO {quote(stage)} SELECT * FROM {_FRAME}")
            finally:
                self.con.unregister(_FRAME)
            rows += frame.height
        return rows, signature

    def record(
        self, table: str, *, uri: str, etag: str | None, size: int, status: str,
        error: ErrorInfo | None, run_id: str,
    ) -> None:
        """Add a ledger row for a file that was not loaded (unchanged, skipped or failed)."""
        with self._transaction():
            self._ledger(table, uri, etag, size, 0, status, error, run_id, datetime.now(UTC), False)

    # --- internals -----------------------------------------------------------------------

    def _transaction(self) -> _Transaction:
        return _Transaction(self.con)

    def _forget(self, table: str) -> None:
        self._columns.pop(table, None)
        self._accepted.pop(table, None)

    def _ledger(
        self, table: str, uri: str, etag: str | None, size: int, rows: int, status: str,
        error: ErrorInfo | None, run_id: str, at: datetime, active: bool,
    ) -> None:
        self.con.execute(
            f"INSERT INTO {LEDGER} VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [table, uri, etag, size, rows, status,
             error.type if error else None, error.code if error else None,
             error.message if error else None, run_id, at, active],
        )

    def _drop_previous(self, table: str, uri: str) -> bool:
        # fetchall, not fetchone: DuckDB 2 keeps a half-read result open on the connection
        (previous,), = self.con.execute(
            f"SELECT count(*) FROM {LEDGER} WHERE table_name = ? AND uri = ? AND active",
            [table, uri],
        ).fetchall()
        if not previous:
            return False
        if self.table_columns(table):
            self.con.execute(f"DELETE FROM {quote(table)} WHERE _source_uri = ?", [uri])
        self.con.execute(
            f"UPDATE {LEDGER} SET active = false WHERE table_name = ? AND uri = ? AND active",
            [table, uri],
        )
        return True

    def _insert(
        self, table: str, source: str, signature: tuple[tuple[str, str], ...], uri: str,
        etag: str | None, now: datetime,
    ) -> None:
        """Append the rows of relation `source` (a registered frame or a stage table)."""
        lineage = "?::VARCHAR AS _source_uri, ?::VARCHAR AS _source_etag, " \
                  "?::TIMESTAMPTZ AS _ingested_at"
        exact = True
        if not self.table_columns(table):
            self.con.execute(
                f"CREATE TABLE {quote(table)} AS SELECT *, {lineage} FROM {quote(source)}",
                [uri, etag, now],
            )
            self._columns.pop(table, None)
        else:
            exact = self._reconcile(table, source, signature, uri)
            self.con.execute(
                f"INSERT INTO {quote(table)} BY NAME SELECT *, {lineage} FROM {quote(source)}",
                [uri, etag, now],
            )
        if exact:  # values that needed converting must be checked again in every frame
            self._accepted.setdefault(table, set()).add(signature)

    def _reconcile(
        self, table: str, source: str, signature: tuple[tuple[str, str], ...], uri: str
    ) -> bool:
        """Add new columns; refuse values that would not survive the table's column types.

        Returns whether every column already had the table's type (no conversion checked).
        """
        if signature in self._accepted.get(table, set()):
            return True  # same shape as a frame already written in this session
        exact = True
        existing = {name.lower(): (name, kind) for name, kind in self.table_columns(table).items()}
        incoming = self.con.execute(f"DESCRIBE SELECT * FROM {quote(source)}").fetchall()
        for row in incoming:
            name, kind = str(row[0]), str(row[1])
            if name.lower() not in existing:
                self.con.execute(f"ALTER TABLE {quote(table)} ADD COLUMN {quote(name)} {kind}")
                self._columns[table][name] = kind
                continue
            table_kind = existing[name.lower()][1]
            if table_kind != kind and kind != '"NULL"':
                self._check_cast(table, source, uri, name, kind, table_kind)
                exact = False
        return exact

    def _check_cast(
        self, table: str, source: str, uri: str, column: str, kind: str, table_kind: str
    ) -> None:
        col = quote(column)
        bad = self.con.execute(
            f"SELECT {col}::VARCHAR FROM {quote(source)} WHERE {col} IS NOT NULL AND "
            f"(TRY_CAST({col} AS {table_kind}) IS NULL "
            f"OR TRY_CAST(TRY_CAST({col} AS {table_kind}) AS {kind}) IS DISTINCT FROM {col}) "
            "LIMIT 1"
        ).fetchall()
        if bad:
            raise SinkError(
                f"{uri}: column {column!r} is {kind} in this file but {table_kind} in table "
                f"{table!r}, and a value ({bad[0][0]!r}) does not convert without loss; load the "
                "file into another table (--table) or rebuild this one (--mode replace)"
            )


def _check_lineage(frame: pl.DataFrame, uri: str) -> None:
    clash = [c for c in LINEAGE if c in frame.columns]
    if clash:
        raise SinkError(f"{uri}: the file has column(s) {clash} that DreamBolt reserves for "
                        "lineage; rename them before ingesting")


def _signature(frame: pl.DataFrame) -> tuple[tuple[str, str], ...]:
    return tuple((name, str(dtype)) for name, dtype in frame.schema.items())


class _Transaction:
    """BEGIN … COMMIT, or ROLLBACK when the block raises (even on KeyboardInterrupt)."""

    def __init__(self, con: Any) -> None:
        self.con = con

    def __enter__(self) -> None:
        self.con.execute("BEGIN TRANSACTION")

    def __exit__(self, kind: object, exc: object, tb: object) -> None:
        if kind is None:
            self.con.execute("COMMIT")
        else:
            self.con.execute("ROLLBACK")
