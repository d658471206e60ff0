"""Delta destination under stress: racing writers and kill -9, then every source row once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from deltalake import DeltaTable
from motoserver import MotoServer
from test_two_writers import make_inputs

from dreambolt.sinks import FileWrite, open_sink
from dreambolt.sinks.delta import DeltaSink

FILES, ROWS = 30, 1000  # as test_two_writers' make_inputs makes them


def storage(moto: MotoServer) -> dict[str, str]:
    return {
        "AWS_ACCESS_KEY_ID": os.environ["AWS_ACCESS_KEY_ID"],
        "AWS_SECRET_ACCESS_KEY": os.environ["AWS_SECRET_ACCESS_KEY"],
        "AWS_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": moto.endpoint_url,
        "AWS_ALLOW_HTTP": "true",
    }


def state(uri: str, options: dict[str, str] | None = None) -> tuple[int, int, int, int]:
    """(rows, distinct ids, distinct files, active ledger rows of table t)."""
    frame = pl.read_delta(f"{uri}/t", storage_options=options)
    ledger = pl.read_delta(f"{uri}/_dreambolt_loads", storage_options=options)
    active = ledger.filter((pl.col("table_name") == "t") & pl.col("active")).height
    return frame.height, frame["id"].n_unique(), frame["_source_uri"].n_unique(), active


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "dreambolt", "ingest", *args, "--json", "--quiet"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )


def test_racing_cli_runs_on_one_s3_table_load_every_row_once(
    moto: MotoServer, bucket: str, tmp_path: Path
) -> None:
    source = tmp_path / "in"
    make_inputs(source)
    db = f"delta:s3://{bucket}/lake"
    # Different selections of the same files: their batches (and markers) differ, so only
    # the data table's lineage, checked on the snapshot each commit writes on, keeps them once.
    selections = [[str(source)], [str(source / "0*.csv")], [str(source)], [str(source / "*1.csv")]]
    runs = [
        cli(*picked, "--db", db, "--table", "t", "--endpoint-url", moto.endpoint_url)
        for picked in selections
    ]
    outputs = [run.communicate(timeout=300) for run in runs]
    for run, (out, err) in zip(runs, outputs, strict=True):
        assert run.returncode == 0, err
        report = json.loads(out)
        assert {f["status"] for f in report["files"]} <= {"loaded", "unchanged"}
    loaded = [
        f["uri"] for out, _ in outputs for f in json.loads(out)["files"] if f["status"] == "loaded"
    ]
    assert sorted(loaded) == sorted(set(loaded)) and len(loaded) == FILES  # each file once
    assert state(f"s3://{bucket}/lake", storage(moto)) == (
        FILES * ROWS,
        FILES * ROWS,
        FILES,
        FILES,
    )


def test_a_writer_that_loses_the_race_finds_the_files_loaded(tmp_path: Path) -> None:
    """Deterministic: B commits the same files after A looked at its snapshot, before A
    writes; A's commit is refused, A looks again and reports them unchanged."""
    db = f"delta:{tmp_path / 'lake'}"
    frame = pl.DataFrame({"id": list(range(5))})
    files = [FileWrite(f"s3://src/{i}.csv", f"e{i}", 10, frame) for i in range(3)]
    a, b = open_sink(db), open_sink(db)
    assert isinstance(a, DeltaSink)
    decide = a._decide
    raced: list[int] = []

    def decide_then_lose(batch: Any, snapshot: Any) -> None:
        decide(batch, snapshot)
        if not raced:
            raced.append(1)
            b.write_many("t", files[1:], run_id="b")  # other batch: another marker

    a._decide = decide_then_lose  # type: ignore[method-assign]
    written = a.write_many("t", files, run_id="a")
    assert raced
    assert [w.unchanged for w in written] == [False, True, True]
    assert state(str(tmp_path / "lake")) == (15, 5, 3, 3)


KILL_AT_LEDGER = """
import asyncio, os, signal, sys
from dreambolt import Ingester
from dreambolt.sinks import deltaledger

def die(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)

deltaledger.DeltaLedger.replace = die
deltaledger.DeltaLedger.append = die

async def main():
    async with Ingester(db=sys.argv[1]) as ing:
        await ing.ingest(sys.argv[2], table="t")

asyncio.run(main())
"""


def test_kill_between_data_and_ledger_then_rerun_loads_every_row_once(tmp_path: Path) -> None:
    source = tmp_path / "in"
    make_inputs(source, files=8, rows=50)
    db = f"delta:{tmp_path / 'lake'}"
    script = tmp_path / "kill.py"
    script.write_text(textwrap.dedent(KILL_AT_LEDGER))
    done = subprocess.run([sys.executable, str(script), db, str(source)], timeout=120)
    assert done.returncode == -signal.SIGKILL
    assert pl.read_delta(str(tmp_path / "lake" / "t")).height == 400  # the data committed
    rerun = cli(str(source), "--db", db, "--table", "t")
    out, err = rerun.communicate(timeout=120)
    assert rerun.returncode == 0, err
    assert {f["status"] for f in json.loads(out)["files"]} == {"unchanged"}
    assert state(str(tmp_path / "lake")) == (400, 400, 8, 8)


def test_kill_9_mid_run_then_rerun_loads_every_row_once_and_vacuum_clears_orphans(
    tmp_path: Path,
) -> None:
    source = tmp_path / "in"
    make_inputs(source, files=300, rows=400)
    lake = tmp_path / "lake"
    db = f"delta:{lake}"
    log = lake / "t" / "_delta_log"
    # Killed once the table exists (so mid-way through its first data commit), then killed
    # again a while into the next run: wherever the kill lands, the re-run makes it whole.
    for wait_for_table, delay in ((True, 0.0), (False, 1.5)):
        run = subprocess.Popen(
            [sys.executable, "-m", "dreambolt", "ingest", str(source), "--db", db],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while wait_for_table and run.poll() is None and time.monotonic() < deadline:
            if log.exists() and any(log.glob("*.json")):
                break
            time.sleep(0.005)
        time.sleep(delay)
        run.send_signal(signal.SIGKILL)
        run.wait(timeout=60)
    final = cli(str(source), "--db", db, "--table", "t")
    _, err = final.communicate(timeout=300)
    assert final.returncode == 0, err
    assert state(str(lake)) == (300 * 400, 300 * 400, 300, 300)
    table = DeltaTable(str(lake / "t"))
    live = {Path(u).name for u in table.file_uris()}
    table.vacuum(retention_hours=0, enforce_retention_duration=False, dry_run=False)
    assert {p.name for p in (lake / "t").rglob("*.parquet")} == live  # nothing live removed
    assert pl.read_delta(str(lake / "t")).height == 300 * 400


@pytest.mark.parametrize("workers", [4])
def test_processes_writing_one_local_table_load_every_row_once(
    tmp_path: Path, workers: int
) -> None:
    source = tmp_path / "in"
    make_inputs(source)
    db = f"delta:{tmp_path / 'lake'}"
    runs = [cli(str(source), "--db", db, "--table", "t") for _ in range(workers)]
    for run in runs:
        _, err = run.communicate(timeout=300)
        assert run.returncode == 0, err
    assert state(str(tmp_path / "lake")) == (FILES * ROWS, FILES * ROWS, FILES, FILES)
