"""The write stage: one writer owns the database and accounts for every file.

Small parsed files that are ready together are written in one transaction (a file's rows always
commit with its ledger row); big ones, and any file of a group that failed, go one by one.
Files that were not loaded get ledger rows too, in bulk.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Generator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import duckdb
import polars as pl

from .embed import EmbedStage
from .errors import (
    DreamBoltError,
    EmbeddingAuthError,
    FormatError,
    S3AuthError,
    S3NotFoundError,
    SinkError,
)
from .fetch import ByteBudget, Failed, Fetched
from .formats import read_many
from .prefetch import Prefetch
from .report import ErrorInfo, FileResult, IngestReport, Listener, Status
from .sinks.duckdb import DuckDBSink, FileWrite
from .sources import Source

__all__ = ["GROUP_FILES", "Run", "Writer", "is_fatal", "parse_deferred", "status_of"]

log = logging.getLogger("dreambolt.ingest")
T = TypeVar("T")
GROUP_FILES = 1024  # small files written per transaction at most
DbRunner = Callable[..., Awaitable[Any]]


# Skipped with a warning: the object cannot be read as it is. Anything else is "failed".
_SKIPPED = (S3AuthError, S3NotFoundError, FormatError, FileNotFoundError, PermissionError,
            IsADirectoryError)


def status_of(exc: BaseException) -> Status:
    """`skipped` for files that cannot be read as they are, else `failed`."""
    return "skipped" if isinstance(exc, _SKIPPED) else "failed"


def is_fatal(exc: BaseException) -> bool:
    """Errors that would fail every file alike: stop the run instead of failing each one."""
    return (isinstance(exc, S3AuthError) and exc.code == "NoCredentials") or isinstance(
        exc, EmbeddingAuthError
    )


@dataclass(slots=True)
class Run:
    """The state of one ingest run."""

    table: str
    run_id: str
    report: IngestReport
    spool: Path
    budget: ByteBudget
    rebuild: bool = False
    embed: EmbedStage | None = None
    queue: asyncio.Queue[Fetched | Failed] = field(
        default_factory=lambda: asyncio.Queue(GROUP_FILES)
    )


async def parse_deferred(batch: list[Fetched | Failed]) -> list[Fetched | Failed]:
    """Parse the batch's unparsed small CSVs together (in a worker thread); errors per file.

    If this is cancelled, the batch's files are discarded (downloads stopped, spools removed).
    """
    deferred = [i for i in batch if isinstance(i, Fetched) and i.raw is not None]
    if not deferred:
        return batch
    try:
        parsed = await asyncio.to_thread(read_many, [
            (i.raw, i.fmt, i.source.uri) for i in deferred
            if i.raw is not None and i.fmt is not None
        ])
    except BaseException:
        for item in batch:
            if isinstance(item, Fetched):
                item.discard()
        raise
    outcome: dict[int, Fetched | Failed] = {}
    for item, frame in zip(deferred, parsed, strict=True):
        item.raw = None
        if isinstance(frame, FormatError):
            outcome[id(item)] = Failed(item.source, frame, cost=item.cost, seconds=item.seconds)
        else:
            item.frame = frame
    return [outcome.get(id(i), i) for i in batch]


class Writer:
    """Writes fetched files into the sink on the database thread, and settles the rest."""

    def __init__(self, sink: DuckDBSink, run_db: DbRunner, listener: Listener) -> None:
        self.sink = sink
        self._db = run_db
        self.listener = listener

    async def settle(self, run: Run, results: list[FileResult], dry_run: bool = False) -> None:
        """Record files that were not loaded in the ledger and the report; tell the listener."""
        if not dry_run and results:
            sink = self.sink
            await self._db(sink.record, run.table, results, run_id=run.run_id)
        for result in results:
            run.report.files.append(result)
            if result.error is not None:
                log.warning("%s %s: %s", result.status, result.uri, result.error.message)
            self.listener.finished(result)

    async def write_batch(self, run: Run, batch: list[Fetched | Failed]) -> list[FileResult]:
        """Write a batch: small parsed files together in one transaction, the rest one by one."""
        batch = await parse_deferred(batch)  # a no-op for a batch parsed already
        small = [i for i in batch if isinstance(i, Fetched) and i.frame is not None]
        together: dict[str, FileResult] = {}
        if len(small) > 1:
            together = await self._write_together(run, small)  # {} if the group failed
        return [together.get(item.source.uri) or await self._write(run, item) for item in batch]

    async def _write_together(self, run: Run, items: list[Fetched]) -> dict[str, FileResult]:
        sink = self.sink
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
    def not_attempted(run: Run, sources: Sequence[Source]) -> None:
        """Report files an aborted run never tried (no ledger row: nothing was attempted)."""
        for src in sources:
            run.report.files.append(FileResult(
                src.uri, "skipped", bytes=src.size, etag=src.etag, table=run.table,
                error=ErrorInfo("Aborted", None, "not attempted: the run stopped at "
                                "the first failure (--on-error abort)")))

    async def _write(self, run: Run, item: Fetched | Failed) -> FileResult:
        src = item.source
        if isinstance(item, Failed):
            result = FileResult(src.uri, status_of(item.error), bytes=src.size, etag=src.etag,
                                error=ErrorInfo.of(item.error), table=run.table,
                                seconds=item.seconds)
            await self.settle(run, [result])
            return result
        sink = self.sink
        began = time.monotonic()
        frames: Generator[pl.DataFrame, None, None] | Prefetch[pl.DataFrame] = item.frames()
        if item.frame is None:  # parsed from disk as it is written: parse ahead of the inserts
            frames = Prefetch(frames, name="dreambolt-parse")
        writing = asyncio.ensure_future(self._db(
            sink.write_file, run.table, uri=src.uri, etag=item.etag, size=item.size,
            frames=frames, run_id=run.run_id, rebuild=run.rebuild,
        ))
        try:
            try:
                rows, replaced = await asyncio.shield(writing)
            except asyncio.CancelledError:
                # Interrupted: stop the download the database thread may be reading from, so
                # the transaction rolls back now instead of after the whole object arrives.
                item.discard()
                await asyncio.wait([writing])
                if not writing.cancelled():
                    writing.exception()  # retrieved: the interruption is what propagates
                raise
        except (DreamBoltError, duckdb.Error, OSError) as exc:
            error = exc if isinstance(exc, DreamBoltError | OSError) else SinkError(
                f"{src.uri}: DuckDB refused the rows: {exc}")
            result = FileResult(src.uri, status_of(error), bytes=item.size, etag=item.etag,
                                error=ErrorInfo.of(error), table=run.table)
            await self.settle(run, [result])
            return result
        finally:
            frames.close()
            item.discard()
        run.rebuild = False
        result = FileResult(src.uri, "loaded", rows=rows, bytes=item.size, etag=item.etag,
                            table=run.table, replaced=replaced,
                            seconds=item.seconds + time.monotonic() - began)
        run.report.files.append(result)
        self.listener.finished(result)
        return result
