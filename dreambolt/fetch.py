"""The fetch stage: bring one source in, parsed in memory if small, spooled to disk if big."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import Awaitable, Callable, Generator, Sequence
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from dreambolt.formats.detect import named_format
from dreambolt.formats.project import projected
from dreambolt.formats.read import (
    DEFAULT_LIMITS,
    HEAD_BYTES,
    NO_OPTIONS,
    CsvOptions,
    FileFormat,
    ParseLimits,
    decompress_capped,
    detect_format,
    is_text,
    iter_bytes,
    iter_file,
    iter_pieces,
    read_bytes,
)
from dreambolt.growing import GrowingBuffer, GrowingFile
from dreambolt.rowgroups import ParquetStream, open_parquet
from dreambolt.s3.calls import S3Calls
from dreambolt.s3.client import S3Client
from dreambolt.s3.objects import ObjectInfo, Progress
from dreambolt.s3.transfer import fill_object, read_object, spool_object
from dreambolt.sources import Source

__all__ = ["READAHEAD", "ByteBudget", "Failed", "Fetched", "fetch"]

READAHEAD = 128 << 20  # bytes of a Parquet object fetched ahead of its decoding, by default


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
    packed: bytes | None = None  # compressed, too big unpacked: parsed block by block when written
    path: Path | None = None
    fmt: FileFormat | None = None
    spooled: bool = False
    growing: GrowingFile | GrowingBuffer | None = None  # still downloading: into `path`, or memory
    stream: ParquetStream | None = None  # a Parquet object decoded as its row groups arrive
    download: asyncio.Task[object] | None = None
    cost: int = 0
    seconds: float = 0.0
    columns: Sequence[str] | None = None  # only these columns, in this order (None: all)

    def frames(self, limits: ParseLimits = DEFAULT_LIMITS) -> Generator[pl.DataFrame, None, None]:
        """The file's rows (the chosen columns): the parsed frame, or batches parsed from the
        file on disk."""
        for frame in self._frames(limits):
            yield projected(frame, self.columns, self.source.uri)

    def _frames(self, limits: ParseLimits) -> Generator[pl.DataFrame, None, None]:
        if self.frame is not None:
            yield self.frame
        elif self.stream is not None:
            yield from self.stream.frames(limits)
        elif self.raw is not None and self.fmt is not None:
            yield read_bytes(self.raw, self.fmt, name=self.source.uri, limits=limits)
        elif self.packed is not None and self.fmt is not None:
            yield from iter_bytes(self.packed, self.fmt, name=self.source.uri, limits=limits)
        elif isinstance(self.growing, GrowingBuffer) and self.fmt is not None:
            pieces = self.growing.pieces()  # parse while it downloads
            yield from iter_pieces(pieces, self.fmt, name=self.source.uri, limits=limits)
        elif self.path is not None and self.fmt is not None:
            pieces = None
            if self.growing is not None:
                if is_text(self.fmt):
                    pieces = self.growing.pieces()  # parse while it downloads
                else:
                    self.growing.wait()
            yield from iter_file(
                self.path, self.fmt, name=self.source.uri, pieces=pieces, limits=limits
            )

    def as_arrow_file(self, path: Path | None) -> Fetched:
        """This file, its rows now in the Arrow IPC spool file `path` (None: it has no rows).

        How the embed stage hands back a big file it re-spooled with an `embedding` column
        (`dreambolt.embed.EmbedStage.apply`); the caller has discarded this item's own copy.
        """
        if path is None:
            return Fetched(self.source, self.etag, self.size, frame=pl.DataFrame())
        fmt = FileFormat("ipc")
        return Fetched(self.source, self.etag, self.size, path=path, fmt=fmt, spooled=True)

    def discard(self) -> None:
        """Stop a download still running and remove the spooled copy, if any (on the loop)."""
        if self.download is not None and not self.download.done():
            self.download.cancel()
        if self.stream is not None:
            self.stream.discard()
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
    src: Source,
    *,
    client: Callable[[], Awaitable[S3Client]],
    spool: Path,
    declared: str | None,
    spool_threshold: int,
    progress: Progress,
    defer_text: bool = False,
    options: CsvOptions = NO_OPTIONS,
    limits: ParseLimits = DEFAULT_LIMITS,
    unpacked_limit: int | None = None,
    columns: Sequence[str] | None = None,
    readahead: int = READAHEAD,
) -> Fetched:
    """Bring one source in: parsed in memory if small, else spooled (or read in place).

    With `defer_text`, a small uncompressed CSV/TSV is returned unparsed (`raw`), for
    `formats.many.read_many` to parse together with others. A small compressed object is unpacked
    in memory only up to `unpacked_limit` bytes (default: `spool_threshold`); past that it is
    kept compressed (`packed`) and parsed block by block as it is written, so a decompression
    bomb costs memory in proportion to a block. `limits` apply to every parse. With `columns`,
    the file's frames hold only those columns (a missing one is a `FormatError`); a deferred
    `raw` text is projected by whoever parses it (`item.columns`). A Parquet object (by its
    name or `declared`) bigger than a part is decoded row group by row group as they arrive,
    at most `readahead` bytes ahead (`dreambolt.rowgroups`), only the chosen columns fetched.
    """
    big = src.size > spool_threshold
    if src.path is not None:  # a local file
        if big:
            with src.path.open("rb") as handle:
                fmt = detect_format(src.name, handle.read(HEAD_BYTES), declared, options)
            progress(src.size)
            return Fetched(src, src.etag, src.size, path=src.path, fmt=fmt, columns=columns)
        data: bytes | bytearray = await asyncio.to_thread(src.path.read_bytes)
        etag, size = src.etag, len(data)
        progress(size)
    else:
        assert src.info is not None
        s3 = await client()
        if _streamable(src, declared, s3.calls.part_size):
            stream = await open_parquet(
                s3.calls, src.info, columns=columns, readahead=readahead, progress=progress
            )
            if stream is not None:
                fmt = FileFormat("parquet")
                return Fetched(src, src.etag, src.size, fmt=fmt, stream=stream)
        if big:  # spooled, and parsed while the rest of it is still arriving
            target = spool / uuid.uuid4().hex
            growing = GrowingFile(target, src.size)
            download: asyncio.Task[object] = asyncio.create_task(
                spool_object(s3.calls, src.info, target, progress=progress, on_range=growing.landed)
            )
            download.add_done_callback(growing.finished)
            item = Fetched(
                src,
                src.etag,
                src.size,
                path=target,
                spooled=True,
                growing=growing,
                download=download,
                columns=columns,
            )
            try:
                await growing.head.wait()
                growing.check()
                with target.open("rb") as handle:
                    item.fmt = detect_format(src.name, handle.read(HEAD_BYTES), declared, options)
            except BaseException:
                item.discard()
                raise
            return item
        if _followable(src, declared, s3.calls.part_size):
            followed = await _follow(s3.calls, src, declared, options, progress, columns)
            if isinstance(followed, Fetched):
                return followed
            info, data = followed
        else:
            info, data = await read_object(s3.calls, src.info, progress=progress)
        etag, size = info.etag or None, info.size
    payload = data if isinstance(data, bytes) else bytes(data)
    del data
    fmt = detect_format(src.name, payload[:HEAD_BYTES], declared, options)
    limit = spool_threshold if unpacked_limit is None else unpacked_limit
    item = Fetched(src, etag, size, fmt=fmt, columns=columns)
    if defer_text and fmt.compression is None and fmt.kind in ("csv", "tsv"):
        item.raw = payload  # parsed later with others: no thread hop per small file
        return item
    return await asyncio.to_thread(_take_in, item, payload, limits, limit, defer_text)


def _streamable(src: Source, declared: str | None, part_size: int) -> bool:
    """Whether to read an object as a stream of row groups: Parquet by name (or declared),
    not compressed as a whole, bigger than one GET."""
    try:
        named = named_format(src.name, declared)
    except ValueError:  # an unknown declared format: said by `detect_format`, as for any file
        return False
    return (
        src.size > part_size
        and named is not None
        and named.kind == "parquet"
        and named.compression is None
    )


def _followable(src: Source, declared: str | None, part_size: int) -> bool:
    """Whether to parse an object held in memory while it downloads: text by its name (or
    declared), not compressed, bigger than one GET."""
    try:
        named = named_format(src.name, declared)
    except ValueError:  # an unknown declared format: said by `detect_format`, as for any file
        return False
    return src.size > part_size and named is not None and is_text(named) and not named.compression


async def _follow(
    calls: S3Calls,
    src: Source,
    declared: str | None,
    options: CsvOptions,
    progress: Progress,
    columns: Sequence[str] | None,
) -> Fetched | tuple[ObjectInfo, bytes]:
    """Download an object into memory, its ranges in order: text is returned at once, to be
    parsed block by block as its prefix lands; anything else (its content said otherwise than
    its name) is waited for and returned whole."""
    assert src.info is not None
    growing = GrowingBuffer(src.size)
    download: asyncio.Task[object] = asyncio.create_task(
        fill_object(calls, src.info, growing.view, progress=progress, on_range=growing.landed)
    )
    download.add_done_callback(growing.finished)
    item = Fetched(src, src.etag, src.size, growing=growing, download=download, columns=columns)
    try:
        await growing.head.wait()
        growing.check()
        fmt = detect_format(src.name, bytes(growing.view[:HEAD_BYTES]), declared, options)
        if is_text(fmt) and fmt.compression is None:
            item.fmt = fmt
            return item
        info = await download
    except BaseException:
        item.discard()
        raise
    assert isinstance(info, ObjectInfo)
    return info, bytes(growing.view)


def _take_in(
    item: Fetched, payload: bytes, limits: ParseLimits, unpacked_limit: int, defer_text: bool
) -> Fetched:
    """Unpack (up to `unpacked_limit`) and parse an object held in memory, or defer that."""
    fmt = item.fmt
    assert fmt is not None
    if fmt.compression is not None:
        plain = decompress_capped(payload, fmt.compression, unpacked_limit)
        if plain is None:
            item.packed = payload
            return item
        payload, fmt = plain, dataclasses.replace(fmt, compression=None)
        item.fmt = fmt
    if defer_text and fmt.kind in ("csv", "tsv"):
        item.raw = payload
    else:
        frame = read_bytes(payload, fmt, name=item.source.uri, limits=limits)
        item.frame = projected(frame, item.columns, item.source.uri)
    return item
