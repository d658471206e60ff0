"""The one retry policy for S3 calls, composed from tenacity parts.

botocore's own retries are switched off (`total_max_attempts=1`), so this module is the only place
that decides whether and when a failed request is tried again. Retryability is decided from the
translated error's class, code and status and from the type of the original exception — never
from message text.
"""

from __future__ import annotations

import asyncio
import email.utils
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    wait_random_exponential,
)

from dreambolt.errors import S3GenericError, S3IntegrityError, S3RateLimitError
from dreambolt.spool import is_disk_full

__all__ = ["MAX_RETRY_AFTER", "RetryPolicy", "is_retryable", "parse_retry_after", "retry_after_of"]

MAX_RETRY_AFTER = 60.0
"""The longest a server's `Retry-After` is waited for, in seconds (as urllib3 and the AWS SDKs
cap it); a longer one is waited for this long. Independent of `max_backoff`, which caps only the
jittered backoff DreamBolt picks itself."""

T = TypeVar("T")

_RETRYABLE_STATUS = {500, 502, 503, 504}
_RETRYABLE_CODES = {
    "RequestTimeout",
    "RequestTimeoutException",
    "InternalError",
    "ServiceUnavailable",
    "Timeout",
    "IncompleteBody",
    "OperationAborted",
}


def _connection_error_types() -> tuple[type[BaseException], ...]:
    import aiohttp
    from botocore import exceptions as bce

    return (
        aiohttp.ClientConnectionError,  # includes ServerDisconnectedError, ClientOSError
        aiohttp.ClientPayloadError,  # a body that broke off mid-stream
        asyncio.TimeoutError,
        ConnectionError,
        bce.EndpointConnectionError,
        bce.ConnectionClosedError,
        bce.ReadTimeoutError,
        bce.ConnectTimeoutError,
        bce.ResponseStreamingError,
        bce.IncompleteReadError,
    )


def is_retryable(exc: BaseException) -> bool:
    """Tell whether a translated S3 error is worth another attempt."""
    if is_disk_full(exc):
        return False  # the local disk is full: another GET would only fill it again
    if isinstance(exc, S3RateLimitError):
        return True
    if isinstance(exc, S3IntegrityError):
        return exc.code == "IncompleteBody"  # a short body is transient; a bad checksum is not
    if not isinstance(exc, S3GenericError):
        return False  # auth, not-found, object-changed and integrity errors never improve
    if exc.status in _RETRYABLE_STATUS or exc.code in _RETRYABLE_CODES:
        return True
    cause = exc.__cause__
    return cause is not None and isinstance(cause, _connection_error_types())


def parse_retry_after(value: str, now: float | None = None) -> float | None:
    """Seconds a `Retry-After` header value asks to wait: delay-seconds (`120`) or an HTTP-date
    (`Fri, 31 Dec 1999 23:59:59 GMT`, counted from `now`, a POSIX time, default the clock).

    None for a value that is neither; a date in the past is 0.
    """
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:  # an HTTP-date is always GMT
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    if seconds != seconds or seconds in (float("inf"), float("-inf")):
        return None
    return max(0.0, seconds)


def _headers_of(exc: BaseException) -> Mapping[str, str]:
    response: Any = getattr(exc.__cause__, "response", None)
    if not isinstance(response, dict):
        return {}
    headers = (response.get("ResponseMetadata") or {}).get("HTTPHeaders") or {}
    return {str(k).lower(): str(v) for k, v in headers.items()}


def retry_after_of(exc: BaseException | None) -> float | None:
    """The wait, in seconds, a server asked for with the response that raised `exc`, if any.

    `exc.retry_after` when the error translation parsed it (delay-seconds), else the raw header
    of the response behind it, which may be an HTTP-date: that is measured against the
    response's own `Date` when it has one, so a skewed local clock does not matter.
    """
    if exc is None:
        return None
    seconds = getattr(exc, "retry_after", None)
    if isinstance(seconds, int | float) and not isinstance(seconds, bool):
        return max(0.0, float(seconds))
    headers = _headers_of(exc)
    value = headers.get("retry-after")
    if value is None:
        return None
    now = None
    if "date" in headers:
        try:
            now = email.utils.parsedate_to_datetime(headers["date"]).timestamp()
        except (TypeError, ValueError, IndexError):
            now = None
    return parse_retry_after(value, now)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how patiently a failed S3 request is tried again.

    `max_retries` counts retries after the first attempt. The n-th retry waits a random time in
    [0, backoff_factor * 2**(n-1)] ("full jitter"), capped by `max_backoff`. A `Retry-After`
    sent by the server (seconds or an HTTP-date) is honoured as asked, even beyond
    `max_backoff`, up to `MAX_RETRY_AFTER` (60 s): the wait is then at least that.
    """

    max_retries: int = 3
    backoff_factor: float = 2.0
    max_backoff: float = 20.0

    def __post_init__(self) -> None:
        if self.max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {self.max_retries}")
        if self.backoff_factor < 0 or self.max_backoff < 0:
            raise ValueError("backoff_factor and max_backoff must be >= 0")

    def _wait(self, state: RetryCallState) -> float:
        jitter = wait_random_exponential(multiplier=self.backoff_factor, max=self.max_backoff)
        delay = min(jitter(state), self.max_backoff)
        asked = retry_after_of(state.outcome.exception() if state.outcome else None)
        if asked is not None:
            delay = max(delay, min(asked, MAX_RETRY_AFTER))
        return delay

    def retrying(self) -> AsyncRetrying:
        """A fresh tenacity controller for one logical request (one range, one HEAD, ...)."""
        return AsyncRetrying(
            stop=stop_after_attempt(self.max_retries + 1),
            wait=self._wait,
            retry=retry_if_exception(is_retryable),
            reraise=True,
        )

    async def call(self, attempt: Callable[[], Awaitable[T]]) -> T:
        """Run `attempt` until it succeeds or the policy gives up (tenacity decides).

        The first try runs outside tenacity, whose bookkeeping costs about 0.15 ms of CPU per
        attempt (a tenth of a small GET): nearly every request succeeds at once. If it fails,
        tenacity takes over from the start, its first attempt raising that same error again
        without a request, so the attempt count, the waits and `Retry-After` are exactly those
        of the policy.
        """
        try:
            return await attempt()
        except Exception as exc:
            if self.max_retries == 0 or not is_retryable(exc):
                raise
            first: list[Exception] = [exc]

        async def replayed() -> T:
            if first:
                raise first.pop()
            return await attempt()

        return await self.retrying()(replayed)
