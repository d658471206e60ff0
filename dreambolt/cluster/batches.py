"""Cutting the files of a run into batches: deterministic, by bytes and by count.

The same files cut the same way whatever order they were listed in, so two drivers on the same
input (or a re-submitted task) name the same batches, and a batch's marker in the Delta log
(`sinks.delta`) shows it is done. A batch is one task and one Delta commit: few enough bytes to
hold in a worker's memory, enough files that a commit (tens to hundreds of ms on S3) is not paid
per small file.
"""

from __future__ import annotations

from collections.abc import Iterable

from dreambolt.sources import Source

__all__ = ["BATCH_BYTES", "BATCH_FILES", "cut"]

BATCH_BYTES = 64 << 20  # bytes of objects per batch at most (a bigger object is a batch alone)
BATCH_FILES = 256  # objects per batch at most


def cut(
    sources: Iterable[Source], *, max_bytes: int | None = None, max_files: int | None = None
) -> list[list[Source]]:
    """The sources by URI, in consecutive batches of at most `max_files` files and
    `max_bytes` bytes (default: `BATCH_FILES`, `BATCH_BYTES`; an object bigger than that is a
    batch of its own)."""
    max_bytes = max_bytes or BATCH_BYTES
    max_files = max_files or BATCH_FILES
    batches: list[list[Source]] = []
    current: list[Source] = []
    size = 0
    for src in sorted(sources, key=lambda s: s.uri):
        if current and (len(current) >= max_files or size + src.size > max_bytes):
            batches.append(current)
            current, size = [], 0
        current.append(src)
        size += src.size
    if current:
        batches.append(current)
    return batches
