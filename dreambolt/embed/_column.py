"""From a text column to an embedding column: `pick_text_column`, `embed_texts`, `Embeddings`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import polars as pl

from dreambolt.embed._base import Embedder, EmbedStats, Vectors, text_hash
from dreambolt.embed._cache import EmbeddingCache
from dreambolt.errors import EmbeddingError

__all__ = ["Embeddings", "embed_texts", "pick_text_column"]

DEFAULT_CHECKPOINT = 50_000


@dataclass(frozen=True, slots=True)
class Embeddings:
    """One vector per input text, in input order.

    `vectors` has shape (n, dim); rows whose text was null or empty are zeros and have
    `valid` False. `dim` is None only when no row got a vector and the model's dimension is
    not known yet.
    """

    vectors: Vectors
    valid: npt.NDArray[np.bool_]
    dim: int | None

    def __len__(self) -> int:
        return len(self.valid)

    def to_series(self, name: str = "embedding", *, dim: int | None = None) -> pl.Series:
        """A polars column of type ``Array(Float32, dim)`` (DuckDB ``FLOAT[dim]``), null where
        the text was null or empty.

        `dim` is only used when the vectors do not tell it (every text null and the model's
        dimension unknown); with no dimension at all the column is an all-null
        ``List(Float32)``.
        """
        size = self.dim or dim
        if size is None:
            return pl.Series(name, [None] * len(self), dtype=pl.List(pl.Float32))
        if self.dim is None:  # all null, dimension from the caller
            return pl.Series(name, [None] * len(self), dtype=pl.Array(pl.Float32, size))
        series = pl.Series(name, self.vectors, dtype=pl.Array(pl.Float32, size))
        if self.valid.all():
            return series
        return pl.select(pl.when(pl.Series(self.valid)).then(series)).to_series().alias(name)


def pick_text_column(frame: pl.DataFrame | pl.Schema, requested: str | None = None) -> str:
    """The column to embed: `requested` if given, else ``text``, else the only string column.

    Raises EmbeddingError when the requested column is missing or not a string column, or when
    no single column can be chosen (the message lists the string columns to pick from).
    """
    schema = frame.schema if isinstance(frame, pl.DataFrame) else frame
    strings = [name for name, dtype in schema.items() if dtype == pl.String]
    choose = "choose one with --embed-column" if strings else "convert one to text first"
    listed = ", ".join(strings) if strings else "none"
    if requested is not None:
        if requested not in schema:
            raise EmbeddingError(
                f"--embed-column {requested!r} is not a column of the data; string columns: "
                f"{listed}"
            )
        if requested not in strings:
            raise EmbeddingError(
                f"--embed-column {requested!r} is {schema[requested]}, not a string column; "
                f"string columns: {listed}"
            )
        return requested
    if "text" in strings:
        return "text"
    if len(strings) == 1:
        return strings[0]
    raise EmbeddingError(
        f"cannot tell which column to embed: no string column named 'text' and "
        f"{len(strings) or 'no'} string columns ({listed}); {choose}"
    )


async def embed_texts(
    texts: Sequence[str | None],
    embedder: Embedder,
    cache: EmbeddingCache | None = None,
    *,
    checkpoint: int = DEFAULT_CHECKPOINT,
) -> tuple[Embeddings, EmbedStats]:
    """Embed a column of texts, paying only for texts never embedded with this model.

    Null and empty texts get no vector and cost nothing; identical texts are embedded once;
    texts found in `cache` under ``embedder.model`` (by sha256) are not sent. New vectors are
    written to the cache every `checkpoint` distinct texts, so a failure late in a long column
    does not lose what was already paid for.
    """
    if checkpoint < 1:
        raise ValueError(f"checkpoint must be >= 1, got {checkpoint}")
    stats = EmbedStats()
    column = _Column.of(texts)
    stats.texts = int(column.valid.sum())
    stats.nulls = len(texts) - stats.texts
    if not column.distinct:
        dim = embedder.dim
        return Embeddings(np.zeros((len(texts), dim or 0), np.float32), column.valid, dim), stats

    hashes = [text_hash(t) for t in column.distinct]
    found = await cache.get(embedder.model, hashes) if cache is not None else {}
    stats.cached = len(found)
    missing = [i for i, h in enumerate(hashes) if h not in found]
    new_parts: list[tuple[list[int], Vectors]] = []
    for start in range(0, len(missing), checkpoint):
        part = missing[start : start + checkpoint]
        vectors = await embedder.embed([column.distinct[i] for i in part], stats=stats)
        stats.embedded += len(part)
        new_parts.append((part, vectors))
        if cache is not None:
            fresh = {hashes[i]: v for i, v in zip(part, vectors, strict=True)}
            await cache.put(embedder.model, fresh)
    dim = _one_dimension(embedder, found, new_parts)
    table = _distinct_table(hashes, found, new_parts, dim)
    return Embeddings(column.spread(table), column.valid, dim), stats


@dataclass(frozen=True, slots=True)
class _Column:
    """A column of texts as its distinct non-empty texts, and which row holds which."""

    distinct: list[str]
    slot: npt.NDArray[np.int64]  # row -> index into `distinct`, -1 for null or empty
    valid: npt.NDArray[np.bool_]

    @classmethod
    def of(cls, texts: Sequence[str | None]) -> _Column:
        slot = np.full(len(texts), -1, dtype=np.int64)
        index: dict[str, int] = {}
        for row, text in enumerate(texts):
            if text:
                slot[row] = index.setdefault(text, len(index))
        return cls(list(index), slot, slot >= 0)

    def spread(self, table: Vectors) -> Vectors:
        """One vector per row from one per distinct text (zeros for null or empty rows)."""
        if len(self.distinct) == len(self.slot):  # no nulls, no duplicates: rows in order
            return table
        out = np.zeros((len(self.slot), table.shape[1]), dtype=np.float32)
        out[self.valid] = table[self.slot[self.valid]]
        return out


def _one_dimension(
    embedder: Embedder, found: dict[str, Vectors], new_parts: list[tuple[list[int], Vectors]]
) -> int:
    """The one vector size of the cached and new vectors (and of the model, when known)."""
    dims = {int(v.shape[-1]) for v in found.values()} | {int(v.shape[1]) for _, v in new_parts}
    if embedder.dim is not None:
        dims.add(embedder.dim)
    if len(dims) != 1:
        raise EmbeddingError(
            f"{embedder.model}: vectors of dimensions {sorted(dims)} for one model; the model "
            "behind this name has changed: delete its rows from _dreambolt_embeddings "
            f"(DELETE FROM _dreambolt_embeddings WHERE model = '{embedder.model}') and run again"
        )
    return dims.pop()


def _distinct_table(
    hashes: list[str],
    found: dict[str, Vectors],
    new_parts: list[tuple[list[int], Vectors]],
    dim: int,
) -> Vectors:
    """One vector per distinct text, in order, from the cached ones and the new ones."""
    if not found and len(new_parts) == 1:  # all new: already in `distinct` order, no copy
        return new_parts[0][1]
    table = np.empty((len(hashes), dim), dtype=np.float32)
    for i, h in enumerate(hashes):
        if h in found:
            table[i] = found[h]
    for part, vectors in new_parts:
        table[part] = vectors
    return table
