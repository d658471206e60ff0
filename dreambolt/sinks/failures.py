"""What a failure while writing the database means: the disk, the file, another writer, or data.

DuckDB's Python exceptions carry no errno, only their class and a message into which DuckDB
formats `strerror(errno)` of the failed system call. So the class decides first (IOException,
FatalException, OSError.errno) and the C library's own text for an errno - `os.strerror`, the
very string DuckDB embedded - tells a full disk from other IO failures, also when DuckDB wraps an
IO failure at COMMIT in a TransactionException.
"""

from __future__ import annotations

import errno
import os
import re
from collections.abc import Callable

import duckdb
import pyarrow as pa
from polars.exceptions import PanicException

from dreambolt.errors import DreamBoltError, SinkError
from dreambolt.sinks.schema import CAST_MARK

__all__ = ["NO_ROOM", "Busy", "io_failure", "is_lock_error", "write_error"]

_LOCKED = re.compile(r"\b(?:set lock|conflicting lock)\b", re.IGNORECASE)

# A full disk, a quota, a file size limit: every later write fails alike; free space or move.
NO_ROOM = frozenset(
    e for e in (errno.ENOSPC, getattr(errno, "EDQUOT", None), errno.EFBIG) if e is not None
)
_IO = frozenset(
    e
    for e in (
        errno.EIO,
        errno.EROFS,
        errno.EACCES,
        errno.EPERM,
        errno.ENXIO,
        getattr(errno, "ESTALE", None),
    )
    if e is not None
)


class Busy(Exception):
    """Another open transaction holds the table's claim (or committed since ours began)."""


def is_lock_error(exc: duckdb.IOException) -> bool:
    """Whether DuckDB could not lock the file (another process has it open)."""
    # DuckDB has no exception class or code for this one; its message is the only sign:
    # 'Could not set lock on file "...": Conflicting lock is held in ... (PID n)'.
    return _LOCKED.search(str(exc)) is not None


def _errno_in(text: str, codes: frozenset[int]) -> int | None:
    for code in codes:
        if os.strerror(code) in text:
            return code
    return None


def retryable(
    exc: BaseException, replayable: Callable[[], bool], db: str, file: str | None
) -> bool:
    """Another writer held the claim (`Busy`), or a write conflict while the write can still be
    replayed, and not the database's disk or file failing."""
    return isinstance(exc, Busy) or (
        isinstance(exc, duckdb.TransactionException)
        and replayable()
        and io_failure(exc, db, file) is None
    )


def io_failure(exc: BaseException, db: str, file: str | None = None) -> SinkError | None:
    """A fatal SinkError if `exc` is the database's disk or file failing, else None.

    `db` is the database as the user named it (for the message), `file` the file opened.
    Raised while writing: a full disk (code ENOSPC; also a quota or file size limit) or another
    IO failure of the database file (code IOError) would fail every later file alike.
    """
    number: int | None
    if isinstance(exc, OSError):
        number = exc.errno
        if number is not None and number in NO_ROOM:
            return _no_room(db, exc, number)
        if number in _IO and exc.filename is not None and str(exc.filename).startswith(file or db):
            return _io_error(db, exc)
        return None
    if isinstance(exc, duckdb.FatalException):
        return SinkError(
            f"DuckDB stopped using the database {db!r} after a fatal error: {exc}; the "
            "files loaded before it are kept. Check the disk, then run again",
            code="ENOSPC" if _errno_in(str(exc), NO_ROOM) else "IOError",
            fatal=True,
        )
    if isinstance(exc, duckdb.IOException | duckdb.TransactionException):
        text = str(exc)
        number = _errno_in(text, NO_ROOM)
        if number is not None:
            return _no_room(db, exc, number)
        if isinstance(exc, duckdb.IOException) or _errno_in(text, _IO) is not None:
            return _io_error(db, exc)
    return None


def _no_room(db: str, exc: BaseException, number: int) -> SinkError:
    what, fix = "the disk is full", "Free space on that disk or choose another --db"
    if number == errno.EFBIG:
        what, fix = (
            "the file size limit was reached",
            "Raise the limit (ulimit -f) or choose another --db on a disk with room",
        )
    elif number == getattr(errno, "EDQUOT", None):
        what = "the disk quota is used up"
    return SinkError(
        f"cannot write the DuckDB database {db!r}: {what} ({errno.errorcode.get(number, number)}:"
        f" {exc}); the file being written was rolled back and the files loaded before it are "
        f"kept. {fix}, then run again (loaded files are not loaded again)",
        code="ENOSPC",
        fatal=True,
    )


def _io_error(db: str, exc: BaseException) -> SinkError:
    return SinkError(
        f"cannot write the DuckDB database {db!r}: {exc}; the file being written was rolled "
        "back. Check the disk and the file's permissions, or choose another --db, then run "
        "again",
        code="IOError",
        fatal=True,
    )


def write_error(
    exc: BaseException, table: str, what: str, *, db: str, file: str, waited: float
) -> BaseException:
    """The error to raise for `exc`, raised while writing `what` into `table` of `db` (the
    file `file`), after waiting up to `waited` seconds for the table's claim: `exc` itself when
    it is DreamBolt's own or not the sink's (an interruption, a parser's error)."""
    if isinstance(exc, DreamBoltError):
        return exc
    fatal = io_failure(exc, db, file)
    if fatal is not None:
        return fatal
    if isinstance(exc, Busy):
        return SinkError(
            f"{what}: table {table!r} of {db!r} was being written by another "
            f"connection of this process for over {waited:g}s (another Ingester "
            "on the same database?); not loaded: run again once it is done",
            code="Busy",
        )
    if isinstance(exc, duckdb.InvalidInputException) and CAST_MARK in str(exc):
        return SinkError(str(exc).split(CAST_MARK, 1)[1])
    if isinstance(exc, pa.ArrowException | PanicException):
        hint = (
            "polars failed on this file's data (a bug in polars: please report it with the file)"
            if isinstance(exc, PanicException)
            else "a column nested this deep, or of this type, cannot be handed over: flatten "
            "or drop it before loading"
        )
        return SinkError(
            f"{what}: the rows could not be handed to DuckDB "
            f"({type(exc).__name__}: {exc}); not loaded: {hint}"
        )
    if isinstance(exc, duckdb.TransactionException):
        return SinkError(
            f"{what}: table {table!r} was changed by another writer at the same time "
            f"({exc}); not loaded: run again",
            code="Conflict",
        )
    if isinstance(exc, duckdb.Error):
        return SinkError(f"{what}: DuckDB refused the rows: {exc}")
    return exc
