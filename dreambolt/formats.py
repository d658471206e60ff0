"""Recognise data files and parse them into polars frames: the parse stage of the pipeline.

CSV, TSV, Parquet, NDJSON, JSON (an array of records) and Arrow IPC (file or stream), each maybe
gzip/zstd/bz2-compressed. `detect_format` decides from a name, the first `HEAD_BYTES` bytes and an
optional declared format; `read_bytes` parses an object in memory, `iter_file` a spooled file in
bounded memory; both raise `FormatError` for unreadable content. All synchronous (run in a thread).

How `iter_file` bounds memory: CSV/TSV/NDJSON are cut into blocks of about `BLOCK_BYTES` ending on
a record boundary (for CSV a newline after an even number of quotes, the rule polars itself splits
by) and parsed block by block; compressed text is decompressed as a stream into those blocks.
Types are inferred once from the first `INFER_ROWS` rows, as `read_bytes` does, and later blocks
are parsed with that schema, so a file has one schema and a later misfit is a `FormatError` saying
where (NDJSON keys first seen after those rows are dropped by polars, in both entry points).
Parquet and IPC go a record batch at a time (compressed ones via a temporary file beside the
input). A JSON array cannot be split without parsing it, so it is read whole: prefer NDJSON.
"""

from __future__ import annotations

import bz2
import itertools
import os
import re
import tempfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

import polars as pl
import pyarrow as pa
import pyarrow.ipc as pa_ipc
import pyarrow.parquet as pq
import zstandard

from dreambolt.errors import FormatError

__all__ = [
    "HEAD_BYTES", "Compression", "FileFormat", "Format", "detect_format", "is_text", "iter_file",
    "read_bytes",
]

Format = Literal["csv", "tsv", "parquet", "ndjson", "json", "ipc"]
Compression = Literal["gzip", "zstd", "bz2"] | None

HEAD_BYTES = 64  # all that detect_format looks at
INFER_ROWS = 10_000  # rows of text formats that column types are inferred from
BLOCK_BYTES = 8 * 2**20  # text parsed at a time by iter_file
MAX_RECORD_BYTES = 64 * 2**20  # a longer record means an unbalanced quote (or not text at all)
_READ_BYTES = 2**20
_TEXT_KINDS = frozenset({"csv", "tsv", "ndjson", "json"})


@dataclass(frozen=True)
class FileFormat:
    """What a file contains (`kind`) and how it is compressed, as decided by `detect_format`."""

    kind: Format
    compression: Compression = None

    def __str__(self) -> str:
        """Spell the format the way `--format` accepts it, e.g. ``csv.gz``."""
        suffix = {"gzip": ".gz", "zstd": ".zst", "bz2": ".bz2", None: ""}[self.compression]
        return f"{self.kind}{suffix}"


def is_text(fmt: FileFormat) -> bool:
    """Tell whether the format is line-oriented text (where an empty file means no rows)."""
    return fmt.kind in _TEXT_KINDS


# --- detection ---------------------------------------------------------------------------------

_KIND_NAMES: dict[str, Format] = {
    "csv": "csv", "tsv": "tsv", "tab": "tsv", "parquet": "parquet", "pq": "parquet",
    "ndjson": "ndjson", "jsonl": "ndjson", "json": "json", "arrow": "ipc", "ipc": "ipc",
    "feather": "ipc",
}
_COMPRESSION_NAMES: dict[str, Compression] = {
    "gz": "gzip", "gzip": "gzip", "zst": "zstd", "zstd": "zstd", "bz2": "bz2",
}
# "BZh", block size, then the magic of a first block or of an empty stream's end.
_BZ2_MAGIC = re.compile(rb"BZh[1-9](?:\x31\x41\x59\x26\x53\x59|\x17\x72\x45\x38\x50\x90)")
_FIRST_CHAR = re.compile(rb"(?:\xef\xbb\xbf)?\s*(\S?)")


