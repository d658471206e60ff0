"""Parquet string columns read as dictionaries (`arrowstrings`) come out exactly as a plain read
gave them: same values, same polars types, through `RowGroups` and `read_arrow` alike.

The reference is what DreamBolt did before: pyarrow's plain reading (no `read_dictionary`)
converted by `Fit`. Each test also checks that the dictionary path was taken where it should be
(or not), so that it cannot pass by reading everything plainly.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from polars.testing import assert_frame_equal
from test_columnar_craft import PBYTES, REQUIRED, UTF8, Chunk, Node, parquet_file

from dreambolt.errors import FormatError
from dreambolt.formats import arrowstrings, columnar
from dreambolt.formats import read as formats
from dreambolt.formats.arrowfit import Fit
from dreambolt.formats.detect import FileFormat
from dreambolt.formats.limits import DEFAULT_LIMITS

ROWS = 20_000
WORDS = np.array(
    ["alpha", "beta", "gamma", "délta ünïcode", "a much longer value than twelve bytes"]
)


def _parquet(table: pa.Table, **options: Any) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink, **options)
    return sink.getvalue()


def _words(rows: int, seed: int, nulls: float = 0.1) -> pa.Array:
    rng = np.random.default_rng(seed)
    picked = WORDS[rng.integers(0, len(WORDS), rows)]
    return pa.array(picked.tolist(), mask=rng.random(rows) < nulls)


def _plain(raw: bytes, columns: list[str] | None = None, group: int | None = None) -> pl.DataFrame:
    """What DreamBolt read before: pyarrow's plain reading, converted by `Fit`."""
    reader = pq.ParquetFile(
        pa.BufferReader(raw), coerce_int96_timestamp_unit="us", page_checksum_verification=True
    )
    if group is None:
        table = reader.read(columns=columns, use_threads=False)
    else:
        table = reader.read_row_group(group, columns=columns, use_threads=False)
    assert not any(pa.types.is_dictionary(f.type) for f in table.schema if f.name.startswith("s"))
    return Fit(table.schema).frame(table)


def _groups(raw: bytes, columns: list[str] | None = None) -> tuple[list[pl.DataFrame], int]:
    """Each row group through `RowGroups`, and how many string columns it read as dictionaries."""
    groups = columnar.RowGroups(pa.BufferReader(raw), DEFAULT_LIMITS, columns=columns)
    frames = [groups.frame(i) for i in range(groups.count)]
    groups.check(sum(frame.height for frame in frames))
    return frames, sum(len(groups.reads.picked(i)) for i in range(groups.count))


def _same_every_way(raw: bytes, *, picked: bool, columns: list[str] | None = None) -> pl.DataFrame:
    frames, dictionaries = _groups(raw, columns)
    assert bool(dictionaries) == picked
    for i, frame in enumerate(frames):
        assert_frame_equal(frame, _plain(raw, columns, group=i))
    whole = columnar.read_arrow(raw, "parquet", DEFAULT_LIMITS)
    reference = _plain(raw)
    assert_frame_equal(whole, reference)
    assert whole.schema == reference.schema
    return whole


def test_dictionary_encoded_strings_come_out_as_strings_with_their_nulls() -> None:
    table = pa.table(
        {
            "n": pa.array(np.arange(ROWS)),
            "s": _words(ROWS, 1),
            "s_large": _words(ROWS, 2).cast(pa.large_string()),
            "s_bytes": _words(ROWS, 3).cast(pa.binary()),
            "s_large_bytes": _words(ROWS, 4).cast(pa.large_binary()),
        }
    )
    frame = _same_every_way(_parquet(table, row_group_size=6_000), picked=True)
    assert frame.schema == pl.Schema(
        {"n": pl.Int64, "s": pl.String, "s_large": pl.String, "s_bytes": pl.Binary}
        | {"s_large_bytes": pl.Binary}
    )
    assert frame["s"].to_list() == table.column("s").to_pylist()
    assert frame["s_bytes"].to_list() == table.column("s_bytes").to_pylist()


