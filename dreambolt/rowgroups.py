"""A Parquet object on S3 decoded row group by row group while the rest of it downloads.

`open_parquet` reads the footer with one ranged GET of the object's tail (`TAIL_BYTES`, which
usually holds the whole footer; a bigger footer costs one more GET), plans the byte ranges of
each row group (only the chunks of the chosen columns, with `columns`) and starts fetching
them in file order: up to `readahead` bytes ahead of the decoder, each range pinned to the
version the listing saw (`s3.pinned`), at most part-size per GET, all sharing the client's
budget of requests in flight. `ParquetStream.frames` (on a worker thread) decodes each row
group as soon as its bytes are complete (`columnar.RowGroups`: the same checks as a whole file)
and drops them. So a big file costs memory in proportion to the read-ahead, not to its size,
and its decoding overlaps its transfer instead of following it.

Every byte of the object is fetched once when all columns are read, so its full checksum (when
S3 keeps one) is checked by combining the CRCs of the ranges (an object with a SHA checksum,
which needs every byte in order, is read as any other file instead); the last frame is handed
over only after that check, so a file that turns out bad never lands whole. With `columns`,
only some bytes are fetched and the checksum cannot be checked; the writer's page checksums
still are.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from asyncio import Task
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from dreambolt.formats.columnar import RowGroups
from dreambolt.formats.detect import FileFormat
from dreambolt.formats.limits import ParseLimits
from dreambolt.formats.parse_errors import translated
from dreambolt.rangefile import RangeFile
from dreambolt.s3.calls import S3Calls
from dreambolt.s3.objects import ObjectInfo, Progress
from dreambolt.s3.pinned import Pinned, pin
from dreambolt.s3.ranges import Span

__all__ = ["TAIL_BYTES", "ParquetStream", "open_parquet", "plan_units"]

TAIL_BYTES = 256 << 10  # first GET: the footer and the end of the last row group, usually
# GETs in flight per object: enough to fill a link at S3's 60-90 MB/s per connection, few
# enough that ranges land in file order (all at once, the first row group would be complete
# only when every range in the read-ahead is).
LANES = 16
# Rows of a row group decoded at a time, so a writer's 128 MB row group is never held whole:
# about a CSV block's worth. Decoding the 1 GiB bench file alone peaked at 442 MiB RSS in 64k-row
# batches, 563 in 256k, 729 in 1M; CPU was the same within noise (whole row groups included).
BATCH_ROWS = 1 << 16
_MAGIC = b"PAR1"
_PARQUET = FileFormat("parquet")


@dataclass(slots=True)
class Unit:
    """Row groups fetched together (one, or several small neighbours), and their ranges."""

    groups: list[int]
    spans: list[Span]
    landed: threading.Event = field(default_factory=threading.Event)

    @property
    def cost(self) -> int:
        return sum(last - first + 1 for first, last in self.spans)


def _chunk_span(column: pq.ColumnChunkMetaData) -> Span:
    start = column.data_page_offset
    if column.has_dictionary_page and 0 < column.dictionary_page_offset < start:
        start = column.dictionary_page_offset
    return start, start + column.total_compressed_size - 1


def _merged(spans: list[Span], hole: int) -> list[Span]:
    """Sorted spans, neighbours closer than `hole` bytes joined (one GET beats two)."""
    out: list[Span] = []
    for first, last in sorted(spans):
        if out and first <= out[-1][1] + 1 + hole:
            out[-1] = (out[-1][0], max(out[-1][1], last))
        else:
            out.append((first, last))
    return out


def _group_spans(
    meta: pq.FileMetaData, columns: Sequence[str] | None, hole: int
) -> list[list[Span]]:
    """Each row group's byte ranges: the chunks of the chosen top-level columns (two closer
    than `hole` bytes fetched as one)."""
    wanted = None if columns is None else set(columns)
    groups = []
    for g in range(meta.num_row_groups):
        group = meta.row_group(g)
        chunks = [
            _chunk_span(group.column(c))
            for c in range(group.num_columns)
            if wanted is None or group.column(c).path_in_schema.split(".")[0] in wanted
        ]
        groups.append(_merged(chunks, hole))
    return groups


def _clipped(spans: list[Span], end: int) -> list[Span]:
    """Spans cut off at byte `end` (exclusive): what is past it is held already."""
    return [(first, min(last, end - 1)) for first, last in spans if first < end]


def plan_units(
    meta: pq.FileMetaData, columns: Sequence[str] | None, *, held_from: int, part: int
) -> list[Unit]:
    """Row groups in file order, as units (a row group, or small neighbours joined up to half
    of `part` bytes), their spans (blocks, each fetched as GETs of at most `part` bytes) never
    past `held_from` (the tail, held).

    With every column (`columns` None) the units' spans cover bytes 0..held_from exactly once
    (row group g from its first byte to the next one's), so their CRCs combine to the object's.
    """
    # A hole up to 1 MiB costs less than another GET's first byte (S3 sends ~60 MB/s per
    # connection, after 15-20 ms); less with small parts.
    per_group = _group_spans(meta, columns, min(1 << 20, part // 8))
    if columns is None:
        starts = [spans[0][0] if spans else None for spans in per_group]
        edges, previous = [], 0
        for start in starts:  # a row group starts where it starts, in order, or right after
            previous = start if start is not None and start >= previous else previous
            edges.append(previous)
        edges[0:1] = [0] if edges else []
        ends = [*edges[1:], held_from]
        per_group = [[(a, b - 1)] if b > a else [] for a, b in zip(edges, ends, strict=True)]
    units: list[Unit] = []
    for g, spans in enumerate(per_group):
        spans = _clipped(spans, held_from)
        size = sum(last - first + 1 for first, last in spans)
        last_unit = units[-1] if units else None
        if last_unit is not None and last_unit.cost + size <= part // 2:
            last_unit.groups.append(g)
            last_unit.spans = _merged([*last_unit.spans, *spans], 0)
        else:
            units.append(Unit([g], spans))
    if columns is None and not units and held_from > 0:  # no row groups: still check every byte
        units.append(Unit([], [(0, held_from - 1)]))
    return units


def _pieces(span: Span, part: int) -> list[Span]:
    first, last = span
    count = -(-(last - first + 1) // part)
    edges = [first + (last - first + 1) * i // count for i in range(count + 1)]
    return [(edges[i], edges[i + 1] - 1) for i in range(count)]


class ParquetStream:
    """A Parquet object's row groups, fetched ahead on the loop and decoded on a thread."""

    def __init__(
        self,
        pinned: Pinned,
        file: RangeFile,
        units: list[Unit],
        *,
        columns: Sequence[str] | None,
        readahead: int,
        tail: tuple[int, int],
        progress: Progress,
    ) -> None:
        self.pinned, self.file, self.units, self.columns = pinned, file, units, columns
        self.uri = str(pinned.info.uri)
        self.readahead = readahead
        self.part = pinned.calls.part_size
        self.tail_crc = tail  # (crc, length) of the bytes held from the start (checksum)
        self.progress = progress
        self.loop = asyncio.get_running_loop()
        self._free = readahead
        self._lanes = asyncio.Semaphore(LANES)
        self._window = asyncio.Condition()
        self._crcs: dict[int, tuple[int, int]] = {}
        self._lock = threading.Condition()
        self._error: BaseException | None = None
        self._part_error: BaseException | None = None
        self._done = False
        self.failures: list[BaseException] = []  # what fetching raised: never a FormatError
        self.download = asyncio.create_task(self._fetch_all())
        self.download.add_done_callback(self._finished)

    # --- on the loop -------------------------------------------------------------------------

    async def _fetch_all(self) -> None:
        tasks: list[asyncio.Task[None]] = []
        try:
            for unit in self.units:
                await self._take(min(unit.cost, self.readahead))
                blocks = []
                for block in unit.spans:  # one buffer per block, filled by its parts in place
                    buffer = pa.allocate_buffer(block[1] - block[0] + 1)
                    view = memoryview(buffer).cast("B")
                    parts = [
                        asyncio.create_task(self._part(piece, block[0], view))
                        for piece in _pieces(block, self.part)
                    ]
                    for task in parts:
                        task.add_done_callback(self._part_ended)
                    blocks.append((block[0], buffer, parts))
                    tasks += parts
                tasks.append(asyncio.create_task(self._land(unit, blocks)))
            await asyncio.gather(*tasks)
            self._check_sum()
        except BaseException:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise

    async def _land(
        self, unit: Unit, blocks: list[tuple[int, pa.Buffer, list[Task[None]]]]
    ) -> None:
        """Hand a unit's blocks to the reader once all their parts are in."""
        for start, buffer, parts in blocks:
            await asyncio.gather(*parts)
            self.file.put(start, buffer)
        unit.landed.set()

    async def _part(self, span: Span, base: int, view: memoryview) -> None:
        target = view[span[0] - base : span[1] - base + 1]
        async with self._lanes:  # FIFO: the earliest ranges first, so row groups land in order
            await self.pinned.get_into(span, target, self.progress)
        checksum = self.pinned.checksum
        if self.columns is None and checksum is not None and checksum.is_crc:
            self._crcs[span[0]] = (checksum.crc(target), len(target))

    def _part_ended(self, task: asyncio.Task[None]) -> None:
        """A range failed: stop at once (the read-ahead may be waiting on the decoder, which
        waits for that range) and end with its error."""
        if task.cancelled() or task.exception() is None or self._part_error is not None:
            return
        self._part_error = task.exception()
        self.download.cancel()

    def _check_sum(self) -> None:
        checksum = self.pinned.checksum
        if self.columns is not None or checksum is None:
            return
        parts = [self._crcs[start] for start in sorted(self._crcs)] + [self.tail_crc]
        if not checksum.matches_parts(parts):
            raise self.pinned.mismatch()

    async def _take(self, amount: int) -> None:
        async with self._window:
            await self._window.wait_for(lambda: self._free >= amount)
            self._free -= amount

    async def _give(self, amount: int) -> None:
        async with self._window:
            self._free += amount
            self._window.notify_all()

    def _finished(self, task: asyncio.Task[None]) -> None:
        error = asyncio.CancelledError() if task.cancelled() else task.exception()
        if self._part_error is not None:
            error = self._part_error
        with self._lock:
            self._done, self._error = True, error
            if error is not None:
                self.failures.append(error)
            self._lock.notify_all()
        for unit in self.units:  # wake a decoder waiting for a unit that will never land
            unit.landed.set()

    def discard(self) -> None:
        """Stop the download (on the loop) and let go of what is held."""
        if not self.download.done():
            self.download.cancel()

    # --- on the decoding thread ---------------------------------------------------------------

    def fetch_missing(self, span: Span) -> bytes:
        """Bytes pyarrow asked for outside the plan, fetched now (blocks this thread)."""
        future = asyncio.run_coroutine_threadsafe(self.pinned.get(span, _ignore), self.loop)
        try:
            return future.result()
        except BaseException as exc:
            self.failures.append(exc)
            raise

    def _wait(self, unit: Unit) -> None:
        unit.landed.wait()
        with self._lock:
            if self._error is not None:
                raise self._error

    def _wait_done(self) -> None:
        with self._lock:
            self._lock.wait_for(lambda: self._done)
            if self._error is not None:
                raise self._error

    def _consumed(self, unit: Unit) -> None:
        """A unit's row groups are decoded: drop its bytes, free its share of the read-ahead."""
        for first, _ in unit.spans:
            self.file.drop(first)
        cost = min(unit.cost, self.readahead)
        asyncio.run_coroutine_threadsafe(self._give(cost), self.loop)

    def frames(self, limits: ParseLimits) -> Iterator[pl.DataFrame]:
        """The row groups as checked frames, in file order (at least one frame, maybe empty);
        the last one only once the download has ended and passed its checks. However the
        iteration ends (a corrupt row group, the consumer stopping), the download stops."""
        try:
            yield from self._decoded(limits)
        finally:
            if not self.download.done():
                with contextlib.suppress(RuntimeError):  # the loop is gone: nothing runs
                    self.loop.call_soon_threadsafe(self.discard)

    def _decoded(self, limits: ParseLimits) -> Iterator[pl.DataFrame]:
        with translated(self.uri, _PARQUET, passed=self.failures):
            groups = RowGroups(pa.PythonFile(self.file, mode="r"), limits, columns=self.columns)
        rows, held = 0, None
        for unit in self.units:
            self._wait(unit)
            for g in unit.groups:
                with translated(self.uri, _PARQUET, f" (row group {g + 1:,})", self.failures):
                    for frame in groups.frames(g, BATCH_ROWS):
                        rows += frame.height
                        if held is not None:
                            yield held
                        held = frame
            self._consumed(unit)
        with translated(self.uri, _PARQUET, passed=self.failures):
            groups.check(rows)
        self._wait_done()
        yield held if held is not None else groups.empty()


def _ignore(_: int) -> None:
    pass


async def open_parquet(
    calls: S3Calls,
    info: ObjectInfo,
    *,
    columns: Sequence[str] | None,
    readahead: int,
    progress: Progress,
    tail_bytes: int = TAIL_BYTES,
) -> ParquetStream | None:
    """Start reading a Parquet object row group by row group; None when its tail shows it is
    not a plain Parquet file (the caller reads it as any other file, and says what it is)."""
    pinned = await pin(calls, info, checksum=columns is None)
    if pinned.checksum is not None and not pinned.checksum.is_crc:
        return None  # a hash (SHA) needs every byte in order: read it whole instead
    size = info.size
    first = max(0, size - tail_bytes)
    tail = await pinned.get((first, size - 1), progress)
    if len(tail) < 12 or tail[-4:] != _MAGIC:
        return None
    footer = int.from_bytes(tail[-8:-4], "little") + 8
    if footer + 4 > size:
        return None
    if footer > len(tail):  # a big footer: fetch the rest of it
        first = size - footer
        tail = await pinned.get((first, size - len(tail) - 1), progress) + tail
    loop = asyncio.get_running_loop()

    def missing(span: Span) -> bytes:  # pyarrow reads the last 64 KiB for the footer
        return asyncio.run_coroutine_threadsafe(pinned.get(span, _ignore), loop).result()

    file = RangeFile(size, missing)
    file.put(first, tail)
    with translated(str(info.uri), _PARQUET):
        meta = await asyncio.to_thread(pq.read_metadata, pa.PythonFile(file, mode="r"))
    units = plan_units(meta, columns, held_from=first, part=calls.part_size)
    crc = (0, len(tail))
    if pinned.checksum is not None:
        crc = (await asyncio.to_thread(pinned.checksum.crc, tail), len(tail))
    stream = ParquetStream(
        pinned,
        file,
        units,
        columns=columns,
        readahead=readahead,
        tail=crc,
        progress=progress,
    )
    file.fetch_missing = stream.fetch_missing
    return stream
