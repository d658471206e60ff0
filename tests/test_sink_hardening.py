"""The DuckDB sink under hostile conditions, on real database files, threads and processes.

A destination that is not a database, many writers on one file, very wide tables, a full disk,
frames whose schema changes mid-file, and data that cannot be handed to DuckDB.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import polars as pl
import pytest
from polars.exceptions import PanicException

from dreambolt.errors import SinkError
from dreambolt.sinks.duckdb import LEDGER, DuckDBSink, FileWrite, Written
from dreambolt.sinks.embeddings import DuckDBEmbeddingCache
from dreambolt.sinks.failures import io_failure, is_lock_error

ROOT = Path(__file__).resolve().parents[1]


def run_python(code: str, *args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """Run `code` in a fresh interpreter that imports this checkout of dreambolt."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        **kwargs,
    )


def last_json(proc: subprocess.CompletedProcess[str]) -> Any:
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def one(frame: pl.DataFrame) -> Iterator[pl.DataFrame]:
    yield frame


def ids(i: int, n: int = 10) -> pl.DataFrame:
    return pl.DataFrame({"id": list(range(i * n, i * n + n))})


# --- 1. the destination -------------------------------------------------------------------

PARQUET_HEAD = b"PAR1\x15\x04\x15\x10\x15\x14L\x15\x02\x15\x00\x12\x00\x00"


@pytest.mark.parametrize(
    "content",
    [
        b"id,v\n1,a\n2,b\n",  # an input CSV given as --db by mistake
        PARQUET_HEAD,
        b"SQLite format 3\x00" + bytes(100),
        b"DUC",  # shorter than a header
    ],
)
def test_an_existing_file_that_is_not_a_database_is_refused_untouched(
    tmp_path: Path, content: bytes
) -> None:
    target = tmp_path / "data.csv"
    target.write_bytes(content)
    before = os.stat(target)
    with pytest.raises(SinkError) as caught:
        DuckDBSink(target)
    assert caught.value.code == "NotADatabase" and caught.value.fatal
    assert str(target) in str(caught.value) and "--db" in str(caught.value)
    assert target.read_bytes() == content
    assert os.stat(target).st_mtime_ns == before.st_mtime_ns
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.csv"]  # no .wal, no .tmp


def test_an_empty_file_is_refused_untouched(tmp_path: Path) -> None:
    target = tmp_path / "made-by-touch.duckdb"
    target.touch()
    with pytest.raises(SinkError, match="empty") as caught:
        DuckDBSink(target)
    assert caught.value.code == "NotADatabase" and caught.value.fatal
    assert target.stat().st_size == 0
    assert [p.name for p in tmp_path.iterdir()] == ["made-by-touch.duckdb"]


@pytest.mark.parametrize("path", ["", "   "])
def test_an_empty_path_is_refused(path: str) -> None:
    with pytest.raises(SinkError) as caught:
        DuckDBSink(path)
    assert caught.value.code == "InvalidPath" and caught.value.fatal


def test_a_missing_folder_is_named_and_not_created(tmp_path: Path) -> None:
    target = tmp_path / "typo" / "deeper" / "x.duckdb"
    with pytest.raises(SinkError) as caught:
        DuckDBSink(target)
    assert caught.value.code == "NoSuchDirectory" and caught.value.fatal
    assert str(tmp_path / "typo" / "deeper") in str(caught.value)
    assert list(tmp_path.iterdir()) == []


def test_a_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SinkError) as caught:
        DuckDBSink(tmp_path)
    assert caught.value.code == "IsADirectory" and caught.value.fatal


def test_a_bad_memory_limit_is_fatal(tmp_path: Path) -> None:
    with pytest.raises(SinkError) as caught:
        DuckDBSink(tmp_path / "x.duckdb", memory_limit="lots")
    assert caught.value.code == "InvalidSetting" and caught.value.fatal
    assert list(tmp_path.iterdir()) == []


