"""The ingest pipeline under hostile input: one bad file never stops the batch, no stage dies
unnoticed, an interrupted run reports what committed, and load() stays bounded."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pytest
from fake_openai import FakeOpenAI
from faultproxy import FaultProxy, RecordedRequest
from test_cli import _wait_for_gets, put_csvs, rows_per_file, run

from dreambolt import Ingester, S3Options
from dreambolt.batching import Batches, StageError
from dreambolt.fetch import Failed, Fetched

DEEP = 100  # levels of nesting: past what pyarrow converts


def nested_json(depth: int) -> str:
    return '{"a": ' * depth + "1" + "}" * depth


def hostile_files(folder: Path) -> dict[str, Path]:
    """Files each of which broke a whole batch before, beside two good ones."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {
        "nul_header.csv": b"a\x00b,c\n1,2\n",
        "nul_value.csv": b"x,y\n1,a\x00b\n",
        "deep.ndjson": (nested_json(DEEP) + "\n").encode(),
        "deep.json": ("[" + nested_json(DEEP) + "]").encode(),
        "garbage.parquet": b"PAR1" + os.urandom(200) + b"PAR1",
        "good1.csv": b"x,y\n1,2\n3,4\n",
        "good2.csv": b"x,y\n5,6\n",
    }
    paths = {}
    for name, body in files.items():
        (folder / name).write_bytes(body)
        paths[name] = folder / name
    return paths


async def test_bad_files_fail_alone_and_the_batch_goes_on(tmp_path: Path) -> None:
    paths = hostile_files(tmp_path / "in")
    db = tmp_path / "h.duckdb"
    async with Ingester(db=db) as ing:
        report = await asyncio.wait_for(ing.ingest([str(tmp_path / "in")], table="t"), timeout=120)
    by_name = {Path(f.uri).name: f for f in report.files}
    assert set(by_name) == set(paths)
    for name, result in by_name.items():
        if name.startswith("good") or name == "nul_value.csv":  # a NUL in a value is data
            assert result.status == "loaded", result
        else:
            assert result.status in ("skipped", "failed"), result
            assert result.error is not None and name in result.error.message
    assert rows_per_file(db, "t") == {
        paths["good1.csv"].resolve().as_uri(): 2,
        paths["good2.csv"].resolve().as_uri(): 1,
        paths["nul_value.csv"].resolve().as_uri(): 1,
    }
    with duckdb.connect(str(db), read_only=True) as con:
        ledger = dict(con.execute("SELECT uri, status FROM _dreambolt_loads").fetchall())
    assert len(ledger) == len(paths)  # every file attempt has its ledger row


def test_cli_reports_each_bad_file_and_exits_1(tmp_path: Path) -> None:
    hostile_files(tmp_path / "in")
    done = run(
        "ingest",
        str(tmp_path / "in"),
        "--db",
        str(tmp_path / "c.duckdb"),
        "--table",
        "t",
        "--json",
        timeout=120,
    )
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    report = json.loads(done.stdout)
    assert report["totals"]["loaded"] == 3
    assert report["totals"]["skipped"] + report["totals"]["failed"] == 4


def _item(name: str) -> Failed:
    from dreambolt.sources import Source

    return Failed(Source(uri=f"file:///{name}", size=1, etag=None), ValueError(name))


class _Panic(BaseException):
    """Stands in for pyo3's PanicException, which derives from BaseException."""


async def test_a_feeder_that_dies_is_noticed_not_waited_for() -> None:
    arrived: asyncio.Queue[Fetched | Failed] = asyncio.Queue()

    async def feeder() -> None:
        await arrived.put(_item("a"))
        raise _Panic("boom")

    task = asyncio.create_task(feeder(), name="feeder")
    batches = Batches(arrived, expected=3, limit=8, feeders=[task])
    try:
        with pytest.raises(StageError, match="feeder"):  # not a TimeoutError: no hang
            for _ in range(3):
                await asyncio.wait_for(batches.next(), 10)
    finally:
        await batches.close()
        await asyncio.gather(task, return_exceptions=True)


