#!/usr/bin/env python3
"""DreamBolt against the tools users would pick instead, on a local S3-like server.

    python scripts/bench.py            # full run: 3 runs each, realistic + unthrottled server
    python scripts/bench.py --quick    # smaller data, 1 run, realistic server only (< 3 min)

Generates the data once (into bench-data/), starts scripts/bench_server.py as its own process
per server setting, runs every (scenario, tool) measurement in a fresh process
(scripts/bench_peers.py) with a time limit, and records the work's wall time (measured in the
child, imports excluded) and the child's peak RSS (its own VmHWM, reported as it ends). Prints
the tables and writes them with the date, machine, versions and settings to docs/benchmarks.md
(--quick: bench-data/benchmarks-quick.md). Everything talks to 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import sys
import tempfile
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

import bench_data
from bench_data import DataInfo
from bench_peers import TOOLS
from bench_processes import SETTINGS, bench_server, child_env, probe_httpfs, run_child
from bench_report import Results, load, report, revision
from bench_tables import Run

HERE = Path(__file__).resolve().parent
REPO = HERE.parent


# --- the run -----------------------------------------------------------------------------


def measure(
    args: argparse.Namespace,
    data: dict[str, DataInfo],
    tools: list[str],
    unavailable: dict[str, str],
    cache: Path,
) -> Results:
    env = child_env()
    results: Results = {}
    tmp_root = cache / "tmp"
    tmp_root.mkdir(parents=True, exist_ok=True)
    for setting in args.settings:
        results[setting] = {}
        with bench_server(cache / "root", setting, cache) as endpoint:
            print(f"\n== server: {setting} {SETTINGS[setting]} at {endpoint}", flush=True)
            for scenario in args.scenarios:
                info = data[scenario]
                active = [
                    t for t in tools if scenario in TOOLS[t].scenarios and t not in unavailable
                ]
                runs: dict[str, list[Run]] = {t: [] for t in active}
                results[setting][scenario] = runs
                for rep in range(args.runs):
                    for tool in active:  # interleaved, so drift hits every tool alike
                        spec = {
                            "tool": tool,
                            "scenario": scenario,
                            "endpoint": endpoint,
                            "bucket": info.bucket,
                            "path": info.path,
                            "rows": info.rows,
                            "bytes": info.bytes,
                        }
                        with tempfile.TemporaryDirectory(dir=tmp_root) as tmp:
                            spec["db"] = str(Path(tmp) / "bench.duckdb")
                            cmd = [sys.executable, str(HERE / "bench_peers.py"), json.dumps(spec)]
                            run = run_child(cmd, timeout=args.timeout, cwd=Path(tmp), env=env)
                        runs[tool].append(run)
                        shown = (
                            f"{run.seconds:.2f}s, peak RSS {run.rss_mib:.0f} MiB"
                            if run.seconds is not None and run.rss_mib is not None
                            else run.error
                        )
                        print(
                            f"[{setting}] {scenario} {TOOLS[tool].label} run {rep + 1}/"
                            f"{args.runs}: {shown}",
                            flush=True,
                        )
    return results


# --- main --------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--quick", action="store_true", help="small data, 1 run, realistic only")
    p.add_argument("--runs", type=int, help="runs per tool and scenario (default 3; quick 1)")
    p.add_argument("--settings", help="comma list of: " + ", ".join(SETTINGS))
    p.add_argument("--scenarios", help="comma list of s1..s4 (default all; quick s1..s3)")
    p.add_argument("--tools", help="comma list of: " + ", ".join(TOOLS))
    p.add_argument("--timeout", type=float, help="seconds per run (default 300; quick 90)")
    p.add_argument("--data-dir", type=Path, default=REPO / "bench-data")
    p.add_argument("--out", type=Path, help="markdown report path")
    a = p.parse_args(argv)
    a.runs = a.runs or (1 if a.quick else 3)
    a.timeout = a.timeout or (90.0 if a.quick else 300.0)
    a.settings = (a.settings or ("realistic" if a.quick else ",".join(SETTINGS))).split(",")
    a.scenarios = (a.scenarios or ("s1,s2,s3" if a.quick else "s1,s2,s3,s4")).split(",")
    a.tools = (a.tools or ",".join(TOOLS)).split(",")
    default_out = a.data_dir / "benchmarks-quick.md" if a.quick else REPO / "docs/benchmarks.md"
    a.out = a.out or default_out
    for value, known in ((a.settings, SETTINGS), (a.tools, TOOLS)):
        if unknown := set(value) - set(known):
            p.error(f"unknown: {', '.join(sorted(unknown))}")
    if a.quick and "s4" in a.scenarios:
        p.error("--quick has no S4 data (the 1 GiB CSV); leave out s4 or --quick")
    return a


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the finally blocks
    began, load_at_start, measured = datetime.now(UTC), load(), revision()
    cache = args.data_dir.resolve()
    datasets = bench_data.QUICK if args.quick else bench_data.FULL
    wanted = {k: v for k, v in datasets.items() if k in args.scenarios}
    if missing := set(args.scenarios) - set(datasets):
        sys.exit(f"unknown scenarios: {', '.join(sorted(missing))}")
    data = bench_data.ensure(cache / "root", "quick" if args.quick else "bench", wanted)
    unavailable: dict[str, str] = {}
    if "duckdb-httpfs" in args.tools and (why := probe_httpfs(child_env())):
        unavailable["duckdb-httpfs"] = why
        print(f"DuckDB httpfs: {why}", flush=True)
    try:
        results = measure(args, data, args.tools, unavailable, cache)
    finally:
        shutil.rmtree(cache / "tmp", ignore_errors=True)
    text = report(args, results, data, unavailable, began, load_at_start, measured)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    raw = {
        s: {
            sc: {t: [asdict(r) for r in runs] for t, runs in per.items()} for sc, per in res.items()
        }
        for s, res in results.items()
    }
    (cache / f"results-{'quick' if args.quick else 'full'}.json").write_text(json.dumps(raw))
    print("\n" + text)
    print(f"wrote {args.out} in {(datetime.now(UTC) - began).total_seconds():.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
