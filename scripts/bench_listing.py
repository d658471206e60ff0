"""Directory listings for scripts/bench_server.py: key names per bucket, and S3-style pages."""

from __future__ import annotations

import bisect
import os
import time
from dataclasses import dataclass

__all__ = ["MAX_CHAR", "Listing", "page", "scan"]

MAX_CHAR = "\U0010ffff"  # sorts after any character a key can hold after a common prefix


@dataclass(frozen=True)
class Listing:
    """The sorted key names of one bucket, and the directory mtimes that prove them current."""

    keys: list[str]
    dirs: list[tuple[str, int]]
    stable: bool  # every directory was last changed well before the scan began


def _mtime_ns(path: str) -> int:
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return -1


def scan(bucket_dir: str, cached: Listing | None) -> Listing:
    if cached is not None and cached.stable and all(_mtime_ns(d) == m for d, m in cached.dirs):
        return cached
    began = time.time_ns()
    keys: list[str] = []
    dirs: list[tuple[str, int]] = []
    stack = [(bucket_dir, "")]
    while stack:
        directory, prefix = stack.pop()
        dirs.append((directory, _mtime_ns(directory)))  # before reading, so later changes show
        try:
            with os.scandir(directory) as entries:
                for entry in entries:
                    if entry.is_dir():
                        stack.append((entry.path, f"{prefix}{entry.name}/"))
                    elif entry.is_file():
                        keys.append(prefix + entry.name)
        except OSError:
            continue
    keys.sort()  # code-point order is UTF-8 byte order
    # A change in the same filesystem tick as the last one leaves the mtime unchanged.
    stable = all(m < began - 100_000_000 for _, m in dirs)
    return Listing(keys, dirs, stable)


def page(
    keys: list[str], prefix: str, delimiter: str, marker: str, max_keys: int
) -> tuple[list[str], list[str], bool, str]:
    """One page of a listing: keys, common prefixes, whether more follow, the last item."""
    contents: list[str] = []
    prefixes: list[str] = []
    last = ""
    i = bisect.bisect_right(keys, marker) if marker >= prefix else bisect.bisect_left(keys, prefix)
    while i < len(keys) and keys[i].startswith(prefix):
        key = keys[i]
        cut = key.find(delimiter, len(prefix)) if delimiter else -1
        item = key[: cut + len(delimiter)] if cut >= 0 else key
        if cut >= 0 and item <= marker:  # its prefix was already returned
            i = bisect.bisect_left(keys, item + MAX_CHAR)
            continue
        if len(contents) + len(prefixes) >= max_keys:
            return contents, prefixes, max_keys > 0, last
        if cut >= 0:
            prefixes.append(item)
            i = bisect.bisect_left(keys, item + MAX_CHAR)
        else:
            contents.append(item)
            i += 1
        last = item
    return contents, prefixes, False, last
