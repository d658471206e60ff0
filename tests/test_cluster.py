"""One ingest spread over a Dask `LocalCluster` (worker processes) into a Delta table on moto S3:
files across workers, a worker killed mid-run, a batch submitted twice, two drivers at once, a
re-run that commits nothing, a changed object replaced, a batch that fails on every try, a
`ProcessPoolExecutor`, and the usage errors."""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from deltalake import DeltaTable
from distributed import Client, LocalCluster, get_task_stream
from faultproxy import FaultProxy
from motoserver import MotoServer, free_port

import dreambolt.cluster.batches as batching
from dreambolt import Ingester, S3Options
from dreambolt.cluster import BatchTask, run_batch
from dreambolt.report import FileResult, SilentListener
from dreambolt.s3.client import S3Client
from dreambolt.sources import Source, expand


@pytest.fixture(scope="module")
def cluster(moto: MotoServer) -> Iterator[Client]:
    """Two worker processes (one thread each), started once the session's AWS env is set."""
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address="127.0.0.1:0"
        ) as local,
        Client(local) as client,
    ):
        yield client


@pytest.fixture(autouse=True)
def small_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(batching, "BATCH_FILES", 6)  # 30 files: 5 batches over 2 workers


class Lake:
    def __init__(self, moto: MotoServer, bucket: str, endpoint: str | None = None) -> None:
        self.bucket = bucket
        self.db = f"delta:s3://{bucket}/lake"
        self.options = S3Options(endpoint_url=endpoint or moto.endpoint_url)
        self.storage = {
            "AWS_ACCESS_KEY_ID": os.environ["AWS_ACCESS_KEY_ID"],
            "AWS_SECRET_ACCESS_KEY": os.environ["AWS_SECRET_ACCESS_KEY"],
            "AWS_REGION": "us-east-1",
            "AWS_ENDPOINT_URL": moto.endpoint_url,
            "AWS_ALLOW_HTTP": "true",
        }

    def ingester(self, executor: Any, **kwargs: Any) -> Ingester:
        return Ingester(db=self.db, s3=self.options, executor=executor, **kwargs)

    def table(self, name: str = "t") -> DeltaTable:
        return DeltaTable(f"s3://{self.bucket}/lake/{name}", storage_options=self.storage)

    def frame(self, name: str = "t") -> pl.DataFrame:
        return pl.read_delta(f"s3://{self.bucket}/lake/{name}", storage_options=self.storage)

    def ledger(self) -> pl.DataFrame:
        return self.frame("_dreambolt_loads")


def put_csvs(s3: Any, bucket: str, count: int, *, prefix: str = "src") -> dict[str, int]:
    """`count` CSV objects of 3 rows; uri -> first id."""
    ids = {}
    for i in range(count):
        key = f"{prefix}/{i:03}.csv"
        s3.put_object(
            Bucket=bucket, Key=key, Body=f"id,v\n{i * 3},a\n{i * 3 + 1},b\n{i * 3 + 2},c\n"
        )
        ids[f"s3://{bucket}/{key}"] = i * 3
    return ids


def assert_every_row_once(lake: Lake, files: int) -> None:
    frame = lake.frame()
    assert frame.height == 3 * files
    assert frame["id"].sort().to_list() == list(range(3 * files))  # each row once
    assert frame["_source_uri"].n_unique() == files


def statuses(results: list[FileResult]) -> Counter[str]:
    return Counter(r.status for r in results)


async def test_files_spread_over_workers_load_once_and_a_rerun_commits_nothing(
    cluster: Client, moto: MotoServer, s3: Any, bucket: str
) -> None:
    put_csvs(s3, bucket, 30)
    lake = Lake(moto, bucket)
    with get_task_stream(cluster) as stream:
        async with lake.ingester(cluster) as ing:
            report = await ing.ingest(f"s3://{bucket}/src/", table="t")
    assert report.ok and statuses(report.files) == {"loaded": 30}
    assert sum(r.rows for r in report.files) == 90
    assert_every_row_once(lake, 30)
    assert len({task["worker"] for task in stream.data}) == 2  # both workers loaded batches
    assert len(stream.data) == 5  # one task per batch of 6
    ledger = lake.ledger()
    assert sorted(ledger["uri"].to_list()) == sorted(r.uri for r in report.files)
    assert set(ledger["status"].to_list()) == {"loaded"}

    version = lake.table().version()
    with get_task_stream(cluster) as stream:
        async with lake.ingester(cluster) as ing:
            again = await ing.ingest(f"s3://{bucket}/src/", table="t")
    assert again.ok and statuses(again.files) == {"unchanged": 30}
    assert stream.data == []  # the anti-join left nothing to submit
    assert lake.table().version() == version


