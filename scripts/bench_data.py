"""Benchmark data: one object (or many under a prefix) per shape, generated once into the root.

The bench server serves a directory whose top-level folders are buckets, so files are written
straight into `ROOT/BUCKET/...`. A manifest beside them records each shape's spec, size, rows
and columns; a shape whose spec changed or whose files are missing or of another size is
generated again. Rows come from bench_frames.py (deterministic, no random state).

Shapes (FULL; QUICK is the same set, smaller, without the 1 GiB objects):

- Parquet, ~256 MiB: numeric-only or string-heavy columns, ~64 small or ~4 big row groups,
  ZSTD or Snappy — crossed so each factor meets both values of the others;
- CSV, ~256 MiB: quoted fields (commas, quotes, newlines), wide (200 columns), narrow (5);
- the string-heavy Snappy Parquet and the wide CSV are ~128 MiB: they decode to 2-4 times their
  size and cost every tool as much as the others at 256 MiB (the full run stays near 45 min);
- small CSV objects under a prefix: 1000 × 4 KiB, 500 × 32 KiB, 100 × 1 MiB;
- a 1 GiB CSV and a 1 GiB Parquet, for peak RSS into DuckDB (ingest only).
"""

from __future__ import annotations

import io
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

from bench_frames import FRAMES

__all__ = ["FULL", "QUICK", "DataInfo", "Shape", "ensure"]

MiB = 1 << 20
GEN_VERSION = 2  # bump when the generated content changes
BATCH_ROWS = 500_000
BOTH = ("load", "ingest")
Codec = Literal["zstd", "snappy"]


@dataclass(frozen=True)
class Shape:
    """One shape of input: a single object (`count == 1`) or `count` objects under a prefix."""

    name: str
    kind: str  # "parquet" or "csv"
    frame: str  # a bench_frames.FRAMES key
    target_bytes: int  # per object
    count: int = 1
    codec: Codec = "zstd"  # Parquet only
    row_groups: int = 0  # Parquet only: about this many row groups
    entries: tuple[str, ...] = BOTH

    @property
    def path(self) -> str:
        """Key of the object, or the prefix (ending in "/") of many."""
        return f"{self.name}/" if self.count > 1 else f"{self.name}.{self.kind}"

    @property
    def uri_path(self) -> str:
        """What a user names: the key, or a glob over the prefix."""
        return f"{self.path}*.{self.kind}" if self.count > 1 else self.path


@dataclass(frozen=True)
class DataInfo:
    """What was generated for one shape."""

    shape: str
    bucket: str
    path: str  # key, or prefix ending in "/"
    uri_path: str  # key, or prefix + "*.csv"
    kind: str
    objects: int
    bytes: int  # in total
    rows: int  # in total
    columns: int
    spec: str  # repr(Shape): regenerate when it changes

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.uri_path}"


def _shapes(size: int, counts: tuple[int, int, int], big: bool) -> dict[str, Shape]:
    half = size // 2  # string-heavy snappy Parquet and wide CSV: 2-4 times bigger decoded
    shapes = [
        Shape("pq-num-zstd-64rg", "parquet", "numeric", size, codec="zstd", row_groups=64),
        Shape("pq-str-zstd-64rg", "parquet", "strings", size, codec="zstd", row_groups=64),
        Shape("pq-num-snappy-4rg", "parquet", "numeric", size, codec="snappy", row_groups=4),
        Shape("pq-str-snappy-4rg", "parquet", "strings", half, codec="snappy", row_groups=4),
        Shape("csv-quoted", "csv", "quoted", size),
        Shape("csv-wide", "csv", "wide", half),
        Shape("csv-narrow", "csv", "narrow", size),
        Shape("small-4k", "csv", "mixed", 4 << 10, count=counts[0]),
        Shape("small-32k", "csv", "mixed", 32 << 10, count=counts[1]),
        Shape("small-1m", "csv", "mixed", 1 << 20, count=counts[2]),
    ]
    if big:
        ingest = ("ingest",)
        shapes += [
            Shape("csv-1g", "csv", "mixed", 1024 * MiB, entries=ingest),
            Shape("pq-1g", "parquet", "mixed", 1024 * MiB, row_groups=16, entries=ingest),
        ]
    return {s.name: s for s in shapes}


