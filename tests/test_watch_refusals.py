"""A file `dreambolt watch` cannot load is tried again after growing delays, not at every poll:
the rules (`watch.refusals`, on a fake clock) and a service against moto."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
from motoserver import MotoServer
from watchservice import Service, put

from dreambolt.report import ErrorInfo, FileResult, Status
from dreambolt.sources import Source
from dreambolt.watch.refusals import CAP_S, Refusals

SKIPPED = 'dreambolt_watch_files_total{status="skipped"}'
LOADED = 'dreambolt_watch_files_total{status="loaded"}'
POLLS = "dreambolt_watch_polls_total"
HELD = "dreambolt_watch_files_held"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def refused(
    uri: str, etag: str | None, status: Status = "skipped", kind: str = "FormatError"
) -> FileResult:
    return FileResult(uri, status, etag=etag, error=ErrorInfo(kind, None, "cannot be read"))


def src(uri: str, etag: str | None) -> Source:
    return Source(uri, 10, etag)


def test_a_refused_version_waits_one_interval_then_twice_as_long_each_time() -> None:
    clock = Clock()
    refusals = Refusals(60.0, clock)
    bad = src("s3://b/bad.csv", "e1")
    assert not refusals.holds(bad)
    waits = []
    for _ in range(5):
        refusals.note([refused(bad.uri, "e1")])
        start = clock.now
        while refusals.holds(bad):
            clock.now += 1.0
        waits.append(clock.now - start)
    assert waits == [60.0, 120.0, 240.0, 480.0, 960.0]
    assert len(refusals) == 1
    assert refusals.delay(30) == CAP_S  # never longer than an hour...
    assert Refusals(7200.0).delay(1) == 7200.0  # ...unless the interval itself is longer
    assert Refusals(7200.0).delay(5) == 7200.0


def test_another_version_is_tried_at_once_and_a_load_lets_go() -> None:
    clock = Clock()
    refusals = Refusals(60.0, clock)
    refusals.note([refused("s3://b/x.csv", "e1", "failed", "SinkError")])
    assert refusals.holds(src("s3://b/x.csv", "e1"))
    assert not refusals.holds(src("s3://b/x.csv", "e2"))  # a new version: at once
    assert not refusals.holds(src("s3://b/y.csv", "e1"))
    refusals.note([refused("s3://b/x.csv", "e2")])  # the new version refused: its first delay
    clock.now += 61.0
    assert not refusals.holds(src("s3://b/x.csv", "e2"))
    refusals.note([FileResult("s3://b/x.csv", "loaded", etag="e3", rows=1)])
    assert len(refusals) == 0 and not refusals.holds(src("s3://b/x.csv", "e2"))


def test_a_file_a_complete_listing_no_longer_finds_is_forgotten() -> None:
    refusals = Refusals(60.0, Clock())
    refusals.note([refused("s3://b/gone.csv", "e1"), refused("s3://b/kept.csv", "e1")])
    assert refusals.holds(src("s3://b/kept.csv", "e1"))  # listed again (and still held)
    refusals.note([], complete=False)  # a partial listing (after the lexical marks) proves nothing
    assert len(refusals) == 2
    assert refusals.holds(src("s3://b/kept.csv", "e1"))
    refusals.note([], complete=True)  # a full listing that came across kept.csv only
    assert len(refusals) == 1
    refusals.note([], complete=True)  # one that did not come across it: gone now too
    assert len(refusals) == 0


def test_untried_and_unnamed_files_are_not_held() -> None:
    refusals = Refusals(60.0, Clock())
    refusals.note(
        [
            refused("s3://b/a.csv", "e1", kind="Aborted"),  # an aborted poll never tried it
            refused("s3://b/missing/", None, kind="S3NotFoundError"),  # an input, no version
        ]
    )
    assert len(refusals) == 0
    assert not refusals.holds(src("s3://b/a.csv", "e1"))


def test_the_service_backs_off_a_file_it_cannot_read_and_loads_its_fix_at_once(
    moto: MotoServer, s3: Any, bucket: str, tmp_path: Path, services: list[Service]
) -> None:
    put(s3, bucket, "in/good.csv", range(0, 3))
    s3.put_object(Bucket=bucket, Key="in/bad.parquet", Body=b"this is not parquet")
    db = tmp_path / "w.duckdb"
    args = [f"s3://{bucket}/in/", "--db", str(db), "--table", "t"]
    service = Service([*args, "--endpoint-url", moto.endpoint_url, "--interval", "0.2s"])
    services.append(service)
    service.wait_for(lambda: service.metric(POLLS) >= 20, "20 polls")
    tries = service.metric(SKIPPED)
    # tried after 1, 2, 4, 8... intervals: a handful of times in 20 polls, not 20 times
    assert 3 <= tries <= 10, tries
    assert service.metric(HELD) == 1
    assert service.metric(LOADED) == 1
    s3.put_object(Bucket=bucket, Key="in/bad.parquet", Body=duck_parquet(tmp_path))  # fixed
    service.wait_for(lambda: service.metric(LOADED) == 2, "the fixed file, at the next poll")
    assert service.metric(HELD) == 0
    tries = service.metric(SKIPPED)  # a try may have come due meanwhile
    assert service.stop() == 0
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM t").fetchone() == (5,)
        ledger = con.execute(
            "SELECT status, count(*) FROM _dreambolt_loads WHERE uri LIKE '%bad.parquet' "
            "GROUP BY 1 ORDER BY 1"
        ).fetchall()
    assert ledger == [("loaded", 1), ("skipped", tries)]  # each try recorded once


def duck_parquet(tmp_path: Path) -> bytes:
    """A Parquet file of two rows with the CSV's columns, written by DuckDB."""
    out = tmp_path / "fixed.parquet"
    with duckdb.connect() as con:
        con.execute(f"COPY (SELECT 100 + i AS id, 'x' AS v FROM range(2) t(i)) TO '{out}'")
    return out.read_bytes()
