"""The markdown report of a benchmark run: machine, versions, settings and the tables.

Used by scripts/bench.py; the tables themselves are built by bench_tables.py.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import subprocess
import sys
from datetime import datetime
from importlib import metadata
from pathlib import Path

from bench_data import DataInfo
from bench_processes import SETTINGS
from bench_tables import MiB, Run, derived, scenario_table

REPO = Path(__file__).resolve().parent.parent
SCENARIOS = {
    "s1": "S1 — one Parquet object → polars DataFrame",
    "s2": "S2 — one CSV object → DuckDB table",
    "s3": "S3 — many small CSV objects under one prefix → one DuckDB table",
    "s4": "S4 — one big CSV object → DuckDB table (peak RSS is the figure here)",
}
PACKAGES = [
    "dreambolt",
    "polars",
    "pyarrow",
    "duckdb",
    "aiobotocore",
    "botocore",
    "aiohttp",
    "boto3",
    "s3transfer",
    "awscrt",
    "s3fs",
    "fsspec",
    "obstore",
]

Results = dict[str, dict[str, dict[str, list[Run]]]]  # setting → scenario → tool → runs


# --- the report --------------------------------------------------------------------------


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def revision() -> str:
    """The commit measured, and which product files differ from it (they are measured too)."""

    def git(*args: str) -> str:
        try:
            return subprocess.run(
                ["git", *args], cwd=REPO, capture_output=True, text=True, timeout=30
            ).stdout
        except (OSError, subprocess.SubprocessError):
            return ""

    head = git("rev-parse", "--short", "HEAD").strip() or "unknown"
    dirty = [
        line[3:]
        for line in git("status", "--porcelain", "--", "dreambolt").splitlines()
        if line.strip()
    ]
    return f"commit {head}" + (f" with uncommitted changes in {', '.join(dirty)}" if dirty else "")


def load() -> str:
    """1-minute load average and CPU pressure: other work on the machine skews the timings."""
    text = f"load average {os.getloadavg()[0]:.2f}"
    with contextlib.suppress(OSError):
        some = Path("/proc/pressure/cpu").read_text().split()[1]  # "avg10=…"
        text += f", CPU pressure {some.replace('=', ' ')}%"
    return text


def machine(load_at_start: str) -> list[str]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor() or "unknown",
    )
    mem = next(
        (
            int(line.split()[1]) // 1024
            for line in Path("/proc/meminfo").read_text().splitlines()
            if line.startswith("MemTotal")
        ),
        0,
    )
    return [
        f"- CPU: {cpu}, {os.cpu_count()} cores (nproc; shared by the server and the client)",
        f"- memory: {mem / 1024:.1f} GiB; kernel {platform.release()}; "
        f"Python {platform.python_version()}",
        f"- machine load (other processes compete for the same cores): at start "
        f"{load_at_start}; at end {load()}",
    ]


def report(
    args: argparse.Namespace,
    results: Results,
    data: dict[str, DataInfo],
    unavailable: dict[str, str],
    began: datetime,
    load_at_start: str,
    measured: str,
) -> str:
    from dreambolt import Ingester, S3Client, S3Options
    from dreambolt.ingest import INGEST_CONCURRENCY

    client = S3Client()
    kw = Ingester.__init__.__kwdefaults__ or {}
    ing = (
        f"files_in_flight={kw.get('files_in_flight')}, memory_budget="
        f"{kw.get('memory_budget', 0) // MiB} MiB, spool_threshold="
        f"{kw.get('spool_threshold', 0) // MiB} MiB"
    )
    lines = [
        "# DreamBolt benchmarks",
        "",
        f"Written by `scripts/bench.py` ({'--quick' if args.quick else 'full run'}) on "
        f"{began:%Y-%m-%d %H:%M} UTC; command: `{' '.join(sys.argv)}`; DreamBolt at "
        f"{measured}.",
        "",
        "## Machine",
        "",
        *machine(load_at_start),
        "",
        "## Versions",
        "",
        ", ".join(f"{p} {_version(p)}" for p in PACKAGES),
        "",
        "## Settings",
        "",
    ]
    for name in args.settings:
        ttfb, mibps = SETTINGS[name]
        lines.append(
            f"- server `{name}`: `scripts/bench_server.py --ttfb-ms {ttfb:g} "
            f"--conn-mibps {mibps:g}` on 127.0.0.1, its own process"
        )
    lines += [
        f"- {args.runs} run(s) per tool and scenario, each in a fresh process, tools interleaved;"
        f" time limit {args.timeout:.0f} s per run"
        + (" (--quick: 1 run, not a median)" if args.runs == 1 else ""),
        "- **median s**: wall time of the work measured in the child — client creation, every"
        " request, parsing, writing the DuckDB table and closing it — with the tool's imports"
        " done before the clock; **process s**: the whole child process (Python start, imports);"
        " **CPU s**: the child's user + system CPU time (all threads, imports included)",
        "- **peak RSS**: the child's own high-water mark (VmHWM, read by the child as it ends;"
        " `ru_maxrss` would count the parent's memory at fork), the largest over its runs",
        "- **÷ best peer**: median ÷ the best median among the peers (DreamBolt and the"
        " *reference* rows excluded); DreamBolt's row is the figure that matters",
        "- results are checked after the clock stops: rows in the table or frame, bytes read",
        f"- DreamBolt as shipped: `Ingester` defaults {ing}; the Ingester's own S3 client runs"
        f" concurrency={INGEST_CONCURRENCY} (`dreambolt.ingest.INGEST_CONCURRENCY`), part_size="
        f"{S3Options().part_size // MiB} MiB; the download-phase row (`S3Client.read`) uses a"
        f" bare `S3Client`'s defaults, concurrency={client.concurrency}, part_size="
        f"{client.part_size // MiB} MiB",
        "- peers write to DuckDB as users do: `CREATE TABLE t AS SELECT * FROM frame` over the"
        " polars frame (Arrow); the raw reader sends unsigned aiohttp GETs (the server ignores"
        " auth): 8 MiB ranges, 16 in flight, no parsing",
        "",
        "| scenario | objects | size | rows | format |",
        "| --- | ---: | ---: | ---: | --- |",
    ]
    for name, info in data.items():
        if name in args.scenarios:
            lines.append(
                f"| {name.upper()} `{info.uri}` | {info.objects:,} | "
                f"{info.bytes / MiB:,.1f} MiB | {info.rows:,} | {info.kind} |"
            )
    if args.quick:
        lines += [
            "",
            "--quick uses smaller data than the full run (S1/S2 64 MiB, S3 250 objects)"
            " and skips S4 (the 1 GiB CSV).",
        ]
    for setting, per_scenario in results.items():
        ttfb, mibps = SETTINGS[setting]
        lines += [
            "",
            f"## Server `{setting}` (ttfb {ttfb:g} ms, {mibps:g} MiB/s per connection; 0 = off)",
        ]
        for scenario, runs in per_scenario.items():
            lines += ["", f"### {SCENARIOS[scenario]}", "", *scenario_table(runs, unavailable)]
        if extra := derived(setting, per_scenario, data):
            lines += ["", "### Download phase, objects/s and targets", "", *extra]
    return "\n".join(lines) + "\n"
