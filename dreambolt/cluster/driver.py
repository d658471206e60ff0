"""The driver of a cluster run: cut the files to load into batches, submit one task per batch,
and account for every file as the tasks finish.

The listing, the anti-join with the table (`Ingester.ingest`: what the Delta table holds is
`unchanged` and never submitted), the report and the exit codes are those of a single-process
run. The progress bar advances as batches finish (a task reports its files when its commit is
done). Dask retries a task whose worker died; `TASK_RETRIES` more tries are asked for a task
that raised. A batch that fails on every try is reported per file (`failed`, with the error)
and recorded in the ledger; a fatal error (the destination cannot be used) stops the run.
`--mode replace` rebuilds the table in its first commit: the driver loads batches itself until
that commit is made, then submits the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

from dreambolt.cluster import batches as batching
from dreambolt.cluster.batches import cut
from dreambolt.cluster.check import is_dask_client
from dreambolt.cluster.task import BatchTask, run_batch
from dreambolt.outcome import is_fatal, status_of
from dreambolt.report import ErrorInfo, FileResult
from dreambolt.sources import Source
from dreambolt.write import Run, Writer

if TYPE_CHECKING:
    from dreambolt.ingest import Ingester

__all__ = ["TASK_RETRIES", "distribute", "task_settings"]

TASK_RETRIES = 2  # more tries of a task that raised (Dask; a plain executor tries once)
IN_FLIGHT = 256  # tasks submitted and not settled at most: the scheduler holds no more
Submit = Callable[[BatchTask], Any]  # returns a concurrent.futures or a Dask Future


async def distribute(
    ingester: Ingester,
    run: Run,
    writer: Writer,
    todo: list[Source],
    *,
    format: str | None,
    columns: Sequence[str] | None,
) -> None:
    """Load the files `todo` on `ingester.executor`'s workers, in batches."""
    ingester.listener.planned(len(todo), sum(s.size for s in todo))
    batches = cut(todo, max_bytes=max(1, min(batching.BATCH_BYTES, ingester.memory_budget // 8)))
    while batches and run.rebuild and not run.report.aborted:  # --mode replace: here first
        await ingester.write_together(run, writer, batches.pop(0), format=format, columns=columns)
    if run.report.aborted:
        writer.not_attempted(run, [src for batch in batches for src in batch])
        return
    repair = getattr(writer.sink, "repair_ledger", None)  # a Delta sink: tasks write, not it
    if repair is not None:  # a ledger `loaded` found behind the data catches up now
        await asyncio.to_thread(repair, run.table)
    settings = task_settings(ingester)
    tasks = [
        BatchTask(
            ingester.db,
            run.table,
            run.run_id,
            tuple(batch),
            type(ingester),
            settings,
            format,
            tuple(columns) if columns is not None else None,
        )
        for batch in batches
    ]
    try:
        await _gather(run, writer, ingester, tasks)
    except asyncio.CancelledError:
        run.report.interrupted = True
        raise


def task_settings(ingester: Ingester) -> dict[str, Any]:
    """The Ingester's settings, as keyword arguments of the tasks' Ingesters (no secrets)."""
    return {
        "on_error": ingester.on_error,
        "format": ingester.format,
        "s3": ingester.s3_options,
        "files_in_flight": ingester.files_in_flight,
        "memory_budget": ingester.memory_budget,
        "spool_threshold": ingester.spool_threshold,
        "embed": ingester.embed_name,
        "embed_column": ingester.embed_column,
        "embed_base_url": ingester.embed_base_url,
        "max_line_bytes": ingester.limits.max_record_bytes,
        "max_columns": ingester.limits.max_columns,
        "csv": ingester.csv,
    }


async def _gather(run: Run, writer: Writer, ingester: Ingester, tasks: list[BatchTask]) -> None:
    """Submit the tasks, `IN_FLIGHT` at a time, and settle each as it finishes. On an abort
    the rest is not submitted (and reported not attempted); on a fatal error or an
    interruption the tasks submitted are cancelled."""
    submit = _submitter(ingester.executor)
    loop = asyncio.get_running_loop()
    waiting: dict[asyncio.Future[None], tuple[Any, BatchTask]] = {}
    queued = iter(tasks)
    try:
        while True:
            for task in itertools.islice(queued, max(0, IN_FLIGHT - len(waiting))):
                future = submit(task)
                waiting[_when_done(future, loop)] = (future, task)
            if not waiting:
                return
            done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            for signal in done:
                future, task = waiting.pop(signal)
                await _settle(run, writer, ingester, future, task)
            if run.report.aborted:
                for other, _task in waiting.values():
                    other.cancel()
                writer.not_attempted(run, [src for task in queued for src in task.sources])
    finally:
        for future, _task in waiting.values():
            future.cancel()


async def _settle(
    run: Run, writer: Writer, ingester: Ingester, future: Any, task: BatchTask
) -> None:
    """Account for a finished task's files."""
    if future.cancelled():
        writer.not_attempted(run, task.sources)
        return
    try:
        results: list[FileResult] = await asyncio.to_thread(future.result)
    except Exception as exc:  # every try failed: each file of the batch fails with it
        if is_fatal(exc):
            raise
        failed = [
            FileResult(
                src.uri,
                status_of(exc),
                bytes=src.size,
                etag=src.etag,
                error=ErrorInfo.of(exc),
                table=run.table,
            )
            for src in task.sources
        ]
        await writer.settle(run, failed)
        results = []
    for result in results:
        ingester.listener.advanced(result.uri, result.bytes)
    writer.finished(run, results)
    outcomes = [r.status for r in results] or ["failed"]
    if ingester.on_error == "abort" and any(s not in ("loaded", "unchanged") for s in outcomes):
        run.report.aborted = True  # (the task reported its own files after the failure)


def _submitter(executor: Any) -> Submit:
    if is_dask_client(executor):
        return lambda task: executor.submit(
            run_batch, task, pure=False, retries=TASK_RETRIES, key=f"dreambolt-{_key(task)}"
        )
    return lambda task: executor.submit(run_batch, task)


def _key(task: BatchTask) -> str:
    """A readable, unique Dask key: the run and the batch's first file."""
    first = task.sources[0].uri.rsplit("/", 1)[-1][:40] if task.sources else "empty"
    return f"{task.run_id[:8]}-{first}-{id(task):x}"


def _when_done(future: Future[Any] | Any, loop: asyncio.AbstractEventLoop) -> asyncio.Future[None]:
    """An asyncio future set when `future` (concurrent.futures or Dask) is done; their
    callbacks run on another thread."""
    signal: asyncio.Future[None] = loop.create_future()

    def wake() -> None:
        if not signal.done():
            signal.set_result(None)

    def done(_: object) -> None:
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: nobody waits
            loop.call_soon_threadsafe(wake)

    future.add_done_callback(done)
    return signal