def test_memory_new_and_existing_databases_keep_what_is_written(tmp_path: Path) -> None:
    sink = DuckDBSink(":memory:")
    assert sink.write_file(
        "t", uri="u", etag="1", size=1, frames=one(ids(0)), run_id="r"
    ) == Written(10, False)
    sink.close()
    db = tmp_path / "new.duckdb"
    for round_ in range(2):  # created, then opened again
        sink = DuckDBSink(db)
        sink.write_file(
            "t", uri=f"u{round_}", etag="1", size=1, frames=one(ids(round_)), run_id="r"
        )
        sink.close()
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM t").fetchall() == [(20,)]


HOLDER = """
    import sys
    from dreambolt.sinks.duckdb import DuckDBSink
    sink = DuckDBSink(sys.argv[1])
    print("ready", flush=True)
    sys.stdin.read()  # until the test closes our stdin
    sink.close()
"""


def hold(db: Path) -> subprocess.Popen[str]:
    """Another process with `db` open, until its stdin is closed."""
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(HOLDER), str(db)],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        text=True,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc


def release(proc: subprocess.Popen[str]) -> None:
    proc.communicate(timeout=60)  # closes its stdin: it closes the database and exits
    assert proc.returncode == 0


def test_a_database_another_process_holds_is_reported_after_the_timeout(tmp_path: Path) -> None:
    db = tmp_path / "held.duckdb"
    holder = hold(db)
    try:
        with pytest.raises(SinkError) as caught:
            DuckDBSink(db, lock_timeout=0.2)
        assert caught.value.code == "Locked" and caught.value.fatal
        message = str(caught.value)
        assert str(db) in message and f"PID {holder.pid}" in message
        assert "another process" in message
    finally:
        release(holder)
    DuckDBSink(db, lock_timeout=0).close()  # free again


PROBE = """
    import sys
    from dreambolt.errors import SinkError
    from dreambolt.sinks.duckdb import DuckDBSink
    try:
        DuckDBSink(sys.argv[1], lock_timeout=0).close()
        print("opened")
    except SinkError as exc:
        print(exc.code)
"""


def test_opening_a_database_twice_in_one_process_keeps_its_lock(tmp_path: Path) -> None:
    # DuckDB's lock is a POSIX record lock: closing any descriptor of the file in this process
    # would drop it. The second sink must read the header without doing that.
    db = tmp_path / "shared.duckdb"
    first = DuckDBSink(db)
    second = DuckDBSink(db)
    try:
        assert run_python(PROBE, str(db)).stdout.strip() == "Locked"
    finally:
        second.close()
        first.close()
    assert run_python(PROBE, str(db)).stdout.strip() == "opened"


# --- 2. exactly once, for any number of writers -------------------------------------------


def race(db: Path, jobs: list[Callable[[DuckDBSink], list[Written]]]) -> list[list[Written]]:
    """Run each job on its own sink of `db`, on its own thread, all at once."""
    sinks = [DuckDBSink(db) for _ in jobs]
    start = threading.Barrier(len(jobs))
    results: list[list[Written]] = [[] for _ in jobs]
    errors: list[BaseException] = []

    def run(k: int) -> None:
        try:
            start.wait()
            results[k] = jobs[k](sinks[k])
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(k,)) for k in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for sink in sinks:
        sink.close()
    assert not errors, errors
    return results


def state(db: Path) -> tuple[int, int, list[tuple[str, int]]]:
    """(rows, distinct ids, [(uri, active ledger rows)])"""
    with duckdb.connect(str(db), read_only=True) as con:
        rows, distinct = con.execute("SELECT count(*), count(DISTINCT id) FROM t").fetchall()[0]
        active = con.execute(
            f"SELECT uri, count(*) FROM {LEDGER} WHERE active GROUP BY uri ORDER BY uri"
        ).fetchall()
    return rows, distinct, active


FILES = 50
URIS = [f"s3://b/{i:02d}.csv" for i in range(FILES)]


def each_file(sink: DuckDBSink) -> list[Written]:
    return [
        sink.write_file(
            "t", uri=URIS[i], etag='"1"', size=1, frames=iter([ids(i)[:5], ids(i)[5:]]), run_id="r"
        )
        for i in range(FILES)
    ]


