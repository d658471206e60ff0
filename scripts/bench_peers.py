"""Benchmark workloads: the same work done by DreamBolt and by each tool a user might pick instead.

This module is the registry of tools and the runner that times one of them; the workloads
themselves are in bench_tools.py and bench_tools_ranged.py. Run by `scripts/bench.py`, one
measurement per fresh process:

    python scripts/bench_peers.py '{"tool": "s3fs", "entry": "load", ...}'

The tool's libraries are imported before the clock starts; the clock covers creating the
client, every request, parsing and (ingest) writing the DuckDB table, closed so committed. CPU
is the process's CPU time (all threads) over the same span. The result is checked afterwards
(rows and columns of the frame or table, bytes read) so no tool wins by doing less. The last
line of stdout is `BENCH-RESULT {json}`.
"""

from __future__ import annotations

import importlib
import json
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from bench_tools import (
    KEY,
    SECRET,
    Ctx,
    Work,
    boto3_polars,
    dreambolt,
    dreambolt_download,
    duckdb_httpfs,
    polars_native,
    polars_read,
)
from bench_tools_ranged import obstore_polars, raw_reader, s3fs_polars

__all__ = ["DEFAULT_TOOLS", "KEY", "REFERENCE_TOOLS", "SECRET", "TOOLS", "Tool", "main"]

MARKER = "BENCH-RESULT "
ENTRIES = ("load", "ingest")


@dataclass(frozen=True)
class Tool:
    """A contender: its label, the modules it imports before the clock, its work; the entry
    points it runs (`download`: a reference row, run once per shape), whether it reads one
    object, many or both, and environment variables set for its child process only."""

    label: str
    imports: tuple[str, ...]
    work: Work
    entries: tuple[str, ...] = ENTRIES
    single: bool = True
    many: bool = True
    env: dict[str, str] = field(default_factory=dict)

    def runs_on(self, entry: str, many: bool) -> bool:
        return entry in self.entries and (self.many if many else self.single)


_DB = ("polars", "duckdb")
# polars' documented cloud knob: requests in flight (set per child, never in this process).
POLARS_KNOB = "POLARS_CONCURRENCY_BUDGET"


def polars_env(in_flight: int) -> dict[str, str]:
    return {POLARS_KNOB: str(in_flight)}


TOOLS: dict[str, Tool] = {
    "dreambolt": Tool("DreamBolt", ("dreambolt", *_DB), dreambolt),
    "polars": Tool(
        "polars scan_* s3:// (concurrency budget = N)", _DB, polars_native, env={POLARS_KNOB: ""}
    ),
    "boto3": Tool("boto3 (TransferConfig / N threads) + polars", ("boto3", *_DB), boto3_polars),
    "obstore": Tool("obstore + polars (N in flight)", ("obstore", *_DB), obstore_polars),
    "s3fs": Tool("s3fs cat_ranges / cat (batch N) + polars", ("s3fs", *_DB), s3fs_polars),
    "duckdb-httpfs": Tool("DuckDB httpfs", _DB, duckdb_httpfs),
    "polars-default": Tool("polars scan_* s3:// (default settings)", _DB, polars_native),
    "polars-read": Tool(
        "polars read_* s3:// (concurrency budget = N)", _DB, polars_read, env={POLARS_KNOB: ""}
    ),
    "raw": Tool(
        "raw reader: aiohttp GETs, N in flight, no parsing",
        ("aiohttp",),
        raw_reader,
        entries=("download",),
    ),
    "dreambolt-download": Tool(
        "DreamBolt download phase (S3Client.read, concurrency N)",
        ("dreambolt",),
        dreambolt_download,
        entries=("download",),
        many=False,
    ),
}
REFERENCE_TOOLS = ("raw", "dreambolt-download")  # not peers: they do not parse or write
# The default run: everything but the variants that only repeat a peer with other settings.
DEFAULT_TOOLS = tuple(t for t in TOOLS if t not in ("polars-default", "polars-read"))


def tool_env(name: str, in_flight: int) -> dict[str, str]:
    """The tool's own environment variables, an empty value standing for N (in flight)."""
    return {k: v or str(in_flight) for k, v in TOOLS[name].env.items()}


def _peak_rss_kib() -> int:
    """This process's peak RSS (VmHWM): unlike ru_maxrss it starts afresh at exec, so the
    parent's memory at fork time is not counted."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise RuntimeError("no VmHWM in /proc/self/status")


def _shape_of(ctx: Ctx, result: Any) -> tuple[int, int]:
    """(rows, columns) of the frame returned or of table t."""
    if ctx.entry == "load":
        return int(result.height), int(result.width)
    import duckdb

    con = duckdb.connect(ctx.db, read_only=True)
    try:
        row = con.execute("SELECT count(*) FROM t").fetchone()
        columns = len(con.execute("SELECT * FROM t LIMIT 0").description or ())
    finally:
        con.close()
    return (int(row[0]) if row else 0), columns


def check(ctx: Ctx, result: Any, spec: dict[str, Any]) -> dict[str, int]:
    if ctx.entry == "download":
        if result != spec["bytes"]:
            raise RuntimeError(f"read {result} bytes, expected {spec['bytes']}")
        return {"bytes": int(result)}
    rows, columns = _shape_of(ctx, result)
    if rows != spec["rows"] or columns < spec["columns"]:
        raise RuntimeError(
            f"got {rows} rows × {columns} columns, expected {spec['rows']} × {spec['columns']}"
        )
    return {"rows": rows, "columns": columns}


def main(argv: list[str]) -> int:
    spec = json.loads(argv[1])
    tool = TOOLS[spec["tool"]]
    ctx = Ctx(**{k: spec[k] for k in Ctx.__dataclass_fields__})
    for module in tool.imports:
        imported = importlib.import_module(module)
        # A package that imports lazily (PEP 562, as `dreambolt` does for a fast CLI) is
        # imported whole here too, so no tool pays its imports on the clock.
        for name in getattr(imported, "__all__", ()):
            getattr(imported, name)
    cpu, began = time.process_time(), time.perf_counter()
    result = tool.work(ctx)
    seconds, cpu = time.perf_counter() - began, time.process_time() - cpu
    outcome = {"seconds": seconds, "cpu": cpu, "rss_kib": _peak_rss_kib()}
    print(MARKER + json.dumps(outcome | check(ctx, result, spec)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
