"""How fetched files are grouped: parsed together in one call, written in one transaction.

Three stages overlap. Downloads put files on the `arrived` queue; a parse task takes what has
arrived (up to `limit` files), parses their small CSVs together in a worker thread and hands the
group on; the writer takes parsed groups and writes each as one transaction.

Small files are worth gathering before they are written. An insert of at least a row group
(122,880 rows) is written by DuckDB straight into the database file, compressed on all cores,
where a smaller one goes through the WAL and is written again at the next checkpoint: 1,000 files
of 300 rows take 0.16 s as one insert and 0.44 s as four. So while a group of small files is
short of a row group and more files are on their way, the writer waits a little (`LINGER`) for
them instead of writing the moment anything is ready. And once a group is full, if the run's last
files are due within `TAIL` at the rate files have been coming, it waits for those too: written
on their own, after everything else, they would be a transaction nothing overlaps (1,000 files:
1.15 s became 1.05 s).

This module only groups: how a group is parsed is handed in (`parse`, the write stage's
`parse_deferred`), and time is read and waited through a `Clock` (the event loop's by default),
so that tests can drive the waits without sleeping.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from typing import Protocol, TypeVar

from dreambolt.fetch import Failed, Fetched

__all__ = [
    "LINGER",
    "ROW_GROUP",
    "TAIL",
    "Batches",
    "Clock",
    "LoopClock",
    "Parse",
    "StageError",
    "discard",
    "drain",
]

ROW_GROUP = 122_880  # DuckDB's rows per row group
LINGER = 0.3  # seconds the writer waits for more small files to fill a row group
TAIL = 0.3  # ... or, with a row group full, for the last files if they are due this soon
Item = Fetched | Failed
T = TypeVar("T")
Parse = Callable[[list[Item]], Awaitable[list[Item]]]
"""Parses what a group left unparsed; discards the group's files if it is cancelled."""


class Clock(Protocol):
    """Where `Batches` reads the time and waits."""

    def now(self) -> float:
        """Seconds on a monotonic clock."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Return once `seconds` have passed on this clock."""
        ...


class LoopClock:
    """The running event loop's clock."""

    def now(self) -> float:
        return asyncio.get_running_loop().time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


async def _as_they_are(batch: list[Item]) -> list[Item]:
    return batch


class StageError(RuntimeError):
    """A stage of the pipeline (a download worker, the parse task) died: the run cannot go on."""


class Batches:
    """Groups of parsed files for the writer, parsed ahead while it writes the previous one."""

    def __init__(
        self,
        arrived: asyncio.Queue[Item],
        *,
        expected: int,
        limit: int,
        parse: Parse = _as_they_are,
        feeders: Iterable[asyncio.Task[None]] = (),
        clock: Clock | None = None,
    ) -> None:
        """`parse` is applied to each group as it is taken from `arrived` (default: none).
        `feeders` are the tasks that put files on `arrived`: should one of them die, the
        writer learns of it (its error is raised by `next`) instead of waiting forever."""
        self.parsed: asyncio.Queue[list[Item]] = asyncio.Queue(2)
        self.left = expected  # files the writer has yet to take
        self._limit = max(1, limit)
        self._parse_group = parse
        self._clock = clock or LoopClock()
        self._feeders = list(feeders)
        self._carry: list[Item] = []
        self._handed = 0  # files parsed and handed on, since `_began`
        self._began: float | None = None
        self._task = asyncio.create_task(self._parse(arrived))

    async def _parse(self, arrived: asyncio.Queue[Item]) -> None:
        while True:
            batch = [await arrived.get()]
            while len(batch) < self._limit and not arrived.empty():
                batch.append(arrived.get_nowait())
            batch = await self._parse_group(batch)  # discards it if cancelled
            try:
                await self.parsed.put(batch)
            except BaseException:
                discard(batch)
                raise
            if self._began is None:
                self._began = self._clock.now()
            else:
                self._handed += len(batch)

    async def next(self) -> list[Item]:
        """The next group to write in one transaction (at least one file, at most `limit`)."""
        clock = self._clock
        batch, self._carry = self._carry or await self._first(), []
        deadline = clock.now() + LINGER
        while len(batch) < self._limit:
            if not self.parsed.empty():
                more = self.parsed.get_nowait()
            elif len(batch) >= self.left or not self._worth_waiting(batch, clock.now()):
                break
            else:
                got = await self._get(deadline - clock.now())
                if got is None:
                    break
                more = got
            if len(batch) + len(more) > self._limit:
                self._carry = more
                break
            batch = batch + more
        self.left -= len(batch)
        return batch

    async def _first(self) -> list[Item]:
        got = await self._get(None)
        assert got is not None  # no timeout
        return got

    async def _get(self, timeout: float | None) -> list[Item] | None:  # noqa: ASYNC109
        """The next parsed group, waiting up to `timeout` seconds (then None).

        Raises `StageError` if the parse task or a feeder died meanwhile: no stage dies without
        the writer learning of it.
        """
        if not self.parsed.empty():
            return self.parsed.get_nowait()
        getter = asyncio.ensure_future(self.parsed.get())
        timer = None if timeout is None else asyncio.ensure_future(self._clock.sleep(timeout))
        taken = False
        try:
            while True:
                watched = [t for t in (self._task, *self._feeders) if not t.done()]
                waits = [getter, *watched] if timer is None else [getter, timer, *watched]
                done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
                if getter in done:
                    taken = True
                    return getter.result()
                self._check_stages()
                if timer in done:
                    return None  # timed out
                # a feeder ran out of files: wait on for the others
        finally:
            if timer is not None:
                timer.cancel()
            if not getter.done():
                getter.cancel()
            elif not taken and not getter.cancelled() and getter.exception() is None:
                discard(getter.result())  # got a group after all, but we are leaving

    def _check_stages(self) -> None:
        for task in (self._task, *self._feeders):
            if task.done() and not task.cancelled() and task.exception() is not None:
                raise StageError(
                    f"a pipeline stage stopped unexpectedly ({task.get_name()}): "
                    f"{task.exception()!r}"
                ) from task.exception()

    async def close(self) -> list[Item]:
        """Stop parsing; return the files still held here (for the caller to discard)."""
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        left = [*self._carry, *(item for batch in drain(self.parsed) for item in batch)]
        self._carry = []
        return left

    def _worth_waiting(self, batch: list[Item], now: float) -> bool:
        """Only a group of small parsed files gains by waiting (a big file being streamed from
        its download is written at once): until it fills a row group, or, once it does, for
        the last files of the run if at the rate they have been coming they are due within
        `TAIL` — else they would make a transaction of their own after this one, at the end,
        where nothing else overlaps it."""
        rows = 0
        for item in batch:
            if isinstance(item, Fetched):
                if item.frame is None:
                    return False
                rows += item.frame.height
        if rows < ROW_GROUP:
            return True
        if self._began is None or self._handed == 0 or now <= self._began:
            return False
        rate = self._handed / (now - self._began)  # files per second
        return (self.left - len(batch)) <= rate * TAIL


def drain(queue: asyncio.Queue[T]) -> list[T]:
    """Take everything left in `queue` without waiting."""
    items = []
    while not queue.empty():
        items.append(queue.get_nowait())
    return items


def discard(items: Iterable[Item]) -> None:
    """Stop the downloads and remove the spools of files that will not be written."""
    for item in items:
        if isinstance(item, Fetched):
            item.discard()
