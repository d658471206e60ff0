"""Exactly once with two writers on one table: two Ingesters in one process, two processes."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from dreambolt import Ingester

FILES, ROWS = 30, 1000


def make_inputs(folder: Path, files: int = FILES, rows: int = ROWS) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(files):
        body = "id,v\n" + "".join(f"{i * rows + r},{r}\n" for r in range(rows))
        (folder / f"{i:03d}.csv").write_text(body)


def table_state(db: Path) -> tuple[int, int, int, int]:
    """(rows, distinct ids, distinct files, active ledger rows)."""
    with duckdb.connect(str(db), read_only=True) as con:
        rows, ids, files = con.execute(
            "SELECT count(*), count(DISTINCT id), count(DISTINCT _source_uri) FROM t"
        ).fetchall()[0]
        active = con.execute(
            "SELECT count(*) FROM _dreambolt_loads WHERE table_name = 't' AND active"
        ).fetchall()[0][0]
    return rows, ids, files, active


@pytest.mark.parametrize("existing", [False, True])
async def test_two_ingesters_in_one_process_load_each_row_once(
    tmp_path: Path, existing: bool
) -> None:
    source = tmp_path / "in"
    make_inputs(source)
    for trial in range(4):
        db = tmp_path / f"two-{trial}.duckdb"
        if existing:  # a table that exists already, as in the reported case
            seed = tmp_path / f"seed-{trial}"
            make_inputs(seed, files=1, rows=1)
            (seed / "000.csv").write_text("id,v\n-1,0\n")
            async with Ingester(db=db) as first:
                await first.ingest(str(seed), table="t")
        async with Ingester(db=db) as a, Ingester(db=db) as b:
            ra, rb = await asyncio.gather(
                a.ingest(str(source), table="t"), b.ingest(str(source), table="t")
            )
        extra = 1 if existing else 0
        assert table_state(db) == (
            FILES * ROWS + extra,
            FILES * ROWS + extra,
            FILES + extra,
            FILES + extra,
        )
        for report in (ra, rb):
            assert report.count("failed") == 0 and report.count("skipped") == 0
        assert ra.count("loaded") + rb.count("loaded") == FILES  # each file loaded by one
        assert ra.count("unchanged") + rb.count("unchanged") == FILES


def test_two_processes_load_each_row_once(tmp_path: Path) -> None:
    source = tmp_path / "in"
    make_inputs(source)
    for trial in range(2):
        db = tmp_path / f"procs-{trial}.duckdb"
        command = [
            sys.executable,
            "-m",
            "dreambolt",
            "ingest",
            str(source),
            "--db",
            str(db),
            "--table",
            "t",
            "--json",
        ]
        procs = [
            subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for _ in range(2)
        ]
        outs = [p.communicate(timeout=180) for p in procs]
        for proc, (_, err) in zip(procs, outs, strict=True):
            assert proc.returncode == 0, err
        reports = [json.loads(out) for out, _ in outs]
        loaded = sum(r["totals"]["loaded"] for r in reports)
        unchanged = sum(r["totals"]["unchanged"] for r in reports)
        assert (loaded, unchanged) == (FILES, FILES)
        assert table_state(db) == (FILES * ROWS, FILES * ROWS, FILES, FILES)
