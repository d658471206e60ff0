"""The load ledger of a Delta root: the Delta table `ROOT/_dreambolt_loads`.

Same columns as the DuckDB ledger (`ledgerrows.LEDGER_SCHEMA`). Rows are appended, in one
commit per batch; a batch that replaces files rewrites those files' earlier rows with
`active = false` in the same commit as its new rows (an overwrite with a predicate on
`table_name` and `uri`), so at most one row per file is active.

The data table, not the ledger, says what is loaded: `repair` brings the ledger in line with
the data table's lineage after a run was killed between a data commit and its ledger commit.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime

import polars as pl
import pyarrow as pa
from deltalake import DeltaTable, write_deltalake

from dreambolt.report import FileResult
from dreambolt.sinks.deltaops import Tables, create, in_list, query, retry_conflicts, sql_string
from dreambolt.sinks.ledgerrows import LEDGER, LEDGER_SCHEMA, ledger_rows

__all__ = ["REPAIR_RUN", "DeltaLedger"]

REPAIR_RUN = "repair"  # the run_id of ledger rows `repair` adds
Lineage = Callable[[], dict[str, tuple[str | None, int]]]  # the data's uri -> (etag, rows)


class DeltaLedger:
    """Reads and writes `_dreambolt_loads` under a root."""

    def __init__(self, tables: Tables) -> None:
        self.tables = tables

    def append(self, rows: pl.DataFrame) -> None:
        """Append ledger rows in one commit (creating the ledger if needed)."""
        if rows.height:
            retry_conflicts(lambda: self._append(rows), what=LEDGER)

    def _append(self, rows: pl.DataFrame) -> None:
        snapshot = self.tables.snapshot(LEDGER)
        data = _shaped(rows).to_arrow()
        if snapshot is not None:
            write_deltalake(snapshot, data, mode="append")
            return
        create(self.tables, LEDGER, data)

    def replace(self, table: str, uris: Sequence[str] | None, rows: pl.DataFrame) -> None:
        """In one commit: every earlier row of `table` (of `uris` only, when given) made
        inactive, and `rows` (of `table`) added."""

        def attempt() -> None:
            snapshot = self.tables.snapshot(LEDGER)
            if snapshot is None:
                self._append(rows)
            else:
                self._replace(snapshot, table, uris, rows)

        retry_conflicts(attempt, what=LEDGER)

    @staticmethod
    def _replace(
        snapshot: DeltaTable, table: str, uris: Sequence[str] | None, rows: pl.DataFrame
    ) -> None:
        """`replace` on this snapshot (a commit refused if it is no longer the latest in a
        way that matters: another writer added rows of these files)."""
        where = f"table_name = {sql_string(table)}"
        if uris is not None:  # rewritten: the rows of `uris` and of the new rows' files
            where += f" AND {in_list('uri', sorted(set(uris) | set(rows['uri'])))}"
        old = _frame(query(snapshot, f"SELECT * FROM t WHERE {where}"))
        off = pl.lit(True) if uris is None else pl.col("uri").is_in(list(uris))
        old = _shaped(old).with_columns(active=pl.col("active") & ~off)
        write_deltalake(
            snapshot, pl.concat([old, _shaped(rows)]).to_arrow(), mode="overwrite", predicate=where
        )

    def repair(
        self, table: str, lineage: Lineage, *, write: bool = True
    ) -> tuple[dict[str, str | None], bool]:
        """Bring the ledger in line with the data table, whose `lineage()` is uri -> (etag,
        rows): a load in the data but not active in the ledger gets an active row; an active
        row whose rows are not in the data is made inactive. The ledger is read first and the
        data after (so the data is as new as the ledger or newer), and the fix is written on
        that ledger snapshot: if another writer's ledger rows of those files landed meanwhile,
        it is decided again. Returns the data's lineage and the active loads of files without
        rows (which only the ledger knows) as uri -> etag, and whether the ledger needed a fix
        (written only with `write`: a dry run or a listing writes nothing)."""
        return retry_conflicts(lambda: self._repair(table, lineage, write), what=LEDGER)

    def _repair(
        self, table: str, lineage: Lineage, write: bool
    ) -> tuple[dict[str, str | None], bool]:
        snapshot = self.tables.snapshot(LEDGER)
        live = {
            r["uri"]: (r["etag"], r["rows"] or 0)
            for r in self._active(snapshot, table).iter_rows(named=True)
        }
        present = lineage()
        missing = [u for u, (etag, _) in present.items() if live.get(u, (object(), 0))[0] != etag]
        stale = [
            u
            for u, (etag, rows) in live.items()
            if (u in present and present[u][0] != etag) or (u not in present and rows)
        ]
        if (missing or stale) and write:
            found = [
                FileResult(u, "loaded", rows=present[u][1], etag=present[u][0]) for u in missing
            ]
            new = ledger_rows(table, found, run_id=REPAIR_RUN, at=datetime.now(UTC), active=True)
            affected = sorted(set(missing) | set(stale))
            if snapshot is None:
                self._append(new)
            else:
                self._replace(snapshot, table, affected, new)
        loaded = {u: etag for u, (etag, _) in present.items()}
        for u, (etag, rows) in live.items():
            if u not in present and not rows:
                loaded[u] = etag
        return loaded, bool(missing or stale)

    def _active(self, snapshot: DeltaTable | None, table: str) -> pl.DataFrame:
        """uri, etag, rows of the table's active ledger rows at this snapshot."""
        if snapshot is None:
            return pl.DataFrame(schema={"uri": pl.String, "etag": pl.String, "rows": pl.Int64})
        return _frame(
            query(
                snapshot,
                f"SELECT uri, etag, rows FROM t WHERE table_name = {sql_string(table)} AND active",
            )
        )


def _frame(table: pa.Table) -> pl.DataFrame:
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    return frame


def _shaped(rows: pl.DataFrame) -> pl.DataFrame:
    """The ledger's columns, in order, with their types."""
    return rows.select(pl.col(name).cast(kind) for name, kind in LEDGER_SCHEMA.items())
