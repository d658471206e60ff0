"""Downloads read in order, on a worker thread, while their ranges land out of order.

`GrowingFile` is a spool file on disk, `GrowingBuffer` a preallocated buffer in memory; both
are fed by the download on the event loop (`landed` for each range, `finished` at the end) and
read by a parser on another thread as soon as a prefix is contiguous. The last byte is held
back until every check of the download has passed, so a reader never gets the whole of an
object that turns out bad: a parser cannot finish (commit) a file whose download failed.
"""

from __future__ import annotations

import asyncio
import mmap
import threading
from collections.abc import Iterator
from pathlib import Path

from dreambolt.formats.read import HEAD_BYTES

__all__ = ["GrowingBuffer", "GrowingFile"]


class _Growing:
    """The landed prefix of a download, and how it ended."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.head = asyncio.Event()  # the first bytes are there (or the download ended)
        self._lock = threading.Condition()
        self._landed: dict[int, int] = {}  # first -> last byte of ranges beyond the prefix
        self._ready = 0
        self._done = False
        self._error: BaseException | None = None

    def landed(self, span: tuple[int, int]) -> None:
        """A range is written (called on the event loop)."""
        with self._lock:
            self._landed[span[0]] = span[1]
            while self._ready in self._landed:
                self._ready = self._landed.pop(self._ready) + 1
            self._lock.notify_all()
        if self._ready >= min(HEAD_BYTES, self.size):
            self.head.set()

    def finished(self, task: asyncio.Future[object]) -> None:
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

    def wait(self) -> None:
        """Block until the download is complete and checked (binary formats need it whole)."""
        with self._lock:
            self._lock.wait_for(lambda: self._done)
        self.check()

    def _readable(self, position: int) -> int:
        """Wait until bytes past `position` may be read; return where they end (`position`
        itself: the end of a complete download). Raises the download's error."""
        with self._lock:
            while True:
                self.check()
                if self._done:
                    return self._ready
                end = min(self._ready, self.size - 1)  # the last byte waits for the checks
                if end > position:
                    return end
                self._lock.wait()


class GrowingFile(_Growing):
    """A spool file whose ranges land out of order, read in order as its prefix completes."""

    def __init__(self, path: Path, size: int) -> None:
        super().__init__(size)
        self.path = path

    def pieces(self, chunk: int = 1 << 20) -> Iterator[bytes]:
        """The file's bytes in order, waiting for them to land (blocking: not on the loop)."""
        # Unbuffered: a buffered reader would read ahead past the landed prefix and keep the
        # zeros of ranges not written yet.
        with self.path.open("rb", buffering=0) as handle:
            position = 0
            while (end := self._readable(position)) > position:
                data = handle.read(min(chunk, end - position))
                position += len(data)
                yield data


class GrowingBuffer(_Growing):
    """An object downloaded into memory (`view`, of its size), read in order as its prefix
    completes: the parser works on the first blocks while later ranges still arrive.

    The memory is an anonymous mapping, not a `bytearray`: that would be zero-filled up front
    (a quarter of a second for 256 MiB, on the event loop), while the kernel hands out the
    pages of a mapping as the ranges are written (huge pages where it can)."""

    def __init__(self, size: int) -> None:
        super().__init__(size)
        self._map = mmap.mmap(-1, max(size, 1))
        if hasattr(mmap, "MADV_HUGEPAGE"):
            self._map.madvise(mmap.MADV_HUGEPAGE)
        self.view = memoryview(self._map)[:size]

    def pieces(self, chunk: int = 8 << 20) -> Iterator[bytes]:
        """The object's bytes in order (copies of at most `chunk` bytes), waiting for them to
        land (blocking: not on the loop)."""
        view, position = self.view, 0
        while (end := self._readable(position)) > position:
            stop = min(end, position + chunk)
            yield bytes(view[position:stop])
            position = stop

    def data(self) -> bytes:
        """The whole object, once downloaded and checked (blocking: not on the loop)."""
        self.wait()
        return bytes(self.view)
