"""Where vectors are remembered between runs: the async cache protocol and two caches.

`embed_texts` only talks to an `EmbeddingCache` (async). The DuckDB cache in
`dreambolt.sinks.embeddings` is synchronous, because its connection belongs to one thread;
`AsyncCache` runs such a cache through whatever runs that thread's work.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Protocol, TypeVar, runtime_checkable

import numpy as np

from dreambolt.embed._base import Vectors

__all__ = ["AsyncCache", "EmbeddingCache", "MemoryCache", "Runner", "SyncEmbeddingCache"]

T = TypeVar("T")


@runtime_checkable
class EmbeddingCache(Protocol):
    """Vectors by (model, sha256 of the text)."""

    async def get(self, model: str, hashes: Sequence[str]) -> dict[str, Vectors]:
        """The vectors stored for those of `hashes` that are known under `model`."""
        ...

    async def put(self, model: str, vectors: Mapping[str, Vectors]) -> None:
        """Store vectors by hash; hashes already stored under `model` are left as they are."""
        ...


class SyncEmbeddingCache(Protocol):
    """The same, for a store that must be called from its own thread (DuckDB)."""

    def get(self, model: str, hashes: Sequence[str]) -> dict[str, Vectors]: ...

    def put(self, model: str, vectors: Mapping[str, Vectors]) -> None: ...


class Runner(Protocol):
    """Runs a blocking call somewhere and awaits its result (e.g. on the ingester's DB thread)."""

    def __call__(self, fn: Callable[[], T], /) -> Awaitable[T]: ...


class AsyncCache:
    """Adapts a `SyncEmbeddingCache` to `EmbeddingCache` by running each call through `run`.

    The ingester passes the function that runs work on its one database thread. Without `run`,
    calls go to ``asyncio.to_thread`` one at a time.
    """

    def __init__(self, cache: SyncEmbeddingCache, run: Runner | None = None) -> None:
        self.cache = cache
        self._run = run
        self._lock = asyncio.Lock()

    async def _call(self, fn: Callable[[], T]) -> T:
        if self._run is not None:
            return await self._run(fn)
        async with self._lock:  # a DuckDB connection serves one call at a time
            return await asyncio.to_thread(fn)

    async def get(self, model: str, hashes: Sequence[str]) -> dict[str, Vectors]:
        if not hashes:
            return {}
        return await self._call(lambda: self.cache.get(model, hashes))

    async def put(self, model: str, vectors: Mapping[str, Vectors]) -> None:
        if vectors:
            await self._call(lambda: self.cache.put(model, vectors))


class MemoryCache:
    """An in-process cache (for `load()` without a database, and for tests)."""

    def __init__(self) -> None:
        self._vectors: dict[tuple[str, str], Vectors] = {}

    def __len__(self) -> int:
        return len(self._vectors)

    async def get(self, model: str, hashes: Sequence[str]) -> dict[str, Vectors]:
        found = {h: self._vectors.get((model, h)) for h in hashes}
        return {h: v for h, v in found.items() if v is not None}

    async def put(self, model: str, vectors: Mapping[str, Vectors]) -> None:
        for h, v in vectors.items():
            # Copies: a row view would keep the caller's whole batch array alive.
            self._vectors.setdefault((model, h), np.array(v, dtype=np.float32))
