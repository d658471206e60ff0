"""The one backoff policy (`dreambolt.backoff`) shared by S3 and the embeddings API: its
arithmetic without sleeping, and that both users really are built on it."""

from __future__ import annotations

import random

import pytest
from tenacity import Future, RetryCallState

from dreambolt.backoff import MAX_RETRY_AFTER, Backoff, parse_retry_after
from dreambolt.embed._openai import OpenAIEmbedder
from dreambolt.s3.retry import RetryPolicy


class Asked(Exception):
    """A failure whose server asked to wait `seconds` (None: it did not ask)."""

    def __init__(self, seconds: float | None) -> None:
        super().__init__(seconds)
        self.seconds = seconds


def asked(exc: BaseException) -> float | None:
    return exc.seconds if isinstance(exc, Asked) else None


def state_after(attempt: int, exc: BaseException) -> RetryCallState:
    """The tenacity state once `attempt` attempts have failed, the last with `exc`."""
    state = RetryCallState(None, None, (), {})
    state.attempt_number = attempt
    outcome: Future = Future(attempt)
    outcome.set_exception(exc)
    state.outcome = outcome
    return state


@pytest.mark.parametrize("attempt", [1, 2, 3, 4, 5, 6])
def test_the_nth_retry_waits_full_jitter_up_to_factor_times_two_to_the_n_minus_one(
    attempt: int,
) -> None:
    random.seed(attempt)
    wait = Backoff(max_retries=9, backoff_factor=0.5, max_backoff=10.0).wait(asked)
    high = min(0.5 * 2 ** (attempt - 1), 10.0)
    waits = [wait(state_after(attempt, Asked(None))) for _ in range(300)]
    assert all(0.0 <= w <= high for w in waits)
    assert max(waits) > high / 2  # jitter spreads over the window, not a fixed fraction of it


def test_retry_after_is_honoured_beyond_max_backoff_up_to_its_own_ceiling() -> None:
    wait = Backoff(max_retries=3, backoff_factor=0.01, max_backoff=0.05).wait(asked)
    assert wait(state_after(1, Asked(3.0))) == 3.0
    assert wait(state_after(1, Asked(3600.0))) == MAX_RETRY_AFTER == 60.0
    assert wait(state_after(1, Asked(0.0))) <= 0.05  # asking for less leaves the jitter
    assert wait(state_after(1, Asked(None))) <= 0.05


def test_invalid_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="max_retries"):
        Backoff(max_retries=-1)
    with pytest.raises(ValueError, match="backoff_factor"):
        Backoff(backoff_factor=-0.1)


async def test_retrying_tries_max_retries_plus_one_times_and_reraises_the_last_error() -> None:
    policy = Backoff(max_retries=2, backoff_factor=0.0, max_backoff=0.0)
    calls: list[int] = []
    slept: list[int] = []

    async def always() -> None:
        calls.append(1)
        raise Asked(None)

    with pytest.raises(Asked):
        await policy.retrying(
            retry=lambda exc: isinstance(exc, Asked),
            before_sleep=lambda state: slept.append(state.attempt_number),
        )(always)
    assert len(calls) == 3 and slept == [1, 2]


async def test_errors_the_caller_does_not_retry_are_raised_at_once() -> None:
    calls: list[int] = []

    async def refused() -> None:
        calls.append(1)
        raise KeyError("no")

    with pytest.raises(KeyError):
        await Backoff(max_retries=5).retrying(retry=lambda exc: isinstance(exc, Asked))(refused)
    assert calls == [1]


def test_retry_after_values_seconds_and_http_dates() -> None:
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after(" 1.5 ") == 1.5
    assert parse_retry_after("-3") == 0.0
    assert parse_retry_after("Thu, 01 Jan 1970 00:01:40 GMT", now=40.0) == 60.0
    assert parse_retry_after("Thu, 01 Jan 1970 00:00:10 GMT", now=40.0) == 0.0  # past
    assert parse_retry_after("soon") is None
    assert parse_retry_after("nan") is None


def test_s3_and_the_embeddings_api_use_the_same_policy() -> None:
    s3 = RetryPolicy(max_retries=4, backoff_factor=0.5, max_backoff=8.0)
    assert s3.backoff == Backoff(4, 0.5, 8.0)
    api = OpenAIEmbedder(
        "m",
        api_model="m",
        api_key="sk-x",
        base_url=None,
        max_retries=4,
        backoff_factor=0.5,
        max_backoff=8.0,
    )
    assert api.backoff == s3.backoff
