#!/usr/bin/env python3
"""Many small objects: botocore's `get_object` against `PresignedGets`, or whole `load()`s.

Writes COUNT objects of SIZE bytes under a temporary root, starts scripts/bench_server.py on it
(time to first byte --ttfb-ms, per-connection pacing --conn-mibps), then, in alternating rounds,
fetches them all, CONCURRENCY at a time, on an S3 client configured as `S3Client` configures its
own (fresh session and client per round, not timed), either with the plain aiobotocore
`get_object` or through `PresignedGets`. Prints each round's wall and CPU time of this process
and the medians.

    python scripts/bench_small_get.py [--count 1000] [--size 30720] [--rounds 7] \
        [--concurrency 64] [--ttfb-ms 20] [--conn-mibps 60] [--region eu-west-1]

With `--load NAME=DIR,...` it instead writes COUNT CSV files of about SIZE bytes and, in
alternating rounds, runs `await Ingester().load("s3://small/*.csv")` in a fresh process with
each DIR first on `sys.path` (e.g. `before=/tmp/old,after=.`: two versions of DreamBolt), and
`polars` as a contender: polars' own `scan_csv("s3://small/*.csv").collect()`. Each process
loads twice and reports both (cold: with client set-up and first connections; warm: again);
wall and CPU seconds of that process (all its threads), imports excluded, and CPU ms per object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from aiobotocore.config import AioConfig

from dreambolt.s3.presigned import PresignedGets, get_small_object
from dreambolt.s3.session import new_session

BUCKET = "small"
LOADER = """
import asyncio, json, os, sys, time
endpoint, uri, tool = sys.argv[1:4]
if tool == "polars":
    import polars as pl
    opts = {"aws_endpoint_url": endpoint, "aws_access_key_id": "bench",
            "aws_secret_access_key": "bench-secret-not-real", "aws_region": "eu-west-1",
            "aws_allow_http": "true"}
    def once():
        return pl.scan_csv(uri, storage_options=opts).collect()
    for _ in range(2):
        wall, cpu = time.perf_counter(), time.process_time()
        frame = once()
        print(json.dumps([time.perf_counter() - wall, time.process_time() - cpu, frame.height]))
else:
    import dreambolt, polars
    from dreambolt import Ingester
    from dreambolt.s3.options import S3Options
    async def main():
        async with Ingester(s3=S3Options(endpoint_url=endpoint, region="eu-west-1")) as ing:
            for _ in range(2):
                wall, cpu = time.perf_counter(), time.process_time()
                frame = await ing.load(uri)
                took = [time.perf_counter() - wall, time.process_time() - cpu, frame.height]
                print(json.dumps(took), flush=True)
    asyncio.run(main())
