#!/usr/bin/env python3
"""`dreambolt ingest` into Delta Lake tables vs DuckDB: time, CPU, memory, commits.

    python scripts/bench_delta.py                       # 4 shapes x 4 legs, 3 runs each
    python scripts/bench_delta.py --shapes small-4k --runs 1 --out /tmp/delta.md

Each run is `dreambolt ingest URI --db DB --table t --endpoint-url E --json` in a fresh process,
into a fresh destination, legs interleaved: `duckdb` and `delta-local` read from the bench
server (scripts/bench_server.py), `duckdb-moto` and `delta-s3` from a moto server that also holds
the `delta-s3` root (`--endpoint-url` is one setting for source and destination, so the shapes
are uploaded to moto once). The report (`report`) says what is measured and how; medians go to
a markdown file (default docs/benchmarks-delta.md). Everything talks to 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import bench_data
from bench_data import DataInfo
from bench_processes import SETTINGS, bench_server, child_env, stop
from bench_report import cell, load, machine, median_of, revision
from bench_tools import KEY, REGION, SECRET

REPO = Path(__file__).resolve().parent.parent
SHAPES = ("small-4k", "small-32k", "csv-narrow", "pq-num-snappy-4rg")
LEGS = ("duckdb", "delta-local", "duckdb-moto", "delta-s3")
BASELINE = {"delta-local": "duckdb", "delta-s3": "duckdb-moto"}
SETTING = "realistic"
TABLE = "t"
TIMEOUT_S = 900.0
CLIENT_AUTH = {"region_name": REGION, "aws_access_key_id": KEY, "aws_secret_access_key": SECRET}


@dataclass(frozen=True)
class Endpoints:
    """The bench server (the source of the non-moto legs) and moto (source and lake)."""

    bench: str
    moto: str | None = None
    lake: str = "lake"  # the moto bucket the Delta roots go in


@dataclass(frozen=True)
class Result:
    """One run of one leg on one shape."""

    wall: float
    cpu: float
    rss_mib: float
    rows: int | None = None  # the --json report's rows
    table_rows: int | None = None  # counted in the destination
    data_commits: int | None = None
    ledger_commits: int | None = None
    interval_s: float | None = None  # median gap between data commits (history timestamps)
    error: str | None = None


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)  # the child leads its own session: this is its group


def _reap(pid: int, deadline: float) -> tuple[int, resource.struct_rusage, bool]:
    """Wait for the child (killed at the deadline, or if we are): status, rusage, timed out."""
    killed = False
    try:
        while not (found := os.wait4(pid, os.WNOHANG))[0]:
            if not killed and time.perf_counter() > deadline:
                _kill(pid)
                killed = True
            time.sleep(0.01)
    except BaseException:
        _kill(pid)
        os.wait4(pid, 0)
        raise
    return found[1], found[2], killed


def run_ingest(cmd: list[str], *, env: dict[str, str], cwd: Path, timeout: float) -> Result:
    """Run one `dreambolt ingest --json`; its wall, CPU, peak RSS and reported rows."""
    out, err = cwd / "report.json", cwd / "stderr.txt"
    began = time.perf_counter()
    with out.open("wb") as fo, err.open("wb") as fe:
        proc = subprocess.Popen(cmd, stdout=fo, stderr=fe, cwd=cwd, env=env, start_new_session=True)
    status, usage, timed_out = _reap(proc.pid, began + timeout)
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
    wall = time.perf_counter() - began
    cpu, rss = usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024
    if timed_out:
        return Result(wall, cpu, rss, error=f"timed out after {timeout:.0f}s")
    try:
        report = json.loads(out.read_text())
    except ValueError:
        report = None
    if proc.returncode != 0 or report is None:
        why = [f["error"] for f in (report or {}).get("files", []) if f.get("error")]
        why += err.read_text(errors="replace").strip().splitlines()[-1:] or ["no output"]
        return Result(wall, cpu, rss, error=f"exit {proc.returncode}: {why[0][:300]}")
    return Result(wall, cpu, rss, rows=int(report["totals"]["rows"]))


@contextlib.contextmanager
def moto_server(logs: Path) -> Iterator[str]:
    """`python -m moto.server` on a free loopback port; stopped whatever happens."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if k != "MOTO_S3_CUSTOM_ENDPOINTS"}
    cmd = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    with (logs / "moto.log").open("wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(OSError):
                with urllib.request.urlopen(f"{url}/moto-api/", timeout=1) as answer:
                    answer.read()
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"moto did not start; see {logs / 'moto.log'}")
            time.sleep(0.1)
        yield url
    finally:
        stop(proc)


