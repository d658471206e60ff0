"""S6's measurements (`bench_cluster.py` runs them and writes the report): one
`dreambolt ingest` into Delta Lake spread over a local Dask cluster (`--workers N`) vs a single
process: throughput, scaling efficiency, CPU, memory, commits.

    python scripts/bench_cluster.py                  # 2,000 x 1 MiB and 20,000 x 32 KiB, 3 runs
    python scripts/bench_cluster.py --shapes 200x1M --workers 2 --runs 1 --out /tmp/s6.md

Each run is `dreambolt ingest URI --db delta:DIR --table t --endpoint-url E --json [--workers N]`
in a fresh process (its own session), into a fresh local Delta root, from the bench server
(scripts/bench_server.py at its `realistic` setting); legs interleaved (their order rotates from
run to run). While a run goes, its process tree (the driver, the Dask workers it spawns) and the
bench server are sampled with psutil: CPU per process as last seen, resident memory summed over
the tree, high-water marks. After it, the `--json` report must show every object loaded with its
rows, and the Delta table must hold them all: a run that does not is reported as failed, and
the script exits 1. The report (`report`) says what is measured and how; medians go to a
markdown file (default docs/benchmarks-cluster.md). Everything talks to 127.0.0.1 only.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import psutil
from bench_data import DataInfo, Shape
from bench_processes import child_env
from bench_report import cell

REPO = Path(__file__).resolve().parent.parent
SHAPES = ("2000x1M", "20000x32K")
WORKERS = (1, 2, 4)
SINGLE = "single"
BUCKET = "cluster"  # its own bucket (and manifest) in the bench data root
SETTING = "realistic"
TABLE = "t"
TIMEOUT_S = 1800.0
SAMPLE_S = 0.2  # process-tree sampling interval
UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20}


# --- what is measured ----------------------------------------------------------------------


def shape_of(spec: str) -> Shape:
    """`COUNTxSIZE` (e.g. `2000x1M`, `20000x32K`, `12x4K`): that many CSV objects of about
    that size under one prefix (bench_data's `mixed` columns)."""
    found = re.fullmatch(r"(\d+)x(\d+)([KM]?)", spec.strip(), re.IGNORECASE)
    if not found or int(found[1]) < 2 or int(found[2]) < 1:
        raise ValueError(f"{spec!r}: want COUNTxSIZE, e.g. 2000x1M (COUNT >= 2)")
    count, size = int(found[1]), int(found[2]) * UNITS[found[3].upper()]
    unit = next(u for u in ("M", "K", "") if size % UNITS[u] == 0)
    name = f"s6-{count}x{size // UNITS[unit]}{unit.lower()}"
    return Shape(name, "csv", "mixed", size, count=count)


def leg_flags(leg: str) -> list[str]:
    """The ingest flags of a leg: `single` (none) or `--workers N`."""
    return [] if leg == SINGLE else leg.split()


def legs_of(workers: Sequence[int]) -> list[str]:
    return [SINGLE, *(f"--workers {n}" for n in workers)]


def workers_of(leg: str) -> int | None:
    return None if leg == SINGLE else int(leg.split()[1])


@dataclass(frozen=True)
class Result:
    """One run of one leg on one shape."""

    wall: float
    cpu_wait4: float  # the driver and the descendants it waited for (rusage from wait4)
    cpu_driver: float | None = None  # the driver alone (sampled)
    cpu_tree: float | None = None  # every process of the tree, each as last sampled
    cpu_server: float | None = None  # the bench server, over the run
    rss_driver_mib: float | None = None  # the driver's VmHWM
    rss_tree_mib: float | None = None  # the largest sampled sum of RSS over the tree
    processes: int | None = None  # the most processes seen in the tree at once
    machine_busy: float | None = None  # cores busy machine-wide (ours and others') over the run
    ingest_s: float | None = None  # the --json report's `seconds`: Ingester.ingest alone
    rows: int | None = None  # the --json report's
    table_rows: int | None = None  # counted in the Delta table
    data_commits: int | None = None
    ledger_commits: int | None = None
    error: str | None = None


@dataclass
class Tree:
    """Samples of a process and its descendants: CPU and high-water mark per process (last
    seen), the largest sum of RSS, the most processes at once."""

    root: int
    cpu: dict[tuple[int, float], float] = field(default_factory=dict)  # (pid, started) → s
    hwm: dict[tuple[int, float], float] = field(default_factory=dict)  # → MiB
    rss_sum_mib: float = 0.0
    most: int = 0

    def sample(self) -> None:
        try:
            top = psutil.Process(self.root)
            procs = [top, *top.children(recursive=True)]
        except psutil.Error:
            return
        rss, seen = 0, 0
        for proc in procs:
            try:
                with proc.oneshot():
                    key = (proc.pid, proc.create_time())
                    times = proc.cpu_times()
                    mem = proc.memory_info()
                    status = Path(f"/proc/{proc.pid}/status").read_text()
            except (psutil.Error, OSError):
                continue
            self.cpu[key] = times.user + times.system  # its own: children's are sampled too
            hwm = re.search(r"^VmHWM:\s+(\d+) kB", status, re.MULTILINE)
            if hwm:
                self.hwm[key] = int(hwm[1]) / 1024
            rss += mem.rss
            seen += 1
        self.rss_sum_mib = max(self.rss_sum_mib, rss / (1 << 20))
        self.most = max(self.most, seen)

    def driver_cpu(self) -> float | None:
        return next((s for (pid, _), s in self.cpu.items() if pid == self.root), None)

    def driver_hwm(self) -> float | None:
        return next((m for (pid, _), m in self.hwm.items() if pid == self.root), None)


def _cpu(proc: Any) -> float:
    times = proc.cpu_times()
    return float(times.user + times.system)


def _machine_cpu() -> float:
    """CPU seconds the whole machine has spent busy since boot (every process, all cores)."""
    t = psutil.cpu_times()
    return float(t.user + t.nice + t.system + t.irq + t.softirq)


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)  # the child leads its own session: this is its group


