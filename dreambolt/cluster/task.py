"""A cluster task: load one batch in the process it runs in (a Dask worker, a pool process).

The task carries what it needs to load the batch and nothing secret: the destination, the
sources as the driver listed them (uri, etag, size), and the Ingester's settings (S3 endpoint,
region and profile, formats, limits, the embedding model's name). Each worker reaches S3 and the
Delta root with its own AWS credential chain (environment, profile, instance or pod role).

It makes an Ingester of the driver's class with those settings, runs its own event loop
(`asyncio.run`: a Dask worker runs a plain task in a thread with no loop), opens its own S3
client and Delta sink, and first looks for the batch's marker in the Delta log: a retried or
duplicated task whose batch committed already does nothing and reports the files `unchanged`.
Otherwise the batch is fetched and written with the single-process code
(`Ingester.ingest_batch`): its small files in one commit, which the data table's lineage makes
exactly-once even when two tasks race.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from dreambolt.report import FileResult
from dreambolt.sources import Source

__all__ = ["BatchTask", "run_batch"]


@dataclass(frozen=True)
class BatchTask:
    """One batch of a run, as it travels to a worker (picklable)."""

    db: str
    table: str
    run_id: str
    sources: tuple[Source, ...]
    ingester: Callable[..., Any]  # the driver's Ingester class (pickled by reference)
    settings: dict[str, Any] = field(default_factory=dict)  # Ingester keyword arguments
    format: str | None = None
    columns: tuple[str, ...] | None = None


def run_batch(task: BatchTask) -> list[FileResult]:
    """Load the batch; one result per source (errors of a file are its result; a fatal error,
    such as an unusable destination, is raised)."""
    return asyncio.run(_run(task))


async def _run(task: BatchTask) -> list[FileResult]:
    async with task.ingester(db=task.db, **task.settings) as ingester:
        sink = await ingester.sink()
        pairs = [(src.uri, src.etag) for src in task.sources]
        committed = getattr(sink, "batch_committed", None)  # a Delta sink's marker lookup
        if committed is not None and committed(task.table, pairs):
            # done before, maybe by a task killed before its ledger commit: the ledger catches up
            sink.repair_ledger(task.table, look=True)
            return [
                FileResult(s.uri, "unchanged", bytes=s.size, etag=s.etag, table=task.table)
                for s in task.sources
            ]
        report = await ingester.ingest_batch(
            task.sources,
            table=task.table,
            run_id=task.run_id,
            format=task.format,
            columns=task.columns,
        )
        files: list[FileResult] = report.files
        return files
