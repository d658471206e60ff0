"""A spool file read in order, on a worker thread, while its ranges land out of order."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

from dreambolt.formats.read import HEAD_BYTES

__all__ = ["GrowingFile"]


class GrowingFile:
    """A spool file whose ranges land out of order, read in order as its prefix completes.

    The download (on the event loop) reports each landed range and, at the end, success or the
    error; a reader on another thread gets bytes as soon as they are contiguous, and its last
    piece only once every check of the download has passed, so a file that turns out bad can
    never be committed.
    """

    def __init__(self, path: Path, size: int) -> None:
        self.path = path
        self.size = size
        self.head = asyncio.Event()  # the first bytes are there (or the download ended)
        self._lock = threading.Condition()
        self._landed: dict[int, int] = {}  # first -> last byte of ranges beyond the prefix
        self._ready = 0
        self._done = False
        self._error: BaseException | None = None

    def landed(self, span: tuple[int, int]) -> None:
        """A range is on disk (called on the event loop)."""
        with self._lock:
            self._landed[span[0]] = span[1]
            while self._ready in self._landed:
                self._ready = self._landed.pop(self._ready) + 1
            self._lock.notify_all()
        if self._ready >= min(HEAD_BYTES, self.size):
            self.head.set()

    def finished(self, task: asyncio.Task[object]) -> None:
        """The download ended (a done-callback, on the event loop)."""
        error = asyncio.CancelledError() if task.cancelled() else task.exception()
        with self._lock:
            self._done, self._error = True, error
            if error is None:
                self._ready = self.size
            self._lock.notify_all()
        self.head.set()

    def check(self) -> None:
        """Raise the download's error, if it failed."""
        if self._error is not None:
            raise self._error

    def pieces(self, chunk: int = 1 << 20) -> Iterator[bytes]:
        """The file's bytes in order, waiting for them to land (blocking: not on the loop)."""
        # Unbuffered: a buffered reader would read ahead past the landed prefix and keep the
        # zeros of ranges not written yet.
        with self.path.open("rb", buffering=0) as handle:
            position = 0
            while True:
                with self._lock:
                    self._lock.wait_for(
                        lambda at=position: (
                            self._error is not None
                            or self._done  # type: ignore[misc]
                            or self._ready > at
                        )
                    )
                    self.check()
                    ready, done = self._ready, self._done
                if position >= ready:
                    if done:
                        return
                    continue
                data = handle.read(min(chunk, ready - position))
                position += len(data)
                yield data

    def wait(self) -> None:
        """Block until the download is complete and checked (binary formats need it whole)."""
        with self._lock:
            self._lock.wait_for(lambda: self._done)
        self.check()
