"""Run an iterator ahead of its consumer on a thread of its own.

The write stage uses it so that parsing a big file's next block (polars, which releases the GIL)
overlaps with DuckDB inserting the previous one, instead of the two taking turns on one thread.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from typing import Generic, TypeVar

__all__ = ["Prefetch"]

T = TypeVar("T")
_POLL = 0.05  # seconds between checks for `close` while the consumer is not taking items


class _End:
    pass


class _Raised:
    def __init__(self, error: BaseException) -> None:
        self.error = error


class Prefetch(Generic[T], Iterator[T]):
    """Iterate `items` on a daemon thread, at most `depth` items ahead of the consumer.

    Items, and the exception that ends the iteration if any, arrive in order. `close()` never
    blocks: it asks the thread to stop, which then closes `items` (a generator is closed on the
    thread that ran it) as soon as its current step returns.
    """

    def __init__(self, items: Iterable[T], *, depth: int = 1, name: str = "dreambolt-prefetch"):
        self._items = iter(items)
        self._queue: queue.Queue[T | _End | _Raised] = queue.Queue(max(depth, 1))
        self._stop = threading.Event()
        self._finished = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._started = False

    def _run(self) -> None:
        try:
            for item in self._items:
                if not self._put(item):
                    return
        except BaseException as exc:  # handed to the consumer, which raises it
            self._put(_Raised(exc))
        else:
            self._put(_End())
        finally:
            close = getattr(self._items, "close", None)
            if close is not None:
                close()

    def _put(self, item: T | _End | _Raised) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=_POLL)
                return True
            except queue.Full:
                continue
        return False

    def __iter__(self) -> Prefetch[T]:
        return self

    def __next__(self) -> T:
        if self._finished:
            raise StopIteration
        if not self._started:
            self._started = True
            self._thread.start()
        got = self._queue.get()
        if isinstance(got, _End):
            self._finished = True
            raise StopIteration
        if isinstance(got, _Raised):
            self._finished = True
            raise got.error
        return got

    def close(self) -> None:
        """Stop early: the thread ends after its current step (this does not wait for it)."""
        self._finished = True
        self._stop.set()
        if not self._started:  # nothing ran: close the source here
            close = getattr(self._items, "close", None)
            if close is not None:
                close()
