"""Retry-After: honoured as the server asks (seconds or an HTTP-date), beyond max_backoff, up to
MAX_RETRY_AFTER. Waits are measured from the fault proxy's arrival times of the failed request
and its retry, never against a wall-clock upper bound."""

from __future__ import annotations

import email.utils
import errno
import math
import time
from typing import Any

import pytest
from aiohttp import web
from botocore.exceptions import ClientError
from faultproxy import FaultProxy, RecordedRequest, Rule
from tenacity import Future, RetryCallState

from dreambolt import S3Client
from dreambolt.errors import translate
from dreambolt.s3.retry import MAX_RETRY_AFTER, RetryPolicy, is_retryable, parse_retry_after

PART = 1024


def quick(endpoint: str) -> S3Client:
    """Jittered backoff of at most 0.05 s: any wait longer than that is the server's."""
    return S3Client(
        endpoint_url=endpoint, part_size=PART, concurrency=4, backoff_factor=0.01, max_backoff=0.05
    )


def failed_and_retry(proxy: FaultProxy, rule: Rule) -> tuple[RecordedRequest, RecordedRequest]:
    """The request the rule failed, and the next one for the same path (and range)."""
    requests = proxy.requests
    index = next(i for i, r in enumerate(requests) if r.rule is rule)
    failed = requests[index]
    retry = next(
        r
        for r in requests[index + 1 :]
        if (r.method, r.path, r.headers.get("Range"))
        == (failed.method, failed.path, failed.headers.get("Range"))
    )
    return failed, retry


@pytest.mark.parametrize("how", ["small GET", "ranged GET", "HEAD"])
async def test_retry_after_seconds_beyond_max_backoff(
    proxy: FaultProxy, s3: Any, bucket: str, how: str
) -> None:
    size = 3 * PART if how == "ranged GET" else 5
    s3.put_object(Bucket=bucket, Key="k", Body=b"x" * size)
    rule = proxy.add_rule(
        "slowdown",
        method="HEAD" if how == "HEAD" else "GET",
        path=f"/{bucket}/k$",
        has_range=True if how == "ranged GET" else None,
        times=1,
        retry_after=1,
    )
    async with quick(proxy.endpoint_url) as client:
        if how == "HEAD":
            assert (await client.head(f"s3://{bucket}/k")).size == size
        else:
            assert await client.read(f"s3://{bucket}/k") == b"x" * size
    failed, retry = failed_and_retry(proxy, rule)
    assert retry.at - failed.at >= 1.0  # max_backoff is 0.05 s: the server's 1 s was honoured


async def test_retry_after_as_an_http_date(
    proxy: FaultProxy, s3: Any, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The proxy sends Retry-After as seconds; rewrite it as the date one second after the
    # response's own Date (HTTP-dates have whole seconds, so both are sent explicitly).
    plain = proxy._error_response

    def dated(request: web.Request, rule: Rule) -> web.Response:
        response = plain(request, rule)
        now = math.floor(time.time())
        response.headers["Date"] = email.utils.formatdate(now, usegmt=True)
        response.headers["Retry-After"] = email.utils.formatdate(now + 1, usegmt=True)
        return response

    monkeypatch.setattr(proxy, "_error_response", dated)
    s3.put_object(Bucket=bucket, Key="k", Body=b"x" * 5)
    rule = proxy.add_rule("slowdown", method="GET", path=f"/{bucket}/k$", times=1, retry_after=1)
    async with quick(proxy.endpoint_url) as client:
        assert await client.read(f"s3://{bucket}/k") == b"x" * 5
    failed, retry = failed_and_retry(proxy, rule)
    assert retry.at - failed.at >= 1.0


# --- the policy's arithmetic, without sleeping ------------------------------------------------


def throttled(headers: dict[str, str]) -> BaseException:
    """The translated error for a 503 SlowDown carrying these response headers."""
    response: Any = {
        "Error": {"Code": "SlowDown", "Message": "Please reduce your request rate."},
        "ResponseMetadata": {"HTTPStatusCode": 503, "HTTPHeaders": headers},
    }
    return translate(ClientError(response, "GetObject"), "s3://b/k")


def wait_after(policy: RetryPolicy, exc: BaseException, attempt: int = 1) -> float:
    state = RetryCallState(None, None, (), {})
    state.attempt_number = attempt
    outcome: Future = Future(attempt)
    outcome.set_exception(exc)
    state.outcome = outcome
    return policy.wait(state)


def test_retry_after_is_capped_by_its_own_ceiling_not_max_backoff() -> None:
    policy = RetryPolicy(max_retries=3, backoff_factor=0.01, max_backoff=0.05)
    assert wait_after(policy, throttled({"retry-after": "3"})) == 3.0
    assert wait_after(policy, throttled({"retry-after": "3600"})) == MAX_RETRY_AFTER == 60.0
    assert wait_after(policy, throttled({"retry-after": "0"})) <= 0.05  # jitter as usual
    assert wait_after(policy, throttled({})) <= 0.05
    big = RetryPolicy(max_retries=9, backoff_factor=100.0, max_backoff=20.0)
    assert wait_after(big, throttled({}), attempt=8) <= 20.0  # jitter stays capped


def test_retry_after_http_date_counts_from_the_response_date() -> None:
    policy = RetryPolicy(max_retries=3, backoff_factor=0.01, max_backoff=0.05)
    # a server clock 1000 s behind ours: the wait is still the 7 s it asks for
    sent = time.time() - 1000
    headers = {
        "date": email.utils.formatdate(sent, usegmt=True),
        "retry-after": email.utils.formatdate(sent + 7, usegmt=True),
    }
    assert 6.0 <= wait_after(policy, throttled(headers)) <= 7.0
    del headers["date"]  # no Date: against our clock, where that moment is long past
    assert wait_after(policy, throttled(headers)) <= 0.05


def test_parse_retry_after() -> None:
    now = email.utils.parsedate_to_datetime("Wed, 21 Oct 2015 07:28:00 GMT").timestamp()
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after(" 1.5 ") == 1.5
    assert parse_retry_after("-3") == 0.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now) == 30.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:27:00 GMT", now) == 0.0  # past: at once
    for junk in ("", "soon", "nan", "inf", "Wed, 21 Oct 2015"):
        assert parse_retry_after(junk, now) is None, junk


def test_a_full_disk_is_never_retried() -> None:
    for code in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        assert not is_retryable(OSError(code, "full"))
