"""How a file's failure is classified, and how a file's outcome is logged.

An error either ends one file (skipped: it cannot be read as it is; or failed), or ends the run
(fatal: it would fail every file alike; or an interruption). Each file's outcome is logged once
on `dreambolt.ingest`: loaded and unchanged files at INFO, skipped and failed ones at WARNING
(with the error's type and message).
"""

from __future__ import annotations

import asyncio
import errno
import logging

from dreambolt.errors import (
    DreamBoltError,
    EmbeddingAuthError,
    FormatError,
    S3AuthError,
    S3NotFoundError,
    SinkError,
    redact,
)
from dreambolt.report import FileResult, Status

__all__ = [
    "file_error",
    "is_contained",
    "is_fatal",
    "is_interruption",
    "log_outcome",
    "status_of",
]

log = logging.getLogger("dreambolt.ingest")

# Skipped with a warning: the object cannot be read as it is. Anything else is "failed".
_SKIPPED = (
    S3AuthError,
    S3NotFoundError,
    FormatError,
    FileNotFoundError,
    PermissionError,
    IsADirectoryError,
    NotADirectoryError,
)
# These end the run, never one file: an interruption, or the interpreter going away.
_ESCAPES = (asyncio.CancelledError, KeyboardInterrupt, SystemExit, GeneratorExit)
# A full disk fails every later file alike (the spool or the database is on it).
_DISK_FULL = {errno.ENOSPC, errno.EDQUOT}


def status_of(exc: BaseException) -> Status:
    """`skipped` for files that cannot be read as they are, else `failed`."""
    return "skipped" if isinstance(exc, _SKIPPED) else "failed"


def is_fatal(exc: BaseException) -> bool:
    """Errors that would fail every file alike: stop the run instead of failing each one."""
    if isinstance(exc, S3AuthError):
        return exc.code == "NoCredentials"
    if isinstance(exc, SinkError):
        return exc.fatal
    if isinstance(exc, OSError):
        return exc.errno in _DISK_FULL
    return isinstance(exc, EmbeddingAuthError)


def is_interruption(exc: BaseException) -> bool:
    """Whether `exc` is the run being stopped (cancelled, Ctrl-C, exit), not a failure."""
    return isinstance(exc, _ESCAPES)


def is_contained(exc: BaseException) -> bool:
    """Whether `exc` ends one file only (anything a file's bytes can provoke, panics of the
    Rust parsers included), rather than the run."""
    return not is_interruption(exc) and not is_fatal(exc)


def file_error(exc: BaseException, uri: str, stage: str) -> Exception:
    """The error to report for one file: DreamBolt's and OS errors as they are, anything else
    (a pyarrow or polars error, a parser panic) described with the file's name. (The sink
    describes its own errors, and the readers theirs: `formats.parse_errors.translated`.)"""
    if isinstance(exc, DreamBoltError | OSError):
        return exc
    kind = FormatError if stage == "read" else SinkError
    what = " ".join(str(exc).split())[:500] or "no message"
    return kind(f"{uri}: could not be {stage}: {type(exc).__name__}: {what}")


def log_outcome(result: FileResult) -> None:
    """Log a file's outcome on `dreambolt.ingest`: INFO when it is in the table (loaded or
    unchanged), WARNING with the error when it is not (skipped or failed)."""
    took = f"{result.bytes} bytes, {result.seconds:.3f}s"
    if result.error is None:
        log.info("%s %s: %d rows, %s", result.status, redact(result.uri), result.rows, took)
        return
    code = f" [{result.error.code}]" if result.error.code else ""
    log.warning(
        "%s %s: %s%s: %s (%s)",
        result.status,
        redact(result.uri),
        result.error.type,
        code,
        redact(result.error.message),
        took,
    )
