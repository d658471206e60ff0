"""Benchmark data: realistic CSV and Parquet objects, generated once into the server's root.

The bench server serves a directory whose top-level folders are buckets, so files are written
straight into `ROOT/BUCKET/...`. A manifest beside them records each object's size and row count;
an object whose file is missing or has another size is generated again.

Rows are deterministic (hashes of the row number, no random state): ids, integers, floats,
short category strings, free-text strings, UTC timestamps and booleans.
"""

from __future__ import annotations

import io
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import polars as pl

__all__ = ["FULL", "QUICK", "DataInfo", "Dataset", "ensure"]

MiB = 1 << 20
GEN_VERSION = 1  # bump when the generated content changes
BATCH_ROWS = 1_000_000
WORDS = [
    "alpha",
    "bravo",
    "charlie",
    "delta",
    "echo",
    "foxtrot",
    "golf",
    "hotel",
    "india",
    "juliet",
    "kilo",
    "lima",
    "mike",
    "november",
    "oscar",
    "papa",
    "quebec",
    "romeo",
]


@dataclass(frozen=True)
class Dataset:
    """One scenario's input: a single object (`count == 1`) or `count` objects under a prefix."""

    scenario: str
    kind: str  # "parquet" or "csv"
    path: str  # key of the object, or the prefix (ending in "/") of many
    target_bytes: int  # per object
    count: int = 1


@dataclass(frozen=True)
class DataInfo:
    """What was generated for one scenario."""

    scenario: str
    bucket: str
    path: str
    kind: str
    objects: int
    bytes: int  # in total
    rows: int  # in total

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.path}"


FULL = {
    "s1": Dataset("s1", "parquet", "s1.parquet", 256 * MiB),
    "s2": Dataset("s2", "csv", "s2.csv", 256 * MiB),
    "s3": Dataset("s3", "csv", "s3/", 32 * 1024, count=1000),
    "s4": Dataset("s4", "csv", "s4.csv", 1024 * MiB),
}
# --quick: smaller objects, fewer small files, no 1 GiB CSV.
QUICK = {
    "s1": Dataset("s1", "parquet", "s1.parquet", 64 * MiB),
    "s2": Dataset("s2", "csv", "s2.csv", 64 * MiB),
    "s3": Dataset("s3", "csv", "s3/", 32 * 1024, count=250),
}


def frame(start: int, rows: int) -> pl.DataFrame:
    """Rows `start .. start+rows` of the benchmark table."""
    i = pl.int_range(start, start + rows, dtype=pl.UInt64)

    def h(seed: int) -> pl.Expr:
        return i.hash(seed)

    def word(seed: int) -> pl.Expr:
        mapping = dict(enumerate(WORDS))
        return (h(seed) % len(WORDS)).replace_strict(mapping, return_dtype=pl.String)

    year_us = 365 * 86_400 * 10**6
    return pl.select(
        id=i.cast(pl.Int64),
        user_id=(h(1) % 1_000_000).cast(pl.Int32),
        amount=(h(2) % 10_000_000).cast(pl.Float64) / 100,
        score=(h(3) % 1_000_000_007).cast(pl.Float64) / 1_000_000_007,
        quantity=(h(4) % 100).cast(pl.Int16),
        category=pl.format("cat_{}", h(5) % 40),
        comment=pl.concat_str([word(6), word(7), word(8)], separator=" "),
        ts=(pl.lit(1_700_000_000 * 10**6, dtype=pl.Int64) + (h(9) % year_us).cast(pl.Int64)).cast(
            pl.Datetime("us", "UTC")
        ),
        active=h(10) % 2 == 0,
    )


def _bytes_per_row(kind: str) -> float:
    sample = frame(0, 200_000)
    out = io.BytesIO()
    if kind == "parquet":
        sample.write_parquet(out, compression="snappy")
    else:
        sample.write_csv(out)
    return out.tell() / sample.height


def _write_csv(path: Path, rows: int, start: int = 0) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("wb") as out:
        for offset in range(0, rows, BATCH_ROWS):
            frame(start + offset, min(BATCH_ROWS, rows - offset)).write_csv(
                out, include_header=offset == 0
            )
    tmp.replace(path)


def _write_parquet(path: Path, rows: int) -> None:
    import pyarrow.parquet as pq

    tmp = path.with_name(path.name + ".tmp")
    writer: pq.ParquetWriter | None = None
    try:
        for offset in range(0, rows, BATCH_ROWS):
            table = frame(offset, min(BATCH_ROWS, rows - offset)).to_arrow()
            if writer is None:
                writer = pq.ParquetWriter(tmp, table.schema, compression="snappy")
            writer.write_table(table)  # one row group per million rows
    finally:
        if writer is not None:
            writer.close()
    tmp.replace(path)


def _generate(root: Path, bucket: str, ds: Dataset) -> DataInfo:
    target = root / bucket / ds.path
    rows = max(1, round(ds.target_bytes / _bytes_per_row(ds.kind)))
    if ds.count == 1:
        target.parent.mkdir(parents=True, exist_ok=True)
        (_write_parquet if ds.kind == "parquet" else _write_csv)(target, rows)
        return DataInfo(ds.scenario, bucket, ds.path, ds.kind, 1, target.stat().st_size, rows)
    target.mkdir(parents=True, exist_ok=True)
    total = 0
    for n in range(ds.count):
        part = target / f"part-{n:05d}.csv"
        frame(n * rows, rows).write_csv(part)
        total += part.stat().st_size
    return DataInfo(ds.scenario, bucket, ds.path, ds.kind, ds.count, total, rows * ds.count)


def _on_disk(root: Path, info: DataInfo) -> int:
    target = root / info.bucket / info.path
    if info.objects == 1:
        return target.stat().st_size if target.is_file() else -1
    files = list(target.glob("*.csv")) if target.is_dir() else []
    return sum(f.stat().st_size for f in files) if len(files) == info.objects else -1


def ensure(root: Path, bucket: str, datasets: dict[str, Dataset]) -> dict[str, DataInfo]:
    """Generate whatever is missing or stale; return what each scenario reads."""
    manifest_path = root / f".manifest-{bucket}.json"  # dot-names are never buckets
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, ValueError):
        manifest = {}
    if manifest.get("version") != GEN_VERSION:
        manifest = {"version": GEN_VERSION, "datasets": {}}
    result: dict[str, DataInfo] = {}
    for name, ds in datasets.items():
        entry = manifest["datasets"].get(name)
        info = DataInfo(**entry) if entry else None
        fresh = info is not None and (info.kind, info.path, info.objects) == (
            ds.kind,
            ds.path,
            ds.count,
        )
        if info is None or not fresh or _on_disk(root, info) != info.bytes:
            began = time.monotonic()
            print(
                f"generating {bucket}/{ds.path} ({ds.count} × ~{ds.target_bytes / MiB:g} MiB "
                f"{ds.kind}) ...",
                flush=True,
            )
            info = _generate(root, bucket, ds)
            print(
                f"  {info.bytes / MiB:.1f} MiB, {info.rows:,} rows "
                f"in {time.monotonic() - began:.1f}s",
                flush=True,
            )
            manifest["datasets"][name] = asdict(info)
            manifest_path.write_text(json.dumps(manifest, indent=1))
        result[name] = info
    return result
