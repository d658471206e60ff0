"""The Delta Lake destination: same table layout, ledger and exactly-once rules as DuckDB,
on a local root and on a moto S3 root."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pytest
from deltalake import DeltaTable
from faultproxy import FaultProxy
from motoserver import MotoServer

from dreambolt import Ingester, S3Options
from dreambolt.errors import SinkError
from dreambolt.sinks import FileWrite, open_sink
from dreambolt.sinks.delta import EPOCH_APP, DeltaSink, _Batch

LINEAGE = ["_source_uri", "_source_etag", "_ingested_at"]


class Lake:
    """A Delta root (local folder or moto bucket prefix) and how to read it back."""

    def __init__(self, db: str, uri: str, storage: dict[str, str] | None, s3: S3Options) -> None:
        self.db, self.uri, self.storage, self.s3 = db, uri, storage, s3

    def table(self, name: str) -> DeltaTable:
        return DeltaTable(f"{self.uri}/{name}", storage_options=self.storage)

    def frame(self, name: str) -> pl.DataFrame:
        return pl.read_delta(f"{self.uri}/{name}", storage_options=self.storage)

    def ledger(self, table: str) -> pl.DataFrame:
        return self.frame("_dreambolt_loads").filter(pl.col("table_name") == table)

    def ingester(self, **kwargs: Any) -> Ingester:
        return Ingester(db=self.db, s3=self.s3, **kwargs)


@pytest.fixture(params=["local", "s3"])
def lake(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Lake]:
    if request.param == "local":
        yield Lake(f"delta:{tmp_path / 'lake'}", str(tmp_path / "lake"), None, S3Options())
        return
    moto: MotoServer = request.getfixturevalue("moto")
    bucket: str = request.getfixturevalue("bucket")
    storage = {
        "AWS_ACCESS_KEY_ID": os.environ["AWS_ACCESS_KEY_ID"],
        "AWS_SECRET_ACCESS_KEY": os.environ["AWS_SECRET_ACCESS_KEY"],
        "AWS_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": moto.endpoint_url,
        "AWS_ALLOW_HTTP": "true",
    }
    options = S3Options(endpoint_url=moto.endpoint_url)
    yield Lake(f"delta:s3://{bucket}/analytics", f"s3://{bucket}/analytics", storage, options)


def write_csvs(folder: Path, files: int, rows: int, *, start: int = 0) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(start, start + files):
        path = folder / f"{i:03d}.csv"
        path.write_text("id,v\n" + "".join(f"{i * 1000 + r},{r}\n" for r in range(rows)))
        paths.append(path)
    return paths


async def test_ingest_writes_table_lineage_and_ledger_then_rerun_is_unchanged(
    lake: Lake, tmp_path: Path
) -> None:
    write_csvs(tmp_path / "in", 5, 10)
    async with lake.ingester() as ing:
        report = await ing.ingest(str(tmp_path / "in"), table="events")
    assert [f.status for f in report.files] == ["loaded"] * 5
    frame = lake.frame("events")
    assert frame.columns == ["id", "v", *LINEAGE]
    assert frame.height == 50 and frame["id"].n_unique() == 50
    assert frame.schema["_ingested_at"] == pl.Datetime("us", "UTC")
    ledger = lake.ledger("events")
    assert ledger.filter(pl.col("active"))["rows"].to_list() == [10] * 5
    assert set(ledger["status"]) == {"loaded"}
    commits = lake.table("events").version()
    config = lake.table("events").metadata().configuration
    assert config["delta.setTransactionRetentionDuration"] == "interval 30 days"

    async with lake.ingester() as ing:
        again = await ing.ingest(str(tmp_path / "in"), table="events")
    assert [f.status for f in again.files] == ["unchanged"] * 5
    assert lake.table("events").version() == commits  # nothing written to the data table
    assert lake.frame("events").height == 50


async def test_small_files_go_in_few_commits(lake: Lake, tmp_path: Path) -> None:
    write_csvs(tmp_path / "in", 40, 3)
    async with lake.ingester() as ing:
        report = await ing.ingest(str(tmp_path / "in"), table="t")
    assert report.ok and sum(f.rows for f in report.files) == 120
    # one commit per batch of small files, never one per file
    assert lake.table("t").version() + 1 < 10


async def test_changed_file_replaces_its_rows_in_the_same_commit(
    lake: Lake, tmp_path: Path
) -> None:
    paths = write_csvs(tmp_path / "in", 3, 4)
    async with lake.ingester() as ing:
        await ing.ingest(str(tmp_path / "in"), table="t")
    before = lake.table("t").version()
    paths[1].write_text("id,v\n7,70\n8,80\n")
    os.utime(paths[1], (1, 2_000_000_000))  # a new etag whatever the clock's resolution
    async with lake.ingester() as ing:
        report = await ing.ingest(str(tmp_path / "in"), table="t")
    changed = [f for f in report.files if f.status == "loaded"]
    assert len(changed) == 1 and changed[0].replaced and changed[0].rows == 2
    after = lake.table("t")
    assert after.version() == before + 1  # removal and addition in one commit
    frame = lake.frame("t")
    assert frame.height == 4 + 2 + 4
    mine = frame.filter(pl.col("_source_uri") == changed[0].uri)
    assert sorted(mine["id"].to_list()) == [7, 8]
    # no version of the table ever shows both versions of the file, nor neither
    for version in range(before, after.version() + 1):
        old = DeltaTable(after.table_uri, version=version, storage_options=lake.storage)
        rows = pl.from_arrow(old.to_pyarrow_table())
        assert isinstance(rows, pl.DataFrame)
        assert rows.filter(pl.col("_source_uri") == changed[0].uri).height in (4, 2)
    active = lake.ledger("t").filter(pl.col("active") & (pl.col("uri") == changed[0].uri))
    assert active["rows"].to_list() == [2]


async def test_new_columns_merge_and_a_type_conflict_fails_only_that_file(
    lake: Lake, tmp_path: Path
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.csv").write_text("id,v\n1,10\n2,20\n")
    async with lake.ingester() as ing:
        await ing.ingest(str(folder), table="t")
    (folder / "b.csv").write_text("id,v,extra\n3,30,x\n")
    (folder / "c.csv").write_text("id,v\n4,not a number\n")
    version = lake.table("t").version()
    async with lake.ingester() as ing:
        report = await ing.ingest(str(folder), table="t")
    status = {Path(f.uri).name: f for f in report.files}
    assert status["a.csv"].status == "unchanged"
    assert status["b.csv"].status == "loaded"
    bad = status["c.csv"]
    assert bad.status == "failed" and bad.error is not None
    assert "'v'" in bad.error.message and "not a number" in bad.error.message
    frame = lake.frame("t").sort("id")
    assert frame["id"].to_list() == [1, 2, 3] and frame["extra"].to_list() == [None, None, "x"]
    assert frame.schema["v"] == pl.Int64
    assert lake.table("t").version() == version + 1  # only b's commit


async def test_replace_mode_rebuilds_and_old_batches_load_again(lake: Lake, tmp_path: Path) -> None:
    write_csvs(tmp_path / "one", 2, 3)
    write_csvs(tmp_path / "two", 1, 5, start=10)
    async with lake.ingester() as ing:
        await ing.ingest(str(tmp_path / "one"), table="t")
        await ing.ingest(str(tmp_path / "two"), table="t", mode="replace")
    frame = lake.frame("t")
    assert frame.height == 5 and frame["_source_uri"].n_unique() == 1
    assert lake.table("t").transaction_version(EPOCH_APP) == 1
    ledger = lake.ledger("t")
    active = ledger.filter(pl.col("active"))["uri"].to_list()
    assert active == frame["_source_uri"].unique().to_list()
    # the first batch's marker is from the old epoch: loading it again writes it again
    async with lake.ingester() as ing:
        report = await ing.ingest(str(tmp_path / "one"), table="t")
    assert [f.status for f in report.files] == ["loaded", "loaded"]
    assert lake.frame("t").height == 11


def test_a_batch_already_committed_is_not_written_again(lake: Lake) -> None:
    frame = pl.DataFrame({"id": [1, 2, 3]})
    files = [
        FileWrite("s3://src/a.csv", "e1", 10, frame),
        FileWrite("s3://src/b.csv", "e2", 10, frame),
    ]
    first = open_sink(lake.db, s3=lake.s3)
    second = open_sink(lake.db, s3=lake.s3)  # as a retried task would
    try:
        assert [w.rows for w in first.write_many("t", files, run_id="r1")] == [3, 3]
        version = lake.table("t").version()
        again = second.write_many("t", list(reversed(files)), run_id="r2")
        assert all(w.unchanged for w in again)
        assert lake.table("t").version() == version
    finally:
        first.close()
        second.close()
    assert lake.frame("t").height == 6
    # the commit carries the batch's marker: any order of the same (uri, etag) pairs
    batch = _Batch("t", [(f.uri, f.etag, f.size) for f in reversed(files)], "r9", False)
    assert lake.table("t").transaction_version(batch.marker(0)) == 0


def test_a_commit_reads_only_the_data_files_its_uris_could_be_in(tmp_path: Path) -> None:
    """Deciding which of a batch's files are loaded, and writing it, skip every data file
    whose `_source_uri` range (its statistics in the Delta log) misses the batch's: the table's
    old files are not read again at each commit, however big the table grows."""
    sink = open_sink(f"delta:{tmp_path / 'lake'}")
    frame = pl.DataFrame({"id": [1, 2]})

    def batch(n: int, etag: str = "e") -> list[FileWrite]:  # 100: DuckDB pushes down ~50
        return [FileWrite(f"s3://src/{n}/{i:03d}.csv", etag, 5, frame) for i in range(100)]

    try:
        for n in range(3):
            sink.write_many("t", batch(n), run_id="r")
        adds = pa.table(DeltaTable(str(tmp_path / "lake" / "t")).get_add_actions(flatten=True))
        [oldest] = [a for a in adds.to_pylist() if a["min._source_uri"] == "s3://src/0/000.csv"]
        (tmp_path / "lake" / "t" / oldest["path"]).write_bytes(b"unreadable now")
        with pytest.raises(pa.ArrowInvalid, match="Parquet"):  # a read that opened it fails
            DeltaTable(str(tmp_path / "lake" / "t")).to_pyarrow_dataset().to_table()
        assert [w.rows for w in sink.write_many("t", batch(3), run_id="r")] == [2] * 100
        assert all(w.unchanged for w in sink.write_many("t", batch(1), run_id="r"))
        assert all(w.replaced for w in sink.write_many("t", batch(2, "e2"), run_id="r"))
    finally:
        sink.close()


def test_a_lineage_read_once_per_table_version(tmp_path: Path) -> None:
    """`loaded` (a service's every poll) reads the data table's lineage once per version of it:
    with no commit since, no data file is opened; a new commit is read."""
    sink = open_sink(f"delta:{tmp_path / 'lake'}")
    frame = pl.DataFrame({"id": [1, 2]})
    try:
        sink.write_many("t", [FileWrite("s3://src/a.csv", "e1", 5, frame)], run_id="r")
        assert sink.loaded("t") == {"s3://src/a.csv": "e1"}
        for data in (tmp_path / "lake" / "t").glob("*.parquet"):
            data.write_bytes(b"unreadable now")
        assert sink.loaded("t") == {"s3://src/a.csv": "e1"}  # the same version: not read again
        with pytest.raises(SinkError, match="Parquet"):  # another sink has to read it
            open_sink(f"delta:{tmp_path / 'lake'}").loaded("t")
        sink.write_many("t", [FileWrite("s3://src/b.csv", "e2", 5, frame)], run_id="r")
        with pytest.raises(SinkError, match="Parquet"):  # a new version is read again
            sink.loaded("t")
    finally:
        sink.close()


def test_empty_files_are_ledger_only_and_a_file_that_empties_drops_its_rows(lake: Lake) -> None:
    sink = open_sink(lake.db, s3=lake.s3)
    try:
        full = pl.DataFrame({"id": [1, 2]})
        sink.write_many("t", [FileWrite("s3://x/a", "1", 5, full)], run_id="r")
        empty = pl.DataFrame(schema={"id": pl.Int64}).clear()
        [written] = sink.write_many("t", [FileWrite("s3://x/a", "2", 5, empty)], run_id="r")
        assert written.replaced and written.rows == 0
        assert lake.frame("t").height == 0
        assert sink.loaded("t") == {"s3://x/a": "2"}
        [same] = sink.write_many("t", [FileWrite("s3://x/a", "2", 5, empty)], run_id="r")
        assert same.unchanged
    finally:
        sink.close()


def test_ledger_gap_is_repaired_from_the_data_table(lake: Lake) -> None:
    sink = open_sink(lake.db, s3=lake.s3)
    assert isinstance(sink, DeltaSink)
    try:
        frame = pl.DataFrame({"id": [1, 2, 3]})
        sink.write_many("t", [FileWrite("s3://x/a", "1", 5, frame)], run_id="r")
        # as if killed between the data commit and the ledger commit: no ledger rows
        ledger = lake.table("_dreambolt_loads")
        ledger.delete("table_name = 't'")
        assert lake.ledger("t").height == 0
        assert sink.loaded("t") == {"s3://x/a": "1"}
        assert lake.ledger("t").height == 0  # reading writes nothing
        sink.record("t", [], run_id="r2")  # nothing to record: not a write either
        assert lake.ledger("t").height == 0
        other = FileWrite("s3://x/b", "1", 5, frame)
        sink.write_many("t", [other], run_id="r2")  # the first write repairs first
        repaired = lake.ledger("t").filter(pl.col("uri") == "s3://x/a")
        assert repaired.select("uri", "etag", "rows", "status", "active", "run_id").rows() == [
            ("s3://x/a", "1", 3, "loaded", True, "repair")
        ]
    finally:
        sink.close()


@pytest.mark.parametrize(
    ("db", "code"),
    [
        ("delta:{tmp}/missing/lake", "NoSuchDirectory"),
        ("delta:{tmp}/file.txt", "NotADatabase"),
        ("delta:gs://bucket/lake", "InvalidPath"),
        ("delta:", "InvalidPath"),
    ],
)
def test_a_root_that_cannot_be_used_is_a_fatal_error(tmp_path: Path, db: str, code: str) -> None:
    (tmp_path / "file.txt").write_text("keep me")
    with pytest.raises(SinkError) as caught:
        open_sink(db.format(tmp=tmp_path))
    assert caught.value.fatal and caught.value.code == code
    assert (tmp_path / "file.txt").read_text() == "keep me"
    assert not (tmp_path / "missing").exists()


def test_a_delta_table_is_not_a_root(lake: Lake) -> None:
    sink = open_sink(lake.db, s3=lake.s3)
    sink.write_many("t", [FileWrite("s3://x/a", "1", 5, pl.DataFrame({"id": [1]}))], run_id="r")
    inside = f"delta:{Path(lake.uri, 't').as_uri()}" if lake.storage is None else f"{lake.db}/t"
    with pytest.raises(SinkError, match="is a Delta table, not a root") as caught:
        open_sink(inside, s3=lake.s3)
    assert caught.value.fatal


def test_an_unreachable_bucket_is_a_fatal_error(moto: MotoServer) -> None:
    with pytest.raises(SinkError, match=r"cannot reach the Delta root.*NoSuchBucket") as caught:
        open_sink(
            "delta:s3://no-such-bucket-here/lake",
            s3=S3Options(endpoint_url=moto.endpoint_url),
        )
    assert caught.value.fatal


def test_owns_the_root_only(tmp_path: Path) -> None:
    sink = open_sink(f"delta:{tmp_path / 'lake'}")
    assert sink.owns((tmp_path / "lake" / "t" / "part-0.parquet").as_uri())
    assert not sink.owns((tmp_path / "lakeside.csv").as_uri())
    assert sink.name == f"delta:{tmp_path / 'lake'}"


async def test_abort_mode_still_commits_small_files_in_batches(lake: Lake, tmp_path: Path) -> None:
    write_csvs(tmp_path / "in", 40, 3)
    async with lake.ingester(on_error="abort") as ing:
        report = await ing.ingest(str(tmp_path / "in"), table="t")
    assert report.ok and [f.status for f in report.files] == ["loaded"] * 40
    assert lake.table("t").version() + 1 < 10  # not one commit per file


async def test_abort_mode_stops_at_the_first_bad_file_of_a_group(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    write_csvs(folder, 6, 3)
    (folder / "003.csv").write_bytes(b"id,v\n1,2,3,4\n\x00\xff")  # not CSV of this shape
    db = f"delta:{tmp_path / 'lake'}"
    async with Ingester(db=db, on_error="abort") as ing:
        report = await ing.ingest(str(folder), table="t")
    assert report.aborted
    by_name = {Path(f.uri).name: f.status for f in report.files}
    assert by_name["003.csv"] == "skipped"  # unreadable: skipped, and the run stops
    loaded = sorted(n for n, s in by_name.items() if s == "loaded")
    rows = pl.read_delta(str(tmp_path / "lake" / "t"))
    assert sorted({Path(u).name for u in rows["_source_uri"]}) == loaded
    assert rows.height == 3 * len(loaded)


def test_a_store_that_ignores_conditional_writes_is_refused_at_the_first_write(
    proxy: FaultProxy, moto: MotoServer, bucket: str, s3: Any
) -> None:
    from dreambolt.sinks import deltaprobe

    proxy.add_rule("strip", method="PUT", strip=("If-None-Match",))
    sink = open_sink(f"delta:s3://{bucket}/lake", s3=S3Options(endpoint_url=proxy.endpoint_url))
    assert sink.loaded("t") == {}  # reading needs no conditional writes
    assert {r.method for r in proxy.requests} <= {"GET", "HEAD"}  # opening, reading: no write
    files = [FileWrite("s3://src/a.csv", "e1", 10, pl.DataFrame({"id": [1]}))]
    with pytest.raises(SinkError, match=r"ignores conditional writes \(If-None-Match\)") as caught:
        sink.write_many("t", files, run_id="r1")
    assert caught.value.fatal and caught.value.code == "NoConditionalWrites"
    listed = s3.list_objects_v2(Bucket=bucket).get("Contents", [])
    assert listed == []  # the probe cleaned up, and nothing was written
    probes = [r for r in proxy.requests if deltaprobe.PROBE_FOLDER in r.path]
    assert [r.method for r in probes] == ["PUT", "PUT", "DELETE"]
    # moto itself honours the header: the same root is written
    sink = open_sink(f"delta:s3://{bucket}/lake", s3=S3Options(endpoint_url=moto.endpoint_url))
    assert [w.rows for w in sink.write_many("t", files, run_id="r1")] == [1]


def test_renewed_temporary_credentials_reach_the_delta_writes(
    moto: MotoServer, bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A profile whose credential_process hands out a new key each time, expiring in a minute:
    # botocore renews it at every use, as it would an hour-long role session near its end.
    # (Straight to moto: delta-rs holds the GIL in some S3 reads, which would starve the
    # in-process fault proxy.)
    counter = tmp_path / "issued"
    script = tmp_path / "creds.py"
    script.write_text(
        "import json, pathlib, datetime\n"
        f"p = pathlib.Path({str(counter)!r})\n"
        "n = int(p.read_text()) + 1 if p.exists() else 1\n"
        "p.write_text(str(n))\n"
        "end = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=60)\n"
        "print(json.dumps({'Version': 1, 'AccessKeyId': f'AKIDROTATING{n:04}',\n"
        "  'SecretAccessKey': f'secret-{n}', 'SessionToken': f'token-{n}',\n"
        "  'Expiration': end.isoformat()}))\n"
    )
    config = tmp_path / "config"
    config.write_text(
        f"[profile rotating]\ncredential_process = {sys.executable} {script}\nregion = us-east-1\n"
    )
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    options = S3Options(endpoint_url=moto.endpoint_url, profile="rotating")
    sink = open_sink(f"delta:s3://{bucket}/lake", s3=options)
    assert isinstance(sink, DeltaSink) and sink.root.storage is not None
    frame = pl.DataFrame({"id": [1]})
    sink.write_many("t", [FileWrite("s3://src/a.csv", "e1", 1, frame)], run_id="r1")
    first = sink.root.storage["AWS_ACCESS_KEY_ID"]
    sink.write_many("t", [FileWrite("s3://src/b.csv", "e1", 1, frame)], run_id="r2")
    second = sink.root.storage["AWS_ACCESS_KEY_ID"]
    assert re.fullmatch(r"AKIDROTATING\d{4}", first) and second > first  # renewed, in use
    assert sink.root.storage["AWS_SESSION_TOKEN"].startswith("token-")
    assert sink.loaded("t") == {"s3://src/a.csv": "e1", "s3://src/b.csv": "e1"}
    assert int(counter.read_text()) >= 3
