"""The corpus's second source: files *other tools wrote*, generated at test time.

Real datasets of the corpus (palmerpenguins, vega_datasets, statsmodels; plus the HTML entity
table of Python's standard library, the only real table at hand with Latin-1 letters for the
encodings) are read with DuckDB and written again by the writers users' files come from:
pandas (`to_csv` dialects and encodings, `to_json` orients, `to_parquet`, `to_feather`), Python's
`csv` module, pyarrow (CSV, Parquet options, Feather v1/v2, IPC file and stream), DuckDB
(`COPY ... TO` CSV/Parquet/JSON) and polars (`write_csv`, `write_parquet`, `write_ipc`,
`write_ipc_stream`, `write_json`, `write_ndjson`), with compressed variants of some.

Each file is a `CorpusFile` with id ``written:WRITER/VARIANT/DATASET.EXT`` (e.g.
``written:pandas/semicolon/penguins-raw.csv``) and goes through the same comparison as the
files shipped in packages. The files are cached in ``.venv/corpus-written/KEY/`` and rebuilt
when missing; KEY holds GENERATOR_VERSION and a hash of this module's source and the writers'
versions, so a change of the generator (or of a writer) rebuilds them. A missing writer or
dataset, or a writer that fails, is a reported problem, never a skip.

Reader options: only what cannot be told from the content. A Latin-1 file is told to both
readers (`options`: `encoding`); a UTF-16 file with its byte order mark is told to the
reference alone (`reference_options`; DuckDB's sniffer does not look for the mark, DreamBolt
does).
"""

from __future__ import annotations

import csv
import hashlib
import html.entities
import importlib.metadata
import json
import os
import platform
import shutil
import sys
import time
import unicodedata
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .collect import CorpusFile, classify

# Change when what is generated changes (the cache key also hashes this file's source).
GENERATOR_VERSION = "1"
CACHE = Path(sys.prefix) / "corpus-written"
# The writers (distributions) whose versions are in the cache key; a missing one is a problem.
WRITER_DISTS: dict[str, str] = {
    "pandas": "dev: via statsmodels (pinned in requirements.lock)",
    "polars": "runtime dependency",
    "pyarrow": "runtime dependency",
    "duckdb": "runtime dependency",
}
MIN_WRITTEN = 200  # fewer generated files means a writer or dataset went missing

Options = tuple[tuple[str, Any], ...]


# --- the datasets -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Dataset:
    """A table of the corpus, read with DuckDB: `dist`'s file `rel` through `query` (its `?` is
    the path), or built in Python (`dist` None)."""

    name: str
    dist: str | None
    rel: str = ""
    query: str = "SELECT * FROM read_csv(?, sample_size = -1)"


DATASETS: tuple[Dataset, ...] = (
    # 344 x 17: quoted commas ("Adult, 1 Egg Stage"), dates, NA, free-text comments.
    Dataset("penguins-raw", "palmerpenguins", "palmerpenguins/data/penguins-raw.csv"),
    # 63 x 11: names with '.', '&', dates, coordinates.
    Dataset("la-riots", "vega_datasets", "vega_datasets/_data/la-riots.csv"),
    # 3,376 x 7: airport names with quotes, apostrophes and commas.
    Dataset("airports", "vega_datasets", "vega_datasets/_data/airports.csv"),
    # 1,461 x 6: dates, decimals.
    Dataset("seattle-weather", "vega_datasets", "vega_datasets/_data/seattle-weather.csv"),
    # 8,760 x 2: timestamps (hourly).
    Dataset("seattle-temps", "vega_datasets", "vega_datasets/_data/seattle-temps.csv"),
    # 203 x 14: floats only.
    Dataset("macrodata", "statsmodels", "statsmodels/datasets/macrodata/macrodata.csv"),
    # 51 x 8: US states, floats.
    Dataset("statecrime", "statsmodels", "statsmodels/datasets/statecrime/statecrime.csv"),
    # 406 x 9: a JSON array of records with nulls.
    Dataset(
        "cars",
        "vega_datasets",
        "vega_datasets/_data/cars.json",
        "SELECT * FROM read_json(?, sample_size = -1)",
    ),
    # 35 x 9 nested: per species, island and year, the list of body masses (with nulls), the
    # list of sexes, a struct of bill-length extremes.
    Dataset(
        "penguins-groups",
        "palmerpenguins",
        "palmerpenguins/data/penguins.csv",
        "WITH t AS (SELECT *, row_number() OVER () AS r FROM read_csv(?, sample_size = -1)) "
        "SELECT species, island, year, count(*) AS n, "
        "list(body_mass_g ORDER BY r) AS body_mass_g, list(sex ORDER BY r) AS sex, "
        "{'min': min(bill_length_mm), 'max': max(bill_length_mm)} AS bill_length_mm "
        "FROM t GROUP BY ALL ORDER BY species, island, year",
    ),
    # Python's HTML entities (252 x 5): the Latin-1 letters, '"', '&', NBSP, Greek, symbols.
    Dataset("html-entities", None),
    # The 100 of them in Latin-1 (code points <= 255).
    Dataset("html-entities-latin1", None),
)


