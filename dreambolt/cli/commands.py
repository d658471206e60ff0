"""`dreambolt ls` and `dreambolt demo`."""

from __future__ import annotations

import sys
from typing import Any

import click

from dreambolt.cli.base import (
    EXIT_ABORTED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_PARTIAL,
    EXIT_USAGE,
    consoles,
    fail,
    run,
)
from dreambolt.cli.options import client_options, s3_options

__all__ = ["demo", "ls_command"]


@click.command(name="ls")
@click.argument("uris", nargs=-1, required=True)
@click.option(
    "--db",
    envvar="DREAMBOLT_DB",
    help="With --table: show each object as new, unchanged or changed against this "
    "destination (a DuckDB file or delta:ROOT).",
)
@click.option("--table", envvar="DREAMBOLT_TABLE", help="The table --db compares against.")
@s3_options
def ls_command(uris: tuple[str, ...], **params: Any) -> None:
    """List the objects URI… expand to: time, size, etag, URI (globs allowed); with --db and
    --table, each object's state against that table first (new, unchanged, changed)."""
    from dreambolt.errors import DreamBoltError, InvalidS3UriError
    from dreambolt.ingest import INGEST_CONCURRENCY
    from dreambolt.progress import human_bytes
    from dreambolt.s3.client import S3Client
    from dreambolt.sources import expand

    err, out = consoles()
    options = client_options(params)
    db, table = params.get("db"), params.get("table")
    if table and not db:
        db = "dreambolt.duckdb"

    async def go() -> int:
        async with S3Client.from_options(options, INGEST_CONCURRENCY) as s3:

            async def client() -> S3Client:
                return s3

            sources, failures = await expand(list(uris), client)
        loaded = await loaded_in(db, table, options) if table else None
        for src in sources:
            when = src.info.last_modified if src.info else None
            stamp = when.strftime("%Y-%m-%d %H:%M:%S") if when else " " * 19
            state = "" if loaded is None else f"{state_of(loaded, src.uri, src.etag):<9} "
            out.print(
                f"{state}{stamp} {src.size:>12} {human_bytes(src.size):>10} "
                f"{src.etag or '-'} {src.uri}",
                markup=False,
                highlight=False,
                soft_wrap=True,
            )
        for shown, exc in failures:
            err.print(f"error: {shown}: {exc}", highlight=False, soft_wrap=True, markup=False)
        return EXIT_PARTIAL if failures else EXIT_OK

    try:
        sys.exit(run(go))
    except KeyboardInterrupt:
        sys.exit(EXIT_INTERRUPTED)
    except InvalidS3UriError as exc:
        fail(err, str(exc), EXIT_USAGE)
    except DreamBoltError as exc:
        fail(err, str(exc), EXIT_ABORTED)


async def loaded_in(db: str | None, table: str, options: Any) -> dict[str, str | None]:
    """uri -> etag of the files loaded in `table` of `db` ({} for a DuckDB file not made yet:
    ls creates nothing)."""
    import asyncio
    import os

    from dreambolt.sinks import is_delta, open_sink, validate_table_name

    validate_table_name(table)
    name = db or "dreambolt.duckdb"

    def read() -> dict[str, str | None]:
        if not is_delta(name) and not os.path.exists(os.path.expanduser(name)):
            return {}
        sink = open_sink(name, s3=options)
        try:
            return sink.loaded(table)
        finally:
            sink.close()

    return await asyncio.to_thread(read)


def state_of(loaded: dict[str, str | None], uri: str, etag: str | None) -> str:
    """new, unchanged or changed, as an ingest into that table would find the object."""
    if uri not in loaded:
        return "new"
    return "unchanged" if etag is not None and loaded[uri] == etag else "changed"


@click.command()
@click.option(
    "--db", default="dreambolt-demo.duckdb", show_default=True, help="DuckDB file the demo writes."
)
def demo(db: str) -> None:
    """Run the main job on an embedded default: a local moto S3, sample data, a DuckDB file."""
    from dreambolt.demo import run_demo
    from dreambolt.errors import DreamBoltError

    err, out = consoles()
    try:
        sys.exit(run(lambda: run_demo(db, err, out)))
    except KeyboardInterrupt:
        sys.exit(EXIT_INTERRUPTED)
    except DreamBoltError as exc:
        fail(err, str(exc), EXIT_ABORTED)
