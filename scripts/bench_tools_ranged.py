"""Benchmark workloads that fetch with their own concurrency: obstore and the raw reader.

Both keep 16 requests in flight: one object as 8 MiB ranged GETs into one preallocated
buffer, many objects as whole-object GETs after a listing.
"""

from __future__ import annotations

import asyncio
from typing import Any

from bench_tools import IN_FLIGHT, KEY, REGION, SECRET, Ctx, concat, finish, parse

PART = 8 << 20  # raw reader and obstore ranges: 8 MiB


def _obstore(ctx: Ctx) -> Any:
    from obstore.store import S3Store

    return S3Store(
        ctx.bucket,
        endpoint=ctx.endpoint,
        allow_http=True,
        access_key_id=KEY,
        secret_access_key=SECRET,
        region=REGION,
        virtual_hosted_style_request=False,
    )


def obstore_polars(ctx: Ctx) -> Any:
    """Async obstore, 16 requests in flight: one object as 8 MiB ranged `get_async` parts
    streamed into one buffer, many objects as whole `get_async(...).bytes_async()` calls.

    Not `get_ranges`: it coalesces adjacent ranges, so 8 MiB parts become one single-stream
    GET. Not `get_range_async`/`bytes_async` for big parts: here they cost ~1.5 s of CPU per
    64 MiB, while streaming the same bytes costs almost none.
    """
    import obstore as obs

    store = _obstore(ctx)
    gate = asyncio.Semaphore(IN_FLIGHT)

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
        if ctx.scenario == "s3":
            paths = [meta["path"] for batch in obs.list(store, prefix=ctx.path) for meta in batch]
            return await asyncio.gather(*(whole(p) for p in paths))
        size = (await obs.head_async(store, ctx.path))["size"]
        buffer = bytearray(size)
        view = memoryview(buffer)
        await asyncio.gather(*(part(view, s, min(s + PART, size)) for s in range(0, size, PART)))
        return buffer

    data = asyncio.run(fetch())
    if ctx.scenario == "s3":
        return finish(ctx, concat([parse(ctx, bytes(d)) for d in data]))
    return finish(ctx, parse(ctx, bytes(data)))  # polars takes bytes, not a bytearray


def raw_reader(ctx: Ctx) -> int:
    """The download-phase limit: unsigned concurrent GETs with aiohttp, no parsing.

    One object: 8 MiB ranges, 16 in flight, into one preallocated buffer. Many: list, then
    whole-object GETs, 16 in flight.
    """
    import aiohttp

    async def go() -> int:
        base = f"{ctx.endpoint}/{ctx.bucket}"
        connector = aiohttp.TCPConnector(limit=IN_FLIGHT)
        async with aiohttp.ClientSession(connector=connector) as http:
            gate = asyncio.Semaphore(IN_FLIGHT)
            if ctx.scenario == "s3":
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

            async def part(start: int) -> int:
                end = min(start + PART, size) - 1
                async with (
                    gate,
                    http.get(f"{base}/{ctx.path}", headers={"Range": f"bytes={start}-{end}"}) as r,
                ):
                    r.raise_for_status()
                    at = start
                    async for chunk in r.content.iter_chunked(1 << 20):
                        view[at : at + len(chunk)] = chunk
                        at += len(chunk)
                    return at - start

            return sum(await asyncio.gather(*(part(s) for s in range(0, size, PART))))

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
