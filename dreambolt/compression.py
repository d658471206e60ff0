"""Streaming decompression of gzip, zstd and bz2 data, as the formats stage needs it."""

from __future__ import annotations

import bz2
import os
import tempfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol

import zstandard

__all__ = ["decompressed", "decompressed_copy"]

READ_BYTES = 2**20


class _Decompressor(Protocol):
    @property
    def eof(self) -> bool: ...
    @property
    def unused_data(self) -> bytes: ...
    def decompress(self, data: bytes, /) -> bytes: ...


_DECOMPRESSORS: dict[str, Callable[[], _Decompressor]] = {
    "gzip": lambda: zlib.decompressobj(wbits=31),
    "zstd": lambda: zstandard.ZstdDecompressor().decompressobj(),
    "bz2": bz2.BZ2Decompressor,
}


def decompressed(pieces: Iterable[bytes], compression: str) -> Iterator[bytes]:
    """Decompress a stream piece by piece, across gzip members and zstd/bz2 frames.

    Unlike zstandard's stream reader it notices a truncated last frame (`EOFError`); unlike
    `ZstdDecompressor.decompress` it needs no content size in the frame header.
    """
    new = _DECOMPRESSORS[compression]
    decompressor, fed = new(), False
    for piece in pieces:
        while piece:
            fed = True
            if out := decompressor.decompress(piece):
                yield out
            piece = b""
            if decompressor.eof:
                piece = decompressor.unused_data
                decompressor, fed = new(), False
    if fed and not decompressor.eof:
        raise EOFError(f"{compression} data ends before its end-of-stream marker (truncated)")


@contextmanager
def decompressed_copy(path: Path, compression: str) -> Iterator[Path]:
    """Decompress `path` into a temporary file beside it, removed when the block exits."""
    fd, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".plain")
    temp = Path(temp_name)
    try:
        with os.fdopen(fd, "wb") as out, path.open("rb") as source:
            for chunk in decompressed(iter(lambda: source.read(READ_BYTES), b""), compression):
                out.write(chunk)
        yield temp
    finally:
        temp.unlink(missing_ok=True)
