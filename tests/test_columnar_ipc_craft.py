"""Hand-made Arrow IPC files in either byte order, for the columnar tests.

pyarrow writes IPC in the machine's byte order only, so big-endian files (as written on s390x,
and arrow-testing's 1.0.0-bigendian integration files) are built here from the spec: Arrow's
FlatBuffers messages (a small front-to-back FlatBuffers builder) and buffers swapped value by
value. The tests at the end check that pyarrow reads what is built here as meant.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.ipc as pa_ipc
import pytest
from test_columnar_craft import pyarrow_table

# --- FlatBuffers, for Arrow IPC messages ---------------------------------------------------------


@dataclass
class FbTable:
    """A FlatBuffers table: per field id a scalar (struct format, value), an object, or None."""

    slots: list[tuple[str, Any] | FbTable | FbVector | str | bytes | None]


@dataclass
class FbVector:
    """A vector of tables (`items` FbTable) or of structs (`fmt` the struct's format)."""

    items: list[Any]
    fmt: str | None = None


class _Builder:
    """Writes a buffer front to back: each object before what it points to (uoffsets are
    unsigned, so children come later), each vtable just before its table."""

    def __init__(self) -> None:
        self.buf = bytearray(4)

    def pad(self, align: int, extra: int = 0) -> None:
        while (len(self.buf) + extra) % align:
            self.buf.append(0)

    def put(self, obj: FbTable | FbVector | str | bytes) -> int:
        if isinstance(obj, str | bytes):
            data = obj.encode() if isinstance(obj, str) else obj
            self.pad(4)
            at = len(self.buf)
            self.buf += struct.pack("<I", len(data)) + data + b"\x00"
            return at
        if isinstance(obj, FbVector):
            return self._vector(obj)
        return self._table(obj)

    def _vector(self, vector: FbVector) -> int:
        if vector.fmt is not None:
            self.pad(8, 4)
            at = len(self.buf)
            self.buf += struct.pack("<I", len(vector.items))
            for item in vector.items:
                self.buf += struct.pack("<" + vector.fmt, *item)
            return at
        self.pad(4)
        at = len(self.buf)
        self.buf += struct.pack("<I", len(vector.items)) + bytes(4 * len(vector.items))
        for i, item in enumerate(vector.items):
            self._point(at + 4 + 4 * i, self.put(item))
        return at

    def _table(self, table: FbTable) -> int:
        sizes = [
            struct.calcsize("<" + s[0]) if isinstance(s, tuple) else 4
            for s in table.slots
            if s is not None
        ]
        order = sorted(
            (i for i, s in enumerate(table.slots) if s is not None),
            key=lambda i: -sizes[sum(1 for s in table.slots[:i] if s is not None)],
        )
        where: dict[int, int] = {}
        size = 4
        for i in order:
            slot = table.slots[i]
            width = struct.calcsize("<" + slot[0]) if isinstance(slot, tuple) else 4
            size += -size % width
            where[i] = size
            size += width
        size += -size % 4
        vtable = struct.pack(
            f"<{2 + len(table.slots)}H",
            4 + 2 * len(table.slots),
            size,
            *(where.get(i, 0) for i in range(len(table.slots))),
        )
        self.pad(8, len(vtable))
        self.buf += vtable
        at = len(self.buf)
        self.buf += struct.pack("<i", len(vtable)) + bytes(size - 4)
        for i, offset in where.items():
            slot = table.slots[i]
            if isinstance(slot, tuple):
                struct.pack_into("<" + slot[0], self.buf, at + offset, slot[1])
        for i, offset in where.items():
            slot = table.slots[i]
            if slot is not None and not isinstance(slot, tuple):
                self._point(at + offset, self.put(slot))
        return at

    def _point(self, at: int, target: int) -> None:
        struct.pack_into("<I", self.buf, at, target - at)


def flatbuffer(root: FbTable) -> bytes:
    builder = _Builder()
    builder._point(0, builder.put(root))
    builder.pad(8)
    return bytes(builder.buf)


# --- Arrow IPC in either byte order --------------------------------------------------------------

_WIDTH = {"b": 1, "B": 1, "h": 2, "H": 2, "i": 4, "I": 4, "q": 8, "Q": 8}


def _type(dtype: pa.DataType) -> tuple[int, FbTable]:
    """The Type union's tag and table for `dtype`."""
    if pa.types.is_integer(dtype):
        return 2, FbTable([("i", dtype.bit_width), ("?", pa.types.is_signed_integer(dtype))])
    if pa.types.is_floating(dtype):
        return 3, FbTable([("h", {16: 0, 32: 1, 64: 2}[dtype.bit_width])])
    if pa.types.is_decimal128(dtype):
        return 7, FbTable([("i", dtype.precision), ("i", dtype.scale), ("i", 128)])
    if pa.types.is_date32(dtype):
        return 8, FbTable([("h", 0)])
    if pa.types.is_timestamp(dtype):
        unit = ("s", "ms", "us", "ns").index(dtype.unit)
        return 10, FbTable([("h", unit), dtype.tz])
    simple = {
        pa.types.is_binary: 4,
        pa.types.is_string: 5,
        pa.types.is_boolean: 6,
        pa.types.is_list: 12,
        pa.types.is_struct: 13,
    }
    for test, tag in simple.items():
        if test(dtype):
            return tag, FbTable([])
    raise NotImplementedError(dtype)


def _field(f: pa.Field, ids: dict[str, int]) -> FbTable:
    dtype, encoding = f.type, None
    if pa.types.is_dictionary(dtype):
        ids[f.name] = len(ids)
        index, _ = _type(dtype.index_type)
        encoding = FbTable([("q", ids[f.name]), _type(dtype.index_type)[1], ("?", False)])
        dtype = dtype.value_type
        del index
    tag, table = _type(dtype)
    children = [_field(dtype.field(i), ids) for i in range(dtype.num_fields)]
    return FbTable([f.name, ("?", f.nullable), ("B", tag), table, encoding, FbVector(children)])


def _widths(dtype: pa.DataType) -> list[int]:
    """Per buffer of an array of `dtype` (its own, not its children's): bytes per value to
    swap, 0 for bytes and bitmaps."""
    if pa.types.is_boolean(dtype) or pa.types.is_struct(dtype):
        return [0, 0][: 1 if pa.types.is_struct(dtype) else 2]
    if pa.types.is_string(dtype) or pa.types.is_binary(dtype):
        return [0, 4, 0]
    if pa.types.is_list(dtype):
        return [0, 4]
    if pa.types.is_dictionary(dtype):
        dtype = dtype.index_type
    return [0, dtype.bit_width // 8]


def _flatten(
    array: pa.Array,
    nodes: list[tuple[int, int]],
    buffers: list[tuple[Any, int]],
) -> None:
    nodes.append((len(array), array.null_count))
    own = array.buffers()[: len(_widths(array.type))]
    buffers.extend(zip(own, _widths(array.type), strict=True))
    if pa.types.is_list(array.type):
        _flatten(array.values, nodes, buffers)
    elif pa.types.is_struct(array.type):
        for i in range(array.type.num_fields):
            _flatten(array.field(i), nodes, buffers)


def _swapped(data: bytes, width: int) -> bytes:
    if width <= 1:
        return data
    return b"".join(data[i : i + width][::-1] for i in range(0, len(data) - width + 1, width))


def _message(header_tag: int, header: FbTable, body: bytes) -> bytes:
    meta = flatbuffer(FbTable([("h", 4), ("B", header_tag), header, ("q", len(body))]))
    return struct.pack("<Ii", 0xFFFFFFFF, len(meta)) + meta + body


def _batch(columns: list[pa.Array], rows: int, big_endian: bool) -> tuple[FbTable, bytes]:
    """A RecordBatch header and its body."""
    nodes: list[tuple[int, int]] = []
    buffers: list[tuple[Any, int]] = []
    for column in columns:
        _flatten(column, nodes, buffers)
    body, spans = bytearray(), []
    for buffer, width in buffers:
        data = b"" if buffer is None else buffer.to_pybytes()
        spans.append((len(body), len(data)))
        body += _swapped(data, width) if big_endian else data
        body += bytes(-len(body) % 8)
    return FbTable([("q", rows), FbVector(nodes, "qq"), FbVector(spans, "qq")]), bytes(body)


def ipc_bytes(table: pa.Table, *, big_endian: bool, file: bool = False) -> bytes:
    """`table` (arrays without offsets; dictionaries only at the top level, one per column,
    the same in every chunk) as an IPC stream, or file, in the byte order asked for, one
    record batch per chunk."""
    ids: dict[str, int] = {}
    schema = FbTable([("h", int(big_endian)), FbVector([_field(f, ids) for f in table.schema])])
    out = bytearray(b"ARROW1\x00\x00" if file else b"")
    out += _message(1, schema, b"")
    blocks: dict[int, list[tuple[int, int, int]]] = {2: [], 3: []}
    batches = table.to_batches()
    messages = []
    for name, number in ids.items():
        values = batches[0].column(name).dictionary
        header, body = _batch([values], len(values), big_endian)
        messages.append((2, FbTable([("q", number), header]), body))
    for batch in batches:
        header, body = _batch(batch.columns, batch.num_rows, big_endian)
        messages.append((3, header, body))
    for tag, header, body in messages:
        start = len(out)
        out += _message(tag, header, body)
        blocks[tag].append((start, len(out) - start - len(body), len(body)))
    if not file:
        return bytes(out + struct.pack("<Ii", 0xFFFFFFFF, 0))
    out += struct.pack("<Ii", 0xFFFFFFFF, 0)
    footer = flatbuffer(
        FbTable([("h", 4), schema, FbVector(blocks[2], "qi4xq"), FbVector(blocks[3], "qi4xq")])
    )
    return bytes(out + footer + struct.pack("<i", len(footer)) + b"ARROW1")


# --- the helpers themselves ----------------------------------------------------------------------


@pytest.mark.parametrize("big_endian", [False, True])
@pytest.mark.parametrize("file", [False, True])
def test_ipc_in_either_byte_order_is_read_by_pyarrow_as_meant(big_endian: bool, file: bool) -> None:
    table = every_type()
    raw = ipc_bytes(table, big_endian=big_endian, file=file)
    options = pa_ipc.IpcReadOptions(ensure_native_endian=False)
    opener = pa_ipc.open_file if file else pa_ipc.open_stream
    read = opener(pa.BufferReader(raw), options=options)
    assert list(read.schema) == list(table.schema)  # (a schema compares its byte order too)
    got = pyarrow_table(raw)
    got.validate(full=True)
    assert got.equals(table)
    if big_endian:  # the buffers really are swapped: unswapped, the numbers differ
        assert not read.read_all().column("i64").equals(table.column("i64"))


def every_type() -> pa.Table:
    """A column of each type `ipc_bytes` writes, nulls included, in two record batches."""
    import datetime as dt
    from decimal import Decimal

    first = pa.table(
        {
            "i16": pa.array([1, None, -3], pa.int16()),
            "i64": pa.array([1 << 40, 2, None]),
            "u32": pa.array([1, 2, 3], pa.uint32()),
            "f32": pa.array([1.5, None, -2.25], pa.float32()),
            "f64": pa.array([1.5, None, -2.25]),
            "flag": pa.array([True, None, False]),
            "text": pa.array(["a", None, "héllo"]),
            "blob": pa.array([b"\x00\x01", None, b""]),
            "day": pa.array([dt.date(2020, 1, 1), None, dt.date(1, 1, 1)]),
            "at": pa.array(
                [dt.datetime(2020, 1, 2, 3, 4, 5, 6), None, dt.datetime(9999, 1, 1)],
                pa.timestamp("us", "UTC"),
            ),
            "ints": pa.array([[1, 2], None, []], pa.list_(pa.int32())),
            "money": pa.array(
                [Decimal("1.25"), None, Decimal("-99999999.99")], pa.decimal128(10, 2)
            ),
            "rec": pa.array([{"x": 1, "y": "a"}, None, {"x": None, "y": "c"}]),
            "cat": pa.array(["x", "y", None]).dictionary_encode(),
        }
    )
    second = first.slice(0, 2)
    second = pa.Table.from_pydict(second.to_pydict(), schema=first.schema)
    second = second.set_column(
        13,
        "cat",
        pa.chunked_array(
            [
                pa.DictionaryArray.from_arrays(
                    pa.array([1, 0], pa.int32()), first.column("cat").chunk(0).dictionary
                )
            ]
        ),
    )
    return pa.concat_tables([first, second])
