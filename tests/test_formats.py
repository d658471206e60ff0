"""Tests for dreambolt.formats: detection, round trips, edge cases and unreadable content."""

from __future__ import annotations

import bz2
import gzip
import io
import random
from collections.abc import Callable, Generator
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard
from polars.testing import assert_frame_equal

from dreambolt.errors import FormatError
from dreambolt.formats import read as formats
from dreambolt.formats.many import read_many
from dreambolt.formats.read import (
    HEAD_BYTES,
    FileFormat,
    detect_format,
    iter_file,
    read_bytes,
)


def _zstd(data: bytes) -> bytes:
    """Compress like the `zstd` CLI on a pipe does: no content size in the frame header."""
    out = io.BytesIO()
    with zstandard.ZstdCompressor().stream_writer(out, closefd=False) as writer:
        writer.write(data)
    return out.getvalue()


COMPRESS: dict[str | None, Callable[[bytes], bytes]] = {
    None: lambda data: data,
    "gzip": gzip.compress,
    "zstd": _zstd,
    "bz2": bz2.compress,
}
SUFFIX = {None: "", "gzip": ".gz", "zstd": ".zst", "bz2": ".bz2"}

FRAME = pl.DataFrame(
    {
        "id": [1, 2, 3],
        "x": [0.5, None, -2.25],
        "s": ["plain", 'naïve, "quoted"\nline', "日本語 ✓"],
        "ok": [True, False, None],
    }
)
NESTED = pl.DataFrame(
    {
        "id": list(range(10)),
        "tags": [[f"t{i}"] * (i % 3) for i in range(10)],
        "point": [{"x": i, "y": f"é{i}"} if i % 4 else None for i in range(10)],
        "matrix": [[[i, i + 1], []] for i in range(10)],
    }
)


def _write(frame: pl.DataFrame, kind: str) -> bytes:
    out = io.BytesIO()
    writers: dict[str, Callable[[io.BytesIO], object]] = {
        "csv": frame.write_csv,
        "tsv": lambda f: frame.write_csv(f, separator="\t"),
        "ndjson": frame.write_ndjson,
        "json": frame.write_json,
        "parquet": frame.write_parquet,
        "ipc": frame.write_ipc,
        "ipc-stream": frame.write_ipc_stream,
    }
    writers[kind](out)
    return out.getvalue()


def read_both(
    data: bytes, fmt: FileFormat, tmp_path: Path, *, name: str = "data", batch_rows: int = 2
) -> tuple[pl.DataFrame, list[pl.DataFrame]]:
    """Read `data` with both entry points; check iter_file's batches share one schema."""
    in_memory = read_bytes(data, fmt, name=name)
    path = tmp_path / "spooled"
    path.write_bytes(data)
    batches = list(iter_file(path, fmt, name=name, batch_rows=batch_rows))
    assert batches, "iter_file yields at least one frame"
    assert all(b.schema == batches[0].schema for b in batches)
    assert all(b.height <= batch_rows for b in batches)
    return in_memory, batches


# --- detection ---------------------------------------------------------------------------------

GZ_CSV = gzip.compress(b"a,b\n1,2\n", mtime=0)
ZST_NDJSON = _zstd(b'{"a": 1}\n{"a": 2}\n')
BZ2_TSV = bz2.compress(b"a\tb\n1\t2\n")
PARQUET = _write(FRAME, "parquet")
IPC_FILE = _write(FRAME, "ipc")
IPC_STREAM = _write(FRAME, "ipc-stream")


