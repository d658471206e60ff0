"""The real `python -m dreambolt` command in a subprocess, against moto through the fault proxy."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

import duckdb
import pytest
from faultproxy import FaultProxy

from dreambolt.cli import parse_size

ANSI = re.compile(r"\x1b\[")


def run(
    *args: str,
    endpoint: str | None = None,
    stdin: str | None = None,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """Run dreambolt as a user would (no TTY: output is captured)."""
    command = [sys.executable, "-m", "dreambolt", *args]
    if endpoint:
        command += ["--endpoint-url", endpoint]
    return subprocess.run(
        command,
        input=stdin,
        capture_output=True,
        text=True,
        env=env or dict(os.environ),
        cwd=cwd,
        timeout=timeout,
    )


def put_csvs(s3: Any, bucket: str, prefix: str, count: int, rows: int = 3) -> dict[str, int]:
    expected = {}
    for i in range(count):
        key = f"{prefix}{i:03d}.csv"
        body = "id,name\n" + "".join(f"{i * 100 + r},n{r}\n" for r in range(rows))
        s3.put_object(Bucket=bucket, Key=key, Body=body.encode())
        expected[f"s3://{bucket}/{key}"] = rows
    return expected


def rows_per_file(db: Path, table: str) -> dict[str, int]:
    with duckdb.connect(str(db), read_only=True) as con:
        found = con.execute(f'SELECT _source_uri, count(*) FROM "{table}" GROUP BY 1').fetchall()
    return {uri: n for uri, n in found}


def test_parse_size() -> None:
    assert parse_size("8MiB") == 8 * 2**20
    assert parse_size("16MB") == 16_000_000
    assert parse_size("1048576") == 1048576
    assert parse_size("1.5 GiB") == 3 * 2**29
    with pytest.raises(ValueError, match="8MiB"):
        parse_size("eight")


def test_clean_batch_exits_0(proxy: FaultProxy, s3: Any, bucket: str, tmp_path: Path) -> None:
    expected = put_csvs(s3, bucket, "in/", 3)
    db = tmp_path / "t.duckdb"
    done = run(
        "ingest", f"s3://{bucket}/in/", "--table", "t", "--db", str(db), endpoint=proxy.endpoint_url
    )
    assert done.returncode == 0, done.stderr
    assert rows_per_file(db, "t") == expected
    assert "loaded" in done.stderr and not ANSI.search(done.stderr + done.stdout)


def test_404_and_403_exit_1_naming_both(
    proxy: FaultProxy, s3: Any, bucket: str, tmp_path: Path
) -> None:
    put_csvs(s3, bucket, "in/", 2)
    proxy.add_rule("error", status=403, code="AccessDenied", path="/in/001.csv$")
    done = run(
        "ingest",
        f"s3://{bucket}/in/",
        f"s3://{bucket}/missing.csv",
        "--table",
        "t",
        "--db",
        str(tmp_path / "t.duckdb"),
        endpoint=proxy.endpoint_url,
    )
    assert done.returncode == 1, done.stderr
    lines = done.stderr.replace("\n", " ")
    assert re.search(rf"skipped s3://{bucket}/in/001\.csv: .*AccessDenied", lines)
    assert re.search(rf"skipped s3://{bucket}/missing\.csv: .*(NotFound|404)", lines)
    assert rows_per_file(tmp_path / "t.duckdb", "t") == {f"s3://{bucket}/in/000.csv": 3}


def test_invalid_uri_exits_2_with_an_example(tmp_path: Path) -> None:
    done = run("ingest", "s3:/bad", "--db", str(tmp_path / "t.duckdb"))
    assert done.returncode == 2
    assert "s3:/bad" in done.stderr and "s3://my-bucket/" in done.stderr
    typo = run("ingest", "s3//my-bucket/x.csv", "--db", str(tmp_path / "t.duckdb"))
    assert typo.returncode == 2 and "'://'" in typo.stderr
    bad_table = run("ingest", "x.csv", "--table", "x; drop table y")
    assert bad_table.returncode == 2 and "invalid table name" in bad_table.stderr


def test_no_credentials_exits_3_with_the_fix(
    proxy: FaultProxy, bucket: str, tmp_path: Path
) -> None:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
    }
    done = run(
        "ingest",
        f"s3://{bucket}/x.csv",
        "--db",
        str(tmp_path / "t.duckdb"),
        endpoint=proxy.endpoint_url,
        env=env,
    )
    assert done.returncode == 3, done.stderr
    for fix in ("aws configure", "AWS_PROFILE", "AWS_ACCESS_KEY_ID"):
        assert fix in done.stderr


def test_unusable_destination_exits_3(
    proxy: FaultProxy, s3: Any, bucket: str, tmp_path: Path
) -> None:
    put_csvs(s3, bucket, "in/", 1)
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    done = run(
        "ingest",
        f"s3://{bucket}/in/",
        "--db",
        str(blocker / "t.duckdb"),
        endpoint=proxy.endpoint_url,
    )
    assert done.returncode == 3 and "cannot open DuckDB database" in done.stderr


def test_json_report_is_all_of_stdout_and_matches_the_table(
    proxy: FaultProxy, s3: Any, bucket: str, tmp_path: Path
) -> None:
    expected = put_csvs(s3, bucket, "j/", 3, rows=4)
    db = tmp_path / "t.duckdb"
    done = run(
        "ingest", f"s3://{bucket}/j/", "--db", str(db), "--json", endpoint=proxy.endpoint_url
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)  # the whole of stdout is one JSON document
    assert report["table"] == "j"
    assert {f["uri"]: f["rows"] for f in report["files"]} == rows_per_file(db, "j") == expected
    assert report["totals"]["loaded"] == 3 and report["totals"]["rows"] == 12
    assert not ANSI.search(done.stdout + done.stderr)


def test_dry_run_downloads_nothing_and_predicts_the_real_run(
    proxy: FaultProxy, s3: Any, bucket: str, tmp_path: Path
) -> None:
    put_csvs(s3, bucket, "d/", 4)
    db = tmp_path / "t.duckdb"
    first = run(
        "ingest",
        f"s3://{bucket}/d/000.csv",
        f"s3://{bucket}/d/001.csv",
        "--table",
        "d",
        "--db",
        str(db),
        endpoint=proxy.endpoint_url,
    )
    assert first.returncode == 0, first.stderr
    s3.put_object(Bucket=bucket, Key="d/001.csv", Body=b"id,name\n9,changed\n")
    proxy.reset()
    plan = run(
        "ingest",
        f"s3://{bucket}/d/",
        "--table",
        "d",
        "--db",
        str(db),
        "--dry-run",
        "--json",
        endpoint=proxy.endpoint_url,
    )
    assert plan.returncode == 0, plan.stderr
    assert proxy.count("GET", "/d/0") == 0  # no object body was requested
    predicted = {f["uri"]: f["action"] or f["status"] for f in json.loads(plan.stdout)["files"]}
    assert predicted == {
        f"s3://{bucket}/d/000.csv": "unchanged",
        f"s3://{bucket}/d/001.csv": "changed",
        f"s3://{bucket}/d/002.csv": "new",
        f"s3://{bucket}/d/003.csv": "new",
    }
    real = run(
        "ingest",
        f"s3://{bucket}/d/",
        "--table",
        "d",
        "--db",
        str(db),
        "--json",
        endpoint=proxy.endpoint_url,
    )
    outcome = {
        f["uri"]: ("changed" if f["replaced"] else "new")
        if f["status"] == "loaded"
        else f["status"]
        for f in json.loads(real.stdout)["files"]
    }
    assert outcome == predicted
    human = run(
        "ingest",
        f"s3://{bucket}/d/",
        "--table",
        "d",
        "--db",
        str(db),
        "--dry-run",
        endpoint=proxy.endpoint_url,
    )
    assert "4 unchanged" in human.stderr and "0 B would be downloaded" in human.stderr


def test_quiet_prints_nothing_but_errors(
    proxy: FaultProxy, s3: Any, bucket: str, tmp_path: Path
) -> None:
    put_csvs(s3, bucket, "q/", 2)
    ok = run(
        "ingest",
        f"s3://{bucket}/q/",
        "--db",
        str(tmp_path / "t.duckdb"),
        "--quiet",
        endpoint=proxy.endpoint_url,
    )
    assert (ok.returncode, ok.stdout, ok.stderr) == (0, "", "")
    bad = run(
        "ingest",
        f"s3://{bucket}/nope.csv",
        "--db",
        str(tmp_path / "t.duckdb"),
        "-q",
        "--table",
        "q",
        endpoint=proxy.endpoint_url,
    )
    assert bad.returncode == 1 and bad.stdout == ""
    assert f"s3://{bucket}/nope.csv" in bad.stderr and not ANSI.search(bad.stderr)


def test_from_file_stdin_include_exclude_and_env_options(
    proxy: FaultProxy, s3: Any, bucket: str, tmp_path: Path
) -> None:
    put_csvs(s3, bucket, "f/", 3)
    s3.put_object(Bucket=bucket, Key="f/skip.tsv", Body=b"a\tb\n1\t2\n")
    listing = f"# inputs\ns3://{bucket}/f/000.csv\n\ns3://{bucket}/f/*\n"
    env = dict(os.environ, DREAMBOLT_TABLE="fromfile", DREAMBOLT_DB=str(tmp_path / "e.duckdb"))
    done = run(
        "ingest",
        "--from-file",
        "-",
        "--exclude",
        "*.tsv",
        "--part-size",
        "1MiB",
        stdin=listing,
        env=env,
        endpoint=proxy.endpoint_url,
    )
    assert done.returncode == 0, done.stderr
    assert len(rows_per_file(tmp_path / "e.duckdb", "fromfile")) == 3


def test_ls_lists_keys_sizes_and_etags(proxy: FaultProxy, s3: Any, bucket: str) -> None:
    put_csvs(s3, bucket, "logs/2024-01/", 2)
    put_csvs(s3, bucket, "logs/2023-12/", 1)
    done = run("ls", f"s3://{bucket}/logs/2024-*/*.csv", endpoint=proxy.endpoint_url)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert [line.split()[-1] for line in lines] == [
        f"s3://{bucket}/logs/2024-01/000.csv",
        f"s3://{bucket}/logs/2024-01/001.csv",
    ]
    etag = s3.head_object(Bucket=bucket, Key="logs/2024-01/000.csv")["ETag"]
    assert etag in lines[0]


def test_demo_runs_with_no_aws_configuration(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["HOME"] = str(tmp_path)
    done = run("demo", "--db", str(tmp_path / "demo.duckdb"), env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "2024-05.parquet" in done.stderr and "skipped" in done.stderr
    assert rows_per_file(tmp_path / "demo.duckdb", "events") == {
        "s3://dreambolt-demo/events/2024-01.csv": 3,
        "s3://dreambolt-demo/events/2024-02.csv.gz": 2,
        "s3://dreambolt-demo/events/2024-03.parquet": 2,
        "s3://dreambolt-demo/events/2024-04.ndjson": 2,
    }
    assert "A few rows of table events" in done.stdout


class StderrLines:
    """A child's stderr, read line by line on a thread, so a test can wait for a line to appear
    (the event it waits on) while the pipe keeps draining."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stderr is not None
        self._lines: list[str] = []
        self._closed = False
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._read, args=(proc.stderr,), daemon=True)
        self._thread.start()

    def _read(self, stream: IO[str]) -> None:
        with stream:
            for line in stream:
                with self._changed:
                    self._lines.append(line)
                    self._changed.notify_all()
        with self._changed:
            self._closed = True
            self._changed.notify_all()

    def wait_for(self, pattern: str, timeout: float = 60) -> str:
        """The first line matching `pattern`; fails if the child ends or `timeout` passes first."""
        found = re.compile(pattern)

        def match() -> str | None:
            return next((line for line in self._lines if found.search(line)), None)

        with self._changed:
            self._changed.wait_for(lambda: match() is not None or self._closed, timeout)
            line = match()
        assert line is not None, f"no line matching {pattern!r} in:\n{self.text(0)}"
        return line

    def text(self, timeout: float = 60) -> str:
        """Everything read so far, after the child closed its stderr (within `timeout`)."""
        self._thread.join(timeout)
        with self._changed:
            return "".join(self._lines)