def _html_entities(max_codepoint: int) -> Any:
    import pyarrow as pa

    rows = [
        {
            "name": name,
            "codepoint": cp,
            "character": chr(cp),
            "unicode_name": unicodedata.name(chr(cp), None),
            "category": unicodedata.category(chr(cp)),
        }
        for cp, name in sorted(html.entities.codepoint2name.items())
        if cp <= max_codepoint
    ]
    return pa.Table.from_pylist(rows)


def _load_dataset(ds: Dataset) -> Any:
    """The dataset as a pyarrow Table; PackageNotFoundError if its distribution is missing."""
    import duckdb

    if ds.dist is None:
        return _html_entities(255 if ds.name.endswith("latin1") else sys.maxunicode)
    dist = importlib.metadata.distribution(ds.dist)
    path = Path(str(dist.locate_file(ds.rel)))
    if not path.is_file():
        raise FileNotFoundError(f"{ds.dist}: {ds.rel} is not on disk")
    with duckdb.connect() as con:
        con.execute("SET enable_progress_bar = false")
        return con.sql(ds.query, params=[str(path)]).to_arrow_table()


# --- the writers --------------------------------------------------------------------------------

Write = Callable[[Any, Path], None]  # (the dataset as a pyarrow Table, the path to write)


@dataclass(frozen=True)
class Variant:
    """One way one tool writes a table: `write` it for each of `datasets` to
    WRITER/NAME/DATASET.EXT."""

    writer: str  # a WRITER_DISTS key, or "python" (the standard library's csv module)
    name: str
    ext: str
    datasets: tuple[str, ...]
    write: Write
    options: Options = ()  # told to both readers (CsvOptions field names)
    reference_options: Options = ()  # told to the reference alone


def _pandas(table: Any) -> Any:
    return table.to_pandas()


def _polars(table: Any) -> Any:
    import polars as pl

    return pl.from_arrow(table)


def _to_csv(**kwargs: Any) -> Write:
    kwargs.setdefault("index", False)
    return lambda t, p: _pandas(t).to_csv(p, **kwargs)


def _to_csv_gz(**kwargs: Any) -> Write:
    # mtime 0: the same bytes on every build.
    return _to_csv(compression={"method": "gzip", "mtime": 0}, **kwargs)


def _to_json(**kwargs: Any) -> Write:
    return lambda t, p: _pandas(t).to_json(p, **kwargs)


def _pandas_parquet(**kwargs: Any) -> Write:
    return lambda t, p: _pandas(t).to_parquet(p, **kwargs)


def _pandas_feather(t: Any, p: Path) -> None:
    _pandas(t).to_feather(p)


def _csv_module(dialect: str) -> Write:
    def write(t: Any, p: Path) -> None:
        with open(p, "w", newline="", encoding="utf-8") as f:
            out = csv.writer(f, dialect=dialect)
            out.writerow(t.column_names)
            for row in t.to_pylist():
                out.writerow(["" if v is None else v for v in row.values()])

    return write


def _pyarrow_csv(**kwargs: Any) -> Write:
    def write(t: Any, p: Path) -> None:
        import pyarrow.csv as pa_csv

        pa_csv.write_csv(t, str(p), pa_csv.WriteOptions(**kwargs))

    return write


