"""The embed stage works on anything that follows `EmbedItem`: no fetch stage, no format readers."""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow.ipc as pa_ipc

from dreambolt.embed import EmbedStage, EmbedStats, MemoryCache, Vectors


class LengthEmbedder:
    """A deterministic 2-d 'model': (length, number of spaces)."""

    model = "test:length"
    dim: int | None = 2

    async def embed(self, texts: list[str], *, stats: EmbedStats | None = None) -> Vectors:
        return np.array([[len(t), t.count(" ")] for t in texts], dtype=np.float32)

    async def aclose(self) -> None:
        pass


@dataclass
class Item:
    batches: list[pl.DataFrame]
    frame: pl.DataFrame | None = None
    arrow: Path | None = None
    discarded: list[bool] = field(default_factory=list)

    def frames(self) -> Generator[pl.DataFrame, None, None]:
        yield from self.batches

    def discard(self) -> None:
        self.discarded.append(True)

    def as_arrow_file(self, path: Path | None) -> Item:
        return Item([], frame=None if path else pl.DataFrame(), arrow=path)


async def test_a_file_read_in_batches_is_respooled_as_arrow_with_embeddings(
    tmp_path: Path,
) -> None:
    stage = EmbedStage(LengthEmbedder(), MemoryCache(), None)
    item = Item([pl.DataFrame({"text": ["a b", None]}), pl.DataFrame({"text": ["abc"]})])
    out = await stage.apply(item, tmp_path)
    assert item.discarded == [True] and out.arrow is not None and out.arrow.parent == tmp_path
    table = pl.from_arrow(pa_ipc.open_file(str(out.arrow)).read_all())
    assert isinstance(table, pl.DataFrame)
    assert table["embedding"].dtype == pl.Array(pl.Float32, 2)
    assert table["embedding"].to_list() == [[3.0, 1.0], None, [3.0, 0.0]]
    assert stage.stats.embedded == 2 and stage.stats.nulls == 1


async def test_a_file_without_rows_comes_back_empty_and_an_in_memory_one_in_place(
    tmp_path: Path,
) -> None:
    stage = EmbedStage(LengthEmbedder(), MemoryCache(), "text")
    empty = await stage.apply(Item([]), tmp_path)
    assert empty.arrow is None and empty.frame is not None and list(tmp_path.iterdir()) == []
    held = Item([], frame=pl.DataFrame({"text": ["xy"]}))
    assert await stage.apply(held, tmp_path) is held
    assert held.frame is not None and held.frame["embedding"].to_list() == [[2.0, 0.0]]
    planned = Item([pl.DataFrame({"text": ["one", "one", "two"]})])
    texts, tokens = await stage.plan(planned)
    assert texts == 2 and 2 <= tokens <= 6 and planned.discarded == [True]  # 6: UTF-8 bytes