def _start_held_ingest(
    proxy: FaultProxy, bucket: str, db: Path, release: threading.Event
) -> tuple[subprocess.Popen[str], StderrLines]:
    """Ingest s3://bucket/k/ (24 files); the GETs of files 012–023 are held until `release`,
    so files can commit while others cannot have been downloaded yet."""
    proxy.add_rule(
        "call",
        method="GET",
        path=r"/k/0(1[2-9]|2\d)\.csv$",
        fn=lambda request: release.wait(60),
    )
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
            "1",
            "--endpoint-url",
            proxy.endpoint_url,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    return proc, StderrLines(proc)


def _wait_for_gets(
    proxy: FaultProxy, at_least: int, timeout: float = 60, path: str = "/k/"
) -> None:
    deadline = time.monotonic() + timeout
    while proxy.count("GET", path) < at_least:
        assert time.monotonic() < deadline, "the ingest never got going"
        time.sleep(0.02)


# In a pipe, the CLI prints a file's "loaded" line once its transaction has committed.
COMMITTED = r"^\s*loaded s3://\S+/k/0"


def test_sigkill_mid_batch_then_rerun_loads_each_file_exactly_once(
    proxy: FaultProxy, s3: Any, bucket: str, tmp_path: Path
) -> None:
    expected = put_csvs(s3, bucket, "k/", 24, rows=5)
    db = tmp_path / "crash.duckdb"
    release = threading.Event()
    proc, stderr = _start_held_ingest(proxy, bucket, db, release)
    try:
        stderr.wait_for(COMMITTED)  # at least one file committed; files 012–023 cannot have
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        release.set()
        proc.kill()
    stderr.text()  # the pipe is drained and closed
    assert proc.returncode == -signal.SIGKILL
    proxy.reset()
    rerun = run(
        "ingest",
        f"s3://{bucket}/k/",
        "--table",
        "k",
        "--db",
        str(db),
        "--json",
        endpoint=proxy.endpoint_url,
    )
    assert rerun.returncode == 0, rerun.stderr
    statuses = {f["uri"]: f["status"] for f in json.loads(rerun.stdout)["files"]}
    assert "unchanged" in statuses.values()
    assert all(statuses[f"s3://{bucket}/k/{i:03d}.csv"] == "loaded" for i in range(12, 24))
    assert rows_per_file(db, "k") == expected  # every file present, none twice
    with duckdb.connect(str(db), read_only=True) as con:
        active = con.execute(
            "SELECT count(*), count(DISTINCT uri) FROM _dreambolt_loads "
            "WHERE table_name = 'k' AND active"
        ).fetchall()
    assert active == [(24, 24)]


