"""DreamBolt: ingest data files from S3 (and local disk) into DuckDB, fast and exactly once.

The names below are imported on first use (PEP 562), so `import dreambolt` — and the
`dreambolt --help` that goes through it — costs no polars, DuckDB or aiobotocore import until a
name that needs one is touched. `from dreambolt import Ingester` works as it always did.
"""

from __future__ import annotations

import importlib
import logging
import typing

if typing.TYPE_CHECKING:
    from dreambolt.errors import (
        DreamBoltError,
        EmbeddingAuthError,
        EmbeddingError,
        FormatError,
        InvalidS3UriError,
        S3AuthError,
        S3BaseError,
        S3GenericError,
        S3IntegrityError,
        S3NotFoundError,
        S3ObjectChangedError,
        S3RateLimitError,
        SinkError,
    )
    from dreambolt.formats.detect import CsvOptions
    from dreambolt.ingest import Ingester
    from dreambolt.report import ErrorInfo, FileResult, IngestReport, Listener
    from dreambolt.s3.client import S3Client
    from dreambolt.s3.objects import ObjectInfo
    from dreambolt.s3.options import S3Options
    from dreambolt.s3.uri import S3Uri, parse_s3_uri
    from dreambolt.sinks.base import Sink

__version__ = "0.1.0"

__all__ = [
    "CsvOptions",
    "DreamBoltError",
    "EmbeddingAuthError",
    "EmbeddingError",
    "ErrorInfo",
    "FileResult",
    "FormatError",
    "IngestReport",
    "Ingester",
    "InvalidS3UriError",
    "Listener",
    "ObjectInfo",
    "S3AuthError",
    "S3BaseError",
    "S3Client",
    "S3GenericError",
    "S3IntegrityError",
    "S3NotFoundError",
    "S3ObjectChangedError",
    "S3Options",
    "S3RateLimitError",
    "S3Uri",
    "Sink",
    "SinkError",
    "__version__",
    "parse_s3_uri",
]

# Where each public name lives; a name is imported from there the first time it is asked for.
_SOURCES = {
    "CsvOptions": "dreambolt.formats.detect",
    "DreamBoltError": "dreambolt.errors",
    "EmbeddingAuthError": "dreambolt.errors",
    "EmbeddingError": "dreambolt.errors",
    "ErrorInfo": "dreambolt.report",
    "FileResult": "dreambolt.report",
    "FormatError": "dreambolt.errors",
    "IngestReport": "dreambolt.report",
    "Ingester": "dreambolt.ingest",
    "InvalidS3UriError": "dreambolt.errors",
    "Listener": "dreambolt.report",
    "ObjectInfo": "dreambolt.s3.objects",
    "S3AuthError": "dreambolt.errors",
    "S3BaseError": "dreambolt.errors",
    "S3Client": "dreambolt.s3.client",
    "S3GenericError": "dreambolt.errors",
    "S3IntegrityError": "dreambolt.errors",
    "S3NotFoundError": "dreambolt.errors",
    "S3ObjectChangedError": "dreambolt.errors",
    "S3Options": "dreambolt.s3.options",
    "S3RateLimitError": "dreambolt.errors",
    "S3Uri": "dreambolt.s3.uri",
    "Sink": "dreambolt.sinks.base",
    "SinkError": "dreambolt.errors",
    "parse_s3_uri": "dreambolt.s3.uri",
}

# A library logs and lets the application decide where logs go (the CLI's -v/-vv does).
logging.getLogger("dreambolt").addHandler(logging.NullHandler())


if not typing.TYPE_CHECKING:  # hidden from mypy, so `dreambolt.Typo` stays a type error

    def __getattr__(name: str) -> object:
        source = _SOURCES.get(name)
        if source is None:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(source), name)
        globals()[name] = value  # later lookups are plain attribute reads
        return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
