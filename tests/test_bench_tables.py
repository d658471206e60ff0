"""The benchmark's table math (scripts/bench_tables.py) and run plan (scripts/bench_plan.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

from bench_data import FULL, DataInfo
from bench_plan import Cell, estimate, plan
from bench_tables import Run, best_peer, cpu_per_object, median, summary, targets

MiB = 1 << 20


def run(seconds: float | None, cpu: float | None = None, rss: float = 100.0) -> Run:
    return Run(seconds, (seconds or 0) + 1, rss if seconds else None, 9.0, None, cpu)


def info(shape: str, objects: int = 1, size: int = 256 * MiB) -> DataInfo:
    path = f"{shape}/" if objects > 1 else f"{shape}.csv"
    uri_path = f"{path}*.csv" if objects > 1 else path
    return DataInfo(shape, "b", path, uri_path, "csv", objects, size, 1000, 5, "spec")


def test_median_needs_every_run() -> None:
    assert median([run(3.0), run(1.0), run(2.0)]) == 2.0
    assert median([run(1.0), run(None)]) is None  # a failed run: no median at all
    assert median([]) is None


def test_best_peer_leaves_out_dreambolt_and_references() -> None:
    runs = {
        "dreambolt": [run(0.5)],
        "raw": [run(0.1)],
        "dreambolt-download": [run(0.2)],
        "polars": [run(2.0)],
        "boto3": [run(1.5)],
        "obstore": [run(None)],
    }
    assert best_peer(runs) == ("boto3", 1.5)
    assert best_peer({"dreambolt": [run(1.0)]}) is None


def test_cpu_per_object_in_ms() -> None:
    assert cpu_per_object([run(1.0, 0.5), run(1.0, 0.7), run(1.0, 0.6)], 100) == pytest.approx(6.0)
    assert cpu_per_object([run(1.0, None)], 100) is None
    assert cpu_per_object([run(1.0, 0.5)], 0) is None


def test_summary_ratio_and_verdict() -> None:
    cells = {
        "csv-narrow": {
            "load": {"dreambolt": [run(0.8)], "polars": [run(1.0)], "boto3": [run(2.0)]},
            "ingest": {"dreambolt": [run(1.8)], "boto3": [run(2.0)]},
            "download": {"raw": [run(0.1)]},
        }
    }
    lines = summary(cells, {"csv-narrow": info("csv-narrow")})
    assert len(lines) == 4  # header, rule, load, ingest: no row for the reference cell
    assert "| 0.80 | met |" in lines[2]
    assert "| 0.90 | **NOT met** |" in lines[3]


def test_targets_cpu_ratio_download_share_and_rss() -> None:
    data = {"small": info("small", objects=200, size=6 * MiB), "big": info("big", size=1 << 30)}
    cells = {
        "small": {"load": {"dreambolt": [run(1.0, 0.6)], "polars": [run(1.0, 0.3)]}},
        "big": {
            "ingest": {"dreambolt": [run(5.0, rss=550.0), run(5.0, rss=650.0)]},
            "download": {"raw": [run(2.0)], "dreambolt-download": [run(2.5)]},
        },
    }
    text = "\n".join(targets("realistic", cells, data))
    assert "DreamBolt **3.00 ms**, polars native 1.50 ms → **2.00×**" in text
    assert "**80%** (target ≥ 90%: **NOT met**)" in text
    assert "peak RSS: **650 MiB** (target < 600 MiB: **NOT met**)" in text  # the worst run


def test_plan_gives_references_one_cell_per_shape() -> None:
    data = {"csv-wide": info("csv-wide"), "small-4k": info("small-4k", objects=1000)}
    entries = {"csv-wide": FULL["csv-wide"].entries, "small-4k": FULL["small-4k"].entries}
    tools = ["dreambolt", "polars", "raw", "dreambolt-download"]
    cells = plan(data, entries, ["ingest"], tools)
    assert cells == [
        Cell("csv-wide", "ingest", ("dreambolt", "polars")),
        Cell("csv-wide", "download", ("raw", "dreambolt-download")),
        Cell("small-4k", "ingest", ("dreambolt", "polars")),
        Cell("small-4k", "download", ("raw",)),  # S3Client.read takes one object
    ]
    # csv-1g and pq-1g are measured into DuckDB only
    assert FULL["csv-1g"].entries == ("ingest",) == FULL["pq-1g"].entries


def test_estimate_scales_earlier_results_by_size() -> None:
    data = {"csv-wide": info("csv-wide", size=256 * MiB)}
    cells = [Cell("csv-wide", "load", ("dreambolt", "polars"))]
    quick = {"csv-wide": {"load": {"dreambolt": [{"seconds": 1.3, "process_seconds": 3.3}]}}}
    modelled = estimate(cells, data, 1, [])
    mixed = estimate(cells, data, 3, [({}, {}), (quick, {"csv-wide": 32 * MiB})])
    polars_once = modelled - estimate([Cell("csv-wide", "load", ("dreambolt",))], data, 1, [])
    # 2 s outside the work, 0.3 s fixed, the other 1.0 s grows 8 times with the data
    assert mixed == pytest.approx(3 * (2.0 + 0.3 + 8.0 + polars_once))
