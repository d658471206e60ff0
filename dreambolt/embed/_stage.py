"""The embed stage of the ingest pipeline: add an `embedding` column to each fetched file.

The stage knows files only through the small `EmbedItem` protocol (the fetch stage's `Fetched`
follows it), so embedding needs neither the S3 stage nor the format readers.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Generator, Iterable
from pathlib import Path
from typing import Protocol, TypeVar

import polars as pl
import pyarrow.ipc as pa_ipc

from dreambolt.embed._base import Embedder, EmbedStats, text_hash
from dreambolt.embed._cache import EmbeddingCache
from dreambolt.embed._column import embed_texts, pick_text_column
from dreambolt.embed._tokens import estimate

__all__ = ["COLUMN", "EmbedItem", "EmbedStage"]

COLUMN = "embedding"

Item = TypeVar("Item", bound="EmbedItem")


class EmbedItem(Protocol):
    """A fetched file as the embed stage sees it (`dreambolt.fetch.Fetched` is one).

    `frame` is the file parsed in memory, or None when its rows are read in batches from
    `frames()`; `discard()` releases what the file holds (a spool file, a running download);
    `as_arrow_file(path)` is the same file with its rows now in the Arrow IPC file `path`
    (None: no rows at all).
    """

    frame: pl.DataFrame | None

    def frames(self) -> Generator[pl.DataFrame, None, None]: ...

    def discard(self) -> None: ...

    def as_arrow_file(self: Item, path: Path | None) -> Item: ...


class EmbedStage:
    """Embeds one text column of every file, through a cache, adding up what it did.

    Small files are embedded in memory. A big file (parsed in batches from disk) is embedded
    batch by batch and re-spooled as Arrow IPC, so memory stays bounded by a batch.
    """

    def __init__(self, embedder: Embedder, cache: EmbeddingCache, column: str | None) -> None:
        self.embedder = embedder
        self.cache = cache
        self.column = column
        self.stats = EmbedStats()

    async def frame(self, frame: pl.DataFrame) -> pl.DataFrame:
        """`frame` with its text column embedded (frames without columns pass through)."""
        if not frame.width:
            return frame
        column = pick_text_column(frame, self.column)
        result, stats = await embed_texts(frame[column].to_list(), self.embedder, self.cache)
        self.stats += stats
        return frame.with_columns(result.to_series(COLUMN, dim=self.embedder.dim))

    async def apply(self, item: Item, spool: Path) -> Item:
        """Embed a fetched file; a file on disk comes back as an Arrow IPC file in `spool`."""
        if item.frame is not None:
            item.frame = await self.frame(item.frame)
            return item
        out = spool / f"{uuid.uuid4().hex}.arrow"
        wrote = await self.to_arrow_file(item.frames(), out)
        item.discard()
        return item.as_arrow_file(out if wrote else None)

    async def to_arrow_file(self, frames: Generator[pl.DataFrame, None, None], out: Path) -> bool:
        """Embed `frames` (read on a worker thread) one by one into the Arrow IPC file `out`;
        False when there was no frame (and no file). `frames` is closed in any case, and a
        failure leaves no file."""
        writer: pa_ipc.RecordBatchFileWriter | None = None
        try:
            while (frame := await asyncio.to_thread(next, frames, None)) is not None:
                table = (await self.frame(frame)).to_arrow()
                if writer is None:
                    writer = pa_ipc.new_file(str(out), table.schema)
                await asyncio.to_thread(writer.write_table, table)
        except BaseException:
            if writer is not None:
                writer.close()
                writer = None
            _remove(out)
            raise
        finally:
            frames.close()
            if writer is not None:
                writer.close()
        return writer is not None

    async def plan(self, item: EmbedItem) -> tuple[int, int]:
        """For a dry run: (texts, estimated tokens) that embedding this file would send."""
        try:
            return await self.plan_frames(item.frames())
        finally:
            item.discard()

    async def plan_frames(self, frames: Iterable[pl.DataFrame]) -> tuple[int, int]:
        """For a dry run: (texts, estimated tokens) that embedding these frames would send."""
        texts: list[str | None] = []
        for frame in frames:
            if frame.width:
                texts.extend(frame[pick_text_column(frame, self.column)].to_list())
        fresh = [t for t in dict.fromkeys(t for t in texts if t)]
        known = await self.cache.get(self.embedder.model, [text_hash(t) for t in fresh])
        return await asyncio.to_thread(estimate, [t for t in fresh if text_hash(t) not in known])


def _remove(path: Path) -> None:
    """Remove a half-written file (one unlink: not worth a thread hop)."""
    path.unlink(missing_ok=True)
