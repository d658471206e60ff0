"""The loading pipeline of one ingest run: workers fetch (and embed) files in order and queue
them; the writer takes them in groups (`Batches`) and commits each group; every file ends as a
result, and a fatal error or an abort stops the run."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Literal, Protocol

from dreambolt.batching import Batches, discard, drain
from dreambolt.fetch import Failed, Fetched
from dreambolt.formats.read import ParseLimits
from dreambolt.outcome import file_error, is_fatal, is_interruption
from dreambolt.report import Listener
from dreambolt.sources import Source
from dreambolt.write import GROUP_FILES, Run, Writer, parse_deferred

__all__ = ["Pipeline"]


class FetchOne(Protocol):
    """Fetch one file (spooled into `spool` when large), its text parsing deferred if asked."""

    def __call__(
        self, src: Source, spool: Path, *, defer_text: bool = ...
    ) -> Awaitable[Fetched]: ...


@dataclass(frozen=True, slots=True)
class Pipeline:
    """How one run loads its files (the Ingester's settings)."""

    fetch: FetchOne
    listener: Listener
    files_in_flight: int
    spool_threshold: int
    on_error: Literal["skip", "abort"]
    limits: ParseLimits

    async def _produce(self, run: Run, src: Source) -> None:
        """Fetch (and embed) one file and queue it for the writer; its errors become its
        result, but for an interruption."""
        cost = await run.budget.acquire(
            src.size * 4 if src.size <= self.spool_threshold else 64 << 20
        )
        began = time.monotonic()
        try:
            self.listener.started(src.uri, src.size)
            item: Fetched | Failed = await self.fetch(src, run.spool, defer_text=run.embed is None)
            if run.embed is not None and isinstance(item, Fetched):
                item = await run.embed.apply(item, run.spool)
        except BaseException as exc:  # every error of one file becomes its result
            if is_interruption(exc):  # (a fatal one too: the writer then stops the run)
                await run.budget.release(cost)
                raise
            item = Failed(src, file_error(exc, src.uri, "read"))
        item.cost, item.seconds = cost, time.monotonic() - began
        await run.queue.put(item)

    async def run(self, run: Run, writer: Writer, todo: list[Source]) -> None:
        """Load the files `todo`: fetched by `files_in_flight` workers, written in groups."""
        # files_in_flight workers take the files in order (cheaper than a task per file
        # parked on a semaphore: with thousands waiting, every wake-up costs).
        pending = iter(todo)

        async def work() -> None:
            for src in pending:  # shared: each file is taken by exactly one worker
                await self._produce(run, src)

        producers = [
            asyncio.create_task(work()) for _ in range(min(self.files_in_flight, len(todo)))
        ]
        batches = Batches(
            run.queue,
            expected=len(todo),
            limit=GROUP_FILES,
            parse=partial(parse_deferred, limits=self.limits),
            feeders=producers,
        )
        done: set[str] = set()
        try:
            await self._write_all(run, writer, batches, done)
        finally:
            for task in producers:
                task.cancel()
            await asyncio.gather(*producers, return_exceptions=True)
            discard([*await batches.close(), *drain(run.queue)])
        if run.report.aborted:
            writer.not_attempted(run, [src for src in todo if src.uri not in done])

    async def run_together(self, run: Run, writer: Writer, todo: list[Source]) -> None:
        """Load the files `todo` as one batch (at most `GROUP_FILES`, within the run's byte
        budget): all fetched first, then written as `Writer.write_batch` writes a group (the
        small files in one transaction). A cluster task's batch (`dreambolt.cluster`)."""
        if len(todo) > GROUP_FILES:
            raise ValueError(f"a batch holds at most {GROUP_FILES} files, got {len(todo)}")
        pending = iter(todo)

        async def work() -> None:
            for src in pending:
                await self._produce(run, src)

        producers = [
            asyncio.create_task(work()) for _ in range(min(self.files_in_flight, len(todo)))
        ]
        try:
            await asyncio.gather(*producers)  # errors of a file are its item: only interruptions
        except BaseException:
            for task in producers:
                task.cancel()
            await asyncio.gather(*producers, return_exceptions=True)
            discard(drain(run.queue))
            raise
        order = {src.uri: k for k, src in enumerate(todo)}
        batch = sorted(drain(run.queue), key=lambda item: order[item.source.uri])
        await self._write_all(run, writer, _One(batch), set())
        if run.report.aborted:
            written = {r.uri for r in run.report.files}
            writer.not_attempted(run, [src for src in todo if src.uri not in written])

    async def _write_all(
        self, run: Run, writer: Writer, batches: Batches | _One, done: set[str]
    ) -> None:
        """Write the groups as they come, until every file is written or the run aborts; the
        files written (or settled) are added to `done`."""
        while batches.left:
            batch = await batches.next()
            abort = self.on_error == "abort"
            try:
                results = await writer.write_batch(run, batch, stop_at_failure=abort)
            finally:
                for item in batch:
                    await run.budget.release(item.cost)
            discard(batch[len(results) :])  # not attempted: the run stops at a failure
            for item, result in zip(batch, results, strict=False):
                done.add(item.source.uri)
                if isinstance(item, Failed) and is_fatal(item.error):
                    raise item.error
                if result.status not in ("loaded", "unchanged") and self.on_error == "abort":
                    run.report.aborted = True
            if run.report.aborted:
                return


class _One:
    """A single group, taken as `Batches` are."""

    def __init__(self, batch: list[Fetched | Failed]) -> None:
        self._batch = batch
        self.left = len(batch)

    async def next(self) -> list[Fetched | Failed]:
        self.left = 0
        return self._batch
