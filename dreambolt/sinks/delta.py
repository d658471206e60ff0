"""The Delta Lake sink (a `Sink`): tables `ROOT/T` and the ledger `ROOT/_dreambolt_loads`.

**One commit per batch.** `write_many` (a group of small files) and `write_file` (one big file)
are each one Delta commit, whose app-transaction marker names the batch: a hash of the table,
the table's epoch and the batch's sorted (uri, etag) pairs. A batch whose marker is in the log
is not written again (a retried task, a re-run of the same batch).

**The data table decides what is loaded.** Delta cannot commit two tables at once, so the
lineage columns of the data table are the truth, and the ledger is written after the data. On
the snapshot the write will use, the batch's URIs are looked up in the data table: a file whose
(uri, etag) is there is `unchanged`; the others are written with `mode="overwrite"` and a
predicate `_source_uri IN (those files)`, which in the same commit removes an earlier
version's rows. The predicate also makes delta-rs refuse the commit if another writer added
rows of one of those files since the snapshot: the batch is then looked up and written again,
so two writers never both load a file. A crash between the data commit and the ledger leaves
a ledger gap, which `loaded` repairs (from the data table) on the next run.

**Epochs.** `mode="replace"` rebuilds the table (overwrite of the whole table and its schema)
and raises the table's epoch (app id `dreambolt-epoch`), so markers of batches committed
before the rebuild no longer count.

**Schema.** New columns are merged (`schema_mode="merge"`); a value that does not fit the
table's type fails the file before anything is written (`deltatypes.fit_to_table`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, TypeVar

import polars as pl
import pyarrow as pa
from deltalake import CommitProperties, DeltaTable, Transaction, write_deltalake

from dreambolt.errors import SinkError
from dreambolt.report import FileResult
from dreambolt.sinks.base import FileWrite, Written
from dreambolt.sinks.deltacache import DeltaEmbeddingCache
from dreambolt.sinks.deltaledger import DeltaLedger
from dreambolt.sinks.deltaops import (
    Tables,
    create_empty,
    in_list,
    is_delta_error,
    message,
    query,
    retry_conflicts,
)
from dreambolt.sinks.deltastage import Staged, stage_files, stage_frames
from dreambolt.sinks.deltastore import open_root
from dreambolt.sinks.deltatypes import arrow_schema
from dreambolt.sinks.ledgerrows import ledger_rows

if TYPE_CHECKING:
    from dreambolt.s3.options import S3Options

__all__ = ["EPOCH_APP", "DeltaSink"]

EPOCH_APP = "dreambolt-epoch"
T = TypeVar("T")
Stager = Callable[[datetime], Staged]  # stages the batch's rows (called once, when needed)


@dataclass
class _Batch:
    """One commit's files and what was decided about them on the snapshot."""

    table: str
    pairs: list[tuple[str, str | None, int]]  # (uri, etag, size) in the caller's order
    run_id: str
    rebuild: bool
    unchanged: set[str] = field(default_factory=set)
    replaced: set[str] = field(default_factory=set)

    @property
    def uris(self) -> list[str]:
        return [uri for uri, _, _ in self.pairs]

    def marker(self, epoch: int) -> str:
        """The batch's app id: in this epoch, or (a rebuild) in this run."""
        text = "\n".join(f"{u}\t{e}" for u, e, _ in sorted(self.pairs, key=lambda p: p[0]))
        scope = f"replace {self.run_id}" if self.rebuild else f"epoch {epoch}"
        key = f"{self.table}\n{scope}\n{text}"
        return "dreambolt-batch-" + hashlib.sha256(key.encode()).hexdigest()[:40]

    def committed(self, snapshot: DeltaTable, epoch: int) -> bool:
        """Whether this batch's commit is in the snapshot's log already."""
        version = snapshot.transaction_version(self.marker(epoch))
        return version is not None and (self.rebuild or version == epoch)