def _pyarrow_parquet(**kwargs: Any) -> Write:
    def write(t: Any, p: Path) -> None:
        import pyarrow.parquet as pq

        pq.write_table(t, str(p), **kwargs)

    return write


def _feather(**kwargs: Any) -> Write:
    def write(t: Any, p: Path) -> None:
        import pyarrow.feather as feather

        feather.write_feather(t, str(p), **kwargs)

    return write


def _ipc(stream: bool, compression: str | None = None) -> Write:
    def write(t: Any, p: Path) -> None:
        import pyarrow as pa

        options = pa.ipc.IpcWriteOptions(compression=compression)
        open_writer = pa.ipc.new_stream if stream else pa.ipc.new_file
        with (
            pa.OSFile(str(p), "wb") as sink,
            open_writer(sink, t.schema, options=options) as writer,
        ):
            writer.write_table(t, max_chunksize=1000)

    return write


def _duckdb(options: str) -> Write:
    def write(t: Any, p: Path) -> None:
        import duckdb

        with duckdb.connect() as con:
            con.execute("SET enable_progress_bar = false")
            con.register("t", t)
            target = str(p).replace("'", "''")
            con.execute(f"COPY t TO '{target}' ({options})")

    return write


def _polars_call(method: str, **kwargs: Any) -> Write:
    return lambda t, p: getattr(_polars(t), method)(p, **kwargs)


CSV_SETS = ("penguins-raw", "la-riots", "airports", "seattle-weather")
NUMBERS = ("macrodata",)  # floats only: where a decimal comma or a delimiter matters
FEW = ("penguins-raw", "seattle-temps", "la-riots")
TWO = ("penguins-raw", "seattle-temps")
COLUMNAR = TWO
JSONS = ("penguins-raw", "cars", "seattle-temps")
ENTITIES = ("html-entities",)
LATIN1 = ("html-entities-latin1",)
NESTED = ("penguins-groups",)