def _leftovers(pgid: int, grace: float = 5.0) -> list[int]:
    """Processes still in the run's process group `grace` seconds after its driver was reaped
    (multiprocessing's resource tracker exits a moment after the driver: it is given time)."""
    deadline = time.monotonic() + grace
    while True:
        found = []
        for proc in psutil.process_iter():
            with contextlib.suppress(psutil.Error, OSError):
                if proc.pid != os.getpid() and os.getpgid(proc.pid) == pgid:
                    found.append(proc.pid)
        if not found or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def run_ingest(
    cmd: list[str], *, env: dict[str, str], cwd: Path, timeout: float, server: Any = None
) -> tuple[Result, dict[str, Any] | None]:
    """Run one `dreambolt ingest --json` with its process tree (and `server`, a psutil
    Process) sampled; its Result and its parsed report (None if it failed)."""
    out, err = cwd / "report.json", cwd / "stderr.txt"
    server_before = _cpu(server) if server is not None else None
    machine_before = _machine_cpu()
    began = time.perf_counter()
    with out.open("wb") as fo, err.open("wb") as fe:
        proc = subprocess.Popen(cmd, stdout=fo, stderr=fe, cwd=cwd, env=env, start_new_session=True)
    tree, killed, next_sample = Tree(proc.pid), False, 0.0
    try:
        while not (found := os.wait4(proc.pid, os.WNOHANG))[0]:
            now = time.perf_counter()
            if now >= next_sample:
                tree.sample()
                next_sample = now + SAMPLE_S
            if not killed and now > began + timeout:
                _kill_group(proc.pid)
                killed = True
            time.sleep(0.02)
    except BaseException:
        _kill_group(proc.pid)
        os.wait4(proc.pid, 0)
        raise
    wall = time.perf_counter() - began
    _, status, usage = found
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
    stray = _leftovers(proc.pid)
    _kill_group(proc.pid)  # whatever the driver left behind must not skew the next run
    result = Result(
        wall,
        usage.ru_utime + usage.ru_stime,
        tree.driver_cpu(),
        sum(tree.cpu.values()) or None,
        _cpu(server) - server_before if server is not None and server_before is not None else None,
        tree.driver_hwm(),
        tree.rss_sum_mib or None,
        tree.most or None,
        (_machine_cpu() - machine_before) / wall,
    )
    if killed:
        return _failed(result, f"timed out after {timeout:.0f}s"), None
    if stray:
        return _failed(result, f"{len(stray)} process(es) outlived the driver"), None
    try:
        report = json.loads(out.read_text())
    except ValueError:
        report = None
    if proc.returncode != 0 or not isinstance(report, dict):
        why = [f["error"]["message"] for f in (report or {}).get("files", []) if f.get("error")]
        why += err.read_text(errors="replace").strip().splitlines()[-1:] or ["no output"]
        return _failed(result, f"exit {proc.returncode}: {str(why[0])[:300]}"), None
    return result, report


