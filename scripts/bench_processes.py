"""The processes around a benchmark run: the S3 server and one measurement per child.

Used by scripts/bench.py: `bench_server` starts scripts/bench_server.py at one of SETTINGS,
`run_child` runs one measurement (scripts/bench_peers.py) with a time limit and reads back its
work time and peak RSS, `probe_httpfs` checks whether DuckDB's httpfs extension loads here.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from bench_peers import KEY, MARKER, SECRET
from bench_tables import Run

HERE = Path(__file__).resolve().parent
SETTINGS = {  # name: (--ttfb-ms, --conn-mibps)
    "realistic": (20.0, 60.0),
    "unthrottled": (0.0, 0.0),
}
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
    """Run one measurement process: its reported work time, work CPU and peak RSS, and its
    wall and CPU time as a whole.

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
    return Run(outcome["seconds"], elapsed, outcome["rss_kib"] / 1024, cpu, None, outcome["cpu"])


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
        stop(proc)
        port_file.unlink(missing_ok=True)


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Terminate a server process; kill it if it has not gone within 10 s."""
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


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
