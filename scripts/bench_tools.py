"""The benchmark's workloads: the same work done by DreamBolt and by each tool a user might
pick instead, one function per tool taking a `Ctx`. The registry and the runner that time them
are in bench_peers.py; obstore, s3fs and the raw aiohttp reader are in bench_tools_ranged.py.

Entry points: `load` returns a polars DataFrame; `ingest` leaves a DuckDB table `t` in
`ctx.db` (peers: the frame, then `CREATE TABLE t AS SELECT * FROM frame`, as users do);
`download` (reference rows only) returns the number of bytes read. Each tool's libraries are
imported inside its function, so the runner can import them before its clock starts.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

KEY, SECRET, REGION = "bench", "bench-secret", "us-east-1"
PART = 8 << 20  # ranged GETs of one big object (DreamBolt's default part_size too)


@dataclass(frozen=True)
class Ctx:
    """What one measurement works on."""

    entry: str  # "load", "ingest" or "download"
    kind: str  # "parquet" or "csv"
    endpoint: str  # http://127.0.0.1:PORT
    bucket: str
    path: str  # key, or prefix ending in "/"
    uri_path: str  # key, or prefix + "*.csv" (what a user names)
    db: str  # DuckDB file to create (ingest)
    in_flight: int  # DreamBolt's concurrency: peers with a knob use it too

    @property
    def many(self) -> bool:
        return self.path.endswith("/")

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.uri_path}"


Work = Callable[[Ctx], Any]  # a DataFrame (load), None (table written) or a byte count


# --- shared steps ------------------------------------------------------------------------


def finish(ctx: Ctx, frame: Any) -> Any:
    """load: the frame. ingest: CREATE TABLE t AS SELECT * FROM frame (Arrow), committed."""
    if ctx.entry == "load":
        return frame
    import duckdb

    con = duckdb.connect(ctx.db)
    try:
        con.register("frame", frame)
        con.execute("CREATE TABLE t AS SELECT * FROM frame")
    finally:
        con.close()
    return None


def parse(ctx: Ctx, data: Any) -> Any:
    import polars as pl

    return pl.read_parquet(data) if ctx.kind == "parquet" else pl.read_csv(data)


def parse_all(ctx: Ctx, blobs: list[Any]) -> Any:
    import polars as pl

    return pl.concat([parse(ctx, b) for b in blobs], how="vertical")


# --- DreamBolt ---------------------------------------------------------------------------


def dreambolt(ctx: Ctx) -> Any:
    """As a user calls it, default settings: `Ingester(s3=S3Options(endpoint_url=…))`."""
    from dreambolt import Ingester, S3Options

    async def go() -> Any:
        options = S3Options(endpoint_url=ctx.endpoint)
        if ctx.entry == "load":
            async with Ingester(s3=options) as ing:
                return await ing.load(ctx.uri)
        async with Ingester(db=ctx.db, s3=options) as ing:
            report = await ing.ingest(ctx.uri, table="t")
        bad = [f for f in report.files if f.status != "loaded"]
        if bad:
            raise RuntimeError(f"{len(bad)} files not loaded, e.g. {bad[0].to_dict()}")
        return None

    return asyncio.run(go())


def dreambolt_download(ctx: Ctx) -> int:
    """DreamBolt's download phase alone: `S3Client.read` of the whole object, at the
    Ingester's concurrency."""
    from dreambolt import S3Client

    async def go() -> int:
        async with S3Client(endpoint_url=ctx.endpoint, concurrency=ctx.in_flight) as s3:
            return len(await s3.read(ctx.uri))

    return asyncio.run(go())


# --- boto3 and polars --------------------------------------------------------------------


def _boto3_client(ctx: Ctx) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=ctx.endpoint,
        aws_access_key_id=KEY,
        aws_secret_access_key=SECRET,
        region_name=REGION,
        config=Config(max_pool_connections=ctx.in_flight),
    )


def boto3_polars(ctx: Ctx) -> Any:
    """One object: `download_fileobj` with `TransferConfig(max_concurrency=N)`, 8 MiB parts;
    many: `get_object` from a pool of N threads sharing one client (pool of N connections)."""
    from concurrent.futures import ThreadPoolExecutor

    from boto3.s3.transfer import TransferConfig

    client = _boto3_client(ctx)
    if ctx.many:
        pages = client.get_paginator("list_objects_v2").paginate(Bucket=ctx.bucket, Prefix=ctx.path)
        keys = [item["Key"] for page in pages for item in page.get("Contents", [])]

        def get(key: str) -> bytes:
            body: bytes = client.get_object(Bucket=ctx.bucket, Key=key)["Body"].read()
            return body

        with ThreadPoolExecutor(ctx.in_flight) as pool:
            return finish(ctx, parse_all(ctx, list(pool.map(get, keys))))
    config = TransferConfig(
        max_concurrency=ctx.in_flight, multipart_threshold=PART, multipart_chunksize=PART
    )
    buf = io.BytesIO()
    client.download_fileobj(ctx.bucket, ctx.path, buf, Config=config)
    buf.seek(0)
    return finish(ctx, parse(ctx, buf))


def polars_options(ctx: Ctx) -> dict[str, str]:
    return {
        "aws_endpoint_url": ctx.endpoint,
        "aws_access_key_id": KEY,
        "aws_secret_access_key": SECRET,
        "aws_region": REGION,
        "aws_allow_http": "true",
    }


def polars_native(ctx: Ctx) -> Any:
    """polars' own object-store reader on s3:// (a glob for many files): `scan_parquet` /
    `scan_csv(...).collect()`; its concurrency knob is set in the child's environment."""
    import polars as pl

    scan = pl.scan_parquet if ctx.kind == "parquet" else pl.scan_csv
    return finish(ctx, scan(ctx.uri, storage_options=polars_options(ctx)).collect())


def polars_read(ctx: Ctx) -> Any:
    """`read_parquet("s3://…")` / `read_csv("s3://…")` (eager), for comparison."""
    import polars as pl

    read = pl.read_parquet if ctx.kind == "parquet" else pl.read_csv
    return finish(ctx, read(ctx.uri, storage_options=polars_options(ctx)))


def duckdb_httpfs(ctx: Ctx) -> Any:
    """DuckDB reading s3:// itself through its httpfs extension."""
    import duckdb

    con = duckdb.connect(":memory:" if ctx.entry == "load" else ctx.db)
    try:
        con.execute("LOAD httpfs")
        host = ctx.endpoint.removeprefix("http://")
        con.execute(
            f"SET s3_endpoint='{host}'; SET s3_use_ssl=false; SET s3_url_style='path'; "
            f"SET s3_region='{REGION}'; SET s3_access_key_id='{KEY}'; "
            f"SET s3_secret_access_key='{SECRET}'"
        )
        reader = "read_parquet" if ctx.kind == "parquet" else "read_csv"
        if ctx.entry == "load":
            return con.sql(f"SELECT * FROM {reader}('{ctx.uri}')").pl()
        con.execute(f"CREATE TABLE t AS SELECT * FROM {reader}('{ctx.uri}')")
        return None
    finally:
        con.close()
