"""The DuckDB sink: data tables with lineage columns, and the per-file load ledger.

One `DuckDBSink` owns the database connection and is only used from one thread at a time (the
ingester runs it on a single worker thread). Each file's rows and its ledger row commit in one
transaction, so a killed process leaves every file either fully loaded or not at all.
"""

from __future__ import annotations

import contextlib
import itertools
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pyarrow as pa

from ..errors import SinkError
from ..report import FileResult
from . import ledger
from .ledger import LEDGER

__all__ = ["LEDGER", "DuckDBSink", "FileWrite", "quote", "validate_table_name"]

LINEAGE = ("_source_uri", "_source_etag", "_ingested_at")
_FRAME = "__dreambolt_frame"
_HEAD = "__dreambolt_head"
_MEMORY = re.compile(r"^\d+(\.\d+)?\s*[KMGT]?i?B$", re.IGNORECASE)
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")



@dataclass(frozen=True, slots=True)
class FileWrite:
    """One small file's parsed rows, for `DuckDBSink.write_many`."""

    uri: str
    etag: str | None
    size: int
    frame: pl.DataFrame


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

    def __init__(
        self, path: str | Path, *, memory_limit: str | None = "192MB", preserve_order: bool = False
    ) -> None:
        """Open (or create) the database; `memory_limit` caps DuckDB's buffer pool, which
        otherwise keeps every block it wrote cached (DuckDB spills to disk past the cap).

        Without `preserve_order`, DuckDB may store a file's rows out of file order (it writes
        row groups from several threads at once: S4 loads about 20% faster), as any SQL table
        is unordered; query with ORDER BY. With it, rows keep their order in the file.
        """
        self.path = str(path)
        if memory_limit and not _MEMORY.match(memory_limit):
            raise SinkError(f"invalid DuckDB memory limit {memory_limit!r}; write e.g. '256MB'")
        try:
            if self.path != ":memory:":
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            self.con = duckdb.connect(self.path)
            if memory_limit:
                self.con.execute(f"SET memory_limit = '{memory_limit}'")
            self.con.execute(f"SET preserve_insertion_order = {str(preserve_order).lower()}")
            ledger.create(self.con)
        except (duckdb.Error, OSError) as exc:
            raise SinkError(
                f"cannot open DuckDB database {self.path!r}: {exc}; check that the directory is "
                "writable and that no other process has the file open (DuckDB allows one writer)"
            ) from exc
        self._columns: dict[str, dict[str, str]] = {}  # table -> column -> DuckDB type
        self._accepted: dict[str, set[tuple[tuple[str, str], ...]]] = {}  # table -> polars schemas

    def close(self) -> None:
        """Close the connection (uncommitted work is rolled back)."""
        self.con.close()

    # --- reading state -----------------------------------------------------------------

    def loaded(self, table: str) -> dict[str, str | None]:
        """uri -> etag of every file whose rows are in `table` now."""
        return ledger.active_loads(self.con, table)

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
        frames: Iterable[pl.DataFrame], run_id: str, rebuild: bool = False,
    ) -> tuple[int, bool]:
        """Load one file (replacing an earlier version's rows); returns (rows, replaced).

        The frames are streamed into DuckDB as one Arrow stream in one INSERT, which DuckDB
        writes out to disk as it goes: memory stays bounded by a batch, not by the file, while
        the file's rows and its ledger row still commit in one transaction. With `rebuild`
        (mode="replace") the table is first dropped and its loads forgotten in that same
        transaction, so a replace whose files all fail leaves the old table in place.
        """
        now = datetime.now(UTC)
        stream = _Stream(frames, uri)
        try:
            with self._transaction():
                if rebuild:
                    self._drop_table(table)
                replaced = bool(self._drop_previous(table, [uri]))
                if stream.head is not None:
                    self.con.register(_HEAD, stream.head.to_arrow())
                    self.con.register(_FRAME, stream.reader())
                    try:
                        self._insert(table, _FRAME, _signature(stream.head), uri, etag, now,
                                     probe=_HEAD)
                    except duckdb.Error:
                        stream.reraise()  # a parse error inside the stream is the real one
                        raise
                    finally:
                        # In a transaction DuckDB has aborted, unregister fails too; that error
                        # must not hide the one that aborted it.
                        for name in (_FRAME, _HEAD):
                            with contextlib.suppress(duckdb.Error):
                                self.con.unregister(name)
                done = FileResult(uri, "loaded", rows=stream.rows, bytes=size, etag=etag)
                ledger.add(self.con, table, ledger.rows_of([done]), run_id=run_id, at=now,
                           active=True)
        except BaseException:
            self._forget(table)  # DDL may have been rolled back with the transaction
            raise
        return stream.rows, replaced

    def write_many(
        self, table: str, files: Sequence[FileWrite], *, run_id: str, rebuild: bool = False,
    ) -> list[tuple[int, bool]]:
        """Load several small in-memory files in one transaction; returns (rows, replaced) each.

        Each file's rows still commit with its ledger row, as with `write_file`; files of one
        shape go in as one Arrow batch. If anything fails the whole group rolls back and the
        error propagates: the caller then writes the files one by one to find the culprit.
        """
        now = datetime.now(UTC)
        groups: dict[tuple[tuple[str, str], ...], list[FileWrite]] = {}
        for f in files:
            if f.frame.width:
                _check_lineage(f.frame, f.uri)
                groups.setdefault(_signature(f.frame), []).append(f)
        try:
            with self._transaction():
                if rebuild:
                    self._drop_table(table)
                replaced = self._drop_previous(table, [f.uri for f in files])
                for signature, members in groups.items():
                    self.con.register(_FRAME, _with_lineage(members).to_arrow())
                    try:
                        self._insert(table, _FRAME, signature, None, None, now)
                    finally:
                        with contextlib.suppress(duckdb.Error):
                            self.con.unregister(_FRAME)
                done = [FileResult(f.uri, "loaded", rows=f.frame.height, bytes=f.size,
                                   etag=f.etag) for f in files]
                ledger.add(self.con, table, ledger.rows_of(done), run_id=run_id, at=now,
                           active=True)
        except BaseException:
            self._forget(table)
            raise
        return [(f.frame.height, f.uri in replaced) for f in files]

    def _drop_table(self, table: str) -> None:
        self.con.execute(f"DROP TABLE IF EXISTS {quote(table)}")
        ledger.deactivate(self.con, table)
        self._forget(table)

    def record(self, table: str, results: Sequence[FileResult], *, run_id: str) -> None:
        """Add ledger rows, in one statement, for files that were not loaded."""
        if results:
            with self._transaction():
                ledger.add(self.con, table, ledger.rows_of(results), run_id=run_id,
                           at=datetime.now(UTC), active=False)

    # --- internals -----------------------------------------------------------------------

    def _transaction(self) -> _Transaction:
        return _Transaction(self.con)

    def _forget(self, table: str) -> None:
        self._columns.pop(table, None)
        self._accepted.pop(table, None)

    def _drop_previous(self, table: str, uris: Sequence[str]) -> set[str]:
        """Delete the rows of earlier loads of these files; returns the URIs that had some."""
        previous = ledger.active_among(self.con, table, uris)
        if previous:
            if self.table_columns(table):
                self.con.execute(f"DELETE FROM {quote(table)} WHERE _source_uri IN "
                                 "(SELECT unnest(?::VARCHAR[]))", [list(previous)])
            ledger.deactivate(self.con, table, list(previous))
        return previous

    def _insert(
        self, table: str, source: str, signature: tuple[tuple[str, str], ...], uri: str | None,
        etag: str | None, now: datetime, probe: str | None = None,
    ) -> None:
        """Append the rows of relation `source` (a registered frame or Arrow stream).

        With `uri` None the source already carries `_source_uri` and `_source_etag` per row.
        Types are checked on `probe` (default: the source itself), since a stream can be read
        only once.
        """
        params: list[object]
        if uri is None:
            lineage, params = "?::TIMESTAMPTZ AS _ingested_at", [now]
        else:
            lineage = "?::VARCHAR AS _source_uri, ?::VARCHAR AS _source_etag, " \
                      "?::TIMESTAMPTZ AS _ingested_at"
            params = [uri, etag, now]
        exact = True
        if not self.table_columns(table):
            self.con.execute(
                f"CREATE TABLE {quote(table)} AS SELECT *, {lineage} FROM {quote(source)}", params
            )
            self._columns.pop(table, None)
        else:
            exact = self._reconcile(table, probe or source, signature, uri or "these files")
            self.con.execute(
                f"INSERT INTO {quote(table)} BY NAME SELECT *, {lineage} FROM {quote(source)}",
                params,
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


class _Stream:
    """A file's frames as one Arrow stream with the first frame's schema; counts the rows, and
    keeps an exception raised while DuckDB was pulling batches (DuckDB would re-wrap it)."""

    def __init__(self, frames: Iterable[pl.DataFrame], uri: str) -> None:
        self._frames = iter(frames)
        self.head = next((f for f in self._frames if f.width), None)
        if self.head is not None:
            _check_lineage(self.head, uri)
        self.rows = 0
        self._error: BaseException | None = None

    def reader(self) -> pa.RecordBatchReader:
        assert self.head is not None
        schema = self.head.to_arrow().schema
        return pa.RecordBatchReader.from_batches(schema, self._batches(schema))

    def _batches(self, schema: pa.Schema) -> Iterator[pa.RecordBatch]:
        assert self.head is not None
        try:
            for frame in itertools.chain([self.head], self._frames):
                if frame.width:
                    table = frame.to_arrow()
                    self.rows += frame.height
                    if table.schema != schema:
                        table = table.cast(schema)
                    yield from table.to_batches()
        except BaseException as exc:
            self._error = exc
            raise

    def reraise(self) -> None:
        if self._error is not None:
            raise self._error


def _with_lineage(files: Sequence[FileWrite]) -> pl.DataFrame:
    """The files' rows (all of one shape) in one frame, with their `_source_uri`/`_etag`.

    A handful of polars calls for the whole group, not a few per file: each call releases and
    retakes the GIL, and while the event loop is busy every retake can wait for a switch
    interval (5 ms), which made a group of 256 small files take ten times its CPU time.
    """
    frames = [f.frame for f in files]
    data = frames[0] if len(frames) == 1 else pl.concat(frames, rechunk=False)
    filled = [f for f in files if f.frame.height]  # explode() makes a null row of an empty list
    lineage = pl.DataFrame(
        {"_source_uri": [f.uri for f in filled], "_source_etag": [f.etag for f in filled],
         "rows": [f.frame.height for f in filled]},
        schema={"_source_uri": pl.String, "_source_etag": pl.String, "rows": pl.UInt32},
    ).select(pl.exclude("rows").repeat_by("rows").explode())
    return pl.concat([data, lineage], how="horizontal")


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
