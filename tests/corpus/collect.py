"""List the corpus: data files shipped inside pinned packages that are installed anyway.

Each source is an installed distribution (found with importlib.metadata, so a missing one is
reported, never skipped) and the files of it whose names say they are tabular data. The kinds
are what the *reference* reader is asked to read; DreamBolt gets the path alone and detects the
format itself, as a user's `Ingester().load(path)` would (only an encoding that cannot be told
from the content is given, to both readers: `CorpusFile.options`).

A second source, `written`, is generated: the corpus's datasets as other tools write them
(pandas, polars, pyarrow, DuckDB, Python's csv module; see written.py).
"""

from __future__ import annotations

import importlib.metadata
import sys
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

# Extension (after any compression suffix) -> the kind the reference reader reads it as.
KINDS: dict[str, str] = {
    "csv": "csv",
    "tsv": "tsv",
    "tab": "tsv",
    "parquet": "parquet",
    "pq": "parquet",
    "feather": "ipc",
    "arrow": "ipc",
    "ipc": "ipc",
    "arrows": "ipc",
    "ndjson": "ndjson",
    "jsonl": "ndjson",
    "jsn": "ndjson",  # pyarrow's ORC test expectations: JSON lines, named *.jsn.gz
    "json": "json",
}
COMPRESSIONS: dict[str, str] = {
    "gz": "gzip",
    "gzip": "gzip",
    "zst": "zstd",
    "zstd": "zstd",
    "bz2": "bz2",
}


@dataclass(frozen=True)
class Source:
    """One installed distribution and which of its files belong to the corpus."""

    dist: str
    why: str  # why it is installed (so nobody drops it unknowingly)
    min_files: int  # fewer means the package changed: the corpus test fails
    include: tuple[str, ...] = ("*",)  # fnmatch patterns over paths inside site-packages
    exclude: tuple[str, ...] = ()
    keep: tuple[str, ...] = ()  # exceptions to `exclude`


SOURCES: tuple[Source, ...] = (
    Source("pyarrow", "runtime dependency", 9, include=("pyarrow/tests/data/*",)),
    Source("numpy", "runtime dependency", 30, include=("numpy/*tests/data/*",)),
    Source(
        "scikit-learn",
        "via sentence-transformers (extra 'local')",
        60,
        include=("sklearn/datasets/*",),
    ),
    Source("scipy", "via scikit-learn (extra 'local')", 1, include=("scipy/*tests/data/*",)),
    # Near-copies are thinned out: 182 EMR lists of instance-type names (JSON arrays of
    # strings) and 30 ECS AMI documents of ~700,000-character nested types (seconds each).
    Source(
        "moto",
        "dev: the local S3 of the tests and the demo",
        200,
        include=("moto/*/resources/*",),
        exclude=("moto/emr/resources/*", "moto/ssm/resources/ecs/optimized_amis/*"),
        keep=(
            "moto/emr/resources/*[0-9].0.0.json.gz",
            "moto/ssm/resources/ecs/optimized_amis/eu-west-1.json.gz",
        ),
    ),
    Source("statsmodels", "dev: corpus only", 230),
    Source("vega_datasets", "dev: corpus only", 20, include=("vega_datasets/*",)),
    Source("palmerpenguins", "dev: corpus only", 2, include=("palmerpenguins/data/*",)),
)


@dataclass(frozen=True)
class NpmSource:
    """A package from the npm registry, unpacked by `make` (`npm pack`, checksum-checked) into
    `.venv/corpus-npm/NAME-VERSION/package/`; pinned in the Makefile (CORPUS_NPM_PACKAGES)."""

    name: str
    version: str
    why: str
    min_files: int
    include: tuple[str, ...] = ("*",)

    @property
    def root(self) -> Path:
        return Path(sys.prefix) / "corpus-npm" / f"{self.name}-{self.version}" / "package"


NPM_SOURCES: tuple[NpmSource, ...] = (
    # CSV edge cases (CRLF, quoted newlines and quotes, UTF-8, empty fields) and the JSON
    # arrays of records its authors expect from them.
    NpmSource(
        "csv-spectrum", "2.0.0", "corpus only: CSV edge cases", 24, include=("csvs/*", "json/*")
    ),
)


@dataclass(frozen=True)
class CorpusFile:
    """One file of the corpus."""

    id: str  # "dist:path/inside/site-packages": stable across machines and venvs
    path: Path
    kind: str  # csv | tsv | parquet | ipc | ndjson | json: how the reference reads it
    compression: str | None  # gzip | zstd | bz2 | None, from the name
    dist: str
    version: str
    # Reader options (CsvOptions field names: delimiter, header, skip_rows, encoding), only for
    # what cannot be told from the content, e.g. an 8-bit encoding: `options` are told to both
    # readers, `reference_options` to the reference alone (DreamBolt should detect them).
    options: tuple[tuple[str, Any], ...] = ()
    reference_options: tuple[tuple[str, Any], ...] = ()

    @property
    def fmt(self) -> str:
        return self.kind + (f".{self.compression}" if self.compression else "")


