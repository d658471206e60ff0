"""The result tables of scripts/bench.py: medians, ratios to the best peer, CPU per object and
the issue's targets. Pure functions of the runs: no I/O."""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from bench_data import DataInfo
from bench_peers import REFERENCE_TOOLS, TOOLS

__all__ = [
    "MiB",
    "Run",
    "best_peer",
    "cell_table",
    "cpu_per_object",
    "median",
    "summary",
    "targets",
]

MiB = 1 << 20
RATIO_TARGET = 0.8  # DreamBolt ÷ best peer, every shape and entry point
DOWNLOAD_TARGET = 0.9  # DreamBolt's download phase ÷ raw reader throughput
CPU_TARGET = 1.5  # CPU per small object ÷ polars native
RSS_TARGET = 600.0  # MiB, 1 GiB objects into DuckDB
Cells = dict[str, dict[str, dict[str, list["Run"]]]]  # shape → entry → tool → runs


@dataclass
class Run:
    """One measurement: wall time of the work, of the process, peak RSS, CPU; or why it failed."""

    seconds: float | None
    process_seconds: float
    rss_mib: float | None  # the child's VmHWM at the end of a successful run
    cpu_seconds: float  # the child's user + system CPU time, all threads, imports included
    error: str | None = None
    work_cpu: float | None = None  # CPU time (all threads) over the timed work only


def median(runs: list[Run]) -> float | None:
    """Median work time; None unless every run succeeded."""
    times = [r.seconds for r in runs if r.seconds is not None]
    return statistics.median(times) if times and len(times) == len(runs) else None


def median_cpu(runs: list[Run]) -> float | None:
    cpus = [r.work_cpu for r in runs if r.work_cpu is not None]
    return statistics.median(cpus) if cpus and len(cpus) == len(runs) else None


def best_peer(runs: dict[str, list[Run]]) -> tuple[str, float] | None:
    """The fastest peer by median (DreamBolt and the reference rows excluded)."""
    peers = [
        (t, m)
        for t, r in runs.items()
        if t != "dreambolt" and t not in REFERENCE_TOOLS and (m := median(r)) is not None
    ]
    return min(peers, key=lambda p: p[1]) if peers else None


def cpu_per_object(runs: list[Run], objects: int) -> float | None:
    """Median work CPU per object, in milliseconds."""
    cpu = median_cpu(runs)
    return None if cpu is None or objects <= 0 else 1000 * cpu / objects


def _row(label: str, runs: list[Run], best: tuple[str, float] | None) -> str:
    med = median(runs)
    rss = max((r.rss_mib for r in runs if r.rss_mib is not None), default=0.0)
    process = statistics.median(r.process_seconds for r in runs)
    cpu = median_cpu(runs)
    if med is None:
        errors = "; ".join(sorted({r.error or "" for r in runs if r.error}))
        return f"| {label} | failed: {errors} | | | | | {process:.2f} |"
    times = [r.seconds for r in runs if r.seconds is not None]
    ratio = f"{med / best[1]:.2f}" if best else "—"
    shown_cpu = f"{cpu:.2f}" if cpu is not None else "—"
    return (
        f"| {label} | {med:.2f} | {min(times):.2f}–{max(times):.2f} | {shown_cpu} | {rss:.0f} "
        f"| {ratio} | {process:.2f} |"
    )


