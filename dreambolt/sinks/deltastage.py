"""Rows on their way into a Delta table: converted once, kept until the commit lands.

A Delta commit can lose a race with another writer; the write is then done again on the new
snapshot. So a file's frames, which can be read only once, are staged first: converted to types
Delta stores (`deltatypes.storable`), given their lineage columns, and kept in memory up to
`MEMORY_CAP` bytes, beyond that in Arrow IPC files in a spool folder (one per run of frames of
one schema). Memory stays bounded by a frame and the cap, whatever the file's size.

`Staged.reader` streams the rows, every column fitted to the table as it is at that snapshot
(`deltatypes.fit_to_table`: a value that would not survive the conversion fails the file).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.ipc as ipc

from dreambolt.sinks.base import FileWrite
from dreambolt.sinks.deltatypes import fit_to_table, storable
from dreambolt.sinks.frames import check_lineage, signature, with_lineage
from dreambolt.spool import Spool, open_spool

__all__ = ["MEMORY_CAP", "Staged", "stage_files", "stage_frames"]

MEMORY_CAP = 64 << 20  # bytes of staged rows kept in memory before spilling to disk
_INGESTED = "_ingested_at"
_SPILL = ipc.IpcWriteOptions(compression="lz4")  # fast; spilled rows take less disk and IO


class Staged:
    """Converted rows of one or more files, re-readable until `close`."""

    def __init__(self, what: str) -> None:
        self.what = what  # the file (or files) for messages
        self.rows = 0
        self.rows_by_uri: dict[str, int] = {}
        self._frames: list[pl.DataFrame] = []
        self._files: list[Path] = []
        self._spool: Spool | None = None
        self._held = 0
        self._schema: dict[str, pl.DataType] = {}  # union of the parts' columns, first seen

    def add(self, frame: pl.DataFrame, uri: str) -> None:
        """Keep `frame` (converted, with lineage): in memory, or spilled once over the cap."""
        self.rows += frame.height
        for name, kind in frame.schema.items():
            if self._schema.get(name, pl.Null) == pl.Null:  # a real type beats all-null
                self._schema[name] = kind
        size = int(frame.estimated_size())
        if self._spool is None and self._held + size <= MEMORY_CAP:
            self._frames.append(frame)
            self._held += size
            return
        self._spill(frame)

    def _spill(self, frame: pl.DataFrame) -> None:
        if self._spool is None:
            self._spool = open_spool()
            held, self._frames, self._held = self._frames, [], 0
            for part in held:
                self._write(part)
        self._write(frame)

    def _write(self, frame: pl.DataFrame) -> None:
        assert self._spool is not None
        path = self._spool.path / f"part-{len(self._files):06d}.arrow"
        table = frame.to_arrow()
        with (
            pa.OSFile(str(path), "wb") as sink,
            ipc.new_file(sink, table.schema, options=_SPILL) as writer,
        ):
            writer.write_table(table)
        self._files.append(path)

    def frames(self, uris: set[str] | None = None) -> Iterator[pl.DataFrame]:
        """The staged parts in order (only the rows of `uris`, when given)."""
        for part in self._parts():
            if uris is not None:
                part = part.filter(pl.col("_source_uri").is_in(list(uris)))
            if part.height:
                yield part

    def _parts(self) -> Iterator[pl.DataFrame]:
        yield from self._frames
        for path in self._files:
            # Read, not mapped: mapped pages would count in the process's RSS until unmapped.
            with pa.OSFile(str(path), "rb") as source:
                reader = ipc.open_file(source)
                for i in range(reader.num_record_batches):
                    batch = pl.from_arrow(reader.get_batch(i))
                    assert isinstance(batch, pl.DataFrame)
                    yield batch

    def reader(
        self, table: pa.Schema | None, table_name: str, uris: set[str] | None = None
    ) -> pa.RecordBatchReader:
        """The rows, each column fitted to `table` (the table's schema at the snapshot the
        write uses; None: a new table). Raises SinkError before anything is read when the
        staged types cannot go into the table."""
        empty = pl.DataFrame(schema=self._schema)
        shape = fit_to_table(empty, table, self.what, table_name).to_arrow().schema
        return pa.RecordBatchReader.from_batches(shape, self._batches(shape, table_name, uris))

    def _batches(
        self, shape: pa.Schema, table_name: str, uris: set[str] | None
    ) -> Iterator[pa.RecordBatch]:
        names = shape.names
        for part in self.frames(uris):
            # Fitted to the table and to the first part that brought each new column.
            fitted = fit_to_table(part, shape, self.what, table_name)
            missing = [n for n in names if n not in fitted.columns]
            if missing:  # columns other parts of this staging have
                fitted = fitted.with_columns(pl.lit(None).alias(n) for n in missing)
            arrow = fitted.select(names).to_arrow()
            if arrow.schema != shape:
                arrow = arrow.cast(shape)
            yield from arrow.to_batches()

    def close(self) -> None:
        self._frames = []
        if self._spool is not None:
            with contextlib.suppress(OSError):
                self._spool.close()
            self._spool = None


def stage_frames(
    frames: Iterable[pl.DataFrame], uri: str, etag: str | None, now: datetime
) -> Staged:
    """Stage one file's frames (consumed here), each with the file's lineage columns."""
    staged = Staged(uri)
    try:
        for frame in frames:
            if not frame.width:
                continue
            check_lineage(frame, uri)
            staged.add(_lineage(storable(frame, uri), uri, etag, now), uri)
    except BaseException:
        staged.close()
        raise
    staged.rows_by_uri[uri] = staged.rows
    return staged


def stage_files(files: Sequence[FileWrite], now: datetime) -> Staged:
    """Stage small in-memory files: the files of one shape converted together."""
    named = ", ".join(f.uri for f in files[:3]) + (
        f" and {len(files) - 3} more" if len(files) > 3 else ""
    )
    staged = Staged(named or "no files")
    groups: dict[tuple[tuple[str, str], ...], list[FileWrite]] = {}
    for f in files:
        staged.rows_by_uri[f.uri] = f.frame.height
        if f.frame.width:
            check_lineage(f.frame, f.uri)
            groups.setdefault(signature(f.frame), []).append(f)
    for members in groups.values():
        who = members[0].uri if len(members) == 1 else staged.what
        frame = storable(with_lineage(members), who)
        staged.add(frame.with_columns(pl.lit(now, pl.Datetime("us", "UTC")).alias(_INGESTED)), who)
    return staged


def _lineage(frame: pl.DataFrame, uri: str, etag: str | None, now: datetime) -> pl.DataFrame:
    return frame.with_columns(
        pl.lit(uri, pl.String).alias("_source_uri"),
        pl.lit(etag, pl.String).alias("_source_etag"),
        pl.lit(now, pl.Datetime("us", "UTC")).alias(_INGESTED),
    )
