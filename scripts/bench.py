#!/usr/bin/env python3
"""DreamBolt against the tools users would pick instead, on a local S3-like server.

    python scripts/bench.py            # full run: every shape, 3 runs, realistic server
    python scripts/bench.py --quick    # smaller data, 1 run, realistic server (a few minutes)
    python scripts/bench.py --shapes csv-quoted,small-32k --entry load --tools dreambolt,polars
    python scripts/bench.py --settings realistic,unthrottled   # the unthrottled server too

Generates the data once (into bench-data/root; shapes in bench_data.py), starts
scripts/bench_server.py as its own process per server setting, and runs every (shape, entry
point, tool) measurement in a fresh process (scripts/bench_peers.py) with a time limit, tools
interleaved within each run. Records the work's wall time and CPU time (measured in the child,
imports excluded), the child's peak RSS and its process time. Prints the tables and writes
them with the date, machine, versions and settings to docs/benchmarks.md (--quick:
bench-data/benchmarks-quick.md; --out elsewhere). Everything talks to 127.0.0.1 only.
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
from typing import Any

import bench_data
from bench_data import DataInfo
from bench_peers import DEFAULT_TOOLS, TOOLS, tool_env
from bench_plan import Cell, estimate, plan
from bench_processes import SETTINGS, bench_server, child_env, probe_httpfs, run_child
from bench_report import Results, load, report, revision
from bench_tables import Run

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
ENTRIES = ("load", "ingest")


def in_flight() -> int:
    """DreamBolt's concurrency when ingesting or loading: every peer with a knob gets it too."""
    from dreambolt.ingest import INGEST_CONCURRENCY

    return INGEST_CONCURRENCY


# --- the run -----------------------------------------------------------------------------


def _measure_one(
    args: argparse.Namespace, cell: Cell, tool: str, info: DataInfo, endpoint: str, tmp_root: Path
) -> Run:
    n = in_flight()
    spec = {
        "tool": tool,
        "entry": cell.entry,
        "kind": info.kind,
        "endpoint": endpoint,
        "bucket": info.bucket,
        "path": info.path,
        "uri_path": info.uri_path,
        "in_flight": n,
        "rows": info.rows,
        "columns": info.columns,
        "bytes": info.bytes,
    }
    env = child_env() | tool_env(tool, n)
    with tempfile.TemporaryDirectory(dir=tmp_root) as tmp:
        spec["db"] = str(Path(tmp) / "bench.duckdb")
        cmd = [sys.executable, str(HERE / "bench_peers.py"), json.dumps(spec)]
        return run_child(cmd, timeout=args.timeout, cwd=Path(tmp), env=env)


def measure(
    args: argparse.Namespace, data: dict[str, DataInfo], cells: list[Cell], cache: Path
) -> Results:
    results: Results = {}
    tmp_root = cache / "tmp"
    tmp_root.mkdir(parents=True, exist_ok=True)
    for setting in args.settings:
        per_setting: dict[str, dict[str, dict[str, list[Run]]]] = {}
        results[setting] = per_setting
        with bench_server(cache / "root", setting, cache) as endpoint:
            print(f"\n== server: {setting} {SETTINGS[setting]} at {endpoint}", flush=True)
            for cell in cells:
                runs: dict[str, list[Run]] = {t: [] for t in cell.tools}
                per_setting.setdefault(cell.shape, {})[cell.entry] = runs
                for rep in range(args.runs):
                    for tool in cell.tools:  # interleaved, so drift hits every tool alike
                        run = _measure_one(args, cell, tool, data[cell.shape], endpoint, tmp_root)
                        runs[tool].append(run)
                        shown = (
                            f"{run.seconds:.2f}s, CPU {run.work_cpu or 0:.2f}s, "
                            f"peak RSS {run.rss_mib:.0f} MiB"
                            if run.seconds is not None and run.rss_mib is not None
                            else run.error
                        )
                        print(
                            f"[{setting}] {cell.shape} {cell.entry} {TOOLS[tool].label} "
                            f"run {rep + 1}/{args.runs}: {shown}",
                            flush=True,
                        )
    return results


# --- main --------------------------------------------------------------------------------