def detect_format(name: str, head: bytes, declared: str | None = None) -> FileFormat:
    """Decide a file's format from its name, its first bytes and an optional declared format.

    Magic bytes beat the name for compression and for Parquet/IPC; `declared` (``csv``,
    ``parquet``, ``csv.gz``, ``ndjson.zst``, ``jsonl`` ...) beats both for what it names. Without
    a known extension or magic, text is sniffed: ``{`` NDJSON, ``[`` JSON, tabs TSV, else CSV.
    Raises `ValueError` for a declared format that is none of these.
    """
    head = bytes(head[:HEAD_BYTES])
    declared_kind, declared_compression = _parse_declared(declared)
    name_kind, name_compression = _parse_name(name)
    if declared_compression is not False:
        compression = declared_compression
    else:
        compression = _compression_magic(head) if head else name_compression
    if declared_kind is not None:
        return FileFormat(declared_kind, compression)

    start = _peek(head, compression)
    first = _first_char(start)
    kind: Format
    if start.startswith(b"PAR1"):
        kind = "parquet"
    elif start.startswith((b"ARROW1", b"\xff\xff\xff\xff")):
        kind = "ipc"
    elif name_kind == "json" and first not in (b"[", b""):
        kind = "ndjson"
    elif name_kind is not None:
        kind = name_kind
    elif first in (b"{", b"["):
        kind = "ndjson" if first == b"{" else "json"
    else:
        line = start.split(b"\n", 1)[0]
        kind = "tsv" if b"\t" in line and b"," not in line else "csv"
    return FileFormat(kind, compression)


def _parse_declared(declared: str | None) -> tuple[Format | None, Compression | Literal[False]]:
    """Split e.g. ``csv.gz`` into kind and compression; False means no compression was named."""
    kind: Format | None = None
    compression: Compression | Literal[False] = False
    tokens = declared.strip().lower().lstrip(".").split(".") if declared else []
    for token in filter(None, tokens):
        if token in _KIND_NAMES and kind is None:
            kind = _KIND_NAMES[token]
        elif token in _COMPRESSION_NAMES and compression is False:
            compression = _COMPRESSION_NAMES[token]
        else:
            known = ", ".join(sorted({*_KIND_NAMES, *_COMPRESSION_NAMES}))
            raise ValueError(
                f"unknown format {declared!r}: give a kind, optionally with a compression, "
                f"e.g. 'csv', 'parquet' or 'ndjson.gz' (known names: {known})"
            )
    return kind, compression


def _parse_name(name: str) -> tuple[Format | None, Compression]:
    parts = name.rsplit("/", 1)[-1].lower().split(".")[1:]
    compression = _COMPRESSION_NAMES.get(parts[-1]) if parts else None
    if compression is not None:
        parts.pop()
    return (_KIND_NAMES.get(parts[-1]) if parts else None), compression


def _compression_magic(head: bytes) -> Compression:
    if head.startswith(b"\x1f\x8b"):
        return "gzip"
    if head.startswith(b"\x28\xb5\x2f\xfd"):
        return "zstd"
    return "bz2" if _BZ2_MAGIC.match(head) else None


def _peek(head: bytes, compression: Compression) -> bytes:
    """Decompress what `head` allows, to sniff inside (best effort: bz2 needs whole blocks)."""
    try:
        if compression == "gzip":
            return zlib.decompressobj(wbits=31).decompress(head)
        if compression == "zstd":
            return zstandard.ZstdDecompressor().decompressobj().decompress(head)
    except (zlib.error, zstandard.ZstdError):
        pass
    return head if compression is None else b""


def _first_char(data: bytes) -> bytes:
    match = _FIRST_CHAR.match(data)
    return match.group(1) if match else b""


# --- reading -----------------------------------------------------------------------------------


def read_bytes(data: bytes | memoryview, fmt: FileFormat, *, name: str) -> pl.DataFrame:
    """Parse a whole object held in memory into one frame; raise `FormatError` if unreadable.

    An empty (or blank) text file gives an empty frame with no columns.
    """
    with _translated(name, fmt):
        raw = _as_bytes(data)
        if fmt.compression is not None:
            raw = b"".join(_decompressed([raw], fmt.compression))
        return _parse(raw, fmt.kind)


def iter_file(
    path: Path, fmt: FileFormat, *, name: str, batch_rows: int = 250_000
) -> Iterator[pl.DataFrame]:
    """Parse a file on disk as frames of at most `batch_rows` rows, all with one schema.

    Memory stays bounded whatever the file size (JSON arrays excepted; see the module docstring).
    At least one frame is yielded, possibly with zero rows. `FormatError` may come after some
    frames were yielded. It is a generator: close it to remove a temporary file early.
    """
    if batch_rows < 1:
        raise ValueError(f"batch_rows must be at least 1, not {batch_rows}")
    with _translated(name, fmt):
        for frame in _frames(Path(path), fmt, name, batch_rows):
            if frame.height <= batch_rows:
                yield frame
            else:
                for start in range(0, frame.height, batch_rows):
                    yield frame.slice(start, batch_rows)


