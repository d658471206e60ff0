"""The watch service: keep a table current, exactly once, until told to stop.

Listing mode: every `interval`, the sources are listed and ingested; the (uri, etag) ledger
decides what is new or changed (never a last-modified watermark, which loses files written in
the same second as the mark). One Ingester serves every poll (one S3 client, one open
destination).

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
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from dreambolt.report import FileResult, IngestReport
from dreambolt.watch.metrics import WatchMetrics

if TYPE_CHECKING:
    from dreambolt.ingest import Ingester

__all__ = ["MetricsListener", "State", "WatchOptions", "Watcher"]

log = logging.getLogger("dreambolt.watch")
State = Literal["starting", "ready", "draining", "stopped"]


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


@dataclass
class MetricsListener:
    """An Ingester `Listener` that keeps the metrics current as files finish."""

    metrics: WatchMetrics
    _waiting: int = field(default=0, init=False)

    def planned(self, files: int, total_bytes: int) -> None:
        self._waiting = files
        self.metrics.backlog.set(files)

    def started(self, uri: str, size: int) -> None:
        pass

    def advanced(self, uri: str, nbytes: int) -> None:
        pass

    def finished(self, result: FileResult) -> None:
        self.metrics.observe([result])
        if result.status != "unchanged":
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
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        """Stop starting work and drain (safe to call more than once, from a signal handler)."""
        if self.state != "stopped":
            self.state = "draining"
        self._stopping.set()

    async def run(self) -> bool:
        """Poll until stopped; True when the drain finished within the timeout."""
        self.state = "draining" if self._stopping.is_set() else "ready"
        try:
            while not self._stopping.is_set():
                if not await self._poll():
                    return False
                await self._pause(self.options.interval)
            return True
        finally:
            self.state = "stopped"

    async def _poll(self) -> bool:
        """One listing and ingest; False if it was cut short by a drain that ran out."""
        opts = self.options
        began = time.monotonic()
        poll = asyncio.ensure_future(
            self.ingester.ingest(
                list(opts.inputs),
                table=opts.table,
                include=opts.include,
                exclude=opts.exclude,
                format=opts.format,
                columns=opts.columns,
            )
        )
        stopping = asyncio.ensure_future(self._stopping.wait())
        try:
            await asyncio.wait([poll, stopping], return_when=asyncio.FIRST_COMPLETED)
            if not poll.done():  # draining: the poll gets the drain timeout to finish
                await asyncio.wait([poll], timeout=opts.drain_timeout)
            if not poll.done():
                log.warning("drain timeout (%gs) passed: stopping the load", opts.drain_timeout)
                poll.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await poll
                return False
        finally:
            stopping.cancel()
        self.metrics.polls.inc()
        self.last_report = report = poll.result()
        counts = {s: report.count(s) for s in ("loaded", "unchanged", "skipped", "failed")}
        log.info("poll of %s: %s in %.1fs", opts.table, counts, time.monotonic() - began)
        return True

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), timeout=seconds)
