"""scripts/bench_delta.py on a tiny shape: real `dreambolt ingest` runs from the bench server
into DuckDB and a local Delta root, and from moto into a Delta root on moto."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from motoserver import MotoServer

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

import bench_data
from bench_data import DataInfo, Shape
from bench_delta import (
    Endpoints,
    Result,
    measure,
    parse_args,
    report,
    run_ingest,
    stage_on_moto,
    table,
)
from bench_processes import bench_server, child_env

TINY = Shape("tiny", "csv", "mixed", 4 << 10, count=5)


def cells(markdown: str, shape: str, leg: str) -> list[str]:
    """The cells of the table row for (shape, leg)."""
    rows = [line for line in markdown.splitlines() if line.startswith(f"| {shape} | {leg} |")]
    assert len(rows) == 1, markdown
    return [cell.strip() for cell in rows[0].strip("|").split("|")]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, DataInfo, str]]:
    """A tiny shape (5 small CSV objects) served by the bench server: root, info, endpoint."""
    root = tmp_path_factory.mktemp("bench-root")
    info = bench_data.ensure(root, f"bd-{uuid.uuid4().hex[:8]}", {"tiny": TINY})["tiny"]
    with bench_server(root, "unthrottled", tmp_path_factory.mktemp("logs")) as endpoint:
        yield root, info, endpoint


def test_duckdb_and_local_delta(tiny: tuple[Path, DataInfo, str], tmp_path: Path) -> None:
    _, info, endpoint = tiny
    assert info.objects == 5 and info.rows > 0
    results = measure({"tiny": info}, Endpoints(endpoint), 1, tmp_path, ("duckdb", "delta-local"))

    (duck,) = results["tiny"]["duckdb"]
    (delta,) = results["tiny"]["delta-local"]
    for run in (duck, delta):
        assert run.error is None
        assert run.rows == run.table_rows == info.rows
        assert run.wall > 0 and run.cpu > 0 and run.rss_mib > 0
    assert duck.data_commits is None and duck.ledger_commits is None
    assert delta.data_commits is not None and delta.data_commits >= 2  # creation + a batch
    assert delta.ledger_commits is not None and delta.ledger_commits > 0
    assert list(tmp_path.iterdir()) == []  # every run's destination was removed

    markdown = table(results, {"tiny": info})
    row = cells(markdown, "tiny", "delta-local")
    assert row[6] == f"{info.rows:,}"  # rows, checked against the data
    assert int(row[7]) == delta.data_commits and int(row[8]) == delta.ledger_commits
    assert row[3].endswith("×")  # ÷ DuckDB from the same source
    assert cells(markdown, "tiny", "duckdb")[7] == "–"  # no commits for DuckDB
    context = {
        "command": "x",
        "date": "d",
        "took": "1 min",
        "revision": "r",
        "load": "l",
        "floor": "1",
    }
    assert markdown in report(results, {"tiny": info}, context | {"runs": "1"})


def test_delta_on_moto(tiny: tuple[Path, DataInfo, str], tmp_path: Path, moto: MotoServer) -> None:
    root, info, endpoint = tiny
    lake = f"lake-{uuid.uuid4().hex[:8]}"
    endpoints = Endpoints(endpoint, moto.endpoint_url, lake)
    stage_on_moto(root, [info], endpoints)
    results = measure({"tiny": info}, endpoints, 1, tmp_path, ("delta-s3",))

    (run,) = results["tiny"]["delta-s3"]
    assert run.error is None
    assert run.rows == run.table_rows == info.rows
    assert run.data_commits is not None and run.data_commits >= 2
    assert run.ledger_commits is not None and run.ledger_commits > 0
    s3: Any = moto.client("s3")
    try:
        assert s3.list_objects_v2(Bucket=lake).get("KeyCount") == 0  # the run's root dropped
    finally:
        s3.close()


def test_a_failed_run_is_reported(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-folder" / "lake"
    cmd = [str(Path(sys.executable).parent / "dreambolt"), "ingest", str(tmp_path / "*.csv")]
    cmd += ["--db", f"delta:{missing}", "--json"]
    run = run_ingest(cmd, env=child_env(), cwd=tmp_path, timeout=120)
    assert run.error is not None and run.error.startswith("exit 3:"), run.error
    info = DataInfo("s", "b", "p", "p", "csv", 1, 1, 10, 1, "spec")
    row = cells(table({"s": {"delta-local": [run]}}, {"s": info}), "s", "delta-local")
    assert row[2] == run.error


def test_a_hung_run_is_killed_at_its_deadline(tmp_path: Path) -> None:
    hang = [sys.executable, "-c", "import time; time.sleep(600)"]
    run = run_ingest(hang, env=child_env(), cwd=tmp_path, timeout=0.2)
    assert run.error == "timed out after 0s"


def test_rows_that_do_not_match_the_data_are_flagged() -> None:
    info = DataInfo("s", "b", "p", "p", "csv", 1, 1, 10, 1, "spec")
    runs = [Result(1.0, 1.0, 100.0, rows=10, table_rows=9, data_commits=2, ledger_commits=1)]
    row = cells(table({"s": {"delta-local": runs}}, {"s": info}), "s", "delta-local")
    assert row[6].startswith("**") and "9" in row[6]
    assert row[9] == "0.500"  # wall ÷ data commits


def test_arguments() -> None:
    args = parse_args(["--shapes", "small-4k,csv-narrow", "--runs", "2"])
    assert args.shapes == ["small-4k", "csv-narrow"] and args.runs == 2
    assert parse_args([]).shapes == ["small-4k", "small-32k", "csv-narrow", "pq-num-snappy-4rg"]
    with pytest.raises(SystemExit):
        parse_args(["--shapes", "nope"])
    with pytest.raises(SystemExit):
        parse_args(["--runs", "0"])
