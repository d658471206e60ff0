"""Read a corpus file with the reference reader.

- CSV/TSV: DuckDB's `read_csv` with its sniffer deciding everything (dialect, header, types);
  `sample_size=-1` so it looks at every row, as the files are small. A file's reader options
  (`CorpusFile.options` and `reference_options`, e.g. an encoding) are passed as DuckDB's
  (`delim`, `header`, `skip`, `encoding`).
- NDJSON: DuckDB's `read_json(format='newline_delimited')`; JSON: `read_json` (array of
  records, or one document as one row), both inferring the schema from every record, and
  objects always as STRUCTs (`map_inference_threshold=-1`, `field_appearance_threshold=0`):
  DuckDB would otherwise make a MAP of an object with many or rare keys, a representation
  neither Arrow nor polars infers (the values are the same).
- Parquet: `pyarrow.parquet.read_table`; Arrow IPC: `pyarrow.feather.read_table` (Feather v1
  and v2 files), else the IPC stream format.

gzip/zstd are DuckDB's to unpack (by extension); bz2, which DuckDB cannot read, is unpacked to a
temporary file first. For Parquet/IPC, an outer compression is unpacked by pyarrow.
"""

from __future__ import annotations

import bz2
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.feather as pa_feather
import pyarrow.ipc as pa_ipc
import pyarrow.parquet as pq

from .collect import CorpusFile

# CsvOptions field -> DuckDB read_csv parameter.
DUCKDB_OPTIONS: dict[str, str] = {
    "delimiter": "delim",
    "header": "header",
    "skip_rows": "skip",
    "encoding": "encoding",
}


class ReferenceRefused(Exception):
    """The reference reader could not read the file either."""


@dataclass
class Reference:
    table: pa.Table
    # The date/timestamp formats DuckDB's CSV sniffer chose (strptime style), if any: a column
    # we keep as text is compared by parsing it the same way (e.g. '%d/%m/%y').
    date_format: str | None = None
    timestamp_format: str | None = None


def read_reference(file: CorpusFile) -> Reference:
    """The file's table as the reference reader sees it; ReferenceRefused if it cannot."""
    try:
        if file.kind in ("parquet", "ipc"):
            return Reference(_read_columnar(file))
        with tempfile.TemporaryDirectory(prefix="corpus-ref-") as tmp:
            path = file.path
            if file.compression == "bz2":
                path = Path(tmp) / file.path.name.removesuffix(".bz2")
                with bz2.open(file.path, "rb") as src, open(path, "wb") as dst:
                    shutil.copyfileobj(src, dst)
            options = {DUCKDB_OPTIONS[k]: v for k, v in file.options + file.reference_options}
            return _read_duckdb(file.kind, path, options)
    except ReferenceRefused:
        raise
    except (duckdb.Error, pa.ArrowException, OSError, ValueError) as exc:
        raise ReferenceRefused(f"{type(exc).__name__}: {exc}") from exc


def _connect() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")
    return con


def _read_duckdb(kind: str, path: Path, options: dict[str, Any]) -> Reference:
    if kind in ("csv", "tsv"):
        named = "".join(f", {name} = ${name}" for name in options)
        params = {"path": str(path), **options}
        with _connect() as con:
            table = con.sql(
                f"SELECT * FROM read_csv($path, sample_size = -1{named})", params=params
            ).to_arrow_table()
            row = con.execute(
                'SELECT "DateFormat", "TimestampFormat" '
                f"FROM sniff_csv($path, sample_size = -1{named})",
                params,
            ).fetchone()
        date_format, timestamp_format = row if row is not None else (None, None)
        return Reference(table, date_format, timestamp_format)
    if options:
        raise ValueError(f"reader options {options} for a {kind} file")
    if kind in ("ndjson", "json"):
        layout = "format = 'newline_delimited', " if kind == "ndjson" else ""
        query = (
            f"SELECT * FROM read_json(?, {layout}sample_size = -1, "
            "maximum_object_size = 268435456, map_inference_threshold = -1, "
            "field_appearance_threshold = 0)"
        )
    else:
        raise ValueError(f"no DuckDB reference reader for {kind}")
    with _connect() as con:
        return Reference(con.sql(query, params=[str(path)]).to_arrow_table())


def _read_columnar(file: CorpusFile) -> pa.Table:
    source: str | pa.BufferReader = str(file.path)
    if file.compression is not None:
        with pa.input_stream(str(file.path), compression=file.compression) as stream:
            source = pa.BufferReader(stream.read())
    if file.kind == "parquet":
        return pq.read_table(source)
    try:
        return pa_feather.read_table(source)
    except pa.ArrowInvalid:
        if isinstance(source, pa.BufferReader):
            source.seek(0)
        with pa_ipc.open_stream(source) as reader:
            return reader.read_all()