def test_a_column_the_file_calls_a_dictionary_stays_categorical() -> None:
    table = pa.table({"d": _words(ROWS, 5).dictionary_encode(), "s": _words(ROWS, 6)})
    frame = _same_every_way(_parquet(table), picked=True)
    assert frame.schema["d"] == pl.Categorical()
    assert frame["d"].cast(pl.String).to_list() == table.column("d").to_pylist()


def test_null_heavy_and_all_null_columns() -> None:
    table = pa.table(
        {
            "s_mostly_null": _words(ROWS, 7, nulls=0.99),
            "s_all_null": pa.array([None] * ROWS, pa.string()),
            "s_no_null": _words(ROWS, 8, nulls=0.0),
        }
    )
    frame = _same_every_way(_parquet(table, row_group_size=5_000), picked=True)
    assert frame["s_all_null"].null_count() == ROWS
    assert frame["s_all_null"].dtype == pl.String


def test_nested_strings_are_read_plainly() -> None:
    words = _words(ROWS, 9)
    table = pa.table(
        {
            "lists": pa.array([[w, w] if w is not None else None for w in words.to_pylist()]),
            "structs": pa.StructArray.from_arrays([words], names=["w"]),
        }
    )
    _same_every_way(_parquet(table), picked=False)


def test_mostly_unique_strings_are_read_plainly() -> None:
    """A writer falls back to plain values once the dictionary is big: reading those as a
    dictionary would hash every one."""
    rng = np.random.default_rng(10)
    unique = pa.array([f"value {i} {rng.integers(1 << 40)}" for i in range(ROWS)])
    raw = _parquet(pa.table({"s": unique}), dictionary_pagesize_limit=16_384)
    _same_every_way(raw, picked=False)


def test_a_wrong_guess_costs_time_never_values(monkeypatch: pytest.MonkeyPatch) -> None:
    """Forced to read fallen-back (plain) pages as a dictionary, pyarrow hashes them: slower,
    the same values."""
    monkeypatch.setattr(arrowstrings, "_BYTES_PER_VALUE", 1e9)
    rng = np.random.default_rng(11)
    unique = pa.array([f"value {i} {rng.integers(1 << 40)}" for i in range(ROWS)])
    raw = _parquet(pa.table({"s": unique, "w": _words(ROWS, 12)}), dictionary_pagesize_limit=16_384)
    _same_every_way(raw, picked=True)


def test_row_groups_read_some_ways_and_others_join_as_one_frame() -> None:
    """Row groups of low and high cardinality: some read as dictionaries, some plainly."""
    rng = np.random.default_rng(13)
    low = pa.table({"s": _words(8_000, 14), "n": pa.array(np.arange(8_000))})
    high = pa.table(
        {"s": pa.array([f"{rng.integers(1 << 50)}" for _ in range(8_000)]), "n": low.column("n")}
    )
    sink = io.BytesIO()
    with pq.ParquetWriter(sink, low.schema) as writer:
        for part in (low, high, high, low, low):
            writer.write_table(part)
    raw = sink.getvalue()
    groups = columnar.RowGroups(pa.BufferReader(raw), DEFAULT_LIMITS)
    assert [bool(groups.reads.picked(i)) for i in range(groups.count)] == [1, 0, 0, 1, 1]
    _same_every_way(raw, picked=True)


def test_selected_columns_in_any_order() -> None:
    table = pa.table({"a": pa.array(np.arange(ROWS)), "s": _words(ROWS, 15), "t": _words(ROWS, 16)})
    raw = _parquet(table)
    frames, dictionaries = _groups(raw, columns=["t", "a"])
    assert dictionaries == 1
    assert frames[0].columns == ["t", "a"]
    assert_frame_equal(frames[0], _plain(raw, ["t", "a"], group=0))


