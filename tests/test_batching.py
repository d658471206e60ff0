"""How fetched files are grouped into transactions (real asyncio queues and polars frames)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import polars as pl
import pytest

from dreambolt import batching
from dreambolt.batching import ROW_GROUP, Batches
from dreambolt.fetch import Failed, Fetched
from dreambolt.sources import Source


def small(name: str, rows: int) -> Fetched:
    return Fetched(
        Source(f"s3://b/{name}", 10, '"e"'), '"e"', 10, frame=pl.DataFrame({"x": list(range(rows))})
    )


async def test_small_files_are_gathered_until_a_row_group_is_full(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(batching, "LINGER", 30.0)  # only a full row group ends the wait here
    arrived: asyncio.Queue[Fetched | Failed] = asyncio.Queue()
    per_file = ROW_GROUP // 4
    for i in range(2):
        arrived.put_nowait(small(f"{i}.csv", per_file))
    batches = Batches(arrived, expected=10, limit=1024)
    try:
        taking = asyncio.ensure_future(batches.next())
        await asyncio.sleep(0.1)
        assert not taking.done()  # half a row group, and eight more files on their way
        for i in range(2, 4):
            arrived.put_nowait(small(f"{i}.csv", per_file))
        first = await asyncio.wait_for(taking, 5)
        assert [i.source.uri for i in first] == [f"s3://b/{i}.csv" for i in range(4)]
    finally:
        await batches.close()


async def test_a_short_group_waits_at_most_linger_then_goes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(batching, "LINGER", 0.2)
    arrived: asyncio.Queue[Fetched | Failed] = asyncio.Queue()
    arrived.put_nowait(small("a.csv", 10))
    batches = Batches(arrived, expected=5, limit=1024)  # four more are "on their way"
    began = time.monotonic()
    try:
        batch = await asyncio.wait_for(batches.next(), 5)
    finally:
        await batches.close()
    waited = time.monotonic() - began
    assert [i.source.uri for i in batch] == ["s3://b/a.csv"]
    assert 0.15 <= waited < 2, waited


async def test_no_wait_when_nothing_more_is_expected_or_limit_is_one() -> None:
    for expected, limit in ((1, 1024), (5, 1)):
        arrived: asyncio.Queue[Fetched | Failed] = asyncio.Queue()
        arrived.put_nowait(small("a.csv", 10))
        batches = Batches(arrived, expected=expected, limit=limit)
        began = time.monotonic()
        try:
            assert len(await asyncio.wait_for(batches.next(), 5)) == 1
        finally:
            await batches.close()
        assert time.monotonic() - began < 0.15


async def test_close_hands_back_what_was_never_written(tmp_path: Path) -> None:
    arrived: asyncio.Queue[Fetched | Failed] = asyncio.Queue()
    spooled = tmp_path / "spool"
    spooled.write_bytes(b"id\n1\n")
    big = Fetched(Source("s3://b/big.csv", 5, '"e"'), '"e"', 5, path=spooled, spooled=True)
    arrived.put_nowait(big)
    batches = Batches(arrived, expected=3, limit=1024)
    await asyncio.sleep(0.1)  # parsed and queued for the writer, which never comes
    left = await batches.close()
    assert left == [big]
    batching.discard(left)
    assert not spooled.exists()


async def test_a_full_group_waits_for_the_last_files_when_they_are_due_soon() -> None:
    arrived: asyncio.Queue[Fetched | Failed] = asyncio.Queue()
    batches = Batches(arrived, expected=6, limit=1024)
    per_file = ROW_GROUP // 4
    try:
        for i in range(2):
            arrived.put_nowait(small(f"{i}.csv", per_file))
        await asyncio.sleep(0.05)
        for i in range(2, 4):  # a full row group now, coming at ~40 files/s
            arrived.put_nowait(small(f"{i}.csv", per_file))
        await asyncio.sleep(0.05)
        taking = asyncio.ensure_future(batches.next())
        await asyncio.sleep(0.05)
        assert not taking.done()  # the two last files are due well within TAIL: it waits
        for i in range(4, 6):
            arrived.put_nowait(small(f"{i}.csv", per_file))
        batch = await asyncio.wait_for(taking, 5)
        assert len(batch) == 6  # all in one transaction, none left for a last small one
    finally:
        await batches.close()
