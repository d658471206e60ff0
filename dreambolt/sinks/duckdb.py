"""The DuckDB sink: data tables with lineage columns, and the per-file load ledger.

One `DuckDBSink` owns one connection and is used from one thread at a time (the ingester runs it
on a single worker thread). Each file's rows and its ledger row commit in one transaction, so a
killed process leaves every file either fully loaded or not at all.

Any number of sinks may write one database: in one process they share DuckDB's instance of the
file, and every write transaction first takes the table's claim (see `ledger.claim`), then reads
the ledger again: a file whose (uri, etag) another writer loaded meanwhile is reported unchanged
and not written. A writer that finds the claim taken rolls back and tries again. Another process
cannot open the file at all while one has it: `DuckDBSink` waits for it up to `lock_timeout`.
"""

from __future__ import annotations

import contextlib
import random
import re
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import duckdb
import polars as pl
import pyarrow as pa
from polars.exceptions import PanicException

from ..errors import DreamBoltError, SinkError
from ..report import FileResult
from . import destination, ledger
from .failures import io_failure
from .ledger import LEDGER
from .memory import MemoryCap, parse_size

__all__ = ["LEDGER", "DuckDBSink", "FileWrite", "Written", "quote", "validate_table_name"]

T = TypeVar("T")
LINEAGE = ("_source_uri", "_source_etag", "_ingested_at")
_FRAME = "__dreambolt_frame"
_HEAD = "__dreambolt_head"
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
_CAST_MARK = "[dreambolt:lossy] "  # starts the message of a value refused inside an INSERT
_FIRST_DELAY, _MAX_DELAY = 0.005, 0.25  # between tries of a claim another writer holds
# Adding k columns one ALTER at a time keeps a copy of the table's catalog entry per ALTER until
# COMMIT: about 600 bytes x k x (width + k/2) (2,000 ALTERs took 1.1 GB, 20,000 over 6 GB).
# Past this many column copies (~120 MB) the table is rebuilt in one statement instead.
_ALTER_COPIES = 200_000


@dataclass(frozen=True, slots=True)
class FileWrite:
    """One small file's parsed rows, for `DuckDBSink.write_many`."""

    uri: str
    etag: str | None
    size: int
    frame: pl.DataFrame


@dataclass(frozen=True, slots=True)
class Written:
    """What `write_file`/`write_many` did with one file."""

    rows: int
    replaced: bool  # an earlier version's rows were replaced
    unchanged: bool = False  # (uri, etag) was already loaded when this write took its claim:
    #                          nothing written (rows 0; the ledger has an 'unchanged' row)


def quote(name: str) -> str:
    """Quote an SQL identifier (names are validated too; quoting is never skipped)."""
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def validate_table_name(name: str) -> str:
    """Return `name` if it is a safe table name, else raise SinkError saying what is allowed."""
    if not _NAME.match(name) or name.lower().startswith("_dreambolt"):
        raise SinkError(
            f"invalid table name {name!r}: use letters, digits and underscores, starting with a "
            "letter or underscore, at most 63 characters (and not starting with _dreambolt), "
            "e.g. --table events_2024"
        )
    return name


class _Busy(Exception):
    """Another open transaction holds the table's claim (or committed since ours began)."""


