"""The Ingester: expand, fetch, parse and write — overlapped, bounded, every file accounted for.

Stages overlap: up to `files_in_flight` objects download and parse concurrently (parsing runs
in worker threads; polars releases the GIL) while one writer owns the database on its own
thread. A byte budget bounds what is held in memory at once. Objects above `spool_threshold`
go to a temporary file and are parsed in batches while they are written, so a file of any size
costs memory in proportion to a batch, not to the file.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any, Literal, TypeVar

import polars as pl

from dreambolt.batching import Batches, discard, drain
from dreambolt.embed import AsyncCache, Embedder, EmbedStage, MemoryCache, make_embedder
from dreambolt.errors import InvalidS3UriError
from dreambolt.fetch import ByteBudget, Failed, Fetched, fetch
from dreambolt.formats.read import DEFAULT_LIMITS, NO_OPTIONS, CsvOptions, ParseLimits
from dreambolt.load import load_frames
from dreambolt.report import ErrorInfo, FileResult, IngestReport, Listener, SilentListener
from dreambolt.s3.client import S3Client
from dreambolt.s3.options import S3Options
from dreambolt.sinks.duckdb import DuckDBSink, validate_table_name
from dreambolt.sinks.embeddings import DuckDBEmbeddingCache
from dreambolt.sources import Source, default_table_name, expand
from dreambolt.spool import open_spool
from dreambolt.write import (
    GROUP_FILES,
    Run,
    Writer,
    file_error,
    is_contained,
    is_fatal,
    is_interruption,
    status_of,
)

__all__ = ["Ingester"]

log = logging.getLogger("dreambolt.ingest")
T = TypeVar("T")
OnError = Literal["skip", "abort"]
Mode = Literal["append", "replace"]
INGEST_CONCURRENCY = 64


class Ingester:
    """Loads files from S3 or local disk into polars frames (`load`) or a DuckDB table (`ingest`).

    Use as `async with Ingester(db=...) as ing:`. An S3 client is created on first need (so
    local files need no AWS configuration) unless one is passed in; a passed client stays open.
    Like any SQL table, the table's rows have no order: DuckDB writes a big file's row groups
    from several threads at once. `preserve_order=True` keeps each file's rows in file order,
    at some speed (about 20% on a 1 GiB CSV).
    """

    def __init__(
        self,
        db: str | Path = "dreambolt.duckdb",
        client: S3Client | None = None,
        on_error: OnError = "skip",
        *,
        format: str | None = None,
        listener: Listener | None = None,
        s3: S3Options | None = None,
        files_in_flight: int = 128,
        memory_budget: int = 1 << 30,
        spool_threshold: int = 64 << 20,
        embed: str | Embedder | None = None,
        embed_column: str | None = None,
        embed_base_url: str | None = None,
        preserve_order: bool = False,
        max_line_bytes: int = DEFAULT_LIMITS.max_record_bytes,
        max_columns: int = DEFAULT_LIMITS.max_columns,
        csv: CsvOptions = NO_OPTIONS,
    ) -> None:
        """Raises EmbeddingAuthError at once when `embed` names an API model and no key is set,
        and ValueError for an unknown model name or an invalid limit: before anything is
        downloaded. A file with a line (record) longer than `max_line_bytes` or more than
        `max_columns` columns fails alone, with a message saying which limit it passed.
        `s3` sets how the Ingester's own S3 client reaches S3 (ignored when `client` is given).
        `csv` overrides what is detected of CSV/TSV files (delimiter, header, lines to skip)
        and gives the encoding of text files."""
        if on_error not in ("skip", "abort"):
            raise ValueError(f"on_error must be 'skip' or 'abort', got {on_error!r}")
        self.limits = ParseLimits(max_record_bytes=max_line_bytes, max_columns=max_columns)
        self.embed_base_url = embed_base_url
        self.embedder = (
            make_embedder(embed, base_url=embed_base_url) if isinstance(embed, str) else embed
        )
        self._own_embedder = isinstance(embed, str)
        self.embed_column = embed_column
        self.db = str(db)
        self._db_uri = Path(self.db).resolve().as_uri()
        self.on_error = on_error
        self.format = format
        self.csv = csv
        self.listener: Listener = listener or SilentListener()
        self.files_in_flight = max(1, files_in_flight)
        self.memory_budget = memory_budget
        self.spool_threshold = spool_threshold
        self.preserve_order = preserve_order
        self.last_report: IngestReport | None = None
        self._client = client
        self._own_client = False
        self.s3_options = s3 or S3Options()
        self._client_lock = asyncio.Lock()
        self._sink: DuckDBSink | None = None
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="dreambolt-db")
        self._memory_cache = MemoryCache()

    async def __aenter__(self) -> Ingester:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Finish the database work in progress (it commits or rolls back whole), then close."""
        if self._own_embedder and self.embedder is not None:
            await self.embedder.aclose()
            self._own_embedder = False
        if self._own_client and self._client is not None:
            await self._client.close()
            self._client = None
        if self._sink is not None:
            sink, self._sink = self._sink, None
            await asyncio.get_running_loop().run_in_executor(self._executor, sink.close)
        self._executor.shutdown(wait=True)

    # --- helpers -------------------------------------------------------------------------

    async def _s3(self) -> S3Client:
        if self._client is not None:
            return self._client
        async with self._client_lock:
            if self._client is None:
                # Ingesting is mostly latency-bound (many objects, ~20 ms to first byte each,
                # ~60-90 MB/s per connection), so its own client keeps more requests in flight
                # than S3Client's general default.
                client = S3Client.from_options(self.s3_options, INGEST_CONCURRENCY)
                await client.__aenter__()
                self._client, self._own_client = client, True
        return self._client

    async def _db(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run sink work on the database thread; if cancelled, wait for it to finish whole."""
        future = asyncio.get_running_loop().run_in_executor(
            self._executor, partial(fn, *args, **kwargs)
        )
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            await asyncio.wait([future])
            raise

    async def sink(self) -> DuckDBSink:
        """The database, opened on first use (SinkError if it cannot be)."""
        if self._sink is None:
            self._sink = await self._db(DuckDBSink, self.db, preserve_order=self.preserve_order)
        return self._sink

    async def _fetch(
        self,
        src: Source,
        spool: Path,
        declared: str | None,
        *,
        in_memory: bool = False,
        defer_text: bool = False,
    ) -> Fetched:
        # load() returns the whole frame anyway: read the object in memory (up to the budget)
        # and parse it at once, which is faster than spooling it and parsing batches.
        threshold = self.memory_budget if in_memory else self.spool_threshold
        return await fetch(
            src,
            client=self._s3,
            spool=spool,
            declared=declared,
            spool_threshold=threshold,
            progress=partial(self.listener.advanced, src.uri),
            defer_text=defer_text,
            limits=self.limits,
            options=self.csv,
        )

    # --- load ----------------------------------------------------------------------------

    async def load(
        self,
        uri: str,
        *,
        format: str | None = None,
        embed: str | Embedder | None = None,
        embed_column: str | None = None,
    ) -> pl.DataFrame:
        """Read a file (or every file under a prefix/glob) into one polars DataFrame.

        With `embed` (or the Ingester's own embedder) an `embedding` column is added; vectors
        are cached in memory for the Ingester's lifetime (load writes nothing to the database).
        """
        sources, failures = await expand([uri], self._s3)
        if failures:
            raise failures[0][1]
        embedder = (
            make_embedder(embed, base_url=self.embed_base_url)
            if isinstance(embed, str)
            else embed or self.embedder
        )
        stage = None
        if embedder is not None:
            stage = EmbedStage(embedder, self._memory_cache, embed_column or self.embed_column)
        spool = open_spool()
        try:
            declared = format or self.format
            frames = await load_frames(
                sources,
                lambda src: self._fetch(src, spool.path, declared, in_memory=True),
                spool=spool.path,
                budget=self.memory_budget,
                files_in_flight=self.files_in_flight,
                limits=self.limits,
                stage=stage,
            )
        finally:
            spool.close()
            if isinstance(embed, str) and embedder is not None:
                await embedder.aclose()
        frames = [frame for frame in frames if frame.width]
        if not frames:
            return pl.DataFrame()
        return frames[0] if len(frames) == 1 else pl.concat(frames, how="diagonal_relaxed")

    # --- ingest --------------------------------------------------------------------------

    async def ingest(
        self,
        uris: str | Sequence[str],
        *,
        table: str | None = None,
        mode: Mode = "append",
        include: Sequence[str] = (),
        exclude: Sequence[str] = (),
        format: str | None = None,
        dry_run: bool = False,
    ) -> IngestReport:
        """Load every file the URIs name into `table`, exactly once; returns the per-file report.

        Raises InvalidS3UriError for unusable input, SinkError when the database cannot be used,
        and S3AuthError when there are no credentials at all (every file would fail alike).
        """
        inputs = [uris] if isinstance(uris, str) else list(uris)
        if not inputs:
            raise InvalidS3UriError(
                "no input given: name at least one S3 URI or local path, "
                "e.g. s3://my-bucket/path/to/file.csv"
            )
        if mode not in ("append", "replace"):
            raise ValueError(f"mode must be 'append' or 'replace', got {mode!r}")
        table = validate_table_name(table) if table is not None else default_table_name(inputs)
        started = time.monotonic()
        report = IngestReport(
            table=table, db=self.db, started_at=datetime.now(UTC), dry_run=dry_run
        )
        self.last_report = report
        opening = asyncio.ensure_future(self.sink())  # on the database thread, meanwhile
        try:
            sources, failures = await expand(inputs, self._s3, include=include, exclude=exclude)
        finally:
            sink = await opening  # an unusable database is reported first, as before
        own = {self._db_uri + suffix for suffix in ("", ".wal")}
        sources = [s for s in sources if s.uri not in own]  # never ingest the database itself
        for _, exc in failures:
            if is_fatal(exc):
                raise exc
        run = Run(
            table,
            uuid.uuid4().hex,
            report,
            Path(),
            ByteBudget(self.memory_budget),
            limits=self.limits,
        )
        run.rebuild = mode == "replace"  # done by the first file that loads, in its transaction
        loaded = {} if mode == "replace" else await self._db(sink.loaded, table)
        todo = [s for s in sources if s.etag is None or loaded.get(s.uri) != s.etag]
        pending = {s.uri for s in todo}
        writer = Writer(sink, self._db, self.listener)
        await writer.settle(
            run,
            [
                *(
                    FileResult(src.uri, "unchanged", etag=src.etag, table=table, bytes=src.size)
                    for src in sources
                    if src.uri not in pending
                ),
                *(
                    FileResult(shown, status_of(exc), error=ErrorInfo.of(exc), table=table)
                    for shown, exc in failures
                ),
            ],
            dry_run,
        )
        if failures and self.on_error == "abort" and not dry_run:
            # An input that could not be expanded is the first failure: nothing more is fetched.
            report.aborted = True
            writer.not_attempted(run, todo)
            todo = []
        if self.embedder is not None:
            cache = await self._db(DuckDBEmbeddingCache, sink.con)
            run.embed = EmbedStage(
                self.embedder, AsyncCache(cache, run=self._db), self.embed_column
            )
        spool = open_spool()
        run.spool = spool.path
        try:
            if dry_run:
                await self._plan(run, todo, loaded, format or self.format)
            elif todo:
                self.listener.planned(len(todo), sum(s.size for s in todo))
                await self._pipeline(run, writer, todo, format or self.format)
        except asyncio.CancelledError:
            report.interrupted = True  # the report holds every file that committed
            raise
        finally:
            spool.close()
            if run.embed is not None:
                report.embedding = {
                    "model": self.embedder.model if self.embedder else None,
                    **run.embed.stats.as_dict(),
                }
            report.seconds = time.monotonic() - started
        return report

    async def _plan(
        self, run: Run, todo: list[Source], loaded: dict[str, str | None], declared: str | None
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
                    result.texts, result.tokens = await run.embed.plan(
                        await self._fetch(src, run.spool, declared)
                    )
                except BaseException as exc:
                    if not is_contained(exc):
                        raise
                    error = file_error(exc, src.uri, "read")
                    result.status, result.error = status_of(error), ErrorInfo.of(error)
            run.report.files.append(result)

    async def _pipeline(
        self, run: Run, writer: Writer, todo: list[Source], declared: str | None
    ) -> None:
        async def produce(src: Source) -> None:
            cost = await run.budget.acquire(
                src.size * 4 if src.size <= self.spool_threshold else 64 << 20
            )
            began = time.monotonic()
            try:
                self.listener.started(src.uri, src.size)
                item: Fetched | Failed = await self._fetch(
                    src, run.spool, declared, defer_text=run.embed is None
                )
                if run.embed is not None and isinstance(item, Fetched):
                    item = await run.embed.apply(item, run.spool)
            except BaseException as exc:  # every error of one file becomes its result
                if is_interruption(exc):  # (a fatal one too: the writer then stops the run)
                    await run.budget.release(cost)
                    raise
                item = Failed(src, file_error(exc, src.uri, "read"))
            item.cost, item.seconds = cost, time.monotonic() - began
            await run.queue.put(item)

        # files_in_flight workers take the files in order (cheaper than a task per file
        # parked on a semaphore: with thousands waiting, every wake-up costs).
        pending = iter(todo)

        async def work() -> None:
            for src in pending:  # shared: each file is taken by exactly one worker
                await produce(src)

        producers = [
            asyncio.create_task(work()) for _ in range(min(self.files_in_flight, len(todo)))
        ]
        limit = GROUP_FILES if self.on_error == "skip" else 1  # abort: file by file
        batches = Batches(
            run.queue, expected=len(todo), limit=limit, limits=self.limits, feeders=producers
        )
        done: set[str] = set()
        try:
            while batches.left:
                batch = await batches.next()
                try:
                    results = await writer.write_batch(run, batch)
                finally:
                    for item in batch:
                        await run.budget.release(item.cost)
                for item, result in zip(batch, results, strict=True):
                    done.add(item.source.uri)
                    if isinstance(item, Failed) and is_fatal(item.error):
                        raise item.error
                    if result.status not in ("loaded", "unchanged") and self.on_error == "abort":
                        run.report.aborted = True
                if run.report.aborted:
                    break
        finally:
            for task in producers:
                task.cancel()
            await asyncio.gather(*producers, return_exceptions=True)
            discard([*await batches.close(), *drain(run.queue)])
        if run.report.aborted:
            writer.not_attempted(run, [src for src in todo if src.uri not in done])
