"""The `Sink` protocol is all the pipeline needs: a second, in-memory implementation, driven by
the real Ingester (expand, fetch, parse, group, write) over real local files.

It keeps the rules the protocol states (each file's rows with its ledger row, all or nothing; a
group all or nothing; the (uri, etag) lookup), so the pipeline's exactly-once behaviour can be
checked against it: re-run → unchanged, changed etag → replaced, one bad file → the others land.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt
import polars as pl
import pytest

from dreambolt import Ingester
from dreambolt.errors import SinkError
from dreambolt.report import FileResult
from dreambolt.sinks import open_sink
from dreambolt.sinks.base import FileWrite, Sink, Written
from dreambolt.sinks.duckdb import DuckDBSink

Vectors = npt.NDArray[np.float32]
RESERVED = "_source_uri"


@dataclass
class Load:
    """One ledger row."""

    table: str
    uri: str
    etag: str | None
    rows: int
    status: str
    active: bool
    error: str | None = None


class DictCache:
    """A `SyncEmbeddingCache` in a dict."""

    def __init__(self) -> None:
        self.vectors: dict[tuple[str, str], Vectors] = {}

    def get(self, model: str, hashes: Sequence[str]) -> dict[str, Vectors]:
        return {h: self.vectors[(model, h)] for h in hashes if (model, h) in self.vectors}

    def put(self, model: str, vectors: Mapping[str, Vectors]) -> None:
        for h, v in vectors.items():
            self.vectors.setdefault((model, h), v)


@dataclass
class MemorySink:
    """A `Sink` keeping tables (uri -> rows) and the ledger in memory."""

    tables: dict[str, dict[str, pl.DataFrame]] = field(default_factory=dict)
    ledger: list[Load] = field(default_factory=list)
    threads: set[str] = field(default_factory=set)
    closed: bool = False

    @property
    def name(self) -> str:
        return "memory:test"

    def _called(self) -> None:
        assert not self.closed
        self.threads.add(threading.current_thread().name)

    def owns(self, uri: str) -> bool:
        return False

    def loaded(self, table: str) -> dict[str, str | None]:
        self._called()
        return {r.uri: r.etag for r in self.ledger if r.table == table and r.active}

    def _frame(self, uri: str, etag: str | None, frames: Iterable[pl.DataFrame]) -> pl.DataFrame:
        parts = [f for f in frames if f.width]
        for part in parts:
            if RESERVED in part.columns:
                raise SinkError(f"{uri}: column {RESERVED} is reserved")
        data = pl.concat(parts, how="diagonal_relaxed") if parts else pl.DataFrame()
        return data.with_columns(_source_uri=pl.lit(uri), _source_etag=pl.lit(etag))

    def _commit(
        self,
        table: str,
        staged: list[tuple[str, str | None, pl.DataFrame | None]],
        run_id: str,
        rebuild: bool,
    ) -> list[Written]:
        """Apply staged files (frame None: unchanged) at once: nothing can fail from here."""
        if rebuild:
            self.tables.pop(table, None)
            for r in self.ledger:
                r.active = r.active and r.table != table
        rows = self.tables.setdefault(table, {})
        done = []
        for uri, etag, frame in staged:
            if frame is None:
                self.ledger.append(Load(table, uri, etag, 0, "unchanged", False))
                done.append(Written(0, False, unchanged=True))
                continue
            replaced = uri in rows
            for r in self.ledger:
                r.active = r.active and not (r.table == table and r.uri == uri)
            rows[uri] = frame
            self.ledger.append(Load(table, uri, etag, frame.height, "loaded", True))
            done.append(Written(frame.height, replaced))
        return done

    def _same(self, table: str, uri: str, etag: str | None, rebuild: bool) -> bool:
        return not rebuild and etag is not None and self.loaded(table).get(uri) == etag

    def write_file(
        self,
        table: str,
        *,
        uri: str,
        etag: str | None,
        size: int,
        frames: Iterable[pl.DataFrame],
        run_id: str,
        rebuild: bool = False,
    ) -> Written:
        self._called()
        frame = None if self._same(table, uri, etag, rebuild) else self._frame(uri, etag, frames)
        return self._commit(table, [(uri, etag, frame)], run_id, rebuild)[0]

    def write_many(
        self, table: str, files: Sequence[FileWrite], *, run_id: str, rebuild: bool = False
    ) -> list[Written]:
        self._called()
        staged = [
            (
                f.uri,
                f.etag,
                None
                if self._same(table, f.uri, f.etag, rebuild)
                else self._frame(f.uri, f.etag, [f.frame]),
            )
            for f in files
        ]  # a bad file raises here, before anything is applied: all or nothing
        return self._commit(table, staged, run_id, rebuild)

    def record(self, table: str, results: Sequence[FileResult], *, run_id: str) -> None:
        self._called()
        for r in results:
            error = r.error.message if r.error else None
            self.ledger.append(Load(table, r.uri, r.etag, r.rows, r.status, False, error))

    def embedding_cache(self) -> DictCache:
        self._called()
        return DictCache()

    def close(self) -> None:
        self.closed = True

    def rows(self, table: str) -> pl.DataFrame:
        frames = list(self.tables.get(table, {}).values())
        return pl.concat(frames, how="diagonal_relaxed").sort("id")


def typed(sink: Sink) -> Sink:
    """Both implementations are `Sink`s (checked by mypy; a no-op at run time)."""
    return sink


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    data = tmp_path / "in"
    data.mkdir()
    for i in range(4):
        (data / f"f{i}.csv").write_text(f"id,name\n{2 * i},a{i}\n{2 * i + 1},b{i}\n")
    return data


async def test_a_second_sink_is_driven_by_the_real_pipeline(folder: Path) -> None:
    sink = MemorySink()
    typed(sink)
    async with Ingester(sink=sink) as ing:
        first = await ing.ingest(str(folder), table="t")
        assert first.db == "memory:test"
        assert sorted(f.status for f in first.files) == ["loaded"] * 4
        assert sink.rows("t")["id"].to_list() == list(range(8))
        assert {r.status for r in sink.ledger if r.active} == {"loaded"}

        again = await ing.ingest(str(folder), table="t")  # re-run: nothing written twice
        assert [f.status for f in again.files] == ["unchanged"] * 4
        assert sink.rows("t").height == 8
        assert sum(r.status == "unchanged" for r in sink.ledger) == 4

        (folder / "f1.csv").write_text("id,name\n100,new\n101,newer\n102,newest\n")
        changed = await ing.ingest(str(folder), table="t")  # a new etag: the rows replaced
        by_uri = {Path(f.uri).name: f for f in changed.files}
        assert (by_uri["f1.csv"].status, by_uri["f1.csv"].replaced) == ("loaded", True)
        assert by_uri["f1.csv"].rows == 3
        assert {by_uri[n].status for n in ("f0.csv", "f2.csv", "f3.csv")} == {"unchanged"}
        assert sink.rows("t")["id"].to_list() == [0, 1, 4, 5, 6, 7, 100, 101, 102]
    assert not sink.closed  # a sink passed in belongs to its owner
    assert len(sink.threads) == 1  # every call on the Ingester's one database thread


async def test_one_bad_file_fails_alone_and_the_others_land(folder: Path) -> None:
    (folder / "clash.csv").write_text(f"id,{RESERVED}\n50,x\n")  # refused by the sink
    (folder / "broken.parquet").write_bytes(b"not parquet at all")  # refused by the reader
    sink = MemorySink()
    async with Ingester(sink=sink) as ing:
        report = await ing.ingest(str(folder), table="t")
    status = {Path(f.uri).name: f.status for f in report.files}
    assert status == {
        "f0.csv": "loaded",
        "f1.csv": "loaded",
        "f2.csv": "loaded",
        "f3.csv": "loaded",
        "clash.csv": "failed",
        "broken.parquet": "skipped",
    }
    assert sink.rows("t")["id"].to_list() == list(range(8))  # nothing of the bad files
    failed = {Path(r.uri).name: r for r in sink.ledger if not r.active}
    assert failed["clash.csv"].status == "failed" and RESERVED in (failed["clash.csv"].error or "")
    assert failed["broken.parquet"].status == "skipped"


async def test_the_default_sink_is_duckdb_and_is_closed_with_the_ingester(tmp_path: Path) -> None:
    async with Ingester(db=tmp_path / "x.duckdb") as ing:
        sink = typed(await ing.sink())
        assert isinstance(sink, DuckDBSink)
        assert sink.name == str(tmp_path / "x.duckdb")
        assert sink.owns((tmp_path / "x.duckdb").resolve().as_uri())
        assert not sink.owns((tmp_path / "y.csv").resolve().as_uri())
    with pytest.raises(Exception, match="closed"):
        sink.con.execute("SELECT 1")


@pytest.mark.parametrize("prefix", ["delta:", "DELTA:", "delta:file://"])
def test_delta_roots_open_a_delta_sink_and_nothing_else_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, prefix: str
) -> None:
    from dreambolt.sinks.delta import DeltaSink

    monkeypatch.chdir(tmp_path)
    root = "./lake" if prefix != "delta:file://" else str(tmp_path / "lake")
    sink = open_sink(prefix + root)
    assert isinstance(sink, DeltaSink) and sink.loaded("t") == {}
    assert not (tmp_path / "lake").exists()  # opening and reading write nothing
    duck = open_sink(str(tmp_path / "deltalake.duckdb"))  # a name, not a prefix
    assert isinstance(duck, DuckDBSink)
    duck.close()


def test_the_sinks_package_imports_without_duckdb() -> None:
    code = (
        "import sys\n"
        "from dreambolt.sinks import open_sink\n"
        "from dreambolt.sinks.names import validate_table_name\n"
        "from dreambolt.sinks.base import Sink\n"
        "validate_table_name('ok')\n"
        "print(sorted(m for m in ('duckdb', 'polars', 'pyarrow') if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.split() == ["[]"]