"""


@contextmanager
def server(root: Path, ttfb_ms: float, conn_mibps: float) -> Iterator[str]:
    """scripts/bench_server.py on a free loopback port, stopped afterwards."""
    port_file = root.parent / "port"
    cmd = [
        sys.executable,
        str(Path(__file__).with_name("bench_server.py")),
        *("--root", str(root), "--port", "0", "--port-file", str(port_file)),
        *("--ttfb-ms", str(ttfb_ms), "--conn-mibps", str(conn_mibps)),
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while not (port_file.exists() and port_file.read_text().strip()):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("bench_server.py did not start")
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port_file.read_text().strip()}"
    finally:
        proc.terminate()
        proc.wait(10)


def client_config(concurrency: int) -> AioConfig:
    """The configuration `S3Client` gives its clients for a custom endpoint."""
    return AioConfig(
        max_pool_connections=max(10, concurrency * 2),
        retries={"total_max_attempts": 1},
        connect_timeout=5.0,
        read_timeout=30.0,
        s3={"addressing_style": "path"},
        signature_version="s3v4",
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )


async def one_round(
    endpoint: str, keys: list[str], *, concurrency: int, region: str, lean: bool
) -> tuple[float, float]:
    """Fetch every key once; returns (wall, CPU) seconds of the fetches alone."""
    session = new_session()
    gets = PresignedGets(session, concurrency=concurrency, connect_timeout=5.0, read_timeout=30.0)
    budget = asyncio.Semaphore(concurrency)
    async with session.create_client(
        "s3", region_name=region, endpoint_url=endpoint, config=client_config(concurrency)
    ) as client:

        async def fetch(key: str) -> int:
            params: dict[str, Any] = {"Bucket": BUCKET, "Key": key, "ChecksumMode": "ENABLED"}
            async with budget:
                _, body = await get_small_object(client, params, gets if lean else None)
            return len(body)

        try:
            await fetch(keys[0])  # client set-up and the first connection: not measured
            wall, cpu = time.perf_counter(), time.process_time()
            sizes = await asyncio.gather(*(fetch(key) for key in keys))
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        finally:
            await gets.close()
    if min(sizes) == 0:
        raise RuntimeError("an object came back empty")
    return wall, cpu


def csv_bytes(index: int, size: int) -> bytes:
    """A CSV file of about `size` bytes: an int, a text, a float and a date column."""
    lines = ["id,name,value,day"]
    total, row = 18, 0
    while total < size:
        day = f"2026-01-{row % 28 + 1:02d}"
        line = f"{index * 100_000 + row},name-{row % 97}-{index},{row * 0.25:.2f},{day}"
        lines.append(line)
        total += len(line) + 1
        row += 1
    return ("\n".join(lines) + "\n").encode()


def load_round(endpoint: str, tool: str, tree: str | None) -> list[tuple[float, float, int]]:
    """One process loading every object twice: [(wall, CPU, rows) cold, (...) warm]."""
    env, cwd = dict(os.environ), tempfile.gettempdir()  # `-c` puts the cwd first on sys.path
    if tree is not None:
        env["PYTHONPATH"] = cwd = str(Path(tree).resolve())
    cmd = [sys.executable, "-c", LOADER, endpoint, f"s3://{BUCKET}/*.csv", tool]
    out = subprocess.run(
        cmd, env=env, cwd=cwd, check=True, capture_output=True, text=True, timeout=300
    )
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    return [(float(wall), float(cpu), int(height)) for wall, cpu, height in rows]


def bench_load(args: argparse.Namespace, endpoint: str) -> None:
    """Alternating rounds of `load()` by each tree, and of polars' own reader."""
    contenders = {name: tree for name, _, tree in (t.partition("=") for t in args.load.split(","))}
    contenders["polars"] = ""
    runs: dict[str, list[list[tuple[float, float, int]]]] = {name: [] for name in contenders}
    for n in range(args.rounds):
        for name, tree in contenders.items():
            tool = "polars" if name == "polars" else "dreambolt"
            took = load_round(endpoint, tool, tree or None)
            runs[name].append(took)
            shown = "  ".join(f"{w:.3f}s/{c:.3f}s cpu" for w, c, _ in took)
            print(f"round {n + 1} {name:8} cold, warm: {shown} rows {took[0][2]}", flush=True)
    for name, rounds in runs.items():
        for which, label in ((0, "cold"), (1, "warm")):
            wall = statistics.median(r[which][0] for r in rounds)
            cpu = statistics.median(r[which][1] for r in rounds)
            per = cpu / args.count * 1000
            print(f"median {name:8} {label} wall {wall:.3f}s cpu {cpu:.3f}s = {per:.2f} ms/object")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--size", type=int, default=30 * 1024)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--ttfb-ms", type=float, default=20.0)
    parser.add_argument("--conn-mibps", type=float, default=60.0)
    parser.add_argument("--region", default="eu-west-1")
    parser.add_argument("--load", default="", help="NAME=DIR,...: load() by these trees")
    args = parser.parse_args(argv)
    # This process's own dummy credentials (the server ignores authentication).
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench-secret-not-real")
    results: dict[str, list[tuple[float, float]]] = {"get_object": [], "presigned": []}
    with tempfile.TemporaryDirectory(prefix="bench-small-") as tmp:
        root = Path(tmp) / "root"
        (root / BUCKET).mkdir(parents=True)
        keys = [f"f{i:05d}.csv" for i in range(args.count)]
        for i, key in enumerate(keys):
            data = csv_bytes(i, args.size) if args.load else os.urandom(args.size)
            (root / BUCKET / key).write_bytes(data)
        with server(root, args.ttfb_ms, args.conn_mibps) as endpoint:
            if args.load:
                bench_load(args, endpoint)
                return 0
            for n in range(args.rounds):
                for name, runs in results.items():
                    wall, cpu = asyncio.run(
                        one_round(
                            endpoint,
                            keys,
                            concurrency=args.concurrency,
                            region=args.region,
                            lean=name == "presigned",
                        )
                    )
                    runs.append((wall, cpu))
                    print(f"round {n + 1} {name:10} wall {wall:.3f}s cpu {cpu:.3f}s", flush=True)
    for name, runs in results.items():
        wall = statistics.median(r[0] for r in runs)
        cpu = statistics.median(r[1] for r in runs)
        print(f"median {name:10} wall {wall:.3f}s cpu {cpu:.3f}s ({len(runs)} rounds)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