def in_groups(sink: DuckDBSink) -> list[Written]:
    out: list[Written] = []
    for g in range(0, FILES, 10):
        out += sink.write_many(
            "t", [FileWrite(URIS[i], '"1"', 1, ids(i)) for i in range(g, g + 10)], run_id="r"
        )
    return out


@pytest.mark.parametrize(
    "jobs", [(each_file, each_file), (in_groups, in_groups), (each_file, in_groups)]
)
def test_two_writers_in_one_process_load_every_file_once(
    tmp_path: Path, jobs: tuple[Callable[[DuckDBSink], list[Written]], ...]
) -> None:
    expected = (FILES * 10, FILES * 10, [(uri, 1) for uri in URIS])
    for trial in range(5):
        db = tmp_path / f"race-{trial}.duckdb"
        results = race(db, list(jobs))
        assert state(db) == expected
        for i in range(FILES):  # each file loaded by exactly one writer, unchanged for the other
            outcomes = sorted((w.unchanged, w.rows) for w in (results[0][i], results[1][i]))
            assert outcomes == [(False, 10), (True, 0)]


def test_racing_versions_of_a_file_leave_one_version(tmp_path: Path) -> None:
    def version(tag: str) -> Callable[[DuckDBSink], list[Written]]:
        def job(sink: DuckDBSink) -> list[Written]:
            return [
                sink.write_file(
                    "t",
                    uri=URIS[i],
                    etag=tag,
                    size=1,
                    frames=one(ids(i).with_columns(v=pl.lit(tag))),
                    run_id=tag,
                )
                for i in range(FILES)
            ]

        return job

    for trial in range(4):
        db = tmp_path / f"versions-{trial}.duckdb"
        race(db, [version("1"), version("2")])
        with duckdb.connect(str(db), read_only=True) as con:
            per_file = con.execute(
                "SELECT _source_uri, count(*), count(DISTINCT v), min(v), min(_source_etag) "
                "FROM t GROUP BY 1 ORDER BY 1"
            ).fetchall()
            active = dict(con.execute(f"SELECT uri, etag FROM {LEDGER} WHERE active").fetchall())
            assert con.execute(f"SELECT count(*) FROM {LEDGER} WHERE active").fetchall() == [
                (FILES,)
            ]
        assert [row[0] for row in per_file] == URIS
        for uri, rows, versions, v, etag in per_file:
            assert (rows, versions) == (10, 1) and v == etag == active[uri]


def test_a_writer_that_finds_the_table_busy_gives_up_without_reading_the_file(
    tmp_path: Path,
) -> None:
    db = tmp_path / "busy.duckdb"
    first, second = DuckDBSink(db), DuckDBSink(db, lock_timeout=0)
    inside, go_on = threading.Event(), threading.Event()
    outcome: list[Written] = []

    def slow() -> Iterator[pl.DataFrame]:
        yield ids(0)
        inside.set()
        go_on.wait(60)
        yield ids(1)

    writer = threading.Thread(
        target=lambda: outcome.append(
            first.write_file(
                "t", uri="s3://b/slow.csv", etag="1", size=1, frames=slow(), run_id="r"
            )
        )
    )
    writer.start()
    try:
        assert inside.wait(60)
        pulled: list[int] = []

        def frames() -> Iterator[pl.DataFrame]:
            pulled.append(1)
            yield ids(2)

        with pytest.raises(SinkError) as caught:
            second.write_file(
                "t", uri="s3://b/other.csv", etag="1", size=1, frames=frames(), run_id="r"
            )
        assert caught.value.code == "Busy" and not caught.value.fatal
        assert "s3://b/other.csv" in str(caught.value) and pulled == []
        # another table is not held up
        assert second.write_file(
            "u", uri="x", etag="1", size=1, frames=one(ids(3)), run_id="r"
        ) == Written(10, False)
    finally:
        go_on.set()
        writer.join()
    assert outcome == [Written(20, False)]
    assert second.write_file(
        "t", uri="s3://b/other.csv", etag="1", size=1, frames=frames(), run_id="r"
    ) == Written(10, False)
    first.close()
    second.close()


