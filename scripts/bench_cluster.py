#!/usr/bin/env python3
"""S6: one `dreambolt ingest` into Delta Lake spread over a local Dask cluster (`--workers N`)
vs a single process: throughput, scaling efficiency, CPU, memory, commits — the report and the
run (the measurements are in `bench_cluster_measure.py`).

    python scripts/bench_cluster.py                  # 2,000 x 1 MiB and 20,000 x 32 KiB, 3 runs
    python scripts/bench_cluster.py --shapes 200x1M --workers 2 --runs 1 --out /tmp/s6.md
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import sys
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import bench_data
import psutil
from bench_cluster_measure import (
    BUCKET,
    REPO,
    SAMPLE_S,
    SETTING,
    SHAPES,
    SINGLE,
    TIMEOUT_S,
    WORKERS,
    Result,
    Results,
    legs_of,
    measure,
    shape_of,
    workers_of,
)
from bench_data import DataInfo
from bench_processes import SETTINGS, bench_server
from bench_report import cell, load, machine, median_of, revision

# --- the report ----------------------------------------------------------------------------


def _seconds(run: Result, ingest: bool) -> float | None:
    return run.ingest_s if ingest else run.wall


def throughput(
    runs: Sequence[Result], info: DataInfo, *, ingest: bool = False
) -> tuple[float, float] | None:
    """MB/s (10^6 bytes) and objects/s at the median wall time of the runs that succeeded
    (`ingest`: at the median of the reports' own `seconds`)."""
    took = median_of([_seconds(r, ingest) for r in runs if r.error is None])
    return (info.bytes / 1e6 / took, info.objects / took) if took else None


def efficiency(
    leg: str, legs: dict[str, list[Result]], info: DataInfo, *, ingest: bool = False
) -> float | None:
    """Throughput with N workers ÷ (N × throughput with one worker)."""
    n, mine, one = workers_of(leg), throughput(legs[leg], info, ingest=ingest), None
    if "--workers 1" in legs:
        one = throughput(legs["--workers 1"], info, ingest=ingest)
    return mine[0] / (n * one[0]) if n and mine and one else None


def wait4_note(results: Results) -> str:
    """Whether the driver's rusage from wait4 holds its Dask workers' CPU (it does only for
    descendants the driver itself waited for): compared with the sampled sum, run by run."""
    pairs = [
        (r.cpu_wait4, r.cpu_tree)
        for legs in results.values()
        for leg, runs in legs.items()
        for r in runs
        if leg != SINGLE and r.cpu_tree and r.error is None
    ]
    if not pairs:
        return "No `--workers` run to compare the driver's rusage from `wait4` with"
    worst = max(abs(a - b) / b for a, b in pairs)
    low = min(a / b for a, b in pairs)
    return (
        "The driver's rusage from `wait4` (which adds the CPU of only the descendants a process "
        f"waited for) was {low:.2f}× or more of that sum in every `--workers` run (largest "
        f"gap {worst:.1%}): "
        + (
            "the driver reaps its Dask worker processes, so their CPU is in its rusage too"
            if low > 0.9
            else "the workers' CPU is **not** all in the driver's rusage: use CPU all"
        )
    )


def busy(runs: Sequence[Result]) -> float | None:
    """Cores kept busy: (CPU of the tree + the bench server's) ÷ wall, median over the runs."""
    return median_of(
        [(r.cpu_tree + (r.cpu_server or 0)) / r.wall for r in runs if r.cpu_tree and r.wall]
    )


def _row(shape: str, leg: str, legs: dict[str, list[Result]], info: DataInfo) -> str:
    runs = legs[leg]
    failed = [r.error for r in runs if r.error]
    if failed:
        return f"| {shape} | {leg} | **failed: {failed[0]}** |" + " |" * 19
    speed, single = throughput(runs, info), throughput(legs.get(SINGLE, []), info)
    assert speed is not None
    commits = sorted({r.data_commits for r in runs if r.data_commits is not None})
    shown_commits = cell(median_of(commits), ".0f") + (
        f" ({commits[0]}–{commits[-1]})" if commits[1:] else ""
    )
    ledger = cell(median_of([r.ledger_commits for r in runs]), ".0f")
    cpu_tree = median_of([r.cpu_tree for r in runs])
    return (
        f"| {shape} | {leg} | {cell(median_of([r.wall for r in runs]), '.2f')} | "
        f"{cell(median_of([r.ingest_s for r in runs]), '.2f')} | "
        f"{speed[0]:.2f} | {speed[1]:,.1f} | "
        f"{cell(speed[0] / single[0] if single else None, '.2f')} | "
        f"{cell(efficiency(leg, legs, info), '.2f')} | "
        f"{cell(efficiency(leg, legs, info, ingest=True), '.2f')} | "
        f"{cell(median_of([r.cpu_driver for r in runs]), '.1f')} | {cell(cpu_tree, '.1f')} | "
        f"{cell(cpu_tree * 1000 / info.objects if cpu_tree else None, '.2f')} | "
        f"{cell(median_of([r.cpu_server for r in runs]), '.1f')} | {cell(busy(runs), '.2f')} | "
        f"{cell(median_of([r.machine_busy for r in runs]), '.2f')} | "
        f"{cell(max((r.rss_driver_mib or 0) for r in runs) or None, '.0f')} | "
        f"{cell(max((r.rss_tree_mib or 0) for r in runs) or None, '.0f')} | "
        f"{max((r.processes or 0) for r in runs)} | {shown_commits} | {ledger} | "
        f"{info.rows:,} | {' / '.join(f'{r.wall:.2f}' for r in runs)} |"
    )


def table(results: Results, data: dict[str, DataInfo]) -> str:
    """The markdown table: one row per shape and leg, medians over the runs."""
    head = [
        "| shape | leg | wall s | ingest s | MB/s | objects/s | ÷ single | efficiency "
        "| efficiency (ingest s) | CPU driver s | CPU all s | CPU ms/object | CPU server s "
        "| cores busy | machine busy "
        "| peak RSS driver MiB | peak RSS all MiB | processes | data commits | ledger commits "
        "| rows checked | runs (wall s) |",
        "| --- | --- |" + " ---: |" * 19 + " --- |",
    ]
    lines = [_row(shape, leg, legs, data[shape]) for shape, legs in results.items() for leg in legs]
    return "\n".join(head + lines) + "\n"


def failures(results: Results) -> list[str]:
    return [
        f"{shape} {leg} run {n}: {r.error}"
        for shape, legs in results.items()
        for leg, runs in legs.items()
        for n, r in enumerate(runs, 1)
        if r.error
    ]


def latency_bound(info: DataInfo) -> float:
    """Objects/s one process could fetch if it only waited on the server: its S3 requests in
    flight ÷ (time to first byte + one object's bytes at the per-connection rate)."""
    from dreambolt.ingest import INGEST_CONCURRENCY

    ttfb, mibps = SETTINGS[SETTING]
    per_object = ttfb / 1000 + (info.bytes / info.objects / (mibps * (1 << 20)) if mibps else 0)
    return INGEST_CONCURRENCY / per_object if per_object else float("inf")


def _cpu_ms(runs: Sequence[Result], info: DataInfo) -> float | None:
    cpu = median_of([r.cpu_tree for r in runs if r.error is None])
    return cpu * 1000 / info.objects if cpu else None


def _shape_reading(shape: str, legs: dict[str, list[Result]], info: DataInfo) -> str:
    """One bullet: what one process did, what each --workers N did, whether the target holds."""
    cores = os.cpu_count() or 1
    parts: list[str] = []
    missed: list[str] = []
    met: list[str] = []
    single, one_ms = throughput(legs.get(SINGLE, []), info), _cpu_ms(legs.get(SINGLE, []), info)
    if single and one_ms:
        parts.append(
            f"one process {single[0]:.1f} MB/s ({single[1]:,.0f} objects/s, "
            f"{cell(busy(legs[SINGLE]), '.2f')} cores busy of the machine's "
            f"{cell(median_of([r.machine_busy for r in legs[SINGLE]]), '.2f')}, "
            f"{one_ms:.1f} ms CPU per object)"
        )
    for leg, runs in legs.items():
        n, speed, eff, ms = workers_of(leg), throughput(runs, info), None, _cpu_ms(runs, info)
        if n is None or speed is None or any(r.error for r in runs):
            continue
        eff, by_ingest = efficiency(leg, legs, info), efficiency(leg, legs, info, ingest=True)
        vs = f", {speed[0] / single[0]:.2f}× one process" if single else ""
        parts.append(
            f"`{leg}` {speed[0]:.1f} MB/s{vs}, efficiency {cell(eff, '.2f')} "
            f"({cell(by_ingest, '.2f')} by ingest s), "
            f"{cell(busy(runs), '.2f')} cores busy of the machine's "
            f"{cell(median_of([r.machine_busy for r in runs]), '.2f')}, "
            f"{cell(ms, '.1f')} ms CPU per object"
        )
        if eff is not None and 1 < n <= cores:
            (met if eff >= 0.8 else missed).append(
                f"`{leg}` {eff:.2f}, {cell(by_ingest, '.2f')} by ingest s"
            )
    verdict = f"target ≥ 0.8 up to {cores} workers: " + (
        f"**not met** ({', '.join(missed)})" if missed else f"met ({', '.join(met)})"
    )
    outside = {
        leg: median_of([r.wall - r.ingest_s for r in runs if r.ingest_s is not None])
        for leg, runs in legs.items()
    }
    shown = ", ".join(f"`{leg}` {cell(o, '.1f')} s" for leg, o in outside.items())
    ceiling = latency_bound(info)
    return (
        f"- `{shape}`: {'; '.join(parts)}. {verdict}. Outside `Ingester.ingest` (wall − "
        f"ingest s): {shown}. Waiting on latency alone, one process "
        f"could fetch ~{ceiling:,.0f} objects/s ({ceiling * info.bytes / info.objects / 1e6:,.0f}"
        f" MB/s): "
        + (
            "the runs are far below it, so they are bound by CPU (parsing CSV, writing "
            "Parquet, Python per object), not by latency"
            if single and single[1] < ceiling / 4
            else "the single process is close to it: latency-bound"
        )
    )


def reading(results: Results, data: dict[str, DataInfo]) -> str:
    """The numbers in words: per shape, then why (computed from the results, not written by
    hand, so that a re-run cannot leave a stale reading)."""
    from dreambolt.ingest import INGEST_CONCURRENCY

    cores = os.cpu_count() or 1
    bullets = [_shape_reading(s, legs, data[s]) for s, legs in results.items()]
    return "\n".join(
        [
            *bullets,
            f"- efficiency compares N workers with one worker, on a machine of {cores} cores that "
            "the bench server, the driver (with the Dask scheduler) and the workers share — and "
            "other sessions' processes too (load above). Where the runs are CPU-bound, "
            f"**machine busy** near {cores} means the machine is full (whatever share of it "
            "this run got, **cores busy**): more worker processes cannot add "
            "throughput, they add CPU per object (each worker starts Python and imports "
            "dreambolt, polars, deltalake and Dask; each batch opens its own S3 client and "
            "Delta table and makes its own commit). Efficiency above "
            f"{cores} workers is bounded by {cores}/N here whatever the design",
            "- outside `Ingester.ingest`, every run pays Python's start and imports and the "
            "printing of its `--json` report, and a `--workers` run the start and stop of its "
            "local cluster (N processes spawned, each importing dreambolt): a fixed cost that "
            "lowers efficiency by wall time; efficiency by ingest s leaves it out",
            f"- the issue's ≥ 0.8 is for latency-bound work: one process keeps "
            f"{INGEST_CONCURRENCY} requests in flight, so it waits on latency only when its "
            "objects/s approach that ceiling (a store with a high time to first byte, or "
            "slow connections). CPU-bound work scales with cores, and on a real cluster each "
            f"worker brings its own; on these {cores} shared cores the runs measure the "
            "overheads of the scale-out, not its reach",
        ]
    )


def report(results: Results, data: dict[str, DataInfo], context: dict[str, str]) -> str:
    ttfb, mibps = SETTINGS[SETTING]
    shapes = "\n".join(
        f"- `{i.shape}`: {i.objects:,} CSV objects of ~{i.bytes / i.objects / 1024:,.0f} KiB, "
        f"{i.bytes / 1e6:,.1f} MB, {i.rows:,} rows ({i.rows // i.objects:,} per object), "
        f"`{i.uri}`"
        for i in data.values()
    )
    return f"""# DreamBolt S6: one ingest over a local Dask cluster, into Delta Lake

Written by `{context["command"]}` on {context["date"]} in {context["took"]}; DreamBolt at \
{context["revision"]}.

{chr(10).join(machine(context["load"]))}
- the bench server, the driver, its Dask scheduler (in the driver) and the Dask workers all
  share those cores: `--workers 4` runs 5+ busy processes on {os.cpu_count()} cores

## What runs

- each run: `dreambolt ingest s3://{BUCKET}/PREFIX/*.csv --db delta:DIR --table t
  --endpoint-url E --json [--workers N]`, a fresh process (its own session) into a fresh local
  Delta root, from `scripts/bench_server.py --ttfb-ms {ttfb:g} --conn-mibps {mibps:g}` (one
  process, on 127.0.0.1); legs: `single` (no flag: one process loads) and `--workers N` (a
  `LocalCluster` of N worker processes, one thread each, started and stopped inside the run);
  legs interleaved, their order rotated from run to run, {context["runs"]} run(s) each
- **wall s**: median over the runs, the whole process (Python start and imports, the cluster's
  start and stop, printing the `--json` report included); **ingest s**: the report's own
  `seconds` (`Ingester.ingest`: listing, anti-join, every batch and commit), median;
  **MB/s**, **objects/s**: the shape's bytes (10^6) and objects ÷ median wall; **÷ single**:
  throughput ÷ the single process's; **efficiency**: throughput with N workers ÷ (N ×
  throughput with `--workers 1`), by wall time, and by ingest s — the issue's target is ≥ 0.8
  up to the machine's cores where the work waits on S3 latency
- **CPU driver s**: the driver process alone (the `dreambolt` process: listing, anti-join,
  Dask scheduler and client; in `single` all the work); **CPU all s**: every process of the
  run's tree (driver and the Dask worker processes it spawns), each process's own user+system
  CPU as last sampled by psutil every {SAMPLE_S:g} s (at most one interval per process missed).
  {wait4_note(results)}; **CPU ms/object**: CPU all ÷ objects; **CPU server
  s**: the bench server over the run (sampled before and after); **cores busy**: (CPU all + CPU
  server) ÷ wall, this run's share of the machine; **machine busy**: every process on the
  machine (this run's and any other), cores busy over the run (`psutil.cpu_times()` before and
  after, user + nice + system + irq + softirq). Medians
- **peak RSS driver**: the driver's VmHWM (last sample); **peak RSS all**: the largest sampled
  sum of RSS over the tree (largest run); **processes**: the most processes seen in the tree
- **data / ledger commits**: `DeltaTable.version() + 1` (creation included; the runs' range if
  they differ) of the table and of `_dreambolt_loads`
- **rows checked**: each run's `--json` report must list every object once as `loaded` with its
  rows, totals must match, the Delta table must count the shape's rows; a run that fails any of
  these is shown as failed (and the script exits 1)

## Data

{shapes}

## Results

{table(results, data)}
## Reading

{reading(results, data)}
"""


# --- the run -------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--shapes", help=f"comma list of COUNTxSIZE (default {','.join(SHAPES)})")
    p.add_argument("--workers", help="comma list of N for --workers N (default 1,2,4)")
    p.add_argument("--runs", type=int, choices=range(1, 100), default=3, metavar="N")
    p.add_argument("--timeout", type=float, default=TIMEOUT_S, help="seconds per run")
    p.add_argument("--out", type=Path, default=REPO / "docs/benchmarks-cluster.md")
    a = p.parse_args(argv)
    try:
        a.shapes = [shape_of(s) for s in (a.shapes.split(",") if a.shapes else SHAPES)]
        a.workers = [int(n) for n in a.workers.split(",")] if a.workers else list(WORKERS)
    except ValueError as exc:
        p.error(str(exc))
    if any(n < 1 for n in a.workers):
        p.error("--workers: each N must be at least 1")
    return a


def _server_process() -> Any:
    """The bench server: this process's child running scripts/bench_server.py."""
    for child in psutil.Process().children():
        with contextlib.suppress(psutil.Error):
            if any(part.endswith("bench_server.py") for part in child.cmdline()):
                return child
    return None


@contextlib.contextmanager
def _serving(root: Path, logs: Path) -> Iterator[tuple[str, Any]]:
    with bench_server(root, SETTING, logs) as endpoint:
        yield endpoint, _server_process()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the finally blocks
    began = datetime.now(UTC)
    context = {"load": load(), "revision": revision(), "runs": str(args.runs)}
    cache = (REPO / "bench-data").resolve()
    data = bench_data.ensure(cache / "root", BUCKET, {s.name: s for s in args.shapes})
    work = cache / "cluster-tmp"
    work.mkdir(parents=True, exist_ok=True)
    try:
        with _serving(cache / "root", work) as (endpoint, server):
            print(f"bench server {endpoint} ({SETTING})", flush=True)
            legs = legs_of(args.workers)
            results = measure(
                data, endpoint, args.runs, work, legs, timeout=args.timeout, server=server
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    took = (datetime.now(UTC) - began).total_seconds()
    if (end := revision()) != context["revision"]:  # the product changed during the runs
        context["revision"] += f" at the start, {end} at the end"
    context |= {"date": f"{began:%Y-%m-%d %H:%M} UTC", "took": f"{took / 60:.0f} min"}
    context["command"] = " ".join(["scripts/bench_cluster.py", *(argv or sys.argv[1:])])
    text = report(results, data, context)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print("\n" + text + f"\nwrote {args.out}")
    if failed := failures(results):
        print("\nFAILED RUNS:\n" + "\n".join(failed), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
