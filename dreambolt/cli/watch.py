"""`dreambolt watch`: keep a table current as objects arrive, until SIGTERM or SIGINT.

Takes the `ingest` options that make sense for a service (format, include/exclude, embed,
on-error, S3 settings, --db: DuckDB or delta:). Exit codes: 0 after a clean drain, 130 when the
drain timeout ran out, 2 for a usage error, 3 when the destination or credentials cannot be used.
"""

from __future__ import annotations

import asyncio
import re
import signal
import sys
from typing import TYPE_CHECKING, Any

import click

from dreambolt.cli.base import EXIT_ABORTED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, consoles, fail
from dreambolt.cli.ingest import SHARED_OPTIONS, make_ingester, with_options

if TYPE_CHECKING:
    from rich.console import Console

    from dreambolt.ingest import Ingester
    from dreambolt.watch.metrics import WatchMetrics
    from dreambolt.watch.service import WatchOptions

__all__ = ["DurationType", "watch"]

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$", re.IGNORECASE)
_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


class DurationType(click.ParamType):  # type: ignore[type-arg]
    """A duration: `60s`, `5m`, `24h`, `1.5d`, `250ms`, or a number of seconds."""

    name = "DURATION"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        if isinstance(value, int | float):
            return float(value)
        found = _DURATION.match(str(value))
        if not found:
            self.fail(f"{value!r} is not a duration; write e.g. 60s, 5m, 24h", param, ctx)
        return float(found.group(1)) * _SECONDS[(found.group(2) or "s").lower()]


def _listen(value: str | None) -> tuple[str, int] | None:
    """`HOST:PORT` (IPv6 as `[::1]:9464`) as (host, port)."""
    if value is None:
        return None
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise click.BadParameter(f"{value!r}: write HOST:PORT, e.g. 127.0.0.1:9464")
    return host.strip("[]") or "0.0.0.0", int(port)


def _with_shared_options(fn: Any) -> Any:
    return with_options(fn, SHARED_OPTIONS)


@click.command()
@click.argument("uris", nargs=-1, required=True)
@click.option(
    "--interval",
    type=DurationType(),
    default="60s",
    show_default=True,
    envvar="DREAMBOLT_WATCH_INTERVAL",
    help="Time between listings of the sources.",
)
@click.option(
    "--lexical",
    is_flag=True,
    envvar="DREAMBOLT_WATCH_LEXICAL",
    help="Keys only grow (date paths): list after the last key seen, and fully every "
    "--full-listing-every polls (late arrivals).",
)
@click.option(
    "--full-listing-every",
    "full_every",
    type=click.IntRange(1),
    default=10,
    show_default=True,
    metavar="N",
    envvar="DREAMBOLT_WATCH_FULL_LISTING_EVERY",
    help="With --lexical: every N-th poll lists the sources whole.",
)
@click.option(
    "--queue",
    metavar="SQS_URL",
    envvar="DREAMBOLT_WATCH_QUEUE",
    help="Read S3 event notifications from this SQS queue (else list every --interval).",
)
@click.option(
    "--backfill-interval",
    type=DurationType(),
    default="24h",
    show_default=True,
    envvar="DREAMBOLT_WATCH_BACKFILL_INTERVAL",
    help="With --queue: a full listing this often (and at start), for events S3 never sent.",
)
@click.option(
    "--listen",
    metavar="HOST:PORT",
    envvar="DREAMBOLT_WATCH_LISTEN",
    callback=lambda _ctx, _param, value: _listen(value),
    help="Serve /livez, /readyz and Prometheus /metrics here (port 0: any free port).",
)
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    envvar="DREAMBOLT_LOG_FORMAT",
    help="Log lines as text or as one JSON object each (log shippers). Each file's outcome "
    "is logged at INFO.",
)
@click.option(
    "--drain-timeout",
    type=DurationType(),
    default="25s",
    show_default=True,
    envvar="DREAMBOLT_WATCH_DRAIN_TIMEOUT",
    help="On SIGTERM/SIGINT, how long the load in progress may take to commit.",
)
@_with_shared_options
def watch(uris: tuple[str, ...], **params: Any) -> None:
    """Keep a table current with the objects under URI… (new and changed ones, exactly once)."""
    from dreambolt.cli.logs import setup_logging
    from dreambolt.watch.metrics import WatchMetrics
    from dreambolt.watch.service import MetricsListener, WatchOptions

    err, _ = consoles()
    verbose = click.get_current_context().find_root().params.get("verbose") or 0
    setup_logging(max(1, verbose), json_lines=params["log_format"] == "json")  # a line a file
    table = _table(err, list(uris), params["table"])
    if params["lexical"] and params["queue"]:
        fail(err, "--lexical is for listing mode; with --queue, events say what is new", EXIT_USAGE)
    metrics = WatchMetrics()
    listener = MetricsListener(metrics, backlog=params["queue"] is None)
    ingester = make_ingester(err, params, listener, None)
    options = WatchOptions(
        inputs=list(uris),
        table=table,
        interval=params["interval"],
        drain_timeout=params["drain_timeout"],
        include=params["include"],
        exclude=params["exclude"],
        format=params["format_"],
        columns=params["columns"],
        queue=params["queue"],
        lexical=params["lexical"],
        full_every=params["full_every"],
        backfill_interval=params["backfill_interval"],
    )
    drained = _serve(err, ingester, options, metrics, params["listen"])
    sys.exit(EXIT_OK if drained else EXIT_INTERRUPTED)


def _table(err: Console, inputs: list[str], table: str | None) -> str:
    """The table to keep current; exit 2 for an invalid or ambiguous name."""
    from dreambolt.errors import InvalidS3UriError, SinkError
    from dreambolt.sinks.names import validate_table_name
    from dreambolt.sources import default_table_name

    try:
        return validate_table_name(table) if table else default_table_name(inputs)
    except (InvalidS3UriError, SinkError) as exc:
        fail(err, str(exc), EXIT_USAGE)


class _ListenError(Exception):
    """--listen cannot be served (the port is taken, or the address is not this host's)."""


def _serve(
    err: Console,
    ingester: Ingester,
    options: WatchOptions,
    metrics: WatchMetrics,
    listen: tuple[str, int] | None,
) -> bool:
    from dreambolt.errors import DreamBoltError, InvalidS3UriError
    from dreambolt.watch.server import HealthServer
    from dreambolt.watch.service import Watcher

    async def serve() -> bool:
        watcher = Watcher(ingester, options, metrics)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, watcher.stop)
        server = None
        if listen is not None:
            server = HealthServer(listen[0], listen[1], metrics, lambda: watcher.state)
            try:
                await server.start()
            except OSError as exc:
                where = f"{listen[0]}:{listen[1]}"
                raise _ListenError(f"cannot serve on --listen {where}: {exc}") from exc
            err.print(f"serving /livez /readyz /metrics on http://{listen[0]}:{server.port}")
        try:
            async with ingester:
                return await watcher.run()
        finally:
            if server is not None:
                await server.stop()

    try:
        return asyncio.run(serve())
    except (_ListenError, InvalidS3UriError) as exc:
        fail(err, str(exc), EXIT_USAGE)
    except DreamBoltError as exc:
        fail(err, str(exc), EXIT_ABORTED)