def _s3(endpoint: str) -> Any:
    import boto3
    from botocore.config import Config

    # No checksums stored: moto 5.2.5 reports a multipart upload's composite CRC32 as the
    # object's (no "-N"), which DreamBolt rightly rejects; the bench server sends none either.
    config = Config(s3={"addressing_style": "path"}, request_checksum_calculation="when_required")
    return boto3.client("s3", endpoint_url=endpoint, config=config, **CLIENT_AUTH)


def stage_on_moto(root: Path, data: Sequence[DataInfo], endpoints: Endpoints) -> None:
    """Upload each shape's objects to moto under the same bucket and keys (once per run)."""
    assert endpoints.moto is not None
    s3 = _s3(endpoints.moto)
    try:
        for bucket in {endpoints.lake, *(info.bucket for info in data)}:
            with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):
                s3.create_bucket(Bucket=bucket)
        for info in data:
            base = root / info.bucket
            src = base / info.path
            files = [src] if info.objects == 1 else sorted(src.glob(f"*.{info.kind}"))
            for file in files:
                key = file.relative_to(base).as_posix()
                if file.stat().st_size > 8 << 20:
                    s3.upload_file(str(file), info.bucket, key)
                else:
                    s3.put_object(Bucket=info.bucket, Key=key, Body=file.read_bytes())
    finally:
        s3.close()


def _drop_prefix(endpoint: str, bucket: str, prefix: str) -> None:
    """Delete a run's Delta root from moto, so its memory does not grow run after run."""
    s3 = _s3(endpoint)
    try:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
            if keys:
                s3.delete_objects(Bucket=bucket, Delete={"Objects": keys})
    finally:
        s3.close()


def delta_counts(root: str, storage: dict[str, str] | None) -> dict[str, Any]:
    """Commits of the data table and the ledger, the data commits' interval, the rows."""
    from deltalake import DeltaTable

    data = DeltaTable(f"{root}/{TABLE}", storage_options=storage)
    ledger = DeltaTable(f"{root}/_dreambolt_loads", storage_options=storage)
    stamps = sorted(int(h["timestamp"]) for h in data.history())
    gaps = [b - a for a, b in itertools.pairwise(stamps[1:])]  # after the creation
    return {
        "data_commits": data.version() + 1,
        "ledger_commits": ledger.version() + 1,
        "interval_s": statistics.median(gaps) / 1000 if gaps else None,
        "table_rows": data.count(),
    }


def duckdb_rows(path: Path) -> int:
    import duckdb

    with duckdb.connect(str(path), read_only=True) as con:
        found = con.execute(f"SELECT count(*) FROM {TABLE}").fetchone()
    return int(found[0]) if found else 0


