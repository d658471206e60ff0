"""Notification mode: S3 event notifications from SQS, taken as hints.

A received batch (up to 10 messages) is decoded (`events.decode`): the `s3:TestEvent` is
deleted at once; a message that can never be parsed goes to the dead-letter queue; events of
objects outside the watched sources or filtered out by include/exclude, and removals, are
dropped. The objects the rest name are ingested in ONE run (their current version: each is
HEADed, then read pinned to that version, and the (uri, etag) ledger decides: a duplicated or
an old message finds the object `unchanged`). While the run loads, the messages' visibility is
extended every third of the queue's visibility timeout, so a slow object is not handed to
another consumer. Then each message is deleted when all of its files are done (loaded,
unchanged, or failed for good and in the ledger), or given back with a growing delay when one
failed in a way that may pass (throttling, a 5xx, a timeout). Batches run one after the other,
so a uri is never loaded twice at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from dreambolt.errors import S3BaseError, S3NotFoundError
from dreambolt.report import FileResult, IngestReport
from dreambolt.s3.listing import key_matcher
from dreambolt.s3.uri import S3Uri, parse_s3_uri
from dreambolt.sources import Source
from dreambolt.sources.inputs import wanted_key
from dreambolt.watch.drain import finish_or_drain
from dreambolt.watch.events import ObjectEvent, PoisonMessage, decode
from dreambolt.watch.metrics import WatchMetrics
from dreambolt.watch.sqs import Message, Queue

if TYPE_CHECKING:
    from dreambolt.ingest import Ingester
    from dreambolt.watch.service import WatchOptions

__all__ = ["TRANSIENT", "Notifications"]

log = logging.getLogger("dreambolt.watch")
# Errors of a file that may pass: its message is given back to be tried again later.
TRANSIENT = {"S3RateLimitError", "S3GenericError", "S3TimeoutError", "TimeoutError", "OSError"}
_MAX_DELAY = 900  # seconds a message given back waits at most
BACKLOG_EVERY = 15.0  # seconds between two reads of the queue's length


class Notifications:
    """Receives, loads and settles batches of messages until stopped."""

    def __init__(
        self, ingester: Ingester, queue: Queue, options: WatchOptions, metrics: WatchMetrics
    ) -> None:
        self.ingester = ingester
        self.queue = queue
        self.options = options
        self.metrics = metrics
        self._sources = [parse_s3_uri(u) for u in options.inputs if u.lower().startswith("s3")]
        self._backlog_at = 0.0
        self._targets: dict[str, S3Uri] = {}  # uri -> the object an event named

    def watched(self, event: ObjectEvent) -> bool:
        """Whether an event names an object of the watched sources that the filters keep."""
        if event.kind != "created":
            return False
        for base in self._sources:
            prefix, wanted = key_matcher(base)
            if base.bucket == event.bucket and event.key.startswith(prefix) and wanted(event.key):
                return wanted_key(event.key, self.options.include, self.options.exclude)
        return False

    async def receive(self) -> list[Message]:
        messages = await self.queue.receive()
        self.metrics.messages_received.inc(len(messages))
        if time.monotonic() >= self._backlog_at:  # the backlog gauge, at most every 15 s
            self._backlog_at = time.monotonic() + BACKLOG_EVERY
            with contextlib.suppress(Exception):  # a gauge is not worth failing a batch
                self.metrics.backlog.set(await self.queue.waiting() + len(messages))
        return messages

    async def handle(self, messages: Sequence[Message], stopping: asyncio.Event) -> bool:
        """Load and settle one batch; False if a drain ran out before it committed (its
        messages are then given back at once)."""
        wanted: dict[str, list[str]] = {}  # message id -> the uris it names
        written: dict[str, float] = {}  # uri -> when the newest event says it was written
        for message in messages:
            uris = await self._decoded(message)
            if uris is None:
                continue
            wanted[message.id] = [uri for uri, _ in uris]
            for uri, at in uris:
                written[uri] = max(written.get(uri, 0.0), at)
        keep = [m for m in messages if wanted.get(m.id)]
        for message in messages:
            if message.id in wanted and not wanted[message.id]:  # nothing of ours: done
                await self._delete(message)
        if not keep:
            return True
        found, gone = await self._current(sorted(written))
        report = await self._load(keep, found, stopping) if found else IngestReport("", "")
        if report is None:
            for message in keep:
                await self.queue.give_back(message)
                self.metrics.messages_returned.inc()
            return False
        self._lag(report, written)
        results: dict[str, FileResult | None] = {r.uri: r for r in report.files}
        results.update(dict.fromkeys(gone, _GONE))
        for message in keep:
            await self._settle(message, [results.get(uri) for uri in wanted[message.id]])
        return True

    async def _current(self, uris: list[str]) -> tuple[list[Source | str], list[str]]:
        """The objects as they are now (HEAD), and the uris of those deleted since their event.
        An object whose HEAD failed otherwise is passed on by uri: the ingest reports it (and
        records it, or says that it may pass)."""
        client = await self.ingester.client()

        async def head(uri: str) -> Source | str | None:
            try:
                info = await client.head(self._targets.pop(uri, uri))
            except S3NotFoundError:
                log.info("%s: gone since its event, nothing to load", uri)
                return None
            except S3BaseError:
                return uri
            return Source(str(info.uri), info.size, info.etag or None, info)

        found = await asyncio.gather(*(head(uri) for uri in uris))
        gone = [uri for uri, now in zip(uris, found, strict=True) if now is None]
        return [now for now in found if now is not None], gone

    async def _decoded(self, message: Message) -> list[tuple[str, float]] | None:
        """The (uri, written at) a message names (None: it was settled here already)."""
        try:
            decoded = decode(message.body)
        except PoisonMessage as exc:
            moved = await self.queue.dead_letter(message)
            self.metrics.messages_dead.inc()
            where = "moved to the dead-letter queue" if moved else "deleted (no dead-letter queue)"
            log.error("message %s can never be parsed, %s: %s", message.id, where, exc)
            return None
        if decoded.test_event:
            await self._delete(message)
            return None
        found = []
        for event in decoded.events:
            if self.watched(event):
                target = S3Uri(event.bucket, event.key)  # as it is: never parsed from text
                self._targets[str(target)] = target
                at = event.event_time.timestamp() if event.event_time else 0.0
                found.append((str(target), at))
        return found

    async def _load(
        self, messages: Sequence[Message], uris: Sequence[Source | str], stopping: asyncio.Event
    ) -> IngestReport | None:
        """Ingest the uris while keeping the messages hidden; None if the drain ran out."""
        opts = self.options
        load = asyncio.ensure_future(
            self.ingester.ingest(
                list(uris), table=opts.table, format=opts.format, columns=opts.columns, polling=True
            )
        )
        heartbeat = asyncio.ensure_future(self._keep_hidden(messages))
        try:
            if not await finish_or_drain(load, stopping, opts.drain_timeout):
                return None
        finally:
            heartbeat.cancel()
        return load.result()

    async def _keep_hidden(self, messages: Sequence[Message]) -> None:
        timeout = max(3, self.queue.visibility_timeout)
        while True:
            await asyncio.sleep(timeout / 3)
            for message in messages:
                with contextlib.suppress(Exception):  # it is extended again next time
                    await self.queue.extend(message, timeout)
                    self.metrics.visibility_extensions.inc()

    async def _settle(self, message: Message, results: list[FileResult | None]) -> None:
        again = [r for r in results if r is None or _transient(r)]
        if not again:
            await self._delete(message)
            return
        delay = min(_MAX_DELAY, 5 * 2 ** min(message.receive_count - 1, 10))
        await self.queue.give_back(message, delay)
        self.metrics.messages_returned.inc()
        log.warning(
            "message %s given back for %ss: %d file(s) to retry", message.id, delay, len(again)
        )

    async def _delete(self, message: Message) -> None:
        await self.queue.delete(message)
        self.metrics.messages_deleted.inc()

    def _lag(self, report: IngestReport, written: dict[str, float]) -> None:
        now = time.time()
        lags = [
            now - written[r.uri]
            for r in report.files
            if r.status == "loaded" and written.get(r.uri)
        ]
        if lags:
            self.metrics.lag.set(max(0.0, max(lags)))


_GONE = FileResult("", "unchanged")  # an object deleted since its event: nothing to do


def _transient(result: FileResult) -> bool:
    return result.error is not None and result.error.type in TRANSIENT
