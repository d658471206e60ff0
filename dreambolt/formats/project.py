"""Column projection: only the columns a caller asked for, in the order asked (`columns=`)."""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from dreambolt.errors import FormatError

__all__ = ["projected"]


def projected(frame: pl.DataFrame, columns: Sequence[str] | None, name: str) -> pl.DataFrame:
    """`frame` with only `columns` (None: all of them); a column it lacks is a `FormatError`
    naming the file, the missing columns and the ones there are.

    A frame with no columns at all (an empty file) stays empty: there is nothing to choose from.
    """
    if columns is None or not frame.width:
        return frame
    if missing := [column for column in columns if column not in frame.columns]:
        there = ", ".join(map(repr, frame.columns[:20])) + (" ..." if frame.width > 20 else "")
        raise FormatError(
            f"{name}: it has no column {', '.join(map(repr, missing))}; its columns are {there}"
        )
    return frame.select(columns)