def test_an_unchanged_file_is_not_read(tmp_path: Path) -> None:
    sink = DuckDBSink(tmp_path / "s.duckdb")
    sink.write_file("t", uri="u", etag="1", size=3, frames=one(ids(0)), run_id="r")

    def untouchable() -> Iterator[pl.DataFrame]:
        raise AssertionError("the frames of an unchanged file were read")
        yield ids(0)

    assert sink.write_file(
        "t", uri="u", etag="1", size=3, frames=untouchable(), run_id="r2"
    ) == Written(0, False, unchanged=True)
    assert sink.write_file(
        "t", uri="u", etag="2", size=3, frames=one(ids(1)), run_id="r3"
    ) == Written(10, True)
    assert sink.write_many(
        "t", [FileWrite("u", "2", 3, ids(5)), FileWrite("w", "1", 3, ids(6))], run_id="r4"
    ) == [Written(0, False, True), Written(10, False)]
    rows = sink.con.execute(
        f"SELECT run_id, status, active FROM {LEDGER} WHERE uri = 'u' ORDER BY loaded_at, run_id"
    ).fetchall()
    assert rows == [
        ("r", "loaded", False),
        ("r2", "unchanged", False),
        ("r3", "loaded", True),
        ("r4", "unchanged", False),
    ]
    assert sink.con.execute(
        "SELECT min(id), count(*) FROM t WHERE _source_uri = 'u'"
    ).fetchall() == [(10, 10)]
    sink.close()


def test_a_writer_notices_that_another_one_changed_the_table(tmp_path: Path) -> None:
    db = tmp_path / "s.duckdb"
    first, second = DuckDBSink(db), DuckDBSink(db)
    floats = pl.DataFrame({"a": [1.5]})
    first.write_file("t", uri="f1", etag="1", size=1, frames=one(floats), run_id="r")
    # the other writer replaces the table: column a is BIGINT now
    second.write_file(
        "t",
        uri="g",
        etag="1",
        size=1,
        frames=one(pl.DataFrame({"a": [1]})),
        run_id="r",
        rebuild=True,
    )
    # the first one's knowledge of the table (a DOUBLE, floats accepted) is out of date: 2.5
    # must be refused, not rounded to 2
    with pytest.raises(SinkError, match=r"'2\.5'"):
        first.write_file(
            "t", uri="f2", etag="1", size=1, frames=one(pl.DataFrame({"a": [2.5]})), run_id="r"
        )
    assert first.con.execute("SELECT _source_uri, a FROM t").fetchall() == [("g", 1)]
    first.close()
    second.close()


WRITER = """
    import json, logging, os, sys, time
    import polars as pl
    from dreambolt.sinks.duckdb import DuckDBSink
    db, marker, role = sys.argv[1], sys.argv[2], sys.argv[3]

    class Marker(logging.Handler):
        def emit(self, record):  # "waiting up to ...": this process has met the lock
            open(marker, "w").close()

    logging.getLogger("dreambolt.sink").addHandler(Marker(logging.WARNING))
    sink = DuckDBSink(db, lock_timeout=300)
    out = [sink.write_file("t", uri=f"s3://b/{i:02d}.csv", etag='"1"', size=1,
                           frames=iter([pl.DataFrame({"id": [i * 10 + k for k in range(10)]})]),
                           run_id=role)
           for i in range(50)]
    if role == "first":
        print("written", flush=True)
        deadline = time.monotonic() + 300
        while not os.path.exists(marker):  # hold the file until the other one waits for it
            assert time.monotonic() < deadline, "the second process never waited"
            time.sleep(0.01)
    sink.close()
    print(json.dumps([[w.rows, w.replaced, w.unchanged] for w in out]))
"""


