"""The DuckDB sink (a `Sink`): data tables with lineage columns, and the per-file load ledger.

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
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import TypeVar

import duckdb
import polars as pl

from dreambolt.errors import SinkError
from dreambolt.report import FileResult
from dreambolt.sinks import destination, ledger
from dreambolt.sinks.base import FileWrite, Written
from dreambolt.sinks.embeddings import DuckDBEmbeddingCache
from dreambolt.sinks.failures import Busy, io_failure, retryable, write_error
from dreambolt.sinks.frames import FrameStream, Signature, check_lineage, signature, with_lineage
from dreambolt.sinks.ledger import LEDGER
from dreambolt.sinks.memory import MemoryCap, parse_size
from dreambolt.sinks.schema import Schemas
from dreambolt.sinks.sql import Transaction, quote

__all__ = ["LEDGER", "DuckDBSink", "FileWrite", "Written", "quote"]

T = TypeVar("T")
_FRAME = "__dreambolt_frame"
_HEAD = "__dreambolt_head"
_FIRST_DELAY, _MAX_DELAY = 0.005, 0.25  # between tries of a claim another writer holds


class DuckDBSink:
    """Writes frames into DuckDB tables and keeps the load ledger: the `Sink` of a DuckDB file."""

    def __init__(
        self,
        path: str | Path,
        *,
        memory_limit: str | None = "192MB",
        preserve_order: bool = False,
        lock_timeout: float = 30.0,
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
                f"SET SESSION preserve_insertion_order = {str(preserve_order).lower()}"
            )
            # DuckDB draws a progress bar on stdout for statements over 2 s; stdout is the
            # caller's (the CLI's --json report goes there).
            self.con.execute("SET SESSION enable_progress_bar = false")
            ledger.create(self.con)
        except duckdb.Error as exc:
            self.con.close()
            raise io_failure(exc, self.path, self.file) or SinkError(
                f"cannot open DuckDB database {self.path!r}: {exc}; check that the file is a "
                "DuckDB database this version can write",
                code="OpenFailed",
                fatal=True,
            ) from exc
        self._schemas = Schemas(self.con, self._memory)
        self._claimed: dict[str, int] = {}  # table -> its write count after our last commit
        self._claim_rows: set[str] = set()  # tables whose claim row exists

    def close(self) -> None:
        """Close the connection (uncommitted work is rolled back)."""
        self.con.close()

    @property
    def name(self) -> str:
        """The database as the user named it."""
        return self.path

    def owns(self, uri: str) -> bool:
        """Whether `uri` is the database file or its write-ahead log."""
        if self.file == ":memory:":
            return False
        own = Path(self.file).as_uri()
        return uri in (own, own + ".wal")

    def embedding_cache(self) -> DuckDBEmbeddingCache:
        """The `_dreambolt_embeddings` table of this database (created if missing)."""
        return DuckDBEmbeddingCache(self.con)

    # --- reading state -----------------------------------------------------------------

    def loaded(self, table: str) -> dict[str, str | None]:
        """uri -> etag of every file whose rows are in `table` now."""
        return ledger.active_loads(self.con, table)

    def table_columns(self, table: str) -> dict[str, str]:
        """Column -> DuckDB type of `table` ({} when it does not exist)."""
        return self._schemas.columns(table)

    # --- writing -------------------------------------------------------------------------

    def write_file(
        self,
        table: str,
        *,
        uri: str,
        etag: str | None,
        size: int,
        frames: Iterable[pl.DataFrame],
        run_id: str,
        rebuild: bool = False,
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
        stream = FrameStream(frames, uri)
        load = partial(self._insert_file, table, uri, etag, size, stream, run_id, rebuild)
        return self._write(table, load, what=uri, replayable=lambda: not stream.started)

    def _insert_file(
        self,
        table: str,
        uri: str,
        etag: str | None,
        size: int,
        stream: FrameStream,
        run_id: str,
        rebuild: bool,
    ) -> Written:
        """`write_file`'s work, inside the write transaction."""
        now = datetime.now(UTC)
        if rebuild:
            self._drop_table(table)
        active = ledger.active_etags(self.con, table, [uri])
        if etag is not None and uri in active and active[uri] == etag:
            self._note_unchanged(
                table, [FileResult(uri, "unchanged", bytes=size, etag=etag)], run_id, now
            )
            return Written(0, False, unchanged=True)
        replaced = bool(self._drop_previous(table, list(active)))
        self._stream_into(table, stream, uri, etag, now)
        done = FileResult(uri, "loaded", rows=stream.rows, bytes=size, etag=etag)
        ledger.add(self.con, table, ledger.rows_of([done]), run_id=run_id, at=now, active=True)
        return Written(stream.rows, replaced)

    def write_many(
        self,
        table: str,
        files: Sequence[FileWrite],
        *,
        run_id: str,
        rebuild: bool = False,
    ) -> list[Written]:
        """Load several small in-memory files in one transaction; one `Written` per file.

        Each file's rows still commit with its ledger row, as with `write_file`, and a file
        whose (uri, etag) is loaded already is left alone (`unchanged`). Files of one shape go
        in as one Arrow batch. If anything fails the whole group rolls back and the error
        propagates: the caller then writes the files one by one to find the culprit.
        """
        for f in files:
            if f.frame.width:
                check_lineage(f.frame, f.uri)
        named = ", ".join(f.uri for f in files[:3]) + (
            f" and {len(files) - 3} more" if len(files) > 3 else ""
        )
        load = partial(self._load_group, table, files, run_id, rebuild)
        return self._write(table, load, what=named or "no files", replayable=lambda: True)

    def _load_group(
        self, table: str, files: Sequence[FileWrite], run_id: str, rebuild: bool
    ) -> list[Written]:
        """`write_many`'s work, inside the write transaction."""
        now = datetime.now(UTC)
        if rebuild:
            self._drop_table(table)
        active = ledger.active_etags(self.con, table, [f.uri for f in files])
        same = {
            f.uri
            for f in files
            if f.etag is not None and f.uri in active and active[f.uri] == f.etag
        }
        todo = [f for f in files if f.uri not in same]
        replaced = self._drop_previous(table, [u for u in active if u not in same])
        self._insert_group(table, todo, now)
        done = [
            FileResult(f.uri, "loaded", rows=f.frame.height, bytes=f.size, etag=f.etag)
            for f in todo
        ]
        if done:
            ledger.add(self.con, table, ledger.rows_of(done), run_id=run_id, at=now, active=True)
        unchanged = [
            FileResult(f.uri, "unchanged", bytes=f.size, etag=f.etag)
            for f in files
            if f.uri in same
        ]
        self._note_unchanged(table, unchanged, run_id, now)
        return [
            Written(0, False, unchanged=True)
            if f.uri in same
            else Written(f.frame.height, f.uri in replaced)
            for f in files
        ]

    def _insert_group(self, table: str, files: Sequence[FileWrite], now: datetime) -> None:
        """Insert small files' rows: the files of one shape as one Arrow batch."""
        groups: dict[Signature, list[FileWrite]] = {}
        for f in files:
            if f.frame.width:
                groups.setdefault(signature(f.frame), []).append(f)
        for shape, members in groups.items():
            self.con.register(_FRAME, with_lineage(members).to_arrow())
            try:
                self._schemas.insert(table, _FRAME, shape, None, None, now)
            finally:
                with contextlib.suppress(duckdb.Error):
                    self.con.unregister(_FRAME)

    def record(self, table: str, results: Sequence[FileResult], *, run_id: str) -> None:
        """Add ledger rows, in one statement, for files that were not loaded; a fatal SinkError
        if the ledger cannot be written (then nothing can)."""
        if not results:
            return
        try:
            with Transaction(self.con):
                ledger.add(
                    self.con,
                    table,
                    ledger.rows_of(results),
                    run_id=run_id,
                    at=datetime.now(UTC),
                    active=False,
                )
        except duckdb.Error as exc:
            raise io_failure(exc, self.path, self.file) or SinkError(
                f"{self.path}: cannot write the load ledger: {exc}; check the disk and the --db "
                "path",
                code="IOError",
                fatal=True,
            ) from exc

    # --- transactions --------------------------------------------------------------------

    def _write(
        self, table: str, body: Callable[[], T], *, what: str, replayable: Callable[[], bool]
    ) -> T:
        """Run `body` in a write transaction holding the table's claim; retry it while another
        writer holds the claim (up to `lock_timeout`), and while nothing was consumed yet that
        cannot be read again."""
        deadline = time.monotonic() + self.lock_timeout
        delay = _FIRST_DELAY
        while True:
            try:
                result, seen = self._attempt(table, body)
            except BaseException as exc:
                self._forget(table)  # DDL may have been rolled back with the transaction
                left = deadline - time.monotonic()
                if not retryable(exc, replayable, self.path, self.file) or left <= 0:
                    error = write_error(
                        exc, table, what, db=self.path, file=self.file, waited=self.lock_timeout
                    )
                    if error is exc:
                        raise
                    raise error from (exc.__cause__ if isinstance(exc, Busy) else exc)
                time.sleep(min(left, delay * random.uniform(0.5, 1.5)))
                delay = min(delay * 2, _MAX_DELAY)
                continue
            self._claimed[table] = seen + 1
            return result

    def _attempt(self, table: str, body: Callable[[], T]) -> tuple[T, int]:
        """One try of `_write`: `body`'s result, and the table's write count before it."""
        try:
            if table not in self._claim_rows:
                ledger.ensure_claim(self.con, table)
                self._claim_rows.add(table)
            with Transaction(self.con):
                self._schemas.fresh.clear()
                seen = self._claim(table)
                result = body()
        finally:
            self._schemas.fresh.clear()
            with contextlib.suppress(duckdb.Error):
                self._memory.release()
        return result, seen

    def _claim(self, table: str) -> int:
        """Take the table's claim (the transaction's first statement); forget what this sink
        knows of the table if another writer wrote it since this sink last did."""
        try:
            seen = ledger.claim(self.con, table)
        except duckdb.TransactionException as exc:
            raise Busy(str(exc)) from exc
        if seen is None:  # the claim row is gone (someone deleted it): make it again
            self._claim_rows.discard(table)
            raise Busy("no claim row")
        if self._claimed.get(table) != seen:
            self._forget(table)
        return seen

    def _note_unchanged(
        self, table: str, results: list[FileResult], run_id: str, now: datetime
    ) -> None:
        if results:
            ledger.add(
                self.con, table, ledger.rows_of(results), run_id=run_id, at=now, active=False
            )

    def _forget(self, table: str) -> None:
        self._schemas.forget(table)
        self._claimed.pop(table, None)

    def _drop_table(self, table: str) -> None:
        self.con.execute(f"DROP TABLE IF EXISTS {quote(table)}")
        ledger.deactivate(self.con, table)
        self._schemas.forget(table)

    def _drop_previous(self, table: str, previous: Sequence[str]) -> set[str]:
        """Delete the rows of these files' live loads (from the ledger); returns them."""
        if previous:
            if self.table_columns(table):
                self.con.execute(
                    f"DELETE FROM {quote(table)} WHERE _source_uri IN "
                    "(SELECT unnest(?::VARCHAR[]))",
                    [list(previous)],
                )
            ledger.deactivate(self.con, table, list(previous))
        return set(previous)

    # --- inserting -----------------------------------------------------------------------

    def _stream_into(
        self, table: str, stream: FrameStream, uri: str, etag: str | None, now: datetime
    ) -> None:
        """Insert the stream's frames, one INSERT per run of frames of one schema."""
        for head in stream.segments():
            self.con.register(_HEAD, stream.head_arrow)
            self.con.register(_FRAME, stream.reader())
            try:
                self._schemas.insert(table, _FRAME, signature(head), uri, etag, now, probe=_HEAD)
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
