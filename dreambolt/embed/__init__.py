"""Embeddings: turn a text column into a vector column, batched, retried and cached by content.

    embedder = make_embedder("text-embedding-3-small")          # or "local:all-MiniLM-L6-v2"
    column = pick_text_column(frame, None)                       # "text" or the only string column
    result, stats = await embed_texts(frame[column].to_list(), embedder, cache)
    frame = frame.with_columns(result.to_series("embedding"))    # Array(Float32, dim), null-safe

Providers follow the `Embedder` protocol; caches follow `EmbeddingCache` (`MemoryCache`, or the
DuckDB table `_dreambolt_embeddings` through `AsyncCache`).
"""

from dreambolt.embed._base import BatchLimits, Embedder, EmbedStats, Vectors, text_hash
from dreambolt.embed._cache import (
    AsyncCache,
    EmbeddingCache,
    MemoryCache,
    Runner,
    SyncEmbeddingCache,
)
from dreambolt.embed._column import Embeddings, embed_texts, pick_text_column
from dreambolt.embed._providers import MODELS, make_embedder
from dreambolt.embed._stage import EmbedStage
from dreambolt.embed._tokens import estimate

__all__ = [
    "MODELS",
    "AsyncCache",
    "BatchLimits",
    "EmbedStage",
    "EmbedStats",
    "Embedder",
    "EmbeddingCache",
    "Embeddings",
    "MemoryCache",
    "Runner",
    "SyncEmbeddingCache",
    "Vectors",
    "embed_texts",
    "estimate",
    "make_embedder",
    "pick_text_column",
    "text_hash",
]