def test_a_second_process_waits_for_the_first_then_finds_the_files_loaded(tmp_path: Path) -> None:
    db, marker = tmp_path / "two.duckdb", tmp_path / "waiting"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    script = textwrap.dedent(WRITER)
    first = subprocess.Popen(
        [sys.executable, "-c", script, str(db), str(marker), "first"],
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert first.stdout is not None
    assert first.stdout.readline().strip() == "written", first.stderr
    second = run_python(WRITER, str(db), str(marker), "second")
    out, err = first.communicate(timeout=300)
    assert first.returncode == 0, err
    assert json.loads(out.strip().splitlines()[-1]) == [[10, False, False]] * FILES
    assert marker.exists()  # the second one did meet the lock
    assert last_json(second) == [[0, False, True]] * FILES
    assert state(db) == (FILES * 10, FILES * 10, [(uri, 1) for uri in URIS])


# --- 3. very wide frames -------------------------------------------------------------------

WIDE = """
    import json, resource, sys
    import polars as pl
    from dreambolt.sinks.duckdb import DuckDBSink
    db, existing, width = sys.argv[1], sys.argv[2] == "yes", int(sys.argv[3])
    sink = DuckDBSink(db, preserve_order=True)
    threads = sink.con.execute("SELECT current_setting('threads')").fetchall()[0][0]
    if existing:
        sink.write_file("t", uri="narrow", etag="1", size=1, run_id="r", frames=iter([
            pl.DataFrame({"id": list(range(1000)), "s": [f"s{i}" for i in range(1000)]})]))
    wide = pl.DataFrame({"id": [1000], **{f"c{i}": [f"v{i}"] for i in range(width)}})
    written = sink.write_file("t", uri="wide", etag="1", size=1, frames=iter([wide]),
                              run_id="r")
    # VmHWM: ru_maxrss would start at the parent's size at fork (pytest's, over 1 GiB late in
    # a full run)
    rss = int(next(l for l in open('/proc/self/status') if l.startswith('VmHWM')).split()[1]) * 1024
    con = sink.con
    print(json.dumps({
        "rss": rss, "rows": written.rows,
        "columns": [n for n, in con.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 't' "
            "ORDER BY ordinal_position").fetchall()],
        "ids": [i for i, in con.execute("SELECT id FROM t").fetchall()],
        "s": con.execute("SELECT count(s), min(s) FROM t").fetchall()[0] if existing else None,
        "last": con.execute(f"SELECT c0, c{width - 1} FROM t WHERE id = 1000").fetchall()[0],
        "nulls": con.execute(f"SELECT count(c{width - 1}) FROM t").fetchall()[0][0],
        "limit": con.execute("SELECT current_setting('memory_limit')").fetchall()[0][0],
        "threads": [threads, con.execute("SELECT current_setting('threads')").fetchall()[0][0]],
    }))
"""

GIB = 1 << 30


def test_ten_thousand_new_columns_are_added_in_one_step_within_memory(tmp_path: Path) -> None:
    got = last_json(run_python(WIDE, str(tmp_path / "w.duckdb"), "yes", "10000"))
    assert got["rss"] < GIB, f"peak RSS {got['rss'] / GIB:.2f} GiB"
    assert got["rows"] == 1
    lineage = ["_source_uri", "_source_etag", "_ingested_at"]
    assert got["columns"] == ["id", "s", *lineage, *(f"c{i}" for i in range(10000))]
    assert got["ids"] == list(range(1001))  # every row kept, in order
    assert got["s"] == [1000, "s0"]
    assert got["last"] == ["v0", "v9999"] and got["nulls"] == 1
    assert got["limit"] == "183.1 MiB"  # the cap is back
    assert got["threads"][0] == got["threads"][1]


def test_a_first_frame_of_ten_thousand_columns_is_created_within_memory(tmp_path: Path) -> None:
    got = last_json(run_python(WIDE, str(tmp_path / "w.duckdb"), "no", "10000"))
    assert got["rss"] < GIB, f"peak RSS {got['rss'] / GIB:.2f} GiB"
    assert len(got["columns"]) == 10004 and got["ids"] == [1000]
    assert got["last"] == ["v0", "v9999"]
    assert got["limit"] == "183.1 MiB"


def test_many_new_columns_keep_a_hand_made_table_whole(tmp_path: Path) -> None:
    # A table with a constraint cannot be rebuilt by CREATE TABLE AS: columns are added one by
    # one instead, and the constraint stays.
    sink = DuckDBSink(tmp_path / "s.duckdb")
    sink.con.execute(
        "CREATE TABLE t (id BIGINT NOT NULL, _source_uri VARCHAR, "
        "_source_etag VARCHAR, _ingested_at TIMESTAMPTZ)"
    )
    wide = pl.DataFrame({"id": [1], **{f"c{i}": [i] for i in range(700)}})
    assert sink.write_file("t", uri="u", etag="1", size=1, frames=one(wide), run_id="r") == Written(
        1, False
    )
    assert len(sink.table_columns("t")) == 704
    assert sink.con.execute(
        "SELECT count(*) FROM duckdb_constraints() WHERE table_name = 't' "
        "AND constraint_type = 'NOT NULL'"
    ).fetchall() == [(1,)]
    sink.close()


# --- 4. a full disk -----------------------------------------------------------------------

FILL = """
    import json, os, resource, signal, sys
    import polars as pl
    from dreambolt.errors import SinkError
    from dreambolt.sinks.duckdb import DuckDBSink
    db, limit = sys.argv[1], int(sys.argv[2])
    if limit:  # no tmpfs: a file size limit fails writes the same way (EFBIG, not a signal)
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
    sink = DuckDBSink(db)
    first = sink.write_file("t", uri="small", etag="1", size=1, run_id="r",
                            frames=iter([pl.DataFrame({"a": ["x"] * 10})]))
    big = pl.DataFrame({"a": [os.urandom(16).hex() for _ in range(400_000)]})
    try:
        sink.write_file("t", uri="big", etag="1", size=1, frames=iter([big]), run_id="r")
        error = None
    except SinkError as exc:
        error = {"code": exc.code, "fatal": exc.fatal, "message": str(exc)}
    kept = sink.con.execute("SELECT _source_uri, count(*) FROM t GROUP BY 1").fetchall()
    active = sink.con.execute("SELECT uri FROM _dreambolt_loads WHERE active").fetchall()
    sink.close()
    print(json.dumps({"first": first.rows, "error": error, "kept": kept, "active": active}))
"""


def check_full(got: dict[str, Any], db: Path, errno_name: str) -> None:
    assert got["first"] == 10
    error = got["error"]
    assert error is not None, "the write did not fail"
    assert error["code"] == "ENOSPC" and error["fatal"]
    assert str(db) in error["message"] and errno_name in error["message"]
    assert "--db" in error["message"]
    assert got["kept"] == [["small", 10]] and got["active"] == [["small"]]


def test_a_full_disk_stops_the_run(tmp_path: Path) -> None:
    disk = tmp_path / "disk"
    disk.mkdir()
    try:
        mounted = (
            subprocess.run(
                ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(disk)],
                capture_output=True,
                check=False,
            ).returncode
            == 0
        )
    except OSError:  # no mount command
        mounted = False
    try:
        # Where a 2 MiB tmpfs cannot be mounted, a 2 MiB file size limit stands in for it.
        got = last_json(run_python(FILL, str(disk / "x.duckdb"), "0" if mounted else str(2 << 20)))
        check_full(got, disk / "x.duckdb", "ENOSPC" if mounted else "EFBIG")
    finally:
        if mounted:
            subprocess.run(["umount", str(disk)], check=True)


