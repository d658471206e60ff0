"""What `dreambolt watch` tells Prometheus: `dreambolt_watch_*` on `/metrics`.

The metrics live in the service's own `CollectorRegistry` (not prometheus-client's global one:
a library does not change process-wide state), so two services in one process, or a test, see
only their own. What they mean is in the README ("Running as a service").
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from dreambolt.report import FileResult

__all__ = ["CONTENT_TYPE", "WatchMetrics"]

CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4  # what the client library itself serves by default
_PREFIX = "dreambolt_watch"


class WatchMetrics:
    """The service's counters and gauges, and their text exposition."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry

        def counter(name: str, doc: str, labels: Iterable[str] = ()) -> Counter:
            return Counter(f"{_PREFIX}_{name}", doc, list(labels), registry=r)

        def gauge(name: str, doc: str) -> Gauge:
            return Gauge(f"{_PREFIX}_{name}", doc, registry=r)

        self.messages_received = counter("messages_received", "SQS messages received")
        self.messages_deleted = counter("messages_deleted", "SQS messages deleted (done)")
        self.messages_returned = counter(
            "messages_returned", "SQS messages given back to the queue (retried later)"
        )
        self.messages_dead = counter(
            "messages_dead_lettered", "SQS messages that can never be parsed (to the DLQ)"
        )
        self.visibility_extensions = counter(
            "visibility_extensions", "visibility timeouts extended while a file loads"
        )
        self.files = counter("files", "files by final status", ["status"])
        self.rows = counter("rows", "rows loaded")
        self.bytes = counter("bytes", "bytes of the files loaded")
        self.polls = counter("polls", "listings of the sources (listing mode and backfills)")
        self.backlog = gauge("backlog", "files (or messages) seen and not yet done")
        self.held = gauge(
            "files_held", "files a poll could not load, waiting to be tried again (backed off)"
        )
        self.lag = gauge("lag_seconds", "seconds from the last loaded object's write to its commit")
        self.last_commit = gauge(
            "last_commit_timestamp_seconds", "Unix time of the last commit that loaded a file"
        )
        for status in ("loaded", "unchanged", "skipped", "failed"):
            self.files.labels(status=status)  # every series from the start, at 0

    def observe(
        self, results: Iterable[FileResult], written: dict[str, float] | None = None
    ) -> None:
        """Count files' final results; `written` maps a uri to its object's write time (Unix
        seconds), for the lag."""
        now = time.time()
        for result in results:
            self.files.labels(status=result.status).inc()
            if result.status != "loaded":
                continue
            self.rows.inc(result.rows)
            self.bytes.inc(result.bytes)
            self.last_commit.set(now)
            if written and result.uri in written:
                self.lag.set(max(0.0, now - written[result.uri]))

    def render(self) -> bytes:
        """The text exposition format."""
        return generate_latest(self.registry)
