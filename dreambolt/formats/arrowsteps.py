"""The checks and time bound of each step of reading a Parquet or Arrow IPC file with pyarrow
(`columnar`): what pyarrow read is validated in full before polars sees it, a file with no
columns or rows other than its footer says is refused, and each step runs within a time bound
(`deadline.within`) so a file that makes the reader loop fails instead of hanging."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import pyarrow as pa

from dreambolt.formats.deadline import Overran, within
from dreambolt.formats.limits import ParseLimits, Refused, Unreadable, check_arrow_schema

__all__ = ["bound", "check_rows", "check_schema", "step", "validate"]

T = TypeVar("T")
_SMALL_SECONDS, _SLOWEST = 5.0, 20e6  # see `bound`


def validate(data: pa.RecordBatch | pa.Table) -> None:
    """Check every value (offsets, UTF-8, dictionary indices...) column by column, to name
    the column a corrupt file got wrong (and first, cheaply, the shape of the whole)."""
    data.validate()
    for field, column in zip(data.schema, data.columns, strict=True):
        try:
            column.validate(full=True)
        except pa.ArrowInvalid as exc:
            raise Unreadable(f"column {field.name!r}: {exc}") from None


def check_schema(schema: pa.Schema, limits: ParseLimits, rows: int | None = None) -> None:
    """Refuse a file with no columns, too many or too deep, before reading its data."""
    if not len(schema):
        counted = f" (but {rows:,} rows)" if rows else ""
        raise Refused(f"it has no columns{counted}: there is nothing to load")
    check_arrow_schema(schema, limits)


def check_rows(found: int, said: int | None) -> None:
    if said is not None and found != said:
        raise Unreadable(
            f"it holds {found:,} rows where its footer says {said:,}: is it truncated or corrupt?"
        )


def bound(seconds: float | None, size: int) -> float | None:
    """The time bound of a step reading a file of `size` bytes: `seconds`, or less for a small
    file, 5 s plus 1 s per 20 MB (pyarrow reads 100 to 250 MB of Parquet a second here, on
    2 cores busy or not: a margin of ten or more), so a small file that makes the reader loop
    fails within seconds."""
    if seconds is None:
        return None
    return min(seconds, _SMALL_SECONDS + size / _SLOWEST)


def step(seconds: float | None, what: str, call: Callable[[], T]) -> T:
    """`call()` within `seconds`; pyarrow decoding a name that is not text (a corrupt schema)
    made `Unreadable`."""
    try:
        return within(seconds, call)
    except UnicodeDecodeError as exc:
        raise Unreadable(
            f"a name in it is not valid text ({exc.reason}; found reading "
            f"{what}): is the file corrupt?"
        ) from None
    except Overran as exc:
        raise Refused(
            f"reading {what} took more than {exc.seconds:g} s, the time bound for one step of "
            "a Parquet/IPC read: the file may be corrupt in a way that makes the reader loop "
            "(the read was abandoned)"
        ) from None
