"""Concurrent ranged GETs pinned to one object version: into memory, onto disk, or in order.

Every request goes through `S3Calls.call` (retries, logging, translation) under the shared budget.
botocore validates no checksum (the client sets `response_checksum_validation="when_required"`):
this module checks the size of every response and the full-object checksum wherever S3 sends one.
An object no larger than one part is one GET asking for its checksum (`ChecksumMode=ENABLED`).
A larger one is described by the listing or HEAD that found it (else a HEAD now, which brings its
checksum), then its ranges are fetched concurrently (in order, `WINDOW` at a time, where a reader
follows the landed prefix), each pinned to that description (`IfMatch`,
plus `VersionId` on versioned buckets): an overwrite is `S3ObjectChangedError`, never a mix of two
versions. Each range is retried alone; CRCs are computed per range and combined (a SHA needs one
in-order pass at the end); composite checksums of multipart uploads are not checked.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiofiles

from dreambolt.errors import S3BaseError, S3IntegrityError, make_error
from dreambolt.s3.calls import S3Calls
from dreambolt.s3.checksum import Checksum, from_response
from dreambolt.s3.metadata import head_object
from dreambolt.s3.objects import ObjectInfo, Progress, info_from_response
from dreambolt.s3.presigned import get_small_object
from dreambolt.s3.ranges import BufferSink, FileSink, PartSink, Pieces, Sink, Span, split
from dreambolt.s3.uri import S3Uri
from dreambolt.spool import disk_full_error, is_disk_full

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client as RegionClient
    from types_aiobotocore_s3.type_defs import GetObjectOutputTypeDef, GetObjectRequestTypeDef

__all__ = [
    "WINDOW",
    "Span",
    "download_object",
    "fill_object",
    "iter_object",
    "read_object",
    "split",
    "spool_object",
]

CHUNK = 256 << 10  # bytes taken from a response body at a time
WINDOW = 16  # ranges of one object in flight when a reader follows its prefix


def _noop(_: int) -> None:
    pass


@dataclass(slots=True)
class _Plan:
    """A multi-part object: what it is, how ranges are pinned to it, and its checksum."""

    uri: S3Uri
    info: ObjectInfo
    spans: list[Span]
    pin: GetObjectRequestTypeDef
    checksum: Checksum | None


def _integrity(uri: S3Uri, code: str, detail: str) -> S3BaseError:
    return make_error(S3IntegrityError, uri=str(uri), code=code, status=None, detail=detail)


def _mismatch(uri: S3Uri, checksum: Checksum) -> S3BaseError:
    return _integrity(
        uri,
        "ChecksumMismatch",
        f"the {checksum.algorithm} of the bytes read "
        "differs from the object's checksum; run again, and report it if it persists",
    )


def _base(uri: S3Uri) -> GetObjectRequestTypeDef:
    params: GetObjectRequestTypeDef = {"Bucket": uri.bucket, "Key": uri.key}
    if uri.version_id:
        params["VersionId"] = uri.version_id
    return params


async def _get_whole(
    calls: S3Calls, uri: S3Uri, pinned_to: ObjectInfo | None, progress: Progress
) -> tuple[ObjectInfo, bytes]:
    """One plain GET of a small object (pinned to `pinned_to` when given)."""
    params = _base(uri)
    params["ChecksumMode"] = "ENABLED"  # S3 sends the full-object checksum with the bytes
    if pinned_to is not None and pinned_to.etag:
        params["IfMatch"] = pinned_to.etag
    kwargs: dict[str, Any] = dict(params)  # what get_small_object takes

    async def op(client: RegionClient) -> tuple[dict[str, Any], bytes]:
        response, data = await get_small_object(client, kwargs, calls.gets)
        expected = info_from_response(uri, response).size
        if len(data) != expected:  # inside the retried call: a short body is fetched again
            raise _integrity(uri, "IncompleteBody", f"received {len(data)} of {expected} bytes")
        return response, data

    async with calls.budget:
        response, data = await calls.call("GetObject", uri, op)
    info = info_from_response(uri, response)
    checksum = Checksum.of(info.checksum)
    if checksum is not None and not checksum.matches_stream([data]):
        raise _mismatch(uri, checksum)
    progress(len(data))
    return info, data


async def _plan(
    calls: S3Calls, target: S3Uri | ObjectInfo, progress: Progress
) -> tuple[_Plan | None, ObjectInfo, bytes]:
    """Describe the object; a small one is fetched right away (returned with no plan)."""
    if isinstance(target, ObjectInfo):
        uri, info = target.uri, target
        if info.size <= calls.part_size:
            info, data = await _get_whole(calls, uri, None, progress)
            return None, info, data
        checksum = Checksum.of(info.checksum)
        if info.checksum is None:  # a listing does not tell checksums: HEAD, pinned
            _, head = await head_object(calls, uri, if_match=info.etag or None)
            checksum = from_response(head)
    else:
        uri = target
        info, head = await head_object(calls, uri)
        checksum = from_response(head)
        if info.size <= calls.part_size:
            info, data = await _get_whole(calls, uri, info, progress)
            return None, info, data
    pin = _base(uri)
    if info.version_id and "VersionId" not in pin:
        pin["VersionId"] = info.version_id
    if info.etag:
        pin["IfMatch"] = info.etag
    spans = split(info.size, calls.part_size, calls.concurrency)
    return _Plan(uri, info, spans, pin, checksum), info, b""


async def _get_range(
    calls: S3Calls,
    plan: _Plan,
    span: Span,
    sink: Sink,
    progress: Progress,
    done: Callable[[Span], None] | None = None,
) -> int:
    """Fetch one range into `sink`, retried alone; returns its CRC (0 when not needed)."""
    first, last = span
    want = last - first + 1
    checksum = plan.checksum if plan.checksum and plan.checksum.is_crc else None

    params: GetObjectRequestTypeDef = {**plan.pin, "Range": f"bytes={first}-{last}"}

    async def op(client: RegionClient) -> tuple[GetObjectOutputTypeDef, int]:
        sink.begin(span)
        response = await client.get_object(**params)
        received = crc = 0
        try:
            async with response["Body"] as body:
                while chunk := await body.read(CHUNK):
                    await sink.write(span, first + received, chunk)
                    if checksum is not None:
                        crc = checksum.crc(chunk, crc)
                    received += len(chunk)
                    progress(len(chunk))
            if received != want:
                raise _integrity(
                    plan.uri,
                    "IncompleteBody",
                    f"range {first}-{last}: got {received} of {want} bytes",
                )
        except BaseException:
            progress(-received)  # the retry will report these bytes again
            raise
        return response, crc

    async with calls.budget:
        _, crc = await calls.call("GetObject", plan.uri, op, detail=params["Range"])
    if done is not None:
        done(span)
    return crc


async def _fetch_all(
    calls: S3Calls,
    plan: _Plan,
    sink: Sink,
    progress: Progress,
    done: Callable[[Span], None] | None = None,
    window: int | None = None,
) -> None:
    """Fetch every range concurrently, then check combined CRCs against the object's.

    With a `window`, ranges start in order, at most that many in flight for this object, so
    a reader following the completed prefix (`done`) gets it steadily rather than all at the
    end (ranges started together share the bandwidth and land together)."""
    gate = asyncio.Semaphore(window or len(plan.spans) or 1)  # FIFO: ranges start in order

    async def one(span: Span) -> int:
        async with gate:
            return await _get_range(calls, plan, span, sink, progress, done)

    tasks = [asyncio.create_task(one(span)) for span in plan.spans]
    try:
        crcs = await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
    checksum = plan.checksum
    if checksum is not None and checksum.is_crc:
        parts = [(crc, b - a + 1) for crc, (a, b) in zip(crcs, plan.spans, strict=True)]
        if not checksum.matches_parts(parts):
            raise _mismatch(plan.uri, checksum)


async def _check_stream(plan: _Plan, chunks: Iterable[bytes | memoryview]) -> None:
    """Check a hash (SHA) checksum, which needs every byte in order."""
    checksum = plan.checksum
    if (
        checksum is not None
        and not checksum.is_crc
        and not await asyncio.to_thread(checksum.matches_stream, chunks)
    ):
        raise _mismatch(plan.uri, checksum)


async def read_object(
    calls: S3Calls, target: S3Uri | ObjectInfo, *, progress: Progress | None = None
) -> tuple[ObjectInfo, bytes]:
    """Read a whole object into memory; returns what was read and its bytes."""
    report = progress or _noop
    plan, info, data = await _plan(calls, target, report)
    if plan is None:
        return info, data
    pieces = Pieces()
    await _fetch_all(calls, plan, pieces, report)
    chunks = pieces.chunks()
    # The finished range tasks can stay alive in reference cycles until the next collection,
    # and with them `pieces`: hold the chunks only here, and drop them once joined, so a big
    # object is not in memory twice while the caller parses it.
    pieces.ranges.clear()
    await _check_stream(plan, chunks)
    data = await asyncio.to_thread(b"".join, chunks)
    chunks.clear()
    return info, data


async def fill_object(
    calls: S3Calls,
    target: ObjectInfo,
    view: memoryview,
    *,
    progress: Progress | None = None,
    on_range: Callable[[Span], None] | None = None,
) -> ObjectInfo:
    """Download an object into `view` (preallocated at `target.size`), calling `on_range`
    as each range lands, ranges in order (`WINDOW` in flight), so a reader can follow the
    completed prefix; returns only once every check has passed."""
    report = progress or _noop
    plan, info, data = await _plan(calls, target, report)
    if len(view) != info.size:
        detail = f"{info.size} bytes, {len(view)} expected"
        raise _integrity(target.uri, "SizeChanged", detail)
    if plan is None:
        view[:] = data
        if on_range is not None and data:
            on_range((0, len(data) - 1))
        return info
    window = WINDOW if on_range is not None else None
    await _fetch_all(calls, plan, BufferSink(view), report, on_range, window)
    await _check_stream(plan, [view])
    return info


def _file_chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as handle:
        yield from iter(lambda: handle.read(CHUNK), b"")


async def download_object(
    calls: S3Calls, target: S3Uri | ObjectInfo, path: Path, *, progress: Progress | None = None
) -> ObjectInfo:
    """Download an object to `path` via a temporary file; a failure leaves no file behind."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.part")
    hint = "free space there, or download to a folder on a disk with room for it"
    try:
        info = await spool_object(calls, target, tmp, progress=progress, full_hint=hint)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return info


