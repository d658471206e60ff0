"""Files a poll could not load, tried again at growing intervals rather than at every poll.

A file that one poll skipped or failed (a format it cannot read, a type conflict with the table,
403, S3 errors that outlasted the retries) is most likely refused again by the next poll. So the
service tries that (uri, etag) again after one interval, then two, four... up to an hour (or one
interval, if that is longer) instead of fetching and parsing it, and logging the same warning, at
every poll. A new version of the object (another etag) is tried at once; a restart forgets the
delays; a file no longer listed is forgotten. Files an aborted poll never tried are not held.
The ledger keeps a row of every attempt.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from dreambolt.report import FileResult
from dreambolt.sources import Source

__all__ = ["CAP_S", "Refusals"]

CAP_S = 3600.0  # the longest wait between two tries of a refused file (unless the interval is)


@dataclass(frozen=True)
class _Held:
    etag: str
    tries: int
    until: float  # the clock's time from which the file is tried again


class Refusals:
    """The refused files of a service and when each is tried again."""

    def __init__(self, interval: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = max(0.0, interval)
        self._clock = clock
        self._held: dict[str, _Held] = {}
        self._asked: set[str] = set()  # the held files a poll came across (`holds`)

    def __len__(self) -> int:
        return len(self._held)

    def delay(self, tries: int) -> float:
        """Seconds to wait after the `tries`-th refusal in a row of one version of a file."""
        return min(self.interval * 2.0 ** min(tries - 1, 64), max(self.interval, CAP_S))

    def note(self, results: Iterable[FileResult], *, complete: bool = False) -> None:
        """Learn from a poll's results: refused files are held, loaded ones let go; after a
        `complete` listing, so are the held files it did not come across (deleted since)."""
        now = self._clock()
        if complete:
            self._held = {uri: h for uri, h in self._held.items() if uri in self._asked}
        self._asked.clear()
        for result in results:
            if result.status in ("loaded", "unchanged"):
                self._held.pop(result.uri, None)
            elif result.etag is not None and not _untried(result):
                held = self._held.get(result.uri)
                tries = held.tries + 1 if held is not None and held.etag == result.etag else 1
                self._held[result.uri] = _Held(result.etag, tries, now + self.delay(tries))

    def holds(self, src: Source) -> bool:
        """Whether `src` waits for a later poll: this version of it was refused recently."""
        held = self._held.get(src.uri)
        if held is None:
            return False
        self._asked.add(src.uri)
        return held.etag == src.etag and self._clock() < held.until


def _untried(result: FileResult) -> bool:
    return result.error is not None and result.error.type == "Aborted"