class DeltaSink:
    """Writes frames into Delta tables under a root and keeps the load ledger there."""

    def __init__(self, db: str, *, s3: S3Options | None = None) -> None:
        """Open the root `db` names (`delta:ROOT`); fatal SinkError if it cannot be used."""
        self.db = db
        self.root = open_root(db, s3)
        self._tables = Tables(self.root)
        self._ledger = DeltaLedger(self._tables)
        self._lagging: set[str] = set()  # tables whose ledger `loaded` found behind the data
        # The last lineage read, by table (its name and id) and version: a version never
        # changes, so a service's polls that find no new commit do not scan the table again.
        self._seen: tuple[tuple[str, str, int], dict[str, tuple[str | None, int]]] | None = None

    @property
    def name(self) -> str:
        return self.db

    def owns(self, uri: str) -> bool:
        """Whether `uri` is under the root (a table's own files are never input)."""
        return self.root.owns(uri)

    def close(self) -> None:
        """Nothing stays open between commits."""

    def embedding_cache(self) -> DeltaEmbeddingCache:
        return DeltaEmbeddingCache(self._tables)

    # --- reading state -------------------------------------------------------------------

    def loaded(self, table: str) -> dict[str, str | None]:
        """uri -> etag of every file whose rows are in `table` now (from the data table). A
        ledger that lags the data (a run killed between a data commit and its ledger commit)
        is repaired by this sink's first write to the table, not here: reading writes nothing.
        """
        found, lagging = self._guard(
            lambda: self._ledger.repair(table, lambda: self._lineage(table), write=False),
            "the load ledger",
            fatal=True,
        )
        if lagging:
            self._lagging.add(table)
        return found

    def repair_ledger(self, table: str, *, look: bool = False) -> None:
        """Write the ledger rows of files the data table holds and the ledger lacks (a run
        killed between a batch's data and ledger commits): if `loaded` found the ledger
        lagging, or (`look`) if it lags now. For writers that may not write again soon (a
        cluster's driver, a task whose batch was committed already)."""
        if look:
            self.loaded(table)
        self._repair(table)

    def _repair(self, table: str) -> None:
        """Repair the table's ledger if `loaded` found it lagging."""
        if table in self._lagging:
            self._guard(
                lambda: self._ledger.repair(table, lambda: self._lineage(table)),
                "the load ledger",
                fatal=True,
            )
            self._lagging.discard(table)

    def _lineage(self, table: str) -> dict[str, tuple[str | None, int]]:
        """uri -> (etag, rows) of the data table's rows now (not to be changed: it is kept)."""
        data = self._tables.snapshot(table)
        if data is None or "_source_uri" not in arrow_schema(data.schema()).names:
            return {}
        key = (table, str(data.metadata().id), data.version())
        if self._seen is not None and self._seen[0] == key:
            return self._seen[1]
        counts = query(
            data, "SELECT _source_uri, _source_etag, count(*) AS n FROM t GROUP BY 1, 2"
        ).to_pylist()
        found = {r["_source_uri"]: (r["_source_etag"], r["n"]) for r in counts}
        self._seen = (key, found)
        return found

    def batch_committed(self, table: str, files: Sequence[tuple[str, str | None]]) -> bool:
        """Whether a batch of exactly these (uri, etag) pairs committed in the table's
        current epoch (a cluster task retried or submitted twice)."""
        snapshot = self._guard(lambda: self._tables.snapshot(table), f"table {table!r}")
        if snapshot is None:
            return False
        epoch = snapshot.transaction_version(EPOCH_APP) or 0
        return _Batch(table, [(u, e, 0) for u, e in files], "", False).committed(snapshot, epoch)

    # --- writing -------------------------------------------------------------------------

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
        """Load one file in one commit (see the module's text); frames are taken only when
        the file is not loaded already."""
        batch = _Batch(table, [(uri, etag, size)], run_id, rebuild)
        return self._commit(batch, lambda now: stage_frames(frames, uri, etag, now))[0]

    def write_many(
        self,
        table: str,
        files: Sequence[FileWrite],
        *,
        run_id: str,
        rebuild: bool = False,
    ) -> list[Written]:
        """Load a group of small files in one commit; all or nothing."""
        batch = _Batch(table, [(f.uri, f.etag, f.size) for f in files], run_id, rebuild)
        return self._commit(batch, lambda now: stage_files(files, now))

    def record(self, table: str, results: Sequence[FileResult], *, run_id: str) -> None:
        """Append ledger rows for files that were not loaded (one commit)."""
        if results:
            self._tables.check_writable()
            self._repair(table)
            rows = ledger_rows(table, results, run_id=run_id, at=datetime.now(UTC), active=False)
            self._guard(lambda: self._ledger.append(rows), "the load ledger", fatal=True)

    # --- the commit ----------------------------------------------------------------------

    def _commit(self, batch: _Batch, stage: Stager) -> list[Written]:
        self._tables.check_writable()
        self._repair(batch.table)
        now = datetime.now(UTC)
        holder: list[Staged] = []
        try:
            loaded = self._guard(
                lambda: retry_conflicts(
                    lambda: self._attempt(batch, stage, holder, now),
                    what=f"{batch.table}: {', '.join(batch.uris[:3])}",
                ),
                f"table {batch.table!r}",
            )
        finally:
            for staged in holder:
                staged.close()
        rows = holder[0].rows_by_uri if holder else {}
        self._ledger_after(batch, loaded, rows, now)
        return [
            Written(0, False, unchanged=True)
            if uri in batch.unchanged
            else Written(rows.get(uri, 0), uri in batch.replaced)
            for uri in batch.uris
        ]

    def _attempt(self, batch: _Batch, stage: Stager, holder: list[Staged], now: datetime) -> bool:
        """One try on the latest snapshot; True when a data commit was made or not needed."""
        snapshot = self._tables.snapshot(batch.table)
        epoch = (snapshot.transaction_version(EPOCH_APP) or 0) if snapshot is not None else 0
        marker = batch.marker(epoch)
        if snapshot is not None and batch.committed(snapshot, epoch):
            batch.unchanged, batch.replaced = set(batch.uris), set()
            return False
        self._decide(batch, snapshot)
        todo = [uri for uri in batch.uris if uri not in batch.unchanged]
        if not todo:
            return False
        if not holder:
            holder.append(stage(now))
        staged = holder[0]
        if batch.rebuild:
            epoch += 1
        props = CommitProperties(app_transactions=_markers(batch, marker, epoch))
        if snapshot is None:  # then decide again, on the new table's first snapshot
            create_empty(self._tables, batch.table, staged.reader(None, batch.table).schema)
        schema = arrow_schema(snapshot.schema())
        rows = sum(staged.rows_by_uri.get(uri, 0) for uri in todo)
        if batch.rebuild:
            data = staged.reader(None, batch.table, set(todo))
            self._overwrite_all(snapshot, data, rows, props)
        elif rows:
            data = staged.reader(schema, batch.table, set(todo))
            write_deltalake(
                snapshot,
                data,
                mode="overwrite",
                predicate=in_list("_source_uri", todo),
                schema_mode="merge",
                commit_properties=props,
            )
        elif batch.replaced:
            snapshot.delete(in_list("_source_uri", sorted(batch.replaced)), commit_properties=props)
        return True

    def _decide(self, batch: _Batch, snapshot: DeltaTable | None) -> None:
        """Which files are loaded already, and which replace an earlier version, at this
        snapshot (a rebuild replaces everything)."""
        batch.unchanged, batch.replaced = set(), set()
        if snapshot is None or batch.rebuild:
            return
        if "_source_uri" not in arrow_schema(snapshot.schema()).names:
            return
        where = in_list("_source_uri", sorted(set(batch.uris)))
        found = query(
            snapshot, f"SELECT DISTINCT _source_uri, _source_etag FROM t WHERE {where}"
        ).to_pylist()
        etags: dict[str, set[str | None]] = {}
        for row in found:
            etags.setdefault(row["_source_uri"], set()).add(row["_source_etag"])
        for uri, etag, _ in batch.pairs:
            if uri not in etags:
                continue
            if etag is not None and etags[uri] == {etag}:
                batch.unchanged.add(uri)
            else:
                batch.replaced.add(uri)

    def _overwrite_all(
        self, snapshot: DeltaTable, data: pa.RecordBatchReader, rows: int, props: CommitProperties
    ) -> None:
        if rows:
            write_deltalake(
                snapshot, data, mode="overwrite", schema_mode="overwrite", commit_properties=props
            )
        else:  # every file of the rebuilding batch is empty: the old rows go, the schema stays
            snapshot.delete(commit_properties=props)

    def _ledger_after(
        self, batch: _Batch, loaded: bool, rows: dict[str, int], now: datetime
    ) -> None:
        """The batch's ledger rows, in one ledger commit after the data's."""
        done = [
            FileResult(uri, "loaded", rows=rows.get(uri, 0), bytes=size, etag=etag)
            for uri, etag, size in batch.pairs
            if uri not in batch.unchanged
        ]
        same = [
            FileResult(uri, "unchanged", bytes=size, etag=etag)
            for uri, etag, size in batch.pairs
            if uri in batch.unchanged
        ]
        frames = [
            ledger_rows(batch.table, done, run_id=batch.run_id, at=now, active=True),
            ledger_rows(batch.table, same, run_id=batch.run_id, at=now, active=False),
        ]
        new = pl.concat([f for f in frames if f.height]) if done or same else frames[0]
        if batch.rebuild and loaded:
            write = lambda: self._ledger.replace(batch.table, None, new)  # noqa: E731
        elif done and (batch.replaced or loaded):
            uris = sorted({r.uri for r in done})
            write = lambda: self._ledger.replace(batch.table, uris, new)  # noqa: E731
        elif new.height:
            write = lambda: self._ledger.append(new)  # noqa: E731
        else:
            return
        self._guard(write, "the load ledger", fatal=True)

    def _guard(self, fn: Callable[[], T], what: str, *, fatal: bool = False) -> T:
        """Run `fn`; a delta-rs failure becomes a SinkError naming `what` (fatal when the
        store itself failed: every later write would fail too)."""
        try:
            return fn()
        except SinkError:
            raise
        except Exception as exc:
            if not is_delta_error(exc):
                raise
            store = isinstance(exc, OSError)
            raise SinkError(
                f"{self.db}: cannot write {what}: {message(exc)}"
                + ("; check the credentials, the bucket and the network" if store else ""),
                code="IOError" if store else "DeltaError",
                fatal=fatal or store,
            ) from exc


def _markers(batch: _Batch, marker: str, epoch: int) -> list[Transaction]:
    marks = [Transaction(marker, epoch)]
    if batch.rebuild:
        marks.append(Transaction(EPOCH_APP, epoch))
    return marks
