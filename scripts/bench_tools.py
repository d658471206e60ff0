"""The benchmark's workloads: the same work done by DreamBolt and by each tool a user might
pick instead, one function per tool taking a `Ctx`. The registry and the runner that time them
are in bench_peers.py; obstore and the raw aiohttp reader are in bench_tools_ranged.py.

Scenarios: s1 one Parquet object → polars DataFrame; s2 one CSV object → DuckDB table;
s3 many small CSV objects under a prefix → one DuckDB table; s4 one big CSV → DuckDB table.
Each tool's libraries are imported inside its function, so the runner can import them before
its clock starts.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

KEY, SECRET, REGION = "bench", "bench-secret", "us-east-1"
IN_FLIGHT = 16  # raw reader, obstore and boto3-threads requests in flight


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


def finish(ctx: Ctx, frame: Any) -> Any:
    if ctx.scenario == "s1":
        return frame
    _to_duckdb(ctx, frame)
    return None


def parse(ctx: Ctx, data: Any) -> Any:
    import polars as pl

    return pl.read_parquet(data) if ctx.scenario == "s1" else pl.read_csv(data)


def concat(frames: list[Any]) -> Any:
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
    import s3fs

    fs = s3fs.S3FileSystem(endpoint_url=ctx.endpoint, key=KEY, secret=SECRET)
    if ctx.scenario == "s3":
        frames = []
        for path in fs.find(f"{ctx.bucket}/{ctx.path}"):
            with fs.open(path, "rb") as f:
                frames.append(parse(ctx, f))
        return finish(ctx, concat(frames))
    with fs.open(f"{ctx.bucket}/{ctx.path}", "rb") as f:
        return finish(ctx, parse(ctx, f))


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
    return parse(ctx, buf)


def boto3_polars(ctx: Ctx) -> Any:
    """`download_fileobj` into BytesIO (s3transfer's threads for big objects); files in a loop."""
    client = _boto3_client(ctx)
    if ctx.scenario == "s3":
        frames = [_boto3_frame(client, ctx, key) for key in _boto3_keys(client, ctx)]
        return finish(ctx, concat(frames))
    return finish(ctx, _boto3_frame(client, ctx, ctx.path))


def boto3_threads(ctx: Ctx) -> Any:
    """Many files: `download_fileobj` from a ThreadPoolExecutor of 16, one shared client."""
    from concurrent.futures import ThreadPoolExecutor

    client = _boto3_client(ctx, IN_FLIGHT)
    keys = _boto3_keys(client, ctx)
    with ThreadPoolExecutor(IN_FLIGHT) as pool:
        frames = list(pool.map(lambda key: _boto3_frame(client, ctx, key), keys))
    return finish(ctx, concat(frames))


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
    return finish(ctx, pl.scan_csv(source, storage_options=options).collect())


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
