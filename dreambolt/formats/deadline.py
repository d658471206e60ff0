"""A time bound on one blocking call: run it in a worker thread, stop waiting after N seconds.

Used around each step of reading a Parquet or Arrow IPC file (opening it, each record batch),
so that a file that makes a reader loop becomes a per-file error instead of a hang. Native
code cannot be interrupted: a call that overruns is abandoned, not stopped; until it returns by
itself it keeps what it holds, and a loop keeps a core busy.

Workers are bare threads (`_thread`, the documented low-level API: nothing registered with
`threading`, no shared executor), which the interpreter neither waits for at exit nor lets
block it. A worker whose call returned waits for the next one (at most `_IDLE` wait; a process
forked since starts afresh); one whose call overran is never used again. Handing a call to a
waiting worker costs 0.015 to 0.04 ms, also on a loaded machine; starting a thread costs 0.1 ms,
but often a few ms where other threads keep the cores busy (90th percentile 2.7 ms, measured on
2 cores running two other busy processes), as a new thread waits for a core longer than a
woken one.
"""

from __future__ import annotations

import _thread
import os
from collections.abc import Callable
from typing import TypeVar, cast

__all__ = ["Overran", "within"]

T = TypeVar("T")
_MAX = min(_thread.TIMEOUT_MAX, 10**9)  # a lock wait takes no longer timeout
_IDLE = 8  # workers kept waiting for calls


class Overran(TimeoutError):
    """A call did not finish within its time bound (it goes on in the background, abandoned)."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"it took more than {seconds:g} s")
        self.seconds = seconds


class _Worker:
    """A thread that runs the calls handed to it one at a time (`go`, then `done`)."""

    __slots__ = ("call", "done", "error", "go", "value")

    def __init__(self) -> None:
        self.go, self.done = _thread.allocate_lock(), _thread.allocate_lock()
        self.go.acquire()
        self.done.acquire()
        self.call: Callable[[], object] | None = None
        self.value: object = None
        self.error: BaseException | None = None
        _thread.start_new_thread(self._serve, ())

    def _serve(self) -> None:
        while True:
            self.go.acquire()
            call, self.call = self.call, None
            if call is None:
                return
            try:
                self.value = call()
            except BaseException as exc:  # handed to the waiting thread
                self.error = exc
            self.done.release()

    def stop(self) -> None:
        self.call = None
        self.go.release()


_idle: list[_Worker] = []  # list.pop and list.append are atomic: no lock to be held at a fork
_owner = [os.getpid()]


def within(seconds: float | None, call: Callable[[], T]) -> T:
    """Return `call()`, or raise `Overran` once it has run `seconds` without returning.

    What `call` raises is raised here (panics and other BaseExceptions included: the worker
    keeps nothing and never reports an unhandled error). `seconds` None runs `call` in this
    thread, unbounded. An interrupt (Ctrl-C) while waiting propagates at once; the call is
    then abandoned as on a timeout.
    """
    if seconds is None:
        return call()
    if not 0 < seconds < _MAX:
        raise ValueError(f"seconds must be positive and finite (or None), not {seconds!r}")
    worker = _take()
    worker.call = call
    worker.go.release()
    if not worker.done.acquire(timeout=seconds):
        raise Overran(seconds)
    value, error = worker.value, worker.error
    worker.value = worker.error = None
    if len(_idle) < _IDLE and _owner[0] == os.getpid():
        _idle.append(worker)
    else:
        worker.stop()
    if error is not None:
        raise error
    return cast(T, value)


def _take() -> _Worker:
    if _owner[0] != os.getpid():  # forked: the workers were not
        _idle.clear()
        _owner[0] = os.getpid()
    try:
        return _idle.pop()
    except IndexError:
        return _Worker()
