"""The embed stage of the ingest pipeline: add an `embedding` column to each fetched file."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import polars as pl
import pyarrow.ipc as pa_ipc

from dreambolt.embed._base import Embedder, EmbedStats, text_hash
from dreambolt.embed._cache import EmbeddingCache
from dreambolt.embed._column import embed_texts, pick_text_column
from dreambolt.embed._tokens import estimate
from dreambolt.fetch import Fetched
from dreambolt.formats.detect import FileFormat

__all__ = ["EmbedStage"]

COLUMN = "embedding"


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

    async def apply(self, item: Fetched, spool: Path) -> Fetched:
        """Embed a fetched file; a file on disk comes back as an Arrow IPC spool file."""
        if item.frame is not None:
            item.frame = await self.frame(item.frame)
            return item
        out = spool / f"{uuid.uuid4().hex}.arrow"
        frames = item.frames()
        writer: pa_ipc.RecordBatchFileWriter | None = None
        try:
            while (frame := await asyncio.to_thread(next, frames, None)) is not None:
                table = (await self.frame(frame)).to_arrow()
                if writer is None:
                    writer = pa_ipc.new_file(str(out), table.schema)
                await asyncio.to_thread(writer.write_table, table)
        except BaseException:
            out.unlink(missing_ok=True)
            raise
        finally:
            frames.close()
            if writer is not None:
                writer.close()
        item.discard()
        if writer is None:
            return Fetched(item.source, item.etag, item.size, frame=pl.DataFrame())
        return Fetched(
            item.source, item.etag, item.size, path=out, fmt=FileFormat("ipc"), spooled=True
        )

    async def plan(self, item: Fetched) -> tuple[int, int]:
        """For a dry run: (texts, estimated tokens) that embedding this file would send."""
        texts: list[str | None] = []
        for frame in item.frames():
            if frame.width:
                texts.extend(frame[pick_text_column(frame, self.column)].to_list())
        item.discard()
        fresh = [t for t in dict.fromkeys(t for t in texts if t)]
        known = await self.cache.get(self.embedder.model, [text_hash(t) for t in fresh])
        return await asyncio.to_thread(estimate, [t for t in fresh if text_hash(t) not in known])
