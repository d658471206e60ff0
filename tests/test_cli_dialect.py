"""`dreambolt ingest` with files of other dialects and encodings, from S3 (moto) and local disk:
detected as DuckDB detects them, or as --csv-*/--encoding say, into a real DuckDB file."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import duckdb
from faultproxy import FaultProxy
from test_cli import run


def table(db: Path, name: str) -> list[tuple[Any, ...]]:
    with duckdb.connect(str(db), read_only=True) as con:
        columns = [c for c in con.table(name).columns if not c.startswith("_")]
        listed = ", ".join(f'"{c}"' for c in columns)
        rows = con.execute(f'SELECT {listed} FROM "{name}" ORDER BY 1').fetchall()
    return [tuple(columns), *rows]


def test_dialects_from_s3_are_detected(
    proxy: FaultProxy, s3: Any, bucket: str, tmp_path: Path
) -> None:
    objects = {
        "semi/modechoice.csv": b"mode;ttme\n1;69\n2;34\n",
        "mac/test_cr.csv": b"a,b\r1,2\r3,4\r",
        "nohead/digits.csv.gz": gzip.compress(b"0,5\n1,6\n"),
        "json/TestOrcFile.test1.jsn.gz": gzip.compress(b'{"x": 1}\n{"x": 2}\n'),
    }
    for key, body in objects.items():
        s3.put_object(Bucket=bucket, Key=key, Body=body)
    db = tmp_path / "d.duckdb"
    expected = {
        "semi": [("mode", "ttme"), (1, 69), (2, 34)],
        "mac": [("a", "b"), (1, 2), (3, 4)],
        "nohead": [("column0", "column1"), (0, 5), (1, 6)],
        "json": [("x",), (1,), (2,)],
    }
    for key in objects:
        name = key.split("/")[0]
        done = run(
            "ingest",
            f"s3://{bucket}/{key}",
            "--db",
            str(db),
            "--table",
            name,
            "-q",
            endpoint=proxy.endpoint_url,
        )
        assert done.returncode == 0, done.stderr
        assert table(db, name) == expected[name]


def test_overrides_and_encoding_from_the_command_line(tmp_path: Path) -> None:
    data = tmp_path / "export.txt"
    data.write_bytes("junk line\nZoë|1\nJosé|2\n".encode("latin-1"))
    db = tmp_path / "o.duckdb"
    done = run(
        "ingest",
        str(data),
        "--db",
        str(db),
        "--table",
        "people",
        "--json",
        "--csv-delimiter",
        "|",
        "--no-csv-header",
        "--csv-skip-rows",
        "1",
        "--encoding",
        "latin-1",
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["totals"]["rows"] == 2
    assert table(db, "people") == [("column0", "column1"), ("José", 2), ("Zoë", 1)]
    tabs = tmp_path / "tabs.csv"
    tabs.write_bytes(b"a\tb\n1\t2\n")
    done = run("ingest", str(tabs), "--db", str(db), "--csv-delimiter", "\\t", "-q")
    assert done.returncode == 0, done.stderr
    assert table(db, "tabs") == [("a", "b"), (1, 2)]


def test_bad_options_are_usage_errors_and_a_wrong_encoding_names_the_file(tmp_path: Path) -> None:
    data = tmp_path / "x.csv"
    data.write_bytes("a,b\n1,é\n".encode("latin-1"))
    db = tmp_path / "b.duckdb"
    for option in (["--csv-delimiter", ";;"], ["--encoding", "klingon"]):
        done = run("ingest", str(data), "--db", str(db), *option)
        assert done.returncode == 2
        assert "delimiter" in done.stderr or "unknown encoding 'klingon'" in done.stderr
    done = run("ingest", str(data), "--db", str(db))
    assert done.returncode == 1
    assert "x.csv" in done.stderr and "--encoding latin-1" in done.stderr
