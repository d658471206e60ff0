"""`dreambolt demo`: the main job end to end on an embedded default, with no AWS account.

It starts a moto S3 server on a free loopback port, uploads a small realistic sample (CSV, gzip
CSV, Parquet, NDJSON, and one unreadable file), ingests it into a DuckDB file twice (the second
run shows exactly-once: the four readable files are unchanged, the unreadable one is skipped
again), prints the report and a few rows, and stops the server. The sample's bytes are the same
on every run (no timestamps in the gzip header), so running the demo again on the same file
loads nothing either.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from typing import IO

import duckdb
import polars as pl
from rich.console import Console

from dreambolt.errors import DreamBoltError
from dreambolt.ingest import Ingester
from dreambolt.progress import RichListener, print_summary
from dreambolt.s3.options import S3Options

__all__ = ["moto_server", "run_demo", "sample_objects"]

BUCKET = "dreambolt-demo"
_FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "demo-access-key",
    "AWS_SECRET_ACCESS_KEY": "demo-secret-key-not-a-real-one",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def moto_server(timeout: float = 30.0) -> Iterator[str]:
    """Run `moto_server` as a subprocess on a free loopback port; yields its endpoint URL."""
    try:
        import moto  # noqa: F401
    except ImportError as exc:
        raise DreamBoltError(
            "the demo needs moto's S3 server: pip install 'dreambolt[dev]' (or run `make demo`)"
        ) from exc
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            _wait_until_up(proc, url, log, timeout)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _wait_until_up(proc: subprocess.Popen[bytes], url: str, log: IO[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"{url}/moto-api/", timeout=1):
                return
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                log.seek(0)
                tail = log.read().decode(errors="replace")[-2000:]
                raise DreamBoltError(f"moto server did not start on {url}:\n{tail}") from None
            time.sleep(0.1)


def sample_objects() -> dict[str, bytes]:
    """A small, realistic sample: four readable months of events and one corrupt file."""
    january = (
        "event_id,user,country,amount,at,note\n"
        '1,ana,PT,12.50,2024-01-03T10:00:00,"first order, paid by card"\n'
        '2,björn,SE,7.00,2024-01-04T11:30:00,"note with ""quotes"""\n'
        '3,李雷,CN,99.90,2024-01-05T08:15:00,"two\nlines"\n'
    )
    february = (
        "event_id,user,country,amount,at,note\n"
        "4,chloé,FR,15.25,2024-02-01T09:00:00,\n"
        "5,dev,IN,3.10,2024-02-11T19:45:00,gift\n"
    )
    march = pl.DataFrame(
        {
            "event_id": [6, 7],
            "user": ["emeka", "fatima"],
            "country": ["NG", "MA"],
            "amount": [42.0, 8.75],
            "device": ["ios", "web"],
        }
    )
    parquet = io.BytesIO()
    march.write_parquet(parquet)
    april = (
        "\n".join(
            json.dumps(r)
            for r in [
                {"event_id": 8, "user": "gus", "country": "AR", "amount": 5.5, "device": "android"},
                {"event_id": 9, "user": "hana", "country": "JP", "amount": 61.0, "device": "web"},
            ]
        )
        + "\n"
    )
    return {
        "events/2024-01.csv": january.encode(),
        "events/2024-02.csv.gz": gzip.compress(february.encode(), mtime=0),
        "events/2024-03.parquet": parquet.getvalue(),
        "events/2024-04.ndjson": april.encode(),
        "events/2024-05.parquet": b"PAR1 this upload was cut short",
    }


def _upload(endpoint: str) -> None:
    import boto3

    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    try:
        client.create_bucket(Bucket=BUCKET)
        for key, body in sample_objects().items():
            client.put_object(Bucket=BUCKET, Key=key, Body=body)
    finally:
        client.close()


async def run_demo(db: str, err: Console, out: Console) -> int:
    """Run the demo; returns the exit code (0 when it ran as intended)."""
    os.environ.update(_FAKE_CREDENTIALS)  # never touch a real account from the demo
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        os.environ.pop(name, None)
    uri = f"s3://{BUCKET}/events/"
    with moto_server() as endpoint:
        err.print(f"[bold]moto S3[/] on {endpoint}; uploading the sample to s3://{BUCKET}/events/")
        _upload(endpoint)
        for attempt in ("first run", "second run — exactly-once: nothing is loaded twice"):
            err.print(f"\n[bold]dreambolt ingest {uri} --table events --db {db}[/]  ({attempt})")
            listener = RichListener(err)
            async with Ingester(
                db, listener=listener, s3=S3Options(endpoint_url=endpoint)
            ) as ingester:
                with listener:
                    report = await ingester.ingest([uri], table="events")
            print_summary(err, report)
    expected_problem = {f"s3://{BUCKET}/events/2024-05.parquet"}
    problems = {f.uri for f in report.files if f.status in ("skipped", "failed")}
    con = duckdb.connect(db, read_only=True)
    try:
        rows = con.sql(
            "SELECT event_id, user, country, amount, device, _source_uri FROM events "
            "ORDER BY event_id LIMIT 6"
        ).pl()
        per_file = con.sql(
            "SELECT _source_uri, count(*) AS rows FROM events GROUP BY 1 ORDER BY 1"
        ).pl()
    finally:
        con.close()
    with pl.Config(tbl_rows=10, tbl_width_chars=140, fmt_str_lengths=60):
        # plain writes: rich would re-wrap polars' own table drawing
        out.file.write(f"\nA few rows of table events in {db}:\n{rows}\n{per_file}\n")
    if problems != expected_problem:
        raise DreamBoltError(f"demo: unexpected outcome, problems were {sorted(problems)}")
    return 0
