"""Option types and option groups shared by the commands, and their translation into the
library's typed options (imported only when a command runs)."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import IO, TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from dreambolt.formats.detect import CsvOptions
    from dreambolt.s3.options import S3Options

__all__ = ["SizeType", "client_options", "csv_options", "parse_size", "read_inputs", "s3_options"]

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
            help="Default region (else AWS_REGION, AWS_DEFAULT_REGION, the profile's, us-east-1).",
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


def csv_options(params: dict[str, Any]) -> CsvOptions:
    """--csv-*/--encoding as CsvOptions; a delimiter may be written as \\t or 'tab'."""
    from dreambolt.formats.detect import CsvOptions

    delimiter = params["csv_delimiter"]
    if delimiter is not None:
        delimiter = {"\\t": "\t", "tab": "\t", "TAB": "\t"}.get(delimiter, delimiter)
    return CsvOptions(
        delimiter=delimiter,
        header=params["csv_header"],
        skip_rows=params["csv_skip_rows"],
        encoding=params["encoding"],
    )


def client_options(params: dict[str, Any]) -> S3Options:
    """The S3 connection options as the library's S3Options."""
    from dreambolt.s3.options import S3Options

    return S3Options(
        endpoint_url=params["endpoint_url"],
        region=params["region"],
        profile=params["profile"],
        concurrency=params["concurrency"],
        part_size=params["part_size"],
        max_retries=params["max_retries"],
        backoff_factor=params["backoff"],
    )


def read_inputs(uris: Sequence[str], from_file: IO[str] | None) -> list[str]:
    """The URIs named on the command line, then those of --from-file (no blanks, no comments)."""
    inputs = list(uris)
    if from_file is not None:
        for line in from_file:
            line = line.strip()
            if line and not line.startswith("#"):
                inputs.append(line)
    return inputs
