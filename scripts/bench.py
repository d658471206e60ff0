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
import contextlib
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

import bench_data
from bench_data import DataInfo
from bench_peers import KEY, MARKER, SECRET, TOOLS
from bench_tables import MiB, Run, derived, scenario_table

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SETTINGS = {  # name: (--ttfb-ms, --conn-mibps)
    "realistic": (20.0, 60.0),
    "unthrottled": (0.0, 0.0),
}
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
HTTPFS_MISSING = "not available on this machine (extension cannot be downloaded) — not measured"


# --- processes ---------------------------------------------------------------------------


def child_env() -> dict[str, str]:
    """The environment of every child: fixed dummy credentials, no AWS/DreamBolt overrides."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "DREAMBOLT_"))}
    env.update(
        AWS_ACCESS_KEY_ID=KEY,
        AWS_SECRET_ACCESS_KEY=SECRET,
        AWS_REGION="us-east-1",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_EC2_METADATA_DISABLED="true",
        NO_PROXY="127.0.0.1,localhost",
        no_proxy="127.0.0.1,localhost",
    )
    for proxy in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        env.pop(proxy, None)
    return env


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)  # the child leads its own session: this is its group


def run_child(args: list[str], *, timeout: float, cwd: Path, env: dict[str, str]) -> Run:
    """Run one measurement process: its reported work time and peak RSS, and its wall time.

    Peak RSS is the child's own VmHWM, reported by the child: `ru_maxrss` from wait4 would
    include this (large) process's RSS at fork time, which Linux carries across exec.
    """
    out, err = cwd / "stdout", cwd / "stderr"
    began = time.perf_counter()
    with out.open("wb") as fo, err.open("wb") as fe:
        proc = subprocess.Popen(
            args, stdout=fo, stderr=fe, cwd=cwd, env=env, start_new_session=True
        )
    reaped, timed_out = False, False
    try:
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                reaped = True
                break
            if not timed_out and time.perf_counter() - began > timeout:
                _kill(proc.pid)
                timed_out = True
            time.sleep(0.02)
    finally:
        if not reaped:  # interrupted: never leave a measurement running
            _kill(proc.pid)
            os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
    elapsed = time.perf_counter() - began
    cpu = usage.ru_utime + usage.ru_stime
    lines = out.read_text(errors="replace").splitlines()
    results = [line for line in lines if line.startswith(MARKER)]
    if timed_out:
        return Run(None, elapsed, None, cpu, f"timed out after {timeout:.0f}s")
    if proc.returncode != 0 or not results:
        tail = err.read_text(errors="replace").strip().splitlines()[-1:] or ["no output"]
        return Run(None, elapsed, None, cpu, f"exit {proc.returncode}: {tail[0][:300]}")
    outcome = json.loads(results[-1][len(MARKER) :])
    return Run(outcome["seconds"], elapsed, outcome["rss_kib"] / 1024, cpu)


@contextlib.contextmanager
def bench_server(root: Path, setting: str, logs: Path) -> Iterator[str]:
    """Start scripts/bench_server.py on a free loopback port; stop it whatever happens."""
    ttfb, mibps = SETTINGS[setting]
    port_file = logs / f"port-{setting}-{os.getpid()}"
    port_file.unlink(missing_ok=True)
    cmd = [
        sys.executable,
        str(HERE / "bench_server.py"),
        "--root",
        str(root),
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--port-file",
        str(port_file),
        "--ttfb-ms",
        str(ttfb),
        "--conn-mibps",
        str(mibps),
    ]
    with (logs / f"server-{setting}.log").open("wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while not port_file.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"bench server did not start; see {log.name}")
            time.sleep(0.05)
        yield f"http://127.0.0.1:{int(port_file.read_text())}"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        port_file.unlink(missing_ok=True)


def probe_httpfs(env: dict[str, str]) -> str | None:
    """None if DuckDB's httpfs extension loads here, else why not (it is then not measured)."""
    code = (
        "import duckdb\nc = duckdb.connect()\ntry:\n    c.execute('LOAD httpfs')\n"
        "except Exception:\n    c.execute('INSTALL httpfs')\n    c.execute('LOAD httpfs')\n"
    )
    try:
        done = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=90
        )
    except subprocess.TimeoutExpired:
        return "not available on this machine (INSTALL httpfs timed out) — not measured"
    if done.returncode == 0:
        return None
    if "download" in done.stderr.lower():
        return HTTPFS_MISSING
    last = (done.stderr.strip().splitlines() or ["unknown error"])[-1]
    return f"not available on this machine ({last[:200]}) — not measured"


# --- the run -----------------------------------------------------------------------------


Results = dict[str, dict[str, dict[str, list[Run]]]]  # setting → scenario → tool → runs


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
