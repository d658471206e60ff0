"""`dreambolt ingest|ls --db delta:ROOT` as a user runs them (subprocesses), on a local root and
on a moto S3 root: dry runs and ls write nothing, exit codes and the JSON report as for DuckDB,
credentials from the source's chain, --embed, the Python API and DREAMBOLT_DB, other readers."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pytest
from conftest import FAKE_SECRET_ACCESS_KEY
from deltalake import DeltaTable, write_deltalake
from fake_openai import FakeOpenAI
from faultproxy import FaultProxy
from motoserver import IamUser, MotoServer

from dreambolt import Ingester, S3Options

LINEAGE = ["_source_uri", "_source_etag", "_ingested_at"]
Done = subprocess.CompletedProcess[str]


def run_all(*commands: Sequence[str], env: dict[str, str] | None = None) -> list[Done]:
    """Run `python -m dreambolt ARGS` for each command at once (no TTY); wait for all."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "dreambolt", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env or dict(os.environ),
        )
        for args in commands
    ]
    done = []
    for proc in procs:
        out, err = proc.communicate(timeout=180)
        done.append(subprocess.CompletedProcess(proc.args, proc.returncode, out, err))
    return done


def run(*args: str, env: dict[str, str] | None = None) -> Done:
    return run_all(args, env=env)[0]


def s3_storage(endpoint: str, key: str | None = None, secret: str | None = None) -> dict[str, str]:
    return {
        "AWS_ACCESS_KEY_ID": key or os.environ["AWS_ACCESS_KEY_ID"],
        "AWS_SECRET_ACCESS_KEY": secret or os.environ["AWS_SECRET_ACCESS_KEY"],
        "AWS_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ALLOW_HTTP": "true",
    }


@dataclass
class Lake:
    """A Delta root as the CLI names it (`args`), and how the test reads it back."""

    db: str
    uri: str
    args: list[str]
    storage: dict[str, str] | None = None
    s3: Any = None  # a boto3 client, for an S3 root
    options: S3Options = field(default_factory=S3Options)  # for an in-process Ingester

    def ingester(self, **kwargs: Any) -> Ingester:
        return Ingester(db=self.db, s3=self.options, **kwargs)

    def frame(self, table: str) -> pl.DataFrame:
        return pl.read_delta(f"{self.uri}/{table}", storage_options=self.storage)

    def version(self, table: str) -> int:
        return DeltaTable(f"{self.uri}/{table}", storage_options=self.storage).version()

    def tree(self) -> dict[str, Any]:
        """Every file under the root with its size and mtime (local) or etag (S3)."""
        if self.s3 is None:
            root = Path(self.uri)
            if not root.exists():
                return {}
            return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*")}
        bucket, prefix = self.uri[len("s3://") :].split("/", 1)
        found = self.s3.list_objects_v2(Bucket=bucket, Prefix=prefix + "/")
        return {o["Key"]: o["ETag"] for o in found.get("Contents", [])}


def s3_lake(moto: MotoServer, bucket: str, s3: Any) -> Lake:
    uri, endpoint = f"s3://{bucket}/lake", moto.endpoint_url
    args = ["--db", f"delta:{uri}", "--endpoint-url", endpoint]
    return Lake(
        f"delta:{uri}", uri, args, s3_storage(endpoint), s3, S3Options(endpoint_url=endpoint)
    )


@pytest.fixture(params=["local", "s3"])
def lake(request: pytest.FixtureRequest, tmp_path: Path) -> Lake:
    if request.param == "local":
        root = str(tmp_path / "lake")
        return Lake(f"delta:{root}", root, ["--db", f"delta:{root}"])
    get = request.getfixturevalue
    return s3_lake(get("moto"), get("bucket"), get("s3"))