def _list(value: str | None, default: list[str] | tuple[str, ...]) -> list[str]:
    return value.split(",") if value else list(default)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--quick", action="store_true", help="small data, 1 run")
    p.add_argument("--runs", type=int, help="runs per tool and cell (default 3; quick 1)")
    p.add_argument("--settings", help="comma list of: " + ", ".join(SETTINGS))
    p.add_argument("--shapes", help="comma list of: " + ", ".join(bench_data.FULL))
    p.add_argument("--entry", help="comma list of: load, ingest (default both)")
    p.add_argument("--tools", help="comma list of: " + ", ".join(TOOLS))
    p.add_argument("--timeout", type=float, help="seconds per run (default 300; quick 90)")
    p.add_argument("--data-dir", type=Path, default=REPO / "bench-data")
    p.add_argument("--out", type=Path, help="markdown report path")
    p.add_argument("--estimate", action="store_true", help="print the estimate and stop")
    a = p.parse_args(argv)
    shapes = bench_data.QUICK if a.quick else bench_data.FULL
    a.runs = a.runs or (1 if a.quick else 3)
    a.timeout = a.timeout or (90.0 if a.quick else 300.0)
    a.settings = _list(a.settings, ["realistic"])
    a.shapes = _list(a.shapes, list(shapes))
    a.entry = _list(a.entry, ENTRIES)
    a.tools = _list(a.tools, DEFAULT_TOOLS)
    default_out = a.data_dir / "benchmarks-quick.md" if a.quick else REPO / "docs/benchmarks.md"
    a.out = a.out or default_out
    for value, known in (
        (a.settings, SETTINGS),
        (a.tools, TOOLS),
        (a.shapes, shapes),
        (a.entry, ENTRIES),
    ):
        if unknown := set(value) - set(known):
            p.error(f"unknown: {', '.join(sorted(unknown))} (known: {', '.join(known)})")
    return a


def _earlier(cache: Path, quick: bool) -> list[tuple[dict[str, Any], dict[str, int]]]:
    """Earlier realistic results and the bytes of each shape they read: this mode's first,
    then (full run) the --quick run's, whose work times bench_plan.estimate scales up."""
    found = []
    for mode, bucket in (("quick", "quick"),) if quick else (("full", "bench"), ("quick", "quick")):
        try:
            results = json.loads((cache / f"results-{mode}.json").read_text())["realistic"]
            shapes = json.loads((cache / "root" / f".manifest-{bucket}.json").read_text())
            found.append((results, {k: v["bytes"] for k, v in shapes["shapes"].items()}))
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return found


def _save(path: Path, results: Results) -> None:
    """Merge this run's cells into the results file, so a selection keeps the other cells."""
    try:
        saved: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        saved = {}
    for setting, shapes in results.items():
        for shape, entries in shapes.items():
            for entry, runs in entries.items():
                cell = saved.setdefault(setting, {}).setdefault(shape, {}).setdefault(entry, {})
                cell.update({t: [asdict(r) for r in rs] for t, rs in runs.items()})
    path.write_text(json.dumps(saved))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the finally blocks
    began, load_at_start, measured = datetime.now(UTC), load(), revision()
    cache = args.data_dir.resolve()
    shapes = bench_data.QUICK if args.quick else bench_data.FULL
    wanted = {k: v for k, v in shapes.items() if k in args.shapes}
    mode = "quick" if args.quick else "full"
    data = bench_data.ensure(cache / "root", "quick" if args.quick else "bench", wanted)
    unavailable: dict[str, str] = {}
    if "duckdb-httpfs" in args.tools and (why := probe_httpfs(child_env())):
        unavailable["duckdb-httpfs"] = why
        print(f"DuckDB httpfs: {why}", flush=True)
    tools = [t for t in args.tools if t not in unavailable]
    cells = plan(data, {k: v.entries for k, v in wanted.items()}, args.entry, tools)
    results_path = cache / f"results-{mode}.json"
    guess = estimate(cells, data, args.runs, _earlier(cache, args.quick)) * len(args.settings)
    print(
        f"{len(cells)} cells, {sum(len(c.tools) for c in cells) * args.runs} runs per setting;"
        f" estimated {guess / 60:.0f} min",
        flush=True,
    )
    if args.estimate:
        return 0
    try:
        results = measure(args, data, cells, cache)
    finally:
        shutil.rmtree(cache / "tmp", ignore_errors=True)
    took = (datetime.now(UTC) - began).total_seconds()
    text = report(args, results, data, unavailable, (began, took), load_at_start, measured)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    _save(results_path, results)
    print("\n" + text)
    print(f"wrote {args.out} in {took:.0f}s (estimated {guess:.0f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
