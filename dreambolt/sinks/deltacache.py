"""The embedding cache of a Delta root: the Delta table `ROOT/_dreambolt_embeddings`.

Vectors by (model, sha256 of the text), as in DuckDB (`sinks.embeddings`): columns model,
sha256, dim and vector (a list of float32). `put` appends (one commit per call); two writers
storing the same text at once may both append it, and `get` then returns either copy (the
vectors are the same model's for the same text).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt
import polars as pl
import pyarrow as pa
from deltalake import write_deltalake

from dreambolt.sinks.deltaops import Tables, create, in_list, query, retry_conflicts, sql_string

__all__ = ["EMBEDDINGS_TABLE", "DeltaEmbeddingCache"]

EMBEDDINGS_TABLE = "_dreambolt_embeddings"
_LOOKUP = 2000  # hashes per query

Vectors = npt.NDArray[np.float32]


class DeltaEmbeddingCache:
    """Implements `SyncEmbeddingCache` on a Delta table beside the data."""

    def __init__(self, tables: Tables) -> None:
        self.tables = tables

    def get(self, model: str, hashes: Sequence[str]) -> dict[str, Vectors]:
        """The vectors stored under `model` for those of `hashes` that are known."""
        snapshot = self.tables.snapshot(EMBEDDINGS_TABLE) if hashes else None
        if snapshot is None:
            return {}
        found: dict[str, Vectors] = {}
        unique = sorted(set(hashes))
        for start in range(0, len(unique), _LOOKUP):
            where = in_list("sha256", unique[start : start + _LOOKUP])
            frame = pl.from_arrow(
                query(
                    snapshot,
                    f"SELECT sha256, dim, vector FROM t WHERE model = {sql_string(model)} "
                    f"AND {where}",
                )
            )
            assert isinstance(frame, pl.DataFrame)
            for group in frame.unique("sha256").partition_by("dim"):
                dim = int(group["dim"][0])
                matrix = group["vector"].list.to_array(dim).to_numpy().astype(np.float32)
                found.update(zip(group["sha256"].to_list(), matrix, strict=True))
        return found

    def put(self, model: str, vectors: Mapping[str, Vectors]) -> None:
        """Store vectors by hash (one commit)."""
        if not vectors:
            return
        self.tables.check_writable()
        keys = list(vectors)
        rows = pl.DataFrame(
            {
                "model": [model] * len(keys),
                "sha256": keys,
                "dim": [int(vectors[k].shape[-1]) for k in keys],
                "vector": [vectors[k].astype(np.float32).tolist() for k in keys],
            },
            schema={
                "model": pl.String,
                "sha256": pl.String,
                "dim": pl.Int32,
                "vector": pl.List(pl.Float32),
            },
        ).to_arrow()
        retry_conflicts(lambda: self._append(rows), what=EMBEDDINGS_TABLE)

    def _append(self, rows: pa.Table) -> None:
        snapshot = self.tables.snapshot(EMBEDDINGS_TABLE)
        if snapshot is not None:
            write_deltalake(snapshot, rows, mode="append")
        else:
            create(self.tables, EMBEDDINGS_TABLE, rows)

    def count(self, model: str | None = None) -> int:
        """How many vectors are stored (for `model`, or for every model)."""
        snapshot = self.tables.snapshot(EMBEDDINGS_TABLE)
        if snapshot is None:
            return 0
        where = f" WHERE model = {sql_string(model)}" if model is not None else ""
        return int(query(snapshot, f"SELECT count(*) AS n FROM t{where}").column(0)[0].as_py())
