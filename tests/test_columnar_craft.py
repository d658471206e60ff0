"""Hand-made Parquet files that pyarrow cannot write, and reading helpers, for the columnar tests.

pyarrow always writes lists with a LIST annotation and never writes a lying page header, so the
legacy shapes (a repeated field without LIST annotation, as parquet-mr and Hive write) and the
corrupt files of parquet-testing's bad_data are built here from the spec: Parquet's Thrift
compact footer and page headers, PLAIN values, RLE levels and dictionary indices. The tests at
the end check that pyarrow reads what is built here as meant, so the other files can rely on it.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.ipc as pa_ipc
import pyarrow.parquet as pq
import pytest

from dreambolt.formats import read as formats
from dreambolt.formats.detect import FileFormat

# --- Thrift compact protocol ---------------------------------------------------------------------

BOOL, I32, I64, BINARY, LIST, STRUCT = 1, 5, 6, 8, 9, 12
Fields = list[tuple[int, int, Any]]  # (field id, type, value); a STRUCT's value is Fields


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _zigzag(n: int) -> bytes:
    return _varint((n << 1) ^ (n >> 63))


def _value(kind: int, value: Any) -> bytes:
    if kind in (I32, I64):
        return _zigzag(value)
    if kind == BINARY:
        data = value.encode() if isinstance(value, str) else value
        return _varint(len(data)) + data
    if kind == STRUCT:
        return thrift(value)
    if kind == LIST:
        element, items = value
        head = (
            bytes([len(items) << 4 | element])
            if len(items) < 15
            else (bytes([0xF0 | element]) + _varint(len(items)))
        )
        return head + b"".join(_value(element, item) for item in items)
    raise ValueError(kind)


def thrift(fields: Fields) -> bytes:
    """A Thrift compact struct (fields in increasing id order)."""
    out, last = bytearray(), 0
    for fid, kind, value in fields:
        wire = (1 if value else 2) if kind == BOOL else kind
        out += (
            bytes([(fid - last) << 4 | wire])
            if 0 < fid - last < 16
            else (bytes([wire]) + _zigzag(fid))
        )
        if kind != BOOL:
            out += _value(kind, value)
        last = fid
    return bytes(out + b"\x00")


# --- Parquet -------------------------------------------------------------------------------------

REQUIRED, OPTIONAL, REPEATED = 0, 1, 2
PBOOL, PINT32, PINT64, PINT96, PFLOAT, PDOUBLE, PBYTES = 0, 1, 2, 3, 4, 5, 6
UTF8, LIST_ANNOTATION = 0, 3  # converted types


@dataclass
class Node:
    """A Parquet schema element: a leaf (physical type given) or a group (children)."""

    name: str
    repetition: int = REQUIRED
    physical: int | None = None
    children: list[Node] = field(default_factory=list)
    converted: int | None = None

    def element(self) -> Fields:
        out: Fields = []
        if self.physical is not None:
            out.append((1, I32, self.physical))
        out += [(3, I32, self.repetition), (4, BINARY, self.name)]
        if self.physical is None:
            out.append((5, I32, len(self.children)))
        if self.converted is not None:
            out.append((6, I32, self.converted))
        return out


@dataclass
class Chunk:
    """One leaf column's data: its path, levels and the values present (not null)."""

    path: list[str]
    physical: int
    values: list[Any]
    defs: list[int] | None = None  # None: a required column, no levels
    reps: list[int] | None = None
    max_def: int = 0
    max_rep: int = 0
    num_values: int | None = None  # what the page header declares (default: the levels' count)
    dictionary: list[Any] | None = None  # a dictionary page of these; `values` are indices
    dict_count: int | None = None  # what the dictionary page header declares
    bit_width: int | None = None  # of the dictionary indices (default: what they need)
    page_size: int | None = None  # what the data page header declares (default: the truth)


def _runs(values: Sequence[int], width: int) -> bytes:
    """Values in the RLE/bit-packed hybrid, one RLE run of one value each."""
    size = (width + 7) // 8
    mask = (1 << 8 * size) - 1  # a width too small for the values (a lying file) cuts them
    return b"".join(_varint(1 << 1) + (v & mask).to_bytes(size, "little") for v in values)


def _levels(levels: list[int], most: int) -> bytes:
    runs = _runs(levels, most.bit_length())
    return struct.pack("<I", len(runs)) + runs