async def test_a_changed_object_replaces_its_rows(
    cluster: Client, moto: MotoServer, s3: Any, bucket: str
) -> None:
    put_csvs(s3, bucket, 12)
    lake = Lake(moto, bucket)
    async with lake.ingester(cluster) as ing:
        await ing.ingest(f"s3://{bucket}/src/", table="t")
        s3.put_object(Bucket=bucket, Key="src/004.csv", Body=b"id,v\n100,x\n")
        report = await ing.ingest(f"s3://{bucket}/src/", table="t")
    changed = [r for r in report.files if r.status == "loaded"]
    assert [(r.uri.rsplit("/", 1)[1], r.rows, r.replaced) for r in changed] == [
        ("004.csv", 1, True)
    ]
    frame = lake.frame()
    assert frame.height == 33 + 1
    mine = frame.filter(pl.col("_source_uri").str.ends_with("/004.csv"))
    assert mine["id"].to_list() == [100]


async def test_a_worker_killed_mid_run_the_run_completes_with_every_row_once(
    cluster: Client, moto: MotoServer, proxy: FaultProxy, s3: Any, bucket: str
) -> None:
    put_csvs(s3, bucket, 30)
    proxy.add_rule("delay", method="GET", path=r"/src/\d+\.csv$", delay=0.3)  # slow tasks
    lake = Lake(moto, bucket, proxy.endpoint_url)
    before: dict[str, int] = cluster.run(os.getpid)
    killed: list[int] = []

    class KillOnFirstResult(SilentListener):
        def finished(self, result: FileResult) -> None:
            if not killed:  # one batch is done, the others are being loaded: kill a worker
                pid = sorted(before.values())[0]
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)

    async with lake.ingester(cluster, listener=KillOnFirstResult()) as ing:
        report = await ing.ingest(f"s3://{bucket}/src/", table="t")
    assert killed
    assert report.ok, [r.error for r in report.files if r.error]
    assert len(report.files) == 30
    assert set(statuses(report.files)) <= {"loaded", "unchanged"}  # a rerun task may find it
    assert_every_row_once(lake, 30)
    after: dict[str, int] = cluster.run(os.getpid)
    assert killed[0] not in after.values()  # the nanny started a new worker process


async def sources_of(lake: Lake, uri: str) -> list[Source]:
    async with S3Client.from_options(lake.options) as client:

        async def factory() -> S3Client:
            return client

        sources, failures = await expand([uri], factory)
    assert failures == []
    return sources


async def test_the_same_batch_submitted_twice_loads_once(
    cluster: Client, moto: MotoServer, s3: Any, bucket: str
) -> None:
    put_csvs(s3, bucket, 6)
    lake = Lake(moto, bucket)
    sources = await sources_of(lake, f"s3://{bucket}/src/")
    task = BatchTask(lake.db, "t", "run-1", tuple(sources), Ingester, {"s3": lake.options})
    first, second = cluster.gather([cluster.submit(run_batch, task, pure=False) for _ in range(2)])
    assert sorted([statuses(first), statuses(second)], key=lambda c: c["loaded"]) == [
        {"unchanged": 6},
        {"loaded": 6},
    ]
    assert_every_row_once(lake, 6)
    version = lake.table().version()
    again = await asyncio.to_thread(run_batch, task)  # found by its marker: no commit
    assert statuses(again) == {"unchanged": 6}
    assert lake.table().version() == version


async def test_two_drivers_on_the_same_input_at_once_load_every_row_once(
    cluster: Client, moto: MotoServer, s3: Any, bucket: str
) -> None:
    put_csvs(s3, bucket, 24)
    lake = Lake(moto, bucket)
    async with lake.ingester(cluster) as one, lake.ingester(cluster) as two:
        reports = await asyncio.gather(
            one.ingest(f"s3://{bucket}/src/", table="t"),
            two.ingest(f"s3://{bucket}/src/", table="t"),
        )
    assert all(r.ok for r in reports)
    loaded = [r.uri for report in reports for r in report.files if r.status == "loaded"]
    assert sorted(loaded) == sorted(f"s3://{bucket}/src/{i:03}.csv" for i in range(24))
    assert_every_row_once(lake, 24)


