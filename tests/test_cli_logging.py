"""`-v`/`-vv`: log lines a user can act on, on stderr, and never a secret.

The CLI runs for real (a subprocess, against moto through the fault proxy). Without -v the
package logs nothing (the progress lines and summary say what happened); -v adds INFO lines
(each retry, each file's outcome) and warnings; -vv adds one DEBUG line per S3 request.
"""

from __future__ import annotations

import io
import logging
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from faultproxy import FaultProxy

from dreambolt.cli.logs import RedactingFilter

LOG_LINE = re.compile(r"^(DEBUG|INFO|WARNING|ERROR) dreambolt(\.\w+)*: ", re.MULTILINE)


def run(*args: str, endpoint: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dreambolt", *args, "--endpoint-url", endpoint],
        capture_output=True,
        text=True,
        env=dict(os.environ),
        timeout=120,
    )


def ingest(verbosity: list[str], proxy: FaultProxy, bucket: str, db: Path) -> str:
    """Ingest one good object, one that is throttled once, and one missing: stderr."""
    done = run(
        *verbosity,
        "ingest",
        f"s3://{bucket}/logs/",
        f"s3://{bucket}/logs/missing.csv",
        "--table",
        "t",
        "--db",
        str(db),
        "--backoff",
        "0.01",
        endpoint=proxy.endpoint_url,
    )
    assert done.returncode == 1, done.stderr  # the missing object is skipped
    assert done.stdout == ""
    return done.stderr


@pytest.fixture
def objects(s3: Any, bucket: str) -> str:
    s3.put_object(Bucket=bucket, Key="logs/a.csv", Body=b"id,name\n1,a\n2,b\n")
    s3.put_object(Bucket=bucket, Key="logs/b.csv", Body=b"id,name\n3,c\n")
    return bucket


def assert_no_secret(text: str, secret: str) -> None:
    assert secret not in text
    assert not re.search(r"(?i)Signature=[0-9a-f]{16}", text)
    assert not re.search(r"(?i)X-Amz-(Signature|Credential|Security-Token)=[^*]", text)


def test_without_v_the_package_logs_nothing(
    proxy: FaultProxy, objects: str, tmp_path: Path, fake_secret: str
) -> None:
    proxy.add_rule("slowdown", method="GET", path="/logs/b.csv$", times=1)
    stderr = ingest([], proxy, objects, tmp_path / "t.duckdb")
    assert LOG_LINE.findall(stderr) == []
    assert f"skipped s3://{objects}/logs/missing.csv" in stderr  # the summary says it
    assert_no_secret(stderr, fake_secret)


def test_v_logs_each_retry_and_each_skipped_file(
    proxy: FaultProxy, objects: str, tmp_path: Path, fake_secret: str
) -> None:
    proxy.add_rule("slowdown", method="GET", path="/logs/b.csv$", times=1)
    stderr = ingest(["-v"], proxy, objects, tmp_path / "t.duckdb")
    logged = [line for line in stderr.splitlines() if LOG_LINE.match(line)]
    assert not [line for line in logged if line.startswith("DEBUG")]
    missing = f"s3://{objects}/logs/missing.csv"
    assert [line for line in logged if missing in line], stderr
    for name, rows in (("a.csv", 2), ("b.csv", 1)):
        outcome = re.compile(
            rf"^INFO dreambolt\.\w+: loaded s3://{objects}/logs/{name}\b.*\b{rows} rows"
        )
        assert [line for line in logged if outcome.match(line)], stderr
    retried = [line for line in logged if "logs/b.csv" in line and "retry" in line.lower()]
    assert retried and retried[0].startswith("INFO dreambolt.s3"), stderr
    assert "SlowDown" in retried[0]
    assert_no_secret(stderr, fake_secret)


def test_vv_adds_a_line_per_request_and_still_no_secret(
    proxy: FaultProxy, objects: str, tmp_path: Path, fake_secret: str
) -> None:
    stderr = ingest(["-vv"], proxy, objects, tmp_path / "t.duckdb")
    debug = [line for line in stderr.splitlines() if line.startswith("DEBUG dreambolt.s3")]
    assert any("logs/a.csv" in line for line in debug), stderr
    assert_no_secret(stderr, fake_secret)


def test_the_filter_redacts_arguments_and_tracebacks(fake_secret: str) -> None:
    """A secret passed as a log argument, or inside an exception's text, prints as ***."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingFilter())
    logger = logging.getLogger("dreambolt.test_cli_logging")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("url %s", "https://b.s3.amazonaws.com/k?X-Amz-Signature=abcdef0123")
        logger.warning("key %s", fake_secret)
        try:
            raise RuntimeError(f"aws_secret_access_key={fake_secret}")
        except RuntimeError:
            logger.exception("failed")
    finally:
        logger.removeHandler(handler)
        logger.propagate = True
    text = stream.getvalue()
    assert fake_secret not in text and "abcdef0123" not in text
    assert text.count("***") >= 3 and "RuntimeError" in text