def _variants() -> Iterator[Variant]:
    v = Variant
    # pandas to_csv: the dialects pandas users pick.
    yield v("pandas", "comma", "csv", CSV_SETS + NUMBERS + ENTITIES, _to_csv())
    yield v("pandas", "index", "csv", CSV_SETS, _to_csv(index=True))  # unnamed first column
    yield v("pandas", "semicolon", "csv", CSV_SETS + NUMBERS, _to_csv(sep=";"))
    yield v("pandas", "pipe", "csv", CSV_SETS, _to_csv(sep="|"))
    yield v("pandas", "tab", "tsv", CSV_SETS + NUMBERS, _to_csv(sep="\t"))
    yield v("pandas", "tab", "csv", CSV_SETS, _to_csv(sep="\t"))
    yield v("pandas", "cr", "csv", CSV_SETS, _to_csv(lineterminator="\r"))
    yield v("pandas", "crlf", "csv", CSV_SETS, _to_csv(lineterminator="\r\n"))
    yield v("pandas", "no-header", "csv", CSV_SETS, _to_csv(header=False))
    yield v("pandas", "quote-all", "csv", CSV_SETS + ENTITIES, _to_csv(quoting=csv.QUOTE_ALL))
    yield v("pandas", "quote-nonnumeric", "csv", CSV_SETS, _to_csv(quoting=csv.QUOTE_NONNUMERIC))
    yield v("pandas", "single-quote", "csv", CSV_SETS, _to_csv(quotechar="'"))
    yield v(
        "pandas",
        "single-quote-all",
        "csv",
        ("penguins-raw", "airports"),
        _to_csv(quotechar="'", quoting=csv.QUOTE_ALL),
    )
    yield v(
        "pandas",
        "backslash-escape",
        "csv",
        CSV_SETS + ENTITIES,
        _to_csv(escapechar="\\", doublequote=False),
    )
    yield v("pandas", "european", "csv", CSV_SETS + NUMBERS, _to_csv(sep=";", decimal=","))
    yield v("pandas", "utf-8-sig", "csv", ENTITIES, _to_csv(encoding="utf-8-sig"))
    yield v(
        "pandas",
        "utf-16",
        "csv",
        ENTITIES,
        _to_csv(encoding="utf-16"),
        reference_options=(("encoding", "utf-16"),),
    )
    # Excel's "Unicode text": UTF-16 with its byte order mark, tab-separated.
    yield v(
        "pandas",
        "utf-16-tab",
        "tsv",
        ENTITIES,
        _to_csv(encoding="utf-16", sep="\t"),
        reference_options=(("encoding", "utf-16"),),
    )
    yield v(
        "pandas",
        "latin-1",
        "csv",
        LATIN1,
        _to_csv(encoding="latin-1"),
        options=(("encoding", "latin-1"),),
    )
    yield v(
        "pandas",
        "latin-1-european",
        "csv",
        LATIN1,
        _to_csv(encoding="latin-1", sep=";", decimal=","),
        options=(("encoding", "latin-1"),),
    )
    yield v("pandas", "gzip", "csv.gz", ("penguins-raw", "airports"), _to_csv_gz())
    yield v("pandas", "bz2", "csv.bz2", ("penguins-raw", "airports"), _to_csv(compression="bz2"))
    yield v("pandas", "zstd", "csv.zst", ("penguins-raw", "airports"), _to_csv(compression="zstd"))
    yield v("pandas", "semicolon-gzip", "csv.gz", ("penguins-raw",), _to_csv_gz(sep=";"))
    yield v("pandas", "tab-gzip", "tsv.gz", ("penguins-raw",), _to_csv_gz(sep="\t"))
    # Python's csv module, its three dialects.
    csvmod = ("penguins-raw", "la-riots", "html-entities")
    yield v("python", "excel", "csv", csvmod, _csv_module("excel"))
    yield v("python", "excel-tab", "tsv", csvmod, _csv_module("excel-tab"))
    yield v("python", "unix", "csv", csvmod, _csv_module("unix"))
    # pyarrow.csv.write_csv.
    pa_csv = ("penguins-raw", "seattle-temps")
    yield v("pyarrow", "default", "csv", pa_csv, _pyarrow_csv())
    yield v("pyarrow", "quote-all-valid", "csv", pa_csv, _pyarrow_csv(quoting_style="all_valid"))
    yield v("pyarrow", "semicolon", "csv", pa_csv, _pyarrow_csv(delimiter=";"))
    yield v("pyarrow", "no-header", "csv", pa_csv, _pyarrow_csv(include_header=False))
    # DuckDB COPY TO csv.
    duck_csv = ("penguins-raw", "airports", "seattle-temps")
    yield v("duckdb", "default", "csv", duck_csv, _duckdb("FORMAT csv"))
    yield v("duckdb", "semicolon", "csv", duck_csv, _duckdb("FORMAT csv, DELIMITER ';'"))
    yield v("duckdb", "pipe", "csv", duck_csv, _duckdb("FORMAT csv, DELIMITER '|'"))
    yield v("duckdb", "tab", "tsv", duck_csv, _duckdb("FORMAT csv, DELIMITER '\t'"))
    yield v("duckdb", "no-header", "csv", duck_csv, _duckdb("FORMAT csv, HEADER false"))
    yield v("duckdb", "force-quote", "csv", duck_csv, _duckdb("FORMAT csv, FORCE_QUOTE *"))
    yield v("duckdb", "gzip", "csv.gz", ("penguins-raw",), _duckdb("FORMAT csv, COMPRESSION gzip"))
    yield v("duckdb", "zstd", "csv.zst", ("penguins-raw",), _duckdb("FORMAT csv, COMPRESSION zstd"))
    # polars write_csv.
    yield v("polars", "default", "csv", FEW, _polars_call("write_csv"))
    yield v("polars", "semicolon", "csv", FEW, _polars_call("write_csv", separator=";"))
    yield v("polars", "tab", "tsv", FEW, _polars_call("write_csv", separator="\t"))
    yield v("polars", "no-header", "csv", FEW, _polars_call("write_csv", include_header=False))
    yield v("polars", "quote-always", "csv", FEW, _polars_call("write_csv", quote_style="always"))
    yield v(
        "polars",
        "quote-non-numeric",
        "csv",
        TWO,
        _polars_call("write_csv", quote_style="non_numeric"),
    )
    yield v("polars", "crlf", "csv", TWO, _polars_call("write_csv", line_terminator="\r\n"))
    yield v(
        "polars",
        "decimal-comma",
        "csv",
        TWO,
        _polars_call("write_csv", separator=";", decimal_comma=True),
    )
    yield v("polars", "bom", "csv", ("html-entities",), _polars_call("write_csv", include_bom=True))
    yield v(
        "polars", "gzip", "csv.gz", ("penguins-raw",), _polars_call("write_csv", compression="gzip")
    )
    yield v(
        "polars",
        "zstd",
        "csv.zst",
        ("penguins-raw",),
        _polars_call("write_csv", compression="zstd"),
    )

    # Parquet: pyarrow's options.
    for codec in ("none", "snappy", "gzip", "zstd", "brotli", "lz4"):
        yield v(
            "pyarrow",
            f"compression-{codec}",
            "parquet",
            COLUMNAR,
            _pyarrow_parquet(compression=codec),
        )
    yield v("pyarrow", "version-1.0", "parquet", COLUMNAR, _pyarrow_parquet(version="1.0"))
    yield v("pyarrow", "version-2.6", "parquet", ("penguins-raw",), _pyarrow_parquet(version="2.6"))
    yield v(
        "pyarrow", "data-page-v2", "parquet", COLUMNAR, _pyarrow_parquet(data_page_version="2.0")
    )
    yield v(
        "pyarrow",
        "no-dictionary",
        "parquet",
        ("penguins-raw",),
        _pyarrow_parquet(use_dictionary=False),
    )
    yield v(
        "pyarrow",
        "no-statistics",
        "parquet",
        ("penguins-raw",),
        _pyarrow_parquet(write_statistics=False),
    )
    yield v("pyarrow", "row-groups-100", "parquet", COLUMNAR, _pyarrow_parquet(row_group_size=100))
    yield v(
        "pyarrow",
        "byte-stream-split",
        "parquet",
        ("macrodata",),
        _pyarrow_parquet(use_dictionary=False, use_byte_stream_split=True),
    )
    yield v(
        "pyarrow",
        "int96",
        "parquet",
        ("seattle-temps",),
        _pyarrow_parquet(use_deprecated_int96_timestamps=True),
    )
    yield v(
        "pyarrow",
        "timestamps-ms",
        "parquet",
        ("seattle-temps",),
        _pyarrow_parquet(coerce_timestamps="ms"),
    )
    yield v("pyarrow", "default", "parquet", NESTED, _pyarrow_parquet())
    yield v(
        "pyarrow",
        "noncompliant-nested",
        "parquet",
        NESTED,
        _pyarrow_parquet(use_compliant_nested_type=False),
    )
    # Parquet: DuckDB, polars, pandas.
    duck_pq = ("penguins-raw", "seattle-temps", "penguins-groups")
    yield v("duckdb", "default", "parquet", duck_pq, _duckdb("FORMAT parquet"))
    yield v(
        "duckdb", "zstd", "parquet", ("penguins-raw",), _duckdb("FORMAT parquet, COMPRESSION zstd")
    )
    yield v(
        "duckdb",
        "uncompressed",
        "parquet",
        ("penguins-raw",),
        _duckdb("FORMAT parquet, COMPRESSION uncompressed"),
    )
    yield v(
        "duckdb",
        "row-groups-100",
        "parquet",
        ("penguins-raw",),
        _duckdb("FORMAT parquet, ROW_GROUP_SIZE 100"),
    )
    yield v(
        "duckdb",
        "parquet-v2",
        "parquet",
        ("penguins-raw", "penguins-groups"),
        _duckdb("FORMAT parquet, PARQUET_VERSION V2"),
    )
    pl_pq = ("penguins-raw", "seattle-temps", "penguins-groups")
    yield v("polars", "default", "parquet", pl_pq, _polars_call("write_parquet"))
    for codec in ("snappy", "uncompressed", "lz4", "gzip", "brotli"):
        yield v(
            "polars",
            f"compression-{codec}",
            "parquet",
            ("penguins-raw",),
            _polars_call("write_parquet", compression=codec),
        )
    yield v(
        "polars",
        "no-statistics",
        "parquet",
        ("penguins-raw",),
        _polars_call("write_parquet", statistics=False),
    )
    yield v(
        "polars",
        "full-statistics",
        "parquet",
        ("penguins-raw",),
        _polars_call("write_parquet", statistics="full"),
    )
    yield v(
        "polars",
        "row-groups-100",
        "parquet",
        ("penguins-raw",),
        _polars_call("write_parquet", row_group_size=100),
    )
    yield v(
        "pandas",
        "default",
        "parquet",
        ("penguins-raw", "seattle-temps", "penguins-groups"),
        _pandas_parquet(),
    )
    yield v("pandas", "index", "parquet", ("penguins-raw",), _pandas_parquet(index=True))

    # Arrow IPC: Feather v1/v2, file and stream formats, compressed.
    yield v("pyarrow", "feather-v1", "feather", ("airports", "macrodata"), _feather(version=1))
    for codec in ("uncompressed", "lz4", "zstd"):
        yield v(
            "pyarrow",
            f"feather-v2-{codec}",
            "feather",
            COLUMNAR + NESTED,
            _feather(compression=codec),
        )
    yield v("pyarrow", "ipc-file", "arrow", COLUMNAR + NESTED, _ipc(stream=False))
    yield v("pyarrow", "ipc-file-zstd", "arrow", ("penguins-raw",), _ipc(False, "zstd"))
    yield v("pyarrow", "ipc-stream", "arrows", COLUMNAR + NESTED, _ipc(stream=True))
    yield v("pyarrow", "ipc-stream-lz4", "arrows", ("penguins-raw",), _ipc(True, "lz4_frame"))
    for codec in ("uncompressed", "lz4", "zstd"):
        yield v(
            "polars",
            f"ipc-{codec}",
            "arrow",
            ("penguins-raw", "penguins-groups"),
            _polars_call("write_ipc", compression=codec),
        )
    yield v(
        "polars",
        "ipc-stream",
        "arrows",
        ("penguins-raw", "penguins-groups"),
        _polars_call("write_ipc_stream"),
    )
    yield v(
        "polars",
        "ipc-stream-zstd",
        "arrows",
        ("penguins-raw",),
        _polars_call("write_ipc_stream", compression="zstd"),
    )
    yield v("pandas", "feather", "feather", ("penguins-raw", "seattle-temps"), _pandas_feather)

    # JSON: pandas' orients (records as lines and as an array; the document orients, each one
    # row of the reference), polars, DuckDB.
    yield v(
        "pandas", "records-lines", "ndjson", JSONS + NESTED, _to_json(orient="records", lines=True)
    )
    yield v(
        "pandas", "records-lines", "jsonl", ("statecrime",), _to_json(orient="records", lines=True)
    )
    yield v("pandas", "records", "json", JSONS + NESTED, _to_json(orient="records"))
    yield v(
        "pandas",
        "records-iso-dates",
        "json",
        ("seattle-weather", "seattle-temps"),
        _to_json(orient="records", date_format="iso"),
    )
    yield v(
        "pandas", "records-indented", "json", ("statecrime",), _to_json(orient="records", indent=2)
    )
    for orient in ("columns", "index", "split", "values", "table"):
        yield v("pandas", orient, "json", ("statecrime",), _to_json(orient=orient))
    yield v(
        "pandas",
        "records-lines-gzip",
        "ndjson.gz",
        ("penguins-raw",),
        _to_json(orient="records", lines=True, compression={"method": "gzip", "mtime": 0}),
    )
    yield v("polars", "ndjson", "ndjson", JSONS + NESTED, _polars_call("write_ndjson"))
    yield v("polars", "json", "json", JSONS + NESTED, _polars_call("write_json"))
    yield v(
        "polars",
        "ndjson-zstd",
        "ndjson.zst",
        ("penguins-raw",),
        _polars_call("write_ndjson", compression="zstd"),
    )
    yield v("duckdb", "default", "json", JSONS + NESTED, _duckdb("FORMAT json"))
    yield v("duckdb", "array", "json", JSONS + NESTED, _duckdb("FORMAT json, ARRAY true"))
    yield v(
        "duckdb", "gzip", "ndjson.gz", ("penguins-raw",), _duckdb("FORMAT json, COMPRESSION gzip")
    )