def measure_one(leg: str, info: DataInfo, endpoints: Endpoints, tmp: Path, run: int) -> Result:
    """One ingest of `info` along `leg` into a fresh destination, then its table inspected."""
    endpoint = endpoints.moto if leg in ("duckdb-moto", "delta-s3") else endpoints.bench
    assert endpoint is not None, f"{leg} needs moto"
    prefix = f"{info.shape}-{run}-{os.getpid()}"
    db = {
        "duckdb": str(tmp / "bench.duckdb"),
        "duckdb-moto": str(tmp / "bench.duckdb"),
        "delta-local": f"delta:{tmp / 'lake'}",
        "delta-s3": f"delta:s3://{endpoints.lake}/{prefix}",
    }[leg]
    cmd = [str(Path(sys.executable).parent / "dreambolt"), "ingest", info.uri, "--db", db]
    cmd += ["--table", TABLE, "--endpoint-url", endpoint, "--json"]
    result = run_ingest(cmd, env=child_env(), cwd=tmp, timeout=TIMEOUT_S)
    try:
        if result.error is not None:
            return result
        if leg == "delta-s3":
            storage = dict(AWS_ENDPOINT_URL=endpoint, AWS_ALLOW_HTTP="true", AWS_REGION=REGION)
            storage |= dict(AWS_ACCESS_KEY_ID=KEY, AWS_SECRET_ACCESS_KEY=SECRET)
            counts = delta_counts(db.removeprefix("delta:"), storage)
        elif leg == "delta-local":
            counts = delta_counts(str(tmp / "lake"), None)
        else:
            counts = {"table_rows": duckdb_rows(tmp / "bench.duckdb")}
    finally:
        if leg == "delta-s3":
            _drop_prefix(endpoint, endpoints.lake, prefix + "/")
    return Result(result.wall, result.cpu, result.rss_mib, result.rows, **counts)


Results = dict[str, dict[str, list[Result]]]  # shape -> leg -> runs


def measure(
    data: dict[str, DataInfo], endpoints: Endpoints, runs: int, work: Path, legs: Sequence[str]
) -> Results:
    """`runs` runs of every leg on every shape, legs interleaved within each run."""
    results: Results = {shape: {leg: [] for leg in legs} for shape in data}
    for run in range(1, runs + 1):
        for shape, info in data.items():
            for leg in legs:
                with tempfile.TemporaryDirectory(dir=work) as tmp:
                    found = measure_one(leg, info, endpoints, Path(tmp), run)
                results[shape][leg].append(found)
                shown = found.error or f"{found.wall:.2f}s, CPU {found.cpu:.2f}s, " + (
                    f"{found.rows} rows, commits {found.data_commits}/{found.ledger_commits}"
                )
                print(f"{shape} {leg} run {run}/{runs}: {shown}", flush=True)
    return results


def _row(shape: str, leg: str, runs: list[Result], expected: int, base: float | None) -> str:
    failed = [r.error for r in runs if r.error]
    if failed:
        return f"| {shape} | {leg} | {failed[0]} | | | | | | | | | |"
    wall, commits = median_of([r.wall for r in runs]), median_of([r.data_commits for r in runs])
    spread = sorted({r.data_commits for r in runs if r.data_commits is not None})
    shown_commits = cell(commits, ".0f") + (f" ({spread[0]}–{spread[-1]})" if spread[1:] else "")
    rows = {r.rows for r in runs} | {r.table_rows for r in runs}
    shown_rows = f"{expected:,}" if rows == {expected} else f"**{sorted(map(str, rows))}**"
    per_commit = wall / commits if wall is not None and commits else None
    vs = f"{wall / base:.2f}×" if wall is not None and base and leg in BASELINE else "–"
    return (
        f"| {shape} | {leg} | {cell(wall, '.2f')} | {vs} | "
        f"{median_of([r.cpu for r in runs]):.2f} | "
        f"{max(r.rss_mib for r in runs):.0f} | {shown_rows} | {shown_commits} | "
        f"{cell(median_of([r.ledger_commits for r in runs]), '.0f')} | {cell(per_commit, '.3f')} | "
        f"{cell(median_of([r.interval_s for r in runs]), '.3f')} | "
        f"{' / '.join(f'{r.wall:.2f}' for r in runs)} |"
    )


