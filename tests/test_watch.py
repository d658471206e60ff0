"""`dreambolt watch` in listing mode, as a service runs: a subprocess against moto (through the
fault proxy where a load must be slow), its /livez, /readyz and /metrics read over HTTP, stopped
with SIGTERM."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import duckdb
import pytest
from faultproxy import FaultProxy
from motoserver import MotoServer
from watchservice import Service, put

from dreambolt.cli.watch import DurationType
from dreambolt.report import FileResult
from dreambolt.watch.metrics import WatchMetrics
from dreambolt.watch.server import HealthServer

LOADED = 'dreambolt_watch_files_total{status="loaded"}'
UNCHANGED = 'dreambolt_watch_files_total{status="unchanged"}'


def test_new_changed_and_identical_objects_load_once_with_metrics(
    moto: MotoServer, s3: Any, bucket: str, tmp_path: Path, services: list[Service]
) -> None:
    for n in range(3):
        put(s3, bucket, f"in/{n}.csv", range(n * 10, n * 10 + 3))
    db = tmp_path / "w.duckdb"
    args = [f"s3://{bucket}/in/", "--db", str(db), "--table", "t"]
    args += ["--endpoint-url", moto.endpoint_url, "--interval", "0.2s"]
    service = Service(args)
    services.append(service)
    service.wait_for(lambda: service.metric(LOADED) == 3, "3 files loaded")
    assert service.get("/livez") == (200, "ok\n")
    assert service.get("/readyz") == (200, "ready\n")
    put(s3, bucket, "in/3.csv", range(30, 33))  # new
    put(s3, bucket, "in/0.csv", range(100, 104))  # changed: 4 rows replace 3
    put(s3, bucket, "in/1.csv", range(10, 13))  # the same bytes again: the same etag
    service.wait_for(lambda: service.metric(LOADED) == 5, "the new and the changed file")
    polls = service.metric("dreambolt_watch_polls_total")
    service.wait_for(lambda: service.metric("dreambolt_watch_polls_total") > polls + 1, "polls")
    assert service.metric(LOADED) == 5  # nothing loaded twice in the later polls
    assert service.metric(UNCHANGED) > 0
    assert service.metric("dreambolt_watch_rows_total") == 3 * 3 + 3 + 4
    assert service.metric("dreambolt_watch_last_commit_timestamp_seconds") > time.time() - 120
    assert service.stop() == 0
    with duckdb.connect(str(db), read_only=True) as con:
        ids = sorted(r[0] for r in con.execute("SELECT id FROM t").fetchall())
        ledger = con.execute("SELECT status, count(*) FROM _dreambolt_loads GROUP BY 1").fetchall()
    assert ids == [*range(10, 13), *range(20, 23), *range(30, 33), *range(100, 104)]
    assert ledger == [("loaded", 5)]  # polls that found files unchanged add no ledger rows


def test_sigterm_mid_load_lets_the_load_commit_then_exits_0(
    proxy: FaultProxy, s3: Any, bucket: str, tmp_path: Path, services: list[Service]
) -> None:
    for n in range(6):
        put(s3, bucket, f"in/{n}.csv", range(n * 10, n * 10 + 3))
    proxy.add_rule("delay", method="GET", path=r"/in/\d\.csv$", delay=0.5)
    db = tmp_path / "w.duckdb"
    args = [f"s3://{bucket}/in/", "--db", str(db), "--table", "t", "--concurrency", "2"]
    args += ["--endpoint-url", proxy.endpoint_url, "--drain-timeout", "30s"]
    service = Service(args)
    services.append(service)
    service.wait_for(lambda: proxy.count("GET", path=r"/in/\d\.csv$") > 0, "a load begins")
    assert service.stop() == 0  # the poll in progress finished within the drain timeout
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("SELECT count(*), count(DISTINCT id) FROM t").fetchone() == (18, 18)


def test_a_drain_that_runs_out_exits_130_with_nothing_half_written(
    proxy: FaultProxy, s3: Any, bucket: str, tmp_path: Path, services: list[Service]
) -> None:
    for n in range(4):
        put(s3, bucket, f"in/{n}.csv", range(n * 10, n * 10 + 3))
    proxy.add_rule("delay", method="GET", path=r"/in/[23]\.csv$", delay=20)
    db = tmp_path / "w.duckdb"
    args = [f"s3://{bucket}/in/", "--db", str(db), "--table", "t"]
    args += ["--endpoint-url", proxy.endpoint_url, "--drain-timeout", "0.5s"]
    service = Service(args)
    services.append(service)
    service.wait_for(lambda: proxy.count("GET", path=r"/in/[23]\.csv$") >= 2, "slow loads")
    assert service.stop() == 130
    with duckdb.connect(str(db), read_only=True) as con:
        per_file = con.execute("SELECT _source_uri, count(*) FROM t GROUP BY 1").fetchall()
    assert all(count == 3 for _, count in per_file)  # whole files only (or none at all)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--listen", "nowhere"], "write HOST:PORT"),
        (["--interval", "soon"], "is not a duration"),
        (["--table", "bad name!"], "table"),
    ],
)
def test_usage_errors_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "dreambolt",
            "watch",
            str(tmp_path),
            "--db",
            str(tmp_path / "w.duckdb"),
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2 and message in done.stderr, done.stderr
    assert not (tmp_path / "w.duckdb").exists()


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("60s", 60.0),
        ("5m", 300.0),
        ("24h", 86400.0),
        ("1.5d", 129600.0),
        ("250ms", 0.25),
        ("7", 7.0),
        (" 2 M ", 120.0),
    ],
)
def test_durations(text: str, seconds: float) -> None:
    assert DurationType().convert(text, None, None) == seconds


async def test_health_endpoints_follow_the_state_and_metrics_are_prometheus_text() -> None:
    import aiohttp

    metrics = WatchMetrics()
    state = {"now": "starting"}
    server = HealthServer("127.0.0.1", 0, metrics, lambda: state["now"])
    await server.start()
    try:
        base = f"http://127.0.0.1:{server.port}"
        async with aiohttp.ClientSession() as http:

            async def get(path: str) -> tuple[int, str]:
                async with http.get(base + path) as response:
                    return response.status, await response.text()

            assert await get("/livez") == (200, "ok\n")
            assert await get("/readyz") == (503, "starting\n")
            state["now"] = "ready"
            assert await get("/readyz") == (200, "ready\n")
            state["now"] = "draining"
            assert await get("/readyz") == (503, "draining\n")
            metrics.observe([FileResult("s3://b/k", "loaded", rows=7, bytes=70)])
            metrics.observe([FileResult("s3://b/j", "failed")])
            async with http.get(base + "/metrics") as response:
                assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
                text = await response.text()
        assert 'dreambolt_watch_files_total{status="loaded"} 1.0' in text
        assert 'dreambolt_watch_files_total{status="failed"} 1.0' in text
        assert 'dreambolt_watch_files_total{status="skipped"} 0.0' in text
        assert "dreambolt_watch_rows_total 7.0" in text
        assert "dreambolt_watch_bytes_total 70.0" in text
    finally:
        await server.stop()


def test_lexical_lists_after_the_last_key_and_full_listings_catch_late_keys(
    proxy: FaultProxy, s3: Any, bucket: str, tmp_path: Path, services: list[Service]
) -> None:
    put(s3, bucket, "in/2024-01-01.csv", range(0, 2))
    put(s3, bucket, "in/2024-01-02.csv", range(2, 4))
    db = tmp_path / "w.duckdb"
    args = [f"s3://{bucket}/in/", "--db", str(db), "--table", "t", "--lexical"]
    args += ["--endpoint-url", proxy.endpoint_url, "--interval", "0.1s"]
    service = Service([*args, "--full-listing-every", "5"])
    services.append(service)
    service.wait_for(lambda: service.metric(LOADED) == 2, "the first, full listing")
    put(s3, bucket, "in/2024-01-03.csv", range(4, 6))  # after the mark
    service.wait_for(lambda: service.metric(LOADED) == 3, "a key after the mark")
    put(s3, bucket, "in/2023-12-31.csv", range(6, 8))  # late: behind the mark
    service.wait_for(lambda: service.metric(LOADED) == 4, "the late key, by a full listing")
    polls = service.metric("dreambolt_watch_polls_total")
    assert service.stop() == 0
    lists = [r.query for r in proxy.requests if r.method == "GET" and "list-type=2" in r.query]
    after = [q for q in lists if "start-after=" in q]
    assert after and len(lists) - len(after) <= polls / 5 + 1  # full listings: 1 poll in 5
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("SELECT count(*), count(DISTINCT id) FROM t").fetchone() == (8, 8)


def test_one_log_line_per_file_at_info_and_json_lines_for_shippers(
    moto: MotoServer, s3: Any, bucket: str, tmp_path: Path, services: list[Service]
) -> None:
    put(s3, bucket, "in/a.csv", range(3))
    args = [f"s3://{bucket}/in/", "--db", str(tmp_path / "w.duckdb"), "--table", "t"]
    args += ["--endpoint-url", moto.endpoint_url, "--log-format", "json", "--interval", "0.1s"]
    service = Service(args)
    services.append(service)
    service.wait_for(lambda: service.metric(LOADED) == 1, "a.csv")
    assert service.stop() == 0
    lines = [json.loads(line) for line in service.stderr[1:] if line.startswith("{")]
    loaded = [e for e in lines if e["logger"] == "dreambolt.ingest" and e["level"] == "INFO"]
    assert [e["message"].split()[:2] for e in loaded] == [["loaded", f"s3://{bucket}/in/a.csv:"]]
    assert all(set(e) >= {"time", "level", "logger", "message"} for e in lines)
    assert all(e["time"].endswith("+00:00") for e in lines)
    assert not [line for line in service.stderr[1:] if line.strip() and line[0] != "{"]


def test_watch_into_a_delta_destination(
    moto: MotoServer, s3: Any, bucket: str, tmp_path: Path, services: list[Service]
) -> None:
    import polars as pl

    put(s3, bucket, "in/a.csv", range(3))
    args = [f"s3://{bucket}/in/", "--db", f"delta:{tmp_path / 'lake'}", "--table", "t"]
    service = Service([*args, "--endpoint-url", moto.endpoint_url, "--interval", "0.1s"])
    services.append(service)
    service.wait_for(lambda: service.metric(LOADED) == 1, "a.csv")
    put(s3, bucket, "in/b.csv", range(3, 5))
    service.wait_for(lambda: service.metric(LOADED) == 2, "b.csv")
    assert service.stop() == 0
    frame = pl.read_delta(str(tmp_path / "lake" / "t"))
    assert sorted(frame["id"].to_list()) == [0, 1, 2, 3, 4]
