"""JSON as other tools write it: arrays of scalars, pretty-printed documents, fields that change
type, JSON lines under any name. Each read as DuckDB's `read_json` reads it."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import duckdb
import polars as pl
import pytest
from test_formats_hostile import both

from dreambolt.formats.read import FileFormat, detect_format

DOCUMENT = {"data": {"dataset": [{"did": 61, "name": "iris"}, {"did": 3, "name": "kr"}]}}
CASES: dict[str, tuple[str, bytes]] = {
    # moto emr/resources/instance-types-*.json.gz
    "array of strings": ("types.json", json.dumps(["m7a.xlarge", "m7i.large"], indent=2).encode()),
    "array of numbers": ("n.json", b"[1, 2.5, 3]"),
    # scikit-learn openml api-v1-jdl-*.json.gz: a document over many lines
    "pretty document": ("jdl.json", json.dumps(DOCUMENT, indent=1).encode()),
    "document with a long first line": ("jdl2.json", b'{"data":{"dataset":[\n{"did":61}]}}\n'),
    # openml api-v1-jdq-*.json.gz: a value that is a string here and a list there
    "changing type, one line": (
        "jdq.json",
        b'{"quality":[{"name":"a","value":"0.98"},{"name":"b","value":[1,2]}]}',
    ),
    "changing type, JSON lines": ("l.jsonl", b'{"v": "x"}\n{"v": [1, 2]}\n{"v": {"k": 1}}\n'),
    # pyarrow orc/TestOrcFile.*.jsn.gz: JSON lines under a name nobody knows
    "jsn lines": ("TestOrcFile.test1.jsn", b'{"a": 1, "b": "x"}\n{"a": 2, "b": "y"}\n'),
}


def reference(data: bytes, tmp_path: Path) -> pl.DataFrame:
    path = tmp_path / "reference.json"
    path.write_bytes(data)
    frame = pl.from_arrow(
        duckdb.connect()
        .sql("SELECT * FROM read_json($path)", params={"path": str(path)})
        .to_arrow_table()
    )
    assert isinstance(frame, pl.DataFrame)
    return frame


def as_json_text(frame: pl.DataFrame) -> list[str]:
    """Each row as JSON text, so nested values compare whatever Arrow type holds them, and a
    value kept as JSON text compares as the JSON it holds: where a field changes type, polars
    keeps strings as they are and the rest as JSON text with the file's spacing; DuckDB gives
    every value as minified JSON text (README, "Reading files other tools wrote")."""

    def value(item: object) -> object:
        if isinstance(item, str):
            try:
                decoded = json.loads(item)
            except ValueError:
                return item
            return decoded if isinstance(decoded, str | list | dict) else item
        return item

    return [
        json.dumps({k: value(v) for k, v in row.items()}, sort_keys=True, default=str)
        for row in frame.to_dicts()
    ]


@pytest.mark.parametrize("case", CASES)
def test_json_is_read_as_duckdb_reads_it(case: str, tmp_path: Path) -> None:
    name, data = CASES[case]
    ref = reference(data, tmp_path)
    for packed in (data, gzip.compress(data)):
        fmt = detect_format(name + (".gz" if packed is not data else ""), packed)
        for frame in both(packed, fmt, tmp_path):
            assert frame.columns == ref.columns
            assert sorted(as_json_text(frame)) == sorted(as_json_text(ref))


def test_content_beats_the_extension(tmp_path: Path) -> None:
    lines = b'{"a": 1}\n{"a": 2}\n'
    for name in ("x.jsn", "x.txt", "x.json", "x.jsonl", "x.csv", "x"):
        fmt = detect_format(name, lines)
        assert fmt.kind == "ndjson"
        assert both(lines, fmt, tmp_path)[0]["a"].to_list() == [1, 2]
    assert detect_format("x.txt", b'[{"a": 1}]').kind == "json"
    assert detect_format("x.jsn.gz", gzip.compress(lines)) == FileFormat("ndjson", "gzip")
