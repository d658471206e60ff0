"""What a benchmark run measures, and about how long it will take.

`plan` turns the chosen shapes, entry points and tools into cells: (shape, entry, tools), in
the order they are run; reference tools (entry `download`) get one cell per shape. `estimate`
guesses the run's seconds from earlier results where it has them (same shape, entry and tool;
a --quick run's work time scaled by size), else from a rough model of this machine at the
realistic server setting.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any

from bench_data import DataInfo
from bench_peers import TOOLS

__all__ = ["Cell", "estimate", "plan"]

MiB = 1 << 20
STARTUP_S = 2.0  # a fresh Python process importing polars, duckdb and the tool; a client
FIXED_S = 0.3  # work that does not grow with the data (clients, listing, first bytes)
# Rough MiB/s of each tool's whole work (download + parse [+ write]) at the realistic setting,
# and seconds per object beyond the bytes; used only when no earlier result is at hand.
RATE = {"s3fs": 70.0, "raw": 300.0, "dreambolt-download": 250.0}
DEFAULT_RATE = 100.0
PER_OBJECT_S = {"dreambolt": 0.003, "s3fs": 0.01, "raw": 0.0015}
DEFAULT_PER_OBJECT_S = 0.004


@dataclass(frozen=True)
class Cell:
    """One shape at one entry point, measured by these tools (interleaved per run)."""

    shape: str
    entry: str  # "load", "ingest" or "download"
    tools: tuple[str, ...]


def plan(
    data: dict[str, DataInfo],
    entries: dict[str, tuple[str, ...]],
    wanted_entries: list[str],
    tools: list[str],
) -> list[Cell]:
    """Cells for every shape in `data` (entries[shape]: the entry points it supports)."""
    cells: list[Cell] = []
    for shape, info in data.items():
        many = info.objects > 1
        for entry in [*(e for e in entries[shape] if e in wanted_entries), "download"]:
            chosen = tuple(t for t in tools if TOOLS[t].runs_on(entry, many))
            if chosen:
                cells.append(Cell(shape, entry, chosen))
    return cells


def _model(tool: str, info: DataInfo) -> float:
    per_object = PER_OBJECT_S.get(tool, DEFAULT_PER_OBJECT_S) * info.objects
    return STARTUP_S + info.bytes / MiB / RATE.get(tool, DEFAULT_RATE) + per_object


def _scaled(runs: list[dict[str, Any]], then: int, now: int) -> float | None:
    """One run's process seconds, from earlier runs on `then` bytes, the work scaled to `now`."""
    done = [r for r in runs if r.get("seconds") is not None]
    if not done or then <= 0:
        return None
    overhead = statistics.median(float(r["process_seconds"]) - float(r["seconds"]) for r in done)
    work = statistics.median(float(r["seconds"]) for r in done)
    return overhead + FIXED_S + max(0.0, work - FIXED_S) * now / then


def estimate(
    cells: list[Cell],
    data: dict[str, DataInfo],
    runs: int,
    earlier: list[tuple[dict[str, Any], dict[str, int]]],
) -> float:
    """Seconds for `runs` runs of every cell. `earlier`: results of earlier runs, preferred
    first, each with the bytes of each shape it read (shape → entry → tool → runs as dicts with
    `seconds` and `process_seconds`): a --quick run's figures scale to the full run's sizes."""
    total = 0.0
    for cell in cells:
        for tool in cell.tools:
            one = None
            for results, sizes in earlier:
                found = results.get(cell.shape, {}).get(cell.entry, {}).get(tool, [])
                one = _scaled(found, sizes.get(cell.shape, 0), data[cell.shape].bytes)
                if one is not None:
                    break
            total += runs * (one if one is not None else _model(tool, data[cell.shape]))
    return total
