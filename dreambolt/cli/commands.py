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
@s3_options
def ls_command(uris: tuple[str, ...], **params: Any) -> None:
    """List the objects URI… expand to: time, size, etag, URI (globs allowed)."""
    from dreambolt.errors import DreamBoltError, InvalidS3UriError
    from dreambolt.ingest import INGEST_CONCURRENCY
    from dreambolt.progress import human_bytes
    from dreambolt.s3.client import S3Client
    from dreambolt.sources import expand

    err, out = consoles()
    options = client_options(params)

    async def go() -> int:
        async with S3Client.from_options(options, INGEST_CONCURRENCY) as s3:

            async def client() -> S3Client:
                return s3

            sources, failures = await expand(list(uris), client)
        for src in sources:
            when = src.info.last_modified if src.info else None
            stamp = when.strftime("%Y-%m-%d %H:%M:%S") if when else " " * 19
            out.print(
                f"{stamp} {src.size:>12} {human_bytes(src.size):>10} {src.etag or '-'} {src.uri}",
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
