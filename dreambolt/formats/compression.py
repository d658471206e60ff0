"""Streaming decompression of gzip, zstd and bz2 data, as the formats stage needs it.

Every step makes a bounded amount of output whatever the input: a decompression bomb (a few KB
that unpack to GBs) costs memory in proportion to one step, never to what it unpacks to. gzip
and bz2 are asked for at most `PIECE_BYTES` a call; zstandard has no such argument, so zstd is
fed `_ZSTD_SLICE` bytes a call, which its densest block (RLE: 4 bytes for 128 KiB) makes at most
16 MiB. Input goes in slices for all three, so what is left over after each of many tiny gzip
members or zstd frames is a short copy, not the rest of a piece.
"""

from __future__ import annotations

import bz2
import io
import os
import tempfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import zstandard

__all__ = ["decompress_capped", "decompressed", "decompressed_copy"]

READ_BYTES = 2**20  # file bytes read at a time; also about the size of a piece yielded
PIECE_BYTES = 2**20  # most output one gzip/bz2 call makes
_ZSTD_SLICE = 512  # zstd input per call: at most 512 * 32768 bytes = 16 MiB out
_SLICE = 64 * 2**10  # gzip/bz2 input per call
_UNREADABLE = (zlib.error, zstandard.ZstdError, EOFError, OSError, ValueError)

Data = bytes | memoryview


def _gzip_steps(decompressor: Any, data: Data) -> Iterator[bytes]:
    while True:
        out: bytes = decompressor.decompress(data, PIECE_BYTES)
        if out:
            yield out
        data = decompressor.unconsumed_tail
        if decompressor.eof or (not data and len(out) < PIECE_BYTES):
            return  # else more output may be pending for input already taken


def _bz2_steps(decompressor: Any, data: Data) -> Iterator[bytes]:
    out: bytes = decompressor.decompress(data, PIECE_BYTES)
    while True:
        if out:
            yield out
        if decompressor.eof or decompressor.needs_input:
            return
        out = decompressor.decompress(b"", PIECE_BYTES)


def _zstd_steps(decompressor: Any, data: Data) -> Iterator[bytes]:
    if out := decompressor.decompress(data):
        yield out


_CODECS: dict[str, tuple[Callable[[], Any], Callable[[Any, Data], Iterator[bytes]], int]] = {
    "gzip": (lambda: zlib.decompressobj(wbits=31), _gzip_steps, _SLICE),
    "zstd": (lambda: zstandard.ZstdDecompressor().decompressobj(), _zstd_steps, _ZSTD_SLICE),
    "bz2": (bz2.BZ2Decompressor, _bz2_steps, _SLICE),
}


def decompressed(pieces: Iterable[bytes], compression: str) -> Iterator[bytes]:
    """Decompress a stream piece by piece, across gzip members and zstd/bz2 frames.

    Yields what each piece makes, in pieces of at most about `READ_BYTES` (16 MiB at worst, see
    the module docstring). Unlike zstandard's stream reader it notices a truncated last frame
    (`EOFError`); unlike `ZstdDecompressor.decompress` it needs no content size in the header.
    """
    new, steps, size = _CODECS[compression]
    decompressor, fed = new(), False
    out: list[bytes] = []
    held = 0
    for piece in pieces:
        view = memoryview(piece)
        while view:
            data: Data = view[:size]
            view = view[size:]
            while data:
                fed = True
                for chunk in steps(decompressor, data):
                    out.append(chunk)
                    held += len(chunk)
                    if held >= READ_BYTES:
                        yield out[0] if len(out) == 1 else b"".join(out)
                        out, held = [], 0
                data = b""
                if decompressor.eof:  # another gzip member or zstd/bz2 frame may follow
                    data = decompressor.unused_data
                    decompressor, fed = new(), False
        if out:  # what this piece made
            yield out[0] if len(out) == 1 else b"".join(out)
            out, held = [], 0
    if fed and not decompressor.eof:
        raise EOFError(f"{compression} data ends before its end-of-stream marker (truncated)")


def decompress_capped(data: bytes, compression: str, cap: int) -> bytes | None:
    """Decompress `data` whole, or return None as soon as its output passes `cap` bytes.

    Never holds more than about `cap` bytes plus one piece. Also None when `data` cannot be
    decompressed (corrupt, truncated): parse it with `formats.iter_bytes` or
    `formats.read_bytes`, which report that as a `FormatError` naming the file.
    """
    out, size = io.BytesIO(), 0
    try:
        for piece in decompressed([data], compression):
            size += len(piece)
            if size > cap:
                return None
            out.write(piece)
    except _UNREADABLE:
        return None
    return out.getvalue()


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
