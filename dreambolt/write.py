"""The write stage: one writer owns the database and accounts for every file.

Small parsed files that are ready together are written in one transaction (a file's rows always
commit with its ledger row); big ones, and any file of a group that failed, go one by one.
Files that were not loaded get ledger rows too, in bulk. The writer talks to the destination
through the `Sink` protocol only (`dreambolt.sinks.base`): it does not know which one it is.

Each file's outcome is logged once (`outcome.log_outcome`), as it enters the report.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Generator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import polars as pl

from dreambolt.embed import EmbedStage
from dreambolt.errors import FormatError, SinkError
from dreambolt.fetch import ByteBudget, Failed, Fetched
from dreambolt.formats.many import read_many
from dreambolt.formats.project import projected
from dreambolt.formats.read import DEFAULT_LIMITS, FileFormat, ParseLimits, read_bytes
from dreambolt.outcome import file_error, is_contained, log_outcome, status_of
from dreambolt.prefetch import Prefetch
from dreambolt.report import ErrorInfo, FileResult, IngestReport, Listener, Status
from dreambolt.sinks.base import FileWrite, Sink, Written
from dreambolt.sources import Source

__all__ = ["GROUP_FILES", "Run", "Writer", "parse_deferred"]

T = TypeVar("T")
GROUP_FILES = 1024  # small files written per transaction at most
DbRunner = Callable[..., Awaitable[Any]]


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
    limits: ParseLimits = DEFAULT_LIMITS
    queue: asyncio.Queue[Fetched | Failed] = field(
        default_factory=lambda: asyncio.Queue(GROUP_FILES)
    )


async def parse_deferred(
    batch: list[Fetched | Failed], limits: ParseLimits = DEFAULT_LIMITS
) -> list[Fetched | Failed]:
    """Parse the batch's unparsed small CSVs together (in a thread), projected; errors per file.

    If the grouped parse itself breaks (a parser panic), each file is parsed on its own, so
    only the file at fault fails. If this is cancelled, the batch's files are discarded
    (downloads stopped, spools removed).
    """
    deferred = [i for i in batch if isinstance(i, Fetched) and i.raw is not None]
    if not deferred:
        return batch
    items = [(i.raw, i.fmt, i.source.uri) for i in deferred if i.raw is not None and i.fmt]
    parsed: list[pl.DataFrame | Exception]
    try:
        try:
            parsed = [*await asyncio.to_thread(read_many, items, limits=limits)]
        except BaseException as exc:
            if not is_contained(exc):
                raise
            parsed = [await asyncio.to_thread(_parse_alone, *item, limits) for item in items]
    except BaseException:
        for item in batch:
            if isinstance(item, Fetched):
                item.discard()
        raise
    outcome: dict[int, Fetched | Failed] = {}
    for item, frame in zip(deferred, parsed, strict=True):
        item.raw = None
        if not isinstance(frame, Exception):
            try:
                item.frame = projected(frame, item.columns, item.source.uri)
                continue
            except FormatError as exc:  # a column asked for is not there
                frame = exc
        outcome[id(item)] = Failed(item.source, frame, cost=item.cost, seconds=item.seconds)
    return [outcome.get(id(i), i) for i in batch]


def _parse_alone(
    data: bytes, fmt: FileFormat, uri: str, limits: ParseLimits
) -> pl.DataFrame | Exception:
    try:
        return read_bytes(data, fmt, name=uri, limits=limits)
    except BaseException as exc:
        if not is_contained(exc):
            raise
        return file_error(exc, uri, "read")


class Writer:
    """Writes fetched files into the sink on the database thread, and settles the rest.

    A file's result enters the report when its transaction commits, also when the run is
    interrupted while the database thread finishes that transaction: the report of an
    interrupted run says exactly what is in the table.
    """

    def __init__(self, sink: Sink, run_db: DbRunner, listener: Listener) -> None:
        self.sink = sink
        self._db = run_db
        self.listener = listener

    def _finish(self, run: Run, result: FileResult, *, notify: bool = True) -> None:
        """A file's final result: into the report and the log, and to the listener."""
        run.report.files.append(result)
        log_outcome(result)
        if notify:
            self.listener.finished(result)

    def finished(self, run: Run, results: Sequence[FileResult]) -> None:
        """Results of files another process wrote and recorded (a cluster task): into the
        report and the log, and to the listener."""
        for result in results:
            self._finish(run, result)

    async def settle(self, run: Run, results: list[FileResult], dry_run: bool = False) -> None:
        """Record files that were not loaded in the ledger and the report; tell the listener."""
        for result in results:
            self._finish(run, result)
        if not dry_run and results:
            sink = self.sink
            try:
                await self._db(sink.record, run.table, results, run_id=run.run_id)
            except OSError as exc:  # the ledger cannot be written: nothing can
                raise SinkError(
                    f"{sink.name}: cannot write the load ledger: {exc}; check the "
                    "disk and the --db path",
                    code="IOError",
                    fatal=True,
                ) from exc

    async def _committing(
        self,
        on_commit: Callable[[T], None],
        fn: Callable[..., T],
        *args: Any,
        on_cancel: Callable[[], None] | None = None,
        **kwargs: Any,
    ) -> T:
        """Run a committing sink call; `on_commit` gets its outcome once it has committed —
        also when this is cancelled meanwhile (the call always finishes whole; `on_cancel` may
        hasten that, e.g. by stopping the download it reads from, so that it rolls back)."""
        task: asyncio.Future[T] = asyncio.ensure_future(self._db(fn, *args, **kwargs))
        try:
            outcome = await asyncio.shield(task)
        except asyncio.CancelledError:
            if on_cancel is not None:
                on_cancel()
            await asyncio.wait([task])
            if not task.cancelled() and task.exception() is None:
                on_commit(task.result())
            elif not task.cancelled():
                task.exception()  # retrieved: the interruption is what propagates
            raise
        on_commit(outcome)
        return outcome

    def _loaded(self, run: Run, item: Fetched, written: Written, seconds: float) -> FileResult:
        status: Status = "unchanged" if written.unchanged else "loaded"
        result = FileResult(
            item.source.uri,
            status,
            rows=written.rows,
            bytes=item.size,
            etag=item.etag,
            table=run.table,
            replaced=written.replaced,
            seconds=seconds,
        )
        if not written.unchanged:
            run.rebuild = False
        self._finish(run, result)
        return result

    async def write_batch(
        self, run: Run, batch: list[Fetched | Failed], *, stop_at_failure: bool = False
    ) -> list[FileResult]:
        """Write a batch: small parsed files together in one transaction, the rest one by one.

        With `stop_at_failure` (on_error="abort") nothing after the batch's first failure is
        written: only the files before a file that failed to arrive go in together, a group
        that fails is written one by one up to its bad file, and the results stop at the
        first file that failed (the files after it are not attempted)."""
        batch = await parse_deferred(batch, run.limits)  # a no-op for a batch parsed already
        if stop_at_failure:
            bad = next((k for k, i in enumerate(batch) if isinstance(i, Failed)), len(batch))
            batch = batch[: bad + 1]
        small = [i for i in batch if isinstance(i, Fetched) and i.frame is not None]
        together: dict[str, FileResult] = {}
        if len(small) > 1:
            together = await self._write_together(run, small)  # {} if the group failed
        results: list[FileResult] = []
        for item in batch:
            result = together.get(item.source.uri) or await self._write(run, item)
            results.append(result)
            if stop_at_failure and result.status not in ("loaded", "unchanged"):
                break
        return results

    async def _write_together(self, run: Run, items: list[Fetched]) -> dict[str, FileResult]:
        sink = self.sink
        began = time.monotonic()
        files = [
            FileWrite(i.source.uri, i.etag, i.size, i.frame) for i in items if i.frame is not None
        ]
        results: dict[str, FileResult] = {}

        def committed(outcome: list[Written]) -> None:
            seconds = (time.monotonic() - began) / len(items)
            for item, written in zip(items, outcome, strict=True):
                results[item.source.uri] = self._loaded(run, item, written, item.seconds + seconds)

        try:
            await self._committing(
                committed, sink.write_many, run.table, files, run_id=run.run_id, rebuild=run.rebuild
            )
        except BaseException as exc:
            if not is_contained(exc):
                raise
            return {}  # one of them is bad: the caller writes them one by one to find it
        return results

    def not_attempted(self, run: Run, sources: Sequence[Source]) -> None:
        """Report files an aborted run never tried (no ledger row: nothing was attempted)."""
        for src in sources:
            self._finish(
                run,
                FileResult(
                    src.uri,
                    "skipped",
                    bytes=src.size,
                    etag=src.etag,
                    table=run.table,
                    error=ErrorInfo(
                        "Aborted",
                        None,
                        "not attempted: the run stopped at the first failure (--on-error abort)",
                    ),
                ),
                notify=False,
            )

    async def _fail(
        self,
        run: Run,
        src: Source,
        error: Exception,
        *,
        size: int,
        etag: str | None,
        seconds: float = 0.0,
    ) -> FileResult:
        result = FileResult(
            src.uri,
            status_of(error),
            bytes=size,
            etag=etag,
            error=ErrorInfo.of(error),
            table=run.table,
            seconds=seconds,
        )
        await self.settle(run, [result])
        return result

    async def _write(self, run: Run, item: Fetched | Failed) -> FileResult:
        src = item.source
        if isinstance(item, Failed):
            return await self._fail(
                run, src, item.error, size=src.size, etag=src.etag, seconds=item.seconds
            )
        sink = self.sink
        began = time.monotonic()
        frames: Generator[pl.DataFrame, None, None] | Prefetch[pl.DataFrame] = item.frames(
            run.limits
        )
        if item.frame is None:  # parsed from disk as it is written: parse ahead of the inserts
            frames = Prefetch(frames, name="dreambolt-parse")
        done: list[FileResult] = []

        def committed(written: Written) -> None:
            done.append(self._loaded(run, item, written, item.seconds + time.monotonic() - began))

        try:
            try:
                # Interrupted, the download the database thread may be reading from is stopped,
                # so the transaction rolls back now instead of after the whole object arrives.
                await self._committing(
                    committed,
                    sink.write_file,
                    run.table,
                    uri=src.uri,
                    etag=item.etag,
                    size=item.size,
                    frames=frames,
                    run_id=run.run_id,
                    rebuild=run.rebuild,
                    on_cancel=item.discard,
                )
            finally:
                frames.close()
                item.discard()
        except BaseException as exc:
            if not is_contained(exc):
                raise
            return await self._fail(
                run, src, file_error(exc, src.uri, "written"), size=item.size, etag=item.etag
            )
        return done[0]
