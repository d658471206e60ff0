"""Benchmark workloads that fetch with their own concurrency: obstore, s3fs and the raw reader.

Each keeps `ctx.in_flight` requests in flight (DreamBolt's concurrency): one object as 8 MiB
ranged GETs into one buffer, many objects as whole-object GETs after a listing.
"""

from __future__ import annotations

import asyncio
from typing import Any

from bench_tools import KEY, PART, REGION, SECRET, Ctx, finish, parse, parse_all


def _spans(size: int) -> list[tuple[int, int]]:
    return [(s, min(s + PART, size)) for s in range(0, size, PART)]


def obstore_polars(ctx: Ctx) -> Any:
    """Async obstore, N requests in flight: one object as 8 MiB ranged `get_async` parts
    streamed into one buffer, many objects as whole `get_async(...).bytes_async()` calls.

    Not `get_ranges`: it coalesces adjacent ranges, so 8 MiB parts become one single-stream
    GET. Not `get_range_async`/`bytes_async` for big parts: they cost far more CPU than
    streaming the same bytes.
    """
    import obstore as obs
    from obstore.store import S3Store

    store = S3Store(
        ctx.bucket,
        endpoint=ctx.endpoint,
        allow_http=True,
        access_key_id=KEY,
        secret_access_key=SECRET,
        region=REGION,
        virtual_hosted_style_request=False,
    )
    gate = asyncio.Semaphore(ctx.in_flight)

    async def part(view: memoryview, start: int, end: int) -> None:
        async with gate:
            result = await obs.get_async(store, ctx.path, options={"range": (start, end)})
            async for chunk in result.stream(min_chunk_size=1 << 20):
                view[start : start + len(chunk)] = chunk
                start += len(chunk)

    async def whole(path: str) -> Any:
        async with gate:
            result = await obs.get_async(store, path)
            return await result.bytes_async()

    async def fetch() -> Any:
        if ctx.many:
            paths = [meta["path"] for batch in obs.list(store, prefix=ctx.path) for meta in batch]
            return await asyncio.gather(*(whole(p) for p in paths))
        size = (await obs.head_async(store, ctx.path))["size"]
        buffer = bytearray(size)
        view = memoryview(buffer)
        await asyncio.gather(*(part(view, s, e) for s, e in _spans(size)))
        return buffer

    data = asyncio.run(fetch())
    if ctx.many:
        return finish(ctx, parse_all(ctx, [bytes(d) for d in data]))
    return finish(ctx, parse(ctx, bytes(data)))  # polars takes bytes, not a bytearray


def s3fs_polars(ctx: Ctx) -> Any:
    """s3fs at its documented knobs: `cat_ranges` of 8 MiB spans for one object and `cat` of
    every path for many, both with `batch_size=N` (requests gathered at once), over a
    connection pool of N (`config_kwargs={"max_pool_connections": N}`)."""
    import s3fs

    fs = s3fs.S3FileSystem(
        endpoint_url=ctx.endpoint,
        key=KEY,
        secret=SECRET,
        config_kwargs={"max_pool_connections": ctx.in_flight},
    )
    if ctx.many:
        blobs = fs.cat(f"{ctx.bucket}/{ctx.uri_path}", batch_size=ctx.in_flight)
        return finish(ctx, parse_all(ctx, [blobs[k] for k in sorted(blobs)]))
    path = f"{ctx.bucket}/{ctx.path}"
    spans = _spans(int(fs.size(path)))
    parts = fs.cat_ranges(
        [path] * len(spans),
        [s for s, _ in spans],
        [e for _, e in spans],
        batch_size=ctx.in_flight,
        on_error="raise",
    )
    return finish(ctx, parse(ctx, b"".join(parts)))


def raw_reader(ctx: Ctx) -> int:
    """The download-phase limit: unsigned concurrent GETs with aiohttp, no parsing.

    One object: 8 MiB ranges, N in flight, into one preallocated buffer. Many: list, then
    whole-object GETs, N in flight.
    """
    import aiohttp

    async def go() -> int:
        base = f"{ctx.endpoint}/{ctx.bucket}"
        connector = aiohttp.TCPConnector(limit=ctx.in_flight)
        async with aiohttp.ClientSession(connector=connector) as http:
            gate = asyncio.Semaphore(ctx.in_flight)
            if ctx.many:
                keys = await _list_keys(http, base, ctx.path)

                async def whole(key: str) -> int:
                    async with gate, http.get(f"{base}/{key}") as r:
                        r.raise_for_status()
                        return len(await r.read())

                return sum(await asyncio.gather(*(whole(k) for k in keys)))
            async with http.head(f"{base}/{ctx.path}") as r:
                r.raise_for_status()
                size = int(r.headers["Content-Length"])
            view = memoryview(bytearray(size))

            async def part(start: int, end: int) -> int:
                headers = {"Range": f"bytes={start}-{end - 1}"}
                async with gate, http.get(f"{base}/{ctx.path}", headers=headers) as r:
                    r.raise_for_status()
                    at = start
                    async for chunk in r.content.iter_chunked(1 << 20):
                        view[at : at + len(chunk)] = chunk
                        at += len(chunk)
                    return at - start

            return sum(await asyncio.gather(*(part(s, e) for s, e in _spans(size))))

    return asyncio.run(go())


async def _list_keys(http: Any, base: str, prefix: str) -> list[str]:
    from xml.etree import ElementTree

    keys: list[str] = []
    params = {"list-type": "2", "prefix": prefix}
    while True:
        async with http.get(base, params=params) as r:
            r.raise_for_status()
            tree = ElementTree.fromstring(await r.read())
        ns = {"s3": tree.tag.partition("}")[0].lstrip("{")}
        keys += [k.text or "" for k in tree.findall("s3:Contents/s3:Key", ns)]
        token = tree.findtext("s3:NextContinuationToken", None, ns)
        if tree.findtext("s3:IsTruncated", "false", ns) != "true" or not token:
            return keys
        params["continuation-token"] = token