def _frames(path: Path, fmt: FileFormat, name: str, batch_rows: int) -> Iterator[pl.DataFrame]:
    if not is_text(fmt):
        if fmt.compression is None:
            yield from _arrow_frames(path, fmt.kind, batch_rows)
        else:
            with _decompressed_copy(path, fmt.compression) as plain:
                yield from _arrow_frames(plain, fmt.kind, batch_rows)
        return
    with path.open("rb") as source:
        pieces: Iterator[bytes] = iter(lambda: source.read(_READ_BYTES), b"")
        if fmt.compression is not None:
            pieces = _decompressed(pieces, fmt.compression)
        first = next(pieces, b"")
        pieces = itertools.chain([first], pieces)
        if fmt.kind == "json" and _first_char(first) == b"[":
            yield _parse(b"".join(pieces), "json")
        else:  # a "json" file that is not an array is NDJSON, as in `_parse`
            yield from _text_frames(pieces, fmt, name)


def _parse(raw: bytes, kind: Format) -> pl.DataFrame:
    if kind in _TEXT_KINDS and not _first_char(raw):
        return pl.DataFrame()
    if kind == "csv" or kind == "tsv":
        return pl.read_csv(
            raw, separator="\t" if kind == "tsv" else ",", infer_schema_length=INFER_ROWS,
            raise_if_empty=False,
        )
    if kind == "json" and _first_char(raw) == b"[":
        return pl.read_json(raw, infer_schema_length=INFER_ROWS)
    if kind == "ndjson" or kind == "json":
        return pl.read_ndjson(raw, infer_schema_length=INFER_ROWS)
    if kind == "parquet":
        return pl.read_parquet(raw)
    return pl.read_ipc(raw) if raw.startswith(b"ARROW1") else pl.read_ipc_stream(raw)


def _text_frames(pieces: Iterable[bytes], fmt: FileFormat, name: str) -> Iterator[pl.DataFrame]:
    """Parse CSV/TSV/NDJSON block by block, later blocks with the first block's schema."""
    kind = "ndjson" if fmt.kind == "json" else fmt.kind
    schema: pl.Schema | None = None
    offset = rows = 0
    for block in _record_blocks(pieces, quoted=kind != "ndjson"):
        if not _first_char(block):
            frame = None
        elif schema is None:
            frame = _parse(block, kind)
            schema = frame.schema
        else:
            try:
                frame = (
                    pl.read_ndjson(block, schema=schema) if kind == "ndjson" else pl.read_csv(
                        block, separator="\t" if kind == "tsv" else ",", has_header=False,
                        schema=schema, raise_if_empty=False,
                    )
                )
            except pl.exceptions.PolarsError as exc:
                where = (
                    f" (in the part from byte {offset:,}, data row {rows + 1:,} on; column types "
                    f"were inferred from the first {INFER_ROWS:,} rows)"
                )
                raise FormatError(_message(name, fmt, exc, where)) from exc
        offset += len(block)
        if frame is not None:
            rows += frame.height
            yield frame
    if schema is None:
        yield pl.DataFrame()


def _record_blocks(pieces: Iterable[bytes], *, quoted: bool) -> Iterator[bytes]:
    """Regroup pieces into blocks of about BLOCK_BYTES, each ending on a record boundary.

    The first is stretched to hold INFER_ROWS records, so inference sees what `read_bytes` sees.
    """
    pending: list[bytes] = []
    size = newlines = 0
    carry, first = b"", True
    for piece in pieces:
        pending.append(piece)
        size += len(piece)
        newlines += piece.count(b"\n") if first else 0
        if size < BLOCK_BYTES or (first and newlines <= INFER_ROWS and size < MAX_RECORD_BYTES):
            continue
        scanned, buf = len(carry), b"".join([carry, *pending])
        pending, size = [], 0
        cut = _record_end(buf, scanned, quoted=quoted)
        if cut:
            first = False
            yield buf[:cut]
            carry = buf[cut:]
        elif len(buf) <= MAX_RECORD_BYTES:
            carry = buf
        else:
            why = "an unbalanced quote character?" if quoted else "is it really NDJSON?"
            raise _RecordTooLongError(
                f"no end of record within {len(buf):,} bytes (the limit): {why}"
            )
    rest = b"".join([carry, *pending])
    if rest or first:
        yield rest


