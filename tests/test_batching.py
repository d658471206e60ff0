"""How fetched files are grouped into transactions (real asyncio queues and polars frames).

Time is a `FakeClock` the tests move by hand: a wait of `LINGER` is seen to start and to end
when the clock passes it, and rates are derived from clock readings, never from real sleeps.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import polars as pl

from dreambolt import batching
from dreambolt.batching import LINGER, ROW_GROUP, Batches
from dreambolt.fetch import Failed, Fetched
from dreambolt.sources import Source

Item = Fetched | Failed


class FakeClock:
    """A `batching.Clock` that moves only when told to."""

    def __init__(self) -> None:
        self.t = 0.0
        self.requested: list[float] = []  # every sleep asked for, in seconds
        self._sleepers: list[tuple[float, asyncio.Future[None]]] = []

    def now(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.requested.append(seconds)
        entry = (self.t + seconds, asyncio.get_running_loop().create_future())
        self._sleepers.append(entry)
        try:
            await entry[1]
        finally:
            self._sleepers.remove(entry)

    @property
    def sleeping(self) -> int:
        return len(self._sleepers)

    def advance(self, seconds: float) -> None:
        self.t += seconds
        for due, future in self._sleepers:
            if due <= self.t and not future.done():
                future.set_result(None)


async def until(condition: Callable[[], bool]) -> None:
    """Let the event loop run until `condition` holds (nothing here waits on a thread, so a
    bounded number of loop iterations is plenty)."""
    for _ in range(100_000):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("the condition never held")


async def settle() -> None:
    """Let every task that can run, run (a handful of loop iterations)."""
    for _ in range(20):
        await asyncio.sleep(0)


def small(name: str, rows: int) -> Fetched:
    return Fetched(
        Source(f"s3://b/{name}", 10, '"e"'), '"e"', 10, frame=pl.DataFrame({"x": list(range(rows))})
    )


def uris(batch: list[Item]) -> list[str]:
    return [i.source.uri for i in batch]


async def test_small_files_are_gathered_until_a_row_group_is_full() -> None:
    clock = FakeClock()
    arrived: asyncio.Queue[Item] = asyncio.Queue()
    per_file = ROW_GROUP // 4
    for i in range(2):
        arrived.put_nowait(small(f"{i}.csv", per_file))
    batches = Batches(arrived, expected=10, limit=1024, clock=clock)
    try:
        taking = asyncio.ensure_future(batches.next())
        await until(lambda: clock.sleeping == 1)  # half a row group, eight more on their way
        assert clock.requested == [LINGER]
        assert not taking.done()
        for i in range(2, 4):
            arrived.put_nowait(small(f"{i}.csv", per_file))
        first = await asyncio.wait_for(taking, 10)
        assert uris(first) == [f"s3://b/{i}.csv" for i in range(4)]
        assert clock.t == 0  # the row group filling up ended the wait, not the clock
    finally:
        await batches.close()


async def test_a_short_group_waits_linger_then_goes() -> None:
    clock = FakeClock()
    arrived: asyncio.Queue[Item] = asyncio.Queue()
    arrived.put_nowait(small("a.csv", 10))
    batches = Batches(arrived, expected=5, limit=1024, clock=clock)  # four more "on their way"
    try:
        taking = asyncio.ensure_future(batches.next())
        await until(lambda: clock.sleeping == 1)
        assert clock.requested == [LINGER]
        clock.advance(LINGER * 0.9)
        await settle()
        assert not taking.done()  # still within LINGER
        clock.advance(LINGER * 0.1)
        batch = await asyncio.wait_for(taking, 10)
    finally:
        await batches.close()
    assert uris(batch) == ["s3://b/a.csv"]
    assert batches.left == 4


async def test_no_wait_when_nothing_more_is_expected_or_limit_is_one() -> None:
    for expected, limit in ((1, 1024), (5, 1)):
        clock = FakeClock()
        arrived: asyncio.Queue[Item] = asyncio.Queue()
        arrived.put_nowait(small("a.csv", 10))
        batches = Batches(arrived, expected=expected, limit=limit, clock=clock)
        try:
            assert len(await asyncio.wait_for(batches.next(), 10)) == 1
        finally:
            await batches.close()
        assert clock.requested == []  # went at once: no wait was even started


async def test_close_hands_back_what_was_never_written(tmp_path: Path) -> None:
    arrived: asyncio.Queue[Item] = asyncio.Queue()
    spooled = tmp_path / "spool"
    spooled.write_bytes(b"id\n1\n")
    big = Fetched(Source("s3://b/big.csv", 5, '"e"'), '"e"', 5, path=spooled, spooled=True)
    arrived.put_nowait(big)
    batches = Batches(arrived, expected=3, limit=1024, clock=FakeClock())
    await until(lambda: batches.parsed.qsize() == 1)  # parsed, queued for a writer never coming
    left = await batches.close()
    assert left == [big]
    batching.discard(left)
    assert not spooled.exists()


async def _full_group_then_next(
    clock: FakeClock, gap: float
) -> tuple[Batches, asyncio.Queue[Item]]:
    """Two groups of two quarter-row-group files, `gap` clock seconds apart; of six files."""
    arrived: asyncio.Queue[Item] = asyncio.Queue()
    batches = Batches(arrived, expected=6, limit=1024, clock=clock)
    per_file = ROW_GROUP // 4
    for i in range(2):
        arrived.put_nowait(small(f"{i}.csv", per_file))
    await until(lambda: batches.parsed.qsize() == 1)
    clock.advance(gap)
    for i in range(2, 4):
        arrived.put_nowait(small(f"{i}.csv", per_file))
    await until(lambda: batches.parsed.qsize() == 2)
    return batches, arrived


async def test_a_full_group_waits_for_the_last_files_when_they_are_due_soon() -> None:
    clock = FakeClock()
    batches, arrived = await _full_group_then_next(clock, 0.05)  # 2 files in 0.05 s: 40/s
    try:
        taking = asyncio.ensure_future(batches.next())
        await until(lambda: clock.sleeping == 1)
        assert not taking.done()  # a row group is full, but the two last are due within TAIL
        for i in range(4, 6):
            arrived.put_nowait(small(f"{i}.csv", ROW_GROUP // 4))
        batch = await asyncio.wait_for(taking, 10)
        assert len(batch) == 6  # all in one transaction, none left for a last small one
    finally:
        await batches.close()


async def test_a_full_group_goes_at_once_when_the_last_files_are_far_off() -> None:
    clock = FakeClock()
    batches, _ = await _full_group_then_next(clock, 10.0)  # 2 files in 10 s: 0.2/s
    try:
        batch = await asyncio.wait_for(batches.next(), 10)
    finally:
        await batches.close()
    assert len(batch) == 4
    assert clock.requested == []


async def test_each_group_goes_through_the_parse_it_was_given() -> None:
    seen: list[list[str]] = []

    async def parse(group: list[Item]) -> list[Item]:
        seen.append(uris(group))
        return [Failed(i.source, ValueError("parsed")) for i in group]

    arrived: asyncio.Queue[Item] = asyncio.Queue()
    for name in ("a.csv", "b.csv"):
        arrived.put_nowait(small(name, 1))
    batches = Batches(arrived, expected=2, limit=1024, parse=parse, clock=FakeClock())
    try:
        batch = await asyncio.wait_for(batches.next(), 10)
    finally:
        await batches.close()
    assert seen == [["s3://b/a.csv", "s3://b/b.csv"]]
    assert all(isinstance(i, Failed) and str(i.error) == "parsed" for i in batch)