async def test_replace_mode_rebuilds_once_then_spreads_the_rest(
    cluster: Client, moto: MotoServer, s3: Any, bucket: str
) -> None:
    put_csvs(s3, bucket, 18)
    lake = Lake(moto, bucket)
    async with lake.ingester(cluster) as ing:
        await ing.ingest(f"s3://{bucket}/src/", table="t")
        for i in range(18, 30):
            s3.delete_object(Bucket=bucket, Key=f"src/{i - 18:03}.csv")
        put_csvs(s3, bucket, 12, prefix="other")
        report = await ing.ingest(f"s3://{bucket}/other/", table="t", mode="replace")
    assert report.ok and statuses(report.files) == {"loaded": 12}
    frame = lake.frame()
    assert frame.height == 36 and frame["_source_uri"].str.contains("/other/").all()


class Failing(Ingester):
    """An Ingester whose batches always raise (as a task that fails on every try)."""

    async def ingest_batch(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("injected: this batch cannot be loaded")


async def test_a_batch_that_fails_on_every_try_is_reported_per_file(
    moto: MotoServer, s3: Any, bucket: str
) -> None:
    put_csvs(s3, bucket, 6)
    lake = Lake(moto, bucket)
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(2, mp_context=context) as pool:
        ing = Failing(db=lake.db, s3=lake.options, executor=pool)
        async with ing:
            report = await ing.ingest(f"s3://{bucket}/src/", table="t")
    assert not report.ok and statuses(report.files) == {"failed": 6}
    assert {r.error.type for r in report.files if r.error} == {"RuntimeError"}
    assert "injected" in (report.files[0].error.message if report.files[0].error else "")
    ledger = lake.ledger()
    assert sorted(ledger["uri"].to_list()) == sorted(r.uri for r in report.files)
    assert set(ledger["status"].to_list()) == {"failed"}


async def test_a_process_pool_works_as_an_executor(moto: MotoServer, s3: Any, bucket: str) -> None:
    put_csvs(s3, bucket, 14)
    lake = Lake(moto, bucket)
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(2, mp_context=context) as pool:
        async with lake.ingester(pool) as ing:
            report = await ing.ingest(f"s3://{bucket}/src/", table="t")
    assert report.ok and statuses(report.files) == {"loaded": 14}
    assert_every_row_once(lake, 14)


def test_an_executor_needs_a_delta_destination_and_a_named_embedder(tmp_path: Any) -> None:
    with ProcessPoolExecutor(1) as pool:
        with pytest.raises(ValueError, match="only a Delta Lake destination"):
            Ingester(db=str(tmp_path / "x.duckdb"), executor=pool)
        with pytest.raises(ValueError, match=r"a Dask distributed\.Client or a concurrent"):
            Ingester(db=f"delta:{tmp_path}", executor=object())
        with pytest.raises(ValueError, match="--embed names the model"):
            Ingester(db=f"delta:{tmp_path}", executor=pool, embed=object())  # type: ignore[arg-type]


def cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dreambolt", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **env},
    )


def test_cli_workers_and_cluster_load_once_with_the_usual_report(
    cluster: Client, moto: MotoServer, s3: Any, bucket: str
) -> None:
    put_csvs(s3, bucket, 10)
    lake = Lake(moto, bucket)
    where = [f"s3://{bucket}/src/", "--db", lake.db, "--table", "t"]
    where += ["--endpoint-url", moto.endpoint_url]
    done = cli("ingest", *where, "--workers", "2", "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert Counter(f["status"] for f in report["files"]) == {"loaded": 10}
    assert "distributed" not in done.stderr  # Dask's own logging stays quiet
    assert_every_row_once(lake, 10)
    # an existing scheduler: nothing left to load
    again = cli("ingest", *where, "--cluster", cluster.scheduler.address, "--json")
    assert again.returncode == 0, again.stderr
    assert Counter(f["status"] for f in json.loads(again.stdout)["files"]) == {"unchanged": 10}


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--workers", "2"], "a DuckDB database has one writer"),
        (["--cluster", "tcp://127.0.0.1:1", "--workers", "2"], "exclude each other"),
    ],
)
def test_cli_cluster_usage_errors(tmp_path: Path, extra: list[str], message: str) -> None:
    (tmp_path / "a.csv").write_text("id\n1\n")
    db = str(tmp_path / "x.duckdb") if "--cluster" not in extra else f"delta:{tmp_path}"
    done = cli("ingest", str(tmp_path / "a.csv"), "--db", db, *extra)
    assert done.returncode == 2 and message in done.stderr, done.stderr
    assert not (tmp_path / "x.duckdb").exists()