FULL = _shapes(256 * MiB, (1000, 500, 100), big=True)
QUICK = _shapes(32 * MiB, (200, 100, 20), big=False)


def _bytes_per_row(shape: Shape) -> float:
    sample = FRAMES[shape.frame](0, 100_000)
    out = io.BytesIO()
    if shape.kind == "parquet":
        sample.write_parquet(out, compression=shape.codec)
    else:
        sample.write_csv(out)
    return out.tell() / sample.height


def _write_csv(path: Path, shape: Shape, rows: int, start: int = 0) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("wb") as out:
        for offset in range(0, rows, BATCH_ROWS):
            batch = FRAMES[shape.frame](start + offset, min(BATCH_ROWS, rows - offset))
            batch.write_csv(out, include_header=offset == 0)
    tmp.replace(path)


def _write_parquet(path: Path, shape: Shape, rows: int) -> None:
    import pyarrow.parquet as pq

    tmp = path.with_name(path.name + ".tmp")
    per_group = -(-rows // max(1, shape.row_groups))
    writer: pq.ParquetWriter | None = None
    try:
        for offset in range(0, rows, per_group):  # one write, one row group
            table = FRAMES[shape.frame](offset, min(per_group, rows - offset)).to_arrow()
            if writer is None:
                writer = pq.ParquetWriter(tmp, table.schema, compression=shape.codec)
            writer.write_table(table, row_group_size=per_group)
    finally:
        if writer is not None:
            writer.close()
    tmp.replace(path)


def _generate(root: Path, bucket: str, shape: Shape) -> DataInfo:
    target = root / bucket / shape.path
    rows = max(1, round(shape.target_bytes / _bytes_per_row(shape)))
    columns = FRAMES[shape.frame](0, 1).width
    spec = repr(shape)
    if shape.count == 1:
        target.parent.mkdir(parents=True, exist_ok=True)
        if shape.kind == "parquet":
            _write_parquet(target, shape, rows)
        else:
            _write_csv(target, shape, rows)
        size = target.stat().st_size
        return DataInfo(
            shape.name, bucket, shape.path, shape.uri_path, shape.kind, 1, size, rows, columns, spec
        )
    target.mkdir(parents=True, exist_ok=True)
    total = 0
    for n in range(shape.count):
        part = target / f"part-{n:05d}.csv"
        FRAMES[shape.frame](n * rows, rows).write_csv(part)
        total += part.stat().st_size
    return DataInfo(
        shape.name,
        bucket,
        shape.path,
        shape.uri_path,
        shape.kind,
        shape.count,
        total,
        rows * shape.count,
        columns,
        spec,
    )


def _on_disk(root: Path, info: DataInfo) -> int:
    target = root / info.bucket / info.path
    if info.objects == 1:
        return target.stat().st_size if target.is_file() else -1
    files = list(target.glob(f"*.{info.kind}")) if target.is_dir() else []
    return sum(f.stat().st_size for f in files) if len(files) == info.objects else -1


def ensure(root: Path, bucket: str, shapes: dict[str, Shape]) -> dict[str, DataInfo]:
    """Generate whatever is missing or stale; return what each shape reads."""
    manifest_path = root / f".manifest-{bucket}.json"  # dot-names are never buckets
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, ValueError):
        manifest = {}
    if manifest.get("version") != GEN_VERSION:
        manifest = {"version": GEN_VERSION, "shapes": {}}
    result: dict[str, DataInfo] = {}
    for name, shape in shapes.items():
        entry = manifest["shapes"].get(name)
        info = DataInfo(**entry) if entry else None
        if info is None or info.spec != repr(shape) or _on_disk(root, info) != info.bytes:
            began = time.monotonic()
            print(
                f"generating {bucket}/{shape.path} ({shape.count} × ~"
                f"{shape.target_bytes / MiB:g} MiB {shape.kind}, {shape.frame}) ...",
                flush=True,
            )
            info = _generate(root, bucket, shape)
            print(
                f"  {info.bytes / MiB:.1f} MiB, {info.rows:,} rows "
                f"in {time.monotonic() - began:.1f}s",
                flush=True,
            )
            manifest["shapes"][name] = asdict(info)
            manifest_path.write_text(json.dumps(manifest, indent=1))
        result[name] = info
    return result