@pytest.mark.parametrize(
    ("name", "head", "declared", "expected"),
    [
        # by name
        ("data.csv", b"a,b\n1,2\n", None, ("csv", None)),
        ("s3://bucket/dir.v1/DATA.CSV", b"a,b\n", None, ("csv", None)),
        ("data.tsv", b"a\tb\n", None, ("tsv", None)),
        ("data.tab", b"a,b\n", None, ("tsv", None)),
        ("data.parquet", b"", None, ("parquet", None)),
        ("data.pq", PARQUET, None, ("parquet", None)),
        ("data.ndjson", b'{"a":1}\n', None, ("ndjson", None)),
        ("data.jsonl", b"", None, ("ndjson", None)),
        ("data.json", b'  \n[{"a": 1}]', None, ("json", None)),
        ("data.json", b'{"a": 1}\n{"a": 2}\n', None, ("ndjson", None)),
        ("data.json", b"", None, ("json", None)),
        ("data.arrow", IPC_FILE, None, ("ipc", None)),
        ("data.ipc", b"", None, ("ipc", None)),
        ("data.feather", IPC_STREAM, None, ("ipc", None)),
        # compression: magic beats the name; the name decides only when there are no bytes
        ("data.csv.gz", GZ_CSV, None, ("csv", "gzip")),
        ("data.csv.gzip", b"", None, ("csv", "gzip")),
        ("data.csv.gz", b"a,b\n1,2\n", None, ("csv", None)),
        ("data.csv", GZ_CSV, None, ("csv", "gzip")),
        ("data.ndjson.zst", ZST_NDJSON, None, ("ndjson", "zstd")),
        ("data.json.zstd", ZST_NDJSON, None, ("ndjson", "zstd")),
        ("data.tsv.bz2", BZ2_TSV, None, ("tsv", "bz2")),
        ("data.parquet.gz", gzip.compress(PARQUET, mtime=0), None, ("parquet", "gzip")),
        # magic beats the name for Parquet and IPC
        ("data.csv", PARQUET, None, ("parquet", None)),
        ("data.csv.gz", PARQUET, None, ("parquet", None)),
        ("data.json", IPC_FILE, None, ("ipc", None)),
        ("data.csv", IPC_STREAM, None, ("ipc", None)),
        # unknown name: magic, then sniffing (through gzip/zstd where the head allows it)
        ("part-0000", PARQUET, None, ("parquet", None)),
        ("part-0000", b'{"a": 1}\n', None, ("ndjson", None)),
        ("part-0000", b"\xef\xbb\xbf[{", None, ("json", None)),
        ("part-0000", b"a\tb\tc\n1\t2\t3\n", None, ("tsv", None)),
        ("part-0000", b"a,b\n", None, ("csv", None)),
        ("part-0000", b"", None, ("csv", None)),
        ("part-0000.gz", GZ_CSV, None, ("csv", "gzip")),
        ("part-0000.dat", ZST_NDJSON, None, ("ndjson", "zstd")),
        ("part-0000", gzip.compress(b'[{"a": 1}]', mtime=0), None, ("json", "gzip")),
        ("part-0000.bz2", BZ2_TSV, None, ("csv", "bz2")),  # bz2 cannot be peeked at
        ("report.txt", b"BZh,b\n1,2\n", None, ("csv", None)),  # "BZh" alone is not bz2
        # declared overrides the kind; compression from magic unless declared
        ("data.csv", b'{"a":1}\n', "ndjson", ("ndjson", None)),
        ("data.csv", b"", "jsonl", ("ndjson", None)),
        ("data.bin", GZ_CSV, "csv", ("csv", "gzip")),
        ("data.bin", b"a,b\n", "csv.gz", ("csv", "gzip")),
        ("data.parquet", PARQUET, "PARQUET", ("parquet", None)),
        ("data.csv.gz", GZ_CSV, "tsv", ("tsv", "gzip")),
        ("data.x", ZST_NDJSON, "ndjson.zst", ("ndjson", "zstd")),
        ("data.json", gzip.compress(b"[1]", mtime=0), "gz", ("json", "gzip")),
        ("data.arrow", IPC_FILE, ".feather", ("ipc", None)),
    ],
)
def test_detect_format(
    name: str, head: bytes, declared: str | None, expected: tuple[str, str | None]
) -> None:
    fmt = detect_format(name, head[:HEAD_BYTES], declared)
    assert (fmt.kind, fmt.compression) == expected
    assert detect_format(name, head, declared) == fmt  # more than HEAD_BYTES changes nothing


@pytest.mark.parametrize("declared", ["xlsx", "csv.rar", "csv.tsv", "gz.bz2"])
def test_detect_format_rejects_unknown_declared_format(declared: str) -> None:
    with pytest.raises(ValueError, match="unknown format"):
        detect_format("data.csv", b"a\n", declared)


def test_file_format_spells_like_the_format_option() -> None:
    assert str(FileFormat("csv", "gzip")) == "csv.gz"
    assert str(FileFormat("parquet")) == "parquet"
    assert formats.is_text(FileFormat("ndjson", "zstd"))
    assert not formats.is_text(FileFormat("ipc"))


