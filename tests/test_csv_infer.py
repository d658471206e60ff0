"""CSV column types: inferred from a short sample first, then the whole text parsed strictly
with them; the types must be what polars' long inference (10,000 rows) gives, in every case."""

from __future__ import annotations

import polars as pl
import pytest

from dreambolt.formats.csvread import read_polars
from dreambolt.formats.detect import NO_OPTIONS
from dreambolt.formats.dialect import plain


def _text(rows: list[str]) -> bytes:
    return ("a,b\n" + "".join(f"{r}\n" for r in rows)).encode()


CASES = {
    "ints": [f"{i},x{i}" for i in range(3000)],
    "a float after the sample": [f"{i},x" for i in range(500)] + ["1.5,x"],
    "text after the sample": [f"{i},x" for i in range(5000)] + ["oops,x"],
    "no value in the sample": [f",x{i}" for i in range(300)] + ["7,y"],
    "booleans then text": ["true,x"] * 200 + ["maybe,x"],
    "a value past the long inference": [f"{i},x" for i in range(12000)] + ["2.5,x"],
    "short": ["1,x", "2,y"],
}


@pytest.mark.parametrize("name", list(CASES))
def test_types_are_those_of_the_long_inference(name: str) -> None:
    raw = _text(CASES[name])
    dialect = plain(raw, "csv", NO_OPTIONS)
    assert dialect is not None
    got = read_polars(raw, dialect, 10_000)
    try:
        expected = pl.read_csv(raw, infer_schema_length=10_000)
    except pl.exceptions.ComputeError:
        expected = pl.read_csv(raw, infer_schema_length=None)
    assert got.schema == expected.schema
    assert got.equals(expected)