def plain(physical: int, values: Sequence[Any]) -> bytes:
    if physical == PBOOL:
        bits = bytearray((len(values) + 7) // 8)
        for i, v in enumerate(values):
            bits[i // 8] |= bool(v) << (i % 8)
        return bytes(bits)
    if physical == PBYTES:
        blobs = [v.encode() if isinstance(v, str) else v for v in values]
        return b"".join(struct.pack("<I", len(b)) + b for b in blobs)
    if physical == PINT96:
        return b"".join(struct.pack("<qi", nanos, day) for nanos, day in values)
    code = {PINT32: "i", PINT64: "q", PFLOAT: "f", PDOUBLE: "d"}[physical]
    return struct.pack(f"<{len(values)}{code}", *values)


def parquet_file(schema: list[Node], chunks: list[Chunk], rows: int) -> bytes:
    """A Parquet file of one row group, one PLAIN uncompressed v1 data page per column."""
    out = bytearray(b"PAR1")
    metas = []
    for chunk in chunks:
        start = len(out)
        dictionary: Fields = []
        if chunk.dictionary is not None:
            body = plain(chunk.physical, chunk.dictionary)
            declared = len(chunk.dictionary) if chunk.dict_count is None else chunk.dict_count
            out += (
                thrift(
                    [
                        (1, I32, 2),
                        (2, I32, len(body)),
                        (3, I32, len(body)),
                        (7, STRUCT, [(1, I32, declared), (2, I32, 0)]),
                    ]
                )
                + body
            )
            dictionary = [(11, I64, start)]
        page = len(out)
        body = b""
        if chunk.reps is not None:
            body += _levels(chunk.reps, chunk.max_rep)
        if chunk.defs is not None:
            body += _levels(chunk.defs, chunk.max_def)
        if chunk.dictionary is None:
            body += plain(chunk.physical, chunk.values)
            encoding = 0
        else:
            width = chunk.bit_width
            if width is None:
                width = max(1, (len(chunk.dictionary) - 1).bit_length())
            body += bytes([width]) + _runs(chunk.values, width)
            encoding = 8  # RLE_DICTIONARY
        count = chunk.num_values
        if count is None:
            count = len(chunk.defs) if chunk.defs is not None else len(chunk.values)
        size = len(body) if chunk.page_size is None else chunk.page_size
        out += (
            thrift(
                [
                    (1, I32, 0),
                    (2, I32, size),
                    (3, I32, size),
                    (5, STRUCT, [(1, I32, count), (2, I32, encoding), (3, I32, 3), (4, I32, 3)]),
                ]
            )
            + body
        )
        total = len(out) - start
        metas.append(
            [
                (2, I64, start),
                (
                    3,
                    STRUCT,
                    [
                        (1, I32, chunk.physical),
                        (2, LIST, (I32, [0, 3, encoding])),
                        (3, LIST, (BINARY, chunk.path)),
                        (4, I32, 0),
                        (5, I64, count),
                        (6, I64, total),
                        (7, I64, total),
                        (9, I64, page),
                        *dictionary,
                    ],
                ),
            ]
        )
    flat: list[Fields] = []

    def walk(node: Node) -> None:
        flat.append(node.element())
        for child in node.children:
            walk(child)

    walk(Node("schema", children=schema))
    footer = thrift(
        [
            (1, I32, 1),
            (2, LIST, (STRUCT, flat)),
            (3, I64, rows),
            (
                4,
                LIST,
                (STRUCT, [[(1, LIST, (STRUCT, metas)), (2, I64, len(out) - 4), (3, I64, rows)]]),
            ),
            (6, BINARY, "dreambolt tests"),
        ]
    )
    return bytes(out + footer + struct.pack("<I", len(footer)) + b"PAR1")


def repeated_no_annotation() -> tuple[bytes, list[dict[str, Any]]]:
    """parquet-testing's repeated_no_annotation.parquet rebuilt: a repeated group without LIST
    annotation inside an optional group; 6 rows. Returns the file and the rows pyarrow reads."""
    phone = Node(
        "phone",
        REPEATED,
        children=[Node("number", REQUIRED, PINT64), Node("kind", OPTIONAL, PBYTES, converted=UTF8)],
    )
    schema = [Node("id", REQUIRED, PINT32), Node("phoneNumbers", OPTIONAL, children=[phone])]
    # rows: null, null, no phones, one without kind, one "home", three
    reps = [0, 0, 0, 0, 0, 0, 1, 1]
    number_defs = [0, 0, 1, 2, 2, 2, 2, 2]
    numbers = [5555555555, 1111111111, 1111111111, 2222222222, 3333333333]
    kind_defs = [0, 0, 1, 2, 3, 3, 2, 3]
    chunks = [
        Chunk(["id"], PINT32, [1, 2, 3, 4, 5, 6]),
        Chunk(["phoneNumbers", "phone", "number"], PINT64, numbers, number_defs, reps, 2, 1),
        Chunk(
            ["phoneNumbers", "phone", "kind"],
            PBYTES,
            ["home", "home", "mobile"],
            kind_defs,
            reps,
            3,
            1,
        ),
    ]

    def entry(number: int, kind: str | None) -> dict[str, Any]:
        return {"number": number, "kind": kind}

    phones: list[dict[str, Any] | None] = [
        None,
        None,
        {"phone": []},
        {"phone": [entry(5555555555, None)]},
        {"phone": [entry(1111111111, "home")]},
        {
            "phone": [
                entry(1111111111, "home"),
                entry(2222222222, None),
                entry(3333333333, "mobile"),
            ]
        },
    ]
    rows = [{"id": i + 1, "phoneNumbers": p} for i, p in enumerate(phones)]
    return parquet_file(schema, chunks, 6), rows


def repeated_primitive() -> tuple[bytes, list[dict[str, Any]]]:
    """A top-level `repeated int32` and `repeated binary (UTF8)` (as parquet-testing's
    repeated_primitive_no_list.parquet): 4 rows, the second with empty lists."""
    schema = [Node("ints", REPEATED, PINT32), Node("words", REPEATED, PBYTES, converted=UTF8)]
    chunks = [
        Chunk(["ints"], PINT32, [1, 2, 3, 4, 5], [1, 1, 0, 1, 1, 1], [0, 1, 0, 0, 0, 1], 1, 1),
        Chunk(["words"], PBYTES, ["a", "b", "c", "d"], [1, 0, 1, 1, 1], [0, 0, 0, 1, 0], 1, 1),
    ]
    rows = [
        {"ints": [1, 2], "words": ["a"]},
        {"ints": [], "words": []},
        {"ints": [3], "words": ["b", "c"]},
        {"ints": [4, 5], "words": ["d"]},
    ]
    return parquet_file(schema, chunks, 4), rows


# --- reading through DreamBolt, and as pyarrow reads ---------------------------------------------


def read_ways(
    raw: bytes, kind: str, tmp_path: Path, batch_rows: int = 3
) -> dict[str, pl.DataFrame]:
    """`raw` read by each public entry point (`read_bytes`, `iter_file`, `iter_bytes`), the
    frames of a file joined; `FormatError` propagates."""
    fmt = FileFormat(kind)  # type: ignore[arg-type]
    path = tmp_path / f"file.{kind}"
    path.write_bytes(raw)
    return {
        "read_bytes": formats.read_bytes(raw, fmt, name=path.name),
        "iter_file": pl.concat(formats.iter_file(path, fmt, name=path.name, batch_rows=batch_rows)),
        "iter_bytes": pl.concat(
            formats.iter_bytes(raw, fmt, name=path.name, batch_rows=batch_rows)
        ),
    }


def pyarrow_table(raw: bytes) -> pa.Table:
    """How pyarrow reads `raw` (Parquet with INT96 at microseconds and page checksums checked,
    or IPC file or stream)."""
    if raw.startswith(b"PAR1"):
        return pq.ParquetFile(
            pa.BufferReader(raw), coerce_int96_timestamp_unit="us", page_checksum_verification=True
        ).read(use_threads=False)
    if raw.startswith(b"ARROW1"):
        return pa_ipc.open_file(pa.BufferReader(raw)).read_all()
    return pa_ipc.open_stream(pa.BufferReader(raw)).read_all()


# --- the helpers themselves ----------------------------------------------------------------------


@pytest.mark.parametrize("make", [repeated_no_annotation, repeated_primitive])
def test_legacy_parquet_is_read_by_pyarrow_as_meant(make: Any) -> None:
    raw, rows = make()
    assert pyarrow_table(raw).to_pylist() == rows


def test_dictionary_pages_are_read_by_pyarrow_as_meant() -> None:
    chunk = Chunk(["s"], PBYTES, [0, 1, 1, 0], [1, 1, 0, 1, 1], None, 1, dictionary=["x", "yy"])
    raw = parquet_file([Node("s", OPTIONAL, PBYTES, converted=UTF8)], [chunk], 5)
    assert pyarrow_table(raw).column("s").to_pylist() == ["x", "yy", None, "yy", "x"]