def test_a_file_size_limit_stops_the_run(tmp_path: Path) -> None:
    got = last_json(run_python(FILL, str(tmp_path / "x.duckdb"), str(2 << 20)))
    check_full(got, tmp_path / "x.duckdb", "EFBIG")


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)), "ENOSPC"),
        (OSError(errno.EDQUOT, os.strerror(errno.EDQUOT)), "ENOSPC"),
        (OSError(errno.EFBIG, os.strerror(errno.EFBIG)), "ENOSPC"),
        (OSError(errno.EIO, os.strerror(errno.EIO), "/data/x.duckdb.wal"), "IOError"),
        (
            duckdb.IOException(
                f'IO Error: Could not write file "/data/x.duckdb": {os.strerror(errno.ENOSPC)}'
            ),
            "ENOSPC",
        ),
        (
            duckdb.TransactionException(
                "TransactionContext Error: Failed to commit: Could not write "
                f'file "/data/x.duckdb.wal": {os.strerror(errno.ENOSPC)}'
            ),
            "ENOSPC",
        ),
        (
            duckdb.IOException(
                f'IO Error: Could not read from file "/data/x.duckdb": {os.strerror(errno.EIO)}'
            ),
            "IOError",
        ),
        (duckdb.FatalException("FATAL Error: database has been invalidated"), "IOError"),
    ],
)
def test_io_failures_of_the_database_are_fatal(exc: BaseException, code: str) -> None:
    error = io_failure(exc, "/data/x.duckdb", "/data/x.duckdb")
    assert error is not None and error.code == code and error.fatal
    assert "/data/x.duckdb" in str(error)


