"""What an Ingester with an `executor` needs: a Delta destination, an embedder named by model,
and an executor DreamBolt can submit to."""

from __future__ import annotations

from concurrent.futures import Executor
from typing import Any

from dreambolt.sinks.names import is_delta

__all__ = ["check_executor", "is_dask_client"]


def is_dask_client(executor: object) -> bool:
    """Whether `executor` is a Dask `distributed.Client` (told without importing distributed)."""
    return type(executor).__module__.startswith("distributed") and hasattr(executor, "gather")


def check_executor(ingester: Any, executor: object, embed: object) -> None:
    """ValueError unless the Ingester can spread its ingests over `executor`."""
    if not (isinstance(executor, Executor) or is_dask_client(executor)):
        raise ValueError(
            f"executor must be a Dask distributed.Client or a concurrent.futures.Executor, got "
            f"{type(executor).__name__}"
        )
    if ingester._sink is not None or not is_delta(ingester.db):
        raise ValueError(
            f"--db {ingester.db}: only a Delta Lake destination can be written from many "
            "processes; use a delta: destination (e.g. --db delta:s3://lake/analytics) with "
            "--cluster/--workers, or drop them to load into DuckDB from this process"
        )
    if embed is not None and not isinstance(embed, str):
        raise ValueError(
            "with an executor, --embed names the model (e.g. 'local:all-MiniLM-L6-v2'): each "
            "worker makes its own embedder"
        )