def write_csvs(folder: Path, names: Sequence[str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        (folder / f"{name}.csv").write_text(f"id,v\n{i * 10},{name}\n{i * 10 + 1},{name}\n")
    return folder


def states(listing: str) -> dict[str, str]:
    """ls output: object name -> new/unchanged/changed (the first word of each line)."""
    return {Path(line.split()[-1]).name: line.split()[0] for line in listing.splitlines()}


def test_dry_run_and_ls_on_a_root_not_made_yet_create_nothing(
    moto: MotoServer, bucket: str, s3: Any, tmp_path: Path
) -> None:
    src = write_csvs(tmp_path / "in", ["a", "b"])
    local = Lake(
        f"delta:{tmp_path}/lake", str(tmp_path / "lake"), ["--db", f"delta:{tmp_path}/lake"]
    )
    remote = s3_lake(moto, bucket, s3)
    plan, listing, remote_plan = run_all(
        ["ingest", str(src), *local.args, "--table", "t", "--dry-run"],
        ["ls", str(src), *local.args, "--table", "t"],
        ["ingest", str(src), *remote.args, "--table", "t", "--dry-run", "--json"],
    )
    assert plan.returncode == 0 and "2 new; " in plan.stderr, plan.stderr
    assert listing.returncode == 0, listing.stderr
    assert states(listing.stdout) == {"a.csv": "new", "b.csv": "new"}
    assert remote_plan.returncode == 0, remote_plan.stderr
    actions = [(f["status"], f["action"]) for f in json.loads(remote_plan.stdout)["files"]]
    assert actions == [("planned", "new")] * 2
    assert remote.tree() == {}  # no table, no ledger, nothing under the S3 root
    assert local.tree() == {}
    assert not Path(local.uri).exists()  # a dry run or ls does not start a lake


async def test_dry_run_and_ls_show_new_unchanged_changed_and_write_nothing(
    lake: Lake, tmp_path: Path
) -> None:
    src = write_csvs(tmp_path / "in", ["a", "b", "c"])
    async with lake.ingester() as ing:  # the Python API, on both kinds of root
        report = await ing.ingest(str(src), table="t")
    assert [f.status for f in report.files] == ["loaded"] * 3
    # what landed, for two readers: each file's rows with the etag the report gives
    frame = lake.frame("t")
    assert frame.columns == ["id", "v", *LINEAGE] and frame.height == 6
    etags = dict(frame.select("_source_uri", "_source_etag").unique().iter_rows())
    assert etags == {f.uri: f.etag for f in report.files} and None not in etags.values()
    table = DeltaTable(f"{lake.uri}/t", storage_options=lake.storage)
    assert sorted(table.to_pyarrow_table().column("id").to_pylist()) == [0, 1, 10, 11, 20, 21]
    assert len(table.history()) == table.version() + 1  # the README's readers, as it shows them
    lazy = pl.scan_delta(f"{lake.uri}/t", storage_options=lake.storage)
    only_b = lazy.filter(pl.col("_source_uri").str.ends_with("/b.csv")).collect()
    assert only_b["v"].to_list() == ["b", "b"]

    (src / "b.csv").write_text("id,v\n7,changed\n")
    os.utime(src / "b.csv", (1, 2_000_000_000))  # a new etag whatever the clock's resolution
    (src / "d.csv").write_text("id,v\n99,d\n")
    before, version = lake.tree(), lake.version("t")
    ledger = lake.frame("_dreambolt_loads")
    listing, plan = run_all(
        ["ls", str(src), *lake.args, "--table", "t"],
        ["ingest", str(src), *lake.args, "--table", "t", "--dry-run", "--json"],
    )
    expected = {"a.csv": "unchanged", "b.csv": "changed", "c.csv": "unchanged", "d.csv": "new"}
    assert listing.returncode == 0, listing.stderr
    assert states(listing.stdout) == expected
    assert plan.returncode == 0, plan.stderr
    predicted = json.loads(plan.stdout)
    assert predicted["dry_run"] is True and predicted["db"] == lake.db
    actions = {Path(f["uri"]).name: f["action"] or f["status"] for f in predicted["files"]}
    assert actions == expected
    assert lake.tree() == before and lake.version("t") == version  # nothing written
    assert lake.frame("_dreambolt_loads").equals(ledger)


async def test_exit_codes_json_report_and_replace_on_an_s3_root(
    moto: MotoServer, proxy: FaultProxy, s3: Any, bucket: str, tmp_path: Path
) -> None:
    for i in range(3):
        s3.put_object(Bucket=bucket, Key=f"in/{i}.csv", Body=f"id\n{i}\n{i + 10}\n".encode())
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"PAR1 this is no parquet file PAR1")
    lake = s3_lake(moto, bucket, s3)
    async with lake.ingester() as ing:  # table r holds 0.csv before the replace
        await ing.ingest(f"s3://{bucket}/in/0.csv", table="r")
    proxy.add_rule("error", status=403, code="AccessDenied", path="/in/1.csv$")
    db = ["--db", lake.db, "--endpoint-url", proxy.endpoint_url]
    inputs = [f"s3://{bucket}/in/", f"s3://{bucket}/missing.csv", str(bad)]
    partial, aborted, replace = run_all(
        ["ingest", *inputs, *db, "--table", "t", "--json"],
        ["ingest", *inputs, *db, "--table", "t2", "--json", "--on-error", "abort"],
        ["ingest", f"s3://{bucket}/in/2.csv", *db, "--table", "r", "--mode", "replace"],
    )
    assert partial.returncode == 1, partial.stderr
    report = json.loads(partial.stdout)
    assert (report["db"], report["table"], report["totals"]["rows"]) == (lake.db, "t", 4)
    status = {f["uri"].rsplit("/", 1)[-1]: f for f in report["files"]}
    assert {n: f["status"] for n, f in status.items()} == {
        "0.csv": "loaded",
        "1.csv": "skipped",
        "2.csv": "loaded",
        "missing.csv": "skipped",
        "bad.parquet": "skipped",
    }
    assert "AccessDenied" in status["1.csv"]["error"]["message"]
    etag = s3.head_object(Bucket=bucket, Key="in/2.csv")["ETag"]
    assert (status["2.csv"]["rows"], status["2.csv"]["etag"]) == (2, etag)
    frame = lake.frame("t")
    assert sorted(frame["id"].to_list()) == [0, 2, 10, 12]
    assert set(frame["_source_etag"]) == {status["0.csv"]["etag"], etag}
    ledger = lake.frame("_dreambolt_loads").filter(pl.col("table_name") == "t")
    assert ledger.filter(pl.col("active"))["rows"].to_list() == [2, 2]

    assert aborted.returncode == 3, aborted.stderr
    stopped = json.loads(aborted.stdout)
    # the missing input aborts the run before any file is read: nothing written for t2
    assert stopped["aborted"] is True and stopped["totals"]["loaded"] == 0
    assert not DeltaTable.is_deltatable(f"{lake.uri}/t2", storage_options=lake.storage)

    assert replace.returncode == 0, replace.stderr
    assert lake.frame("r")["id"].sort().to_list() == [2, 12]
    active = lake.frame("_dreambolt_loads").filter((pl.col("table_name") == "r") & pl.col("active"))
    assert active["uri"].to_list() == [f"s3://{bucket}/in/2.csv"]


def test_unusable_delta_destinations_exit_3_and_usage_errors_exit_2(
    moto: MotoServer, tmp_path: Path
) -> None:
    src = write_csvs(tmp_path / "in", ["a"])
    (tmp_path / "file.txt").write_text("keep me")
    write_deltalake(str(tmp_path / "lake" / "t"), pa.table({"id": [1]}))
    cases = {
        f"delta:{tmp_path}/missing/lake": "does not exist",
        f"delta:{tmp_path}/file.txt": "is a file",
        f"delta:{tmp_path.as_uri()}/lake/t": "is a Delta table, not a root",
        "delta:s3://no-such-bucket-here/lake": "Delta root 'delta:s3://no-such-bucket-here/lake'",
    }
    usage = {
        ("--table", "x; drop table y"): "invalid table name",
        ("--mode", "sideways"): "'sideways' is not one of",
        ("--on-error", "maybe"): "'maybe' is not one of",
    }
    good_db = ["--db", f"delta:{tmp_path}/other", "--table", "t"]
    done = run_all(
        *(["ingest", str(src), "--db", db, "--endpoint-url", moto.endpoint_url] for db in cases),
        *(["ingest", str(src), *good_db, *args] for args in usage),
    )
    for (db, why), result in zip(cases.items(), done, strict=False):
        assert (result.returncode, db) == (3, db), result.stderr
        assert why in result.stderr.replace("\n", " "), result.stderr
    for (args, why), result in zip(usage.items(), done[len(cases) :], strict=True):
        assert (result.returncode, args) == (2, args), result.stderr
        assert why in result.stderr.replace("\n", " "), result.stderr
    assert (tmp_path / "file.txt").read_text() == "keep me"
    assert not (tmp_path / "missing").exists() and not (tmp_path / "other").exists()
    assert DeltaTable(str(tmp_path / "lake" / "t")).version() == 0


def profiles(tmp_path: Path, users: dict[str, IamUser]) -> dict[str, str]:
    """The environment with an AWS config and credentials file holding one profile per user."""
    config, credentials = tmp_path / "aws-config", tmp_path / "aws-credentials"
    config.write_text("".join(f"[profile {name}]\nregion = us-east-1\n" for name in users))
    credentials.write_text(
        "".join(
            f"[{name}]\naws_access_key_id = {user.access_key_id}\n"
            f"aws_secret_access_key = {user.secret_access_key}\n"
            for name, user in users.items()
        )
    )
    return dict(
        os.environ, AWS_CONFIG_FILE=str(config), AWS_SHARED_CREDENTIALS_FILE=str(credentials)
    )


def test_credentials_come_from_the_profile_and_a_refused_key_exits_3_without_the_secret(
    moto: MotoServer, s3: Any, bucket: str, tmp_path: Path
) -> None:
    src = write_csvs(tmp_path / "in", ["a", "b"])
    lake = s3_lake(moto, bucket, s3)
    writer = moto.create_user(bucket, actions=("s3:*",))
    env = profiles(tmp_path, {"lakehouse": writer})
    with moto.enable_auth():  # the session's env keys are unknown to moto's IAM
        ok, refused = run_all(
            ["ingest", str(src), *lake.args, "--table", "t", "--profile", "lakehouse"],
            ["-vv", "ingest", str(src), *lake.args, "--table", "t"],
            env=env,
        )
    assert ok.returncode == 0, ok.stderr
    assert lake.frame("t").height == 4
    assert refused.returncode == 3, refused.stderr
    assert re.search(r"Delta root .*(InvalidAccessKeyId|AccessDenied|403)", refused.stderr)
    for result in (ok, refused):
        shown = result.stdout + result.stderr
        assert FAKE_SECRET_ACCESS_KEY not in shown and writer.secret_access_key not in shown


async def test_ls_and_dry_run_need_only_read_access_to_an_s3_root(
    moto: MotoServer, s3: Any, bucket: str, tmp_path: Path
) -> None:
    src = write_csvs(tmp_path / "in", ["a", "b"])
    lake = s3_lake(moto, bucket, s3)
    async with lake.ingester() as ing:  # before auth is enforced
        await ing.ingest(str(src / "a.csv"), table="t")
    env = profiles(tmp_path, {"reader": moto.create_user(bucket)})  # may list and get only
    with moto.enable_auth():
        listing, plan = run_all(
            ["ls", str(src), *lake.args, "--table", "t", "--profile", "reader"],
            ["ingest", str(src), *lake.args, "--table", "t", "--profile", "reader", "--dry-run"],
            env=env,
        )
    assert listing.returncode == 0, listing.stderr
    assert states(listing.stdout) == {"a.csv": "unchanged", "b.csv": "new"}
    assert plan.returncode == 0 and "1 new, 1 unchanged;" in plan.stderr, plan.stderr


async def test_file_uri_root_in_python_and_dreambolt_db_with_aws_endpoint_url_from_the_env(
    moto: MotoServer, s3: Any, bucket: str, tmp_path: Path
) -> None:
    src = write_csvs(tmp_path / "in", ["a", "b"])
    async with Ingester(db=f"delta:{tmp_path.as_uri()}/lake") as ing:  # delta:file:///abs
        report = await ing.ingest(str(src), table="t")
    assert report.ok and [f.status for f in report.files] == ["loaded", "loaded"]
    assert pl.read_delta(str(tmp_path / "lake" / "t")).height == 4

    # the S3 source and the S3 root both reached through AWS_ENDPOINT_URL; --db from the env
    s3.put_object(Bucket=bucket, Key="src/x.csv", Body=b"id\n1\n2\n3\n")
    env = dict(os.environ, AWS_ENDPOINT_URL=moto.endpoint_url)
    env["DREAMBOLT_DB"] = f"delta:s3://{bucket}/analytics"
    done = run("ingest", f"s3://{bucket}/src/x.csv", "--table", "events", env=env)
    assert done.returncode == 0, done.stderr
    events = pl.read_delta(
        f"s3://{bucket}/analytics/events", storage_options=s3_storage(moto.endpoint_url)
    )
    assert events["id"].to_list() == [1, 2, 3]
    assert events["_source_uri"].unique().to_list() == [f"s3://{bucket}/src/x.csv"]


def put_docs(path: Path, bodies: list[str]) -> None:
    pl.DataFrame({"id": list(range(len(bodies))), "body": bodies}).write_parquet(path)


async def test_embed_into_delta_stores_float32_vectors_and_caches_them_under_the_root(
    moto: MotoServer, bucket: str, s3: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lake = s3_lake(moto, bucket, s3)
    src = tmp_path / "docs"
    src.mkdir()
    put_docs(src / "a.parquet", ["the cat sat", "a dog barked", "tea"])
    put_docs(src / "b.parquet", ["b one", "b two"])
    with FakeOpenAI() as fake:
        monkeypatch.setenv("OPENAI_API_KEY", fake.api_key)
        monkeypatch.setenv("OPENAI_BASE_URL", fake.base_url)
        embed = {"embed": "text-embedding-ada-002", "embed_column": "body"}
        async with lake.ingester(**embed) as ing:
            await ing.ingest(str(src), table="docs")
        assert sum(r.inputs for r in fake.served) == 5
        frame = lake.frame("docs")
        assert frame.schema["embedding"] == pl.List(pl.Float32)
        assert frame["embedding"].list.len().to_list() == [1536] * 5
        for body, vector in frame.select("body", "embedding").iter_rows():
            assert np.allclose(np.asarray(vector, dtype=np.float32), fake.vector_for(body))
        cache = f"{lake.uri}/_dreambolt_embeddings"
        assert DeltaTable.is_deltatable(cache, storage_options=lake.storage)

        put_docs(src / "b.parquet", ["b one", "b three", "b four"])
        os.utime(src / "b.parquet", (1, 2_000_000_000))
        fake.reset()
        flags = ["--embed", "text-embedding-ada-002", "--embed-column", "body", "--json"]
        second = run("ingest", str(src), *lake.args, "--table", "docs", *flags)
        assert second.returncode == 0, second.stderr
        assert sum(r.inputs for r in fake.served) == 2  # only b's new texts
    stats = json.loads(second.stdout)["embedding"]
    assert (stats["embedded"], stats["cached"]) == (2, 1)
    again = lake.frame("docs")
    assert sorted(again["body"]) == sorted(
        ["the cat sat", "a dog barked", "tea", "b one", "b three", "b four"]
    )
    assert again["embedding"].list.len().to_list() == [1536] * 6
    assert pl.read_delta(cache, storage_options=lake.storage).height == 5 + 2