def _record_end(buf: bytes, scanned: int, *, quoted: bool) -> int:
    """Return the offset past the last record boundary in `buf` after `scanned`, else 0.

    `buf` starts on a boundary; in CSV a newline after an even number of quotes ends a record.
    """
    if not quoted:
        return buf.rfind(b"\n", scanned) + 1
    quotes, end, after = buf.count(b'"'), len(buf), 0
    while (newline := buf.rfind(b"\n", scanned, end)) >= 0:
        after += buf.count(b'"', newline, end)
        if (quotes - after) % 2 == 0:
            return newline + 1
        end = newline
    return 0


def _arrow_frames(path: Path, kind: Format, batch_rows: int) -> Iterator[pl.DataFrame]:
    """Yield a Parquet or Arrow IPC file's record batches as frames (at least one, maybe empty)."""
    with pa.OSFile(str(path), "rb") as source:
        if kind == "parquet":
            reader = pq.ParquetFile(source)
            batches, schema = reader.iter_batches(batch_size=batch_rows), reader.schema_arrow
        elif source.read(6) == b"ARROW1":
            reader = pa_ipc.open_file(source)
            batches = (reader.get_batch(i) for i in range(reader.num_record_batches))
            schema = reader.schema
        else:
            source.seek(0)
            reader = pa_ipc.open_stream(source)
            batches, schema = reader, reader.schema
        empty = True
        for batch in batches:
            empty = False
            yield _to_frame(batch)
        if empty:
            yield _to_frame(schema.empty_table())


def _to_frame(data: pa.RecordBatch | pa.Table) -> pl.DataFrame:
    frame = pl.from_arrow(data)
    if not isinstance(frame, pl.DataFrame):
        raise TypeError(f"pyarrow gave {type(data).__name__}, not a table")
    return frame


# --- decompression -----------------------------------------------------------------------------


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


def _decompressed(pieces: Iterable[bytes], compression: str) -> Iterator[bytes]:
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
def _decompressed_copy(path: Path, compression: str) -> Iterator[Path]:
    """Decompress `path` into a temporary file beside it, removed when the block exits."""
    fd, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".plain")
    temp = Path(temp_name)
    try:
        with os.fdopen(fd, "wb") as out, path.open("rb") as source:
            for chunk in _decompressed(iter(lambda: source.read(_READ_BYTES), b""), compression):
                out.write(chunk)
        yield temp
    finally:
        temp.unlink(missing_ok=True)


def _as_bytes(data: bytes | memoryview) -> bytes:
    """Return the bytes behind `data`, copying only when the view is not of a whole bytes object."""
    if isinstance(data, bytes):
        return data
    if isinstance(data.obj, bytes) and data.contiguous and data.nbytes == len(data.obj):
        return data.obj
    return data.tobytes()


# --- errors ------------------------------------------------------------------------------------


class _RecordTooLongError(Exception):
    """Raised by `_record_blocks` when no record boundary turns up; becomes a `FormatError`."""


_READ_ERRORS = (
    _RecordTooLongError, pl.exceptions.PolarsError, pa.ArrowException, OSError, EOFError,
    zlib.error, zstandard.ZstdError,
)
# Polars' advice names its own API, and its byte offset counts from one of its parallel chunks.
_POLARS_NOISE = ("You might want to try", "Consider ", "The current offset in the file")


@contextmanager
def _translated(name: str, fmt: FileFormat) -> Iterator[None]:
    """Turn parser and decompressor errors into `FormatError`: the one translation boundary."""
    try:
        yield
    except _READ_ERRORS as exc:
        if isinstance(exc, OSError) and exc.errno is not None:
            raise  # a real I/O failure (missing file, full disk), not unreadable content
        raise FormatError(_message(name, fmt, exc)) from exc


def _message(name: str, fmt: FileFormat, exc: BaseException, where: str = "") -> str:
    paragraphs = [p for p in str(exc).split("\n\n") if not p.startswith(_POLARS_NOISE)]
    reason = " ".join(" ".join(paragraphs).split())[:600].rstrip(".") or type(exc).__name__
    example = "tsv.gz" if str(fmt) == "csv.gz" else "csv.gz"
    return (
        f"{name}: cannot read as {fmt}{where}: {reason}. If it is not {fmt}, pass --format "
        f"(e.g. --format {example}) to override detection"
    )
