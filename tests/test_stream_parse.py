"""Text parsed block by block as it arrives (`iter_pieces`), and the cheap paths of that parse:
blank lines looked for only where the frame may hold them, quote-free blocks cut by `rfind`."""

from __future__ import annotations

import random
from collections.abc import Iterator

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from dreambolt.errors import FormatError
from dreambolt.formats import read as formats
from dreambolt.formats.blocks import record_blocks
from dreambolt.formats.limits import DEFAULT_LIMITS
from dreambolt.formats.read import FileFormat, iter_pieces, read_bytes


@pytest.fixture
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tiny blocks, so that block boundaries fall everywhere."""
    monkeypatch.setattr(formats, "BLOCK_BYTES", 64)
    monkeypatch.setattr(formats, "INFER_ROWS", 5)


def cut(data: bytes, size: int) -> Iterator[bytes]:
    return (data[i : i + size] for i in range(0, len(data), size))


def streamed(data: bytes, kind: str = "csv", piece: int = 5) -> pl.DataFrame:
    fmt = FileFormat(kind)  # type: ignore[arg-type]
    frames = list(iter_pieces(cut(data, piece), fmt, name="s3://b/k", batch_rows=1000))
    return pl.concat(frames, how="diagonal_relaxed")


@pytest.mark.usefixtures("small_blocks")
def test_pieces_parse_as_the_whole_object_does_quoted_newlines_and_widening() -> None:
    rng = random.Random(3)
    words = ["a", "b,c", 'd"e', "f\ng", "h\r\ni", "ĳ ✓", '""']
    rows = [
        f'{i},"{"".join(rng.choices(words, k=2)).replace(chr(34), chr(34) * 2)}"\n'
        for i in range(200)
    ]
    data = ("n,s\n" + "".join(rows) + "1.5,late float\n" + "x,late text\n").encode()
    whole = read_bytes(data, FileFormat("csv"), name="k")
    got = streamed(data)
    assert got.schema["n"] == pl.String  # widened twice, as the whole-file inference types it
    assert_frame_equal(got, whole)


@pytest.mark.usefixtures("small_blocks")
@pytest.mark.parametrize(
    ("body", "rows", "null_rows"),
    [
        (b"1,x\n\n" * 60, 60, 0),  # blank lines in every block
        (b"1,x\r\n\r\n" * 60, 60, 0),  # blank CRLF lines
        (b"1,x\n" * 30 + b"\n\n\n" + b"2,y\n" * 30, 60, 0),  # a block starting on blank lines
        (b"1,x\n,\n" * 40, 80, 40),  # a line of empty fields is a row of nulls: kept
        (b'1,"x\n\ny"\n' * 40, 40, 0),  # blank lines inside quoted values are values
    ],
)
def test_later_blocks_drop_blank_lines_only_where_there_are_some(
    body: bytes, rows: int, null_rows: int
) -> None:
    """As DuckDB reads a file of two or more columns (see test_dialect.py)."""
    data = b"a,b\n" + body
    whole = read_bytes(data, FileFormat("csv"), name="k")
    assert whole.height == rows
    assert whole.filter(pl.all_horizontal(pl.all().is_null())).height == null_rows
    assert_frame_equal(streamed(data), whole)


@pytest.mark.usefixtures("small_blocks")
def test_ndjson_pieces_may_grow_the_schema() -> None:
    data = b"".join(b'{"a": %d}\n' % i for i in range(50)) + b'{"a": 1, "b": "new"}\n'
    got = streamed(data, "ndjson")
    assert got.columns == ["a", "b"]
    assert_frame_equal(got, read_bytes(data, FileFormat("ndjson"), name="k"))


def test_a_failing_source_is_passed_on_as_it_is() -> None:
    class Gone(Exception):
        pass

    def pieces() -> Iterator[bytes]:
        yield b"a,b\n1,2\n"
        raise Gone("the download failed")

    with pytest.raises(Gone):
        list(iter_pieces(pieces(), FileFormat("csv"), name="k"))


def test_a_bad_record_is_a_format_error_naming_the_object() -> None:
    data = b'a,b\n1,"never closed\n' + b"x" * 100
    with pytest.raises(FormatError, match="s3://b/k"):
        list(iter_pieces(cut(data, 10), FileFormat("csv"), name="s3://b/k"))


def test_only_text_is_parsed_from_pieces() -> None:
    with pytest.raises(ValueError, match="parquet"):
        list(iter_pieces([b"PAR1"], FileFormat("parquet"), name="k"))


@pytest.mark.parametrize("text", [b"1,x\n2,y\n3,z", b'1,"x\n"\n2,y\n3,"z\n', b'1,x\n2,"y\n3,z\n'])
def test_blocks_end_on_records_with_or_without_quotes(text: bytes) -> None:
    data = text * 40
    blocks = list(
        record_blocks(
            cut(data, 7), quoted=True, limits=DEFAULT_LIMITS, block_bytes=16, first_records=1
        )
    )
    assert b"".join(blocks) == data
    for block in blocks[:-1]:
        assert block.endswith(b"\n") and block.count(b'"') % 2 == 0
