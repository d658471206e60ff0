"""Text in other encodings than UTF-8, turned into UTF-8 as it streams (the parsers read UTF-8).

The encoding is the user's (`CsvOptions.encoding`, `--encoding`), else UTF-16 when the text
starts with its byte order mark (unambiguous, as DuckDB and pandas take it), else UTF-8.
"""

from __future__ import annotations

import codecs
from collections.abc import Iterable, Iterator

from dreambolt.formats.limits import Unreadable

__all__ = ["encoding_of", "transcoded", "transcoded_bytes"]

_UTF16_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)


def encoding_of(start: bytes, declared: str | None) -> str | None:
    """The encoding to transcode from, or None when the text is (declared or taken as) UTF-8."""
    if declared is not None:
        name = codecs.lookup(declared).name
        return None if name == "utf-8" else name
    return "utf-16" if start.startswith(_UTF16_BOMS) else None


def transcoded(pieces: Iterable[bytes], encoding: str) -> Iterator[bytes]:
    """`pieces` decoded from `encoding` and encoded as UTF-8, piece by piece; a byte sequence
    that is not valid in `encoding` raises `UnicodeDecodeError`."""
    decoder = codecs.getincrementaldecoder(encoding)(errors="strict")
    try:
        for piece in pieces:
            text = decoder.decode(piece)
            if text:
                yield text.encode()
        tail = decoder.decode(b"", final=True)
    except UnicodeError as exc:
        raise _invalid(encoding, exc) from None
    if tail:
        yield tail.encode()


def transcoded_bytes(data: bytes, encoding: str) -> bytes:
    try:
        return data.decode(encoding).encode()
    except UnicodeError as exc:
        raise _invalid(encoding, exc) from None


def _invalid(encoding: str, exc: UnicodeError) -> Unreadable:
    reason = exc.reason if isinstance(exc, UnicodeDecodeError) else str(exc)
    return Unreadable(f"it is not {encoding} text ({reason}): is --encoding right?")
