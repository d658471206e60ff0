"""A file's frames on their way into DuckDB: Arrow streams of one schema, lineage columns.

`FrameStream` hands a file's frames over as Arrow streams, one per run of frames of one schema,
so that DuckDB writes them out as it reads them; `with_lineage` puts a group of small files'
rows in one frame with the `_source_uri`/`_source_etag` of every row.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

import polars as pl
import pyarrow as pa

from dreambolt.errors import SinkError
from dreambolt.sinks.base import FileWrite

__all__ = [
    "LINEAGE",
    "FileWrite",
    "FrameStream",
    "Signature",
    "check_lineage",
    "signature",
    "with_lineage",
]

LINEAGE = ("_source_uri", "_source_etag", "_ingested_at")
Signature = tuple[tuple[str, str], ...]  # a frame's (column, dtype) pairs


class FrameStream:
    """A file's frames as Arrow streams, one per run of frames of one schema; counts the rows,
    and keeps an exception raised while DuckDB was pulling batches (DuckDB would re-wrap it).

    Nothing is taken from `frames` until `segments` is iterated.
    """

    def __init__(self, frames: Iterable[pl.DataFrame], uri: str) -> None:
        self._frames = iter(frames)
        self._uri = uri
        self.started = False  # a frame was taken (the write can no longer be replayed)
        self.rows = 0
        self._pending: pl.DataFrame | None = None  # the head of the next run
        self._head: pl.DataFrame | None = None
        self.head_arrow: pa.Table | None = None
        self._error: BaseException | None = None

    def segments(self) -> Iterator[pl.DataFrame]:
        """The first frame of each run of frames of one schema; `reader` streams the run."""
        while True:
            head, self._pending = self._pending, None
            if head is None:
                head = self._next()
            if head is None:
                return
            check_lineage(head, self._uri)
            self._head, self.head_arrow = head, head.to_arrow()
            yield head

    def _next(self) -> pl.DataFrame | None:
        for frame in self._frames:
            self.started = True
            if frame.width:
                return frame
        return None

    def reader(self) -> pa.RecordBatchReader:
        assert self._head is not None and self.head_arrow is not None
        schema = self.head_arrow.schema
        return pa.RecordBatchReader.from_batches(
            schema, self._batches(self._head, self.head_arrow, schema)
        )

    def _batches(
        self, head: pl.DataFrame, first: pa.Table, schema: pa.Schema
    ) -> Iterator[pa.RecordBatch]:
        shape = signature(head)
        try:
            self.rows += head.height
            yield from first.to_batches()
            while (frame := self._next()) is not None:
                if signature(frame) != shape:
                    self._pending = frame  # the next run's head: this INSERT ends here
                    return
                table = frame.to_arrow()
                if table.schema != schema:
                    table = table.cast(schema)
                self.rows += frame.height
                yield from table.to_batches()
        except BaseException as exc:
            self._error = exc
            raise

    def reraise(self) -> None:
        if self._error is not None:
            raise self._error


def with_lineage(files: Sequence[FileWrite]) -> pl.DataFrame:
    """The files' rows (all of one shape) in one frame, with their `_source_uri`/`_etag`.

    A handful of polars calls for the whole group, not a few per file: each call releases and
    retakes the GIL, and while the event loop is busy every retake can wait for a switch
    interval (5 ms), which made a group of 256 small files take ten times its CPU time.
    """
    frames = [f.frame for f in files]
    data = frames[0] if len(frames) == 1 else pl.concat(frames, rechunk=False)
    filled = [f for f in files if f.frame.height]  # explode() makes a null row of an empty list
    lineage = pl.DataFrame(
        {
            "_source_uri": [f.uri for f in filled],
            "_source_etag": [f.etag for f in filled],
            "rows": [f.frame.height for f in filled],
        },
        schema={"_source_uri": pl.String, "_source_etag": pl.String, "rows": pl.UInt32},
    ).select(pl.exclude("rows").repeat_by("rows").explode())
    return pl.concat([data, lineage], how="horizontal")


def check_lineage(frame: pl.DataFrame, uri: str) -> None:
    """Refuse a frame that has a column of its own named like a lineage column."""
    clash = [c for c in LINEAGE if c in frame.columns]
    if clash:
        raise SinkError(
            f"{uri}: the file has column(s) {clash} that DreamBolt reserves for "
            "lineage; rename them before ingesting"
        )


def signature(frame: pl.DataFrame) -> Signature:
    """The frame's (column, dtype) pairs: frames of one signature go in one INSERT."""
    return tuple((name, str(dtype)) for name, dtype in frame.schema.items())
