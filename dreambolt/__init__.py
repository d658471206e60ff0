"""DreamBolt: ingest data files from S3 (and local disk) into DuckDB, fast and exactly once."""

from .detect import CsvOptions
from .errors import (
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
from .ingest import Ingester
from .report import ErrorInfo, FileResult, IngestReport
from .s3 import ObjectInfo, S3Client
from .uri import S3Uri, parse_s3_uri

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
    "S3RateLimitError",
    "S3Uri",
    "SinkError",
    "__version__",
    "parse_s3_uri",
]
