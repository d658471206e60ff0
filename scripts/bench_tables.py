"""The result tables of scripts/bench.py: medians, ratios to the best peer, and the targets."""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from bench_data import DataInfo
from bench_peers import REFERENCE_TOOLS, TOOLS

__all__ = ["MiB", "Run", "derived", "scenario_table"]

MiB = 1 << 20


@dataclass
class Run:
    """One measurement: wall time of the work, of the process, peak RSS; or why it failed."""

    seconds: float | None
    process_seconds: float
    rss_mib: float | None  # the child's VmHWM at the end of a successful run
    cpu_seconds: float  # the child's user + system CPU time, all threads
    error: str | None = None


def median(runs: list[Run]) -> float | None:
    times = [r.seconds for r in runs if r.seconds is not None]
    return statistics.median(times) if times and len(times) == len(runs) else None


def best_peer(runs: dict[str, list[Run]]) -> tuple[str, float] | None:
    peers = [
        (t, m)
        for t, r in runs.items()
        if t != "dreambolt" and t not in REFERENCE_TOOLS and (m := median(r)) is not None
    ]
    return min(peers, key=lambda p: p[1]) if peers else None


def scenario_table(runs: dict[str, list[Run]], unavailable: dict[str, str]) -> list[str]:
    best = best_peer(runs)
    lines = [
        "| tool | median s | min–max s | peak RSS MiB (max) | ÷ best peer | process s | CPU s |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]

    def order(tool: str) -> tuple[int, float]:
        rank = 0 if tool == "dreambolt" else 2 if tool in REFERENCE_TOOLS else 1
        return rank, median(runs[tool]) or float("inf")

    for tool in sorted(runs, key=order):
        label = TOOLS[tool].label + (" *(reference)*" if tool in REFERENCE_TOOLS else "")
        med = median(runs[tool])
        rss = max((r.rss_mib for r in runs[tool] if r.rss_mib is not None), default=0.0)
        process = statistics.median(r.process_seconds for r in runs[tool])
        cpu = statistics.median(r.cpu_seconds for r in runs[tool])
        if med is None:
            errors = "; ".join(sorted({r.error or "" for r in runs[tool] if r.error}))
            lines.append(f"| {label} | failed: {errors} | | | | {process:.2f} | {cpu:.2f} |")
            continue
        times = [r.seconds for r in runs[tool] if r.seconds is not None]
        ratio = f"{med / best[1]:.2f}" if best else "—"
        lines.append(
            f"| {label} | {med:.2f} | {min(times):.2f}–{max(times):.2f} | {rss:.0f} "
            f"| {ratio} | {process:.2f} | {cpu:.2f} |"
        )
    lines += [f"| {TOOLS[t].label} | {why} | | | | | |" for t, why in unavailable.items()]
    return lines


def derived(
    setting: str, res: dict[str, dict[str, list[Run]]], data: dict[str, DataInfo]
) -> list[str]:
    """Download phase vs the raw reader, S3 objects/s, and the issue's targets."""
    out: list[str] = []
    for scenario in ("s1", "s2"):
        runs = res.get(scenario, {})
        raw, dl = median(runs.get("raw", [])), median(runs.get("dreambolt-download", []))
        if raw and dl:
            size = data[scenario].bytes / MiB
            out.append(
                f"- {scenario.upper()} download phase: DreamBolt `S3Client.read` "
                f"{size / dl:.0f} MiB/s vs raw reader {size / raw:.0f} MiB/s = "
                f"**{100 * raw / dl:.0f}%** of raw throughput (target ≥ 85%)"
            )
    s3 = res.get("s3", {})
    ours, theirs = median(s3.get("dreambolt", [])), median(s3.get("s3fs", []))
    if ours and theirs:
        n = data["s3"].objects
        out.append(
            f"- S3 objects/s: DreamBolt **{n / ours:.0f}**, s3fs + polars {n / theirs:.0f}"
            f" → **{theirs / ours:.2f}×** (target ≥ 2×)"
        )
    for scenario in ("s1", "s2", "s3"):
        runs = res.get(scenario, {})
        best, ours = best_peer(runs), median(runs.get("dreambolt", []))
        if best and ours:
            verdict = "met" if ours <= best[1] else "NOT met"
            out.append(
                f"- {scenario.upper()}: DreamBolt ÷ best peer ({TOOLS[best[0]].label}) = "
                f"**{ours / best[1]:.2f}** (target ≤ 1.0 at realistic settings: "
                f"{verdict if setting == 'realistic' else 'n/a'})"
            )
    if "dreambolt" in res.get("s4", {}):
        rss = max((r.rss_mib or 0.0 for r in res["s4"]["dreambolt"]), default=0.0)
        out.append(
            f"- S4 DreamBolt peak RSS: **{rss:.0f} MiB** (target < 600 MiB: "
            f"{'met' if rss < 600 else 'NOT met'})"
        )
    return out