def cell_table(runs: dict[str, list[Run]], unavailable: dict[str, str]) -> list[str]:
    """One shape and entry point: every tool's row, DreamBolt first, then peers by speed."""
    best = best_peer(runs)
    lines = [
        "| tool | median s | min–max s | CPU s | peak RSS MiB | ÷ best peer | process s |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]

    def order(tool: str) -> tuple[int, float]:
        rank = 0 if tool == "dreambolt" else 2 if tool in REFERENCE_TOOLS else 1
        return rank, median(runs[tool]) or float("inf")

    for tool in sorted(runs, key=order):
        label = TOOLS[tool].label + (" *(reference)*" if tool in REFERENCE_TOOLS else "")
        lines.append(_row(label, runs[tool], None if tool in REFERENCE_TOOLS else best))
    lines += [f"| {TOOLS[t].label} | {why} | | | | | |" for t, why in unavailable.items()]
    return lines


def _verdict(ok: bool, applies: bool = True) -> str:
    return ("met" if ok else "**NOT met**") if applies else "n/a"


def summary(cells: Cells, data: dict[str, DataInfo]) -> list[str]:
    """One line per shape and entry point: DreamBolt, the best peer, the ratio and the target."""
    lines = [
        "| shape | entry | DreamBolt s | best peer | peer s | ÷ best peer | ≤ 0.8 |",
        "| --- | --- | ---: | --- | ---: | ---: | --- |",
    ]
    for shape, entries in cells.items():
        for entry, runs in entries.items():
            if entry == "download":
                continue
            ours, best = median(runs.get("dreambolt", [])), best_peer(runs)
            shown = f"{ours:.2f}" if ours is not None else "failed / not run"
            if best is None:
                lines.append(f"| {shape} | {entry} | {shown} | — | | | |")
                continue
            ratio = ours / best[1] if ours is not None else None
            lines.append(
                f"| {shape} | {entry} | {shown} | {TOOLS[best[0]].label} | {best[1]:.2f} | "
                + (f"{ratio:.2f} | {_verdict(ratio <= RATIO_TARGET)} |" if ratio else "— | |")
            )
    return lines


def _download_lines(cells: Cells, data: dict[str, DataInfo]) -> list[str]:
    out = []
    for shape, entries in cells.items():
        runs = entries.get("download", {})
        raw, dl = median(runs.get("raw", [])), median(runs.get("dreambolt-download", []))
        if raw and dl:
            size = data[shape].bytes / MiB
            share = raw / dl
            out.append(
                f"- {shape} download phase: DreamBolt `S3Client.read` {size / dl:.0f} MiB/s vs "
                f"raw reader {size / raw:.0f} MiB/s = **{100 * share:.0f}%** (target ≥ "
                f"{100 * DOWNLOAD_TARGET:.0f}%: {_verdict(share >= DOWNLOAD_TARGET)})"
            )
    return out


def _cpu_lines(cells: Cells, data: dict[str, DataInfo]) -> list[str]:
    out = []
    for shape, entries in cells.items():
        if data[shape].objects <= 1:
            continue
        for entry, runs in entries.items():
            n = data[shape].objects
            ours = cpu_per_object(runs.get("dreambolt", []), n)
            theirs = cpu_per_object(runs.get("polars", []), n)
            if ours is None or theirs is None:
                continue
            ratio = ours / theirs
            out.append(
                f"- {shape} {entry}: CPU per object DreamBolt **{ours:.2f} ms**, polars native "
                f"{theirs:.2f} ms → **{ratio:.2f}×** (target ≤ {CPU_TARGET:g}×: "
                f"{_verdict(ratio <= CPU_TARGET)})"
            )
    return out


def targets(setting: str, cells: Cells, data: dict[str, DataInfo]) -> list[str]:
    """Download phase vs the raw reader, CPU per small object, peak RSS of the 1 GiB ingests."""
    out = _download_lines(cells, data) + _cpu_lines(cells, data)
    for shape, entries in cells.items():
        runs = entries.get("ingest", {}).get("dreambolt", [])
        if data[shape].bytes >= 1000 * MiB and runs:
            rss = max((r.rss_mib or 0.0 for r in runs), default=0.0)
            out.append(
                f"- {shape} into DuckDB, DreamBolt peak RSS: **{rss:.0f} MiB** (target < "
                f"{RSS_TARGET:.0f} MiB: {_verdict(0 < rss < RSS_TARGET)})"
            )
    if setting != "realistic" and out:
        out.insert(0, "- (the targets are set for the realistic server; shown for reference)")
    return out