def test_interrupt_exits_130_and_keeps_files_whole(
    proxy: FaultProxy, s3: Any, bucket: str, tmp_path: Path
) -> None:
    expected = put_csvs(s3, bucket, "k/", 24, rows=5)
    db = tmp_path / "int.duckdb"
    release = threading.Event()
    proc, stderr = _start_held_ingest(proxy, bucket, db, release)
    try:
        stderr.wait_for(COMMITTED)
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
    finally:
        release.set()
        proc.kill()
    text = stderr.text()
    assert proc.returncode == 130, text
    assert "interrupted" in text
    loaded = rows_per_file(db, "k")
    assert loaded and all(expected[uri] == n for uri, n in loaded.items())
    assert f"s3://{bucket}/k/023.csv" not in loaded  # its download was still held


def test_interrupt_during_a_big_download_stops_at_once_and_loads_nothing(
    proxy: FaultProxy, s3: Any, bucket: str, tmp_path: Path
) -> None:
    line = b"12345,some text to make the row longer than a few bytes,67.89\n"
    s3.put_object(
        Bucket=bucket,
        Key="big/huge.csv",
        Body=b"id,note,amount\n" + line * (70 * 2**20 // len(line)),
    )
    db = tmp_path / "big.duckdb"
    release = threading.Event()

    def hold_later_ranges(request: Any) -> None:
        if not request.headers.get("Range", "").startswith("bytes=0-"):
            release.wait(300)  # the first part arrives, so parsing and writing have begun

    proxy.add_rule(
        "call", method="GET", path="/big/huge.csv$", has_range=True, fn=hold_later_ranges
    )
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dreambolt",
            "ingest",
            f"s3://{bucket}/big/huge.csv",
            "--db",
            str(db),
            "--endpoint-url",
            proxy.endpoint_url,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_for_gets(proxy, 2, path="/big/huge.csv$")
        proc.send_signal(signal.SIGINT)
        # "At once": it exits while the later ranges are still held (they are released only
        # after it has exited, or never), not after they finish.
        try:
            _, stderr = proc.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            pytest.fail("SIGINT did not stop the ingest while its downloads were held")
    finally:
        release.set()
    assert proc.returncode == 130, stderr
    with duckdb.connect(str(db), read_only=True) as con:
        tables = {
            r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()
        }
    assert "huge" not in tables


def test_preserve_order_flag_keeps_file_order(tmp_path: Path) -> None:
    big = tmp_path / "big.csv"
    rows = 400_000  # several DuckDB row groups
    big.write_text("id\n" + "".join(f"{i}\n" for i in range(rows)))
    db = tmp_path / "o.duckdb"
    done = run("ingest", str(big), "--db", str(db), "--table", "t", "--preserve-order", "-q")
    assert done.returncode == 0, done.stderr
    con = duckdb.connect(str(db), read_only=True)
    try:
        ids = [r[0] for r in con.execute("SELECT id FROM t").fetchall()]
    finally:
        con.close()
    assert ids == list(range(rows))