# --- the cache ----------------------------------------------------------------------------------


def _versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for dist in WRITER_DISTS:
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            versions[dist] = None
    return versions


def cache_key(versions: dict[str, str | None]) -> str:
    """GENERATOR_VERSION and a hash of this module's source and the writers' versions."""
    digest = hashlib.sha256(Path(__file__).read_bytes())
    digest.update(json.dumps(versions, sort_keys=True).encode())
    return f"v{GENERATOR_VERSION}-{digest.hexdigest()[:12]}"


def _build(root: Path, versions: dict[str, str | None]) -> dict[str, Any]:
    """Write every variant under `root`; the manifest (files and problems)."""
    problems: list[str] = []
    for dist, why in WRITER_DISTS.items():
        if versions[dist] is None:
            problems.append(
                f"written: {dist} is not installed ({why}); `make venv` installs "
                "it (pip install -c requirements.lock -e '.[dev,local]')"
            )
    tables: dict[str, Any] = {}
    for ds in DATASETS:
        try:
            tables[ds.name] = _load_dataset(ds)
        except importlib.metadata.PackageNotFoundError:
            problems.append(f"written: dataset {ds.name}: {ds.dist} is not installed")
        except Exception as exc:
            problems.append(f"written: dataset {ds.name}: {type(exc).__name__}: {exc}")
    entries: list[dict[str, Any]] = []
    for variant in _variants():
        if variant.writer != "python" and versions.get(variant.writer) is None:
            continue
        for name in variant.datasets:
            if name not in tables:
                continue
            rel = f"{variant.writer}/{variant.name}/{name}.{variant.ext}"
            path = root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                with warnings.catch_warnings():  # pytest makes warnings errors; the writers'
                    warnings.simplefilter("ignore")  # deprecation notes are not about the file
                    variant.write(tables[name], path)
            except Exception as exc:
                problems.append(f"written: {rel}: the writer failed: {type(exc).__name__}: {exc}")
                path.unlink(missing_ok=True)
                continue
            entries.append(
                {
                    "rel": rel,
                    "writer": variant.writer,
                    "options": [list(o) for o in variant.options],
                    "reference_options": [list(o) for o in variant.reference_options],
                }
            )
    return {"versions": versions, "files": entries, "problems": problems}


