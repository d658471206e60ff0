"""CSV dialects are read as DuckDB's sniffer reads them: delimiter, quote, escape, line ends,
header or not, preamble and comment lines, names; and each can be overridden.

The reference in every test is DuckDB's own `read_csv` on the same bytes; values are compared
after casting ours to DuckDB's type (we keep text where DuckDB infers dates, say).
"""

from __future__ import annotations

import csv
import io
import string
from pathlib import Path

import duckdb
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_formats_hostile import both

from dreambolt.errors import FormatError
from dreambolt.formats.dialect import duckdb_names
from dreambolt.formats.many import read_many
from dreambolt.formats.read import (
    BLOCK_BYTES,
    CsvOptions,
    FileFormat,
    detect_format,
    read_bytes,
)

NAME = "s3://bucket/real/file.csv"


def reference(data: bytes, tmp_path: Path, **options: object) -> pl.DataFrame:
    path = tmp_path / "reference.csv"
    path.write_bytes(data)
    args = "".join(f", {key} := ${key}" for key in options)
    con = duckdb.connect()
    table = con.sql(
        f"SELECT * FROM read_csv($path{args})", params={"path": str(path), **options}
    ).to_arrow_table()
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    return frame


def ours(data: bytes, tmp_path: Path, fmt: FileFormat | None = None) -> list[pl.DataFrame]:
    """read_bytes, iter_file and iter_bytes (each joined) of the same bytes."""
    return both(data, fmt or detect_format("file.csv", data), tmp_path)


def assert_same(frame: pl.DataFrame, ref: pl.DataFrame) -> None:
    assert frame.columns == ref.columns
    assert frame.height == ref.height
    cast = frame
    for name, dtype in ref.schema.items():
        if frame.schema[name] == dtype:
            continue
        column = pl.col(name)
        if frame.schema[name] == pl.String and dtype.is_temporal():
            parse = {pl.Date: column.str.to_date(), pl.Time: column.str.to_time()}
            column = parse.get(dtype.base_type(), column.str.to_datetime())  # type: ignore[call-overload]
        cast = cast.with_columns(column.cast(dtype, strict=True))
    assert cast.rows() == ref.rows()


def assert_read_as_duckdb(data: bytes, tmp_path: Path, **options: object) -> pl.DataFrame:
    ref = reference(data, tmp_path, **options)
    frames = ours(data, tmp_path)
    for frame in frames:
        assert_same(frame, ref)
    return frames[0]


