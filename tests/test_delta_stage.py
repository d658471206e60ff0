"""One big file into Delta: frames of changing shape, staged in memory or spilled to disk."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest

from dreambolt.errors import SinkError
from dreambolt.sinks import deltastage, open_sink
from dreambolt.spool import spool_base


def frames() -> Iterator[pl.DataFrame]:
    yield pl.DataFrame({"a": [None, None]}, schema={"a": pl.Null})
    yield pl.DataFrame({"a": [1, 2]})
    yield pl.DataFrame({"a": [3], "b": ["x"]})
    yield pl.DataFrame({"b": ["y"], "a": [4.0]})  # whole floats fit the integers
    yield pl.DataFrame(schema={"a": pl.Int64})  # empty frames are fine too


@pytest.mark.parametrize("cap", [deltastage.MEMORY_CAP, 0])
def test_frames_of_changing_shape_land_as_one_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cap: int
) -> None:
    monkeypatch.setattr(deltastage, "MEMORY_CAP", cap)  # 0: every frame spilled to disk
    monkeypatch.setenv("DREAMBOLT_TMPDIR", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    sink = open_sink(f"delta:{tmp_path / 'lake'}")
    written = sink.write_file("t", uri="s3://b/k", etag="e", size=1, frames=frames(), run_id="r")
    assert written.rows == 6 and not written.replaced
    table = pl.read_delta(str(tmp_path / "lake" / "t"))
    assert table.schema["a"] == pl.Int64 and table.schema["b"] == pl.String
    assert sorted(table["a"].drop_nulls().to_list()) == [1, 2, 3, 4]
    assert table.height == 6
    assert not any(spool_base().glob("dreambolt-spool-*"))  # the spill is gone


@pytest.mark.parametrize("cap", [deltastage.MEMORY_CAP, 0])
def test_a_frame_that_does_not_fit_the_first_fails_the_file_and_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cap: int
) -> None:
    monkeypatch.setattr(deltastage, "MEMORY_CAP", cap)
    sink = open_sink(f"delta:{tmp_path / 'lake'}")
    sink.write_file(
        "t", uri="s3://b/ok", etag="e", size=1, frames=[pl.DataFrame({"a": [1]})], run_id="r"
    )
    bad = [pl.DataFrame({"a": [1, 2]}), pl.DataFrame({"a": [2.5]})]
    with pytest.raises(SinkError, match=r"s3://b/bad.*'a'.*2\.5"):
        sink.write_file("t", uri="s3://b/bad", etag="e", size=1, frames=bad, run_id="r")
    table = pl.read_delta(str(tmp_path / "lake" / "t"))
    assert table["_source_uri"].to_list() == ["s3://b/ok"]
    assert sink.loaded("t") == {"s3://b/ok": "e"}


def test_a_parse_error_mid_file_writes_nothing(tmp_path: Path) -> None:
    def broken() -> Iterator[pl.DataFrame]:
        yield pl.DataFrame({"a": [1]})
        raise ValueError("cut short")

    sink = open_sink(f"delta:{tmp_path / 'lake'}")
    with pytest.raises(ValueError, match="cut short"):
        sink.write_file("t", uri="s3://b/k", etag="e", size=1, frames=broken(), run_id="r")
    assert sink.loaded("t") == {}
    assert not (tmp_path / "lake" / "t").exists()
