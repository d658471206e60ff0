"""scripts/bench_cluster.py on a tiny shape: real `dreambolt ingest` runs from the bench server
into a local Delta root, in one process and over local Dask clusters of 1 and 2 workers."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

import bench_data
from bench_cluster import _server_process, efficiency, failures, parse_args, reading, report, table
from bench_cluster_measure import (
    SINGLE,
    Result,
    check_report,
    legs_of,
    measure,
    run_ingest,
    shape_of,
)
from bench_data import DataInfo
from bench_processes import bench_server, child_env

TINY = shape_of("12x4K")
LEGS = legs_of([1, 2])


def cells(markdown: str, shape: str, leg: str) -> list[str]:
    """The cells of the table row for (shape, leg)."""
    rows = [line for line in markdown.splitlines() if line.startswith(f"| {shape} | {leg} |")]
    assert len(rows) == 1, markdown
    return [cell.strip() for cell in rows[0].strip("|").split("|")]


def info_of(objects: int = 4, rows: int = 40, size: int = 4000) -> DataInfo:
    return DataInfo("s", "b", "p/", "p/*.csv", "csv", objects, size, rows, 3, "spec")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DataInfo, str]]:
    """12 CSV objects of 4 KiB served by the bench server: their info and the endpoint."""
    root = tmp_path_factory.mktemp("bench-root")
    info = bench_data.ensure(root, f"bc-{uuid.uuid4().hex[:8]}", {TINY.name: TINY})[TINY.name]
    with bench_server(root, "unthrottled", tmp_path_factory.mktemp("logs")) as endpoint:
        yield info, endpoint


def test_single_and_workers(tiny: tuple[DataInfo, str], tmp_path: Path) -> None:
    info, endpoint = tiny
    assert info.objects == 12 and info.rows > 0 and info.shape == "s6-12x4k"
    server = _server_process()
    assert server is not None
    results = measure({info.shape: info}, endpoint, 1, tmp_path, LEGS, timeout=120, server=server)
    assert failures(results) == []
    assert list(tmp_path.iterdir()) == []  # every run's Delta root was removed

    runs = {leg: results[info.shape][leg][0] for leg in LEGS}
    for leg, run in runs.items():
        assert run.error is None, leg
        assert run.rows == run.table_rows == info.rows
        assert run.ingest_s is not None and 0 < run.ingest_s < run.wall
        assert run.data_commits is not None and run.data_commits >= 2  # creation + a batch
        assert run.ledger_commits is not None and run.ledger_commits >= 1
        assert run.wall > 0 and run.cpu_server is not None and run.cpu_server >= 0
        assert run.cpu_driver is not None and run.cpu_tree is not None
        assert 0 < run.cpu_driver <= run.cpu_tree
        assert run.rss_driver_mib is not None and run.rss_driver_mib > 50
        assert run.rss_tree_mib is not None and run.rss_tree_mib > 50
        assert run.machine_busy is not None and run.machine_busy > 0
    assert runs[SINGLE].processes == 1
    for n in (1, 2):  # the driver and its N workers (and multiprocessing's resource tracker)
        run = runs[f"--workers {n}"]
        assert run.processes is not None and run.processes >= 1 + n
        assert run.cpu_tree is not None and run.cpu_driver is not None
        assert run.cpu_tree > run.cpu_driver  # the workers' CPU is counted
        assert run.cpu_wait4 > run.cpu_driver  # ... and the driver waited for them

    markdown = table(results, {info.shape: info})
    single = cells(markdown, info.shape, SINGLE)
    assert float(single[2]) == pytest.approx(runs[SINGLE].wall, abs=0.01)
    assert 0 < float(single[3]) < float(single[2])  # the report's seconds, within the wall
    assert float(single[4]) > 0 and float(single[5].replace(",", "")) > 0  # MB/s, objects/s
    assert single[6] == "1.00" and single[7] == single[8] == "–"  # no efficiency for one process
    assert single[18] == str(runs[SINGLE].data_commits)
    assert single[20] == f"{info.rows:,}"
    assert cells(markdown, info.shape, "--workers 1")[7:9] == ["1.00", "1.00"]
    two = cells(markdown, info.shape, "--workers 2")
    assert 0 < float(two[7]) < 2 and 0 < float(two[8]) < 2 and int(two[17]) >= 3
    assert all(len(cells(markdown, info.shape, leg)) == 22 for leg in LEGS)
    context = {"command": "x", "date": "d", "took": "1 min", "revision": "r", "load": "l"}
    text = report(results, {info.shape: info}, context | {"runs": "1"})
    assert markdown in text and f"- `{info.shape}`: one process" in text  # the reading
    assert "the driver reaps its Dask worker processes" in text  # wait4 holds their CPU


def test_a_report_missing_a_file_or_rows_fails() -> None:
    info = info_of()
    files = [{"uri": f"s3://b/p/{n}.csv", "status": "loaded", "rows": 10} for n in range(4)]
    good = {"files": files, "totals": {"rows": 40, "loaded": 4}}
    assert check_report(good, info) is None
    short = {"files": files[:3], "totals": {"rows": 30, "loaded": 3}}
    assert "3 of 4 objects loaded" in (check_report(short, info) or "")
    failed = {"files": [*files[:3], {**files[3], "status": "failed"}], "totals": good["totals"]}
    assert "3 of 4" in (check_report(failed, info) or "")
    twice = {"files": [*files[:3], files[0]], "totals": good["totals"]}
    assert "twice" in (check_report(twice, info) or "")
    rows = {"files": [*files[:3], {**files[3], "rows": 9}], "totals": good["totals"]}
    assert "rows other than 10" in (check_report(rows, info) or "")


def test_failed_runs_are_shown_and_counted() -> None:
    info = info_of()
    ok = Result(2.0, 1.0, 0.5, 1.0, 0.1, 100.0, 100.0, 1, 1.5, 1.8, 40, 40, 2, 1)
    bad = Result(1.0, 1.0, error="the table holds 39 rows, not 40")
    results = {"s": {SINGLE: [ok], "--workers 1": [bad]}}
    row = cells(table(results, {"s": info}), "s", "--workers 1")
    assert row[2] == "**failed: the table holds 39 rows, not 40**" and len(row) == 22
    assert failures(results) == ["s --workers 1 run 1: the table holds 39 rows, not 40"]


def test_efficiency() -> None:
    info = info_of()
    one = [Result(4.0, 1.0)]
    legs = {SINGLE: [Result(3.0, 1.0)], "--workers 1": one, "--workers 2": [Result(2.5, 1.0)]}
    assert efficiency("--workers 2", legs, info) == pytest.approx(4.0 / (2 * 2.5))
    assert efficiency("--workers 1", legs, info) == pytest.approx(1.0)
    assert efficiency(SINGLE, legs, info) is None
    assert efficiency("--workers 2", {"--workers 2": legs["--workers 2"]}, info) is None


def test_the_reading_says_where_the_target_is_missed() -> None:
    info = info_of()

    def ran(wall: float) -> list[Result]:
        return [Result(wall, 2.0, cpu_tree=2.0, cpu_server=0.2, machine_busy=2.0, ingest_s=1.0)]

    legs = {SINGLE: ran(3.0), "--workers 1": ran(4.0), "--workers 2": ran(3.0)}  # 4/(2×3)
    text = reading({"s": legs}, {"s": info})
    assert "**not met** (`--workers 2` 0.67, 0.50 by ingest s)" in text
    assert "bound by CPU" in text  # 1.3 objects/s: far below what latency allows
    legs["--workers 2"] = ran(2.2)  # 4 / (2 × 2.2): 0.91
    assert "met (`--workers 2` 0.91, 0.50 by ingest s)" in reading({"s": legs}, {"s": info})


def test_a_hung_run_is_killed_at_its_deadline(tmp_path: Path) -> None:
    hang = [sys.executable, "-c", "import time; time.sleep(600)"]
    run, found = run_ingest(hang, env=child_env(), cwd=tmp_path, timeout=0.2)
    assert run.error == "timed out after 0s" and found is None


def test_shapes_and_arguments() -> None:
    assert shape_of("2000x1M").count == 2000 and shape_of("2000x1M").target_bytes == 1 << 20
    assert shape_of("20000x32k").name == "s6-20000x32k"
    assert shape_of("12x4096").name == "s6-12x4k"
    args = parse_args([])
    assert [s.name for s in args.shapes] == ["s6-2000x1m", "s6-20000x32k"]
    assert args.workers == [1, 2, 4] and args.runs == 3
    assert legs_of(args.workers) == [SINGLE, "--workers 1", "--workers 2", "--workers 4"]
    args = parse_args(["--shapes", "12x4K", "--workers", "2", "--runs", "1"])
    assert [s.name for s in args.shapes] == ["s6-12x4k"] and args.workers == [2]
    for bad in (["--shapes", "1x4K"], ["--shapes", "12"], ["--workers", "0"], ["--runs", "0"]):
        with pytest.raises(SystemExit):
            parse_args(bad)