@pytest.mark.parametrize(
    "exc",
    [
        OSError(errno.ENOENT, "gone", "/spool/part-1"),  # the input's problem, not the database's
        OSError(errno.EIO, "bad read", "/spool/part-1"),
        duckdb.TransactionException("TransactionContext Error: Conflict on update!"),
        duckdb.ConversionException("Conversion Error: Could not convert string 'x' to INT64"),
        ValueError("nothing to do with IO"),
    ],
)
def test_other_failures_are_not_fatal(exc: BaseException) -> None:
    assert io_failure(exc, "/data/x.duckdb", "/data/x.duckdb") is None


# --- 5. streams whose schema changes -------------------------------------------------------


def test_frames_that_grow_columns_and_widen_a_type_all_land(tmp_path: Path) -> None:
    sink = DuckDBSink(tmp_path / "s.duckdb")
    frames = [
        pl.DataFrame({"a": [1, 2]}),
        pl.DataFrame({"a": [3], "b": ["x"]}),
        pl.DataFrame({"a": [4.5]}),
        pl.DataFrame({"a": [5.5, 6.0]}),
        pl.DataFrame({"a": [7], "b": ["y"]}),
    ]
    assert sink.write_file(
        "t", uri="u", etag="1", size=1, frames=iter(frames), run_id="r"
    ) == Written(7, False)
    assert sink.table_columns("t")["a"] == "DOUBLE"
    assert sink.con.execute("SELECT a, b FROM t ORDER BY a").fetchall() == [
        (1.0, None),
        (2.0, None),
        (3.0, "x"),
        (4.5, None),
        (5.5, None),
        (6.0, None),
        (7.0, "y"),
    ]
    assert sink.con.execute(f"SELECT rows FROM {LEDGER} WHERE active").fetchall() == [(7,)]
    sink.close()


def test_a_value_an_existing_column_cannot_hold_is_refused_in_any_frame(tmp_path: Path) -> None:
    sink = DuckDBSink(tmp_path / "s.duckdb")
    sink.write_file(
        "t", uri="first", etag="1", size=1, frames=one(pl.DataFrame({"a": [1]})), run_id="r"
    )
    # 1.0 converts to BIGINT without loss; 2.5 in a later frame would silently become 2
    frames = [pl.DataFrame({"a": [1.0]}), pl.DataFrame({"a": [3.0]}), pl.DataFrame({"a": [2.5]})]
    with pytest.raises(SinkError, match=r"'a'.*DOUBLE.*BIGINT.*'2\.5'") as caught:
        sink.write_file("t", uri="second", etag="1", size=1, frames=iter(frames), run_id="r")
    assert "second" in str(caught.value) and not caught.value.fatal
    assert sink.con.execute("SELECT _source_uri, a FROM t").fetchall() == [("first", 1)]
    # values that do convert go in
    assert sink.write_file(
        "t", uri="third", etag="1", size=1, frames=iter(frames[:2]), run_id="r"
    ) == Written(2, False)
    sink.close()


def test_a_column_of_only_nulls_takes_the_type_of_later_values(tmp_path: Path) -> None:
    sink = DuckDBSink(tmp_path / "s.duckdb")
    sink.write_file(
        "t",
        uri="first",
        etag="1",
        size=1,
        run_id="r",
        frames=one(pl.DataFrame({"a": [1], "n": [None]})),
    )
    sink.write_file(
        "t",
        uri="second",
        etag="1",
        size=1,
        run_id="r",
        frames=one(pl.DataFrame({"a": [2], "n": ["text"]})),
    )
    assert sink.con.execute("SELECT a, n FROM t ORDER BY a").fetchall() == [(1, None), (2, "text")]
    sink.close()