CASES = {
    # statsmodels modechoice.csv, csvkit sniff_limit.csv: `;` and `|`
    "semicolon": b"mode;ttme;invc;invt\n1;69;59;100\n2;34;31;372\n3;35;25;417\n",
    "pipe": b"a|b|c\n1|2|3\n4|5|6\n",
    "pipe quoted": b'a|b\n"x|y"|2\n"z"|3\n',
    "tab in a .csv": b"a\tb\tc\n1\t2\tx\n3\t4\ty\n",
    # agate test_cr.csv, csvkit mac_newlines.csv: classic Mac line ends
    "cr line ends": b"a,b,c\r1,2,3\r4,5,6\r7,8,9\r",
    # pandas lineterminator="\r" of a wide file: more delimiters in all than the column limit
    "cr line ends, many lines": b"a,b,c\r" + b"1,2,3\r" * 6_000,
    "crlf line ends": b"a,b\r\n1,2\r\n3,4\r\n",
    # scikit-learn digits.csv.gz, csvkit no_header_row.csv: no header
    "no header, numbers": b"1,2,3\n4,5,6\n7,8,9\n",
    "no header, a text column": b"a,1\nx,2\ny,3\n",
    "no header, floats": b"0.5,1e3\n1.5,-2\n",
    "no header, wide": (",".join(map(str, range(12))) + "\n").encode() * 3,
    # numpy umath-validation-set-*.csv: comment lines between records
    "comment lines": b"dtype,input,output\n## a comment ##\nf32,1,2\n## another ##\nf32,3,4\n",
    "preamble": b"Report of 2024\n\na,b\n1,2\n3,4\n",
    "single quotes": b"x,y\n'a,b',1\n'c',2\n",
    "backslash escapes": b'x;y\n"a\\"b";1\n"c";2\n',
    "repeated and empty names": b"a,a,,b,A\n1,2,3,4,5\n",
    "blank lines": b"a,b\n1,2\n\n3,4\n\n",
    "blank line in a quoted value": b'a,b\n"x\n\ny",2\n\n3,4\n',
    "byte order mark": "\ufeffa,b\n1,é\n".encode(),
    "text header over text": b"name,city\nfoo,bar\nbaz,qux\n",
    "dates": b"day,n\n2024-01-01,1\n2024-01-02,2\n",
    "date without header": b"2024-01-01,1\n2024-01-02,2\n",
    # statsmodels arima111_forecasts.csv, results_exact_initial_*_R.csv, mnlogit_resid.csv
    "spaces around names": b"year, cpi , predict\n1,2,3\n",
    "names repeated in another case": b"v_1,V_1,V,v\n1,2,3,4\n",
    "one line of numbers": b"0.00,0.00,1.5\n",
    "one line of text": b"a,b\n",
    # csv-spectrum empty.csv: a quoted empty value is NULL, as DuckDB reads it
    "quoted empty values": b'a,b,c\n1,"",""\n2,3,4\n',
}


@pytest.mark.parametrize("case", CASES)
def test_dialect_is_read_as_duckdb_reads_it(case: str, tmp_path: Path) -> None:
    assert_read_as_duckdb(CASES[case], tmp_path)


def test_no_header_names_columns_as_duckdb_does(tmp_path: Path) -> None:
    frame = assert_read_as_duckdb(b"1,2,3\n4,5,6\n", tmp_path)
    assert frame.columns == ["column0", "column1", "column2"]
    assert frame.height == 2  # the first row is data, not names
    assert duckdb_names(["a", "a", "", "b", "A"], True) == ["a", "a_1", "column2", "b", "A_2"]
    assert duckdb_names(["x"] * 11, False)[-1] == "column10"


def test_later_blocks_keep_the_sniffed_dialect(tmp_path: Path) -> None:
    """A file of several blocks, `;`-separated with CR line ends, no header: every block is
    read in the dialect sniffed from the first, with no row lost or split."""
    line = b"%d;text %d;%d.5\r"
    rows = BLOCK_BYTES // 20 * 3
    data = b"".join(line % (i, i, i) for i in range(rows))
    for frame in ours(data, tmp_path):
        assert frame.columns == ["column0", "column1", "column2"]
        assert frame.height == rows
        assert frame["column0"].to_list() == list(range(rows))
        assert frame["column1"][rows - 1] == f"text {rows - 1}"


