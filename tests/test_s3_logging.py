"""What the S3 stage logs: each retry at INFO, each request at DEBUG, on ``dreambolt.s3`` — and
never a secret, a signature or a presigned query string."""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
from conftest import FAKE_ACCESS_KEY_ID
from faultproxy import FaultProxy

from dreambolt import S3Client
from dreambolt.s3.transfer import split

PART = 1024


def lines(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [
        r.getMessage() for r in caplog.records if r.name == "dreambolt.s3" and r.levelno == level
    ]


def assert_no_secret(text: str, secret: str) -> None:
    assert secret not in text
    assert FAKE_ACCESS_KEY_ID not in text  # not even the key id (it is in X-Amz-Credential)
    assert "X-Amz-" not in text and "Signature" not in text and "?" not in text


@pytest.fixture
async def client(proxy: FaultProxy) -> AsyncIterator[S3Client]:
    options: dict[str, Any] = {"part_size": PART, "concurrency": 4, "max_retries": 3}
    async with S3Client(
        endpoint_url=proxy.endpoint_url, backoff_factor=0.01, max_backoff=0.05, **options
    ) as s3:
        yield s3


async def test_each_retry_is_one_info_line_saying_what_why_which_attempt_and_how_long(
    client: S3Client,
    proxy: FaultProxy,
    s3: Any,
    bucket: str,
    fake_secret: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="dreambolt.s3")
    s3.put_object(Bucket=bucket, Key="k.csv", Body=b"hello")
    proxy.add_rule("slowdown", method="GET", path=f"/{bucket}/k.csv$", times=2)
    assert await client.read(f"s3://{bucket}/k.csv") == b"hello"
    info = lines(caplog, logging.INFO)
    assert len(info) == 2, info
    for n, line in enumerate(info, start=1):
        assert line.startswith(f"GetObject s3://{bucket}/k.csv: SlowDown (HTTP 503)"), line
        assert f"on attempt {n} of 4; retrying in " in line
        assert re.search(r"retrying in \d+\.\d\d s$", line), line
        assert_no_secret(line, fake_secret)
    assert lines(caplog, logging.DEBUG) == []  # request detail only at DEBUG


async def test_each_request_is_one_debug_line_with_range_status_and_time(
    client: S3Client,
    proxy: FaultProxy,
    s3: Any,
    bucket: str,
    fake_secret: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="dreambolt.s3")
    s3.put_object(Bucket=bucket, Key="big.bin", Body=b"x" * (3 * PART))
    proxy.add_rule("error", status=500, code="InternalError", method="GET", has_range=True, times=1)
    assert await client.read(f"s3://{bucket}/big.bin") == b"x" * (3 * PART)
    debug = lines(caplog, logging.DEBUG)
    uri = f"s3://{bucket}/big.bin"
    assert any(re.fullmatch(rf"HeadObject {uri}: HTTP 200 in \d+\.\d{{3}} s", d) for d in debug)
    ranged = [d for d in debug if d.startswith(f"GetObject {uri} bytes=")]
    ok = [d for d in ranged if re.search(r": HTTP 206 in \d+\.\d{3} s$", d)]
    failed = [d for d in ranged if re.search(r": InternalError \(HTTP 500\) after \d", d)]
    spans = {f"{first}-{last}" for first, last in split(3 * PART, PART, 4)}
    assert len(ok) == len(spans) and len(failed) == 1, debug
    assert {d.split(" bytes=")[1].split(":")[0] for d in ok} == spans
    assert len(lines(caplog, logging.INFO)) == 1
    for line in debug:
        assert_no_secret(line, fake_secret)


async def test_presigned_gets_log_the_s3_uri_not_the_signed_url(
    client: S3Client,
    proxy: FaultProxy,
    s3: Any,
    bucket: str,
    fake_secret: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="dreambolt.s3")
    s3.put_object(Bucket=bucket, Key="small.csv", Body=b"a\n1\n")
    proxy.add_rule("slowdown", method="GET", path=f"/{bucket}/small.csv$", times=1)
    assert await client.read(f"s3://{bucket}/small.csv") == b"a\n1\n"
    gets = [r for r in proxy.requests if r.method == "GET"]
    assert "X-Amz-Signature=" in gets[-1].query  # it really was a presigned GET
    logged = [line for line in lines(caplog, logging.DEBUG) + lines(caplog, logging.INFO)]
    assert any(line.startswith(f"GetObject s3://{bucket}/small.csv: HTTP 200") for line in logged)
    for line in logged:
        assert_no_secret(line, fake_secret)
