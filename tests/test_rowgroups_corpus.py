"""Parquet files other tools wrote (the corpus: pyarrow's, pandas' and others' test files, and
datasets as other writers write them), streamed row group by row group from the moto server
with a tiny first GET and tiny parts, so every footer and row group arrives in pieces: each
gives what reading the file whole gives, or the same refusal."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import polars as pl
import pytest
from corpus.collect import collect
from motoserver import MotoServer

from dreambolt.errors import FormatError
from dreambolt.formats.columnar import read_arrow
from dreambolt.formats.limits import DEFAULT_LIMITS
from dreambolt.rowgroups import open_parquet
from dreambolt.s3.client import S3Client

FILES = sorted((f for f in collect().files if f.fmt == "parquet"), key=lambda f: f.id)


def test_the_corpus_has_parquet_files_to_stream() -> None:
    assert len(FILES) >= 40


def test_streamed_corpus_reads_as_whole_reads(moto: MotoServer, s3: Any, bucket: str) -> None:
    keys = {}
    for n, f in enumerate(FILES):
        keys[f.id] = f"c/{n}.parquet"
        s3.put_object(Bucket=bucket, Key=keys[f.id], Body=f.path.read_bytes())

    async def stream(client: S3Client, key: str) -> pl.DataFrame:
        info = await client.head(f"s3://{bucket}/{key}")
        opened = await open_parquet(
            client.calls,
            info,
            columns=None,
            readahead=64 << 10,
            progress=lambda n: None,
            tail_bytes=1024,
        )
        assert opened is not None
        frames = await asyncio.to_thread(lambda: list(opened.frames(DEFAULT_LIMITS)))
        return pl.concat(frames, how="diagonal_relaxed")

    async def check_all() -> list[str]:
        differ = []
        async with S3Client(endpoint_url=moto.endpoint_url, part_size=8 << 10) as client:
            for f in FILES:
                data = f.path.read_bytes()
                try:
                    expected: pl.DataFrame | None = read_arrow(data, "parquet", DEFAULT_LIMITS)
                except Exception:
                    expected = None
                if expected is None:
                    with pytest.raises(FormatError, match=re.escape(keys[f.id])):
                        await stream(client, keys[f.id])
                elif not (await stream(client, keys[f.id])).equals(expected):
                    differ.append(f.id)
        return differ

    assert asyncio.run(check_all()) == []
