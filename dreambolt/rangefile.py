"""A read-only file of which only some ranges are held in memory, read by pyarrow on threads.

The download (on the event loop) `put`s ranges as they land and `drop`s them once read; a
reader on another thread (pyarrow, through `pa.PythonFile`) seeks and reads as in any file. A
read inside one held range is a zero-copy view (`read_buffer`), one across adjacent held ranges
a copy of them joined; a read of bytes not held asks
`fetch_missing` for them, which blocks that thread while the loop fetches them. So a reader
that strays from the ranges planned for it (a writer's odd offsets) is slower, never wrong.
"""

from __future__ import annotations

import bisect
import io
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

import pyarrow as pa

from dreambolt.s3.ranges import Span

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

__all__ = ["RangeFile"]


class RangeFile(io.RawIOBase):
    """`size` bytes, some held (`put`), the rest fetched when read (`fetch_missing`)."""

    def __init__(self, size: int, fetch_missing: Callable[[Span], bytes]) -> None:
        super().__init__()
        self.size = size
        self.fetch_missing = fetch_missing
        self.missed = 0  # bytes read that were not held (fetched one read at a time)
        self._lock = threading.Lock()
        self._starts: list[int] = []
        self._held: dict[int, bytes | pa.Buffer] = {}
        self._position = 0

    def put(self, start: int, data: bytes | pa.Buffer) -> None:
        """Hold `data` as the bytes from `start` (ranges held never overlap)."""
        with self._lock:
            if start not in self._held:
                bisect.insort(self._starts, start)
            self._held[start] = data

    def drop(self, start: int) -> None:
        """Stop holding the range put at `start` (if held)."""
        with self._lock:
            if self._held.pop(start, None) is not None:
                self._starts.remove(start)

    @property
    def held(self) -> int:
        """Bytes held now."""
        with self._lock:
            return sum(map(len, self._held.values()))

    # --- the file interface ------------------------------------------------------------------

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self.size}[whence]
        if base + offset < 0:
            raise ValueError(f"negative seek position {base + offset}")
        self._position = base + offset
        return self._position

    def read(self, size: int | None = -1) -> bytes:
        return bytes(self.read_buffer(size))

    def read_buffer(self, size: int | None = -1) -> memoryview:
        """The next `size` bytes (all that are left for None or a negative size)."""
        start = self._position
        end = self.size if size is None or size < 0 else min(self.size, start + size)
        if end <= start:
            return memoryview(b"")
        view = self._view(start, end)
        if view is None:
            data = self.fetch_missing((start, end - 1))
            self.missed += len(data)
            view = memoryview(data)
        self._position = start + len(view)
        return view

    def readinto(self, buffer: WriteableBuffer) -> int:
        target = memoryview(buffer).cast("B")
        data = self.read_buffer(len(target))
        target[: len(data)] = data
        return len(data)

    def _view(self, start: int, end: int) -> memoryview | None:
        """Bytes `start`..`end` if held: a view into one range, or those of adjacent ranges
        joined (one copy); None if some are not held."""
        with self._lock:
            index = bisect.bisect_right(self._starts, start) - 1
            pieces: list[memoryview] = []
            at = start
            while at < end and 0 <= index < len(self._starts):
                first = self._starts[index]
                data = self._held[first]
                if not first <= at < first + len(data):
                    return None
                view = memoryview(data).cast("B")
                pieces.append(view[at - first : min(end, first + len(data)) - first])
                at = first + len(data)
                index += 1
        if at < end:
            return None
        return pieces[0] if len(pieces) == 1 else memoryview(b"".join(pieces))