def _manifest(versions: dict[str, str | None]) -> tuple[Path, dict[str, Any]]:
    """The cached build for these versions, built first if missing."""
    key = cache_key(versions)
    root = CACHE / key
    manifest = root / "manifest.json"
    if manifest.is_file():
        return root, json.loads(manifest.read_text())
    CACHE.mkdir(parents=True, exist_ok=True)
    for old in CACHE.iterdir():  # other keys; builds left behind by a killed run
        if old.name != key and (
            not old.name.startswith(".build-") or time.time() - old.stat().st_mtime > 3600
        ):
            shutil.rmtree(old, ignore_errors=True)
    tmp = CACHE / f".build-{key}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    data = _build(tmp, versions)
    (tmp / "manifest.json").write_text(json.dumps(data, indent=1))
    try:
        tmp.rename(root)
    except OSError:  # another process built it meanwhile
        shutil.rmtree(tmp, ignore_errors=True)
        if not manifest.is_file():
            raise
    return root, json.loads(manifest.read_text())


def written_files() -> tuple[list[CorpusFile], list[str]]:
    """The generated files (built into the cache if missing) and the problems found."""
    versions = _versions()
    root, data = _manifest(versions)
    files: list[CorpusFile] = []
    problems = list(data["problems"])
    for entry in data["files"]:
        rel: str = entry["rel"]
        found = classify(rel.rsplit("/", 1)[-1])
        path = root / rel
        if found is None or not path.is_file():
            problems.append(
                f"written: {rel} is in the manifest but not a corpus file on disk "
                f"(remove {root} to rebuild)"
            )
            continue
        writer: str = entry["writer"]
        files.append(
            CorpusFile(
                id=f"written:{rel}",
                path=path,
                kind=found[0],
                compression=found[1],
                dist=f"written:{writer}",
                version=versions.get(writer) or "?",
                options=tuple((k, v) for k, v in entry["options"]),
                reference_options=tuple((k, v) for k, v in entry["reference_options"]),
            )
        )
    if len(files) < MIN_WRITTEN:
        problems.append(f"written: {len(files)} generated files, expected at least {MIN_WRITTEN}")
    return files, problems
