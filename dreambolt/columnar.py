"""Reading Parquet and Arrow IPC files a record batch at a time, as checked polars frames."""

from __future__ import annotations

from collections.abc import Iterator

import polars as pl
import pyarrow as pa
import pyarrow.ipc as pa_ipc
import pyarrow.parquet as pq

from .detect import Format
from .limits import ParseLimits, check_arrow_schema, check_frame

__all__ = ["arrow_frames", "read_arrow"]


def arrow_frames(
    source: pa.NativeFile, kind: Format, batch_rows: int, limits: ParseLimits
) -> Iterator[pl.DataFrame]:
    """Yield a Parquet or Arrow IPC file's record batches as frames (at least one, maybe empty).

    Each batch is validated in full first: pyarrow reads a corrupt IPC file into arrays that
    would crash the process once polars touches them.
    """
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
    check_arrow_schema(schema, limits)
    empty = True
    for batch in batches:
        batch.validate(full=True)
        frame = _to_frame(batch)
        if empty:
            check_frame(frame, limits)
            empty = False
        yield frame
    if empty:
        frame = _to_frame(schema.empty_table())
        check_frame(frame, limits)
        yield frame


def read_arrow(raw: bytes, kind: Format, limits: ParseLimits) -> pl.DataFrame:
    """Read a whole Parquet or Arrow IPC file (file or stream) held in memory as one frame."""
    if kind == "parquet":
        check_arrow_schema(pq.ParquetFile(pa.BufferReader(raw)).schema_arrow, limits)
        return pl.read_parquet(raw)
    stream = not raw.startswith(b"ARROW1")
    opener = pa_ipc.open_stream if stream else pa_ipc.open_file
    check_arrow_schema(opener(pa.BufferReader(raw)).schema, limits)
    return pl.read_ipc_stream(raw) if stream else pl.read_ipc(raw)


def _to_frame(data: pa.RecordBatch | pa.Table) -> pl.DataFrame:
    frame = pl.from_arrow(data)
    if not isinstance(frame, pl.DataFrame):
        raise TypeError(f"pyarrow gave {type(data).__name__}, not a table")
    return frame
