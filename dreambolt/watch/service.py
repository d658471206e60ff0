"""The watch service: keep a table current, exactly once, until told to stop.

Listing mode: every `interval`, the sources are listed and ingested; the (uri, etag) ledger
decides what is new or changed (never a last-modified watermark, which loses files written in
the same second as the mark). Notification mode (`queue`): S3 event notifications from SQS
(`notify`), with a full listing at start and every `backfill_interval`. One Ingester serves
every poll and batch (one S3 client, one open destination). A file a poll could not load is
tried again after growing delays, not at every poll (`refusals`).

**Stopping.** `stop()` (SIGTERM, SIGINT) stops starting polls; `/readyz` turns 503 (draining).
A poll in progress gets `drain_timeout` seconds to finish; if it has not, it is cancelled: the
transaction in progress commits or rolls back whole, files not committed are not in the
table and are loaded by the next run. `run()` returns whether the drain finished in time
(the CLI exits 0, else 130).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, TypeVar

from dreambolt.report import FileResult, IngestReport
from dreambolt.sources import Source
from dreambolt.triage import Polling
from dreambolt.watch.drain import finish_or_drain
from dreambolt.watch.lexical import Marks
from dreambolt.watch.metrics import WatchMetrics
from dreambolt.watch.refusals import Refusals

if TYPE_CHECKING:
    from dreambolt.ingest import Ingester

__all__ = ["MetricsListener", "State", "WatchOptions", "Watcher"]

log = logging.getLogger("dreambolt.watch")
State = Literal["starting", "ready", "draining", "stopped"]
T = TypeVar("T")


@dataclass(frozen=True)
class WatchOptions:
    """What to watch and how (the `dreambolt watch` options)."""

    inputs: Sequence[str]
    table: str
    interval: float = 60.0
    drain_timeout: float = 25.0
    include: Sequence[str] = ()
    exclude: Sequence[str] = ()
    format: str | None = None
    columns: Sequence[str] | None = None
    queue: str | None = None  # an SQS queue URL: notification mode
    lexical: bool = False  # listing mode: list after the last key seen (`lexical`)
    full_every: int = 10  # lexical: every this many polls, a full listing
    backfill_interval: float = 86_400.0  # notification mode: a full listing this often


@dataclass
class MetricsListener:
    """An Ingester `Listener` that keeps the metrics current as files finish."""

    metrics: WatchMetrics
    backlog: bool = True  # the files of a poll are the backlog (listing mode; else messages)
    _waiting: int = field(default=0, init=False)

    def planned(self, files: int, total_bytes: int) -> None:
        self._waiting = files
        if self.backlog:
            self.metrics.backlog.set(files)

    def started(self, uri: str, size: int) -> None:
        pass

    def advanced(self, uri: str, nbytes: int) -> None:
        pass

    def finished(self, result: FileResult) -> None:
        self.metrics.observe([result])
        if result.status != "unchanged" and self.backlog:
            self._waiting = max(0, self._waiting - 1)
            self.metrics.backlog.set(self._waiting)


class Watcher:
    """Runs the polls until `stop()`; `state` is what `/readyz` reports."""

    def __init__(self, ingester: Ingester, options: WatchOptions, metrics: WatchMetrics) -> None:
        self.ingester = ingester
        self.options = options
        self.metrics = metrics
        self.state: State = "starting"
        self.last_report: IngestReport | None = None
        self.refusals = Refusals(options.interval)  # polls try refused files less often
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        """Stop starting work and drain (safe to call more than once, from a signal handler)."""
        if self.state != "stopped":
            self.state = "draining"
        self._stopping.set()

    async def run(self) -> bool:
        """Work until stopped; True when the drain finished within the timeout."""
        try:
            if self.options.queue is not None:
                return await self._notifications(self.options.queue)
            self.state = "draining" if self._stopping.is_set() else "ready"
            marks = Marks(self.options.inputs) if self.options.lexical else None
            polls = 0
            while not self._stopping.is_set():
                if not await self._listing(marks, polls):
                    return False
                polls += 1
                await self._pause(self.options.interval)
            return True
        finally:
            self.state = "stopped"

    async def _listing(self, marks: Marks | None, polls: int) -> bool:
        """One poll of listing mode: lexical (after the marks) or full."""
        opts = self.options
        if marks is None:
            return await self._poll()
        new = None
        if polls % max(1, opts.full_every):
            client = await self.ingester.client()
            new = await marks.after(client, opts.include, opts.exclude)
        if new is None:  # a full listing: it sets the marks
            done = await self._poll()
            if done and self.last_report is not None:
                marks.learn(r.uri for r in self.last_report.files)
            return done
        if not new:
            self.metrics.polls.inc()
            return True
        return await self._poll(new)

    async def _notifications(self, url: str) -> bool:
        """Notification mode: a full listing at start and every backfill interval (S3 does not
        promise to deliver every event); in between, batches of messages."""
        from dreambolt.watch.notify import Notifications
        from dreambolt.watch.sqs import Queue

        async with Queue(url, self.ingester.s3_options) as queue:
            notes = Notifications(self.ingester, queue, self.options, self.metrics)
            self.state = "draining" if self._stopping.is_set() else "ready"
            backfill_at = time.monotonic()
            while not self._stopping.is_set():
                if time.monotonic() >= backfill_at:
                    if not await self._poll():
                        return False
                    backfill_at = time.monotonic() + self.options.backfill_interval
                    continue
                messages = await self._until_stopped(notes.receive())
                if messages and not await notes.handle(messages, self._stopping):
                    return False
            return True

    async def _until_stopped(self, work: Awaitable[list[T]]) -> list[T]:
        """What `work` returns, or [] if the service is stopped first (`work` is cancelled)."""
        task = asyncio.ensure_future(work)
        stopping = asyncio.ensure_future(self._stopping.wait())
        try:
            await asyncio.wait([task, stopping], return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            return []
        return task.result()

    async def _poll(self, inputs: Sequence[str | Source] | None = None) -> bool:
        """One listing (or the objects given) and ingest; False if it was cut short by a drain
        that ran out."""
        opts = self.options
        began = time.monotonic()
        poll = asyncio.ensure_future(
            self.ingester.ingest(
                list(inputs if inputs is not None else opts.inputs),
                table=opts.table,
                include=opts.include,
                exclude=opts.exclude,
                format=opts.format,
                columns=opts.columns,
                # an empty prefix is no failure; unchanged is not recorded again; files refused
                # recently wait for a later poll
                polling=Polling(hold=self.refusals.holds),
            )
        )
        if not await finish_or_drain(poll, self._stopping, opts.drain_timeout):
            return False
        self.metrics.polls.inc()
        self.last_report = report = poll.result()
        self.refusals.note(report.files, complete=inputs is None)
        self.metrics.held.set(len(self.refusals))
        counts = {s: report.count(s) for s in ("loaded", "unchanged", "skipped", "failed")}
        log.info("poll of %s: %s in %.1fs", opts.table, counts, time.monotonic() - began)
        return True

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), timeout=seconds)
