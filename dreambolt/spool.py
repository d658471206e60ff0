"""Spool folders: where big objects are written while they are parsed, one folder per run.

A spool folder `dreambolt-spool-<pid>-<random>` lives in `$DREAMBOLT_TMPDIR` (else the system's
temporary directory) and holds a lock file, `.lock`, locked with `flock(LOCK_EX)` for as long as
the run uses the folder. The kernel drops the lock when the process ends, however it ends, so a
folder whose lock can be taken belongs to nobody: a new run removes such folders (killed runs
leave them behind). A folder whose lock is held is left alone, whatever the PID in its name says:
PIDs mean nothing across containers (separate PID namespaces) sharing one /tmp. A folder without
a lock file (made by an older DreamBolt, or by a run killed while creating it) is left alone too.

    with open_spool() as spool:      # or: spool = open_spool() ... spool.close()
        target = spool.path / "object"
"""

from __future__ import annotations

import errno
import fcntl
import os
import shutil
import tempfile
from pathlib import Path
from types import TracebackType

__all__ = [
    "DISK_FULL",
    "LOCK_NAME",
    "PREFIX",
    "Spool",
    "disk_full_error",
    "is_disk_full",
    "new_spool",
    "open_spool",
    "remove_stale_spools",
    "spool_base",
]

PREFIX = "dreambolt-spool-"
LOCK_NAME = ".lock"
DISK_FULL = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
"""errnos that mean a write failed for want of room (space, quota, file size limit)."""

_WHY = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "the disk quota is exceeded",
    errno.EFBIG: "the file is bigger than the file system or this process's file size limit "
    "(ulimit -f) allows",
}


def spool_base() -> Path:
    """The folder spools are made in: $DREAMBOLT_TMPDIR, else the system's temporary directory."""
    return Path(os.environ.get("DREAMBOLT_TMPDIR") or tempfile.gettempdir())


def is_disk_full(exc: BaseException) -> bool:
    """Whether `exc` is a local write that failed for want of room (never worth a retry)."""
    return isinstance(exc, OSError) and exc.errno in DISK_FULL


def disk_full_error(exc: OSError, path: Path, what: str, hint: str | None = None) -> OSError:
    """OSError(ENOSPC) saying which folder is full, while writing what, and what to do.

    The default hint is for spool folders: free space, or point DREAMBOLT_TMPDIR elsewhere.
    """
    folder = path.parent
    why = _WHY.get(exc.errno or errno.ENOSPC, exc.strerror or "no space left on the device")
    hint = hint or (
        "free space there, or set DREAMBOLT_TMPDIR to a folder on a disk with room for "
        "the biggest object (big objects are spooled there while they are parsed)"
    )
    err = OSError(errno.ENOSPC, f"{folder}: cannot write {what} there: {why}; {hint}")
    err.__cause__ = exc
    return err


class Spool:
    """A spool folder, locked for as long as this object is open.

    `path` is the folder; `close()` (or leaving a `with` block) removes it and drops the lock.
    """

    def __init__(self, path: Path, lock_fd: int) -> None:
        self.path = path
        self._fd: int | None = lock_fd

    @property
    def closed(self) -> bool:
        return self._fd is None

    def close(self) -> None:
        """Remove the folder and everything in it, then release the lock (idempotent)."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            shutil.rmtree(self.path, ignore_errors=True)
        finally:
            os.close(fd)  # drops the flock

    def __enter__(self) -> Spool:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Spool({str(self.path)!r}{', closed' if self.closed else ''})"


def _try_lock(path: Path, *, create: bool) -> int | None:
    """An fd of `path` holding its exclusive flock, or None if another process holds it."""
    flags = os.O_RDWR | os.O_CLOEXEC | (os.O_CREAT | os.O_EXCL if create else 0)
    fd = os.open(path, flags, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return None
        raise
    return fd


def remove_stale_spools(base: Path | None = None) -> list[Path]:
    """Remove the spool folders in `base` that no live process holds; returns them.

    A folder is removed only while its lock is held here, so a run that holds it (or is
    creating it) is never disturbed; folders without a lock file, or whose lock file cannot be
    opened (another user's), are left alone.
    """
    base = spool_base() if base is None else base
    removed = []
    try:
        candidates = sorted(base.glob(f"{PREFIX}*"))
    except OSError:
        return []
    for folder in candidates:
        try:
            fd = _try_lock(folder / LOCK_NAME, create=False)
        except OSError:  # no lock file, not a folder, not ours: not ours to judge
            continue
        if fd is None:
            continue  # alive
        try:
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
        finally:
            os.close(fd)
    return removed


def open_spool(base: Path | None = None) -> Spool:
    """Remove stale spools, then make and lock a fresh spool folder in `base` (default:
    $DREAMBOLT_TMPDIR, else the system's temporary directory)."""
    base = spool_base() if base is None else base
    remove_stale_spools(base)
    for _ in range(100):
        try:
            path = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-", dir=base))
        except OSError as exc:
            if is_disk_full(exc):
                raise disk_full_error(exc, base / PREFIX, "a spool folder") from exc
            raise type(exc)(
                exc.errno,
                f"{base}: cannot create a spool folder there "
                f"({exc.strerror or exc}); set DREAMBOLT_TMPDIR to a folder this "
                "user can write",
            ) from exc
        try:
            fd = _try_lock(path / LOCK_NAME, create=True)
        except FileNotFoundError:  # removed (as an unlocked spool) before the lock file was made
            continue
        # Between mkdtemp and flock another run may have found the folder unlocked and removed
        # it (it holds the lock while it does): then our lock is on a deleted file. Start over.
        if fd is not None and os.fstat(fd).st_nlink > 0 and path.is_dir():
            return Spool(path, fd)
        if fd is not None:
            os.close(fd)
    raise OSError(
        errno.EAGAIN,
        f"{base}: could not create a spool folder; set DREAMBOLT_TMPDIR "
        "to a folder only this run uses",
    )


_open: list[Spool] = []


def new_spool() -> Path:
    """A fresh, locked spool folder, for callers that remove it themselves (`shutil.rmtree`).

    Compatibility shim: prefer `open_spool()`, whose `close()` removes the folder and drops the
    lock at once. Here the lock is dropped at the next call once the folder is gone, or when the
    process ends.
    """
    for spool in [s for s in _open if not s.path.exists()]:
        spool.close()
        _open.remove(spool)
    spool = open_spool()
    _open.append(spool)
    return spool.path
