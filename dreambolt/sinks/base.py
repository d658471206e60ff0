"""The `Sink` protocol: all the writer knows of the destination it writes to.

A sink keeps data tables and, beside them, the load ledger (`_dreambolt_loads`). DuckDB
implements it (`dreambolt.sinks.duckdb.DuckDBSink`); `dreambolt.sinks.open_sink` chooses the
implementation from the `--db` string. Nothing above `sinks/` names an implementation.

**Tables.** A data table holds the files' columns plus the lineage columns `_source_uri`,
`_source_etag` and `_ingested_at` of every row. A file whose frames bring columns the table
lacks adds them; a value that cannot be stored in a column's type without loss fails the file
(SinkError naming the file and the column), never silently converts.

**The ledger** has one row per file attempt: table, uri, etag, size (bytes), rows, status
(`loaded`, `unchanged`, `skipped`, `failed`), error type, error code and error message (for
files that were not loaded), run id, time, and `active`: true on the row of the load whose rows
are in the table now. `loaded(table)` reads the active rows: the (uri, etag) of every file
loaded, which is how a re-run knows a file is `unchanged`.

**Atomic** means: a file's rows and its ledger row become visible together or not at all, also
if the process is killed in between, and a file whose etag changed has its old rows removed in
that same commit (`Written.replaced`). `write_many` commits a whole group so: every file of it,
or, if anything fails, none (the caller then writes the files one by one to find the culprit).
With `rebuild` (mode="replace") the old table is dropped in the first committing write, so a
replace whose files all fail leaves the old table in place. Every write first re-reads the
ledger for its files under the table's write claim: a file another writer of the same
destination loaded meanwhile is reported `unchanged` and not written twice.

**Threads.** A sink is used from one thread at a time (the Ingester runs every call on its one
database thread); the calls block. **Errors** are DreamBolt errors: `SinkError` with `fatal`
set when no later file could be written either (the disk is full, the destination cannot be
opened: the run stops), a non-fatal `SinkError` for one file's rows, and whatever the frames
raise (`FormatError`...), with the file's transaction rolled back.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import polars as pl

    from dreambolt.embed import SyncEmbeddingCache
    from dreambolt.report import FileResult

__all__ = ["FileWrite", "Sink", "Written"]


@dataclass(frozen=True, slots=True)
class FileWrite:
    """One small file's parsed rows, for `Sink.write_many`."""

    uri: str
    etag: str | None
    size: int
    frame: pl.DataFrame


@dataclass(frozen=True, slots=True)
class Written:
    """What `write_file`/`write_many` did with one file."""

    rows: int
    replaced: bool  # an earlier version's rows were replaced
    unchanged: bool = False  # (uri, etag) was already loaded when this write took its claim:
    #                          nothing written (rows 0; the ledger has an 'unchanged' row)


class Sink(Protocol):
    """A destination for ingested files: data tables, lineage and the load ledger.

    Opened by `dreambolt.sinks.open_sink(db)`; `close` ends it. See the module's text for what
    the ledger holds and what atomic means.
    """

    @property
    def name(self) -> str:
        """The destination as the user named it (`--db`): for messages and the report."""
        ...

    def owns(self, uri: str) -> bool:
        """Whether `uri` (a source's canonical URI) is one of the destination's own files,
        which an ingest must never read as input (the database file, its WAL...)."""
        ...

    def loaded(self, table: str) -> dict[str, str | None]:
        """uri -> etag of every file whose rows are in `table` now (its active ledger rows)."""
        ...

    def write_file(
        self,
        table: str,
        *,
        uri: str,
        etag: str | None,
        size: int,
        frames: Iterable[pl.DataFrame],
        run_id: str,
        rebuild: bool = False,
    ) -> Written:
        """Load one file, streamed frame by frame, with its ledger row, atomically.

        If (uri, etag) is loaded already, nothing is written, no frame is taken from `frames`
        and the result is `unchanged` (with an 'unchanged' ledger row); an earlier version of
        the file (another etag) has its rows replaced. Memory stays bounded by a frame.
        """
        ...

    def write_many(
        self,
        table: str,
        files: Sequence[FileWrite],
        *,
        run_id: str,
        rebuild: bool = False,
    ) -> list[Written]:
        """Load a group of small in-memory files, each with its ledger row, in one atomic
        commit; one `Written` per file, in order. All or nothing: if it raises, none landed."""
        ...

    def record(self, table: str, results: Sequence[FileResult], *, run_id: str) -> None:
        """Add ledger rows (not active) for files that were not loaded: skipped, failed, or
        found unchanged before any write. Raises a fatal SinkError if the ledger cannot be
        written (then nothing can)."""
        ...

    def embedding_cache(self) -> SyncEmbeddingCache:
        """The destination's cache of embedding vectors by (model, sha256 of the text), kept
        between runs; called, like its methods, from the sink's thread."""
        ...

    def close(self) -> None:
        """Close the destination; a write in progress on another thread is not interrupted
        (call it once the writes are done). Uncommitted work is rolled back."""
        ...