def table(results: Results, data: dict[str, DataInfo]) -> str:
    """The markdown table: one row per shape and leg, medians over the runs."""
    head = [
        "| shape | leg | wall s | ÷ DuckDB | CPU s | peak RSS MiB | rows | data commits "
        "| ledger commits | wall ÷ data commit s | commit interval s | runs (wall s) |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    lines = []
    for shape, legs in results.items():
        for leg, runs in legs.items():
            base_runs = legs.get(BASELINE.get(leg, ""), [])
            base = median_of([r.wall for r in base_runs if r.error is None])
            lines.append(_row(shape, leg, runs, data[shape].rows, base))
    return "\n".join(head + lines) + "\n"


def report(results: Results, data: dict[str, DataInfo], context: dict[str, str]) -> str:
    ttfb, mibps = SETTINGS[SETTING]
    shapes = "\n".join(
        f"- `{i.shape}`: {i.objects:,} × {i.kind}, {i.bytes / (1 << 20):.1f} MiB, {i.rows:,} rows"
        for i in data.values()
    )
    return f"""# DreamBolt: ingest into Delta Lake vs DuckDB

Written by `{context["command"]}` on {context["date"]} in {context["took"]}; DreamBolt at \
{context["revision"]}.

{chr(10).join(machine(context["load"]))}

## What runs

- each run: `dreambolt ingest URI --db DB --table t --endpoint-url E --json`, a fresh process, a
  fresh destination; legs interleaved, {context["runs"]} run(s) each. `duckdb`, `delta-local`: from
  `scripts/bench_server.py --ttfb-ms {ttfb:g} --conn-mibps {mibps:g}`, into a DuckDB file / a local
  `delta:DIR`. `duckdb-moto`, `delta-s3`: source uploaded once to a moto server, which holds the
  `delta:s3://lake/...` root too (`--endpoint-url` is one setting for source and destination);
  moto, one Python process, is slower per request: compare `delta-s3` with `duckdb-moto`
- **wall s**, **CPU s**: medians, the whole process; CPU and **peak RSS** (largest run) from
  `wait4` (at least this script's {context["floor"]} MiB: Linux carries it into a child at exec);
  **÷ DuckDB**: median wall ÷ DuckDB's from the same source; **rows**: `--json` and table count
- **data / ledger commits**: `DeltaTable.version() + 1` (its creation included; the runs' range
  if they differ) of the table and of `_dreambolt_loads`; **wall ÷ data commit**: a commit's
  amortised cost; **commit interval**: median gap between consecutive data commits after the
  first (`DeltaTable.history()` timestamps): the time per batch where there are several

## Data

{shapes}

## Results

{table(results, data)}"""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--shapes", help=f"comma list (default {','.join(SHAPES)})")
    p.add_argument("--runs", type=int, choices=range(1, 100), default=3, metavar="N")
    p.add_argument("--out", type=Path, default=REPO / "docs/benchmarks-delta.md")
    a = p.parse_args(argv)
    a.shapes = a.shapes.split(",") if a.shapes else list(SHAPES)
    if unknown := set(a.shapes) - set(bench_data.FULL):
        p.error(f"unknown shapes: {', '.join(sorted(unknown))}")
    return a


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the finally blocks
    began = datetime.now(UTC)
    context = {"load": load(), "revision": revision(), "runs": str(args.runs)}
    cache = (REPO / "bench-data").resolve()
    wanted = {name: bench_data.FULL[name] for name in args.shapes}
    data = bench_data.ensure(cache / "root", "bench", wanted)
    work = cache / "delta-tmp"
    work.mkdir(parents=True, exist_ok=True)
    try:
        with bench_server(cache / "root", SETTING, work) as bench, moto_server(work) as moto:
            endpoints = Endpoints(bench, moto)
            print(f"bench server {bench}, moto {moto}: uploading the shapes to moto", flush=True)
            stage_on_moto(cache / "root", list(data.values()), endpoints)
            results = measure(data, endpoints, args.runs, work, LEGS)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    took = (datetime.now(UTC) - began).total_seconds()
    context["floor"] = f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f}"
    context |= {"date": f"{began:%Y-%m-%d %H:%M} UTC", "took": f"{took / 60:.0f} min"}
    context["command"] = " ".join(["scripts/bench_delta.py", *(argv or sys.argv[1:])])
    text = report(results, data, context)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print("\n" + text + f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
