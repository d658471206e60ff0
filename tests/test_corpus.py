"""The real-world corpus (issue 11): data files shipped inside pinned packages, and the same
datasets as other tools write them (pandas, polars, pyarrow, DuckDB, Python's csv module;
generated into .venv/corpus-written/, tests/corpus/written.py), each loaded by
`Ingester().load()` and by a reference reader (DuckDB's CSV sniffer and JSON reader, pyarrow
for Parquet/IPC) and compared by rows, column names and per-column checksums (tests/corpus/).

A deterministic sample runs here, one test per file so a failure names it; `make corpus` runs
every file. A file fails if it loads a different table (rows, names or values; a type
difference alone is a documented choice), crashes, hangs, or is refused by a message that does
not name it, unless tests/corpus/known.py gives a documented reason. A missing source package
fails too: the corpus is never skipped.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

import pytest
from corpus.collect import SLOW, collect, sample
from corpus.run import Result, run

# About one file in SAMPLE_EVERY (plus the first three of each source and format; of the
# generated files about half as many, see collect.sample): ~320 files, ~40 s on two cores.
SAMPLE_EVERY = 3
MIN_CORPUS = 800
WRITERS = {"pandas", "polars", "pyarrow", "duckdb", "python"}

CORPUS = collect()
SAMPLE = sample(CORPUS.files, SAMPLE_EVERY)


def test_every_source_is_installed() -> None:
    assert not CORPUS.problems, "\n".join(CORPUS.problems)
    assert len(CORPUS.files) >= MIN_CORPUS, f"only {len(CORPUS.files)} corpus files"
    kinds = {f.kind for f in SAMPLE}
    assert {"csv", "json", "ndjson", "parquet", "ipc"} <= kinds, kinds
    assert SLOW  # the slow files are left to `make corpus`, not forgotten


def test_written_files_in_the_sample() -> None:
    """Each writer's files, of each kind, and every file told reader options are sampled."""
    written = [f for f in SAMPLE if f.dist.startswith("written:")]
    assert {f.dist.removeprefix("written:") for f in written} == WRITERS
    assert {"csv", "tsv", "json", "ndjson", "parquet", "ipc"} <= {f.kind for f in written}
    told = [f.id for f in CORPUS.files if f.options or f.reference_options]
    assert told and set(told) <= {f.id for f in written}


@pytest.fixture(scope="module")
def results() -> Iterator[dict[str, Result]]:
    """Every sampled file's result, computed once (two worker processes, 30 s per step)."""
    yield {r.file.id: r for r in run(SAMPLE, jobs=2)}


@pytest.mark.parametrize("file_id", [f.id for f in SAMPLE])
def test_corpus_file(results: dict[str, Result], file_id: str) -> None:
    result = results[file_id]
    if result.failed:
        pytest.fail(result.line(), pytrace=False)


# --- the comparison itself ----------------------------------------------------------------------


def _compare(
    ref: Mapping[str, Sequence[object]], ours: Mapping[str, Sequence[object]], **kwargs: str
) -> tuple[str, str]:
    import pyarrow as pa
    from corpus.compare import compare

    result = compare(pa.table(ref), pa.table(ours), **kwargs)
    return result.outcome, result.detail


def test_compare_ignores_row_order_but_not_multiplicity() -> None:
    assert _compare({"a": [1, 2, 3]}, {"a": [3, 1, 2]}) == ("same", "")
    outcome, detail = _compare({"a": [1, 1, 2]}, {"a": [1, 2, 2]})
    assert outcome == "differs" and "'a'" in detail


def test_compare_rows_and_names() -> None:
    assert _compare({"a": [1, 2]}, {"a": [1]})[0] == "differs"
    outcome, detail = _compare({"a": [1], "b": [2]}, {"a": [1], "c": [2]})
    assert outcome == "differs" and "'c'" in detail and "'b'" in detail


def test_compare_text_we_keep_against_typed_reference() -> None:
    import datetime as dt

    day = [dt.date(2024, 1, 31), None]
    outcome, detail = _compare({"d": day}, {"d": ["2024-01-31", None]})
    assert outcome == "same-values-other-type" and "DATE" in detail
    assert _compare({"d": day}, {"d": ["2024-01-30", None]})[0] == "differs"
    assert _compare({"d": day}, {"d": ["not a date", None]})[0] == "differs"
    # Parsed the way the reference's sniffer did (day first).
    assert (
        _compare({"d": [dt.date(1985, 2, 1)]}, {"d": ["1/2/85"]}, date_format="%d/%m/%y")[0]
        == "same-values-other-type"
    )


def test_compare_lossy_casts_are_not_equal() -> None:
    assert _compare({"x": [2, 3]}, {"x": [1.5, 3.0]})[0] == "differs"
    assert _compare({"x": [2, 3]}, {"x": [2.0, 3.0]})[0] == "same-values-other-type"


def test_compare_nested_values_as_canonical_json() -> None:
    ref = {"s": ['{"b": [1, 2], "a": "x"}', None]}
    assert _compare(ref, {"s": [{"a": "x", "b": [1, 2]}, None]})[0] == "same-values-other-type"
    outcome, detail = _compare(ref, {"s": [{"a": "x", "b": [1, 3]}, None]})
    assert outcome == "differs" and "character" in detail
