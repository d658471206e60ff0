"""The fetch stage: bring one source in, parsed in memory if small, spooled to disk if big."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Generator
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from .formats import HEAD_BYTES, FileFormat, detect_format, iter_file, read_bytes
from .s3 import Progress, S3Client
from .sources import Source
from .transfer import download_object, read_object

__all__ = ["ByteBudget", "Failed", "Fetched", "fetch"]


class ByteBudget:
    """A counting semaphore of bytes: what fetched-but-unwritten files may hold in memory."""

    def __init__(self, total: int) -> None:
        self.total = total
        self._free = total
        self._changed = asyncio.Condition()

    async def acquire(self, amount: int) -> int:
        """Take `amount` bytes (at most the total), waiting until they are free."""
        amount = min(amount, self.total)
        async with self._changed:
            await self._changed.wait_for(lambda: self._free >= amount)
            self._free -= amount
        return amount

    async def release(self, amount: int) -> None:
        """Give bytes back."""
        async with self._changed:
            self._free += amount
            self._changed.notify_all()


@dataclass(slots=True)
class Fetched:
    """A file that arrived: parsed in memory, or spooled on disk to be parsed in batches."""

    source: Source
    etag: str | None
    size: int
    frame: pl.DataFrame | None = None
    raw: bytes | None = None  # small CSV/TSV left unparsed, to be parsed with others at once
    path: Path | None = None
    fmt: FileFormat | None = None
    spooled: bool = False
    cost: int = 0
    seconds: float = 0.0

    def frames(self) -> Generator[pl.DataFrame, None, None]:
        """The file's rows: the parsed frame, or batches parsed from the file on disk."""
        if self.frame is not None:
            yield self.frame
        elif self.raw is not None and self.fmt is not None:
            yield read_bytes(self.raw, self.fmt, name=self.source.uri)
        elif self.path is not None and self.fmt is not None:
            yield from iter_file(self.path, self.fmt, name=self.source.uri)

    def discard(self) -> None:
        """Remove the spooled copy, if any."""
        if self.spooled and self.path is not None:
            self.path.unlink(missing_ok=True)


@dataclass(slots=True)
class Failed:
    """A file that could not be fetched or parsed, and why."""

    source: Source
    error: Exception
    cost: int = 0
    seconds: float = 0.0


async def fetch(
    src: Source, *, client: Callable[[], Awaitable[S3Client]], spool: Path,
    declared: str | None, spool_threshold: int, progress: Progress, defer_text: bool = False,
) -> Fetched:
    """Bring one source in: parsed in memory if small, else spooled (or read in place).

    With `defer_text`, a small uncompressed CSV/TSV is returned unparsed (`raw`), for
    `formats.read_many` to parse together with others.
    """
    big = src.size > spool_threshold
    if src.path is not None:  # a local file
        if big:
            with src.path.open("rb") as handle:
                fmt = detect_format(src.name, handle.read(HEAD_BYTES), declared)
            progress(src.size)
            return Fetched(src, src.etag, src.size, path=src.path, fmt=fmt)
        data: bytes | bytearray = await asyncio.to_thread(src.path.read_bytes)
        etag, size = src.etag, len(data)
        progress(size)
    else:
        assert src.info is not None
        s3 = await client()
        if big:
            target = spool / uuid.uuid4().hex
            info = await download_object(s3, src.info, target, progress=progress)
            with target.open("rb") as handle:
                fmt = detect_format(src.name, handle.read(HEAD_BYTES), declared)
            return Fetched(src, info.etag or None, info.size, path=target, fmt=fmt, spooled=True)
        info, data = await read_object(s3, src.info, progress=progress)
        etag, size = info.etag or None, info.size
    payload = data if isinstance(data, bytes) else bytes(data)
    fmt = detect_format(src.name, payload[:HEAD_BYTES], declared)
    if defer_text and fmt.kind in ("csv", "tsv") and fmt.compression is None:
        return Fetched(src, etag, size, raw=payload, fmt=fmt)
    frame = await asyncio.to_thread(read_bytes, payload, fmt, name=src.uri)
    return Fetched(src, etag, size, frame=frame, fmt=fmt)
