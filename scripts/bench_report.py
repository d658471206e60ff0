"""The markdown report of a benchmark run: machine, versions, settings and the tables.

Used by scripts/bench.py; the tables themselves are built by bench_tables.py.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import statistics
import subprocess
import sys
from collections.abc import Sequence
from datetime import datetime
from importlib import metadata
from pathlib import Path

from bench_data import FULL, QUICK, DataInfo, Shape
from bench_peers import POLARS_KNOB
from bench_processes import SETTINGS
from bench_tables import Cells, MiB, cell_table, summary, targets

REPO = Path(__file__).resolve().parent.parent
ENTRY_TITLES = {
    "load": "`load()` → polars DataFrame",
    "ingest": "`ingest()` → DuckDB table",
    "download": "download only, no parsing (reference rows)",
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

Results = dict[str, Cells]  # setting → shape → entry → tool → runs


# --- the report --------------------------------------------------------------------------


def median_of(values: Sequence[float | int | None]) -> float | None:
    """The median of the values known (None where none is)."""
    known = [float(v) for v in values if v is not None]
    return statistics.median(known) if known else None


def cell(value: float | None, spec: str) -> str:
    """A table cell: the value formatted, or a dash."""
    return "–" if value is None else format(value, spec)


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


def _describe(shape: Shape) -> str:
    if shape.kind == "parquet":
        return f"Parquet, {shape.frame} columns, ~{shape.row_groups} row groups, {shape.codec}"
    what = f"CSV, {shape.frame} columns"
    return what + (f", {shape.count} objects under a prefix" if shape.count > 1 else "")


def _settings(args: argparse.Namespace, n: int) -> list[str]:
    from dreambolt import Ingester, S3Options

    kw = Ingester.__init__.__kwdefaults__ or {}
    ing = (
        f"files_in_flight={kw.get('files_in_flight')}, memory_budget="
        f"{kw.get('memory_budget', 0) // MiB} MiB, spool_threshold="
        f"{kw.get('spool_threshold', 0) // MiB} MiB"
    )
    lines = [
        f"- server `{name}`: `scripts/bench_server.py --ttfb-ms {SETTINGS[name][0]:g} "
        f"--conn-mibps {SETTINGS[name][1]:g}` on 127.0.0.1, its own process"
        for name in args.settings
    ]
    return [
        *lines,
        f"- {args.runs} run(s) per tool, shape and entry point, each in a fresh process, tools"
        f" interleaved; time limit {args.timeout:.0f} s per run"
        + (" (1 run: not a median)" if args.runs == 1 else ""),
        "- **median s**: wall time of the work measured in the child — client creation, every"
        " request, parsing, and for `ingest` writing the DuckDB table and closing it — with the"
        " tool's imports done before the clock; **CPU s**: the child's CPU time (all threads)"
        " over the same span (median); **process s**: the whole child process (Python start,"
        " imports)",
        "- **peak RSS**: the child's own high-water mark (VmHWM, read by the child as it ends),"
        " the largest over its runs",
        "- **÷ best peer**: median ÷ the best median among the peers (DreamBolt and the"
        " *reference* rows excluded); DreamBolt's row is the figure that matters",
        "- results are checked after the clock stops: rows and columns of the frame or table,"
        " bytes read",
        f"- DreamBolt as a user calls it, default settings: `await Ingester(s3=S3Options("
        f"endpoint_url=...)).load(uri)` / `.ingest(uri, table='t')`, a prefix named as"
        f" `s3://b/p/*.csv`; `Ingester` defaults {ing}; its S3 client runs concurrency={n}"
        f" (`dreambolt.ingest.INGEST_CONCURRENCY`), part_size={S3Options().part_size // MiB}"
        f" MiB; the download-phase row is `S3Client(concurrency={n}).read`",
        f"- every peer at N = {n} in flight where it has the knob: boto3"
        f" `TransferConfig(max_concurrency={n})`, 8 MiB parts, `max_pool_connections={n}`, and"
        f" {n} threads of `get_object` for many objects; obstore {n} ranged/whole GETs in"
        f" flight; s3fs `cat_ranges`/`cat` with `batch_size={n}` and a pool of {n}; polars"
        f" `scan_parquet`/`scan_csv` on s3:// with `{POLARS_KNOB}={n}` in its process only;"
        f" the raw reader: unsigned aiohttp GETs, 8 MiB ranges, {n} in flight, no parsing",
        "- peers `ingest` as users do: the polars frame, then `CREATE TABLE t AS SELECT * FROM"
        " frame` (Arrow)",
    ]


def report(
    args: argparse.Namespace,
    results: Results,
    data: dict[str, DataInfo],
    unavailable: dict[str, str],
    when: tuple[datetime, float],
    load_at_start: str,
    measured: str,
) -> str:
    from dreambolt.ingest import INGEST_CONCURRENCY

    began, took = when
    shapes = QUICK if args.quick else FULL
    lines = [
        "# DreamBolt benchmarks",
        "",
        f"Written by `scripts/bench.py` ({'--quick' if args.quick else 'full run'}) on "
        f"{began:%Y-%m-%d %H:%M} UTC in {took / 60:.0f} min; command: `{' '.join(sys.argv)}`;"
        f" DreamBolt at {measured}.",
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
        *_settings(args, INGEST_CONCURRENCY),
        "",
        "## Data",
        "",
        "| shape | what | objects | size | rows | columns | URI |",
        "| --- | --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for name, info in data.items():
        lines.append(
            f"| {name} | {_describe(shapes[name])} | {info.objects:,} | "
            f"{info.bytes / MiB:,.1f} MiB | {info.rows:,} | {info.columns} | `{info.uri}` |"
        )
    for setting, cells in results.items():
        ttfb, mibps = SETTINGS[setting]
        lines += [
            "",
            f"## Server `{setting}` (ttfb {ttfb:g} ms, {mibps:g} MiB/s per connection; 0 = off)",
            "",
            "### DreamBolt ÷ best peer",
            "",
            *summary(cells, data),
        ]
        if extra := targets(setting, cells, data):
            lines += ["", "### Download phase, CPU per object, peak RSS", "", *extra]
        for shape, entries in cells.items():
            lines += ["", f"### {shape}: {_describe(shapes[shape])}"]
            for entry, runs in entries.items():
                shown = unavailable if entry != "download" else {}
                lines += ["", f"{ENTRY_TITLES[entry]}:", "", *cell_table(runs, shown)]
    return "\n".join(lines) + "\n"
