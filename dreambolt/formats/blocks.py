"""Regrouping a stream of text pieces: blocks of whole records, bounded joins, row counts.

`record_blocks` cuts CSV/TSV/NDJSON text into blocks that end on a record boundary (for CSV a
newline after an even number of quotes, the rule polars itself splits by), so each block parses
on its own; `joined` joins pieces within the memory budget; `csv_rows` counts a CSV body's rows.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator

from dreambolt.formats.limits import LineGuard, ParseLimits, too_big, too_long

__all__ = ["csv_rows", "joined", "record_blocks"]


def record_blocks(
    pieces: Iterable[bytes],
    *,
    quoted: bool,
    limits: ParseLimits,
    block_bytes: int,
    first_records: int,
    eol: bytes = b"\n",
) -> Iterator[bytes]:
    """Regroup pieces into blocks of about `block_bytes`, each ending on a record boundary.

    The first is stretched to hold `first_records` records (so inference sees what `read_bytes`
    sees). A record over `limits.max_record_bytes` is refused as soon as that is clear.
    Records end in `eol` (``\r`` for classic Mac text; ``\r\n`` ends in ``\n``).
    """
    pending: list[bytes] = []
    size = newlines = 0
    carry, first = b"", True
    guard = LineGuard(limits, quoted=quoted, eol=eol)
    for piece in pieces:
        guard.feed(piece)
        pending.append(piece)
        size += len(piece)
        newlines += piece.count(eol) if first else 0
        if size < block_bytes or (
            first and newlines <= first_records and size < limits.max_record_bytes
        ):
            continue
        scanned, buf = len(carry), b"".join([carry, *pending])
        pending, size = [], 0
        cut = _record_end(buf, scanned, quoted=quoted, eol=eol)
        if cut:
            first = False
            yield buf[:cut]
            carry = buf[cut:]
        elif len(buf) <= limits.max_record_bytes:
            carry = buf
        else:
            raise too_long(limits, quoted=quoted)
    rest = b"".join([carry, *pending])
    if rest or first:
        yield rest


def _record_end(buf: bytes, scanned: int, *, quoted: bool, eol: bytes = b"\n") -> int:
    """Return the offset past the last record boundary in `buf` after `scanned`, else 0.

    `buf` starts on a boundary; in CSV a newline after an even number of quotes ends a record.
    """
    if not quoted or b'"' not in buf:  # `in` is memchr: far cheaper than counting
        return buf.rfind(eol, scanned) + 1
    quotes, end, after = buf.count(b'"'), len(buf), 0
    while (newline := buf.rfind(eol, scanned, end)) >= 0:
        after += buf.count(b'"', newline, end)
        if (quotes - after) % 2 == 0:
            return newline + 1
        end = newline
    return 0


def csv_rows(body: bytes) -> int:
    """The rows polars will make of a quote-free CSV body ending in a newline (blank lines are
    skipped). Never more than polars makes, so equal totals mean equal counts file by file."""
    if b"\n\n" not in body and b"\n\r\n" not in body and not body.startswith((b"\n", b"\r\n")):
        return body.count(b"\n")  # no blank line: one row per line, counted in C
    return sum(1 for line in body.split(b"\n") if line.strip())


def joined(pieces: Iterable[bytes], limits: ParseLimits, guard: LineGuard | None) -> bytes:
    """Join pieces, refusing past `limits.max_bytes` and (with a guard) a line too long."""
    out, size = io.BytesIO(), 0
    for piece in pieces:
        size += len(piece)
        if limits.max_bytes is not None and size > limits.max_bytes:
            raise too_big(limits)
        if guard is not None:
            guard.feed(piece)
        out.write(piece)
    return out.getvalue()
