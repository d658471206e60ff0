"""Concurrent ranged GETs pinned to one object version: into memory, onto disk, or in order.

The first request already carries data: a plain GET for a listed object no larger than a part
(botocore then validates the full-object checksum itself), otherwise a GET of the first part,
whose Content-Range tells the size. A larger object is then HEADed for its full-object checksum,
and every further range is pinned to what the first GET saw (`IfMatch=etag`, plus `VersionId`
on versioned buckets), so an overwrite surfaces as `S3ObjectChangedError` and never as a mix of
two versions. Each range is retried on its own; bytes stream through in chunks, so memory stays
bounded by the shared request budget.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiofiles
import aiofiles.os
from botocore.exceptions import ClientError

from .checksum import Checksum, from_response
from .errors import S3BaseError, S3IntegrityError, make_error
from .s3 import ObjectInfo, Progress, info_from_response
from .uri import S3Uri

if TYPE_CHECKING:
    from .s3 import S3Client

__all__ = ["download_object", "iter_object", "read_object"]

CHUNK = 1 << 20  # bytes taken from a response body at a time
Writer = Callable[[int, bytes], Awaitable[None]]  # (offset in object, data)
Span = tuple[int, int]  # first and last byte, inclusive
_pwrite = aiofiles.os.wrap(os.pwrite)


def _noop(_: int) -> None:
    pass


@dataclass(slots=True)
class _Start:
    """What the first request returned, and what is left to fetch."""

    uri: S3Uri
    info: ObjectInfo
    first: bytes
    rest: list[Span]
    pin: dict[str, Any]
    checksum: Checksum | None = None


def _integrity(uri: S3Uri, code: str, detail: str) -> S3BaseError:
    return make_error(S3IntegrityError, uri=str(uri), code=code, status=None, detail=detail)


def _mismatch(uri: S3Uri, checksum: Checksum) -> S3BaseError:
    return _integrity(uri, "ChecksumMismatch", f"the {checksum.algorithm} of the bytes read "
                      "differs from the object's checksum; run again, and report it if it persists")


async def _start(s3: S3Client, target: S3Uri | ObjectInfo, progress: Progress) -> _Start:
    """Issue the first GET; for a multi-part object also fetch its full-object checksum."""
    uri = target.uri if isinstance(target, ObjectInfo) else target
    base: dict[str, Any] = {"Bucket": uri.bucket, "Key": uri.key}
    if uri.version_id:
        base["VersionId"] = uri.version_id
    whole = isinstance(target, ObjectInfo) and target.size <= s3.part_size
    extra = {} if whole else {"Range": f"bytes=0-{s3.part_size - 1}"}

    async def op(client: Any) -> tuple[dict[str, Any], bytes]:
        try:
            response = await client.get_object(**base, **extra)
        except ClientError as exc:
            if extra and exc.response.get("Error", {}).get("Code") == "InvalidRange":
                response = await client.get_object(**base)  # an empty object has no byte 0
            else:
                raise
        async with response["Body"] as body:
            return response, await body.read()

    async with s3.budget:
        response, first = await s3._call("GetObject", uri, op)
    info = info_from_response(uri, response)
    progress(len(first))
    if len(first) != min(info.size, s3.part_size):
        raise _integrity(uri, "IncompleteBody", f"received {len(first)} bytes, expected "
                         f"{min(info.size, s3.part_size)}")
    rest = [(start, min(start + s3.part_size, info.size) - 1)
            for start in range(len(first), info.size, s3.part_size)]
    pin = dict(base)
    if info.version_id and "VersionId" not in pin:
        pin["VersionId"] = info.version_id
    if info.etag:
        pin["IfMatch"] = info.etag
    started = _Start(uri, info, first, rest, pin)
    if rest:  # ranged GETs carry no full-object checksum: ask for it, pinned like the ranges
        _, head = await s3.head_raw(uri, if_match=info.etag or None)
        started.checksum = from_response(head)
    return started


async def _get_range(
    s3: S3Client, start: _Start, span: Span, write: Writer, progress: Progress
) -> int:
    """Fetch one range through `write`, retried alone; returns its CRC (0 when not needed)."""
    first, last = span
    want = last - first + 1
    checksum = start.checksum if start.checksum and start.checksum.is_crc else None

    async def op(client: Any) -> int:
        response = await client.get_object(**start.pin, Range=f"bytes={first}-{last}")
        received = crc = 0
        try:
            async with response["Body"] as body:
                while chunk := await body.read(CHUNK):
                    await write(first + received, chunk)
                    if checksum is not None:
                        crc = checksum.crc(chunk, crc)
                    received += len(chunk)
                    progress(len(chunk))
            if received != want:
                raise _integrity(start.uri, "IncompleteBody",
                                 f"range {first}-{last}: got {received} of {want} bytes")
        except BaseException:
            progress(-received)  # the retry will report these bytes again
            raise
        return crc

    async with s3.budget:
        return await s3._call("GetObject", start.uri, op)


async def _fetch_rest(s3: S3Client, start: _Start, write: Writer, progress: Progress) -> None:
    """Fetch every remaining range concurrently, then check the full-object checksum."""
    tasks = [asyncio.create_task(_get_range(s3, start, span, write, progress))
             for span in start.rest]
    try:
        crcs = await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
    checksum = start.checksum
    if checksum is not None and checksum.is_crc:
        parts = [(checksum.crc(start.first), len(start.first))]
        parts += [(crc, b - a + 1) for crc, (a, b) in zip(crcs, start.rest, strict=True)]
        if not checksum.matches_parts(parts):
            raise _mismatch(start.uri, checksum)


async def _check_stream(start: _Start, chunks: Callable[[], Iterable[bytes | memoryview]]) -> None:
    """Check a hash (SHA) checksum, which needs every byte in order."""
    checksum = start.checksum
    if (checksum is not None and not checksum.is_crc
            and not await asyncio.to_thread(checksum.matches_stream, chunks())):
        raise _mismatch(start.uri, checksum)


async def read_object(
    s3: S3Client, target: S3Uri | ObjectInfo, *, progress: Progress | None = None
) -> tuple[ObjectInfo, bytes | bytearray]:
    """Read a whole object into memory; returns what was read and its bytes."""
    report = progress or _noop
    start = await _start(s3, target, report)
    if not start.rest:
        return start.info, start.first
    buffer = bytearray(start.info.size)
    view = memoryview(buffer)
    view[: len(start.first)] = start.first

    async def write(offset: int, data: bytes) -> None:
        view[offset:offset + len(data)] = data

    await _fetch_rest(s3, start, write, report)
    await _check_stream(start, lambda: [view])
    return start.info, buffer


def _file_chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as handle:
        yield from iter(lambda: handle.read(CHUNK), b"")


async def download_object(
    s3: S3Client, target: S3Uri | ObjectInfo, path: Path, *, progress: Progress | None = None
) -> ObjectInfo:
    """Download an object to `path` via a temporary file; a failure leaves no file behind."""
    report = progress or _noop
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.part")
    try:
        start = await _start(s3, target, report)
        async with aiofiles.open(tmp, "wb") as handle:
            await handle.write(start.first)
            if start.rest:
                await handle.truncate(start.info.size)
                await handle.flush()
                fd = handle.fileno()

                async def write(offset: int, data: bytes) -> None:
                    await _pwrite(fd, data, offset)

                await _fetch_rest(s3, start, write, report)
        await _check_stream(start, lambda: _file_chunks(tmp))
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return start.info


async def iter_object(
    s3: S3Client, target: S3Uri | ObjectInfo, *, progress: Progress | None = None
) -> AsyncIterator[bytes]:
    """Yield an object's bytes in order, one part at a time, reading ahead within the budget.

    Requests share the client's budget; read-ahead is at most `concurrency` parts per iterator.
    """
    report = progress or _noop
    start = await _start(s3, target, report)
    digest = start.checksum.digest() if start.checksum else None
    if digest is not None:
        digest.update(start.first)
    yield start.first
    spans = deque(start.rest)
    window: deque[asyncio.Task[bytearray]] = deque()

    async def fetch(span: Span) -> bytearray:
        part = bytearray(span[1] - span[0] + 1)

        async def write(offset: int, data: bytes) -> None:
            part[offset - span[0]:offset - span[0] + len(data)] = data

        await _get_range(s3, start, span, write, report)
        return part

    try:
        while spans or window:
            while spans and len(window) < s3.concurrency:
                window.append(asyncio.create_task(fetch(spans.popleft())))
            part = await window.popleft()
            if digest is not None:
                digest.update(part)
            yield bytes(part)
    finally:
        for task in window:
            task.cancel()
        await asyncio.gather(*window, return_exceptions=True)
    if digest is not None and start.checksum is not None and not digest.matches():
        raise _mismatch(start.uri, start.checksum)
