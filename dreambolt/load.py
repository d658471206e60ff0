"""The paths that read files without writing them: `load()`, and a dry run's plan.

`load()`: every source as one polars frame, bounded like an ingest. `files_in_flight` sources
are fetched and parsed at a time and the bytes they hold in flight are bounded by the memory
budget, so a prefix of 10,000 objects is not fetched all at once; the frames themselves are the
result. A compressed file that would unpack past the budget is refused with a clear
`FormatError` instead of being held whole.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable
from pathlib import Path

import polars as pl

from dreambolt.embed import EmbedStage
from dreambolt.fetch import ByteBudget, Fetched
from dreambolt.formats.read import ParseLimits, read_bytes
from dreambolt.report import ErrorInfo, FileResult
from dreambolt.sources import Source
from dreambolt.spool import open_spool
from dreambolt.write import Run, file_error, is_contained, status_of

__all__ = ["load_frame", "load_frames", "plan_files"]

FetchOne = Callable[[Source], Awaitable[Fetched]]
FetchInto = Callable[[Source, Path], Awaitable[Fetched]]  # fetch a source, spooling into a folder


async def load_frame(
    sources: list[Source],
    fetch_one: FetchInto,
    *,
    budget: int,
    files_in_flight: int,
    limits: ParseLimits,
    stage: EmbedStage | None = None,
) -> pl.DataFrame:
    """The sources' rows as one frame (columns of all files; an empty frame for no columns),
    spooled into a folder of their own that is removed at the end."""
    spool = open_spool()
    try:
        frames = await load_frames(
            sources,
            lambda src: fetch_one(src, spool.path),
            spool=spool.path,
            budget=budget,
            files_in_flight=files_in_flight,
            limits=limits,
            stage=stage,
        )
    finally:
        spool.close()
    frames = [frame for frame in frames if frame.width]
    if not frames:
        return pl.DataFrame()
    return frames[0] if len(frames) == 1 else pl.concat(frames, how="diagonal_relaxed")


async def plan_files(
    run: Run, todo: list[Source], loaded: dict[str, str | None], fetch_one: FetchOne
) -> None:
    """Dry run: what a real run would do to each file (with --embed: texts and tokens, for
    which the new and changed files are downloaded and parsed, but nothing is written)."""
    for src in todo:
        result = FileResult(
            src.uri,
            "planned",
            bytes=src.size,
            etag=src.etag,
            table=run.table,
            action="changed" if src.uri in loaded else "new",
        )
        if run.embed is not None:
            try:
                result.texts, result.tokens = await run.embed.plan(await fetch_one(src))
            except BaseException as exc:
                if not is_contained(exc):
                    raise
                error = file_error(exc, src.uri, "read")
                result.status, result.error = status_of(error), ErrorInfo.of(error)
        run.report.files.append(result)


async def load_frames(
    sources: list[Source],
    fetch_one: FetchOne,
    *,
    spool: Path,
    budget: int,
    files_in_flight: int,
    limits: ParseLimits,
    stage: EmbedStage | None = None,
) -> list[pl.DataFrame]:
    """Each source as one frame, in the order given; the first file that fails raises (as a
    DreamBolt error naming it), and the others are stopped."""
    frames: list[pl.DataFrame] = [pl.DataFrame()] * len(sources)
    in_flight = ByteBudget(budget)
    unpack = dataclasses.replace(limits, max_bytes=budget)
    pending = iter(enumerate(sources))

    async def one(src: Source) -> pl.DataFrame:
        item = await fetch_one(src)
        try:
            if item.packed is not None and item.fmt is not None:
                # compressed beyond what is unpacked in memory: read it with the budget as cap
                item.frame = await asyncio.to_thread(
                    read_bytes, item.packed, item.fmt, name=src.uri, limits=unpack
                )
                item.packed = None
            if stage is not None:
                item = await stage.apply(item, spool)
            if item.frame is not None:
                return item.frame
            parts = await asyncio.to_thread(list, item.frames(limits))
            return parts[0] if len(parts) == 1 else pl.concat(parts, how="diagonal_relaxed")
        finally:
            item.discard()

    async def work() -> None:
        for index, src in pending:  # shared: each file is taken by exactly one worker
            cost = await in_flight.acquire(src.size * 4)
            try:
                frames[index] = await one(src)
            except BaseException as exc:
                if not is_contained(exc):
                    raise
                raise file_error(exc, src.uri, "read") from exc
            finally:
                await in_flight.release(cost)

    workers = [asyncio.create_task(work()) for _ in range(min(files_in_flight, len(sources)))]
    try:
        await asyncio.gather(*workers)
    finally:
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
    return frames
