"""What the embeddings provider logs on ``dreambolt.embed``: each retry at INFO, each request at
DEBUG — never the API key, a text, or the server's message."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator

import pytest
from fake_openai import FakeOpenAI

from dreambolt.embed import embed_texts, make_embedder

FAST = {"backoff_factor": 0.001, "max_backoff": 0.05}
TEXT = "a private sentence"


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        yield server


@pytest.fixture(autouse=True)
def openai_env(fake: FakeOpenAI, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("OPENAI_API_KEY", fake.api_key)
    monkeypatch.setenv("OPENAI_BASE_URL", fake.base_url)
    fake.reset()
    yield
    fake.reset()


def lines(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [
        r.getMessage() for r in caplog.records if r.name == "dreambolt.embed" and r.levelno == level
    ]


async def test_retries_are_info_lines_and_requests_debug_lines_without_secrets(
    fake: FakeOpenAI, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="dreambolt.embed")
    fake.fail_next(1, 429, code="rate_limit_exceeded")
    fake.fail_next(1, 500)
    e = make_embedder("text-embedding-3-small", max_retries=3, **FAST)
    try:
        _, stats = await embed_texts([TEXT], e)
    finally:
        await e.aclose()
    assert stats.retries == 2
    info = lines(caplog, logging.INFO)
    assert len(info) == 2, info
    assert info[0].startswith("embeddings text-embedding-3-small (1 inputs): HTTP 429")
    assert "rate_limit_exceeded on attempt 1 of 4; retrying in " in info[0]
    assert info[1].startswith("embeddings text-embedding-3-small (1 inputs): HTTP 500 on attempt 2")
    debug = lines(caplog, logging.DEBUG)
    assert len(debug) == 3, debug
    assert [re.search(r": (HTTP \d+)", d).group(1) for d in debug] == [  # type: ignore[union-attr]
        "HTTP 429",
        "HTTP 500",
        "HTTP 200",
    ]
    assert all(fake.base_url in d and re.search(r"in \d+\.\d{3} s$", d) for d in debug)
    for line in info + debug:
        assert fake.api_key not in line and TEXT not in line


async def test_the_retry_message_names_options_that_exist(fake: FakeOpenAI) -> None:
    fake.fail_next(5, 429)
    e = make_embedder("text-embedding-3-small", max_retries=1, **FAST)
    try:
        with pytest.raises(Exception) as caught:
            await embed_texts(["busy"], e)
    finally:
        await e.aclose()
    message = str(caught.value)
    assert "after 1 retries (HTTP 429" in message
    assert "--embed-concurrency" not in message
    assert "make_embedder(MODEL, concurrency=1)" in message
