"""`dreambolt ingest`: load URI… into a DuckDB table, with progress, a summary and exit codes.

The library (polars, DuckDB, aiobotocore behind it) is imported inside the command, once the
arguments have parsed: `--help` and usage errors answer without it.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import IO, TYPE_CHECKING, Any, NoReturn

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
from dreambolt.cli.cluster import check_cluster_options, cluster_options, executor_for
from dreambolt.cli.options import SizeType, client_options, csv_options, read_inputs, s3_options

if TYPE_CHECKING:
    from rich.console import Console

    from dreambolt.ingest import Ingester
    from dreambolt.progress import RichListener
    from dreambolt.report import IngestReport, Listener

__all__ = ["SHARED_OPTIONS", "ingest", "make_ingester", "with_options"]

_Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]

SHARED_OPTIONS: list[_Decorator] = [  # ingest and watch
    click.option(
        "--table", envvar="DREAMBOLT_TABLE", help="Table to load into (default: from the URI)."
    ),
    click.option(
        "--db",
        default="dreambolt.duckdb",
        show_default=True,
        envvar="DREAMBOLT_DB",
        help="DuckDB database file, or delta:ROOT: a folder of Delta Lake tables "
        "(delta:s3://lake/analytics, delta:./lake).",
    ),
    click.option(
        "--format",
        "format_",
        envvar="DREAMBOLT_FORMAT",
        help="Override detection: csv, tsv, parquet, ndjson, json, ipc, csv.gz, …",
    ),
    click.option(
        "--embed",
        "embed",
        metavar="MODEL",
        envvar="DREAMBOLT_EMBED",
        help="Add an `embedding` column: text-embedding-ada-002, text-embedding-3-small, "
        "openai:NAME, or local:all-MiniLM-L6-v2 (needs the [local] extra).",
    ),
    click.option(
        "--embed-column",
        metavar="COL",
        envvar="DREAMBOLT_EMBED_COLUMN",
        help="Text column to embed (default: `text`, else the only string column).",
    ),
    click.option(
        "--embed-base-url",
        metavar="URL",
        envvar="DREAMBOLT_EMBED_BASE_URL",
        help="OpenAI-compatible API base URL (else OPENAI_BASE_URL).",
    ),
    s3_options,
    click.option(
        "--on-error",
        type=click.Choice(["skip", "abort"]),
        default="skip",
        show_default=True,
        envvar="DREAMBOLT_ON_ERROR",
        help="Skip unreadable objects and go on, or stop at the first failure.",
    ),
    click.option(
        "--preserve-order",
        is_flag=True,
        envvar="DREAMBOLT_PRESERVE_ORDER",
        help="Keep each file's rows in file order in the table (slower for big files).",
    ),
    click.option(
        "--max-line-size",
        type=SizeType(),
        default="64MiB",
        show_default=True,
        envvar="DREAMBOLT_MAX_LINE_SIZE",
        help="Longest line (record) of a CSV/NDJSON file; a file with a longer one fails.",
    ),
    click.option(
        "--max-columns",
        type=click.IntRange(1),
        default=10_000,
        show_default=True,
        envvar="DREAMBOLT_MAX_COLUMNS",
        help="A file with more columns fails.",
    ),
    click.option(
        "--csv-delimiter",
        metavar="CHAR",
        envvar="DREAMBOLT_CSV_DELIMITER",
        help="CSV/TSV field delimiter, e.g. ';' or '\\t' (default: detected).",
    ),
    click.option(
        "--csv-header/--no-csv-header",
        default=None,
        envvar="DREAMBOLT_CSV_HEADER",
        help="Whether the first line names the columns (default: detected).",
    ),
    click.option(
        "--csv-skip-rows",
        type=click.IntRange(0),
        metavar="N",
        envvar="DREAMBOLT_CSV_SKIP_ROWS",
        help="Lines to skip before the header or data (default: detected).",
    ),
    click.option(
        "--encoding",
        metavar="NAME",
        envvar="DREAMBOLT_ENCODING",
        help="Encoding of text files, e.g. latin-1, cp1252, utf-16 (default: UTF-8).",
    ),
    click.option(
        "--columns",
        metavar="A,B",
        callback=lambda _ctx, _param, value: _column_list(value),
        envvar="DREAMBOLT_COLUMNS",
        help="Load only these columns, in this order (a file without one is skipped).",
    ),
    click.option(
        "--include", multiple=True, metavar="GLOB", help="Only keys matching (repeatable)."
    ),
    click.option(
        "--exclude", multiple=True, metavar="GLOB", help="Drop keys matching (repeatable)."
    ),
]

# ingest only: watch runs until stopped, from its own sources, and never plans.
_INGEST_ONLY: list[_Decorator] = [
    cluster_options,
    click.option(
        "--mode",
        type=click.Choice(["append", "replace"]),
        default="append",
        show_default=True,
        envvar="DREAMBOLT_MODE",
        help="replace rebuilds the table.",
    ),
    click.option(
        "--from-file", type=click.File("r"), help="Read URIs, one a line, from FILE or -."
    ),
    click.option("--dry-run", is_flag=True, help="Show what would happen; download nothing."),
    click.option("--json", "as_json", is_flag=True, help="Write the report as JSON to stdout."),
    click.option("--quiet", "-q", is_flag=True, help="Print nothing but errors."),
]


def _column_list(value: str | None) -> list[str] | None:
    """--columns a,b as ["a", "b"] (names trimmed); a usage error for an empty or repeated one."""
    if value is None:
        return None
    names = [name.strip() for name in value.split(",")]
    if not all(names):
        raise click.BadParameter(
            f"{value!r} has an empty column name; write e.g. --columns id,name"
        )
    if len(set(names)) != len(names):
        raise click.BadParameter(f"{value!r} names a column more than once")
    return names


def with_options(
    fn: Callable[..., Any], options: list[_Decorator] | None = None
) -> Callable[..., Any]:
    """`fn` with the options (default: every `ingest` option), in this order in --help."""
    for option in reversed(options if options is not None else SHARED_OPTIONS + _INGEST_ONLY):
        fn = option(fn)
    return fn


@click.command()
@click.argument("uris", nargs=-1)
@with_options
def ingest(uris: tuple[str, ...], **params: Any) -> None:
    """Load URI… (objects, prefixes, globs, local paths) into a DuckDB or Delta table."""
    err, out = consoles()
    inputs = _checked_inputs(err, uris, params)
    check_cluster_options(err, params)
    from dreambolt.progress import RichListener

    listener = RichListener(
        err, quiet=params["quiet"] or (params["as_json"] and not err.is_terminal)
    )
    with executor_for(err, params) as executor:
        ingester = make_ingester(err, params, listener, executor)
        report = _ingest(err, out, ingester, listener, inputs, params)
    _show(err, out, report, params)
    if report.aborted:
        sys.exit(EXIT_ABORTED)
    sys.exit(EXIT_OK if report.ok else EXIT_PARTIAL)


def _checked_inputs(err: Console, uris: tuple[str, ...], params: dict[str, Any]) -> list[str]:
    """The URIs to load; exit 2 when there are none or the table name is invalid."""
    from_file: IO[str] | None = params["from_file"]
    inputs = read_inputs(uris, from_file)
    if not inputs:
        fail(
            err,
            "no input: name S3 URIs or paths (e.g. s3://my-bucket/data/*.csv), or use --from-file",
            EXIT_USAGE,
        )
    if params["table"] is not None:
        from dreambolt.errors import SinkError
        from dreambolt.sinks.names import validate_table_name

        try:
            validate_table_name(params["table"])
        except SinkError as exc:
            fail(err, str(exc), EXIT_USAGE)
    return inputs


def make_ingester(
    err: Console, params: dict[str, Any], listener: Listener, executor: Any
) -> Ingester:
    """The Ingester the options describe; exit 2 for a bad option, 3 for a missing API key."""
    from dreambolt.errors import DreamBoltError
    from dreambolt.ingest import Ingester

    try:
        return Ingester(
            params["db"],
            on_error=params["on_error"],
            format=params["format_"],
            listener=listener,
            s3=client_options(params),
            embed=params["embed"],
            embed_column=params["embed_column"],
            embed_base_url=params["embed_base_url"],
            preserve_order=params["preserve_order"],
            max_line_bytes=params["max_line_size"],
            max_columns=params["max_columns"],
            csv=csv_options(params),
            executor=executor,
        )
    except ValueError as exc:  # an unknown embedding model, a bad CSV option
        fail(err, str(exc), EXIT_USAGE)
    except DreamBoltError as exc:  # no API key: stop before anything is downloaded
        fail(err, str(exc), EXIT_ABORTED)


def _ingest(
    err: Console,
    out: Console,
    ingester: Ingester,
    listener: RichListener,
    inputs: list[str],
    params: dict[str, Any],
) -> IngestReport:
    """Run the ingest; exit 130 (with what committed), 2 for a bad URI, 3 when aborted."""
    from dreambolt.batching import StageError
    from dreambolt.errors import DreamBoltError, InvalidS3UriError

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
                    columns=params["columns"],
                )

    try:
        return run(go)
    except KeyboardInterrupt:
        _interrupted(err, out, ingester.last_report, params)
    except InvalidS3UriError as exc:
        fail(err, str(exc), EXIT_USAGE)
    except (DreamBoltError, StageError) as exc:
        fail(err, str(exc), EXIT_ABORTED)
    except OSError as exc:  # a full spool disk: every later file would fail alike
        fail(err, str(exc), EXIT_ABORTED)


def _interrupted(
    err: Console, out: Console, partial: IngestReport | None, params: dict[str, Any]
) -> NoReturn:
    """Ctrl-C or SIGTERM: report exactly the files that committed, then exit 130."""
    if partial is not None:
        from dreambolt.progress import print_summary

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


def _show(err: Console, out: Console, report: IngestReport, params: dict[str, Any]) -> None:
    """The report: JSON on stdout, else a summary (or plan) on stderr; quiet: problems only."""
    from dreambolt.progress import print_plan, print_summary

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
