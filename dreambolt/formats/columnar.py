"""Reading Parquet and Arrow IPC files with pyarrow, a record batch at a time or whole, as
checked polars frames.

Both formats are read by pyarrow (parquet-cpp and Arrow C++, which implement the whole of both
specs), never by polars' own readers. Those read valid files wrong (pyarrow 0.17's LZ4-compressed
Feather test file as other numbers; Spark's INT96 timestamps as nanoseconds, years 1 and 9999
saturated) and, worse, fail badly on corrupt ones: of mutated files, `pl.read_ipc` aborted the
process on 2 of 1,000, `pl.read_parquet` on 1 of 2,000 (a 2 EiB allocation) and read 72 of 800
that pyarrow refuses (it skips page checksums and reads levels out of range), where pyarrow read
or refused each of 6,000 within 0.2 s. Here:

- Parquet INT96 timestamps (Spark, Impala, Hive) are read at microseconds, the unit Spark
  writes them from and DuckDB's TIMESTAMP holds: year 1 to 9999 and beyond come out right,
  where pyarrow's default (ns) silently wraps outside 1677-2262; digits below a microsecond
  are dropped. Page checksums are verified where the writer wrote them (parquet-mr does). A
  file whose rows differ from the count in its footer is refused.
- IPC: big-endian files are byte-swapped, LZ4/ZSTD-compressed buffers decompressed.
- What pyarrow reads is validated in full, column by column, before polars sees it (pyarrow
  reads a corrupt IPC file into arrays that would crash the process once touched), then
  converted by `arrowfit`. A Parquet string column whose pages are dictionary indices is read
  as its dictionary and made plain strings by polars (`arrowstrings`): the same values and
  types, a fifth of the CPU; so a whole file is read a row group at a time where some are.
- A file with no columns is refused: it has nothing to load (a Parquet file may still count
  rows), and "loaded" with no table would hide that.
- Each step (opening the file, each record batch, a whole file read in memory) is bounded in
  time (`READ_SECONDS`, less for a small file: `arrowsteps.bound`) through `deadline.within`:
  a file that makes the reader loop becomes a per-file error instead of a hang.

The price, measured on 2 idle cores against the readers used before (polars for a file in
memory, pyarrow in batches): in batches, for IPC and for small files, none (IPC in memory 31 ms
against 39 ms; a 100-row Parquet file 0.76 ms against 0.79 ms). A big Parquet file in memory
costs 1 to 2 times the CPU of `pl.read_parquet`: a 278 MB file of 8M rows whose two string
columns are dictionary-encoded 0.9-1.0 s against 0.5 s (2.5 s before `arrowstrings`; 1.7-1.9 s
row group by row group), 265 MB of mostly unique ZSTD strings 3.1 s against 2.3 s (pyarrow's
plain string decoding, then validating them and polars' conversion to string views, 0.2 s
each). A step's time bound costs 0.015 ms.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import polars as pl
import pyarrow as pa
import pyarrow.ipc as pa_ipc
import pyarrow.parquet as pq

from dreambolt.formats.arrowfit import Fit
from dreambolt.formats.arrowsteps import bound, check_rows, check_schema, step, validate
from dreambolt.formats.arrowstrings import DictionaryReads
from dreambolt.formats.detect import Format
from dreambolt.formats.limits import (
    ParseLimits,
    Refused,
    check_frame,
)

__all__ = ["READ_SECONDS", "RowGroups", "arrow_frames", "read_arrow"]

# The time bound of one step, at most. A step holds at most a batch of `batch_rows` rows or a
# file within the memory budget, read at hundreds of MB/s: 30 s leaves a wide margin for a
# loaded machine, and a small file gets less (`arrowsteps.bound`).
READ_SECONDS = 30.0
_WHOLE_BATCH_ROWS = 1 << 20  # batches of a Parquet file read whole (as fast as `read()`)
# pyarrow decodes columns (and decompresses IPC buffers) in parallel for files past this size;
# below it, handing work to its threads costs more than it saves (1.2 vs 1.7 ms, 70 KB).
_THREADS_FROM = 1 << 20
# A whole file's row groups are read in one go, or one by one where some of their strings are
# read as dictionaries (`arrowstrings`): worth it from this many rows a row group (1M rows in
# groups of 5,000 cost 0.55 s of CPU one by one, 0.44 s in one go; in groups of 100,000, 0.17
# against 0.41 s).
_WHOLE_DICTIONARY_ROWS = 1 << 15


@dataclass
class _Opened:
    """A file being read: its schema, how its batches become frames, and the batches."""

    schema: pa.Schema
    fit: Fit
    batches: Iterator[pa.RecordBatch]
    rows: int | None  # what a Parquet footer says the file holds


def arrow_frames(
    source: pa.NativeFile,
    kind: Format,
    batch_rows: int,
    limits: ParseLimits,
    *,
    seconds: float | None = READ_SECONDS,
) -> Iterator[pl.DataFrame]:
    """Yield a Parquet or Arrow IPC file's record batches as frames (at least one, maybe empty).

    Raises `Refused` for a file with no columns, too many or too deep, or a step that took
    more than `seconds` (None: no bound); `Unreadable` for a column polars cannot hold; what
    pyarrow raises for a corrupt file.
    """
    seconds = bound(seconds, source.size())
    opened = step(seconds, "its footer and schema", lambda: _open(source, kind, batch_rows, limits))
    count = rows = 0
    while True:
        frame = step(seconds, f"record batch {count + 1:,}", lambda: _next_frame(opened))
        if frame is None:
            break
        if not count:
            check_frame(frame, limits)
        count += 1
        rows += frame.height
        yield frame
    check_rows(rows, opened.rows)
    if not count:
        frame = opened.fit.frame(opened.schema.empty_table())
        check_frame(frame, limits)
        yield frame


def read_arrow(
    raw: bytes, kind: Format, limits: ParseLimits, *, seconds: float | None = READ_SECONDS
) -> pl.DataFrame:
    """Read a whole Parquet or Arrow IPC file (file or stream) held in memory as one frame,
    as `arrow_frames` would (the whole read is one step, bounded by `seconds` or, for a file
    under 500 MB, less: see `arrowsteps.bound`)."""
    limit = bound(seconds, len(raw))
    return step(limit, "the file", lambda: _read_whole(raw, kind, limits))


class RowGroups:
    """A Parquet file read a row group at a time, in any order, maybe only some columns: how a
    file whose row groups arrive one by one (`dreambolt.rowgroups`) is decoded as they do.

    `source` may hold only the footer and the row groups about to be read (a sparse file that
    fetches what else is asked for). Opening reads the footer and checks the schema, as
    `arrow_frames` does; `frame(i)` reads, validates and converts row group `i` within the
    time bound of one step; `check(rows)` compares the rows read with the footer's count.
    Raises `Refused`, `Unreadable` or what pyarrow raises for a corrupt file; a column named
    in `columns` that the file lacks is `Refused`, naming it and the columns there are.
    """

    def __init__(
        self,
        source: pa.NativeFile,
        limits: ParseLimits,
        *,
        columns: Sequence[str] | None = None,
        seconds: float | None = READ_SECONDS,
    ) -> None:
        self.seconds = bound(seconds, source.size())
        self.reader = step(self.seconds, "its footer and schema", lambda: _parquet(source))
        self.metadata = self.reader.metadata
        schema = self.reader.schema_arrow
        if columns is not None:
            missing = [name for name in columns if name not in schema.names]
            if missing:
                raise Refused(
                    f"it has no column {', '.join(map(repr, missing))}; its columns are "
                    f"{', '.join(map(repr, schema.names[:20]))}"
                    + (" ..." if len(schema.names) > 20 else "")
                )
            schema = pa.schema([schema.field(name) for name in columns], metadata=schema.metadata)
        self.columns = None if columns is None else list(columns)
        check_schema(schema, limits, self.metadata.num_rows)
        self.schema = schema
        self.fit = Fit(schema)
        self.limits = limits
        self.reads = DictionaryReads(self.reader, schema, functools.partial(_parquet, source))

    @property
    def count(self) -> int:
        """How many row groups the file has."""
        return int(self.metadata.num_row_groups)

    def frame(self, index: int) -> pl.DataFrame:
        """Row group `index` as a checked frame (the selected columns only)."""

        def read() -> pl.DataFrame:
            picked = self.reads.picked(index)
            table = _groups(self.reads.reader(picked), [index], self.columns, threads=True)
            validate(table)
            if not (table.schema.equals(self.fit.schema) or self.fit.fits(table.schema)):
                self.fit = Fit(_planned(table.schema, self.schema))  # not seen; cheap
            return self.fit.frame(table)

        frame = step(self.seconds, f"row group {index + 1:,}", read)
        check_frame(frame, self.limits)
        return frame

    def frames(self, index: int, batch_rows: int) -> Iterator[pl.DataFrame]:
        """Row group `index` as checked frames of at most `batch_rows` rows each (none for an
        empty row group): a big row group in bounded memory, each batch a step in time."""
        reader, _ = self.reads.reader(self.reads.picked(index))
        batches = reader.iter_batches(
            batch_size=batch_rows, row_groups=[index], columns=self.columns, use_threads=True
        )
        count = 0
        while True:
            count += 1
            what = f"row group {index + 1:,}, batch {count:,}"
            frame = step(self.seconds, what, lambda: self._next(batches))
            if frame is None:
                return
            check_frame(frame, self.limits)
            yield frame

    def _next(self, batches: Iterator[pa.RecordBatch]) -> pl.DataFrame | None:
        batch = next(batches, None)
        if batch is None:
            return None
        validate(batch)
        if not (batch.schema.equals(self.fit.schema) or self.fit.fits(batch.schema)):
            self.fit = Fit(_planned(batch.schema, self.schema))  # not seen; cheap
        return self.fit.frame(batch)

    def empty(self) -> pl.DataFrame:
        """A frame with the (selected) columns and no rows."""
        return self.fit.frame(self.schema.empty_table())

    def check(self, rows: int) -> None:
        """Refuse a file whose row groups held other than the rows its footer counts."""
        check_rows(rows, int(self.metadata.num_rows))


def _read_whole(raw: bytes, kind: Format, limits: ParseLimits) -> pl.DataFrame:
    source = pa.BufferReader(raw)
    threads = len(raw) > _THREADS_FROM
    if kind == "parquet":
        return _parquet_whole(source, limits, threads)
    else:
        opener = pa_ipc.open_file if raw.startswith(b"ARROW1") else pa_ipc.open_stream
        stream = opener(source, options=_ipc_options(threads))
        check_schema(stream.schema, limits)
        table = stream.read_all()
        fit = Fit(table.schema)
    validate(table)
    return fit.frame(table)


def _parquet_whole(source: pa.NativeFile, limits: ParseLimits, threads: bool) -> pl.DataFrame:
    """A whole Parquet file as one frame: runs of row groups read plainly in one go, a row
    group with string columns to read as dictionaries (`arrowstrings`) on its own."""
    reader = _parquet(source)
    schema, meta = reader.schema_arrow, reader.metadata
    check_schema(schema, limits, meta.num_rows)
    fit = Fit(schema)
    opener = functools.partial(_parquet, source)
    reads = DictionaryReads(reader, schema, opener, least=_WHOLE_DICTIONARY_ROWS)
    runs: list[tuple[dict[int, int], list[int]]] = []
    for group in range(meta.num_row_groups):
        picked = reads.picked(group)
        if runs and not picked and not runs[-1][0]:
            runs[-1][1].append(group)
        else:
            runs.append((picked, [group]))
    frames, rows = [], 0
    for picked, groups in runs or [({}, [])]:
        table = _groups(reads.reader(picked), groups, None, threads=threads)
        validate(table)
        rows += table.num_rows
        frames.append(fit.frame(table))
    check_rows(rows, meta.num_rows)
    return frames[0] if len(frames) == 1 else pl.concat(frames, how="vertical", rechunk=False)


def _groups(
    read: tuple[pq.ParquetFile, pa.Schema],
    groups: list[int],
    columns: list[str] | None,
    *,
    threads: bool,
) -> pa.Table:
    """Row groups `groups` (all, if none are given) of a Parquet file, maybe only `columns`,
    read by `read` (a reader and the schema it reads).

    Through batches, not `read()` or `read_row_group()`: a failed threaded `read()` leaves
    pyarrow tasks running, and the process aborts ("terminate called without an active
    exception") if it exits within their few milliseconds (seen in 9 of 10 runs of a corrupt
    file)."""
    reader, schema = read
    if columns is not None:
        schema = pa.schema([schema.field(name) for name in columns], metadata=schema.metadata)
    batches = reader.iter_batches(
        batch_size=_WHOLE_BATCH_ROWS,
        row_groups=groups or None,
        columns=columns,
        use_threads=threads,
    )
    return pa.Table.from_batches(list(batches), schema=schema)


def _planned(schema: pa.Schema, plan: pa.Schema) -> pa.Schema:
    """`schema` with a dictionary field that `plan` (by name) has as plain values made so: a
    column read as a dictionary to save time (`arrowstrings`), not what the file holds."""
    fields = [
        plan.field(field.name)
        if pa.types.is_dictionary(field.type)
        and field.name in plan.names
        and not pa.types.is_dictionary(plan.field(field.name).type)
        else field
        for field in schema
    ]
    return pa.schema(fields, metadata=schema.metadata)


def _open(source: pa.NativeFile, kind: Format, batch_rows: int, limits: ParseLimits) -> _Opened:
    threads = source.size() > _THREADS_FROM
    if kind == "parquet":
        reader = _parquet(source)
        schema, rows = reader.schema_arrow, reader.metadata.num_rows
        batches: Iterator[pa.RecordBatch] = reader.iter_batches(
            batch_size=batch_rows, use_threads=threads
        )
    elif source.read(6) == b"ARROW1":
        ipc_file = pa_ipc.open_file(source, options=_ipc_options(threads))
        batches = (ipc_file.get_batch(i) for i in range(ipc_file.num_record_batches))
        schema, rows = ipc_file.schema, None
    else:
        source.seek(0)
        ipc_stream = pa_ipc.open_stream(source, options=_ipc_options(threads))
        batches, schema, rows = iter(ipc_stream), ipc_stream.schema, None
    check_schema(schema, limits, rows)
    return _Opened(schema, Fit(schema), batches, rows)


def _ipc_options(threads: bool) -> pa_ipc.IpcReadOptions:
    return pa_ipc.IpcReadOptions(ensure_native_endian=True, use_threads=threads)


def _parquet(
    source: pa.NativeFile,
    metadata: pq.FileMetaData | None = None,
    dictionaries: Sequence[int] = (),
) -> pq.ParquetFile:
    """A reader of a Parquet file, maybe with its footer read already, maybe reading some
    string leaf columns as dictionaries."""
    return pq.ParquetFile(
        source,
        metadata=metadata,
        read_dictionary=list(dictionaries) or None,
        coerce_int96_timestamp_unit="us",
        page_checksum_verification=True,
    )


def _next_frame(opened: _Opened) -> pl.DataFrame | None:
    batch = next(opened.batches, None)
    if batch is None:
        return None
    validate(batch)
    if not batch.schema.equals(opened.fit.schema):  # not seen; cheap to allow for
        opened.fit = Fit(batch.schema)
    return opened.fit.frame(batch)
