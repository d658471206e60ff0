"""Recognise data files and parse them into polars frames: the parse stage of the pipeline.

CSV, TSV, Parquet, NDJSON, JSON (an array of records) and Arrow IPC (file or stream), each maybe
gzip/zstd/bz2-compressed. `detect_format` decides from a name, the first `HEAD_BYTES` bytes and an
optional declared format; `read_bytes` parses an object in memory, `iter_file` a spooled file and
`iter_bytes` an object in memory, both in bounded memory. Anything that goes wrong parsing a file
(polars panics included) is a `FormatError` naming the file; `ParseLimits` bound what one file
may ask (record length, columns, nesting, decompressed bytes held). All synchronous.

How `iter_file` bounds memory: CSV/TSV/NDJSON are cut into blocks of about `BLOCK_BYTES` ending on
a record boundary (for CSV a newline after an even number of quotes, the rule polars itself splits
by) and parsed block by block; compressed text is decompressed as a stream into those blocks.
CSV types come from the first block (`INFER_ROWS` rows, as in `read_bytes`); a later block whose
values misfit is re-read and the column widened (Int64 to Float64, anything to String). NDJSON
types come from every row of each block; a later block may append columns or widen one. So the
frames of one file may grow their schema (`pl.concat(..., how="diagonal_relaxed")` joins them); a
value that fits no common type is a `FormatError` saying where. Parquet and IPC go a record batch
at a time (compressed ones via a temporary file beside the input). A JSON array cannot be split
without parsing it, so it is read whole: prefer NDJSON.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
from collections.abc import Iterable, Iterator
from pathlib import Path

import polars as pl
import pyarrow as pa

from dreambolt.formats import duckread
from dreambolt.formats.blocks import joined, record_blocks
from dreambolt.formats.columnar import arrow_frames, read_arrow
from dreambolt.formats.compression import (
    READ_BYTES,
    decompress_capped,
    decompressed,
    decompressed_copy,
)
from dreambolt.formats.csvread import (
    eol_of,
    may_hold_blank_lines,
    read_first,
    without_blank_lines,
)
from dreambolt.formats.detect import (
    HEAD_BYTES,
    NO_OPTIONS,
    TEXT_KINDS,
    Compression,
    CsvOptions,
    FileFormat,
    Format,
    detect_format,
    first_char,
    is_text,
)
from dreambolt.formats.dialect import Dialect
from dreambolt.formats.jsondepth import json_too_deep
from dreambolt.formats.jsonread import is_document, read_json
from dreambolt.formats.limits import (
    DEFAULT_LIMITS,
    LineGuard,
    ParseLimits,
    arrow_ready,
    check_csv_header,
    check_frame,
    check_utf16,
    nesting,
    too_deep,
)
from dreambolt.formats.parse_errors import translated
from dreambolt.formats.transcode import encoding_of, transcoded, transcoded_bytes
from dreambolt.formats.widening import later_block

__all__ = [
    "DEFAULT_LIMITS",
    "HEAD_BYTES",
    "NO_OPTIONS",
    "Compression",
    "CsvOptions",
    "FileFormat",
    "Format",
    "ParseLimits",
    "decompress_capped",
    "detect_format",
    "is_text",
    "iter_bytes",
    "iter_file",
    "iter_pieces",
    "parse_whole",
    "read_bytes",
]

INFER_ROWS = 10_000  # rows of CSV/TSV that column types are inferred from
BLOCK_BYTES = 8 * 2**20  # text parsed at a time by iter_file and iter_bytes


# --- reading -----------------------------------------------------------------------------------


def read_bytes(
    data: bytes | memoryview, fmt: FileFormat, *, name: str, limits: ParseLimits = DEFAULT_LIMITS
) -> pl.DataFrame:
    """Parse a whole object held in memory into one frame; raise `FormatError` if unreadable.

    Compressed data is decompressed as a stream, refused past `limits.max_bytes`; a record over
    `limits.max_record_bytes` is refused before polars sees it. NDJSON and JSON types come from
    every row; CSV types from the first `INFER_ROWS`, or every row if a later value misfits.
    An empty (or blank) text file gives an empty frame with no columns.
    """
    with translated(name, fmt):
        raw = _as_bytes(data)
        if fmt.compression is not None:
            raw = _unpacked([raw], fmt, limits)
        if is_text(fmt) and (encoding := encoding_of(raw[:4], fmt.options.encoding)):
            raw = transcoded_bytes(raw, encoding)
        if fmt.compression is None and _lines(fmt, raw) and len(raw) > limits.max_record_bytes:
            _guard(fmt, limits).feed(raw)
        return parse_whole(raw, fmt, limits)


def iter_file(
    path: Path,
    fmt: FileFormat,
    *,
    name: str,
    batch_rows: int = 250_000,
    pieces: Iterable[bytes] | None = None,
    limits: ParseLimits = DEFAULT_LIMITS,
) -> Iterator[pl.DataFrame]:
    """Parse a file on disk as frames of at most `batch_rows` rows.

    Memory stays bounded whatever the file size (JSON arrays excepted; see the module docstring).
    At least one frame is yielded, possibly with zero rows. Text frames may grow their schema
    (module docstring). `FormatError` may come after some frames were yielded. It is a
    generator: close it to remove a temporary file early. For text formats `pieces` may supply
    the file's bytes in order instead (e.g. while it is still being downloaded).
    """
    if batch_rows < 1:
        raise ValueError(f"batch_rows must be at least 1, not {batch_rows}")
    failed: list[BaseException] = []  # what `pieces` raised (a failed download): not our business
    given = None if pieces is None else _watched(pieces, failed)
    with translated(name, fmt, passed=failed):
        yield from _batched(
            _file_frames(Path(path), fmt, name, given, limits, batch_rows), batch_rows
        )


def iter_pieces(
    pieces: Iterable[bytes],
    fmt: FileFormat,
    *,
    name: str,
    batch_rows: int = 250_000,
    limits: ParseLimits = DEFAULT_LIMITS,
) -> Iterator[pl.DataFrame]:
    """Parse text (CSV, TSV, NDJSON or JSON, maybe compressed) that arrives as `pieces`, in
    order (e.g. an object while it is still being downloaded), as `iter_file` parses a file.
    What `pieces` raise (a failed download) is passed on as it is."""
    if not is_text(fmt):
        raise ValueError(f"iter_pieces parses text, not {fmt.kind}")
    if batch_rows < 1:
        raise ValueError(f"batch_rows must be at least 1, not {batch_rows}")
    failed: list[BaseException] = []
    with translated(name, fmt, passed=failed):
        yield from _batched(_text(_watched(pieces, failed), fmt, name, limits), batch_rows)


def _watched(pieces: Iterable[bytes], failed: list[BaseException]) -> Iterator[bytes]:
    """`pieces`, noting in `failed` what they raise, so it is passed on as it is."""
    source = iter(pieces)
    while True:
        try:
            piece = next(source)
        except StopIteration:
            return
        except BaseException as exc:
            failed.append(exc)
            raise
        yield piece


def iter_bytes(
    data: bytes,
    fmt: FileFormat,
    *,
    name: str,
    batch_rows: int = 250_000,
    limits: ParseLimits = DEFAULT_LIMITS,
) -> Iterator[pl.DataFrame]:
    """Parse an object held in memory as frames, like `iter_file`: text decompressed as a stream
    and parsed block by block, in bounded memory whatever it decompresses to (compressed
    Parquet/IPC is decompressed whole, up to `limits.max_bytes`)."""
    if batch_rows < 1:
        raise ValueError(f"batch_rows must be at least 1, not {batch_rows}")
    with translated(name, fmt):
        raw = _as_bytes(data)
        if is_text(fmt):
            pieces = (raw[i : i + READ_BYTES] for i in range(0, len(raw), READ_BYTES))
            yield from _batched(_text(pieces, fmt, name, limits), batch_rows)
            return
        if fmt.compression is not None:
            raw = _unpacked([raw], fmt, limits)
        yield from _batched(
            arrow_frames(pa.BufferReader(raw), fmt.kind, batch_rows, limits), batch_rows
        )


def _batched(frames: Iterable[pl.DataFrame], batch_rows: int) -> Iterator[pl.DataFrame]:
    for frame in frames:
        if frame.height <= batch_rows:
            yield frame
        else:
            for start in range(0, frame.height, batch_rows):
                yield frame.slice(start, batch_rows)


def _file_frames(
    path: Path,
    fmt: FileFormat,
    name: str,
    given: Iterable[bytes] | None,
    limits: ParseLimits,
    batch_rows: int,
) -> Iterator[pl.DataFrame]:
    with contextlib.ExitStack() as stack:
        if not is_text(fmt):
            if fmt.compression is not None:
                path = stack.enter_context(decompressed_copy(path, fmt.compression))
            source = stack.enter_context(pa.OSFile(str(path), "rb"))
            yield from arrow_frames(source, fmt.kind, batch_rows, limits)
            return
        if given is not None:
            pieces: Iterator[bytes] = iter(given)
        else:
            handle = stack.enter_context(path.open("rb"))
            pieces = iter(lambda: handle.read(READ_BYTES), b"")
        yield from _text(pieces, fmt, name, limits)


def _text(
    pieces: Iterator[bytes], fmt: FileFormat, name: str, limits: ParseLimits
) -> Iterator[pl.DataFrame]:
    if fmt.compression is not None:
        pieces = decompressed(pieces, fmt.compression)
    first = next(pieces, b"")
    pieces = itertools.chain([first], pieces)
    if encoding := encoding_of(first[:4], fmt.options.encoding):
        pieces = transcoded(pieces, encoding)
        first = next(pieces, b"")
        pieces = itertools.chain([first], pieces)
    if _document(fmt, first):
        yield parse_whole(joined(pieces, limits, None), fmt, limits)
    else:  # a "json" file that is not one document is NDJSON, as in `parse_whole`
        yield from _text_frames(pieces, fmt, name, limits, eol_of(first))


def _unpacked(pieces: Iterable[bytes], fmt: FileFormat, limits: ParseLimits) -> bytes:
    """Decompress and join, refusing past `limits.max_bytes` or, in text of lines, a line over
    `limits.max_record_bytes` as soon as that is clear."""
    assert fmt.compression is not None
    stream = decompressed(pieces, fmt.compression)
    first = next(stream, b"")
    guard = _guard(fmt, limits) if _lines(fmt, first) else None
    return joined(itertools.chain([first], stream), limits, guard)


def _guard(fmt: FileFormat, limits: ParseLimits) -> LineGuard:
    return LineGuard(limits, quoted=fmt.kind in ("csv", "tsv"))


def _lines(fmt: FileFormat, start: bytes) -> bool:
    """Whether text starting with `start` is in records of lines (not Parquet, IPC or a JSON
    document)."""
    return is_text(fmt) and not _document(fmt, start)


def _document(fmt: FileFormat, start: bytes) -> bool:
    return fmt.kind in ("json", "ndjson") and is_document(fmt.kind, start)


def parse_whole(raw: bytes, fmt: FileFormat, limits: ParseLimits) -> pl.DataFrame:
    return _parse_first(raw, fmt, limits)[0]


def _parse_first(
    raw: bytes, fmt: FileFormat, limits: ParseLimits
) -> tuple[pl.DataFrame, Dialect | None]:
    """Parse a whole file, or the first block of one; for CSV/TSV say its dialect too."""
    kind, dialect = fmt.kind, None
    if kind in TEXT_KINDS:
        check_utf16(raw)
        if not first_char(raw):
            return pl.DataFrame(), None
    if kind == "csv" or kind == "tsv":
        check_csv_header(raw, fmt.options.delimiter or ("\t" if kind == "tsv" else ","), limits)
        frame, dialect = read_first(raw, kind, fmt.options, INFER_ROWS)
    elif kind == "ndjson" or kind == "json":
        array = _document(fmt, raw)
        levels = nesting(limits) + (2 if array else 1)  # the array, the record
        if (at := json_too_deep(raw, levels, lines=not array)) is not None:
            raise too_deep(f"the JSON at byte {at:,}", None, limits)
        frame = read_json(raw, array)
    else:
        frame = read_arrow(raw, kind, limits)
    frame = arrow_ready(frame)
    check_frame(frame, limits)
    return frame, dialect


def _text_frames(
    pieces: Iterable[bytes], fmt: FileFormat, name: str, limits: ParseLimits, eol: str
) -> Iterator[pl.DataFrame]:
    """Parse CSV/TSV/NDJSON block by block; later blocks may widen or grow the schema."""
    kind = "ndjson" if fmt.kind == "json" else fmt.kind
    schema: pl.Schema | None = None
    dialect: Dialect | None = None
    offset = rows = 0
    blocks = record_blocks(
        pieces,
        quoted=kind != "ndjson",
        limits=limits,
        eol=eol.encode(),
        block_bytes=BLOCK_BYTES,
        first_records=INFER_ROWS,
    )
    for block in blocks:
        frame = None
        if first_char(block) and schema is None:
            frame, dialect = _parse_first(block, dataclasses.replace(fmt, kind=kind), limits)
            if dialect is not None and dialect.escape is not None:  # DuckDB reads it, whole
                whole = joined(itertools.chain([block], blocks), limits, None)
                frame = arrow_ready(duckread.read_csv(whole, dialect))
                check_frame(frame, limits)
                yield frame
                return
        elif first_char(block) and schema is not None:
            where = f" (in the part from byte {offset:,}, data row {rows + 1:,} on)"
            with translated(name, fmt, where):
                frame = _later(block, kind, schema, limits, dialect)
                if frame.schema != schema:
                    check_frame(frame, limits)
        offset += len(block)
        if frame is not None:
            schema = frame.schema
            rows += frame.height
            yield frame
    if schema is None:
        yield pl.DataFrame()


def _later(
    block: bytes, kind: str, schema: pl.Schema, limits: ParseLimits, dialect: Dialect | None
) -> pl.DataFrame:
    """A block after the first, without the rows blank lines would make (looked for in the
    text only when the frame may hold such rows: see `may_hold_blank_lines`)."""
    if dialect is None or len(schema) < 2:
        return arrow_ready(later_block(block, kind, schema, limits, dialect))
    if block.startswith((b"\r", dialect.eol.encode())):
        block = without_blank_lines(block, dialect)
    frame = later_block(block, kind, schema, limits, dialect)
    if (
        may_hold_blank_lines(frame)
        and (cleaned := without_blank_lines(block, dialect)) is not block
    ):
        frame = later_block(cleaned, kind, schema, limits, dialect)
    return arrow_ready(frame)


def _as_bytes(data: bytes | memoryview) -> bytes:
    """Return the bytes behind `data`, copying only when the view is not of a whole bytes object."""
    if isinstance(data, bytes):
        return data
    if isinstance(data.obj, bytes) and data.contiguous and data.nbytes == len(data.obj):
        return data.obj
    return data.tobytes()
