"""The Ingester: expand, fetch, parse and write — overlapped, bounded, every file accounted for.

Stages overlap: up to `files_in_flight` objects download and parse concurrently (parsing runs
in worker threads; polars releases the GIL) while one writer owns the database on its own
thread. A byte budget bounds what is held in memory at once. Objects above `spool_threshold`
go to a temporary file and are parsed in batches while they are written, so a file of any size
costs memory in proportion to a batch, not to the file.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any, Literal, TypeVar

import duckdb
import polars as pl

from .errors import (
    DreamBoltError,
    FormatError,
    InvalidS3UriError,
    S3AuthError,
    S3NotFoundError,
    SinkError,
)
from .fetch import ByteBudget, Failed, Fetched, fetch
from .report import ErrorInfo, FileResult, IngestReport, Listener, SilentListener, Status
from .s3 import S3Client
from .sinks.duckdb import DuckDBSink, FileWrite, validate_table_name
from .sources import Source, default_table_name, disk_temp_dir, expand

__all__ = ["Ingester"]

log = logging.getLogger("dreambolt.ingest")
_GROUP_FILES = 64  # small files written per transaction at most
T = TypeVar("T")
OnError = Literal["skip", "abort"]
Mode = Literal["append", "replace"]

# Skipped with a warning: the object cannot be read as it is. Anything else is "failed".
_SKIPPED = (S3AuthError, S3NotFoundError, FormatError, FileNotFoundError, PermissionError,
            IsADirectoryError)


def _status_of(exc: BaseException) -> Status:
    return "skipped" if isinstance(exc, _SKIPPED) else "failed"


def _fatal(exc: BaseException) -> bool:
    """Errors that would fail every file alike: stop the run instead of failing each one."""
    return isinstance(exc, S3AuthError) and exc.code == "NoCredentials"


@dataclass(slots=True)
class _Run:
    table: str
    run_id: str
    report: IngestReport
    spool: Path
    budget: ByteBudget
    rebuild: bool = False
    queue: asyncio.Queue[Fetched | Failed] = field(
        default_factory=lambda: asyncio.Queue(_GROUP_FILES)
    )


class Ingester:
    """Loads files from S3 or local disk into polars frames (`load`) or a DuckDB table (`ingest`).

    Use as `async with Ingester(db=...) as ing:`. An S3 client is created on first need (so
    local files need no AWS configuration) unless one is passed in; a passed client stays open.
    """

    def __init__(
        self,
        db: str | Path = "dreambolt.duckdb",
        client: S3Client | None = None,
        on_error: OnError = "skip",
        *,
        format: str | None = None,
        listener: Listener | None = None,
        s3_options: dict[str, Any] | None = None,
        files_in_flight: int = 8,
        memory_budget: int = 1 << 30,
        spool_threshold: int = 64 << 20,
    ) -> None:
        if on_error not in ("skip", "abort"):
            raise ValueError(f"on_error must be 'skip' or 'abort', got {on_error!r}")
        self.db = str(db)
        self._db_uri = Path(self.db).resolve().as_uri()
        self.on_error = on_error
        self.format = format
        self.listener: Listener = listener or SilentListener()
        self.files_in_flight = max(1, files_in_flight)
        self.memory_budget = memory_budget
        self.spool_threshold = spool_threshold
        self.last_report: IngestReport | None = None
        self._client = client
        self._own_client = False
        self._s3_options = s3_options or {}
        self._client_lock = asyncio.Lock()
        self._sink: DuckDBSink | None = None
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="dreambolt-db")

    async def __aenter__(self) -> Ingester:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Finish the database work in progress (it commits or rolls back whole), then close."""
        if self._own_client and self._client is not None:
            await self._client.close()
            self._client = None
        if self._sink is not None:
            sink, self._sink = self._sink, None
            await asyncio.get_running_loop().run_in_executor(self._executor, sink.close)
        self._executor.shutdown(wait=True)

    # --- helpers -------------------------------------------------------------------------

    async def _s3(self) -> S3Client:
        async with self._client_lock:
            if self._client is None:
                client = S3Client(**self._s3_options)
                await client.__aenter__()
                self._client, self._own_client = client, True
        return self._client

    async def _db(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run sink work on the database thread; if cancelled, wait for it to finish whole."""
        future = asyncio.get_running_loop().run_in_executor(
            self._executor, partial(fn, *args, **kwargs)
        )
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            await asyncio.wait([future])
            raise

    async def sink(self) -> DuckDBSink:
        """The database, opened on first use (SinkError if it cannot be)."""
        if self._sink is None:
            self._sink = await self._db(DuckDBSink, self.db)
        return self._sink

    async def _fetch(self, src: Source, spool: Path, declared: str | None) -> Fetched:
        return await fetch(
            src, client=self._s3, spool=spool, declared=declared,
            spool_threshold=self.spool_threshold,
            progress=partial(self.listener.advanced, src.uri),
        )

    # --- load ----------------------------------------------------------------------------

    async def load(self, uri: str, *, format: str | None = None) -> pl.DataFrame:
        """Read a file (or every file under a prefix/glob) into one polars DataFrame."""
        sources, failures = await expand([uri], self._s3)
        if failures:
            raise failures[0][1]
        spool = Path(tempfile.mkdtemp(prefix="dreambolt-", dir=disk_temp_dir()))
        try:
            fetched = await asyncio.gather(
                *(self._fetch(src, spool, format or self.format) for src in sources)
            )
            frames = [frame for item in fetched for frame in item.frames() if frame.width]
        finally:
            shutil.rmtree(spool, ignore_errors=True)
        if not frames:
            return pl.DataFrame()
        return frames[0] if len(frames) == 1 else pl.concat(frames, how="diagonal_relaxed")

    # --- ingest --------------------------------------------------------------------------

    async def ingest(
        self,
        uris: str | Sequence[str],
        *,
        table: str | None = None,
        mode: Mode = "append",
        include: Sequence[str] = (),
        exclude: Sequence[str] = (),
        format: str | None = None,
        dry_run: bool = False,
    ) -> IngestReport:
        """Load every file the URIs name into `table`, exactly once; returns the per-file report.

        Raises InvalidS3UriError for unusable input, SinkError when the database cannot be used,
        and S3AuthError when there are no credentials at all (every file would fail alike).
        """
        inputs = [uris] if isinstance(uris, str) else list(uris)
        if not inputs:
            raise InvalidS3UriError("no input given: name at least one S3 URI or local path, "
                                    "e.g. s3://my-bucket/path/to/file.csv")
        if mode not in ("append", "replace"):
            raise ValueError(f"mode must be 'append' or 'replace', got {mode!r}")
        table = validate_table_name(table) if table is not None else default_table_name(inputs)
        started = time.monotonic()
        report = IngestReport(table=table, db=self.db, started_at=datetime.now(UTC),
                              dry_run=dry_run)
        self.last_report = report
        sink = await self.sink()
        sources, failures = await expand(inputs, self._s3, include=include, exclude=exclude)
        own = {self._db_uri + suffix for suffix in ("", ".wal")}
        sources = [s for s in sources if s.uri not in own]  # never ingest the database itself
        for _, exc in failures:
            if _fatal(exc):
                raise exc
        run = _Run(table, uuid.uuid4().hex, report, Path(), ByteBudget(self.memory_budget))
        run.rebuild = mode == "replace"  # done by the first file that loads, in its transaction
        loaded = {} if mode == "replace" else await self._db(sink.loaded, table)
        todo = [s for s in sources if s.etag is None or loaded.get(s.uri) != s.etag]
        pending = {s.uri for s in todo}
        await self._settle(run, [
            *(FileResult(src.uri, "unchanged", etag=src.etag, table=table, bytes=src.size)
              for src in sources if src.uri not in pending),
            *(FileResult(shown, _status_of(exc), error=ErrorInfo.of(exc), table=table)
              for shown, exc in failures),
        ], dry_run)
        if failures and self.on_error == "abort" and not dry_run:
            # An input that could not be expanded is the first failure: nothing more is fetched.
            report.aborted = True
            self._not_attempted(run, todo)
            todo = []
        if dry_run:
            for src in todo:
                action = "changed" if src.uri in loaded else "new"
                report.files.append(FileResult(src.uri, "planned", bytes=src.size, etag=src.etag,
                                               table=table, action=action))
        elif todo:
            self.listener.planned(len(todo), sum(s.size for s in todo))
            run.spool = Path(tempfile.mkdtemp(prefix="dreambolt-", dir=disk_temp_dir()))
            try:
                await self._pipeline(run, todo, format or self.format)
            finally:
                shutil.rmtree(run.spool, ignore_errors=True)
        report.seconds = time.monotonic() - started
        return report

    async def _settle(self, run: _Run, results: list[FileResult], dry_run: bool = False) -> None:
        """Record files that were not loaded in the ledger and the report; tell the listener."""
        if not dry_run and results:
            sink = await self.sink()
            await self._db(sink.record, run.table, results, run_id=run.run_id)
        for result in results:
            run.report.files.append(result)
            if result.error is not None:
                log.warning("%s %s: %s", result.status, result.uri, result.error.message)
            self.listener.finished(result)

    async def _pipeline(self, run: _Run, todo: list[Source], declared: str | None) -> None:
        gate = asyncio.Semaphore(self.files_in_flight)

        async def produce(src: Source) -> None:
            cost = await run.budget.acquire(
                src.size * 4 if src.size <= self.spool_threshold else 64 << 20
            )
            began = time.monotonic()
            try:
                async with gate:
                    self.listener.started(src.uri, src.size)
                    item: Fetched | Failed = await self._fetch(src, run.spool, declared)
            except Exception as exc:  # every error becomes this file's result
                item = Failed(src, exc)
            except BaseException:
                await run.budget.release(cost)
                raise
            item.cost, item.seconds = cost, time.monotonic() - began
            await run.queue.put(item)

        producers = [asyncio.create_task(produce(src)) for src in todo]
        done: set[str] = set()
        remaining = len(todo)
        try:
            while remaining:
                batch = [await run.queue.get()]
                # Whatever else is ready is written in the same transaction (one commit, one
                # insert per shape), except under --on-error abort, which goes file by file.
                while (self.on_error == "skip" and len(batch) < _GROUP_FILES
                       and not run.queue.empty()):
                    batch.append(run.queue.get_nowait())
                remaining -= len(batch)
                try:
                    results = await self._write_batch(run, batch)
                finally:
                    for item in batch:
                        await run.budget.release(item.cost)
                for item, result in zip(batch, results, strict=True):
                    done.add(item.source.uri)
                    if isinstance(item, Failed) and _fatal(item.error):
                        raise item.error
                    if result.status not in ("loaded", "unchanged") and self.on_error == "abort":
                        run.report.aborted = True
                if run.report.aborted:
                    break
        finally:
            for task in producers:
                task.cancel()
            await asyncio.gather(*producers, return_exceptions=True)
            while not run.queue.empty():
                leftover = run.queue.get_nowait()
                if isinstance(leftover, Fetched):
                    leftover.discard()
        if run.report.aborted:
            self._not_attempted(run, [src for src in todo if src.uri not in done])

    async def _write_batch(self, run: _Run, batch: list[Fetched | Failed]) -> list[FileResult]:
        """Write a batch: small parsed files together in one transaction, the rest one by one."""
        small = [i for i in batch if isinstance(i, Fetched) and i.frame is not None]
        together: dict[str, FileResult] = {}
        if len(small) > 1:
            together = await self._write_together(run, small)  # {} if the group failed
        return [together.get(item.source.uri) or await self._write(run, item) for item in batch]

    async def _write_together(self, run: _Run, items: list[Fetched]) -> dict[str, FileResult]:
        sink = await self.sink()
        began = time.monotonic()
        files = [FileWrite(i.source.uri, i.etag, i.size, i.frame)
                 for i in items if i.frame is not None]
        try:
            outcome = await self._db(sink.write_many, run.table, files, run_id=run.run_id,
                                     rebuild=run.rebuild)
        except (DreamBoltError, duckdb.Error, OSError):
            return {}  # one of them is bad: the caller writes them one by one to find it
        run.rebuild = False
        seconds = (time.monotonic() - began) / len(items)
        results = {}
        for item, (rows, replaced) in zip(items, outcome, strict=True):
            result = FileResult(item.source.uri, "loaded", rows=rows, bytes=item.size,
                                etag=item.etag, table=run.table, replaced=replaced,
                                seconds=item.seconds + seconds)
            run.report.files.append(result)
            self.listener.finished(result)
            results[item.source.uri] = result
        return results

    @staticmethod
    def _not_attempted(run: _Run, sources: Sequence[Source]) -> None:
        """Report files an aborted run never tried (no ledger row: nothing was attempted)."""
        for src in sources:
            run.report.files.append(FileResult(
                src.uri, "skipped", bytes=src.size, etag=src.etag, table=run.table,
                error=ErrorInfo("Aborted", None, "not attempted: the run stopped at "
                                "the first failure (--on-error abort)")))

    async def _write(self, run: _Run, item: Fetched | Failed) -> FileResult:
        src = item.source
        if isinstance(item, Failed):
            result = FileResult(src.uri, _status_of(item.error), bytes=src.size, etag=src.etag,
                                error=ErrorInfo.of(item.error), table=run.table,
                                seconds=item.seconds)
            await self._settle(run, [result])
            return result
        sink = await self.sink()
        began = time.monotonic()
        try:
            rows, replaced = await self._db(
                sink.write_file, run.table, uri=src.uri, etag=item.etag, size=item.size,
                frames=item.frames(), run_id=run.run_id, rebuild=run.rebuild,
                staged=item.path is not None,  # big files: memory bounded by a batch
            )
        except (DreamBoltError, duckdb.Error, OSError) as exc:
            error = exc if isinstance(exc, DreamBoltError | OSError) else SinkError(
                f"{src.uri}: DuckDB refused the rows: {exc}")
            result = FileResult(src.uri, _status_of(error), bytes=item.size, etag=item.etag,
                                error=ErrorInfo.of(error), table=run.table)
            await self._settle(run, [result])
            return result
        finally:
            item.discard()
        run.rebuild = False
        result = FileResult(src.uri, "loaded", rows=rows, bytes=item.size, etag=item.etag,
                            table=run.table, replaced=replaced,
                            seconds=item.seconds + time.monotonic() - began)
        run.report.files.append(result)
        self.listener.finished(result)
        return result
