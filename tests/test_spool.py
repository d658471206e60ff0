"""Spool folders locked with flock (not judged by PIDs), and a full spool disk said as such."""

from __future__ import annotations

import collections
import errno
import fcntl
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from faultproxy import FaultProxy

from dreambolt.sources import new_spool as new_spool_from_sources
from dreambolt.spool import LOCK_NAME, Spool, new_spool, open_spool, remove_stale_spools

HOLDER = r"""
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
print("locked", flush=True)
sys.stdin.read()  # hold the lock until the test closes our stdin
"""


@pytest.fixture
def dead_pid() -> int:
    """The PID of a process that has exited (what the old PID check took for a killed run)."""
    done = subprocess.Popen([sys.executable, "-c", "pass"])
    assert done.wait() == 0
    return done.pid


@pytest.fixture
def holder() -> Iterator[Any]:
    """Starts processes that hold a lock file's flock until the test ends."""
    procs: list[subprocess.Popen[str]] = []

    def hold(lock: Path) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [sys.executable, "-c", HOLDER, str(lock)],
            text=True,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
        procs.append(proc)
        return proc

    yield hold
    for proc in procs:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.close()
        proc.wait(timeout=30)
        proc.stdout.close()


def lockable(lock: Path) -> bool:
    """Whether this process (another open file description) can take the flock now."""
    fd = os.open(lock, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)
    return True


def spool_dir(base: Path, name: str, *, lock: bool = True) -> Path:
    folder = base / f"dreambolt-spool-{name}"
    folder.mkdir()
    (folder / "part").write_bytes(b"x" * 100)
    if lock:
        (folder / LOCK_NAME).touch()
    return folder


def test_a_spool_held_by_a_live_process_is_left_alone_whatever_its_pid_says(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, dead_pid: int, holder: Any
) -> None:
    monkeypatch.setenv("DREAMBOLT_TMPDIR", str(tmp_path))
    # Another container's run: its PID means nothing here (here it is a dead process's).
    held = spool_dir(tmp_path, f"{dead_pid}-held")
    holder(held / LOCK_NAME)
    free = spool_dir(tmp_path, f"{dead_pid}-free")  # a killed run's: nobody holds its lock
    legacy = spool_dir(tmp_path, f"{dead_pid}-legacy", lock=False)  # no lock file: not judged
    with open_spool() as spool:
        assert held.exists() and (held / "part").exists()
        assert not free.exists()
        assert legacy.exists()
        assert spool.path.parent == tmp_path and spool.path.is_dir()
        assert spool.path.name.startswith(f"dreambolt-spool-{os.getpid()}-")


def test_an_open_spool_is_locked_until_closed(tmp_path: Path, holder: Any) -> None:
    spool = open_spool(tmp_path)
    lock = spool.path / LOCK_NAME
    assert not lockable(lock)
    (spool.path / "object").write_bytes(b"data")
    assert remove_stale_spools(tmp_path) == [] and spool.path.exists()  # another run's sweep
    spool.close()
    assert not spool.path.exists() and spool.closed
    spool.close()  # again: nothing to do
    # a spool left by a killed process: its lock went with it, so the next run removes it
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from pathlib import Path; "
            "from dreambolt.spool import open_spool; print(open_spool(Path(sys.argv[1])).path)",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    orphan = Path(done.stdout.strip())
    assert orphan.is_dir() and lockable(orphan / LOCK_NAME)
    assert remove_stale_spools(tmp_path) == [orphan] and not orphan.exists()


def test_new_spool_keeps_its_path_api_and_locks_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DREAMBOLT_TMPDIR", str(tmp_path))
    assert new_spool_from_sources is new_spool
    path = new_spool()
    assert isinstance(path, Path) and path.is_dir() and not lockable(path / LOCK_NAME)
    assert remove_stale_spools(tmp_path) == []
    shutil.rmtree(path)  # as callers of new_spool() clean up
    second = new_spool()  # drops the first one's lock (its folder is gone)
    assert second.is_dir()
    shutil.rmtree(second)
    assert isinstance(open_spool(tmp_path), Spool)


# --- a full spool disk ----------------------------------------------------------------------

DOWNLOAD = r"""
import asyncio, json, resource, sys
from pathlib import Path
from dreambolt import S3Client
from dreambolt.s3.transfer import spool_object
from dreambolt.s3.uri import parse_s3_uri

endpoint, uri, target, mode, limit = sys.argv[1:]
if int(limit):  # no tmpfs to be had: a file size limit makes writes fail (EFBIG) instead
    resource.setrlimit(resource.RLIMIT_FSIZE, (int(limit), resource.RLIM_INFINITY))

async def main():
    async with S3Client(endpoint_url=endpoint, part_size=256 << 10, concurrency=4,
                        backoff_factor=0.01, max_backoff=0.05) as s3:
        try:
            if mode == "spool":
                await spool_object(s3.calls, parse_s3_uri(uri), Path(target))
            else:
                await s3.download(uri, target)
        except Exception as exc:
            return {"type": type(exc).__name__, "errno": getattr(exc, "errno", None),
                    "message": str(exc), "cause_errno": getattr(exc.__cause__, "errno", None)}
    return {"type": None}

print(json.dumps(asyncio.run(main())))
"""


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    """A folder on a 1 MiB tmpfs (we run as root), and 0; where mounting is not allowed, a
    plain folder and the 1 MiB file size limit to run the writer with."""
    folder = tmp_path / "small"
    folder.mkdir()
    mounted = (
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(folder)],
            capture_output=True,
            check=False,
        ).returncode
        == 0
    )
    try:
        yield folder, 0 if mounted else 1 << 20
    finally:
        if mounted:
            subprocess.run(["umount", str(folder)], check=False)
            if os.path.ismount(folder):
                subprocess.run(["umount", "-l", str(folder)], check=True)


@pytest.mark.parametrize("mode", ["spool", "download"])
def test_a_full_spool_disk_is_reported_as_a_full_disk_not_an_s3_error(
    proxy: FaultProxy, s3: Any, bucket: str, small_disk: tuple[Path, int], mode: str
) -> None:
    folder, limit = small_disk
    s3.put_object(Bucket=bucket, Key="big.bin", Body=os.urandom(3 << 20))
    target = folder / "big.bin"
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            DOWNLOAD,
            proxy.endpoint_url,
            f"s3://{bucket}/big.bin",
            str(target),
            mode,
            str(limit),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["type"] == "OSError", result  # not S3GenericError
    assert result["errno"] == errno.ENOSPC
    assert result["cause_errno"] in (errno.ENOSPC, errno.EFBIG)
    message = result["message"]
    assert str(folder) in message and "check the endpoint" not in message
    if mode == "spool":
        assert "DREAMBOLT_TMPDIR" in message and "free space there" in message
    else:
        assert "download to a folder" in message
        assert not [p for p in folder.iterdir() if p.name != "lost+found"]  # no .part left
    ranges = collections.Counter(
        r.headers.get("Range") for r in proxy.requests if r.method == "GET" and r.has_range
    )
    assert all(n == 1 for n in ranges.values()), ranges  # no range was tried again


def test_a_spool_folder_that_cannot_be_made_says_where_and_what_to_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "missing"
    monkeypatch.setenv("DREAMBOLT_TMPDIR", str(missing))
    with pytest.raises(FileNotFoundError, match="DREAMBOLT_TMPDIR") as caught:
        new_spool()
    assert str(missing) in str(caught.value)