def test_later_blocks_skip_blank_lines_too(tmp_path: Path) -> None:
    data = b"a,b\n" + b"1,x\n\n" * (BLOCK_BYTES // 4)
    for frame in ours(data, tmp_path):
        assert frame.height == BLOCK_BYTES // 4
        assert frame["b"].null_count() == 0


@pytest.mark.parametrize(
    ("data", "options", "duck", "expected"),
    [
        (b"x;y\n1;2\n", CsvOptions(delimiter=","), {"delim": ","}, [("1;2",)]),
        (b"a,b\n1,2\n", CsvOptions(header=False), {"header": False}, [("a", "b"), ("1", "2")]),
        (b"1,2\n3,4\n", CsvOptions(header=True), {"header": True}, [(3, 4)]),
        (b"junk\nmore junk\na,b\n1,2\n", CsvOptions(skip_rows=2), {"skip": 2}, [(1, 2)]),
        (b"a\tb\n1\t2\n", CsvOptions(delimiter="\t", header=True), {"delim": "\t"}, [(1, 2)]),
    ],
)
def test_user_options_win_over_detection(
    data: bytes,
    options: CsvOptions,
    duck: dict[str, object],
    expected: list[tuple[object]],
    tmp_path: Path,
) -> None:
    ref = reference(data, tmp_path, **duck)
    assert ref.rows() == expected
    for frame in ours(data, tmp_path, FileFormat("csv", options=options)):
        assert_same(frame, ref)


def test_encoding_option_reads_latin1_and_cp1252(tmp_path: Path) -> None:
    for codec, text in [("latin-1", "name\nZoë\nJosé\n"), ("cp1252", "price\n5 €\n")]:
        data = text.encode(codec)
        for frame in ours(data, tmp_path, FileFormat("csv", options=CsvOptions(encoding=codec))):
            assert frame.to_series().to_list() == text.splitlines()[1:]


def test_options_are_checked_up_front() -> None:
    with pytest.raises(ValueError, match="one single-byte character"):
        CsvOptions(delimiter=";;")
    with pytest.raises(ValueError, match="unknown encoding 'klingon'"):
        CsvOptions(encoding="klingon")
    with pytest.raises(ValueError, match="skip_rows must be 0 or more"):
        CsvOptions(skip_rows=-1)


def test_ragged_line_is_an_error_naming_the_line_not_one_text_column(tmp_path: Path) -> None:
    # DuckDB's sniffer gives up on such a file and reads each line as one text value.
    data = b"a,b\n1,2\n3,4\n5,6\n7,8\n9,10,11\n12,13\n"
    with pytest.raises(FormatError, match=r"file\.csv: cannot read as csv: .*more fields"):
        read_bytes(data, FileFormat("csv"), name=NAME)


def test_read_many_parses_headerless_and_other_dialects_alone_and_right(tmp_path: Path) -> None:
    files = [
        b"a,b\n1,2\n",
        b"a,b\n3,4\n",  # grouped
        b"5,6\n7,8\n",
        b"5,6\n9,10\n",  # no header: same first line, still each alone
        b"a;b\n1;2\n",
    ]
    results = read_many([(data, FileFormat("csv"), f"f{i}.csv") for i, data in enumerate(files)])
    for data, result in zip(files, results, strict=True):
        assert isinstance(result, pl.DataFrame)
        assert_same(result, reference(data, tmp_path))


# --- generated dialects ------------------------------------------------------------------------

_CELL = st.one_of(
    st.integers(-(10**6), 10**6).map(str),
    st.text(string.ascii_letters + " -_", min_size=1, max_size=8).filter(str.strip),
)


@st.composite
def tables(draw: st.DrawFn) -> tuple[bytes, bool]:
    width = draw(st.integers(2, 6))
    kinds = draw(st.lists(st.sampled_from(["int", "text"]), min_size=width, max_size=width))
    rows = draw(st.integers(3, 30))
    body = [
        [
            str(draw(st.integers(-(10**6), 10**6)))
            if kind == "int"
            else draw(st.text(string.ascii_letters, min_size=2, max_size=8))
            for kind in kinds
        ]
        for _ in range(rows)
    ]
    header = draw(st.booleans())
    names = [
        f"col_{draw(st.text(string.ascii_lowercase, min_size=1, max_size=5))}_{i}"
        for i in range(width)
    ]
    delimiter = draw(st.sampled_from([",", ";", "|", "\t"]))
    eol = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter, lineterminator=eol)
    if header:
        writer.writerow(names)
    writer.writerows(body)
    # A header is only recognisable when some column is not text (DuckDB's rule too).
    return out.getvalue().encode(), header and "int" in kinds


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(table=tables())
def test_generated_dialects_match_duckdb(table: tuple[bytes, bool], tmp_path: Path) -> None:
    data, _ = table
    ref = reference(data, tmp_path)
    frame = read_bytes(data, detect_format("gen.csv", data), name=NAME)
    assert_same(frame, ref)
