"""Choosing a provider from a model name: `make_embedder`."""

from __future__ import annotations

import os

from dreambolt.embed._base import BatchLimits, Embedder
from dreambolt.errors import EmbeddingAuthError

__all__ = ["MODELS", "make_embedder"]

MODELS: dict[str, int] = {
    "text-embedding-ada-002": 1536,
    "text-embedding-3-small": 1536,
    "text-embedding-3-large": 3072,
}
"""OpenAI embedding models known by their bare name, with their vector dimension."""

LOCAL_MODEL = "local:all-MiniLM-L6-v2"
ACCEPTED = (
    "text-embedding-ada-002, text-embedding-3-small, text-embedding-3-large, "
    "openai:NAME (any model of an OpenAI-compatible API, e.g. openai:nomic-embed-text with "
    "--embed-base-url), or local:all-MiniLM-L6-v2"
)


def make_embedder(
    model: str,
    *,
    base_url: str | None = None,
    api_key: str | None = None,
    concurrency: int = 4,
    max_retries: int = 5,
    backoff_factor: float = 1.0,
    max_backoff: float = 30.0,
    timeout: float = 120.0,
    limits: BatchLimits | None = None,
) -> Embedder:
    """The embedder for a model name; raises before any request when it cannot work.

    OpenAI names (bare or ``openai:NAME``) use `base_url` or ``OPENAI_BASE_URL`` (default: the
    OpenAI API) and `api_key` or ``OPENAI_API_KEY``; a missing key raises `EmbeddingError` here.
    ``local:all-MiniLM-L6-v2`` raises `EmbeddingError` when the ``local`` extra is not installed.
    Any other name raises ValueError listing the accepted forms. `concurrency` bounds requests
    in flight; the retry options are those of `OpenAIEmbedder`.
    """
    name = model.strip()
    if name.lower() == LOCAL_MODEL.lower():
        from dreambolt.embed._local import LocalEmbedder

        return LocalEmbedder()
    if name in MODELS:
        api_model = name
    elif name.startswith("openai:") and name[len("openai:") :].strip():
        api_model = name[len("openai:") :].strip()
    else:
        raise ValueError(f"unknown embedding model {model!r}; use one of: {ACCEPTED}")
    # The cache key: a known OpenAI model is the same whichever way it was named.
    cache_name = api_model if api_model in MODELS else f"openai:{api_model}"
    key = api_key or os.environ.get("OPENAI_API_KEY")
    if not key:
        raise EmbeddingAuthError(
            f"no API key for embedding model {cache_name}: set OPENAI_API_KEY (a compatible "
            "server given by --embed-base-url / OPENAI_BASE_URL that needs no key still needs a "
            "non-empty value, e.g. OPENAI_API_KEY=unused)"
        )
    from dreambolt.embed._openai import OpenAIEmbedder

    return OpenAIEmbedder(
        cache_name,
        api_model=api_model,
        api_key=key,
        base_url=base_url or os.environ.get("OPENAI_BASE_URL") or None,
        dim=MODELS.get(api_model),
        concurrency=concurrency,
        max_retries=max_retries,
        backoff_factor=backoff_factor,
        max_backoff=max_backoff,
        timeout=timeout,
        limits=limits,
    )