async def test_feeders_that_finish_normally_are_not_an_error() -> None:
    arrived: asyncio.Queue[Fetched | Failed] = asyncio.Queue()

    async def feeder(name: str, delay: float) -> None:
        await asyncio.sleep(delay)
        await arrived.put(_item(name))

    tasks = [asyncio.create_task(feeder("a", 0)), asyncio.create_task(feeder("b", 0.05))]
    batches = Batches(arrived, expected=2, limit=1, feeders=tasks)
    try:
        got = [i.source.uri for _ in range(2) for i in await asyncio.wait_for(batches.next(), 10)]
    finally:
        await batches.close()
    assert got == ["file:///a", "file:///b"]


async def test_load_keeps_files_in_flight_bounded(proxy: FaultProxy, s3: Any, bucket: str) -> None:
    put_csvs(s3, bucket, "many/", 24, rows=2)
    lock = threading.Lock()
    state = {"now": 0, "most": 0}

    def hold(request: RecordedRequest) -> None:
        with lock:
            state["now"] += 1
            state["most"] = max(state["most"], state["now"])
        time.sleep(0.1)
        with lock:
            state["now"] -= 1

    proxy.add_rule("call", method="GET", path="/many/", fn=hold)
    async with Ingester(
        db=":memory:", s3=S3Options(endpoint_url=proxy.endpoint_url), files_in_flight=3
    ) as ing:
        frame = await ing.load(f"s3://{bucket}/many/")
    assert frame.height == 48
    assert proxy.count("GET", "/many/") >= 24
    assert 1 <= state["most"] <= 3, state


async def test_load_keeps_the_order_of_files_and_raises_the_bad_one(tmp_path: Path) -> None:
    folder = tmp_path / "d"
    folder.mkdir()
    for i in range(12):
        (folder / f"{i:02d}.csv").write_text(f"n\n{i}\n")
    async with Ingester(db=":memory:", files_in_flight=4) as ing:
        frame = await ing.load(str(folder))
        assert frame["n"].to_list() == list(range(12))
        (folder / "05.csv").write_bytes(b"a\x00b,c\n1,2\n")
        (folder / "bad.json").write_text("[" + nested_json(DEEP) + "]")
        with pytest.raises(Exception, match=r"bad\.json") as raised:
            await ing.load(str(folder / "bad.json"))
    assert type(raised.value).__name__ in ("FormatError", "SinkError")


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        yield server


async def test_load_uses_the_ingesters_embed_base_url(
    fake: FakeOpenAI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", fake.api_key)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    fake.reset()
    data = tmp_path / "docs.csv"
    pl.DataFrame({"text": ["a cat", "a dog"]}).write_csv(data)
    async with Ingester(db=":memory:", embed_base_url=fake.base_url) as ing:
        frame = await ing.load(str(data), embed="text-embedding-3-small")
    assert frame["embedding"].null_count() == 0
    assert len(fake.served) >= 1


def test_interrupted_run_reports_exactly_what_committed(
    proxy: FaultProxy, s3: Any, bucket: str, tmp_path: Path
) -> None:
    put_csvs(s3, bucket, "k/", 40, rows=3)
    db = tmp_path / "int.duckdb"
    proxy.add_rule("delay", method="GET", path="/k/", delay=0.05)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dreambolt",
            "ingest",
            f"s3://{bucket}/k/",
            "--table",
            "k",
            "--db",
            str(db),
            "--concurrency",
            "2",
            "--json",
            "--endpoint-url",
            proxy.endpoint_url,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    _wait_for_gets(proxy, 28)
    proc.send_signal(signal.SIGINT)
    stdout, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130
    report = json.loads(stdout)
    assert report["interrupted"] is True
    reported = {f["uri"] for f in report["files"] if f["status"] == "loaded"}
    with duckdb.connect(str(db), read_only=True) as con:
        exists = con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = 'k'"
        ).fetchall() == [(1,)]
    in_table = set(rows_per_file(db, "k")) if exists else set()
    with duckdb.connect(str(db), read_only=True) as con:
        active = {
            r[0]
            for r in con.execute(
                "SELECT uri FROM _dreambolt_loads WHERE table_name = 'k' AND active"
            ).fetchall()
        }
    assert reported == in_table == active
    assert report["totals"]["loaded"] == len(in_table)
