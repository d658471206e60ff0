"""`--cluster URL` and `--workers N`: the Dask cluster an ingest is spread over.

`--cluster tcp://scheduler:8786` connects to a running Dask scheduler; `--workers N` starts a
local cluster of N worker processes (one thread each) for the run and stops it after. Either
needs a Delta `--db` (exit 2 otherwise: a DuckDB file has one writer) and the `[cluster]` extra.
A dry run plans in this process and starts nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import click

from dreambolt.cli.base import EXIT_ABORTED, EXIT_USAGE, fail

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["check_cluster_options", "cluster_options", "executor_for"]


def cluster_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """The options that spread an ingest over a Dask cluster."""
    fn = click.option(
        "--workers",
        type=click.IntRange(1),
        metavar="N",
        envvar="DREAMBOLT_WORKERS",
        help="Spread the load over a local Dask cluster of N worker processes (delta: --db).",
    )(fn)
    return click.option(
        "--cluster",
        metavar="URL",
        envvar="DREAMBOLT_CLUSTER",
        help="Spread the load over the Dask cluster whose scheduler is at URL, e.g. "
        "tcp://scheduler:8786 (delta: --db).",
    )(fn)


def check_cluster_options(err: Console, params: dict[str, Any]) -> None:
    """Exit 2 for --cluster with --workers, or either with a DuckDB --db."""
    from dreambolt.sinks.names import is_delta

    cluster, workers = params["cluster"], params["workers"]
    if cluster is not None and workers is not None:
        fail(err, "--cluster and --workers exclude each other: name a scheduler, or N", EXIT_USAGE)
    if (cluster is not None or workers is not None) and not is_delta(params["db"]):
        fail(
            err,
            f"--db {params['db']}: a DuckDB database has one writer, so it cannot be loaded "
            "from a cluster; use a delta: destination (e.g. --db delta:s3://lake/analytics) "
            "with --cluster/--workers, or drop them",
            EXIT_USAGE,
        )


@contextmanager
def executor_for(err: Console, params: dict[str, Any]) -> Iterator[Any | None]:
    """The Dask client the options name (None: this process loads), closed after."""
    cluster, workers = params["cluster"], params["workers"]
    if (cluster is None and workers is None) or params["dry_run"]:
        yield None
        return
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        fail(
            err,
            "--cluster/--workers need Dask: pip install 'dreambolt[cluster]'",
            EXIT_USAGE,
        )
    # Dask's records show as other libraries' do (`cli.logs`): from WARNING, not its INFO chatter.
    logging.getLogger("distributed").setLevel(logging.WARNING)
    if cluster is not None:
        try:
            # Dask's own connect timeout (distributed.comm.timeouts.connect, 30 s by default;
            # DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT=10s sets it) bounds the wait.
            client = Client(cluster)
        except (OSError, TimeoutError, ValueError) as exc:
            fail(
                err,
                f"cannot reach the Dask scheduler at {cluster}: {exc}; check --cluster and "
                "that the scheduler is running",
                EXIT_ABORTED,
            )
        with client:
            yield client
        return
    with (
        LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address="127.0.0.1:0",
            silence_logs=logging.WARNING,
        ) as local,
        Client(local) as client,
    ):
        yield client
