"""GrowingBuffer and fill_object: an object downloaded into memory, ranges in order, read by a
parser thread as its prefix lands (real moto server through the fault proxy)."""

from __future__ import annotations

import asyncio
import hashlib
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from faultproxy import FaultProxy
from polars.testing import assert_frame_equal

from dreambolt import S3Client, S3ObjectChangedError
from dreambolt.formats import read as formats
from dreambolt.formats.read import FileFormat, iter_pieces, read_bytes
from dreambolt.growing import GrowingBuffer, GrowingFile
from dreambolt.s3 import transfer
from dreambolt.s3.objects import ObjectInfo
from dreambolt.s3.transfer import fill_object, spool_object

PART = 1024


def payload(size: int) -> bytes:
    return (hashlib.sha256(str(size).encode()).digest() * (size // 32 + 1))[:size]


@pytest.fixture
async def client(proxy: FaultProxy) -> AsyncIterator[S3Client]:
    async with S3Client(
        endpoint_url=proxy.endpoint_url,
        part_size=PART,
        concurrency=4,
        backoff_factor=0.01,
        max_backoff=0.05,
    ) as s3_client:
        yield s3_client


async def listed(client: S3Client, bucket: str, key: str) -> ObjectInfo:
    async for info in client.list(f"s3://{bucket}/{key}"):
        return info
    raise AssertionError(f"{key} is not listed")


def done_future(error: BaseException | None = None) -> asyncio.Future[object]:
    future: asyncio.Future[object] = asyncio.get_running_loop().create_future()
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)
    return future


async def test_a_reader_gets_the_prefix_but_not_the_last_byte_before_the_checks() -> None:
    data = payload(3000)
    growing = GrowingBuffer(len(data))
    got: list[bytes] = []
    have_all_but_last = threading.Event()

    def read() -> None:
        for piece in growing.pieces(chunk=700):
            got.append(piece)
            if sum(map(len, got)) == len(data) - 1:
                have_all_but_last.set()

    reader = threading.Thread(target=read)
    reader.start()
    for first, last in [(2000, 2999), (0, 999), (1000, 1999)]:  # out of order
        growing.view[first : last + 1] = data[first : last + 1]
        growing.landed((first, last))
    assert await asyncio.to_thread(have_all_but_last.wait, 5)
    assert b"".join(got) == data[:-1]  # every byte landed, the last one held back
    growing.finished(done_future())
    await asyncio.to_thread(reader.join, 5)
    assert b"".join(got) == data
    assert growing.data() == data


@pytest.mark.parametrize("kind", ["buffer", "file"])
async def test_a_failed_download_never_gives_its_last_byte(kind: str, tmp_path: Path) -> None:
    data = payload(2000)
    growing: GrowingBuffer | GrowingFile
    if kind == "buffer":
        growing = GrowingBuffer(len(data))
        growing.view[:] = data
    else:
        path = tmp_path / "spool"
        path.write_bytes(data)
        growing = GrowingFile(path, len(data))
    growing.landed((0, len(data) - 1))  # every range wrote its bytes; the checksum is wrong
    got: list[bytes] = []

    def read() -> None:
        got.extend(growing.pieces())

    reader = asyncio.create_task(asyncio.to_thread(read))
    await asyncio.sleep(0)
    growing.finished(done_future(ValueError("checksum mismatch")))
    with pytest.raises(ValueError, match="checksum"):
        await reader
    assert len(b"".join(got)) < len(data)


async def test_fill_object_lands_ranges_in_order_within_the_window(
    client: S3Client, proxy: FaultProxy, s3: Any, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(transfer, "WINDOW", 1)
    data = payload(6 * PART + 17)
    s3.put_object(Bucket=bucket, Key="w.bin", Body=data)
    info = await listed(client, bucket, "w.bin")
    events: list[str] = []
    proxy.add_rule(
        "call", method="GET", path="/w.bin$", has_range=True, fn=lambda _: events.append("asked")
    )
    growing = GrowingBuffer(info.size)

    def landed(span: tuple[int, int]) -> None:
        events.append("landed")
        growing.landed(span)

    await fill_object(client.calls, info, growing.view, on_range=landed)
    assert events == ["asked", "landed"] * (len(events) // 2)  # one in flight, in order
    assert len(events) // 2 == len(transfer.split(len(data), PART, 4))
    assert bytes(growing.view) == data


async def test_spool_object_with_a_reader_keeps_the_window_too(
    client: S3Client,
    proxy: FaultProxy,
    s3: Any,
    bucket: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(transfer, "WINDOW", 2)
    data = payload(8 * PART)
    s3.put_object(Bucket=bucket, Key="s.bin", Body=data)
    info = await listed(client, bucket, "s.bin")
    in_flight = peak = 0

    def asked(_: object) -> None:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)

    def landed(_: tuple[int, int]) -> None:
        nonlocal in_flight
        in_flight -= 1

    proxy.add_rule("call", method="GET", path="/s.bin$", has_range=True, fn=asked)
    await spool_object(client.calls, info, tmp_path / "spool", on_range=landed)
    assert peak == 2
    assert (tmp_path / "spool").read_bytes() == data


async def test_an_overwrite_midway_fails_the_reader_before_its_last_block(
    client: S3Client, proxy: FaultProxy, s3: Any, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(formats, "BLOCK_BYTES", 512)
    monkeypatch.setattr(formats, "INFER_ROWS", 5)
    text = b"n,s\n" + b"".join(b"%d,row %d\n" % (i, i) for i in range(700))
    s3.put_object(Bucket=bucket, Key="moving.csv", Body=text)
    info = await listed(client, bucket, "moving.csv")
    seen = 0

    def overwrite_before_fourth_range(_: object) -> None:
        nonlocal seen
        seen += 1
        if seen == 4:
            s3.put_object(Bucket=bucket, Key="moving.csv", Body=text + b"1,x\n")

    proxy.add_rule(
        "call", method="GET", path="/moving.csv$", has_range=True, fn=overwrite_before_fourth_range
    )
    monkeypatch.setattr(transfer, "WINDOW", 1)
    growing = GrowingBuffer(info.size)
    download = asyncio.create_task(
        fill_object(client.calls, info, growing.view, on_range=growing.landed)
    )
    download.add_done_callback(growing.finished)
    rows = 0

    def parse() -> None:
        nonlocal rows
        for frame in iter_pieces(growing.pieces(chunk=100), FileFormat("csv"), name="k"):
            rows += frame.height

    with pytest.raises(S3ObjectChangedError):
        await asyncio.to_thread(parse)
    with pytest.raises(S3ObjectChangedError):
        await download
    assert 0 < rows < 700  # parsed while downloading, but never the end of the file


async def test_csv_parsed_while_it_downloads_is_the_csv(
    client: S3Client, s3: Any, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(formats, "BLOCK_BYTES", 300)
    monkeypatch.setattr(formats, "INFER_ROWS", 5)
    rows = [
        b'%d,"line\nbreak, ""quoted"" %d",%s\n' % (i, i, b"1.5" if i == 90 else b"2")
        for i in range(120)
    ]
    text = b"n,s,f\n" + b"".join(rows)
    s3.put_object(Bucket=bucket, Key="q.csv", Body=text)
    info = await listed(client, bucket, "q.csv")
    growing = GrowingBuffer(info.size)
    download = asyncio.create_task(
        fill_object(client.calls, info, growing.view, on_range=growing.landed)
    )
    download.add_done_callback(growing.finished)
    frames = await asyncio.to_thread(
        list, iter_pieces(growing.pieces(chunk=100), FileFormat("csv"), name="k")
    )
    await download
    assert len(frames) > 3
    got = pl.concat(frames, how="diagonal_relaxed")
    assert_frame_equal(got, read_bytes(text, FileFormat("csv"), name="k"))
    assert got["f"].dtype == pl.Float64 and got.height == 120
