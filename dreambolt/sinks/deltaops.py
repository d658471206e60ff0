"""Small operations on Delta tables that the Delta sink, its ledger and its cache share.

`Tables` keeps one `DeltaTable` per table URI and brings it up to the latest version before
each use (`update_incremental` reads only the new log entries). A check and the write that
depends on it must use the SAME snapshot: delta-rs detects a conflicting commit only against
the version the writing `DeltaTable` was loaded at.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterable
from typing import NoReturn, TypeVar

import duckdb
import pyarrow as pa
from deltalake import DeltaTable, write_deltalake
from deltalake.exceptions import CommitFailedError, DeltaError, TableNotFoundError

from dreambolt.errors import SinkError, redact
from dreambolt.sinks.deltastore import DeltaRoot

__all__ = [
    "COMMIT_TRIES",
    "Conflict",
    "Tables",
    "create",
    "create_empty",
    "in_list",
    "message",
    "query",
    "retry_conflicts",
    "sql_string",
]

T = TypeVar("T")
log = logging.getLogger("dreambolt.sink")
COMMIT_TRIES = 60  # tries of a commit that other writers keep beating
# Every batch adds an app-transaction marker, which every snapshot carries; readers that honour
# this standard property forget markers older than 30 days, so the log state does not grow
# without end. Safe: a marker only spares a look at the data, which decides what is loaded.
TABLE_PROPERTIES = {"delta.setTransactionRetentionDuration": "interval 30 days"}
_FIRST_DELAY, _MAX_DELAY = 0.02, 1.0


class Conflict(Exception):
    """Another writer committed first in a way this commit depends on: read again, retry."""


class Tables:
    """One `DeltaTable` per table URI under a root, refreshed before each use."""

    def __init__(self, root: DeltaRoot) -> None:
        self.root = root
        self._open: dict[str, DeltaTable] = {}
        self._credentials = root.refreshed()

    def snapshot(self, name: str) -> DeltaTable | None:
        """The table `name` at its latest version, or None if it does not exist yet."""
        changed = self.root.refreshed()
        if changed != self._credentials:  # renewed credentials: tables are opened again
            self._open.clear()
            self._credentials = changed
        uri = self.root.table_uri(name)
        table = self._open.get(uri)
        if table is not None:
            try:
                table.update_incremental()
                return table
            except (TableNotFoundError, OSError):  # removed behind our back: look again
                del self._open[uri]
        try:
            table = DeltaTable(uri, storage_options=self.root.storage)
        except TableNotFoundError:
            return None
        self._open[uri] = table
        return table

    def check_writable(self) -> None:
        """Before a write (see `DeltaRoot.check_writable`)."""
        self.root.check_writable()

    def forget(self, name: str) -> None:
        self._open.pop(self.root.table_uri(name), None)

    def uri(self, name: str) -> str:
        return self.root.table_uri(name)


def create(tables: Tables, name: str, data: pa.Table) -> None:
    """Create table `name` with `data` (an Arrow table or stream), for tables whose rows may
    be appended by any writer in any order (the ledger, the embedding cache): when another
    writer creates it meanwhile, delta-rs appends to it instead."""
    write_deltalake(tables.uri(name), data, mode="append", storage_options=tables.root.storage)


def create_empty(tables: Tables, name: str, schema: pa.Schema) -> NoReturn:
    """Create table `name`, without rows, if it does not exist; then `Conflict`, so that the
    caller reads the table (its own or another writer's) and decides again on a snapshot.

    A data table is never created by a write with rows: delta-rs turns the write that loses
    the race to create a table into an append to the winner's table, unchecked, so two
    writers could both load a file."""
    columns = pa.schema([f for f in schema if not pa.types.is_null(f.type)])
    try:
        DeltaTable.create(
            tables.uri(name),
            columns,
            mode="ignore",
            storage_options=tables.root.storage,
            configuration=TABLE_PROPERTIES,
        )
    except Exception as exc:
        if not is_delta_error(exc) or tables.snapshot(name) is None:
            raise
    raise Conflict(f"{name} was just created")


def query(table: DeltaTable, sql: str) -> pa.Table:
    """Run `sql` (the table is `t`) on the table's current snapshot.

    DuckDB runs it over the snapshot's Arrow dataset (columns and filters pushed down to the
    Parquet files): delta-rs's own engine (`QueryBuilder`) holds the GIL while it waits on
    S3, which would stall the event loop's downloads for as long."""
    with duckdb.connect() as con:
        con.execute("SET TimeZone = 'UTC'")  # timestamps come back as the table holds them
        con.register("t", table.to_pyarrow_dataset())
        return con.sql(sql).to_arrow_table()


def sql_string(value: str) -> str:
    """`value` as a SQL string literal."""
    return "'" + value.replace("'", "''") + "'"


def in_list(column: str, values: Iterable[str]) -> str:
    """A predicate: `column` is one of `values` (which must not be empty). The values' range
    comes first: with it a query skips the data files whose statistics (the column's min/max in
    the Delta log) lie outside it, which a long IN list alone (over ~50 values: a batch holds up
    to 256 files) does not let DuckDB do over the Arrow dataset (80 new files looked up in a
    19 M-row table: 0.04 s of CPU, not 1.7-2.3 s)."""
    ordered = sorted(set(values))
    low, high = sql_string(ordered[0]), sql_string(ordered[-1])
    listed = ", ".join(sql_string(v) for v in ordered)
    return f"({column} >= {low} AND {column} <= {high} AND {column} IN ({listed}))"


def retry_conflicts(attempt: Callable[[], T], *, what: str) -> T:
    """Run `attempt` until it does not lose a commit race (`Conflict` or delta-rs's
    CommitFailedError); each try reads the table afresh. A fatal SinkError after COMMIT_TRIES."""
    delay = _FIRST_DELAY
    for tries in range(1, COMMIT_TRIES + 1):
        try:
            return attempt()
        except (Conflict, CommitFailedError) as exc:
            if tries == COMMIT_TRIES:
                raise SinkError(
                    f"{what}: other writers kept committing first ({message(exc)}); tried "
                    f"{COMMIT_TRIES} times. Run fewer writers on one table at once",
                    code="CommitConflict",
                ) from exc
            log.info("%s: another writer committed first (%s); trying again", what, message(exc))
        time.sleep(delay * random.uniform(0.5, 1.5))
        delay = min(delay * 2, _MAX_DELAY)
    raise AssertionError("unreachable")


def message(exc: BaseException) -> str:
    """delta-rs's message, first line only (it adds coloured cause chains and backtraces),
    with secrets removed."""
    lines = [line for line in str(exc).strip().splitlines() if line.strip()]
    return redact(lines[0] if lines else type(exc).__name__)


def is_delta_error(exc: BaseException) -> bool:
    """Whether `exc` came from delta-rs (its classes report the module `_internal`; some
    failures, such as schema errors, are plain `Exception`s) or from reading a table's files
    (`query`: DuckDB over the Arrow dataset, e.g. a data file that is not Parquet)."""
    return isinstance(exc, DeltaError | OSError | duckdb.Error) or type(exc) is Exception
