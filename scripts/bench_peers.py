"""Benchmark workloads: the same work done by DreamBolt and by each tool a user might pick instead.

This module is the registry of tools and the runner that times one of them; the workloads
themselves are in bench_tools.py and bench_tools_ranged.py. Run by `scripts/bench.py`, one
measurement per fresh process:

    python scripts/bench_peers.py '{"tool": "s3fs", "scenario": "s2", ...}'

The tool's libraries are imported before the clock starts; the clock covers creating the
client, every request, parsing and writing the DuckDB table (closed, so committed). The result
is checked afterwards (rows in the table or frame, bytes read) so no tool wins by doing less.
The last line of stdout is `BENCH-RESULT {json}`.

Scenarios: s1 one Parquet object → polars DataFrame; s2 one CSV object → DuckDB table;
s3 many small CSV objects under a prefix → one DuckDB table; s4 one big CSV → DuckDB table.
"""

from __future__ import annotations

import importlib
import json
import sys
import time
from dataclasses import dataclass
from typing import Any

from bench_tools import (
    KEY,
    SECRET,
    Ctx,
    Work,
    boto3_polars,
    boto3_threads,
    dreambolt,
    dreambolt_download,
    duckdb_httpfs,
    polars_native,
    s3fs_polars,
)
from bench_tools_ranged import obstore_polars, raw_reader

__all__ = ["KEY", "REFERENCE_TOOLS", "SECRET", "TOOLS", "main"]

MARKER = "BENCH-RESULT "

# --- the registry and the runner ------------------------------------------------------------


@dataclass(frozen=True)
class Tool:
    """A contender: its label, the modules it imports before the clock, its work per scenario."""

    label: str
    imports: tuple[str, ...]
    work: Work
    scenarios: tuple[str, ...] = ("s1", "s2", "s3", "s4")


_DB = ("polars", "duckdb")
TOOLS: dict[str, Tool] = {
    "dreambolt": Tool("DreamBolt", ("dreambolt", *_DB), dreambolt),
    "s3fs": Tool("s3fs + polars", ("s3fs", *_DB), s3fs_polars),
    "boto3": Tool("boto3 download_fileobj + polars", ("boto3", *_DB), boto3_polars),
    "boto3-threads": Tool(
        "boto3 download_fileobj + polars (16 threads)", ("boto3", *_DB), boto3_threads, ("s3",)
    ),
    "polars": Tool("polars native s3://", _DB, polars_native),
    "obstore": Tool("obstore + polars (async, 16 in flight)", ("obstore", *_DB), obstore_polars),
    "duckdb-httpfs": Tool("DuckDB httpfs", _DB, duckdb_httpfs),
    "raw": Tool(
        "raw reader: aiohttp GETs, no parsing", ("aiohttp",), raw_reader, ("s1", "s2", "s3")
    ),
    "dreambolt-download": Tool(
        "DreamBolt download phase (S3Client.read)", ("dreambolt",), dreambolt_download, ("s1", "s2")
    ),
}
REFERENCE_TOOLS = ("raw", "dreambolt-download")  # not peers: they do not parse or write


def _peak_rss_kib() -> int:
    """This process's peak RSS (VmHWM): unlike ru_maxrss it starts afresh at exec, so the
    parent's memory at fork time is not counted."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise RuntimeError("no VmHWM in /proc/self/status")


def _check(ctx: Ctx, result: Any, expect_rows: int, expect_bytes: int) -> dict[str, int]:
    if isinstance(result, int):
        if result != expect_bytes:
            raise RuntimeError(f"read {result} bytes, expected {expect_bytes}")
        return {"bytes": result}
    if ctx.scenario == "s1":
        rows = int(result.height)
    else:
        import duckdb

        con = duckdb.connect(ctx.db, read_only=True)
        try:
            row = con.execute("SELECT count(*) FROM t").fetchone()
        finally:
            con.close()
        rows = int(row[0]) if row else 0
    if rows != expect_rows:
        raise RuntimeError(f"got {rows} rows, expected {expect_rows}")
    return {"rows": rows}


def main(argv: list[str]) -> int:
    spec = json.loads(argv[1])
    tool = TOOLS[spec["tool"]]
    ctx = Ctx(spec["scenario"], spec["endpoint"], spec["bucket"], spec["path"], spec["db"])
    for module in tool.imports:
        imported = importlib.import_module(module)
        # A package that imports lazily (PEP 562, as `dreambolt` does for a fast CLI) is
        # imported whole here too, so no tool pays its imports on the clock.
        for name in getattr(imported, "__all__", ()):
            getattr(imported, name)
    began = time.perf_counter()
    result = tool.work(ctx)
    outcome = {
        "seconds": time.perf_counter() - began,
        "rss_kib": _peak_rss_kib(),
        **_check(ctx, result, spec["rows"], spec["bytes"]),
    }
    print(MARKER + json.dumps(outcome), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
