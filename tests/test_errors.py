"""Pure units: translation of lower-layer errors by code and status, redaction, retry policy."""

from __future__ import annotations

import aiohttp
import pytest
from botocore.exceptions import ClientError, NoCredentialsError
from tenacity import RetryCallState

from dreambolt.errors import (
    S3AuthError,
    S3GenericError,
    S3IntegrityError,
    S3NotFoundError,
    S3ObjectChangedError,
    S3RateLimitError,
    classify,
    make_error,
    redact,
    register_secret,
    translate,
)
from dreambolt.s3.retry import MAX_RETRY_AFTER, RetryPolicy, is_retryable

URI = "s3://bucket/key.csv"


def client_error(code: str, status: int, headers: dict[str, str] | None = None) -> ClientError:
    return ClientError(
        {
            "Error": {"Code": code, "Message": "msg"},
            "ResponseMetadata": {
                "HTTPStatusCode": status,
                "RequestId": "REQ1",
                "HTTPHeaders": headers or {},
            },
        },
        "GetObject",
    )


@pytest.mark.parametrize(
    ("code", "status", "cls"),
    [
        ("AccessDenied", 403, S3AuthError),
        ("InvalidAccessKeyId", 403, S3AuthError),
        ("SignatureDoesNotMatch", 403, S3AuthError),
        ("ExpiredToken", 400, S3AuthError),
        ("RequestTimeTooSkewed", 403, S3AuthError),
        ("Whatever", 401, S3AuthError),
        ("NoSuchKey", 404, S3NotFoundError),
        ("NoSuchBucket", 404, S3NotFoundError),
        ("NoSuchVersion", 404, S3NotFoundError),
        ("404", 404, S3NotFoundError),
        ("403", 403, S3AuthError),
        ("SlowDown", 503, S3RateLimitError),
        ("ThrottlingException", 400, S3RateLimitError),
        ("RequestLimitExceeded", 400, S3RateLimitError),
        ("TooManyRequests", 429, S3RateLimitError),
        ("PreconditionFailed", 412, S3ObjectChangedError),
        ("412", 412, S3ObjectChangedError),
        ("InternalError", 500, S3GenericError),
    ],
)
def test_translate_by_code_and_status(code: str, status: int, cls: type[Exception]) -> None:
    original = client_error(code, status)
    err = translate(original, URI)
    assert type(err) is cls
    assert err.__cause__ is original
    assert err.uri == URI and err.status == status and err.request_id == "REQ1"
    assert URI in str(err) and err.hint and err.hint in str(err)


def test_classification_never_reads_message_text() -> None:
    assert classify("Unrelated", 500) is S3GenericError
    err = translate(
        ClientError(
            {
                "Error": {"Code": "Weird", "Message": "SlowDown AccessDenied"},
                "ResponseMetadata": {"HTTPStatusCode": 500},
            },
            "GetObject",
        ),
        URI,
    )
    assert type(err) is S3GenericError


def test_no_credentials_message_lists_every_fix() -> None:
    err = translate(NoCredentialsError(), URI)
    assert isinstance(err, S3AuthError) and err.code == "NoCredentials"
    for fix in ("aws configure", "AWS_PROFILE", "AWS_ACCESS_KEY_ID", "instance role"):
        assert fix in str(err)


def test_retry_after_is_carried() -> None:
    err = translate(client_error("SlowDown", 503, {"retry-after": "3"}), URI)
    assert err.retry_after == 3.0


def test_retryability() -> None:
    assert is_retryable(translate(client_error("SlowDown", 503), URI))
    assert is_retryable(translate(client_error("InternalError", 500), URI))
    assert is_retryable(translate(client_error("RequestTimeout", 400), URI))
    assert is_retryable(translate(aiohttp.ClientPayloadError("cut"), URI))
    assert is_retryable(translate(aiohttp.ServerDisconnectedError(), URI))
    short = make_error(S3IntegrityError, uri=URI, code="IncompleteBody", status=None)
    corrupt = make_error(S3IntegrityError, uri=URI, code="ChecksumMismatch", status=None)
    assert is_retryable(short) and not is_retryable(corrupt)
    for code, status in (
        ("AccessDenied", 403),
        ("NoSuchKey", 404),
        ("PreconditionFailed", 412),
        ("InvalidRequest", 400),
    ):
        assert not is_retryable(translate(client_error(code, status), URI))


def test_redaction() -> None:
    secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
    register_secret(secret)
    text = (
        f"boom {secret} X-Amz-Signature=abcdef0123456789 "
        "Signature=0123456789abcdef0123 aws_session_token=FQoGZXIvYXdzEJr"
    )
    cleaned = redact(text)
    for leaked in (secret, "abcdef0123456789", "0123456789abcdef0123", "FQoGZXIvYXdzEJr"):
        assert leaked not in cleaned
    assert redact("s3://bucket/0123456789abcdef0123456789abcdef01234567.csv").endswith(".csv")


def _state(attempt: int, exc: BaseException) -> RetryCallState:
    state = RetryCallState(retry_object=None, fn=None, args=(), kwargs={})  # type: ignore[arg-type]
    state.attempt_number = attempt
    state.set_exception((type(exc), exc, None))
    return state


def test_backoff_is_jittered_capped_and_honours_retry_after() -> None:
    policy = RetryPolicy(max_retries=5, backoff_factor=2.0, max_backoff=20.0)
    plain = translate(client_error("SlowDown", 503), URI)
    for attempt in range(1, 8):
        waits = [policy.wait(_state(attempt, plain)) for _ in range(200)]
        assert all(0 <= w <= min(20.0, 2.0 * 2 ** (attempt - 1)) for w in waits)
    told = translate(client_error("SlowDown", 503, {"retry-after": "7"}), URI)
    assert policy.wait(_state(1, told)) == 7.0
    huge = translate(client_error("SlowDown", 503, {"retry-after": "3600"}), URI)
    assert policy.wait(_state(1, huge)) == MAX_RETRY_AFTER  # its own ceiling, not max_backoff
    with pytest.raises(ValueError):
        RetryPolicy(max_retries=-1)


class _Flaky:
    """Fails with the given errors, in order, then returns "ok"; counts the attempts."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


async def test_policy_call_counts_attempts_like_tenacity_alone() -> None:
    policy = RetryPolicy(max_retries=3, backoff_factor=0.001, max_backoff=0.01)
    slow = translate(client_error("SlowDown", 503), URI)
    first_time = _Flaky()
    assert await policy.call(first_time) == "ok" and first_time.calls == 1
    twice = _Flaky(slow, slow)
    assert await policy.call(twice) == "ok" and twice.calls == 3
    always = _Flaky(*[slow] * 10)
    with pytest.raises(S3RateLimitError):
        await policy.call(always)
    assert always.calls == 4  # the first attempt and max_retries=3 retries
    denied = _Flaky(translate(client_error("AccessDenied", 403), URI))
    with pytest.raises(S3AuthError):
        await policy.call(denied)
    assert denied.calls == 1
    never = _Flaky(slow)
    with pytest.raises(S3RateLimitError):
        await RetryPolicy(max_retries=0).call(never)
    assert never.calls == 1


async def test_policy_call_waits_what_the_server_asks_before_the_first_retry() -> None:
    import time

    policy = RetryPolicy(max_retries=1, backoff_factor=0.0, max_backoff=5.0)
    told = translate(client_error("SlowDown", 503, {"retry-after": "1"}), URI)
    flaky = _Flaky(told)
    began = time.monotonic()
    assert await policy.call(flaky) == "ok"
    assert time.monotonic() - began >= 0.95 and flaky.calls == 2