async def spool_object(
    calls: S3Calls,
    target: S3Uri | ObjectInfo,
    path: Path,
    *,
    progress: Progress | None = None,
    on_range: Callable[[Span], None] | None = None,
    full_hint: str | None = None,
) -> ObjectInfo:
    """Download into `path` in place, calling `on_range` as each range lands, so a reader can
    follow the completed prefix; returns only once every check has passed. The caller owns
    (and removes) the file, whatever happens.

    A disk that fills up (ENOSPC, EDQUOT, EFBIG) raises OSError(ENOSPC) naming the folder, with
    `full_hint` (default: free space or set DREAMBOLT_TMPDIR) as what to do; it is not retried.
    """
    report = progress or _noop
    plan, info, data = await _plan(calls, target, report)
    try:
        async with aiofiles.open(path, "wb") as handle:
            if plan is None:
                await handle.write(data)
                await handle.flush()  # a full disk shows here, not when closing
            else:
                await handle.truncate(info.size)
                await handle.flush()
                window = WINDOW if on_range is not None else None
                sink = FileSink(handle.fileno())
                await _fetch_all(calls, plan, sink, report, on_range, window)
    except OSError as exc:
        if not is_disk_full(exc):
            raise
        what = f"{info.uri} ({info.size:,} bytes)"
        raise disk_full_error(exc, path, what, full_hint) from exc
    if plan is not None:
        await _check_stream(plan, _file_chunks(path))
    return info


async def iter_object(
    calls: S3Calls, target: S3Uri | ObjectInfo, *, progress: Progress | None = None
) -> AsyncIterator[bytes]:
    """Yield an object's bytes in order, one part at a time, reading ahead within the budget.

    Requests share the client's budget; read-ahead is at most `concurrency` parts per iterator.
    """
    report = progress or _noop
    plan, _, data = await _plan(calls, target, report)
    if plan is None:
        yield data
        return
    digest = plan.checksum.digest() if plan.checksum else None
    spans = deque(plan.spans)
    window: deque[asyncio.Task[bytes]] = deque()

    async def fetch(span: Span) -> bytes:
        sink = PartSink()
        await _get_range(calls, plan, span, sink, report)
        return b"".join(sink.chunks)

    try:
        while spans or window:
            while spans and len(window) < calls.concurrency:
                window.append(asyncio.create_task(fetch(spans.popleft())))
            part = await window.popleft()
            if digest is not None:
                digest.update(part)
            yield part
    finally:
        for task in window:
            task.cancel()
        await asyncio.gather(*window, return_exceptions=True)
    if digest is not None and plan.checksum is not None and not digest.matches():
        raise _mismatch(plan.uri, plan.checksum)
