"""How deep JSON text nests, measured on the raw bytes before polars parses it.

Polars takes time cubic in the nesting depth of JSON, so a file nested too deep is refused from
its text: `json_too_deep` finds the first byte past the limit, with numpy, in bounded memory.
"""

from __future__ import annotations

import re

import numpy as np

__all__ = ["json_too_deep"]

_CHUNK = 4 * 2**20
_NOT_BACKSLASH = re.compile(rb"[^\\]")


def json_too_deep(data: bytes, limit: int, *, lines: bool) -> int | None:
    """The byte offset where JSON text first nests more than `limit` levels deep, else None.

    Brackets inside strings do not count; with `lines`, each line is a document (NDJSON). Done
    with numpy over chunks of `_CHUNK` bytes (never cut after a backslash), carrying the depth
    and whether a string is open from one chunk to the next.
    """
    if lines:  # a line cannot nest deeper than it has opening brackets
        openers = data.translate(None, _NOT_OPENERS)
        if max(map(len, openers.split(b"\n"))) <= limit:
            return None
    elif data.count(b"[") + data.count(b"{") <= limit:
        return None
    depth, in_string, start = 0, 0, 0
    while start < len(data):
        end = min(start + _CHUNK, len(data))
        if end < len(data) and data[end - 1] == 0x5C:
            match = _NOT_BACKSLASH.search(data, end)
            end = match.start() + 1 if match else len(data)
        found, depth, in_string = _scan(data[start:end], depth, in_string, limit, lines)
        if found >= 0:
            return start + found
        start = end
    return None


_NOT_OPENERS = bytes(b for b in range(256) if b not in b"[{\n")


def _scan(
    chunk: bytes, depth: int, in_string: int, limit: int, lines: bool
) -> tuple[int, int, int]:
    # Escapes first: \\ and \" (left to right, as JSON reads them) become two plain bytes.
    if b"\\" in chunk:
        chunk = chunk.replace(b"\\\\", b"__").replace(b'\\"', b"__")
    plain = np.frombuffer(chunk, np.uint8)
    quotes = np.flatnonzero(plain == 0x22)
    folded = plain | 0x20  # [ ] become { }
    brackets = np.flatnonzero((folded == 0x7B) | (folded == 0x7D))
    newlines = np.flatnonzero(plain == 0x0A) if lines else np.zeros(0, np.int64)
    if newlines.size:  # the state after the last newline: a fresh document
        after = quotes.size - np.searchsorted(quotes, newlines[-1])
        end_string, end_depth = int(after % 2), 0
    else:
        end_string, end_depth = int((in_string + quotes.size) % 2), depth
    if not brackets.size:
        return -1, end_depth, end_string
    before = np.searchsorted(quotes, brackets)  # quotes before each bracket
    line = np.searchsorted(newlines, brackets)  # newlines before it: 0 is the carried document
    first = line == 0
    if newlines.size:
        line_quotes = np.searchsorted(quotes, newlines)
        before = before - np.where(first, 0, line_quotes[np.maximum(line - 1, 0)])
    inside = (before + np.where(first, in_string, 0)) % 2 == 1
    step = np.where(folded[brackets] == 0x7B, 1, -1)
    step[inside] = 0
    levels = np.cumsum(step)
    if newlines.size:  # count from the start of each line
        starts = np.flatnonzero(np.diff(line, prepend=-1))
        group = np.zeros(brackets.size, np.int64)
        group[starts] = 1
        levels = levels - np.where(starts > 0, levels[starts - 1], 0)[np.cumsum(group) - 1]
    levels = levels + np.where(first, depth, 0)
    over = np.flatnonzero(levels > limit)
    if over.size:
        return int(brackets[over[0]]), depth, in_string
    if not newlines.size or newlines[-1] < brackets[-1]:
        end_depth = int(levels[-1])
    return -1, end_depth, end_string
