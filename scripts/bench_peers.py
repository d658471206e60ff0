"""Benchmark workloads: the same work done by DreamBolt and by each tool a user might pick instead.

Run by `scripts/bench.py`, one measurement per fresh process:

    python scripts/bench_peers.py '{"tool": "s3fs", "scenario": "s2", ...}'

The tool's libraries are imported before the clock starts; the clock covers creating the
client, every request, parsing and writing the DuckDB table (closed, so committed). The result
is checked afterwards (rows in the table or frame, bytes read) so no tool wins by doing less.
The last line of stdout is `BENCH-RESULT {json}`.

Scenarios: s1 one Parquet object → polars DataFrame; s2 one CSV object → DuckDB table;
s3 many small CSV objects under a prefix → one DuckDB table; s4 one big CSV → DuckDB table.
"""

from __future__ import annotations

import asyncio
import importlib
import io
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["KEY", "REFERENCE_TOOLS", "SECRET", "TOOLS", "main"]

KEY, SECRET, REGION = "bench", "bench-secret", "us-east-1"
PART = 8 << 20  # raw reader and obstore ranges: 8 MiB
IN_FLIGHT = 16  # raw reader, obstore and boto3-threads requests in flight
MARKER = "BENCH-RESULT "


@dataclass(frozen=True)
class Ctx:
    """What one measurement works on."""

    scenario: str
    endpoint: str  # http://127.0.0.1:PORT
    bucket: str
    path: str  # key, or prefix ending in "/"
    db: str  # DuckDB file to create (s2–s4)

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.path}"


Work = Callable[[Ctx], Any]  # returns a DataFrame (s1), None (table written) or a byte count


# --- shared steps ------------------------------------------------------------------------


def _to_duckdb(ctx: Ctx, frame: Any) -> None:
    """What a user does with a polars frame: CREATE TABLE t AS SELECT * FROM frame (Arrow)."""
    import duckdb

    con = duckdb.connect(ctx.db)
    try:
        con.register("frame", frame)
        con.execute("CREATE TABLE t AS SELECT * FROM frame")
    finally:
        con.close()


def _finish(ctx: Ctx, frame: Any) -> Any:
    if ctx.scenario == "s1":
        return frame
    _to_duckdb(ctx, frame)
    return None


def _parse(ctx: Ctx, data: Any) -> Any:
    import polars as pl

    return pl.read_parquet(data) if ctx.scenario == "s1" else pl.read_csv(data)


def _concat(frames: list[Any]) -> Any:
    import polars as pl

    return pl.concat(frames, how="vertical")


# --- DreamBolt ---------------------------------------------------------------------------


def dreambolt(ctx: Ctx) -> Any:
    """As shipped: default concurrency, part size, memory budget and spool threshold."""
    from dreambolt import Ingester, S3Options

    async def go() -> Any:
        async with Ingester(db=ctx.db, s3=S3Options(endpoint_url=ctx.endpoint)) as ing:
            if ctx.scenario == "s1":
                return await ing.load(ctx.uri)
            report = await ing.ingest([ctx.uri], table="t")
            bad = [f for f in report.files if f.status != "loaded"]
            if bad:
                raise RuntimeError(f"{len(bad)} files not loaded, e.g. {bad[0].to_dict()}")
            return None

    return asyncio.run(go())


def dreambolt_download(ctx: Ctx) -> int:
    """DreamBolt's download phase alone: `S3Client.read` of the whole object into memory."""
    from dreambolt import S3Client

    async def go() -> int:
        async with S3Client(endpoint_url=ctx.endpoint) as s3:
            return len(await s3.read(ctx.uri))

    return asyncio.run(go())


# --- peers -------------------------------------------------------------------------------


def s3fs_polars(ctx: Ctx) -> Any:
    """s3fs file objects handed to polars; many files: a loop over `fs.find`."""
    import s3fs  # type: ignore[import-untyped]

    fs = s3fs.S3FileSystem(endpoint_url=ctx.endpoint, key=KEY, secret=SECRET)
    if ctx.scenario == "s3":
        frames = []
        for path in fs.find(f"{ctx.bucket}/{ctx.path}"):
            with fs.open(path, "rb") as f:
                frames.append(_parse(ctx, f))
        return _finish(ctx, _concat(frames))
    with fs.open(f"{ctx.bucket}/{ctx.path}", "rb") as f:
        return _finish(ctx, _parse(ctx, f))


def _boto3_client(ctx: Ctx, threads: int = 0) -> Any:
    import boto3
    from botocore.config import Config

    config = Config(max_pool_connections=threads) if threads else None
    return boto3.client(
        "s3",
        endpoint_url=ctx.endpoint,
        aws_access_key_id=KEY,
        aws_secret_access_key=SECRET,
        region_name=REGION,
        config=config,
    )


def _boto3_keys(client: Any, ctx: Ctx) -> list[str]:
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=ctx.bucket, Prefix=ctx.path)
    return [item["Key"] for page in pages for item in page.get("Contents", [])]


def _boto3_frame(client: Any, ctx: Ctx, key: str) -> Any:
    buf = io.BytesIO()
    client.download_fileobj(ctx.bucket, key, buf)
    buf.seek(0)
    return _parse(ctx, buf)


def boto3_polars(ctx: Ctx) -> Any:
    """`download_fileobj` into BytesIO (s3transfer's threads for big objects); files in a loop."""
    client = _boto3_client(ctx)
    if ctx.scenario == "s3":
        frames = [_boto3_frame(client, ctx, key) for key in _boto3_keys(client, ctx)]
        return _finish(ctx, _concat(frames))
    return _finish(ctx, _boto3_frame(client, ctx, ctx.path))