# --- round trips -------------------------------------------------------------------------------

KINDS = {  # writer -> (file extension, detected kind)
    "csv": ("csv", "csv"),
    "tsv": ("tsv", "tsv"),
    "ndjson": ("jsonl", "ndjson"),
    "json": ("json", "json"),
    "parquet": ("parquet", "parquet"),
    "ipc": ("arrow", "ipc"),
    "ipc-stream": ("arrow", "ipc"),
}


@pytest.mark.parametrize("compression", [None, "gzip", "zstd", "bz2"])
@pytest.mark.parametrize("writer", list(KINDS))
def test_round_trip(writer: str, compression: str | None, tmp_path: Path) -> None:
    ext, kind = KINDS[writer]
    data = COMPRESS[compression](_write(FRAME, writer))
    name = f"s3://bucket/data.{ext}{SUFFIX[compression]}"
    fmt = detect_format(name, data[:HEAD_BYTES])
    assert (fmt.kind, fmt.compression) == (kind, compression)

    in_memory, batches = read_both(data, fmt, tmp_path, name=name)
    assert_frame_equal(in_memory, FRAME)
    assert_frame_equal(pl.concat(batches), FRAME)
    assert_frame_equal(read_bytes(memoryview(data), fmt, name=name), FRAME)


@pytest.mark.parametrize("writer", ["parquet", "ipc", "ipc-stream", "ndjson", "json"])
def test_nested_columns_round_trip(writer: str, tmp_path: Path) -> None:
    frame = NESTED if writer != "json" else NESTED.drop("matrix")
    fmt = FileFormat(KINDS[writer][1])  # type: ignore[arg-type]
    in_memory, batches = read_both(_write(frame, writer), fmt, tmp_path, batch_rows=3)
    assert len(batches) == 4
    assert_frame_equal(in_memory, frame)
    assert_frame_equal(pl.concat(batches), frame)


def test_parquet_written_by_pyarrow_with_small_row_groups(tmp_path: Path) -> None:
    table = pa.table({"n": pa.array(range(1000), pa.int32()), "d": pa.array(["a", "b"] * 500)})
    out = io.BytesIO()
    pq.write_table(table, out, row_group_size=128)
    in_memory, batches = read_both(out.getvalue(), FileFormat("parquet"), tmp_path, batch_rows=100)
    assert len(batches) >= 10
    assert_frame_equal(pl.concat(batches), in_memory)
    assert in_memory.schema == pl.Schema({"n": pl.Int32, "d": pl.String})


def test_csv_with_quoted_newlines_crlf_and_utf8(tmp_path: Path) -> None:
    data = (
        'id,text\r\n1,"line one\r\nline two"\r\n2,"café ✓, 日本"\r\n3,"say ""hi"""\r\n4,\r\n'
    ).encode()
    in_memory, batches = read_both(data, FileFormat("csv"), tmp_path)
    expected = pl.DataFrame(
        {"id": [1, 2, 3, 4], "text": ["line one\r\nline two", "café ✓, 日本", 'say "hi"', None]}
    )
    assert_frame_equal(in_memory, expected)
    assert_frame_equal(pl.concat(batches), expected)


def test_multi_member_gzip_and_multi_frame_zstd(tmp_path: Path) -> None:
    first, second = b"a,b\n1,x\n", b"2,y\n"
    expected = pl.DataFrame({"a": [1, 2], "b": ["x", "y"]})
    for data in (gzip.compress(first) + gzip.compress(second), _zstd(first) + _zstd(second)):
        fmt = detect_format("data.csv", data[:HEAD_BYTES])
        in_memory, batches = read_both(data, fmt, tmp_path)
        assert_frame_equal(in_memory, expected)
        assert_frame_equal(pl.concat(batches), expected)


# --- blocks of text ----------------------------------------------------------------------------