def classify(name: str) -> tuple[str, str | None] | None:
    """(kind, compression) from a file name, or None when it is not a corpus data file."""
    parts = name.lower().split(".")[1:]
    compression = COMPRESSIONS.get(parts[-1]) if parts else None
    if compression is not None:
        parts.pop()
    if not parts or parts[-1] not in KINDS:
        return None
    return KINDS[parts[-1]], compression


@dataclass
class Corpus:
    files: list[CorpusFile]
    problems: list[str]  # a source that is missing or has fewer files than it should


def _source_files(source: Source) -> Iterable[CorpusFile]:
    dist = importlib.metadata.distribution(source.dist)
    for entry in dist.files or ():
        rel = entry.as_posix()
        if ".dist-info/" in rel or "__pycache__" in rel:
            continue
        if not any(fnmatchcase(rel, p) for p in source.include):
            continue
        if any(fnmatchcase(rel, p) for p in source.exclude) and not any(
            fnmatchcase(rel, p) for p in source.keep
        ):
            continue
        found = classify(rel.rsplit("/", 1)[-1])
        if found is None:
            continue
        path = Path(str(dist.locate_file(entry)))
        yield CorpusFile(
            id=f"{source.dist}:{rel}",
            path=path,
            kind=found[0],
            compression=found[1],
            dist=source.dist,
            version=dist.version,
        )


def _npm_files(source: NpmSource) -> Iterable[CorpusFile]:
    for path in sorted(source.root.rglob("*")):
        rel = path.relative_to(source.root).as_posix()
        if not path.is_file() or not any(fnmatchcase(rel, p) for p in source.include):
            continue
        found = classify(path.name)
        if found is not None:
            yield CorpusFile(
                id=f"npm:{source.name}:{rel}",
                path=path,
                kind=found[0],
                compression=found[1],
                dist=f"npm:{source.name}",
                version=source.version,
            )


def collect(
    sources: Iterable[Source] = SOURCES,
    npm_sources: Iterable[NpmSource] = NPM_SOURCES,
    written: bool = True,
) -> Corpus:
    """Every corpus file of every source, sorted by id; problems list what is missing.
    `written`: also the files other tools write from the corpus's datasets (`written`,
    generated into a cache on first use)."""
    files: list[CorpusFile] = []
    problems: list[str] = []
    if written:
        from .written import written_files

        found_written, written_problems = written_files()
        files.extend(found_written)
        problems.extend(written_problems)
    for npm in npm_sources:
        found = list(_npm_files(npm))
        if len(found) < npm.min_files:
            problems.append(
                f"npm package {npm.name}@{npm.version}: {len(found)} corpus files "
                f"in {npm.root}, expected at least {npm.min_files} "
                "(`make venv` unpacks it)"
            )
        files.extend(found)
    for source in sources:
        try:
            found = list(_source_files(source))
        except importlib.metadata.PackageNotFoundError:
            problems.append(
                f"{source.dist} is not installed ({source.why}): `make venv` "
                "installs it (pip install -c requirements.lock -e '.[dev,local]')"
            )
            continue
        missing = [f.id for f in found if not f.path.is_file()]
        if missing:
            problems.append(
                f"{source.dist}: {len(missing)} files listed but not on disk, e.g. {missing[0]}"
            )
        found = [f for f in found if f.path.is_file()]
        if len(found) < source.min_files:
            problems.append(
                f"{source.dist}: {len(found)} corpus files, expected at least {source.min_files}"
            )
        files.extend(found)
    files.sort(key=lambda f: f.id)
    return Corpus(files, problems)


# Files that take 5-40 s each (multi-MB JSON documents of thousands of nested fields, a CSV
# of 20,190 columns): in the full run (`make corpus`), never in the test's sample.
SLOW: tuple[str, ...] = (
    "moto:moto/ec2/resources/instance_types.json.gz",
    "moto:moto/ssm/resources/*",
    "statsmodels:statsmodels/discrete/tests/results/poisson_resid.csv",
)


# The generated files (written.py) are many small variants of a few datasets: the sample takes
# about one in WRITTEN_THINNER * `every` of them and the first WRITTEN_PER_GROUP of each (writer,
# format), plus every one given reader options (so passing them is always tested).
WRITTEN_THINNER = 2
WRITTEN_PER_GROUP = 2


def sample(files: list[CorpusFile], every: int, per_group: int = 3) -> list[CorpusFile]:
    """A deterministic sample: every file whose id hashes to 0 modulo `every`, plus the first
    `per_group` files (by id) of each (source, format), so each kind stays represented; never
    the SLOW files; the generated files thinner (WRITTEN_THINNER). `every` <= 1: all files."""
    if every <= 1:
        return list(files)
    chosen: dict[str, CorpusFile] = {}
    groups: dict[tuple[str, str], int] = {}
    for f in files:
        if any(fnmatchcase(f.id, p) for p in SLOW):
            continue
        group = (f.dist, f.fmt)
        groups[group] = groups.get(group, 0) + 1
        first, modulo, told = per_group, every, False
        if f.dist.startswith("written:"):
            first, modulo = WRITTEN_PER_GROUP, every * WRITTEN_THINNER
            told = bool(f.options or f.reference_options)
        if told or groups[group] <= first or zlib.crc32(f.id.encode()) % modulo == 0:
            chosen[f.id] = f
    return sorted(chosen.values(), key=lambda f: f.id)
