"""Files that load differently from the reference reader on purpose.

Keys are file ids as `collect` makes them (``dist:path/inside/site-packages``), or fnmatch
patterns over them (``moto:moto/emr/resources/*.json.gz``); values say why the difference is a
documented, deliberate choice (name the README section that documents it). A file listed here
may have any outcome but `refused-unnamed`: a refusal must always name the file.
"""

from __future__ import annotations

from fnmatch import fnmatchcase

KNOWN: dict[str, str] = {
    # README, "Reading files other tools wrote": an empty file or an empty JSON array has no
    # columns and no rows (nothing to load); DuckDB invents a VARCHAR column named `json`.
    "moto:moto/rds/resources/option_group_options/postgres.json.gz": (
        "an empty JSON array ([]) has no columns; DuckDB invents a column `json`"
    ),
    "pyarrow:pyarrow/tests/data/orc/TestOrcFile.emptyFile.jsn.gz": (
        "an empty file has no columns; DuckDB invents a column `json`"
    ),
    "written:pandas/split/*.json": (
        "a list mixing strings and numbers is read by polars as a list of text values; DuckDB "
        "keeps each element as JSON text (README, JSON)"
    ),
}


def known_reason(file_id: str) -> str | None:
    """The documented reason why `file_id` may load differently, or None."""
    if file_id in KNOWN:
        return KNOWN[file_id]
    for pattern, reason in KNOWN.items():
        if fnmatchcase(file_id, pattern):
            return reason
    return None
