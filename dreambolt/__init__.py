"""DreamBolt: ingest data files from S3 (and local disk) into DuckDB, fast and exactly once."""

from dreambolt.errors import (
    DreamBoltError,
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
from dreambolt.report import ErrorInfo, FileResult, IngestReport
from dreambolt.s3.client import ObjectInfo, S3Client
from dreambolt.s3.options import S3Options
from dreambolt.s3.uri import S3Uri, parse_s3_uri

__version__ = "0.1.0"

__all__ = [
    "CsvOptions",
    "DreamBoltError",
    "EmbeddingError",
    "ErrorInfo",
    "FileResult",
    "FormatError",
    "IngestReport",
    "Ingester",
    "InvalidS3UriError",
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
    "SinkError",
    "__version__",
    "parse_s3_uri",
]
