"""Parquet string columns that the file stores as dictionaries, read as dictionaries and handed
to polars as the plain strings they are.

pyarrow reads a dictionary-encoded string column by copying each value out of the dictionary
into one big string array; `validate(full=True)` then checks all those bytes as UTF-8 and
polars copies them again into its string views. Read as a dictionary (`read_dictionary`), the
column is the dictionary (checked once) and an index per row (checked in range), and polars
makes its strings by gathering views of the dictionary's values: on a 265 MB file of 8M rows
whose two string columns are dictionary-encoded, 0.7 s of CPU became 0.15 s.

That pays only where the data pages really are dictionary indices: a writer falls back to
plain values when a column chunk's dictionary grows too big (1 MiB in parquet-cpp, parquet-mr,
parquet-rs), and pyarrow then hashes every plain value into a dictionary, costing more than
reading it plainly (about 1.8 times, on mostly-unique strings); a dictionary nearly as long as
the column also costs more than it saves. pyarrow does not show a chunk's page encodings
(`encoding_stats`), so a chunk is read as a dictionary where its footer entry rules that out
cheaply: it has a dictionary page, only dictionary (and level) encodings, at least
`_MIN_VALUES` values and at most `_BYTES_PER_VALUE` uncompressed bytes a value, which index
pages (32 bits a value at most) and a dictionary of fewer entries than rows fit within and
plain values (4 bytes of length each, plus their bytes) mostly do not. A wrong guess costs
time, never values: a column read as a dictionary comes out as the same polars strings.

Only flat top-level string and binary columns are read so (not nested ones, nor a column the
file's Arrow schema already calls a dictionary: that one stays a polars Categorical).
"""

from __future__ import annotations

from collections.abc import Callable

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

__all__ = ["PLAIN_TYPES", "DictionaryReads", "string_leaves", "strings"]

PLAIN_TYPES = (pa.string(), pa.large_string(), pa.binary(), pa.large_binary())
_DICTIONARY_ENCODINGS = frozenset(
    {"PLAIN", "PLAIN_DICTIONARY", "RLE_DICTIONARY", "RLE", "BIT_PACKED"}
)
_MIN_VALUES = 4096  # below this, reading as a dictionary saves less than its overhead
_BYTES_PER_VALUE = 2.5  # see the module docstring


def string_leaves(schema: pa.Schema, metadata: pq.FileMetaData) -> dict[int, int]:
    """The flat top-level string/binary fields of `schema` (by position) that can be read as
    dictionaries, and their leaf column in the file; none if two fields share a name."""
    if len(set(schema.names)) != len(schema.names):
        return {}
    wanted = {field.name: i for i, field in enumerate(schema) if field.type in PLAIN_TYPES}
    if not wanted:
        return {}
    parquet = metadata.schema
    paths: dict[str, list[int]] = {}
    for leaf in range(len(parquet)):
        paths.setdefault(parquet.column(leaf).path, []).append(leaf)
    found = {}
    for name, position in wanted.items():
        leaves = paths.get(name, [])
        if len(leaves) != 1:  # a struct "a" with a child "b" has the path of a field "a.b"
            continue
        column = parquet.column(leaves[0])
        flat = column.max_repetition_level == 0 and column.max_definition_level <= 1
        if flat and column.physical_type == "BYTE_ARRAY":
            found[position] = leaves[0]
    return found


def _dictionary_chunk(chunk: pq.ColumnChunkMetaData) -> bool:
    """Whether a column chunk's data pages are (most likely) all dictionary indices."""
    values = int(chunk.num_values)
    return (
        values >= _MIN_VALUES
        and bool(chunk.has_dictionary_page)
        and chunk.total_uncompressed_size <= _BYTES_PER_VALUE * values
        and _DICTIONARY_ENCODINGS.issuperset(chunk.encodings)
    )


class DictionaryReads:
    """Which string columns of each row group of one Parquet file to read as dictionaries,
    and a reader of the file for each such choice (sharing the footer already read)."""

    def __init__(
        self,
        plain: pq.ParquetFile,
        schema: pa.Schema,
        opener: Callable[[pq.FileMetaData, list[int]], pq.ParquetFile],
        *,
        least: int = _MIN_VALUES,
    ) -> None:
        """`schema` is what is read (the file's, or its selected columns); `opener` opens the
        same file again, reading the given leaf columns as dictionaries; a row group of fewer
        than `least` rows is read plainly."""
        self.metadata = plain.metadata
        self.schema = schema
        self.leaves: dict[int, int] | None = None  # worked out once a row group is big enough
        self.readers = {frozenset[int](): (plain, plain.schema_arrow)}
        self.opener = opener
        self.least = max(least, _MIN_VALUES)

    def picked(self, group: int) -> dict[int, int]:
        """The fields (by position) to read as dictionaries in row group `group`, and their
        leaf columns."""
        row_group = self.metadata.row_group(group)
        if row_group.num_rows < self.least:
            return {}
        if self.leaves is None:
            self.leaves = string_leaves(self.schema, self.metadata)
        return {
            position: leaf
            for position, leaf in self.leaves.items()
            if _dictionary_chunk(row_group.column(leaf))
        }

    def reader(self, picked: dict[int, int]) -> tuple[pq.ParquetFile, pa.Schema]:
        """A reader of the file reading the `picked` leaves as dictionaries, and the schema
        it reads (of the whole file)."""
        key = frozenset(picked.values())
        if key not in self.readers:
            reader = self.opener(self.metadata, sorted(key))
            self.readers[key] = reader, reader.schema_arrow
        return self.readers[key]


def strings(column: pa.ChunkedArray | pa.Array, name: str) -> pl.Series:
    """A validated dictionary column of strings or bytes as a polars String or Binary series of
    its values: the dictionary's values gathered by its indices, chunk by chunk."""
    chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
    value_type = column.type.value_type
    series = pl.Series(name, [], dtype=pl.String if _is_text(value_type) else pl.Binary)
    for chunk in chunks:
        values = pl.Series(name, chunk.dictionary)
        part = values[pl.Series(name, _positions(chunk.indices))]
        series = part if not len(series) else series.append(part)
    return series


def _positions(indices: pa.Array) -> pa.Array:
    """Validated dictionary indices as unsigned 32-bit integers, which polars gathers by
    directly (signed ones it first checks for negative positions, which take from the end):
    int32, what pyarrow reads, by reinterpreting its buffers (no copy; validation found every
    valid one in range, and a slot under a null is never looked at)."""
    if pa.types.is_int32(indices.type) or pa.types.is_uint32(indices.type):
        return indices.view(pa.uint32())
    return indices.cast(pa.uint32())


def _is_text(dtype: pa.DataType) -> bool:
    return bool(pa.types.is_string(dtype) or pa.types.is_large_string(dtype))
