"""The `dreambolt` command: a thin click shell over the Ingester, one asyncio.run per command.

Exit codes: 0 every object loaded or unchanged; 1 finished but some objects were skipped or
failed; 2 usage error or invalid URI; 3 aborted (no credentials, destination unusable, or
--on-error abort triggered); 130 interrupted.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import re
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import click
from rich.console import Console

from dreambolt.batching import StageError
from dreambolt.errors import DreamBoltError, InvalidS3UriError, SinkError
from dreambolt.formats.detect import CsvOptions
from dreambolt.ingest import INGEST_CONCURRENCY, Ingester
from dreambolt.progress import RichListener, human_bytes, print_plan, print_summary
from dreambolt.report import IngestReport
from dreambolt.s3.client import S3Client
from dreambolt.s3.options import S3Options
from dreambolt.sinks.duckdb import validate_table_name
from dreambolt.sources import expand

__all__ = ["main", "parse_size"]

EXIT_OK, EXIT_PARTIAL, EXIT_USAGE, EXIT_ABORTED, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
T = TypeVar("T")

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?i?B?)?\s*$", re.IGNORECASE)
_UNITS = {
    "": 1,
    "B": 1,
    "K": 1024,
    "KB": 1000,
    "KIB": 1024,
    "M": 1024**2,
    "MB": 1000**2,
    "MIB": 1024**2,
    "G": 1024**3,
    "GB": 1000**3,
    "GIB": 1024**3,
    "T": 1024**4,
    "TB": 1000**4,
    "TIB": 1024**4,
}


def parse_size(text: str) -> int:
    """'8MiB' -> 8388608, '16MB' -> 16000000, '1048576' -> 1048576 (K/M/G alone are binary)."""
    found = _SIZE.match(text)
    unit = (found.group(2) or "").upper() if found else ""
    if not found or unit not in _UNITS:
        raise ValueError(f"{text!r} is not a size; write e.g. 8MiB, 16MB or 1048576")
    return int(float(found.group(1)) * _UNITS[unit])


class SizeType(click.ParamType):  # type: ignore[type-arg]
    """A click parameter for byte sizes with units."""

    name = "SIZE"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        try:
            size = parse_size(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)
        if size < 1:
            self.fail("must be at least 1 byte", param, ctx)
        return size


def _consoles() -> tuple[Console, Console]:
    """(stderr console for progress and messages, stdout console)."""
    return Console(stderr=True, highlight=False), Console(highlight=False)


def _run(coro_fn: Callable[[], Awaitable[T]]) -> T:
    """asyncio.run, with SIGTERM treated like Ctrl-C (cancel, let files finish whole, 130)."""

    async def runner() -> T:
        task = asyncio.current_task()
        loop = asyncio.get_running_loop()
        if task is not None:
            loop.add_signal_handler(signal.SIGTERM, task.cancel)
        return await coro_fn()

    try:
        return asyncio.run(runner())
    except asyncio.CancelledError:
        raise KeyboardInterrupt from None


def _fail(console: Console, message: str, code: int) -> None:
    console.print(f"[red]error:[/] {message}", highlight=False, soft_wrap=True)
    sys.exit(code)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="dreambolt")
@click.option("-v", "--verbose", count=True, help="Log more (twice: debug). Secrets are redacted.")
def cli(verbose: int) -> None:
    """DreamBolt: load data files from S3 (or local disk) into DuckDB, fast and exactly once."""
    level = logging.ERROR if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("botocore").setLevel(max(level, logging.WARNING))
    logging.getLogger("aiobotocore").setLevel(max(level, logging.WARNING))


def s3_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """The S3 connection options shared by `ingest` and `ls`."""
    options = [
        click.option(
            "--endpoint-url",
            envvar=["DREAMBOLT_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"],
            help="S3-compatible endpoint (MinIO, R2, moto, …).",
        ),
        click.option(
            "--region",
            envvar="DREAMBOLT_REGION",
            help="Default region (else the bucket's own, asked of S3).",
        ),
        click.option("--profile", envvar="DREAMBOLT_PROFILE", help="AWS profile (or AWS_PROFILE)."),
        click.option(
            "--concurrency",
            type=click.IntRange(1, 512),
            default=64,
            show_default=True,
            envvar="DREAMBOLT_CONCURRENCY",
            help="Requests in flight at once.",
        ),
        click.option(
            "--part-size",
            type=SizeType(),
            default="8MiB",
            show_default=True,
            envvar="DREAMBOLT_PART_SIZE",
            help="Bytes per ranged GET: 8MiB, 16MB, 1048576.",
        ),
        click.option(
            "--max-retries",
            type=click.IntRange(0, 50),
            default=3,
            show_default=True,
            envvar="DREAMBOLT_MAX_RETRIES",
            help="Retries after the first attempt.",
        ),
        click.option(
            "--backoff",
            type=click.FloatRange(0),
            default=2.0,
            show_default=True,
            envvar="DREAMBOLT_BACKOFF",
            help="Backoff factor in seconds (full jitter).",
        ),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _csv_options(params: dict[str, Any]) -> CsvOptions:
    """--csv-*/--encoding as CsvOptions; a delimiter may be written as \\t or 'tab'."""
    delimiter = params["csv_delimiter"]
    if delimiter is not None:
        delimiter = {"\\t": "\t", "tab": "\t", "TAB": "\t"}.get(delimiter, delimiter)
    return CsvOptions(
        delimiter=delimiter,
        header=params["csv_header"],
        skip_rows=params["csv_skip_rows"],
        encoding=params["encoding"],
    )


def _client_options(params: dict[str, Any]) -> S3Options:
    return S3Options(
        endpoint_url=params["endpoint_url"],
        region=params["region"],
        profile=params["profile"],
        concurrency=params["concurrency"],
        part_size=params["part_size"],
        max_retries=params["max_retries"],
        backoff_factor=params["backoff"],
    )


def _read_inputs(uris: Sequence[str], from_file: click.File | None) -> list[str]:
    inputs = list(uris)
    if from_file is not None:
        for line in from_file:  # type: ignore[attr-defined]
            line = line.strip()
            if line and not line.startswith("#"):
                inputs.append(line)
    return inputs


@cli.command()
@click.argument("uris", nargs=-1)
@click.option(
    "--table", envvar="DREAMBOLT_TABLE", help="Table to load into (default: from the URI)."
)
@click.option(
    "--db",
    default="dreambolt.duckdb",
    show_default=True,
    envvar="DREAMBOLT_DB",
    help="DuckDB database file.",
)
@click.option(
    "--format",
    "format_",
    envvar="DREAMBOLT_FORMAT",
    help="Override detection: csv, tsv, parquet, ndjson, json, ipc, csv.gz, …",
)
@click.option(
    "--embed",
    "embed",
    metavar="MODEL",
    envvar="DREAMBOLT_EMBED",
    help="Add an `embedding` column: text-embedding-ada-002, text-embedding-3-small, "
    "openai:NAME, or local:all-MiniLM-L6-v2 (needs the [local] extra).",
)
@click.option(
    "--embed-column",
    metavar="COL",
    envvar="DREAMBOLT_EMBED_COLUMN",
    help="Text column to embed (default: `text`, else the only string column).",
)
@click.option(
    "--embed-base-url",
    metavar="URL",
    envvar="DREAMBOLT_EMBED_BASE_URL",
    help="OpenAI-compatible API base URL (else OPENAI_BASE_URL).",
)
@s3_options
@click.option(
    "--on-error",
    type=click.Choice(["skip", "abort"]),
    default="skip",
    show_default=True,
    envvar="DREAMBOLT_ON_ERROR",
    help="Skip unreadable objects and go on, or stop at the first failure.",
)
@click.option(
    "--mode",
    type=click.Choice(["append", "replace"]),
    default="append",
    show_default=True,
    envvar="DREAMBOLT_MODE",
    help="replace rebuilds the table.",
)
@click.option(
    "--preserve-order",
    is_flag=True,
    envvar="DREAMBOLT_PRESERVE_ORDER",
    help="Keep each file's rows in file order in the table (slower for big files).",
)
@click.option(
    "--max-line-size",
    type=SizeType(),
    default="64MiB",
    show_default=True,
    envvar="DREAMBOLT_MAX_LINE_SIZE",
    help="Longest line (record) of a CSV/NDJSON file; a file with a longer one fails.",
)
@click.option(
    "--max-columns",
    type=click.IntRange(1),
    default=10_000,
    show_default=True,
    envvar="DREAMBOLT_MAX_COLUMNS",
    help="A file with more columns fails.",
)
@click.option(
    "--csv-delimiter",
    metavar="CHAR",
    envvar="DREAMBOLT_CSV_DELIMITER",
    help="CSV/TSV field delimiter, e.g. ';' or '\\t' (default: detected).",
)
@click.option(
    "--csv-header/--no-csv-header",
    default=None,
    envvar="DREAMBOLT_CSV_HEADER",
    help="Whether the first line names the columns (default: detected).",
)
@click.option(
    "--csv-skip-rows",
    type=click.IntRange(0),
    metavar="N",
    envvar="DREAMBOLT_CSV_SKIP_ROWS",
    help="Lines to skip before the header or data (default: detected).",
)
@click.option(
    "--encoding",
    metavar="NAME",
    envvar="DREAMBOLT_ENCODING",
    help="Encoding of text files, e.g. latin-1, cp1252, utf-16 (default: UTF-8).",
)
@click.option("--include", multiple=True, metavar="GLOB", help="Only keys matching (repeatable).")
@click.option("--exclude", multiple=True, metavar="GLOB", help="Drop keys matching (repeatable).")
@click.option("--from-file", type=click.File("r"), help="Read URIs, one a line, from FILE or -.")
@click.option("--dry-run", is_flag=True, help="Show what would happen; download nothing.")
@click.option("--json", "as_json", is_flag=True, help="Write the report as JSON to stdout.")
@click.option("--quiet", "-q", is_flag=True, help="Print nothing but errors.")
def ingest(uris: tuple[str, ...], **params: Any) -> None:
    """Load URI… (objects, prefixes, globs, local paths) into a DuckDB table."""
    err, out = _consoles()
    inputs = _read_inputs(uris, params["from_file"])
    if not inputs:
        _fail(
            err,
            "no input: name S3 URIs or paths (e.g. s3://my-bucket/data/*.csv), or use --from-file",
            EXIT_USAGE,
        )
    try:
        if params["table"] is not None:
            validate_table_name(params["table"])
    except SinkError as exc:
        _fail(err, str(exc), EXIT_USAGE)
    quiet = params["quiet"] or (params["as_json"] and not err.is_terminal)
    listener = RichListener(err, quiet=quiet)
    try:
        ingester = Ingester(
            params["db"],
            on_error=params["on_error"],
            format=params["format_"],
            listener=listener,
            s3=_client_options(params),
            embed=params["embed"],
            embed_column=params["embed_column"],
            embed_base_url=params["embed_base_url"],
            preserve_order=params["preserve_order"],
            max_line_bytes=params["max_line_size"],
            max_columns=params["max_columns"],
            csv=_csv_options(params),
        )
    except ValueError as exc:  # an unknown embedding model, a bad CSV option
        _fail(err, str(exc), EXIT_USAGE)
    except DreamBoltError as exc:  # no API key: stop before anything is downloaded
        _fail(err, str(exc), EXIT_ABORTED)

    async def go() -> IngestReport:
        async with ingester:
            with listener:
                return await ingester.ingest(
                    inputs,
                    table=params["table"],
                    mode=params["mode"],
                    include=params["include"],
                    exclude=params["exclude"],
                    dry_run=params["dry_run"],
                )

    try:
        report = _run(go)
    except KeyboardInterrupt:
        partial = ingester.last_report
        if partial is not None:
            partial.interrupted = True
            if params["as_json"]:
                out.print_json(json.dumps(partial.to_dict(), default=str))
            if not params["quiet"]:
                err.print(
                    "[yellow]interrupted[/]: every file is either fully loaded or not at "
                    "all; the files below are those that committed"
                )
                print_summary(err, partial)
        sys.exit(EXIT_INTERRUPTED)
    except InvalidS3UriError as exc:
        _fail(err, str(exc), EXIT_USAGE)
    except (DreamBoltError, StageError) as exc:
        _fail(err, str(exc), EXIT_ABORTED)
    except OSError as exc:  # a full spool disk: every later file would fail alike
        _fail(err, str(exc), EXIT_ABORTED)
    if params["as_json"]:
        out.print_json(json.dumps(report.to_dict(), default=str))
    elif not params["quiet"]:
        (print_plan if params["dry_run"] else print_summary)(err, report)
    elif not report.ok:
        for result in report.files:
            if result.status in ("skipped", "failed") and result.error:
                err.print(
                    f"{result.status} {result.uri}: {result.error.message}",
                    highlight=False,
                    soft_wrap=True,
                    markup=False,
                )
    if report.aborted:
        sys.exit(EXIT_ABORTED)
    sys.exit(EXIT_OK if report.ok else EXIT_PARTIAL)


@cli.command(name="ls")
@click.argument("uris", nargs=-1, required=True)
@s3_options
def ls_command(uris: tuple[str, ...], **params: Any) -> None:
    """List the objects URI… expand to: time, size, etag, URI (globs allowed)."""
    err, out = _consoles()
    options = _client_options(params)

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
            err.print(f"[red]error:[/] {shown}: {exc}", highlight=False, soft_wrap=True)
        return EXIT_PARTIAL if failures else EXIT_OK

    try:
        sys.exit(_run(go))
    except KeyboardInterrupt:
        sys.exit(EXIT_INTERRUPTED)
    except InvalidS3UriError as exc:
        _fail(err, str(exc), EXIT_USAGE)
    except DreamBoltError as exc:
        _fail(err, str(exc), EXIT_ABORTED)


@cli.command()
@click.option(
    "--db", default="dreambolt-demo.duckdb", show_default=True, help="DuckDB file the demo writes."
)
def demo(db: str) -> None:
    """Run the main job on an embedded default: a local moto S3, sample data, a DuckDB file."""
    from dreambolt.demo import run_demo

    err, out = _consoles()
    try:
        sys.exit(_run(lambda: run_demo(db, err, out)))
    except KeyboardInterrupt:
        sys.exit(EXIT_INTERRUPTED)
    except DreamBoltError as exc:
        _fail(err, str(exc), EXIT_ABORTED)


def main() -> None:
    """Console-script entry point."""
    # The command owns its process (the library never touches the collector): what the imports
    # built lives until exit, so the collector need not rescan it while an S3 client's models
    # are built (about 0.05 s per client with polars, pyarrow and DuckDB loaded).
    gc.freeze()
    cli(prog_name="dreambolt")