@pytest.mark.parametrize("groups", [0, 1])
def test_no_row_groups_and_empty_ones(groups: int) -> None:
    schema = pa.schema([("s", pa.string()), ("n", pa.int64())])
    sink = io.BytesIO()
    with pq.ParquetWriter(sink, schema) as writer:
        if groups:
            writer.write_table(schema.empty_table())
    raw = sink.getvalue()
    assert pq.ParquetFile(io.BytesIO(raw)).metadata.num_row_groups == groups
    frame = columnar.read_arrow(raw, "parquet", DEFAULT_LIMITS)
    assert frame.schema == pl.Schema({"s": pl.String, "n": pl.Int64})
    assert frame.height == 0
    row_groups = columnar.RowGroups(pa.BufferReader(raw), DEFAULT_LIMITS)
    assert row_groups.count == groups
    assert_frame_equal(row_groups.empty(), frame)
    for i in range(groups):
        assert_frame_equal(row_groups.frame(i), frame)


@pytest.mark.parametrize("kind", [pa.Table, pa.RecordBatch])
def test_sliced_and_empty_dictionary_data_converts_as_plain_data(kind: Any) -> None:
    words = _words(ROWS, 17)
    plain = kind.from_arrays([words, pa.array(np.arange(ROWS))], names=["s", "n"])
    coded = kind.from_arrays([words.dictionary_encode(), plain.column(1)], names=["s", "n"])
    fit = Fit(plain.schema)
    assert fit.fits(coded.schema)
    for start, length in ((0, ROWS), (1, 7), (ROWS - 5, 5), (123, 0), (4_000, 9_000)):
        assert_frame_equal(
            fit.frame(coded.slice(start, length)), fit.frame(plain.slice(start, length))
        )


def test_chunks_with_different_dictionaries_convert_in_order() -> None:
    chunks = [_words(1_000, seed).dictionary_encode() for seed in range(3)]
    coded = pa.table({"s": pa.chunked_array(chunks)})
    plain = pa.table({"s": pa.chunked_array([c.dictionary_decode() for c in chunks])})
    assert_frame_equal(Fit(plain.schema).frame(coded), Fit(plain.schema).frame(plain))


def test_fit_tells_string_dictionaries_from_other_types() -> None:
    fit = Fit(pa.schema([("s", pa.string()), ("b", pa.binary()), ("n", pa.int64())]))
    assert fit.fits(pa.schema([("s", pa.dictionary(pa.int32(), pa.large_string())), *_rest()]))
    assert not fit.fits(pa.schema([("s", pa.dictionary(pa.int32(), pa.binary())), *_rest()]))
    assert not fit.fits(pa.schema([("s", pa.dictionary(pa.int32(), pa.int64())), *_rest()]))
    assert not fit.fits(pa.schema([("t", pa.string()), *_rest()]))
    assert not fit.fits(pa.schema([pa.field("s", pa.string(), nullable=False), *_rest()]))


def _rest() -> list[pa.Field]:
    return [pa.field("b", pa.binary()), pa.field("n", pa.int64())]


# --- corrupt dictionaries ------------------------------------------------------------------------


def _coded(dictionary: list[Any], indices: list[int], width: int | None = None) -> bytes:
    chunk = Chunk(["s"], PBYTES, indices, dictionary=dictionary, bit_width=width)
    return parquet_file([Node("s", REQUIRED, PBYTES, converted=UTF8)], [chunk], len(indices))


def test_a_crafted_dictionary_file_takes_the_dictionary_path() -> None:
    raw = _coded(["x", "yy", "zzz"], [i % 3 for i in range(5_000)])
    _same_every_way(raw, picked=True)


@pytest.mark.parametrize(
    ("dictionary", "indices", "width"),
    [
        (["x", "yy"], [i % 3 for i in range(5_000)], 2),  # an index past the dictionary
        ([b"x", b"\xff\xfe"], [i % 2 for i in range(5_000)], None),  # not UTF-8
    ],
    ids=["index out of range", "invalid utf-8"],
)
def test_corrupt_dictionaries_are_refused(
    dictionary: list[Any], indices: list[int], width: int | None
) -> None:
    raw = _coded(dictionary, indices, width)
    groups = columnar.RowGroups(pa.BufferReader(raw), DEFAULT_LIMITS)
    assert groups.reads.picked(0)
    with pytest.raises((pa.ArrowException, FormatError, ValueError)):
        groups.frame(0)
    with pytest.raises(FormatError):
        formats.read_bytes(raw, FileFormat("parquet"), name="bad.parquet")