class DuckDBSink:
    """Writes frames into DuckDB tables and keeps the load ledger."""

    def __init__(
        self, path: str | Path, *, memory_limit: str | None = "192MB",
        preserve_order: bool = False, lock_timeout: float = 30.0,
    ) -> None:
        """Open (or create) the database; `memory_limit` caps DuckDB's buffer pool, which
        otherwise keeps every block it wrote cached (DuckDB spills to disk past the cap).

        Without `preserve_order`, DuckDB may store a file's rows out of file order (it writes
        row groups from several threads at once: S4 loads about 20% faster), as any SQL table
        is unordered; query with ORDER BY. With it, rows keep their order in the file.

        The path must be ':memory:', a DuckDB database file, or a new file in an existing
        folder; while another process has the file open, this waits up to `lock_timeout`
        seconds. Every failure to open is a SinkError with `fatal` set and a `code`:
        InvalidPath, IsADirectory, NoSuchDirectory, NotADatabase, Locked, InvalidSetting,
        ENOSPC, IOError or OpenFailed.
        """
        self.path = str(path)
        self.lock_timeout = max(0.0, lock_timeout)
        base = parse_size(memory_limit) if memory_limit else None
        self.con, self.file = destination.connect(self.path, lock_timeout=self.lock_timeout)
        database = self.file if self.file != ":memory:" else f":memory:{id(self.con)}"
        self._memory = MemoryCap(self.con, database, base)
        try:
            self._memory.apply()
            # SESSION: the instance is shared with every other sink on this file in-process.
            self.con.execute(
                f"SET SESSION preserve_insertion_order = {str(preserve_order).lower()}")
            # DuckDB draws a progress bar on stdout for statements over 2 s; stdout is the
            # caller's (the CLI's --json report goes there).
            self.con.execute("SET SESSION enable_progress_bar = false")
            ledger.create(self.con)
        except duckdb.Error as exc:
            self.con.close()
            raise io_failure(exc, self.path, self.file) or SinkError(
                f"cannot open DuckDB database {self.path!r}: {exc}; check that the file is a "
                "DuckDB database this version can write", code="OpenFailed", fatal=True,
            ) from exc
        self._columns: dict[str, dict[str, str]] = {}  # table -> column -> DuckDB type
        self._accepted: dict[str, set[tuple[tuple[str, str], ...]]] = {}  # table -> schemas
        self._claimed: dict[str, int] = {}  # table -> its write count after our last commit
        self._claim_rows: set[str] = set()  # tables whose claim row exists
        self._fresh: set[str] = set()  # tables created by the transaction in progress

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
    ) -> Written:
        """Load one file (replacing an earlier version's rows).

        Under the table's claim, the ledger is read first: if this (uri, etag) is loaded
        already, nothing is written, no frame is taken from `frames`, and the result says
        `unchanged`. Otherwise the frames are streamed into DuckDB as Arrow streams (one INSERT
        per run of frames of one schema: a frame with new columns or another dtype adds the
        columns, or widens a column the transaction created, and starts the next INSERT), which
        DuckDB writes out as it goes: memory stays bounded by a batch, while the file's rows and
        its ledger row still commit in one transaction. With `rebuild` (mode="replace") the table
        is first dropped and its loads forgotten in that same transaction, so a replace whose
        files all fail leaves the old table in place.

        Raises SinkError with `fatal` set when the disk is full (code ENOSPC) or the database
        file fails (IOError); SinkError naming the file when its rows cannot be converted; and
        whatever the frames raise (FormatError...). The transaction is rolled back in each case.
        """
        now = datetime.now(UTC)
        stream = _Stream(frames, uri)

        def body() -> Written:
            if rebuild:
                self._drop_table(table)
            active = ledger.active_etags(self.con, table, [uri])
            if etag is not None and uri in active and active[uri] == etag:
                self._note_unchanged(table, [FileResult(uri, "unchanged", bytes=size, etag=etag)],
                                     run_id, now)
                return Written(0, False, unchanged=True)
            replaced = bool(self._drop_previous(table, list(active)))
            self._stream_into(table, stream, uri, etag, now)
            done = FileResult(uri, "loaded", rows=stream.rows, bytes=size, etag=etag)
            ledger.add(self.con, table, ledger.rows_of([done]), run_id=run_id, at=now,
                       active=True)
            return Written(stream.rows, replaced)

        return self._write(table, body, what=uri, replayable=lambda: not stream.started)

    def write_many(
        self, table: str, files: Sequence[FileWrite], *, run_id: str, rebuild: bool = False,
    ) -> list[Written]:
        """Load several small in-memory files in one transaction; one `Written` per file.

        Each file's rows still commit with its ledger row, as with `write_file`, and a file
        whose (uri, etag) is loaded already is left alone (`unchanged`). Files of one shape go
        in as one Arrow batch. If anything fails the whole group rolls back and the error
        propagates: the caller then writes the files one by one to find the culprit.
        """
        now = datetime.now(UTC)
        for f in files:
            if f.frame.width:
                _check_lineage(f.frame, f.uri)

        def body() -> list[Written]:
            if rebuild:
                self._drop_table(table)
            active = ledger.active_etags(self.con, table, [f.uri for f in files])
            same = {f.uri for f in files
                    if f.etag is not None and f.uri in active and active[f.uri] == f.etag}
            todo = [f for f in files if f.uri not in same]
            replaced = self._drop_previous(table, [u for u in active if u not in same])
            groups: dict[tuple[tuple[str, str], ...], list[FileWrite]] = {}
            for f in todo:
                if f.frame.width:
                    groups.setdefault(_signature(f.frame), []).append(f)
            for signature, members in groups.items():
                self.con.register(_FRAME, _with_lineage(members).to_arrow())
                try:
                    self._insert(table, _FRAME, signature, None, None, now)
                finally:
                    with contextlib.suppress(duckdb.Error):
                        self.con.unregister(_FRAME)
            done = [FileResult(f.uri, "loaded", rows=f.frame.height, bytes=f.size, etag=f.etag)
                    for f in todo]
            if done:
                ledger.add(self.con, table, ledger.rows_of(done), run_id=run_id, at=now,
                           active=True)
            self._note_unchanged(table, [FileResult(f.uri, "unchanged", bytes=f.size,
                                                    etag=f.etag)
                                         for f in files if f.uri in same], run_id, now)
            return [Written(0, False, unchanged=True) if f.uri in same
                    else Written(f.frame.height, f.uri in replaced) for f in files]

        named = ", ".join(f.uri for f in files[:3]) + (f" and {len(files) - 3} more"
                                                       if len(files) > 3 else "")
        return self._write(table, body, what=named or "no files", replayable=lambda: True)

    def record(self, table: str, results: Sequence[FileResult], *, run_id: str) -> None:
        """Add ledger rows, in one statement, for files that were not loaded."""
        if results:
            try:
                with _Transaction(self.con):
                    ledger.add(self.con, table, ledger.rows_of(results), run_id=run_id,
                               at=datetime.now(UTC), active=False)
            except duckdb.Error as exc:
                fatal = io_failure(exc, self.path, self.file)
                if fatal is None:
                    raise
                raise fatal from exc

    # --- transactions --------------------------------------------------------------------

    def _write(self, table: str, body: Callable[[], T], *, what: str,
               replayable: Callable[[], bool]) -> T:
        """Run `body` in a write transaction holding the table's claim; retry it while another
        writer holds the claim (up to `lock_timeout`), and while nothing was consumed yet that
        cannot be read again."""
        deadline = time.monotonic() + self.lock_timeout
        delay = _FIRST_DELAY
        while True:
            try:
                try:
                    if table not in self._claim_rows:
                        ledger.ensure_claim(self.con, table)
                        self._claim_rows.add(table)
                    with _Transaction(self.con):
                        self._fresh.clear()
                        seen = self._claim(table)
                        result = body()
                finally:
                    self._fresh.clear()
                    with contextlib.suppress(duckdb.Error):
                        self._memory.release()
            except BaseException as exc:
                self._forget(table)  # DDL may have been rolled back with the transaction
                retry = isinstance(exc, _Busy) or (
                    isinstance(exc, duckdb.TransactionException) and replayable()
                    and io_failure(exc, self.path, self.file) is None)
                left = deadline - time.monotonic()
                if not retry or left <= 0:
                    error = self._translate(exc, table, what)
                    if error is exc:
                        raise
                    raise error from (exc.__cause__ if isinstance(exc, _Busy) else exc)
                time.sleep(min(left, delay * random.uniform(0.5, 1.5)))
                delay = min(delay * 2, _MAX_DELAY)
                continue
            self._claimed[table] = seen + 1
            return result

    def _claim(self, table: str) -> int:
        """Take the table's claim (the transaction's first statement); forget what this sink
        knows of the table if another writer wrote it since this sink last did."""
        try:
            seen = ledger.claim(self.con, table)
        except duckdb.TransactionException as exc:
            raise _Busy(str(exc)) from exc
        if seen is None:  # the claim row is gone (someone deleted it): make it again
            self._claim_rows.discard(table)
            raise _Busy("no claim row")
        if self._claimed.get(table) != seen:
            self._forget(table)
        return seen

    def _translate(self, exc: BaseException, table: str, what: str) -> BaseException:
        """The error to raise for `exc`, raised while writing `what` into `table`."""
        if isinstance(exc, DreamBoltError):
            return exc
        fatal = io_failure(exc, self.path, self.file)
        if fatal is not None:
            return fatal
        if isinstance(exc, _Busy):
            return SinkError(
                f"{what}: table {table!r} of {self.path!r} was being written by another "
                f"connection of this process for over {self.lock_timeout:g}s (another Ingester "
                "on the same database?); not loaded: run again once it is done",
                code="Busy")
        if isinstance(exc, duckdb.InvalidInputException) and _CAST_MARK in str(exc):
            return SinkError(str(exc).split(_CAST_MARK, 1)[1])
        if isinstance(exc, pa.ArrowException | PanicException):
            hint = ("polars failed on this file's data (a bug in polars: please report it with "
                    "the file)" if isinstance(exc, PanicException) else
                    "a column nested this deep, or of this type, cannot be handed over: flatten "
                    "or drop it before loading")
            return SinkError(f"{what}: the rows could not be handed to DuckDB "
                             f"({type(exc).__name__}: {exc}); not loaded: {hint}")
        if isinstance(exc, duckdb.TransactionException):
            return SinkError(
                f"{what}: table {table!r} was changed by another writer at the same time "
                f"({exc}); not loaded: run again", code="Conflict")
        return exc

    def _note_unchanged(self, table: str, results: list[FileResult], run_id: str,
                        now: datetime) -> None:
        if results:
            ledger.add(self.con, table, ledger.rows_of(results), run_id=run_id, at=now,
                       active=False)

    def _forget(self, table: str) -> None:
        self._columns.pop(table, None)
        self._accepted.pop(table, None)
        self._claimed.pop(table, None)

    def _drop_table(self, table: str) -> None:
        self.con.execute(f"DROP TABLE IF EXISTS {quote(table)}")
        ledger.deactivate(self.con, table)
        self._columns.pop(table, None)
        self._accepted.pop(table, None)

    def _drop_previous(self, table: str, previous: Sequence[str]) -> set[str]:
        """Delete the rows of these files' live loads (from the ledger); returns them."""
        if previous:
            if self.table_columns(table):
                self.con.execute(f"DELETE FROM {quote(table)} WHERE _source_uri IN "
                                 "(SELECT unnest(?::VARCHAR[]))", [list(previous)])
            ledger.deactivate(self.con, table, list(previous))
        return set(previous)

    # --- inserting -----------------------------------------------------------------------

    def _stream_into(self, table: str, stream: _Stream, uri: str, etag: str | None,
                     now: datetime) -> None:
        """Insert the stream's frames, one INSERT per run of frames of one schema."""
        for head in stream.segments():
            self.con.register(_HEAD, stream.head_arrow)
            self.con.register(_FRAME, stream.reader())
            try:
                self._insert(table, _FRAME, _signature(head), uri, etag, now, probe=_HEAD)
            except duckdb.Error:
                stream.reraise()  # a parse error inside the stream is the real one
                raise
            finally:
                # In a transaction DuckDB has aborted, unregister fails too; that error must
                # not hide the one that aborted it.
                for name in (_FRAME, _HEAD):
                    with contextlib.suppress(duckdb.Error):
                        self.con.unregister(name)
            stream.reraise()

    def _insert(
        self, table: str, source: str, signature: tuple[tuple[str, str], ...], uri: str | None,
        etag: str | None, now: datetime, probe: str | None = None,
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
            lineage = "?::VARCHAR AS _source_uri, ?::VARCHAR AS _source_etag, " \
                      "?::TIMESTAMPTZ AS _ingested_at"
            params, who = [uri, etag, now], _literal(uri)
        if not self.table_columns(table):
            self._memory.need(len(signature) + len(LINEAGE))
            self.con.execute(
                f"CREATE TABLE {quote(table)} AS SELECT *, {lineage} FROM {quote(source)}", params
            )
            self._columns.pop(table, None)
            self._fresh.add(table)
            self._accepted.setdefault(table, set()).add(signature)
            return
        casts = self._reconcile(table, probe or source, signature)
        self._memory.need(len(self.table_columns(table)))
        columns = "*"
        if casts:
            columns = "* REPLACE (" + ", ".join(
                _guarded(name, kind, table_kind, table, who) for name, kind, table_kind in casts
            ) + ")"
        self.con.execute(
            f"INSERT INTO {quote(table)} BY NAME SELECT {columns}, {lineage} "
            f"FROM {quote(source)}", params,
        )
        if not casts:  # values that need converting are checked again in every frame
            self._accepted.setdefault(table, set()).add(signature)

    def _reconcile(
        self, table: str, source: str, signature: tuple[tuple[str, str], ...]
    ) -> list[tuple[str, str, str]]:
        """Add new columns, widen columns where allowed; returns the (column, type in source,
        type in table) of every column whose values must be converted (checked row by row)."""
        if signature in self._accepted.get(table, set()):
            return []  # same shape as a frame already written since the claim
        existing = {name.lower(): (name, kind) for name, kind in self.table_columns(table).items()}
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
        elif table in self._fresh:
            try:
                target = str(self.con.execute(
                    f"DESCRIBE SELECT x FROM (SELECT NULL::{table_kind} AS x "
                    f"UNION ALL SELECT NULL::{kind} AS x)").fetchall()[0][1])
            except duckdb.Error:
                return table_kind  # no common type: the values are checked one by one
            if target == table_kind:
                return table_kind
            col = quote(column)
            lossy = self.con.execute(
                f"SELECT 1 FROM {quote(table)} WHERE {col} IS NOT NULL AND "
                f"TRY_CAST(TRY_CAST({col} AS {target}) AS {table_kind}) IS DISTINCT FROM {col} "
                "LIMIT 1").fetchall()
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
        width = len(self.table_columns(table))
        if len(new) * (width + len(new) // 2) > _ALTER_COPIES and self._rebuildable(table):
            scratch = quote(f"_dreambolt_widen_{table}")
            added = ", ".join(f"NULL::{kind} AS {quote(name)}" for name, kind in new)
            self._memory.need(width + len(new))
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
    message = (f": column {name!r} is {kind} in this file but {table_kind} in table {table!r}, "
               "and a value ('")
    tail = ("') does not convert without loss; load the file into another table (--table) or "
            "rebuild this one (--mode replace)")
    return (
        f"CASE WHEN {col} IS NULL THEN NULL "
        f"WHEN TRY_CAST(TRY_CAST({col} AS {table_kind}) AS {kind}) IS NOT DISTINCT FROM {col} "
        f"THEN TRY_CAST({col} AS {table_kind}) "
        f"ELSE error({_literal(_CAST_MARK)} || {who} || {_literal(message)} || {col}::VARCHAR "
        f"|| {_literal(tail)}) END AS {col}"
    )


class _Stream:
    """A file's frames as Arrow streams, one per run of frames of one schema; counts the rows,
    and keeps an exception raised while DuckDB was pulling batches (DuckDB would re-wrap it).

    Nothing is taken from `frames` until `segments` is iterated.
    """

    def __init__(self, frames: Iterable[pl.DataFrame], uri: str) -> None:
        self._frames = iter(frames)
        self._uri = uri
        self.started = False  # a frame was taken (the write can no longer be replayed)
        self.rows = 0
        self._pending: pl.DataFrame | None = None  # the head of the next run
        self._head: pl.DataFrame | None = None
        self.head_arrow: pa.Table | None = None
        self._error: BaseException | None = None

    def segments(self) -> Iterator[pl.DataFrame]:
        """The first frame of each run of frames of one schema; `reader` streams the run."""
        while True:
            head, self._pending = self._pending, None
            if head is None:
                head = self._next()
            if head is None:
                return
            _check_lineage(head, self._uri)
            self._head, self.head_arrow = head, head.to_arrow()
            yield head

    def _next(self) -> pl.DataFrame | None:
        for frame in self._frames:
            self.started = True
            if frame.width:
                return frame
        return None

    def reader(self) -> pa.RecordBatchReader:
        assert self._head is not None and self.head_arrow is not None
        schema = self.head_arrow.schema
        return pa.RecordBatchReader.from_batches(
            schema, self._batches(self._head, self.head_arrow, schema))

    def _batches(self, head: pl.DataFrame, first: pa.Table,
                 schema: pa.Schema) -> Iterator[pa.RecordBatch]:
        signature = _signature(head)
        try:
            self.rows += head.height
            yield from first.to_batches()
            while (frame := self._next()) is not None:
                if _signature(frame) != signature:
                    self._pending = frame  # the next run's head: this INSERT ends here
                    return
                table = frame.to_arrow()
                if table.schema != schema:
                    table = table.cast(schema)
                self.rows += frame.height
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
            try:
                self.con.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(duckdb.Error):  # DuckDB ends a failed COMMIT itself
                    self.con.execute("ROLLBACK")
                raise
        else:
            # The transaction may be over already (a failed COMMIT, a fatal error): the error
            # that ended it is the one to see.
            with contextlib.suppress(duckdb.Error):
                self.con.execute("ROLLBACK")
