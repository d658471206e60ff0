"""The DuckDB sink on real database files: staged loads, stale stages, per-file atomicity."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import duckdb
import polars as pl
import pytest

from dreambolt.errors import FormatError, SinkError
from dreambolt.sinks.duckdb import LEDGER, DuckDBSink


def tables(db: Path) -> set[str]:
    with duckdb.connect(str(db), read_only=True) as con:
        return {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables")
                .fetchall()}


def batches(n: int, fail_at: int | None = None) -> Iterator[pl.DataFrame]:
    for i in range(n):
        if i == fail_at:
            raise FormatError(f"x.csv: broken at batch {i}")
        yield pl.DataFrame({"id": list(range(i * 10, i * 10 + 10)), "v": ["a"] * 10})


@pytest.mark.parametrize("staged", [False, True])
def test_file_rows_and_ledger_commit_together(tmp_path: Path, staged: bool) -> None:
    db = tmp_path / "s.duckdb"
    sink = DuckDBSink(db)
    rows, replaced = sink.write_file("t", uri="s3://b/x.csv", etag='"1"', size=5,
                                     frames=batches(4), run_id="r", staged=staged)
    assert (rows, replaced) == (40, False)
    with pytest.raises(FormatError):
        sink.write_file("t", uri="s3://b/x.csv", etag='"2"', size=5,
                        frames=batches(4, fail_at=2), run_id="r", staged=staged)
    sink.close()
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("SELECT count(*), min(_source_etag) FROM t").fetchall() == [(40, '"1"')]
        assert con.execute(f"SELECT etag FROM {LEDGER} WHERE active").fetchall() == [('"1"',)]
    assert tables(db) == {"t", LEDGER}  # no scratch table left behind


def test_stale_stage_tables_are_dropped_on_open(tmp_path: Path) -> None:
    db = tmp_path / "s.duckdb"
    with duckdb.connect(str(db)) as con:
        con.execute("CREATE TABLE _dreambolt_stage_deadbeef AS SELECT 1 AS x")
    DuckDBSink(db).close()
    assert "_dreambolt_stage_deadbeef" not in tables(db)


def test_bad_memory_limit_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SinkError, match="memory limit"):
        DuckDBSink(tmp_path / "s.duckdb", memory_limit="1GB'; DROP TABLE x; --")
