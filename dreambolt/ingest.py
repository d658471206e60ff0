"""The Ingester: expand, fetch, parse and write — overlapped, bounded, every file accounted for.

Stages overlap: up to `files_in_flight` objects download and parse concurrently (parsing runs
in worker threads; polars releases the GIL) while one writer owns the database on its own
thread. A byte budget bounds what is held in memory at once. Objects above `spool_threshold`
go to a temporary file and are parsed in batches while they are written, so a file of any size
costs memory in proportion to a batch, not to the file.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any, Literal, TypeVar

import polars as pl

from dreambolt.cluster.check import check_executor
from dreambolt.cluster.driver import distribute
from dreambolt.embed import AsyncCache, Embedder, EmbedStage, MemoryCache, make_embedder
from dreambolt.errors import InvalidS3UriError
from dreambolt.fetch import ByteBudget, Fetched, fetch
from dreambolt.formats.read import DEFAULT_LIMITS, NO_OPTIONS, CsvOptions, ParseLimits
from dreambolt.load import checked_columns, load_frame, plan_files
from dreambolt.pipeline import Pipeline
from dreambolt.report import IngestReport, Listener, SilentListener
from dreambolt.s3.client import S3Client
from dreambolt.s3.options import S3Options
from dreambolt.sinks import Sink, open_sink
from dreambolt.sinks.names import validate_table_name
from dreambolt.sources import Source, default_table_name, expand
from dreambolt.spool import open_spool
from dreambolt.triage import Polling, expanded, triage
from dreambolt.write import Run, Writer

__all__ = ["Ingester"]

T = TypeVar("T")
FetchOne = Callable[..., Awaitable[Fetched]]  # Ingester._fetch with the run's settings
OnError = Literal["skip", "abort"]
Mode = Literal["append", "replace"]
INGEST_CONCURRENCY = 64


class Ingester:
    """Loads files from S3 or local disk into polars frames (`load`) or a table (`ingest`).

    Use as `async with Ingester(db=...) as ing:`. An S3 client is created on first need (so
    local files need no AWS configuration) unless one is passed in; a passed client stays open.
    The destination is the one `db` names (`dreambolt.sinks.open_sink`: a DuckDB file), opened
    on first need, unless a `sink` (any `dreambolt.sinks.Sink`) is passed in: then `db` is not
    used, and the passed sink stays open (its owner closes it).
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
        sink: Sink | None = None,
        executor: Any | None = None,
    ) -> None:
        """Raises EmbeddingAuthError at once when `embed` names an API model and no key is set,
        and ValueError for an unknown model name or an invalid limit: before anything is
        downloaded. A file with a line (record) longer than `max_line_bytes` or more than
        `max_columns` columns fails alone, with a message saying which limit it passed.
        `s3` sets how the Ingester's own S3 client reaches S3 (ignored when `client` is given).
        `csv` overrides what is detected of CSV/TSV files (delimiter, header, lines to skip)
        and gives the encoding of text files.
        `executor` (a Dask `distributed.Client` or any `concurrent.futures.Executor`) spreads
        `ingest` over its workers in batches (`dreambolt.cluster`); it needs a Delta `db` and
        an `embed` given by name (ValueError otherwise)."""
        if on_error not in ("skip", "abort"):
            raise ValueError(f"on_error must be 'skip' or 'abort', got {on_error!r}")
        self.limits = ParseLimits(max_record_bytes=max_line_bytes, max_columns=max_columns)
        self.embed_base_url = embed_base_url
        self.embedder = (
            make_embedder(embed, base_url=embed_base_url) if isinstance(embed, str) else embed
        )
        self._own_embedder = isinstance(embed, str)
        self.embed_name = embed if isinstance(embed, str) else None
        self.embed_column = embed_column
        self.db = sink.name if sink is not None else str(db)
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
        self._sink: Sink | None = sink
        self._own_sink = sink is None
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="dreambolt-db")
        self._memory_cache = MemoryCache()
        self.executor = executor
        if executor is not None:
            check_executor(self, executor, embed)

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
        if self._sink is not None and self._own_sink:
            sink, self._sink = self._sink, None
            await asyncio.get_running_loop().run_in_executor(self._executor, sink.close)
        self._executor.shutdown(wait=True)

    async def client(self) -> S3Client:
        """The S3 client (made on first use, unless one was passed in)."""
        if self._client is not None:
            return self._client
        async with self._client_lock:
            if self._client is None:
                # Ingesting is mostly latency-bound (many objects, ~20 ms to first byte each):
                # its own client keeps more requests in flight than S3Client's default.
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

    async def sink(self) -> Sink:
        """The destination, opened on first use (SinkError if it cannot be)."""
        if self._sink is None:
            self._sink = await self._db(
                open_sink, self.db, preserve_order=self.preserve_order, s3=self.s3_options
            )
        return self._sink

    async def _fetch(
        self,
        src: Source,
        spool: Path,
        declared: str | None,
        *,
        in_memory: bool = False,
        defer_text: bool = False,
        columns: Sequence[str] | None = None,
    ) -> Fetched:
        # load() returns the whole frame anyway: read the object in memory (up to the budget)
        # and parse it at once, which is faster than spooling it and parsing batches.
        threshold = self.memory_budget if in_memory else self.spool_threshold
        item = await fetch(
            src,
            client=self.client,
            spool=spool,
            declared=declared,
            spool_threshold=threshold,
            progress=partial(self.listener.advanced, src.uri),
            defer_text=defer_text,
            limits=self.limits,
            options=self.csv,
            columns=columns,
            readahead=self.memory_budget // 8,
        )
        if self.embedder is not None and item.frame is not None:
            item.columns = None  # projected already: the `embedding` column added next stays
        return item

    # --- load ----------------------------------------------------------------------------

    async def load(
        self,
        uri: str,
        *,
        format: str | None = None,
        embed: str | Embedder | None = None,
        embed_column: str | None = None,
        columns: Sequence[str] | None = None,
    ) -> pl.DataFrame:
        """Read a file (or every file under a prefix/glob) into one polars DataFrame.

        With `embed` (or the Ingester's own embedder) an `embedding` column is added; vectors
        are cached in memory for the Ingester's lifetime (load writes nothing to the database).
        With `columns`, only those columns, in that order (Parquet reads no others); a file
        without one of them raises `FormatError` naming the file and the columns it has.
        """
        wanted = checked_columns(columns)
        sources, failures = await expand([uri], self.client)
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
        declared = format or self.format
        try:
            return await load_frame(
                sources,
                lambda src, spool, defer: self._fetch(
                    src, spool, declared, in_memory=True, defer_text=defer, columns=wanted
                ),
                budget=self.memory_budget,
                files_in_flight=self.files_in_flight,
                limits=self.limits,
                stage=stage,
            )
        finally:
            if isinstance(embed, str) and embedder is not None:
                await embedder.aclose()

    # --- ingest --------------------------------------------------------------------------

    async def ingest(
        self,
        uris: str | Sequence[str | Source],
        *,
        table: str | None = None,
        mode: Mode = "append",
        include: Sequence[str] = (),
        exclude: Sequence[str] = (),
        format: str | None = None,
        dry_run: bool = False,
        columns: Sequence[str] | None = None,
        polling: bool | Polling = False,
    ) -> IngestReport:
        """Load every file the URIs name into `table`, exactly once; returns the per-file report.

        With `columns`, only those columns of each file (and the lineage columns); a file
        without one of them is skipped with a `FormatError` naming the columns it has.
        `polling` (a service's poll): a prefix that matches nothing is no failure, and files
        found unchanged are reported but not recorded in the ledger again (a `triage.Polling`
        also holds files back). A `Source` (listed or HEADed already) is loaded as it is.

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
        wanted = checked_columns(columns)
        table = validate_table_name(table) if table is not None else default_table_name(inputs)
        started = time.monotonic()
        report = IngestReport(
            table=table, db=self.db, started_at=datetime.now(UTC), dry_run=dry_run
        )
        self.last_report = report
        opening = asyncio.ensure_future(self.sink())  # on the database thread, meanwhile
        sink, sources, failures = await expanded(
            opening, inputs, self.client, include, exclude, bool(polling)
        )
        budget = ByteBudget(self.memory_budget)
        run = Run(table, uuid.uuid4().hex, report, Path(), budget, limits=self.limits)
        run.rebuild = mode == "replace"  # done by the first file that loads, in its transaction
        writer = Writer(sink, self._db, self.listener)
        loaded = {} if mode == "replace" else await self._db(sink.loaded, table)
        todo = await triage(run, writer, sources, failures, loaded, dry_run, self.on_error, polling)
        await self._embedding(run, sink)
        try:
            if self.executor is not None and todo and not dry_run:
                await distribute(self, run, writer, todo, format=format, columns=wanted)
            else:
                fetch_one = partial(self._fetch, declared=format or self.format, columns=wanted)
                await self._execute(run, writer, todo, loaded, fetch_one)
        finally:
            report.seconds = time.monotonic() - started
        return report

    async def _embedding(self, run: Run, sink: Sink) -> None:
        if self.embedder is not None:
            cache = AsyncCache(await self._db(sink.embedding_cache), run=self._db)
            run.embed = EmbedStage(self.embedder, cache, self.embed_column)

    async def ingest_batch(
        self,
        sources: Sequence[Source],
        *,
        table: str,
        run_id: str,
        rebuild: bool = False,
        format: str | None = None,
        columns: Sequence[str] | None = None,
    ) -> IngestReport:
        """Load `sources` (listed already, not loaded yet) into `table` as one batch: the
        small files in one transaction. A cluster task's work (`dreambolt.cluster.task`)."""
        report = IngestReport(table=table, db=self.db, started_at=datetime.now(UTC))
        sink = await self.sink()
        budget = ByteBudget(self.memory_budget)
        run = Run(table, run_id, report, Path(), budget, rebuild=rebuild, limits=self.limits)
        await self._embedding(run, sink)
        writer = Writer(sink, self._db, self.listener)
        await self.write_together(run, writer, sources, format=format, columns=columns)
        return report

    async def write_together(
        self,
        run: Run,
        writer: Writer,
        sources: Sequence[Source],
        *,
        format: str | None,
        columns: Sequence[str] | None,
    ) -> None:
        """Fetch `sources` into `run`, then write them as one batch (`Pipeline.run_together`)."""
        fetch_one = partial(self._fetch, declared=format or self.format, columns=columns)
        spool = open_spool()
        run.spool = spool.path
        try:
            await self._pipeline(fetch_one).run_together(run, writer, list(sources))
        finally:
            spool.close()

    def _pipeline(self, fetch_one: FetchOne) -> Pipeline:
        return Pipeline(
            fetch=fetch_one,
            listener=self.listener,
            files_in_flight=self.files_in_flight,
            spool_threshold=self.spool_threshold,
            on_error=self.on_error,
            limits=self.limits,
        )

    async def _execute(
        self,
        run: Run,
        writer: Writer,
        todo: list[Source],
        loaded: dict[str, str | None],
        fetch_one: FetchOne,
    ) -> None:
        """Plan (dry run) or load the files, with a spool folder for the run."""
        report = run.report
        spool = open_spool()
        run.spool = spool.path
        try:
            if report.dry_run:
                await plan_files(run, todo, loaded, lambda src: fetch_one(src, run.spool))
            elif todo:
                self.listener.planned(len(todo), sum(s.size for s in todo))
                await self._pipeline(fetch_one).run(run, writer, todo)
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
