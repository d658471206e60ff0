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

import contextlib
import itertools
import zlib
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.ipc as pa_ipc
import pyarrow.parquet as pq
import zstandard

from .compression import READ_BYTES, decompressed, decompressed_copy
from .detect import (
    HEAD_BYTES,
    TEXT_KINDS,
    Compression,
    FileFormat,
    Format,
    detect_format,
    first_char,
    is_text,
)
from .errors import FormatError

__all__ = [
    "HEAD_BYTES", "Compression", "FileFormat", "Format", "detect_format", "is_text", "iter_file",
    "read_bytes", "read_many",
]

INFER_ROWS = 10_000  # rows of text formats that column types are inferred from
BLOCK_BYTES = 8 * 2**20  # text parsed at a time by iter_file
MAX_RECORD_BYTES = 64 * 2**20  # a longer record means an unbalanced quote (or not text at all)


# --- reading -----------------------------------------------------------------------------------


def read_bytes(data: bytes | memoryview, fmt: FileFormat, *, name: str) -> pl.DataFrame:
    """Parse a whole object held in memory into one frame; raise `FormatError` if unreadable.

    An empty (or blank) text file gives an empty frame with no columns.
    """
    with _translated(name, fmt):
        raw = _as_bytes(data)
        if fmt.compression is not None:
            raw = b"".join(decompressed([raw], fmt.compression))
        return _parse(raw, fmt.kind)


def read_many(
    items: Sequence[tuple[bytes, FileFormat, str]],
) -> list[pl.DataFrame | FormatError]:
    """Parse many small in-memory files (data, format, name); per-file errors are returned.

    Each parser call costs about a millisecond whatever the size, which dominates for small
    files. So uncompressed CSV/TSV files that share a header line and have no quote characters
    (no record spans lines) are parsed as one buffer and split by their row counts; if that
    fails, or the counts disagree, they are parsed one by one like everything else.
    """
    results: list[pl.DataFrame | FormatError | None] = [None] * len(items)
    groups: dict[tuple[Format, bytes], list[int]] = {}
    for index, (data, fmt, _) in enumerate(items):
        header, newline, _ = data.partition(b"\n")
        if (fmt.kind in ("csv", "tsv") and fmt.compression is None and newline
                and header.strip() and b'"' not in data):
            groups.setdefault((fmt.kind, header.rstrip(b"\r")), []).append(index)
        else:
            results[index] = _read_one(*items[index])
    for (kind, header), members in groups.items():
        frames = _read_joined(header, kind, [items[i][0] for i in members])
        for offset, index in enumerate(members):
            results[index] = frames[offset] if frames else _read_one(*items[index])
    return [r if r is not None else pl.DataFrame() for r in results]


def _read_one(data: bytes, fmt: FileFormat, name: str) -> pl.DataFrame | FormatError:
    try:
        return read_bytes(data, fmt, name=name)
    except FormatError as exc:
        return exc


def _read_joined(header: bytes, kind: Format, datas: list[bytes]) -> list[pl.DataFrame] | None:
    """Parse CSV bodies under one header as one buffer; None if that does not work out."""
    if len(datas) < 2:
        return None
    bodies, counts = [], []
    for data in datas:
        body = data.partition(b"\n")[2]
        if body and not body.endswith(b"\n"):
            body += b"\n"
        bodies.append(body)
        counts.append(_records(body))
    try:
        frame = _parse(b"".join([header, b"\n", *bodies]), kind)
    except (pl.exceptions.PolarsError, OSError, ValueError):
        return None
    if frame.height != sum(counts):
        return None
    starts = itertools.accumulate(counts, initial=0)
    return [frame.slice(start, count) for start, count in zip(starts, counts, strict=False)]


def _records(body: bytes) -> int:
    """The rows polars will make of a quote-free CSV body ending in a newline (blank lines are
    skipped). Never more than polars makes, so equal totals mean equal counts file by file."""
    if b"\n\n" not in body and b"\n\r\n" not in body and not body.startswith((b"\n", b"\r\n")):
        return body.count(b"\n")  # no blank line: one row per line, counted in C
    return sum(1 for line in body.split(b"\n") if line.strip())


def iter_file(
    path: Path, fmt: FileFormat, *, name: str, batch_rows: int = 250_000,
    pieces: Iterable[bytes] | None = None,
) -> Iterator[pl.DataFrame]:
    """Parse a file on disk as frames of at most `batch_rows` rows, all with one schema.

    Memory stays bounded whatever the file size (JSON arrays excepted; see the module docstring).
    At least one frame is yielded, possibly with zero rows. `FormatError` may come after some
    frames were yielded. It is a generator: close it to remove a temporary file early.
    For text formats `pieces` may supply the file's bytes in order instead (e.g. while it is
    still being downloaded).
    """
    if batch_rows < 1:
        raise ValueError(f"batch_rows must be at least 1, not {batch_rows}")
    with _translated(name, fmt):
        for frame in _frames(Path(path), fmt, name, batch_rows, pieces):
            if frame.height <= batch_rows:
                yield frame
            else:
                for start in range(0, frame.height, batch_rows):
                    yield frame.slice(start, batch_rows)


def _frames(
    path: Path, fmt: FileFormat, name: str, batch_rows: int, given: Iterable[bytes] | None
) -> Iterator[pl.DataFrame]:
    if not is_text(fmt):
        if fmt.compression is None:
            yield from _arrow_frames(path, fmt.kind, batch_rows)
        else:
            with decompressed_copy(path, fmt.compression) as plain:
                yield from _arrow_frames(plain, fmt.kind, batch_rows)
        return
    with contextlib.ExitStack() as stack:
        if given is not None:
            pieces: Iterator[bytes] = iter(given)
        else:
            source = stack.enter_context(path.open("rb"))
            pieces = iter(lambda: source.read(READ_BYTES), b"")
        if fmt.compression is not None:
            pieces = decompressed(pieces, fmt.compression)
        first = next(pieces, b"")
        pieces = itertools.chain([first], pieces)
        if fmt.kind == "json" and first_char(first) == b"[":
            yield _parse(b"".join(pieces), "json")
        else:  # a "json" file that is not an array is NDJSON, as in `_parse`
            yield from _text_frames(pieces, fmt, name)


def _parse(raw: bytes, kind: Format) -> pl.DataFrame:
    if kind in TEXT_KINDS and not first_char(raw):
        return pl.DataFrame()
    if kind == "csv" or kind == "tsv":
        return pl.read_csv(
            raw, separator="\t" if kind == "tsv" else ",", infer_schema_length=INFER_ROWS,
            raise_if_empty=False,
        )
    if kind == "json" and first_char(raw) == b"[":
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
        if not first_char(block):
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
