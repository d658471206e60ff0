"""`dreambolt ingest --embed` end to end: moto for objects, the fake OpenAI server for vectors."""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import polars as pl
import pytest
from fake_openai import FakeOpenAI
from faultproxy import FaultProxy
from test_cli import run

from dreambolt import Ingester

TEXTS = ["the cat sat on the mat", "a dog barked", None, "", "the cat sat on the mat", "tea"]


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        yield server


@pytest.fixture
def openai_env(fake: FakeOpenAI) -> Iterator[dict[str, str]]:
    fake.reset()
    yield dict(os.environ, OPENAI_API_KEY=fake.api_key, OPENAI_BASE_URL=fake.base_url)
    fake.reset()


@pytest.fixture
def openai_in_process(
    fake: FakeOpenAI, openai_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> FakeOpenAI:
    """The fake server's key and URL in this process's environment (for in-process runs)."""
    monkeypatch.setenv("OPENAI_API_KEY", fake.api_key)
    monkeypatch.setenv("OPENAI_BASE_URL", fake.base_url)
    return fake


def put_docs(s3: Any, bucket: str, key: str, bodies: list[str | None]) -> None:
    buffer = io.BytesIO()
    pl.DataFrame(
        {
            "id": list(range(len(bodies))),
            "body": bodies,
            "title": [f"t{i}" for i in range(len(bodies))],
        }
    ).write_parquet(buffer)
    s3.put_object(Bucket=bucket, Key=key, Body=buffer.getvalue())


def embed_args(fake: FakeOpenAI) -> list[str]:
    return [
        "--embed",
        "text-embedding-ada-002",
        "--embed-column",
        "body",
        "--embed-base-url",
        fake.base_url,
    ]


def test_vectors_land_in_order_with_the_model_dimension_and_are_cached(
    proxy: FaultProxy,
    s3: Any,
    bucket: str,
    tmp_path: Path,
    fake: FakeOpenAI,
    openai_env: dict[str, str],
) -> None:
    put_docs(s3, bucket, "docs/a.parquet", TEXTS)
    db = tmp_path / "e.duckdb"
    done = run(
        "ingest",
        f"s3://{bucket}/docs/a.parquet",
        "--db",
        str(db),
        "--json",
        *embed_args(fake),
        endpoint=proxy.endpoint_url,
        env=openai_env,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["embedding"]["embedded"] == 3 and report["embedding"]["cached"] == 0
    with duckdb.connect(str(db), read_only=True) as con:
        kind = con.execute(
            "SELECT data_type FROM information_schema.columns "
            "WHERE table_name = 'a' AND column_name = 'embedding'"
        ).fetchall()
        rows = con.execute("SELECT id, body, embedding FROM a ORDER BY id").fetchall()
    assert kind == [("FLOAT[1536]",)]
    for _, body, vector in rows:
        if body:
            assert np.allclose(np.asarray(vector, dtype=np.float32), fake.vector_for(body))
        else:
            assert vector is None  # null or empty text: no vector, and no call for it
    assert sum(r.inputs for r in fake.served) == 3  # duplicates and blanks were not sent

    # another file with overlapping texts: only the new text goes to the provider
    put_docs(s3, bucket, "docs/b.parquet", ["a dog barked", "tea", "brand new text"])
    fake.reset()
    second = run(
        "ingest",
        f"s3://{bucket}/docs/",
        "--table",
        "a",
        "--db",
        str(db),
        "--json",
        *embed_args(fake),
        endpoint=proxy.endpoint_url,
        env=openai_env,
    )
    assert second.returncode == 0, second.stderr
    stats = json.loads(second.stdout)["embedding"]
    assert (stats["embedded"], stats["cached"]) == (1, 2)
    assert sum(r.inputs for r in fake.served) == 1

    # and a re-run of everything makes no request at all
    fake.reset()
    third = run(
        "ingest",
        f"s3://{bucket}/docs/",
        "--table",
        "a",
        "--db",
        str(db),
        *embed_args(fake),
        endpoint=proxy.endpoint_url,
        env=openai_env,
    )
    assert third.returncode == 0, third.stderr
    assert fake.requests == []


def test_refused_key_stops_the_run_with_exit_3_and_writes_nothing(
    proxy: FaultProxy,
    s3: Any,
    bucket: str,
    tmp_path: Path,
    fake: FakeOpenAI,
    openai_env: dict[str, str],
) -> None:
    for name in ("a", "b", "c"):
        put_docs(s3, bucket, f"docs/{name}.parquet", [f"{name} one", f"{name} two"])
    db = tmp_path / "e.duckdb"
    env = dict(openai_env, OPENAI_API_KEY="sk-wrong-key-0000")
    done = run(
        "ingest",
        f"s3://{bucket}/docs/",
        "--db",
        str(db),
        *embed_args(fake),
        endpoint=proxy.endpoint_url,
        env=env,
    )
    assert done.returncode == 3, done.stderr
    assert "API key was refused" in done.stderr and "sk-wrong-key-0000" not in done.stderr
    assert len(fake.requests) <= 3  # stopped early instead of failing every file in turn
    with duckdb.connect(str(db), read_only=True) as con:
        tables = {
            r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()
        }
    assert "docs" not in tables


def test_missing_key_exits_3_before_any_download(
    proxy: FaultProxy,
    s3: Any,
    bucket: str,
    tmp_path: Path,
    fake: FakeOpenAI,
    openai_env: dict[str, str],
) -> None:
    put_docs(s3, bucket, "docs/a.parquet", ["x"])
    env = {k: v for k, v in openai_env.items() if k != "OPENAI_API_KEY"}
    done = run(
        "ingest",
        f"s3://{bucket}/docs/",
        "--db",
        str(tmp_path / "e.duckdb"),
        *embed_args(fake),
        endpoint=proxy.endpoint_url,
        env=env,
    )
    assert done.returncode == 3 and "OPENAI_API_KEY" in done.stderr
    assert proxy.requests == []  # not even a listing


def test_unknown_model_is_a_usage_error(tmp_path: Path) -> None:
    done = run("ingest", "x.csv", "--embed", "word2vec", "--db", str(tmp_path / "e.duckdb"))
    assert done.returncode == 2 and "word2vec" in done.stderr


def test_dry_run_shows_texts_and_tokens_that_would_be_sent(
    proxy: FaultProxy,
    s3: Any,
    bucket: str,
    tmp_path: Path,
    fake: FakeOpenAI,
    openai_env: dict[str, str],
) -> None:
    put_docs(s3, bucket, "docs/a.parquet", TEXTS)
    done = run(
        "ingest",
        f"s3://{bucket}/docs/",
        "--db",
        str(tmp_path / "e.duckdb"),
        "--dry-run",
        "--json",
        *embed_args(fake),
        endpoint=proxy.endpoint_url,
        env=openai_env,
    )
    assert done.returncode == 0, done.stderr
    (planned,) = json.loads(done.stdout)["files"]
    assert planned["texts"] == 3 and 3 <= planned["tokens"] <= 20
    assert fake.requests == []
    human = run(
        "ingest",
        f"s3://{bucket}/docs/",
        "--db",
        str(tmp_path / "e.duckdb"),
        "--dry-run",
        *embed_args(fake),
        endpoint=proxy.endpoint_url,
        env=openai_env,
    )
    assert "embedding would send 3 texts" in human.stderr


async def test_load_with_an_embedder_adds_the_column(
    tmp_path: Path,
    openai_in_process: FakeOpenAI,
) -> None:
    path = tmp_path / "notes.csv"
    path.write_text("id,text\n1,hello\n2,\n3,world\n")
    async with Ingester(db=tmp_path / "unused.duckdb") as ing:
        frame = await ing.load(str(path), embed="text-embedding-3-small")
    assert frame.schema["embedding"] == pl.Array(pl.Float32, 1536)
    assert frame["embedding"].null_count() == 1
    assert not (tmp_path / "unused.duckdb").exists()  # load writes nothing


async def test_big_files_are_embedded_batch_by_batch(
    tmp_path: Path,
    openai_in_process: FakeOpenAI,
) -> None:
    path = tmp_path / "big.csv"
    path.write_text("id,text\n" + "".join(f"{i},sentence number {i % 500}\n" for i in range(3000)))
    db = tmp_path / "e.duckdb"
    async with Ingester(db=db, spool_threshold=1024, embed="text-embedding-3-small") as ing:
        report = await ing.ingest(str(path), table="big")
    assert report.count("loaded") == 1 and report.embedding is not None
    assert report.embedding["embedded"] == 500 and report.embedding["texts"] == 3000
    assert path.exists()  # the user's file is read in place, never removed
    with duckdb.connect(str(db), read_only=True) as con:
        got = con.execute("SELECT count(*), count(embedding) FROM big").fetchall()
        sample = con.execute("SELECT text, embedding FROM big WHERE id = 1234").fetchall()
    assert got == [(3000, 3000)]
    expected = openai_in_process.vector_for(sample[0][0])
    assert np.allclose(np.asarray(sample[0][1], dtype=np.float32), expected)
