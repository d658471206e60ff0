"""The embedding cache table, `_dreambolt_embeddings`, in the DuckDB file beside the data.

Vectors are kept by (model, sha256 of the text), so re-ingesting a file, or ingesting another
file with overlapping texts, sends only new texts to the provider. Calls are synchronous and
must come from the thread that owns the connection; `dreambolt.embed.AsyncCache` adapts them.
Reads and writes are set-based: hashes and vectors cross into DuckDB as Arrow tables.

Several connections of one process may share the cache (two Ingesters on one database): when two
store the same vector at once, DuckDB refuses one of them (a duplicate key, or a conflict at
commit); it is stored again, which then keeps the vector already there.
"""

from __future__ import annotations

import random
import time
from collections.abc import Mapping, Sequence

import duckdb
import numpy as np
import numpy.typing as npt
import polars as pl

from dreambolt.errors import SinkError
from dreambolt.sinks import ledger
from dreambolt.sinks.failures import io_failure

__all__ = ["EMBEDDINGS_TABLE", "DuckDBEmbeddingCache"]

EMBEDDINGS_TABLE = "_dreambolt_embeddings"
_KEYS = "__dreambolt_embed_keys"
_ROWS = "__dreambolt_embed_rows"
_RACES = 50  # tries of a put that another connection's put of the same texts can beat

_DDL = f"""
CREATE TABLE IF NOT EXISTS {EMBEDDINGS_TABLE} (
    model   VARCHAR NOT NULL,
    sha256  VARCHAR NOT NULL,
    dim     INTEGER NOT NULL,
    vector  FLOAT[] NOT NULL,
    PRIMARY KEY (model, sha256)
)
"""

Vectors = npt.NDArray[np.float32]


class DuckDBEmbeddingCache:
    """Vectors by (model, sha256) in `_dreambolt_embeddings`; implements `SyncEmbeddingCache`."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con = con
        try:
            rows = con.execute(
                "SELECT path FROM duckdb_databases() WHERE database_name = current_database()"
            ).fetchall()
            self._db = str(rows[0][0]) if rows and rows[0][0] else ":memory:"
            ledger.ensure_table(con, EMBEDDINGS_TABLE, _DDL)
        except duckdb.Error as exc:
            raise self._error("cannot create the embedding cache table", exc) from exc

    def _error(self, what: str, exc: duckdb.Error) -> SinkError:
        """A full disk or failing database file is fatal; anything else is this call's."""
        return io_failure(exc, getattr(self, "_db", "the database")) or SinkError(f"{what}: {exc}")

    def get(self, model: str, hashes: Sequence[str]) -> dict[str, Vectors]:
        """The vectors stored under `model` for those of `hashes` that are known."""
        if not hashes:
            return {}
        keys = pl.DataFrame({"sha256": list(hashes)}, schema={"sha256": pl.String})
        try:
            self.con.register(_KEYS, keys.to_arrow())
            try:
                table = self.con.sql(
                    f"SELECT e.sha256, e.dim, e.vector FROM {_KEYS} k "
                    f"JOIN {EMBEDDINGS_TABLE} e ON e.model = $model AND e.sha256 = k.sha256",
                    params={"model": model},
                ).to_arrow_table()
            finally:
                self.con.unregister(_KEYS)
        except duckdb.Error as exc:
            raise self._error("cannot read the embedding cache", exc) from exc
        frame = pl.from_arrow(table)
        assert isinstance(frame, pl.DataFrame)
        found: dict[str, Vectors] = {}
        # One group per dimension (normally exactly one): reshaped in bulk, not row by row.
        for group in frame.partition_by("dim"):
            dim = int(group["dim"][0])
            matrix = group["vector"].list.to_array(dim).to_numpy().astype(np.float32, copy=False)
            found.update(zip(group["sha256"].to_list(), matrix, strict=True))
        return found

    def put(self, model: str, vectors: Mapping[str, Vectors]) -> None:
        """Store vectors by hash; hashes already stored under `model` keep their vector."""
        if not vectors:
            return
        by_dim: dict[int, list[str]] = {}
        for key, vector in vectors.items():
            by_dim.setdefault(int(vector.shape[-1]), []).append(key)
        try:
            for dim, keys in by_dim.items():
                matrix = np.stack([vectors[k] for k in keys]).astype(np.float32, copy=False)
                rows = pl.DataFrame({"sha256": keys, "vector": matrix})
                self._insert(model, dim, rows)
        except duckdb.Error as exc:
            raise self._error("cannot write the embedding cache", exc) from exc

    def _insert(self, model: str, dim: int, rows: pl.DataFrame) -> None:
        for attempt in range(_RACES):
            self.con.register(_ROWS, rows.to_arrow())
            try:
                self.con.execute(
                    f"INSERT INTO {EMBEDDINGS_TABLE} "
                    f"SELECT $model, sha256, $dim, vector::FLOAT[] FROM {_ROWS} "
                    "ON CONFLICT DO NOTHING",
                    {"model": model, "dim": dim},
                ).fetchall()
                return
            except (duckdb.ConstraintException, duckdb.TransactionException) as exc:
                # Another connection stored some of these at the same time (not a full disk:
                # that is reported at once).
                if attempt == _RACES - 1 or io_failure(exc, self._db) is not None:
                    raise
                time.sleep(random.uniform(0.001, 0.02))
            finally:
                self.con.unregister(_ROWS)

    def count(self, model: str | None = None) -> int:
        """How many vectors are stored (for `model`, or for every model)."""
        where, params = ("WHERE model = ?", [model]) if model is not None else ("", [])
        rows = self.con.execute(
            f"SELECT count(*) FROM {EMBEDDINGS_TABLE} {where}", params
        ).fetchall()
        return int(rows[0][0])
