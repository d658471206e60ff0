"""heap.trim: freed chunk memory goes back to the system (glibc, as on these machines).

Run in a fresh interpreter: how glibc places blocks depends on everything the process did
before, which in the test session is a lot.
"""

from __future__ import annotations

import json
import subprocess
import sys

from dreambolt.heap import _malloc_trim

SCRIPT = """
import json, os, sys
from dreambolt.heap import trim

def rss_mib():
    with open(f"/proc/{os.getpid()}/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

big = os.urandom(4 << 20)
del big  # a freed mmapped block raises glibc's mmap threshold past the chunk size
chunks, kept = [], []
for _ in range(800):  # 200 MiB inside the heap, with small live blocks between the chunks
    chunks.append(os.urandom(256 << 10))
    kept.append(os.urandom(2048))  # as the objects a download leaves behind
del chunks  # free, but the live blocks keep glibc from shrinking the heap by itself
before = rss_mib()
if sys.argv[1] == "trim":
    trim()
print(json.dumps([before, rss_mib(), len(kept)]))
"""


def _run(mode: str) -> tuple[float, float]:
    done = subprocess.run([sys.executable, "-c", SCRIPT, mode], capture_output=True, text=True,
                          check=True, timeout=60)
    before, after, _ = json.loads(done.stdout)
    return before, after


def test_freed_chunks_are_returned_to_the_system() -> None:
    assert _malloc_trim() is not None, "glibc's malloc_trim not found"
    before, after = _run("keep")
    assert before - after < 10, "without trim glibc keeps the space (else this test shows nothing)"
    before, after = _run("trim")
    assert before - after > 100, (before, after)