@pytest.fixture
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make iter_file cut text into tiny blocks so that boundaries fall everywhere."""
    monkeypatch.setattr(formats, "BLOCK_BYTES", 64)
    monkeypatch.setattr(formats, "INFER_ROWS", 5)
    monkeypatch.setattr(formats, "READ_BYTES", 7)


@pytest.mark.usefixtures("small_blocks")
@pytest.mark.parametrize("compression", [None, "gzip"])
@pytest.mark.parametrize("writer", ["csv", "tsv", "ndjson"])
def test_block_boundaries_never_split_a_record(
    writer: str, compression: str | None, tmp_path: Path
) -> None:
    rng = random.Random(7)
    words = ["a", "b,c", 'd"e', "f\ng", "h\r\ni", "ĳ ✓", "\t", '""', "x" * 150]
    frame = pl.DataFrame(
        {
            "n": list(range(300)),
            "s": ["".join(rng.choices(words, k=rng.randint(1, 4))) for _ in range(300)],
        }
    )
    data = COMPRESS[compression](_write(frame, writer))
    fmt = FileFormat(KINDS[writer][1], compression)  # type: ignore[arg-type]
    in_memory, batches = read_both(data, fmt, tmp_path, batch_rows=1000)
    assert len(batches) > 20
    assert_frame_equal(in_memory, frame)
    assert_frame_equal(pl.concat(batches), frame)


@pytest.mark.usefixtures("small_blocks")
def test_value_that_does_not_fit_the_inferred_type_widens_the_column(tmp_path: Path) -> None:
    path = tmp_path / "late.csv"
    data = b"n,s\n" + b"".join(b"%d,x\n" % i for i in range(100)) + b"oops,y\n"
    path.write_bytes(data)
    batches = list(iter_file(path, FileFormat("csv"), name="late.csv"))
    assert batches[0].schema["n"] == pl.Int64 and batches[-1].schema["n"] == pl.String
    assert_frame_equal(  # nothing lost: what whole-file inference gives
        pl.concat(batches, how="diagonal_relaxed"), pl.read_csv(data, infer_schema_length=None)
    )
    assert_frame_equal(
        read_bytes(data, FileFormat("csv"), name="late.csv"),
        pl.read_csv(data, infer_schema_length=None),
    )


@pytest.mark.usefixtures("small_blocks")
def test_later_unreadable_block_names_its_place(tmp_path: Path) -> None:
    path = tmp_path / "late.csv"
    path.write_bytes(b"n,s\n" + b"".join(b"%d,x\n" % i for i in range(100)) + b"1,y,extra\n")
    with pytest.raises(
        FormatError,
        match=r"late\.csv: cannot read as csv \(in the part from "
        r"byte [\d,]+, data row \d+ on\)",
    ) as info:
        list(iter_file(path, FileFormat("csv"), name="late.csv"))
    assert isinstance(info.value.__cause__, pl.exceptions.PolarsError)


@pytest.mark.usefixtures("small_blocks")
def test_unbalanced_quote_is_an_error_not_unbounded_memory(tmp_path: Path) -> None:
    path = tmp_path / "quote.csv"
    path.write_bytes(b'a,b\n"oops,1\n' + b"x,2\n" * 5000)
    limits = formats.ParseLimits(max_record_bytes=4096)
    with pytest.raises(FormatError, match=r"unbalanced quote.*--max-line-size"):
        list(iter_file(path, FileFormat("csv"), name="quote.csv", limits=limits))


def test_large_csv_is_read_in_bounded_batches(tmp_path: Path) -> None:
    n = 600_000
    frame = pl.select(n=pl.int_range(n)).with_columns(
        x=pl.col("n") * 0.5,
        s=pl.format('row {} with "quotes", a comma and ü\nand a newline', pl.col("n")),
        b=pl.col("n") % 3 == 0,
    )
    path = tmp_path / "big.csv"
    frame.write_csv(path)
    assert path.stat().st_size > 30 * 2**20
    batches = list(iter_file(path, FileFormat("csv"), name="big.csv", batch_rows=100_000))
    assert len(batches) >= 6
    assert all(b.height <= 100_000 and b.schema == batches[0].schema for b in batches)
    assert_frame_equal(pl.concat(batches), pl.read_csv(path))


# --- empty files -------------------------------------------------------------------------------


@pytest.mark.parametrize("compression", [None, "gzip", "zstd", "bz2"])
@pytest.mark.parametrize("kind", ["csv", "tsv", "ndjson", "json"])
@pytest.mark.parametrize("content", [b"", b"\n", b"  \r\n\n"])
def test_empty_text_file_is_an_empty_frame(
    kind: str, compression: str | None, content: bytes, tmp_path: Path
) -> None:
    data = COMPRESS[compression](content) if content or compression != "gzip" else b""
    fmt = FileFormat(kind, compression)  # type: ignore[arg-type]
    in_memory, batches = read_both(data, fmt, tmp_path)
    assert in_memory.shape == (0, 0)
    assert [b.shape for b in batches] == [(0, 0)]


@pytest.mark.parametrize("writer", ["parquet", "ipc", "ipc-stream"])
def test_binary_file_without_rows_keeps_its_columns(writer: str, tmp_path: Path) -> None:
    fmt = FileFormat("parquet" if writer == "parquet" else "ipc")
    in_memory, batches = read_both(_write(FRAME.clear(), writer), fmt, tmp_path)
    assert_frame_equal(in_memory, FRAME.clear())
    assert len(batches) == 1
    assert_frame_equal(batches[0], FRAME.clear())


@pytest.mark.parametrize(
    ("kind", "data"), [("csv", b"a,b,c\n"), ("csv", b"a,b,c"), ("tsv", b"a\tb\tc\r\n")]
)
def test_header_only_csv_has_columns_and_no_rows(kind: str, data: bytes, tmp_path: Path) -> None:
    fmt = FileFormat(kind)  # type: ignore[arg-type]
    in_memory, batches = read_both(data, fmt, tmp_path)
    assert in_memory.columns == ["a", "b", "c"] and in_memory.height == 0
    assert [(b.columns, b.height) for b in batches] == [(["a", "b", "c"], 0)]


# --- unreadable content ------------------------------------------------------------------------

_RNG = random.Random(1)
RANDOM_BINARY = bytes(_RNG.randrange(256) for _ in range(20_000))


@pytest.mark.parametrize(
    ("fmt", "data"),
    [
        pytest.param(FileFormat("parquet"), b"PAR1" + RANDOM_BINARY[:500] + b"PAR1", id="parquet"),
        pytest.param(FileFormat("parquet"), PARQUET[: len(PARQUET) // 2], id="parquet-cut"),
        pytest.param(FileFormat("parquet"), b"", id="parquet-empty"),
        pytest.param(FileFormat("parquet"), b"a,b\n1,2\n", id="parquet-is-csv"),
        pytest.param(FileFormat("ipc"), IPC_FILE[:-40], id="ipc-cut"),
        pytest.param(FileFormat("ipc"), b"ARROW1" + RANDOM_BINARY[:200], id="ipc"),
        pytest.param(
            FileFormat("csv", "gzip"), gzip.compress(b"a,b\n" * 10_000)[:-30], id="gzip-cut"
        ),
        pytest.param(FileFormat("csv", "gzip"), b"\x1f\x8b" + RANDOM_BINARY[:100], id="gzip"),
        pytest.param(FileFormat("csv", "zstd"), _zstd(b"a,b\n" * 10_000)[:-3], id="zstd-cut"),
        pytest.param(
            FileFormat("csv", "zstd"), b"\x28\xb5\x2f\xfd" + RANDOM_BINARY[:100], id="zstd"
        ),
        pytest.param(
            FileFormat("ndjson", "bz2"), bz2.compress(b'{"a": 1}\n' * 1000)[:-10], id="bz2-cut"
        ),
        pytest.param(FileFormat("csv"), RANDOM_BINARY, id="csv-binary"),
        pytest.param(FileFormat("csv"), b"a,b\n1,2\n\xff\xfe,3\n", id="csv-not-utf8"),
        pytest.param(FileFormat("ndjson"), b'{"a": 1}\n{"a": \n', id="ndjson"),
        pytest.param(FileFormat("json"), b'[{"a": 1}, {"a": ', id="json"),
    ],
)
def test_unreadable_content_raises_format_error(
    fmt: FileFormat, data: bytes, tmp_path: Path
) -> None:
    name = "s3://bucket/broken/file"
    with pytest.raises(FormatError, match="s3://bucket/broken/file") as info:
        read_bytes(data, fmt, name=name)
    assert "--format" in str(info.value) and str(fmt) in str(info.value)
    assert info.value.__cause__ is not None

    path = tmp_path / "broken"
    path.write_bytes(data)
    with pytest.raises(FormatError, match="s3://bucket/broken/file"):
        list(iter_file(path, fmt, name=name))
    assert [p.name for p in tmp_path.iterdir()] == ["broken"]  # no temporary file left behind


def test_polars_reason_with_position_is_kept(tmp_path: Path) -> None:
    data = b"a,b\n1,2\n3,4\n5,6\n7,8\n9,10,11\n12,13\n"
    with pytest.raises(FormatError, match=r"data\.csv: cannot read as csv: .*more fields"):
        read_bytes(data, FileFormat("csv"), name="data.csv")


def test_missing_file_is_not_a_format_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        list(iter_file(tmp_path / "nope.csv", FileFormat("csv"), name="nope.csv"))
    with pytest.raises(FileNotFoundError):
        list(iter_file(tmp_path / "nope.parquet", FileFormat("parquet"), name="nope.parquet"))


def test_temporary_file_is_removed_even_when_iteration_stops_early(tmp_path: Path) -> None:
    path = tmp_path / "data.parquet.zst"
    path.write_bytes(_zstd(_write(NESTED, "parquet")))
    frames = iter_file(path, FileFormat("parquet", "zstd"), name=path.name, batch_rows=2)
    assert isinstance(frames, Generator)  # so the ingester can close() it early
    assert next(frames).height == 2
    assert len(list(tmp_path.iterdir())) == 2  # the decompressed copy sits beside the input
    frames.close()
    assert list(tmp_path.iterdir()) == [path]


def test_read_bytes_takes_memoryviews_of_bytes_and_bytearray() -> None:
    data = b"junk" + _write(FRAME, "parquet")
    for view in (memoryview(data)[4:], memoryview(bytearray(data))[4:]):
        assert_frame_equal(read_bytes(view, FileFormat("parquet"), name="x"), FRAME)
    view = memoryview(bytearray(gzip.compress(_write(FRAME, "csv"))))
    assert_frame_equal(read_bytes(view, FileFormat("csv", "gzip"), name="x"), FRAME)


def test_batch_rows_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="batch_rows"):
        next(iter_file(tmp_path / "x.csv", FileFormat("csv"), name="x", batch_rows=0))


# --- read_many: small CSVs parsed together -----------------------------------------------------


def _csv(text: str) -> tuple[bytes, FileFormat, str]:
    return text.encode(), FileFormat("csv"), "s3://b/x.csv"


def test_read_many_equals_reading_each_file() -> None:
    items = [
        _csv("id,v\n1,a\n2,b\n"),
        _csv("id,v\r\n3,c"),  # CRLF header, no final newline
        _csv('id,v\n4,"quoted, with comma"\n'),  # has quotes: parsed alone
        _csv("other,cols\n5,x\n"),  # another header: another group
        _csv("id,v\n\n6,d\n\n"),  # blank lines: its own count is off, so it goes alone
    ]
    results = read_many(items)
    for (data, fmt, name), got in zip(items, results, strict=True):
        assert isinstance(got, pl.DataFrame)
        assert_frame_equal(got, read_bytes(data, fmt, name=name))
    header_only = read_many([_csv("id,v\n1,a\n"), _csv("id,v\n")])[1]
    assert isinstance(header_only, pl.DataFrame)
    assert header_only.height == 0 and header_only.columns == ["id", "v"]


def test_read_many_falls_back_when_the_joint_parse_fails() -> None:
    items = [_csv("id,n\n1,2\n"), _csv("id,n\n3,\xff\xfe\n"), _csv("id,n\n7,8\n")]
    items[1] = (b"id,n\n3,\xff\xfe\x00\n", items[1][1], "s3://b/bad.csv")  # not UTF-8
    results = read_many(items)
    assert isinstance(results[0], pl.DataFrame) and results[0].rows() == [(1, 2)]
    assert isinstance(results[2], pl.DataFrame) and results[2].rows() == [(7, 8)]
    assert isinstance(results[1], FormatError)  # the one bad file fails alone


def test_read_many_splits_right_around_blank_and_whitespace_lines() -> None:
    items = [
        _csv("id,v\n1,a\n2,b\n"),
        _csv("id,v\n\n3,c\n\n4,d\n"),  # blank lines (skipped by polars)
        _csv("id,v\r\n5,e\r\n\r\n6,f\r\n"),  # a blank CRLF line
        _csv("id,v\n7,g\n   \n8,h\n"),  # a line of spaces: polars makes it a row
        _csv("id,v\n9,i\n"),
    ]
    results = read_many(items)
    for (data, fmt, name), got in zip(items, results, strict=True):
        assert isinstance(got, pl.DataFrame)
        assert_frame_equal(got, read_bytes(data, fmt, name=name))
