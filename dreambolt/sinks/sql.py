"""SQL text for the DuckDB sink: quoting names and strings, safe table names, transactions.

Table and column names come from the user and from the files' headers: every one is quoted
where it meets SQL, and a table name must also pass `validate_table_name`.
"""

from __future__ import annotations

import contextlib
from typing import Any

import duckdb

from dreambolt.sinks.names import validate_table_name

__all__ = ["Transaction", "literal", "quote", "validate_table_name"]


def quote(name: str) -> str:
    """Quote an SQL identifier (names are validated too; quoting is never skipped)."""
    return '"' + name.replace('"', '""') + '"'


def literal(text: str) -> str:
    """Quote an SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


class Transaction:
    """BEGIN … COMMIT, or ROLLBACK when the block raises (even on KeyboardInterrupt)."""

    def __init__(self, con: Any) -> None:
        self.con = con

    def __enter__(self) -> None:
        self.con.execute("BEGIN TRANSACTION")

    def __exit__(self, kind: object, exc: object, tb: object) -> None:
        if kind is None:
            try:
                self.con.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(duckdb.Error):  # DuckDB ends a failed COMMIT itself
                    self.con.execute("ROLLBACK")
                raise
        else:
            # The transaction may be over already (a failed COMMIT, a fatal error): the error
            # that ended it is the one to see.
            with contextlib.suppress(duckdb.Error):
                self.con.execute("ROLLBACK")