def boto3_threads(ctx: Ctx) -> Any:
    """Many files: `download_fileobj` from a ThreadPoolExecutor of 16, one shared client."""
    from concurrent.futures import ThreadPoolExecutor

    client = _boto3_client(ctx, IN_FLIGHT)
    keys = _boto3_keys(client, ctx)
    with ThreadPoolExecutor(IN_FLIGHT) as pool:
        frames = list(pool.map(lambda key: _boto3_frame(client, ctx, key), keys))
    return _finish(ctx, _concat(frames))


def _polars_options(ctx: Ctx) -> dict[str, str]:
    return {
        "aws_endpoint_url": ctx.endpoint,
        "aws_access_key_id": KEY,
        "aws_secret_access_key": SECRET,
        "aws_region": REGION,
        "aws_allow_http": "true",
    }


def polars_native(ctx: Ctx) -> Any:
    """polars' own object-store reader: `read_parquet("s3://…")`, `scan_csv("s3://…").collect()`."""
    import polars as pl

    options = _polars_options(ctx)
    if ctx.scenario == "s1":
        return pl.read_parquet(ctx.uri, storage_options=options)
    source = f"{ctx.uri}*.csv" if ctx.scenario == "s3" else ctx.uri
    return _finish(ctx, pl.scan_csv(source, storage_options=options).collect())


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
        return _finish(ctx, _concat([_parse(ctx, bytes(d)) for d in data]))
    return _finish(ctx, _parse(ctx, bytes(data)))  # polars takes bytes, not a bytearray


def duckdb_httpfs(ctx: Ctx) -> Any:
    """DuckDB reading s3:// itself through its httpfs extension."""
    import duckdb

    con = duckdb.connect(":memory:" if ctx.scenario == "s1" else ctx.db)
    try:
        con.execute("LOAD httpfs")
        host = ctx.endpoint.removeprefix("http://")
        con.execute(
            f"SET s3_endpoint='{host}'; SET s3_use_ssl=false; SET s3_url_style='path'; "
            f"SET s3_region='{REGION}'; SET s3_access_key_id='{KEY}'; "
            f"SET s3_secret_access_key='{SECRET}'"
        )
        if ctx.scenario == "s1":
            return con.sql(f"SELECT * FROM read_parquet('{ctx.uri}')").pl()
        source = f"{ctx.uri}*.csv" if ctx.scenario == "s3" else ctx.uri
        con.execute(f"CREATE TABLE t AS SELECT * FROM read_csv('{source}')")
        return None
    finally:
        con.close()


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


# --- the registry and the runner ------------------------------------------------------------


@dataclass(frozen=True)
class Tool:
    """A contender: its label, the modules it imports before the clock, its work per scenario."""

    label: str
    imports: tuple[str, ...]
    work: Work
    scenarios: tuple[str, ...] = ("s1", "s2", "s3", "s4")


_DB = ("polars", "duckdb")
TOOLS: dict[str, Tool] = {
    "dreambolt": Tool("DreamBolt", ("dreambolt", *_DB), dreambolt),
    "s3fs": Tool("s3fs + polars", ("s3fs", *_DB), s3fs_polars),
    "boto3": Tool("boto3 download_fileobj + polars", ("boto3", *_DB), boto3_polars),
    "boto3-threads": Tool(
        "boto3 download_fileobj + polars (16 threads)", ("boto3", *_DB), boto3_threads, ("s3",)
    ),
    "polars": Tool("polars native s3://", _DB, polars_native),
    "obstore": Tool("obstore + polars (async, 16 in flight)", ("obstore", *_DB), obstore_polars),
    "duckdb-httpfs": Tool("DuckDB httpfs", _DB, duckdb_httpfs),
    "raw": Tool(
        "raw reader: aiohttp GETs, no parsing", ("aiohttp",), raw_reader, ("s1", "s2", "s3")
    ),
    "dreambolt-download": Tool(
        "DreamBolt download phase (S3Client.read)", ("dreambolt",), dreambolt_download, ("s1", "s2")
    ),
}
REFERENCE_TOOLS = ("raw", "dreambolt-download")  # not peers: they do not parse or write


def _peak_rss_kib() -> int:
    """This process's peak RSS (VmHWM): unlike ru_maxrss it starts afresh at exec, so the
    parent's memory at fork time is not counted."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise RuntimeError("no VmHWM in /proc/self/status")


def _check(ctx: Ctx, result: Any, expect_rows: int, expect_bytes: int) -> dict[str, int]:
    if isinstance(result, int):
        if result != expect_bytes:
            raise RuntimeError(f"read {result} bytes, expected {expect_bytes}")
        return {"bytes": result}
    if ctx.scenario == "s1":
        rows = int(result.height)
    else:
        import duckdb

        con = duckdb.connect(ctx.db, read_only=True)
        try:
            row = con.execute("SELECT count(*) FROM t").fetchone()
        finally:
            con.close()
        rows = int(row[0]) if row else 0
    if rows != expect_rows:
        raise RuntimeError(f"got {rows} rows, expected {expect_rows}")
    return {"rows": rows}


def main(argv: list[str]) -> int:
    spec = json.loads(argv[1])
    tool = TOOLS[spec["tool"]]
    ctx = Ctx(spec["scenario"], spec["endpoint"], spec["bucket"], spec["path"], spec["db"])
    for module in tool.imports:
        importlib.import_module(module)
    began = time.perf_counter()
    result = tool.work(ctx)
    outcome = {
        "seconds": time.perf_counter() - began,
        "rss_kib": _peak_rss_kib(),
        **_check(ctx, result, spec["rows"], spec["bytes"]),
    }
    print(MARKER + json.dumps(outcome), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
