"""Names of destinations and tables: checked before anything is opened or downloaded.

Light on purpose (no DuckDB, no polars): the CLI checks `--table` with it before it imports the
pipeline.
"""

from __future__ import annotations

import re

from dreambolt.errors import SinkError

__all__ = ["DELTA_PREFIX", "is_delta", "validate_table_name"]

DELTA_PREFIX = "delta:"  # --db delta:ROOT names a folder of Delta Lake tables

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


def validate_table_name(name: str) -> str:
    """Return `name` if it is a safe table name, else raise SinkError saying what is allowed."""
    if not _NAME.match(name) or name.lower().startswith("_dreambolt"):
        raise SinkError(
            f"invalid table name {name!r}: use letters, digits and underscores, starting with a "
            "letter or underscore, at most 63 characters (and not starting with _dreambolt), "
            "e.g. --table events_2024"
        )
    return name


def is_delta(db: object) -> bool:
    """Whether `db` (a --db value) names a Delta Lake root (`delta:ROOT`)."""
    return str(db).lower().startswith(DELTA_PREFIX)
