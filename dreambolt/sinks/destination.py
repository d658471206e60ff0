"""Opening the DuckDB file: refuse a path DuckDB would not persist to, wait for another process.

DuckDB 2 attaches an existing file that is not a DuckDB database (a CSV, say) as an empty
in-memory database, and `''` as `:memory:`: a load there reports success and keeps nothing. So
an existing file must carry DuckDB's magic bytes before DuckDB is let near it, the folder must
exist already (a typo must not start a new database), and the opened database must be the file.

One process may open a database file for writing; DuckDB refuses any other with an IO Error
about a lock. `connect` retries until `lock_timeout`, then says which process holds it.

Reading the file's header needs care: DuckDB's lock is a POSIX record lock, which belongs to the
process and is dropped when the process closes *any* descriptor of the file. Opening and closing
the file to look at it, while this process has it open in DuckDB, would let another process in.
So the header is read through a descriptor this process already has, when it has one, and opens
of DreamBolt sinks are serialized.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import random
import stat
import threading
import time
from typing import Literal

import duckdb

from dreambolt.errors import SinkError
from dreambolt.sinks.failures import is_lock_error

__all__ = ["MAGIC", "connect", "resolve"]

log = logging.getLogger("dreambolt.sink")

MAGIC = b"DUCK"  # bytes 8..12 of every DuckDB database file
_MAGIC_AT = 8
_OPENING = threading.Lock()  # a header read and a connect of one sink at a time
_FIRST_DELAY, _MAX_DELAY = 0.05, 1.0

Kind = Literal["new", "database", "empty"]


def resolve(path: str) -> str:
    """The file DuckDB should open for `path` (absolute, symlinks resolved), or SinkError.

    ':memory:' is returned as it is. Nothing is created or written.
    """
    if path == ":memory:":
        return path
    if not path.strip() or "\0" in path:
        raise SinkError(
            f"invalid database path {path!r}: name a DuckDB file, e.g. --db dreambolt.duckdb "
            "(or ':memory:' for a database that is not kept)",
            code="InvalidPath",
            fatal=True,
        )
    # Absolute, so DuckDB never reads a prefix such as 'md:' or ':memory:x' as anything but a
    # file name; symlinks resolved, so DuckDB's one-instance-per-file cache sees one file.
    file = os.path.realpath(os.path.expanduser(path))
    if os.path.isdir(file):
        raise SinkError(
            f"database path {path!r} is a directory: name a file in it, e.g. "
            f"--db {os.path.join(path, 'dreambolt.duckdb')}",
            code="IsADirectory",
            fatal=True,
        )
    folder = os.path.dirname(file)
    if not os.path.isdir(folder):
        why = "is a file, not a folder" if os.path.lexists(folder) else "does not exist"
        raise SinkError(
            f"cannot open DuckDB database {path!r}: the folder {folder!r} {why}; create the "
            "folder first (DreamBolt does not create folders, so that a mistyped path does not "
            "start a new database) or correct --db",
            code="NoSuchDirectory",
            fatal=True,
        )
    return file


def connect(path: str, *, lock_timeout: float) -> tuple[duckdb.DuckDBPyConnection, str]:
    """Open the database at `path` for writing; returns the connection and the file opened.

    Raises SinkError (fatal) when the path is unusable, the file is not a DuckDB database, or
    another process still holds the file after `lock_timeout` seconds.
    """
    file = resolve(path)
    if file == ":memory:":
        return duckdb.connect(file), file
    deadline = time.monotonic() + max(0.0, lock_timeout)
    delay = _FIRST_DELAY
    waiting = False
    while True:
        with _OPENING:
            kind = _inspect(file, path)
            try:
                con = duckdb.connect(file)
            except duckdb.IOException as exc:
                if not is_lock_error(exc):
                    if kind == "empty":
                        raise SinkError(
                            f"{path!r} is an empty file (0 bytes), not a DuckDB database; it was "
                            "left untouched. Delete it to create a new database there, or "
                            "choose another --db",
                            code="NotADatabase",
                            fatal=True,
                        ) from exc
                    raise _cannot_open(path, exc, "IOError") from exc
                held = exc
            except duckdb.Error as exc:
                raise _cannot_open(path, exc, "OpenFailed") from exc
            else:
                _check_attached(con, path)
                return con, file
        left = deadline - time.monotonic()
        if left <= 0:
            raise SinkError(
                f"cannot open DuckDB database {path!r}: another process holds it ({held}); "
                f"waited {lock_timeout:g}s. DuckDB lets one process write a database file: "
                "wait for that process to finish (or stop it), or choose another --db",
                code="Locked",
                fatal=True,
            ) from held
        if not waiting:
            waiting = True
            log.warning(
                "waiting up to %gs for %s: another process holds it (%s)", lock_timeout, path, held
            )
        time.sleep(min(left, delay * random.uniform(0.5, 1.5)))
        delay = min(delay * 2, _MAX_DELAY)


def _inspect(file: str, shown: str) -> Kind:
    """'new' (no file yet), 'database' (DuckDB's magic), 'empty' (0 bytes); else SinkError."""
    try:
        st = os.stat(file)
    except FileNotFoundError:
        return "new"
    except OSError as exc:
        raise _cannot_open(shown, exc, "IOError") from exc
    if stat.S_ISDIR(st.st_mode):
        raise SinkError(
            f"database path {shown!r} is a directory: name a file in it",
            code="IsADirectory",
            fatal=True,
        )
    if not stat.S_ISREG(st.st_mode):
        raise _not_a_database(shown, "it is not a regular file")
    if st.st_size == 0:
        # Left to DuckDB, which refuses it untouched: unless another process is creating the
        # database right now (it holds the lock before the header is written), then we wait.
        return "empty"
    try:
        head = _read_head(file, st)
    except OSError as exc:
        raise _cannot_open(shown, exc, "IOError") from exc
    if head is not None and head[_MAGIC_AT : _MAGIC_AT + len(MAGIC)] != MAGIC:
        # Its bytes are not quoted: --db may name any file, one holding secrets included.
        raise _not_a_database(shown, "its header is not a DuckDB database header")
    return "database"


def _read_head(file: str, st: os.stat_result) -> bytes | None:
    """The file's first 16 bytes, without closing a descriptor of a file this process holds a
    lock on; None when this process has the file open only in a way that cannot be read."""
    mine = _own_descriptors(st)
    if mine:
        for fd in mine:
            with contextlib.suppress(OSError):
                head = os.pread(fd, 16, 0)
                again = os.fstat(fd)  # still the same file (the number was not reused)?
                if (again.st_dev, again.st_ino) == (st.st_dev, st.st_ino):
                    return head
        return None  # open here already (so DuckDB's own check applies); not readable by us
    with open(file, "rb") as f:  # not open in this process: closing it drops no lock
        return f.read(16)


def _own_descriptors(st: os.stat_result) -> list[int]:
    """This process's open descriptors of the file `st` describes ([] if none or unknown)."""
    if not hasattr(os, "pread"):
        return []  # Windows: its file locks do not go with another handle's close
    for listing in ("/proc/self/fd", "/dev/fd"):
        try:
            names = os.listdir(listing)
        except OSError:
            continue
        found = []
        for name in names:
            with contextlib.suppress(OSError, ValueError):
                fd = int(name)
                other = os.fstat(fd)
                if (other.st_dev, other.st_ino) == (st.st_dev, st.st_ino) and stat.S_ISREG(
                    other.st_mode
                ):
                    found.append(fd)
        return found
    return []


def _check_attached(con: duckdb.DuckDBPyConnection, shown: str) -> None:
    """The opened database must be the file itself (DuckDB may attach something else)."""
    try:
        rows = con.execute(
            "SELECT path, type FROM duckdb_databases() WHERE database_name = current_database()"
        ).fetchall()
    except duckdb.Error as exc:
        con.close()
        raise _cannot_open(shown, exc, "OpenFailed") from exc
    if not rows or rows[0][0] is None or rows[0][1] != "duckdb":
        con.close()
        raise _not_a_database(shown, "DuckDB did not open it as a database file")


def _not_a_database(shown: str, why: str) -> SinkError:
    return SinkError(
        f"{shown!r} is not a DuckDB database ({why}); it was left untouched. Name a new file "
        "or an existing DuckDB database with --db, e.g. --db dreambolt.duckdb (is it one of "
        "the input files?)",
        code="NotADatabase",
        fatal=True,
    )


def _cannot_open(shown: str, exc: BaseException, code: str) -> SinkError:
    hint = "check that the folder is writable and the disk is not full"
    if isinstance(exc, OSError) and exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        hint = "check the file's and folder's permissions (and that the disk is not read-only)"
    return SinkError(f"cannot open DuckDB database {shown!r}: {exc}; {hint}", code=code, fatal=True)