def test_cli_unreachable_scheduler_is_exit_3(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("id\n1\n")
    done = cli("ingest", str(tmp_path / "a.csv"), "--db", f"delta:{tmp_path}/lake")
    assert done.returncode == 0, done.stderr  # the same input loads without a cluster
    port = free_port()
    done = cli(
        "ingest",
        str(tmp_path / "a.csv"),
        "--db",
        f"delta:{tmp_path}/lake2",
        "--cluster",
        f"tcp://127.0.0.1:{port}",
        DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT="3s",  # Dask's own setting bounds the wait
    )
    assert done.returncode == 3 and "cannot reach the Dask scheduler" in done.stderr, done.stderr
    assert "after 3 s" in done.stderr, done.stderr


async def test_abort_stops_at_the_first_bad_file_and_submits_no_more(
    cluster: Client, moto: MotoServer, s3: Any, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import dreambolt.cluster.driver as driver

    monkeypatch.setattr(driver, "IN_FLIGHT", 1)  # one batch at a time: the order is known
    put_csvs(s3, bucket, 30)
    s3.put_object(Bucket=bucket, Key="src/008.csv", Body=b"id,v\n1,2,3,4\n\x00\xff")
    lake = Lake(moto, bucket)
    with get_task_stream(cluster) as stream:
        async with lake.ingester(cluster, on_error="abort") as ing:
            report = await ing.ingest(f"s3://{bucket}/src/", table="t")
    assert report.aborted and len(report.files) == 30
    by_name = {r.uri.rsplit("/", 1)[1]: r for r in report.files}
    assert by_name["008.csv"].status == "skipped"
    loaded = sorted(n for n, r in by_name.items() if r.status == "loaded")
    assert loaded == [f"{i:03}.csv" for i in range(8)]  # batch 1, and batch 2 up to 008
    rest = [r for n, r in by_name.items() if n > "008.csv"]
    assert all(r.error and r.error.type == "Aborted" for r in rest)
    assert len(stream.data) == 2  # batches 3 to 5 were never submitted
    assert sorted(lake.frame()["_source_uri"].unique().str.split("/").list.last()) == loaded


async def test_a_ledger_left_behind_by_a_killed_task_catches_up(
    cluster: Client, moto: MotoServer, s3: Any, bucket: str
) -> None:
    put_csvs(s3, bucket, 6)
    lake = Lake(moto, bucket)
    sources = await sources_of(lake, f"s3://{bucket}/src/")
    task = BatchTask(lake.db, "t", "run-1", tuple(sources), Ingester, {"s3": lake.options})
    assert statuses(await asyncio.to_thread(run_batch, task)) == {"loaded": 6}
    lake.table("_dreambolt_loads").delete("table_name = 't'")  # killed before its ledger commit
    again = await asyncio.to_thread(run_batch, task)  # retried: its marker is in the log
    assert statuses(again) == {"unchanged": 6}
    ledger = lake.ledger()
    assert sorted(ledger["uri"].to_list()) == sorted(s.uri for s in sources)
    assert set(ledger["status"].to_list()) == {"loaded"}

    # a whole run killed between the two commits: the next run's driver repairs the ledger
    lake.table("_dreambolt_loads").delete("table_name = 't'")
    put_csvs(s3, bucket, 8)  # 2 new objects, 6 rewritten with the same bytes (same etags)
    async with lake.ingester(cluster) as ing:
        report = await ing.ingest(f"s3://{bucket}/src/", table="t")
    assert statuses(report.files) == {"unchanged": 6, "loaded": 2}
    loaded = lake.ledger().filter(pl.col("status") == "loaded")  # (+ this run's "unchanged")
    assert sorted(loaded["uri"].to_list()) == sorted(r.uri for r in report.files)
    assert_every_row_once(lake, 8)
