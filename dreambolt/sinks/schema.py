"""Fitting a data table's columns to the frames written into it: add, widen, convert safely.

A frame may bring columns the table lacks (added: one ALTER each when few, else one rebuild of
the table), or another type for a column it has: a column of only NULLs takes the new type, a
table the transaction in progress created is widened to the common supertype when that loses
nothing, and otherwise each value is converted in the INSERT itself, which fails on a value
that would not survive the conversion (the error's message starts with `CAST_MARK`).

`Schemas` caches what it knows of a connection's tables; the sink makes it `forget` a table
whenever another writer may have changed it or a transaction that changed it rolled back.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import duckdb

from dreambolt.sinks.frames import LINEAGE, Signature
from dreambolt.sinks.memory import MemoryCap
from dreambolt.sinks.sql import literal, quote

__all__ = ["CAST_MARK", "Schemas"]

CAST_MARK = "[dreambolt:lossy] "  # starts the message of a value refused inside an INSERT
# Adding k columns one ALTER at a time keeps a copy of the table's catalog entry per ALTER until
# COMMIT: about 600 bytes x k x (width + k/2) (2,000 ALTERs took 1.1 GB, 20,000 over 6 GB).
# Past this many column copies (~120 MB) the table is rebuilt in one statement instead.
_ALTER_COPIES = 200_000


class Schemas:
    """The columns of one connection's data tables, and the frames' shapes already fitted."""

    def __init__(self, con: Any, memory: MemoryCap) -> None:
        self.con = con
        self.memory = memory
        self._columns: dict[str, dict[str, str]] = {}  # table -> column -> DuckDB type
        self._accepted: dict[str, set[Signature]] = {}  # table -> schemas
        self.fresh: set[str] = set()  # tables created by the transaction in progress

    def columns(self, table: str) -> dict[str, str]:
        """Column -> DuckDB type of `table` ({} when it does not exist)."""
        if table not in self._columns:
            rows = self.con.execute(
                "SELECT column_name, data_type FROM information_schema.columns "
                "WHERE table_schema = 'main' AND table_name = ? ORDER BY ordinal_position",
                [table],
            ).fetchall()
            self._columns[table] = {name: kind for name, kind in rows}
        return self._columns[table]

    def forget(self, table: str) -> None:
        """Drop what is known of `table` (it is read again when next needed)."""
        self._columns.pop(table, None)
        self._accepted.pop(table, None)

    def insert(
        self,
        table: str,
        source: str,
        signature: Signature,
        uri: str | None,
        etag: str | None,
        now: datetime,
        probe: str | None = None,
    ) -> None:
        """Append the rows of relation `source` (a registered frame or Arrow stream).

        With `uri` None the source already carries `_source_uri` and `_source_etag` per row.
        Types are checked on `probe` (default: the source itself), since a stream can be read
        only once; values that need converting are checked row by row in the INSERT itself.
        """
        params: list[object]
        if uri is None:
            lineage, params, who = "?::TIMESTAMPTZ AS _ingested_at", [now], "_source_uri"
        else:
            lineage = (
                "?::VARCHAR AS _source_uri, ?::VARCHAR AS _source_etag, "
                "?::TIMESTAMPTZ AS _ingested_at"
            )
            params, who = [uri, etag, now], literal(uri)
        if not self.columns(table):
            self.memory.need(len(signature) + len(LINEAGE))
            self.con.execute(
                f"CREATE TABLE {quote(table)} AS SELECT *, {lineage} FROM {quote(source)}", params
            )
            self._columns.pop(table, None)
            self.fresh.add(table)
            self._accepted.setdefault(table, set()).add(signature)
            return
        casts = self._reconcile(table, probe or source, signature)
        self.memory.need(len(self.columns(table)))
        columns = "*"
        if casts:
            columns = (
                "* REPLACE ("
                + ", ".join(
                    _guarded(name, kind, table_kind, table, who) for name, kind, table_kind in casts
                )
                + ")"
            )
        self.con.execute(
            f"INSERT INTO {quote(table)} BY NAME SELECT {columns}, {lineage} FROM {quote(source)}",
            params,
        )
        if not casts:  # values that need converting are checked again in every frame
            self._accepted.setdefault(table, set()).add(signature)

    def _reconcile(
        self, table: str, source: str, signature: Signature
    ) -> list[tuple[str, str, str]]:
        """Add new columns, widen columns where allowed; returns the (column, type in source,
        type in table) of every column whose values must be converted (checked row by row)."""
        if signature in self._accepted.get(table, set()):
            return []  # same shape as a frame already written since the claim
        existing = {name.lower(): (name, kind) for name, kind in self.columns(table).items()}
        incoming = self.con.execute(f"DESCRIBE SELECT * FROM {quote(source)}").fetchall()
        new: list[tuple[str, str]] = []
        casts: list[tuple[str, str, str]] = []
        for row in incoming:
            name, kind = str(row[0]), str(row[1])
            if name.lower() not in existing:
                new.append((name, kind))
                continue
            column, table_kind = existing[name.lower()]
            if table_kind == kind or kind == '"NULL"':
                continue
            widened = self._widen(table, column, table_kind, kind)
            if widened != kind:
                casts.append((name, kind, widened))
        if new:
            self._add_columns(table, new)
        return casts

    def _widen(self, table: str, column: str, table_kind: str, kind: str) -> str:
        """Change the column's type if that loses nothing and is allowed: a column of only NULLs
        takes the incoming type; a table this transaction created takes the common supertype of
        both (BIGINT and DOUBLE: DOUBLE). Returns the column's type now."""
        if table_kind == '"NULL"':
            target = kind
        elif table in self.fresh:
            try:
                target = str(
                    self.con.execute(
                        f"DESCRIBE SELECT x FROM (SELECT NULL::{table_kind} AS x "
                        f"UNION ALL SELECT NULL::{kind} AS x)"
                    ).fetchall()[0][1]
                )
            except duckdb.Error:
                return table_kind  # no common type: the values are checked one by one
            if target == table_kind:
                return table_kind
            col = quote(column)
            lossy = self.con.execute(
                f"SELECT 1 FROM {quote(table)} WHERE {col} IS NOT NULL AND "
                f"TRY_CAST(TRY_CAST({col} AS {target}) AS {table_kind}) IS DISTINCT FROM {col} "
                "LIMIT 1"
            ).fetchall()
            if lossy:
                return table_kind
        else:
            return table_kind
        self.con.execute(f"ALTER TABLE {quote(table)} ALTER COLUMN {quote(column)} TYPE {target}")
        self._columns.pop(table, None)
        self._accepted.pop(table, None)  # shapes exact before may need converting now
        return target

    def _add_columns(self, table: str, new: list[tuple[str, str]]) -> None:
        """Add columns: one ALTER each when few, else one rebuild of the table."""
        width = len(self.columns(table))
        if len(new) * (width + len(new) // 2) > _ALTER_COPIES and self._rebuildable(table):
            scratch = quote(f"_dreambolt_widen_{table}")
            added = ", ".join(f"NULL::{kind} AS {quote(name)}" for name, kind in new)
            self.memory.need(width + len(new))
            self.con.execute(f"CREATE TABLE {scratch} AS SELECT *, {added} FROM {quote(table)}")
            self.con.execute(f"DROP TABLE {quote(table)}")
            self.con.execute(f"ALTER TABLE {scratch} RENAME TO {quote(table)}")
        else:
            for name, kind in new:
                self.con.execute(f"ALTER TABLE {quote(table)} ADD COLUMN {quote(name)} {kind}")
        self._columns.pop(table, None)

    def _rebuildable(self, table: str) -> bool:
        """Whether CREATE TABLE AS would keep all of the table: no constraints, indexes or
        defaults (DreamBolt's tables have none; a table made by hand may)."""
        rows = self.con.execute(
            "SELECT (SELECT count(*) FROM duckdb_constraints() WHERE schema_name = 'main' AND "
            "table_name = $t) + (SELECT count(*) FROM duckdb_indexes() WHERE schema_name = "
            "'main' AND table_name = $t) + (SELECT count(*) FROM information_schema.columns "
            "WHERE table_schema = 'main' AND table_name = $t AND column_default IS NOT NULL)",
            {"t": table},
        ).fetchall()
        return int(rows[0][0]) == 0


def _guarded(name: str, kind: str, table_kind: str, table: str, who: str) -> str:
    """`name` converted to `table_kind` for the INSERT, failing on a value that would not
    survive the conversion (DuckDB's own cast would round 2.5 to 2 without a word)."""
    col = quote(name)
    message = (
        f": column {name!r} is {kind} in this file but {table_kind} in table {table!r}, "
        "and a value ('"
    )
    tail = (
        "') does not convert without loss; load the file into another table (--table) or "
        "rebuild this one (--mode replace)"
    )
    return (
        f"CASE WHEN {col} IS NULL THEN NULL "
        f"WHEN TRY_CAST(TRY_CAST({col} AS {table_kind}) AS {kind}) IS NOT DISTINCT FROM {col} "
        f"THEN TRY_CAST({col} AS {table_kind}) "
        f"ELSE error({literal(CAST_MARK)} || {who} || {literal(message)} || {col}::VARCHAR "
        f"|| {literal(tail)}) END AS {col}"
    )
