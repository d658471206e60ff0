"""The load ledger's rows, as every destination writes them (light: polars only).

Columns: table_name, uri, etag, size (bytes), rows, status (`loaded`, `unchanged`, `skipped`,
`failed`), error_type, error_code, error, run_id, loaded_at (UTC) and active (this row
describes the rows now in the table).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import polars as pl

from dreambolt.report import FileResult

__all__ = ["LEDGER", "LEDGER_SCHEMA", "ledger_rows", "rows_of"]

LEDGER = "_dreambolt_loads"
_SCHEMA: dict[str, pl.DataType] = {
    "uri": pl.String(),
    "etag": pl.String(),
    "size": pl.Int64(),
    "rows": pl.Int64(),
    "status": pl.String(),
    "error_type": pl.String(),
    "error_code": pl.String(),
    "error": pl.String(),
}
LEDGER_SCHEMA: dict[str, pl.DataType] = {
    "table_name": pl.String(),
    **_SCHEMA,
    "run_id": pl.String(),
    "loaded_at": pl.Datetime("us", "UTC"),
    "active": pl.Boolean(),
}


def rows_of(results: Sequence[FileResult]) -> pl.DataFrame:
    """Ledger rows (without table, run and time) for these results."""
    return pl.DataFrame(
        {
            "uri": [r.uri for r in results],
            "etag": [r.etag for r in results],
            "size": [r.bytes for r in results],
            "rows": [r.rows for r in results],
            "status": [r.status for r in results],
            "error_type": [r.error.type if r.error else None for r in results],
            "error_code": [r.error.code if r.error else None for r in results],
            "error": [r.error.message if r.error else None for r in results],
        },
        schema=_SCHEMA,
    )


def ledger_rows(
    table: str, results: Sequence[FileResult], *, run_id: str, at: datetime, active: bool
) -> pl.DataFrame:
    """Whole ledger rows (every column, in order) for these results."""
    return rows_of(results).select(
        pl.lit(table, pl.String).alias("table_name"),
        pl.all(),
        pl.lit(run_id, pl.String).alias("run_id"),
        pl.lit(at, pl.Datetime("us", "UTC")).alias("loaded_at"),
        pl.lit(active, pl.Boolean).alias("active"),
    )
