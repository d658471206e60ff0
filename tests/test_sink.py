"""The DuckDB sink on real database files: streamed loads, groups, per-file atomicity."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import duckdb
import polars as pl
import pytest

from dreambolt.errors import FormatError, SinkError
from dreambolt.sinks.duckdb import LEDGER, DuckDBSink, FileWrite, Written
from dreambolt.sinks.ledger import CLAIMS


def tables(db: Path) -> set[str]:
    with duckdb.connect(str(db), read_only=True) as con:
        return {
            r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()
        }


def batches(n: int, fail_at: int | None = None) -> Iterator[pl.DataFrame]:
    for i in range(n):
        if i == fail_at:
            raise FormatError(f"x.csv: broken at batch {i}")
        yield pl.DataFrame({"id": list(range(i * 10, i * 10 + 10)), "v": ["a"] * 10})


def test_file_rows_and_ledger_commit_together(tmp_path: Path) -> None:
    db = tmp_path / "s.duckdb"
    sink = DuckDBSink(db)
    written = sink.write_file(
        "t", uri="s3://b/x.csv", etag='"1"', size=5, frames=batches(4), run_id="r"
    )
    assert written == Written(40, replaced=False)
    with pytest.raises(FormatError):
        sink.write_file(
            "t", uri="s3://b/x.csv", etag='"2"', size=5, frames=batches(4, fail_at=2), run_id="r"
        )
    sink.close()
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("SELECT count(*), min(_source_etag) FROM t").fetchall() == [(40, '"1"')]
        assert con.execute(f"SELECT etag FROM {LEDGER} WHERE active").fetchall() == [('"1"',)]
    assert tables(db) == {"t", LEDGER, CLAIMS}  # no scratch table left behind


def test_bad_memory_limit_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SinkError, match="memory limit"):
        DuckDBSink(tmp_path / "s.duckdb", memory_limit="1GB'; DROP TABLE x; --")


def test_write_many_commits_a_group_or_nothing(tmp_path: Path) -> None:
    db = tmp_path / "s.duckdb"
    sink = DuckDBSink(db)
    good = [
        FileWrite(f"s3://b/{i}.csv", f'"{i}"', 10, pl.DataFrame({"n": [i, i + 1]}))
        for i in range(3)
    ]
    assert sink.write_many("t", good, run_id="r") == [Written(2, False)] * 3
    bad = FileWrite("s3://b/bad.csv", '"x"', 10, pl.DataFrame({"n": ["abc"]}))
    again = FileWrite("s3://b/0.csv", '"new"', 10, pl.DataFrame({"n": [7]}))
    with pytest.raises(SinkError, match="'n'"):
        sink.write_many("t", [again, bad], run_id="r")
    assert sink.write_many("t", [again], run_id="r") == [Written(1, True)]
    sink.close()
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("SELECT _source_uri, n FROM t ORDER BY 1, 2").fetchall() == [
            ("s3://b/0.csv", 7),
            ("s3://b/1.csv", 1),
            ("s3://b/1.csv", 2),
            ("s3://b/2.csv", 2),
            ("s3://b/2.csv", 3),
        ]
        assert con.execute(f"SELECT count(*) FROM {LEDGER} WHERE active").fetchall() == [(3,)]


def test_no_progress_bar_on_stdout(tmp_path: Path) -> None:
    # DuckDB draws one on stdout for statements over 2 s: it would corrupt `--json` output.
    sink = DuckDBSink(tmp_path / "p.duckdb")
    try:
        setting = sink.con.execute("SELECT current_setting('enable_progress_bar')").fetchall()
    finally:
        sink.close()
    assert setting == [(False,)]
