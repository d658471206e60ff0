"""The provider interface: what an embedder offers, the limits it batches at, its counters."""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, fields
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

__all__ = ["BatchLimits", "EmbedStats", "Embedder", "Vectors", "text_hash"]

Vectors = npt.NDArray[np.float32]
"""A float32 array: (n, dim) for a batch of texts, (dim,) for one text."""


def text_hash(text: str) -> str:
    """The cache key of a text: the hex sha256 of its UTF-8 bytes (before any truncation)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class BatchLimits:
    """How much one embeddings request may carry.

    The defaults are OpenAI's documented limits for every embedding model: at most 2,048 inputs
    and 300,000 tokens summed over the inputs of one request, and 8,191 tokens per input.
    """

    max_inputs: int = 2048
    max_tokens: int = 300_000
    max_input_tokens: int = 8191

    def __post_init__(self) -> None:
        if self.max_inputs < 1 or self.max_input_tokens < 1:
            raise ValueError("max_inputs and max_input_tokens must be >= 1")
        if self.max_tokens < self.max_input_tokens:
            raise ValueError("max_tokens must be >= max_input_tokens (one input must always fit)")


@dataclass(slots=True)
class EmbedStats:
    """What one or more `embed_texts` calls did; add them up with `+=` for a run's report.

    `texts` counts rows with non-empty text and `nulls` rows with null or empty text (no vector,
    no call). Each distinct text is either `cached` (found under this model) or `embedded` (sent
    to the provider), so `embedded + cached <= texts`. `truncated` counts texts cut to the
    model's input limit before sending; `tokens_sent` is the provider's reported usage (our own
    count where it reports none); `requests` counts successful requests and `retries` the
    attempts that were tried again.
    """

    texts: int = 0
    nulls: int = 0
    embedded: int = 0
    cached: int = 0
    truncated: int = 0
    tokens_sent: int = 0
    requests: int = 0
    retries: int = 0

    def __iadd__(self, other: EmbedStats) -> EmbedStats:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))
        return self

    def as_dict(self) -> dict[str, int]:
        """The counters as a plain dict (for JSON reports)."""
        return asdict(self)


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into vectors: one provider and model.

    `model` names the model as the cache knows it (e.g. ``text-embedding-3-small``,
    ``openai:nomic-embed-text``, ``local:all-MiniLM-L6-v2``); `dim` is the vector size, or None
    until the first response when the model is not in the built-in table.

    `embed` takes any number of non-empty texts, batches them at the provider's limits, and
    returns a float32 array of shape (len(texts), dim) in input order. When `stats` is given,
    it adds what it did (truncated, tokens_sent, requests, retries) to it.
    """

    model: str
    dim: int | None

    async def embed(self, texts: list[str], *, stats: EmbedStats | None = None) -> Vectors: ...

    async def aclose(self) -> None:
        """Release connections (and the client); the embedder must not be used afterwards."""
        ...
