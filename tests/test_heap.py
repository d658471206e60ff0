"""heap.trim: freed chunk memory goes back to the system (glibc, as on these machines)."""

from __future__ import annotations

import os

from dreambolt.heap import _malloc_trim, trim


def _rss_mib() -> float:
    with open(f"/proc/{os.getpid()}/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def test_freed_chunks_are_returned_to_the_system() -> None:
    assert _malloc_trim() is not None, "glibc's malloc_trim not found"
    big = os.urandom(4 << 20)
    del big  # a freed mmapped block raises glibc's mmap threshold past the chunk size
    chunks, kept = [], []
    for _ in range(800):  # 200 MiB inside the heap, with small live blocks between the chunks
        chunks.append(os.urandom(256 << 10))
        kept.append(os.urandom(2048))  # as the objects a download leaves behind
    del chunks  # free, but the live blocks keep glibc from shrinking the heap by itself
    before = _rss_mib()
    trim()
    after = _rss_mib()
    assert len(kept) == 800
    assert before - after > 100, (before, after)