def _failed(result: Result, error: str) -> Result:
    return replace(result, error=error)


def check_report(report: dict[str, Any], info: DataInfo) -> str | None:
    """Why the `--json` report does not show every object loaded with its rows (None: it does)."""
    files, totals = report.get("files", []), report.get("totals", {})
    per_object = info.rows // info.objects  # bench_data writes the same rows into each object
    loaded = [f for f in files if f.get("status") == "loaded"]
    if len(files) != info.objects or len(loaded) != info.objects:
        statuses = sorted({str(f.get("status")) for f in files})
        return f"{len(loaded)} of {info.objects} objects loaded ({len(files)} reported: {statuses})"
    if len({f["uri"] for f in files}) != info.objects:
        return "an object is reported twice"
    wrong = [f["uri"] for f in files if f.get("rows") != per_object]
    if wrong:
        return f"{len(wrong)} objects with rows other than {per_object}, e.g. {wrong[0]}"
    if totals.get("rows") != info.rows or totals.get("loaded") != info.objects:
        return f"totals {totals}, expected {info.objects} loaded, {info.rows} rows"
    return None


def delta_counts(root: Path) -> dict[str, int]:
    """Commits of the data table and of the ledger (`version() + 1`), and the table's rows."""
    from deltalake import DeltaTable

    data = DeltaTable(str(root / TABLE))
    ledger = DeltaTable(str(root / "_dreambolt_loads"))
    return {
        "data_commits": data.version() + 1,
        "ledger_commits": ledger.version() + 1,
        "table_rows": data.count(),
    }


def measure_one(
    leg: str, info: DataInfo, endpoint: str, tmp: Path, timeout: float, server: Any = None
) -> Result:
    """One ingest of `info` along `leg` into a fresh local Delta root, then the table counted."""
    lake = tmp / "lake"
    cmd = [str(Path(sys.executable).parent / "dreambolt"), "ingest", info.uri]
    cmd += ["--db", f"delta:{lake}", "--table", TABLE, "--endpoint-url", endpoint, "--json"]
    result, report = run_ingest(
        cmd + leg_flags(leg), env=child_env(), cwd=tmp, timeout=timeout, server=server
    )
    if report is None:
        return result
    counts = delta_counts(lake)
    result = replace(
        result,
        ingest_s=float(report["seconds"]),
        rows=int(report["totals"]["rows"]),
        table_rows=counts["table_rows"],
        data_commits=counts["data_commits"],
        ledger_commits=counts["ledger_commits"],
    )
    if why := check_report(report, info):
        return _failed(result, why)
    if counts["table_rows"] != info.rows:
        return _failed(result, f"the table holds {counts['table_rows']} rows, not {info.rows}")
    return result


Results = dict[str, dict[str, list[Result]]]  # shape -> leg -> runs


def _shown(found: Result) -> str:
    if found.error:
        return f"FAILED: {found.error}"
    return (
        f"{found.wall:.2f}s, CPU wait4 {found.cpu_wait4:.1f}s / tree {cell(found.cpu_tree, '.1f')}"
        f"s / server {cell(found.cpu_server, '.1f')}s, {found.processes} processes, "
        f"{found.rows} rows, commits {found.data_commits}/{found.ledger_commits}"
    )


def measure(
    data: dict[str, DataInfo],
    endpoint: str,
    runs: int,
    work: Path,
    legs: Sequence[str],
    *,
    timeout: float = TIMEOUT_S,
    server: Any = None,
) -> Results:
    """`runs` runs of every leg on every shape, legs interleaved within each run (the order
    rotated by one from run to run)."""
    results: Results = {shape: {leg: [] for leg in legs} for shape in data}
    for run in range(1, runs + 1):
        shift = (run - 1) % len(legs)
        order = [*legs[shift:], *legs[:shift]]
        for shape, info in data.items():
            for leg in order:
                with tempfile.TemporaryDirectory(dir=work) as tmp:
                    found = measure_one(leg, info, endpoint, Path(tmp), timeout, server)
                results[shape][leg].append(found)
                print(f"{shape} {leg} run {run}/{runs}: {_shown(found)}", flush=True)
    return results
