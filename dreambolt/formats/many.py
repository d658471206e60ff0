"""Many small files parsed at once: small CSVs that share a header are parsed as one buffer
and split, since each parser call costs about a millisecond whatever the size."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import polars as pl

from dreambolt.errors import FormatError
from dreambolt.formats import read
from dreambolt.formats.blocks import csv_rows
from dreambolt.formats.detect import NO_OPTIONS, FileFormat, Format
from dreambolt.formats.dialect import SAMPLE_BYTES, SAMPLE_LINES, plain
from dreambolt.formats.limits import DEFAULT_LIMITS, ParseLimits
from dreambolt.formats.parse_errors import FATAL
from dreambolt.formats.widening import faithful

__all__ = ["read_many"]


def read_many(
    items: Sequence[tuple[bytes, FileFormat, str]], *, limits: ParseLimits = DEFAULT_LIMITS
) -> list[pl.DataFrame | FormatError]:
    """Parse many small in-memory files (data, format, name); per-file errors are returned.

    Each parser call costs about a millisecond whatever the size, which dominates for small
    files. So uncompressed CSV/TSV files that share a header line, have no quote characters (no
    record spans lines) and at most `INFER_ROWS` rows are parsed as one buffer and split by
    their row counts. Each file keeps that result only if it has the types it gets parsed alone
    (see `widening.faithful`); the others, and all if the joint parse fails, are parsed one by one.
    """
    results: list[pl.DataFrame | FormatError | None] = [None] * len(items)
    groups: dict[tuple[Format, bytes], list[int]] = {}
    for index, (data, fmt, _) in enumerate(items):
        end = data.find(b"\n")
        header = data[:end]
        if (
            fmt.kind in ("csv", "tsv")
            and fmt.compression is None
            and end >= 0
            and fmt.options == NO_OPTIONS
            and header.strip()
            and b'"' not in data
            and len(data) <= limits.max_record_bytes
            and plain(_sample(data), fmt.kind, fmt.options) is not None
        ):
            groups.setdefault((fmt.kind, header.rstrip(b"\r")), []).append(index)
        else:
            results[index] = _read_one(*items[index], limits)
    for (kind, header), members in groups.items():
        frames = _read_joined(header, kind, [items[i][0] for i in members], limits)
        for index, frame in zip(members, frames, strict=True):
            results[index] = frame if frame is not None else _read_one(*items[index], limits)
    return [r if r is not None else pl.DataFrame() for r in results]


def _sample(data: bytes) -> bytes:
    """What `dialect.plain` needs to see of a quote-free file to say what it says of all of
    it: its first `SAMPLE_LINES` lines, when it has no carriage return and fits the sample
    (else the whole file)."""
    if len(data) > SAMPLE_BYTES or b"\r" in data:
        return data
    end = -1
    for _ in range(SAMPLE_LINES):
        end = data.find(b"\n", end + 1)
        if end < 0:
            return data
    return data[: end + 1]


def _read_one(
    data: bytes, fmt: FileFormat, name: str, limits: ParseLimits
) -> pl.DataFrame | FormatError:
    try:
        return read.read_bytes(data, fmt, name=name, limits=limits)
    except FormatError as exc:
        return exc


def _read_joined(
    header: bytes, kind: Format, datas: list[bytes], limits: ParseLimits
) -> list[pl.DataFrame | None]:
    """Parse CSV bodies under one header as one buffer: a frame per file, None where that file
    must be parsed alone."""
    bodies, counts = [], []
    for data in datas:
        body = data.partition(b"\n")[2]
        if body and not body.endswith(b"\n"):
            body += b"\n"
        bodies.append(body)
        counts.append(csv_rows(body))
    together = [i for i, count in enumerate(counts) if count < read.INFER_ROWS]
    results: list[pl.DataFrame | None] = [None] * len(datas)
    if len(together) < 2:
        return results
    separator = "\t" if kind == "tsv" else ","
    data = b"".join([header, b"\n", *(bodies[i] for i in together)])
    try:
        frame = read.parse_whole(
            data, FileFormat(kind), limits
        )  # a misfit: parsed alone (`faithful`)
        text = pl.read_csv(data, separator=separator, infer_schema=False, raise_if_empty=False)
    except BaseException as exc:
        if isinstance(exc, FATAL):
            raise
        return results
    sizes = [counts[i] for i in together]
    if frame.height != sum(sizes) or text.shape != frame.shape or frame.columns != text.columns:
        return results  # sniffed into another dialect, say: each file alone
    starts = itertools.accumulate(sizes, initial=0)
    kept = faithful(frame.schema, text, sizes)
    for index, start, size, ok in zip(together, starts, sizes, kept, strict=False):
        results[index] = frame.slice(start, size) if ok else None
    return results
