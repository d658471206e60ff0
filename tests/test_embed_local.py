"""The local provider with the real all-MiniLM-L6-v2 weights from ``dreambolt[local]`` (no skips).

The model is loaded once for the module; an audit hook records any socket connection or DNS
look-up made meanwhile, to prove the load never reaches for a model hub.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import polars as pl
import pytest

from dreambolt.embed import Embedder, MemoryCache, embed_texts, make_embedder
from dreambolt.embed._local import LocalEmbedder

_watching = False
_network: list[tuple[str, Any]] = []


def _audit(event: str, args: Any) -> None:
    if _watching and event in ("socket.connect", "socket.getaddrinfo", "socket.gethostbyname"):
        _network.append((event, args))


sys.addaudithook(_audit)  # hooks cannot be removed: it records only while _watching is set


@pytest.fixture(scope="module")
async def local() -> AsyncIterator[Embedder]:
    global _watching
    embedder = make_embedder("local:all-MiniLM-L6-v2")
    assert isinstance(embedder, LocalEmbedder)
    _watching = True
    try:
        await embedder.load()
        await embedder.embed(["warm up"])
    finally:
        _watching = False
    assert _network == [], f"loading the local model touched the network: {_network}"
    yield embedder
    await embedder.aclose()


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


async def test_embeds_sentences_with_384_dimensions(local: Embedder) -> None:
    texts = ["A man is playing a guitar.", "The weather is cold today.", "Hello"]
    vectors = await local.embed(texts)
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32 and local.dim == 384
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    again = await local.embed(texts[::-1])
    np.testing.assert_allclose(again[::-1], vectors, atol=1e-5)  # order kept, deterministic


async def test_similar_sentences_are_closer_than_unrelated_ones(local: Embedder) -> None:
    guitar, guitar2, stocks, cat, kitten = await local.embed(
        [
            "A man is playing a guitar.",
            "Someone is strumming an acoustic guitar.",
            "The central bank raised interest rates again.",
            "The cat sleeps on the sofa.",
            "A kitten is napping on the couch.",
        ]
    )
    assert cosine(guitar, guitar2) > cosine(guitar, stocks) + 0.2
    assert cosine(cat, kitten) > cosine(cat, stocks) + 0.2
    assert cosine(cat, kitten) > cosine(cat, guitar2)


async def test_embed_texts_with_the_local_model(local: Embedder) -> None:
    cache = MemoryCache()
    texts = ["first text", None, "", "a very long text " * 200, "first text"]
    result, stats = await embed_texts(texts, local, cache)
    assert (stats.texts, stats.nulls, stats.embedded, stats.truncated) == (3, 2, 2, 1)
    assert stats.requests == 1 and stats.tokens_sent > 256
    series = result.to_series()
    assert series.dtype == pl.Array(pl.Float32, 384)
    assert series.is_null().to_list() == [False, True, True, False, False]
    np.testing.assert_array_equal(result.vectors[0], result.vectors[4])
    _, again = await embed_texts(texts, local, cache)
    assert again.cached == 2 and again.embedded == 0 and again.requests == 0