# --- 6. data DuckDB cannot take --------------------------------------------------------------


def nested(depth: int) -> pl.DataFrame:
    column = pl.Series("x", [1, 2])
    for _ in range(depth):
        column = pl.DataFrame({"x": column}).to_struct("x")
    return pl.DataFrame({"deep": column})


def test_a_frame_nested_too_deep_fails_its_file_only(tmp_path: Path) -> None:
    sink = DuckDBSink(tmp_path / "s.duckdb")
    sink.write_file("t", uri="before", etag="1", size=1, frames=one(ids(0)), run_id="r")
    with pytest.raises(SinkError) as caught:
        sink.write_file(
            "t",
            uri="s3://b/deep.json",
            etag="1",
            size=1,
            frames=iter([ids(1), nested(100)]),
            run_id="r",
        )
    assert "s3://b/deep.json" in str(caught.value) and not caught.value.fatal
    assert isinstance(caught.value.__cause__, Exception)
    with pytest.raises(SinkError, match="deep2"):
        sink.write_many("t", [FileWrite("deep2", "1", 1, nested(100))], run_id="r")
    assert sink.write_file(
        "t", uri="after", etag="1", size=1, frames=one(ids(2)), run_id="r"
    ) == Written(10, False)
    assert sink.con.execute(
        "SELECT _source_uri, count(*) FROM t GROUP BY 1 ORDER BY 1"
    ).fetchall() == [("after", 10), ("before", 10)]
    assert sink.con.execute(f"SELECT uri FROM {LEDGER} WHERE active ORDER BY 1").fetchall() == [
        ("after",),
        ("before",),
    ]
    sink.close()


def test_a_panic_inside_the_stream_rolls_back_and_names_the_file(tmp_path: Path) -> None:
    sink = DuckDBSink(tmp_path / "s.duckdb")

    def panicking() -> Iterator[pl.DataFrame]:
        yield ids(0)
        yield ids(1)
        raise PanicException("polars gave up")

    with pytest.raises(SinkError, match=r"s3://b/p\.csv.*PanicException") as caught:
        sink.write_file("t", uri="s3://b/p.csv", etag="1", size=1, frames=panicking(), run_id="r")
    assert isinstance(caught.value.__cause__, PanicException) and not caught.value.fatal
    assert sink.table_columns("t") == {}  # the CREATE TABLE was rolled back too
    assert sink.write_file(
        "t", uri="s3://b/p.csv", etag="1", size=1, frames=one(ids(0)), run_id="r"
    ) == Written(10, False)
    sink.close()


# --- the embedding cache, shared ------------------------------------------------------------


def test_two_connections_fill_one_embedding_cache_at_once(tmp_path: Path) -> None:
    db = tmp_path / "e.duckdb"
    sinks = [DuckDBSink(db) for _ in range(2)]
    vectors = {f"{i:064x}": np.full(4, i, dtype=np.float32) for i in range(200)}
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def fill(sink: DuckDBSink) -> None:
        try:
            start.wait()
            cache = DuckDBEmbeddingCache(sink.con)
            for lo in range(0, 200, 20):
                cache.put("m", {k: vectors[k] for k in list(vectors)[lo : lo + 40]})
        except BaseException as exc:
            errors.append(exc)

    for _ in range(5):
        threads = [threading.Thread(target=fill, args=(s,)) for s in sinks]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert not errors, errors
    assert DuckDBEmbeddingCache(sinks[0].con).count("m") == 200
    for sink in sinks:
        sink.close()


def test_only_a_lock_conflict_counts_as_locked() -> None:
    assert is_lock_error(
        duckdb.IOException(
            'IO Error: Could not set lock on file "/d/x.duckdb": Conflicting lock is held in '
            "/usr/bin/python3 (PID 42). See also https://duckdb.org/docs/current/connect/concurrency"
        )
    )
    assert not is_lock_error(
        duckdb.IOException(
            'IO Error: Could not read from block 12 of "/d/x.duckdb": Input/output error'
        )
    )
