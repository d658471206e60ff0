"""The one backoff policy of every remote call DreamBolt retries: S3 and embedding requests.

    policy = Backoff(max_retries=3, backoff_factor=2.0, max_backoff=20.0)
    async for attempt in policy.retrying(retry=is_retryable, retry_after=asked_for):
        with attempt:
            ...

`max_retries` counts retries after the first attempt. The n-th retry waits a random time in
[0, backoff_factor * 2**(n-1)] seconds ("full jitter", tenacity's `wait_random_exponential`),
capped by `max_backoff`. When the failed response carried a server's `Retry-After`, the wait is
at least what it asks, up to `MAX_RETRY_AFTER` (a ceiling of its own, not `max_backoff`).

Each caller says what is worth retrying and how to read a `Retry-After` from its own errors (S3
and the embeddings API send it differently); the arithmetic, and tenacity, live only here.
Standard library and tenacity only, so any stage can use it.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Callable
from dataclasses import dataclass

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    wait_random_exponential,
)

__all__ = ["MAX_RETRY_AFTER", "Backoff", "RetryAfter", "parse_retry_after"]

MAX_RETRY_AFTER = 60.0
"""The longest a server's `Retry-After` is waited for, in seconds (as urllib3 and the AWS SDKs
cap it); a longer one is waited for this long. Independent of `max_backoff`, which caps only the
jittered backoff DreamBolt picks itself."""

RetryAfter = Callable[[BaseException], float | None]
"""Reads the seconds a server asked to wait from the error its response raised (None: not asked)."""

BeforeSleep = Callable[[RetryCallState], None]
"""Called before each wait (tenacity's `before_sleep`): the place to log or count a retry."""


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


def _never_asked(_: BaseException) -> float | None:
    return None


@dataclass(frozen=True, slots=True)
class Backoff:
    """How often and how patiently a failed request is tried again (see the module docstring)."""

    max_retries: int = 3
    backoff_factor: float = 2.0
    max_backoff: float = 20.0

    def __post_init__(self) -> None:
        if self.max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {self.max_retries}")
        if self.backoff_factor < 0 or self.max_backoff < 0:
            raise ValueError("backoff_factor and max_backoff must be >= 0")

    def wait(self, retry_after: RetryAfter = _never_asked) -> Callable[[RetryCallState], float]:
        """The tenacity `wait`: full jitter capped by `max_backoff`, or the server's
        `Retry-After` (read from the failed attempt's error by `retry_after`) if longer, up to
        `MAX_RETRY_AFTER`."""
        jitter = wait_random_exponential(multiplier=self.backoff_factor, max=self.max_backoff)
        cap = self.max_backoff

        def wait(state: RetryCallState) -> float:
            delay = min(jitter(state), cap)
            error = state.outcome.exception() if state.outcome is not None else None
            asked = retry_after(error) if error is not None else None
            if asked is not None:
                delay = max(delay, min(asked, MAX_RETRY_AFTER))
            return delay

        return wait

    def retrying(
        self,
        *,
        retry: Callable[[BaseException], bool],
        retry_after: RetryAfter = _never_asked,
        before_sleep: BeforeSleep | None = None,
    ) -> AsyncRetrying:
        """A fresh tenacity controller for one logical request: at most `max_retries` retries
        of errors `retry` accepts, waiting as `wait` says; the last error is re-raised as is."""
        return AsyncRetrying(
            stop=stop_after_attempt(self.max_retries + 1),
            wait=self.wait(retry_after),
            retry=retry_if_exception(retry),
            before_sleep=before_sleep,
            reraise=True,
        )
