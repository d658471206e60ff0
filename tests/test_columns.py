"""`columns=`: only the columns asked for, in that order, from `load()`, `ingest()` and
`dreambolt ingest --columns`; a file without one fails naming the file and the columns it has.

Real moto over HTTP, real DuckDB files; files small enough for the grouped CSV path, and others
(Parquet, NDJSON, gzip) parsed alone, so both ways of parsing are projected.
"""

from __future__ import annotations

import gzip
import io
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pytest
from motoserver import MotoServer
from polars.testing import assert_frame_equal

from dreambolt.errors import FormatError
from dreambolt.ingest import Ingester
from dreambolt.s3.options import S3Options

ROWS = {"id": [1, 2, 3], "name": ["a", "b", "c"], "score": [0.5, 1.5, 2.5]}


def _objects() -> dict[str, bytes]:
    frame = pl.DataFrame(ROWS)
    parquet, ndjson = io.BytesIO(), io.BytesIO()
    frame.write_parquet(parquet)
    frame.write_ndjson(ndjson)
    csv = frame.write_csv().encode()
    return {
        "mix/a.csv": csv,
        "mix/b.csv": frame.with_columns(pl.col("id") + 10).write_csv().encode(),
        "mix/c.parquet": parquet.getvalue(),
        "mix/d.ndjson": ndjson.getvalue(),
        "mix/e.csv.gz": gzip.compress(csv),
    }


def _put(s3: Any, bucket: str, objects: dict[str, bytes]) -> None:
    for key, body in objects.items():
        s3.put_object(Bucket=bucket, Key=key, Body=body)


def _options(moto: MotoServer) -> S3Options:
    return S3Options(endpoint_url=moto.endpoint_url, backoff_factor=0.01, max_backoff=0.05)


async def test_load_keeps_only_the_columns_asked_for_in_their_order(
    moto: MotoServer, s3: Any, bucket: str
) -> None:
    _put(s3, bucket, _objects())
    async with Ingester(s3=_options(moto)) as ing:
        whole = await ing.load(f"s3://{bucket}/mix/")
        chosen = await ing.load(f"s3://{bucket}/mix/", columns=["score", "id"])
        one = await ing.load(f"s3://{bucket}/mix/c.parquet", columns=("name",))
    assert chosen.columns == ["score", "id"]
    assert_frame_equal(chosen, whole.select("score", "id"))
    assert chosen.height == 15
    assert one.to_dict(as_series=False) == {"name": ["a", "b", "c"]}


@pytest.mark.parametrize("key", ["mix/a.csv", "mix/c.parquet", "mix/e.csv.gz"])
async def test_load_of_a_file_without_a_column_names_the_file_and_its_columns(
    moto: MotoServer, s3: Any, bucket: str, key: str
) -> None:
    _put(s3, bucket, _objects())
    async with Ingester(s3=_options(moto)) as ing:
        with pytest.raises(FormatError) as caught:
            await ing.load(f"s3://{bucket}/{key}", columns=["id", "nope"])
    message = str(caught.value)
    assert f"s3://{bucket}/{key}" in message
    assert "'nope'" in message and "'name'" in message and "'score'" in message


async def test_load_of_many_small_csvs_one_lacking_a_column_raises_for_that_file(
    moto: MotoServer, s3: Any, bucket: str
) -> None:
    objects = {f"many/{i:02d}.csv": f"id,name\n{i},n{i}\n".encode() for i in range(20)}
    objects["many/07.csv"] = b"id,other\n7,x\n"
    _put(s3, bucket, objects)
    async with Ingester(s3=_options(moto)) as ing:
        both = await ing.load(f"s3://{bucket}/many/0[0-6].csv", columns=["name", "id"])
        with pytest.raises(FormatError, match=rf"s3://{bucket}/many/07\.csv: .*'name'.*'other'"):
            await ing.load(f"s3://{bucket}/many/", columns=["name", "id"])
    assert both.columns == ["name", "id"]
    assert both["id"].to_list() == list(range(7))


def test_columns_must_be_a_list_of_distinct_names() -> None:
    from dreambolt.load import checked_columns

    assert checked_columns(None) is None
    assert checked_columns(("b", "a")) == ["b", "a"]
    for bad in ("id", [], ["a", "a"], ["a", ""]):
        with pytest.raises(ValueError, match="columns"):
            checked_columns(bad)


async def test_ingest_loads_the_columns_and_lineage_and_skips_a_file_without_one(
    moto: MotoServer, s3: Any, bucket: str, tmp_path: Path
) -> None:
    objects = _objects()
    objects["mix/f.csv"] = b"id,other\n9,x\n"
    _put(s3, bucket, objects)
    db = tmp_path / "cols.duckdb"
    async with Ingester(db=db, s3=_options(moto)) as ing:
        report = await ing.ingest(f"s3://{bucket}/mix/", table="t", columns=["name", "id"])
    results = {r.uri.rsplit("/", 1)[1]: r for r in report.files}
    assert results["f.csv"].status == "skipped" and results["f.csv"].error is not None
    assert results["f.csv"].error.type == "FormatError"
    assert "'name'" in results["f.csv"].error.message
    assert "'other'" in results["f.csv"].error.message
    assert {n for n, r in results.items() if r.status == "loaded"} == {
        "a.csv",
        "b.csv",
        "c.parquet",
        "d.ndjson",
        "e.csv.gz",
    }
    with duckdb.connect(str(db), read_only=True) as con:
        names = [row[0] for row in con.execute("DESCRIBE t").fetchall()]
        rows = con.execute("SELECT count(*), sum(id) FROM t").fetchone()
    assert names[:2] == ["name", "id"]
    assert "score" not in names and {"_source_uri", "_source_etag"} <= set(names)
    assert rows == (15, 4 * 6 + 36)


def _cli(*args: str, endpoint: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "dreambolt", "ingest", *args, "--endpoint-url", endpoint]
    return subprocess.run(
        command, capture_output=True, text=True, env=dict(os.environ), timeout=120
    )


def test_cli_columns_flag(moto: MotoServer, s3: Any, bucket: str, tmp_path: Path) -> None:
    _put(s3, bucket, _objects())
    db = tmp_path / "cli.duckdb"
    done = _cli(
        f"s3://{bucket}/mix/",
        *("--db", str(db), "--table", "t", "--columns", " score , id", "--quiet"),
        endpoint=moto.endpoint_url,
    )
    assert done.returncode == 0, done.stderr
    with duckdb.connect(str(db), read_only=True) as con:
        names = [row[0] for row in con.execute("DESCRIBE t").fetchall()]
        assert con.execute("SELECT count(*) FROM t").fetchone() == (15,)
    assert names[:2] == ["score", "id"] and "name" not in names

    missing = _cli(
        f"s3://{bucket}/mix/a.csv",
        *("--db", str(db), "--table", "u", "--columns", "id,nope", "--quiet"),
        endpoint=moto.endpoint_url,
    )
    assert missing.returncode == 1
    assert "nope" in missing.stderr and f"s3://{bucket}/mix/a.csv" in missing.stderr

    usage = _cli(
        f"s3://{bucket}/mix/", "--db", str(db), "--columns", "id,,name", endpoint=moto.endpoint_url
    )
    assert usage.returncode == 2 and "empty column name" in usage.stderr
