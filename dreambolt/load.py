"""The paths that read files without writing them: `load()`, and a dry run's plan.

`load()`: every source as one polars frame, bounded like an ingest. `files_in_flight` sources
are fetched at a time and the bytes they hold in flight are bounded by the memory budget, so a
prefix of 10,000 objects is not fetched all at once; the frames themselves are the result. A
compressed file that would unpack past the budget is refused with a clear `FormatError`
instead of being held whole.

Small CSV/TSV files take the grouped path of an ingest: they arrive unparsed and are parsed many
at once (`write.parse_deferred`, `formats.many.read_many`), since a parser call costs about a
millisecond whatever the size. A group is parsed once it holds `GROUP_BYTES` (or
`GROUP_FILES` files), or when no download is under way to add to it; other files are parsed
alone, on worker threads, as they arrive.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

import polars as pl

from dreambolt.embed import EmbedStage
from dreambolt.fetch import ByteBudget, Failed, Fetched
from dreambolt.formats.project import projected
from dreambolt.formats.read import ParseLimits, read_bytes
from dreambolt.outcome import file_error, is_contained, status_of
from dreambolt.report import ErrorInfo, FileResult
from dreambolt.sources import Source
from dreambolt.spool import open_spool
from dreambolt.write import GROUP_FILES, Run, parse_deferred

__all__ = [
    "GROUPED_MAX",
    "GROUP_BYTES",
    "checked_columns",
    "load_frame",
    "load_frames",
    "plan_files",
]

GROUPED_MAX = 1 << 20  # a text file up to this size is left unparsed, to be parsed in a group
GROUP_BYTES = 4 << 20  # bytes of unparsed files a group gathers (at most a 16th of the budget)

FetchOne = Callable[[Source], Awaitable[Fetched]]
FetchAny = Callable[[Source, bool], Awaitable[Fetched]]  # fetch a source, maybe text unparsed
FetchInto = Callable[[Source, Path, bool], Awaitable[Fetched]]  # ... spooling into a folder


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
            lambda src, defer: fetch_one(src, spool.path, defer),
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
    fetch_one: FetchAny,
    *,
    spool: Path,
    budget: int,
    files_in_flight: int,
    limits: ParseLimits,
    stage: EmbedStage | None = None,
) -> list[pl.DataFrame]:
    """Each source as one frame, in the order given; the first file that fails raises (as a
    DreamBolt error naming it), and the others are stopped. `fetch_one(src, defer)` leaves a
    small CSV/TSV unparsed (`raw`) when `defer` is true: it is then parsed in a group."""
    loading = _Loading(sources, fetch_one, spool, budget, limits, stage)
    workers = [
        asyncio.create_task(loading.work()) for _ in range(min(files_in_flight, len(sources)))
    ]
    loading.busy = loading.running = len(workers)
    tasks = [*workers, asyncio.create_task(loading.parse_groups())]
    try:
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for _, item, _ in loading.waiting:
            item.discard()
    return loading.frames


class _Loading:
    """The state of one `load_frames`: workers fetch, a parse task parses the groups."""

    def __init__(
        self,
        sources: list[Source],
        fetch_one: FetchAny,
        spool: Path,
        budget: int,
        limits: ParseLimits,
        stage: EmbedStage | None,
    ) -> None:
        self.frames: list[pl.DataFrame] = [pl.DataFrame()] * len(sources)
        self.pending = iter(enumerate(sources))  # shared: each file is taken by one worker
        self.fetch_one = fetch_one
        self.spool = spool
        self.in_flight = ByteBudget(budget)
        self.limits = limits
        self.unpack = dataclasses.replace(limits, max_bytes=budget)
        self.stage = stage
        self.group_bytes = max(1, min(GROUP_BYTES, budget // 16))
        self.waiting: list[tuple[int, Fetched, int]] = []  # (index, unparsed file, its cost)
        self.held = 0  # bytes of the waiting files
        self.running = 0  # workers not finished
        self.busy = 0  # workers not waiting for budget, and not finished
        self.changed = asyncio.Event()
        self.changed.set()  # (no worker at all: nothing to wait for)

    async def work(self) -> None:
        """Fetch files until none is left; parse those not left for a group."""
        try:
            for index, src in self.pending:
                cost = await self._acquire(src.size * 4)
                try:
                    if not await self._one(index, src, cost):
                        continue  # waits in a group, which releases its cost
                except BaseException as exc:
                    await self.in_flight.release(cost)
                    if not is_contained(exc):
                        raise
                    raise file_error(exc, src.uri, "read") from exc
                await self.in_flight.release(cost)
        finally:
            self.running -= 1
            self._idle()

    async def _acquire(self, amount: int) -> int:
        """Take budget; meanwhile this worker adds nothing to the group."""
        self._idle()
        try:
            return await self.in_flight.acquire(amount)
        finally:
            self.busy += 1

    def _idle(self) -> None:
        self.busy -= 1
        if not self.busy:
            self.changed.set()  # nothing may come to add to the group: parse it

    async def _one(self, index: int, src: Source, cost: int) -> bool:
        """Fetch one file and parse it, or leave it for a group (then False)."""
        defer = self.stage is None and src.size <= GROUPED_MAX
        item = await self.fetch_one(src, defer)
        if item.raw is not None:
            self.waiting.append((index, item, cost))
            self.held += len(item.raw)
            if self.held >= self.group_bytes or len(self.waiting) >= GROUP_FILES:
                self.changed.set()
            return False
        try:
            self.frames[index] = await self._parsed(item)
        finally:
            item.discard()
        return True

    async def _parsed(self, item: Fetched) -> pl.DataFrame:
        uri = item.source.uri
        if item.packed is not None and item.fmt is not None:
            # compressed beyond what is unpacked in memory: read it with the budget as cap
            frame = await asyncio.to_thread(
                read_bytes, item.packed, item.fmt, name=uri, limits=self.unpack
            )
            item.frame, item.packed = projected(frame, item.columns, uri), None
        if self.stage is not None:
            item = await self.stage.apply(item, self.spool)
        if item.frame is not None:
            return item.frame
        parts = await asyncio.to_thread(list, item.frames(self.limits))
        return parts[0] if len(parts) == 1 else pl.concat(parts, how="diagonal_relaxed")

    async def parse_groups(self) -> None:
        """Parse the waiting files whenever a group is full, or nothing more is on its way."""
        while True:
            await self.changed.wait()
            self.changed.clear()
            if self.waiting and (
                not self.busy or self.held >= self.group_bytes or len(self.waiting) >= GROUP_FILES
            ):
                group, self.waiting, self.held = self.waiting, [], 0
                await self._parse_group(group)
            if not self.running and not self.waiting:
                return

    async def _parse_group(self, group: list[tuple[int, Fetched, int]]) -> None:
        try:
            parsed = await parse_deferred([item for _, item, _ in group], self.limits)
        except BaseException:
            for _, item, _ in group:
                item.discard()
            raise
        finally:
            await self.in_flight.release(sum(cost for _, _, cost in group))
        for (index, _, _), done in zip(group, parsed, strict=True):
            if isinstance(done, Failed):
                raise done.error
            if done.frame is not None:
                self.frames[index] = done.frame


def checked_columns(columns: Sequence[str] | None) -> list[str] | None:
    """The columns asked for, checked: None for all; ValueError for none, a repeated one, or
    a name that is not a string (a lone string is a common slip for a list of one)."""
    if columns is None:
        return None
    if isinstance(columns, str):
        raise ValueError(f"columns must be a list of names, got the string {columns!r}")
    wanted = list(columns)
    if not wanted or not all(isinstance(c, str) and c for c in wanted):
        raise ValueError(f"columns must be a non-empty list of column names, got {wanted!r}")
    if len(set(wanted)) != len(wanted):
        raise ValueError(f"columns names a column more than once: {wanted!r}")
    return wanted
