"""Expanding what the user named — S3 URIs, prefixes, globs, local paths — into files to load."""

from __future__ import annotations

import asyncio
import glob as globlib
import os
import re
import shutil
import tempfile
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from .errors import InvalidS3UriError, S3BaseError, S3NotFoundError
from .s3 import ObjectInfo, S3Client
from .uri import S3Uri, glob_match, has_glob, is_local, local_path, parse_s3_uri

__all__ = ["Source", "default_table_name", "expand", "new_spool", "parse_input"]

ClientFactory = Callable[[], Awaitable[S3Client]]
_UNSAFE = re.compile(r"[^A-Za-z0-9_]+")


@dataclass(frozen=True, slots=True)
class Source:
    """One file to load: an S3 object (with what listing/HEAD said) or a local file."""

    uri: str  # canonical: s3://bucket/key or file:///abs/path
    size: int
    etag: str | None
    info: ObjectInfo | None = None
    path: Path | None = None

    @property
    def name(self) -> str:
        """The file name part, used to detect the format."""
        return self.path.name if self.path else PurePosixPath(self.uri).name


def parse_input(text: str) -> S3Uri | Path:
    """An input as an S3Uri or a local Path; raises InvalidS3UriError for unusable text."""
    if is_local(text):
        return local_path(text)
    return parse_s3_uri(text)


def local_etag(path: Path) -> tuple[int, str]:
    """Size and a change token (size and mtime) for a local file, as make and rsync judge."""
    stat = path.stat()
    return stat.st_size, f'"{stat.st_size:x}-{stat.st_mtime_ns:x}"'


def _local_source(path: Path) -> Source:
    size, etag = local_etag(path)
    return Source(uri=path.resolve().as_uri(), size=size, etag=etag, path=path.resolve())


def _expand_local(path: Path) -> list[Source]:
    text = str(path)
    if has_glob(text):
        found = [Path(p) for p in sorted(globlib.glob(text, recursive=True))]
        return [_local_source(p) for p in found if p.is_file()]
    if path.is_dir():
        files = sorted(
            p for p in path.rglob("*")
            if p.is_file() and not any(part.startswith(".") for part in p.relative_to(path).parts)
        )
        return [_local_source(p) for p in files]
    if path.is_file():
        return [_local_source(path)]
    raise FileNotFoundError(f"{path}: no such file or directory")


async def _expand_s3(uri: S3Uri, client: S3Client) -> list[Source]:
    def source(info: ObjectInfo) -> Source:
        return Source(uri=str(info.uri), size=info.size, etag=info.etag or None, info=info)

    if uri.is_glob or uri.is_prefix:
        return [source(info) async for info in client.list(uri)]
    try:
        info = await client.head(uri)
    except S3NotFoundError as missing:
        # `s3://b/logs` may mean the "folder" logs/: use it if it holds anything.
        try:
            found = [source(i) async for i in client.list(uri.with_key(uri.key + "/"))]
        except S3BaseError:
            raise missing from missing.__cause__
        if found:
            return found
        raise
    return [source(info)]


def _wanted(key: str, include: Sequence[str], exclude: Sequence[str]) -> bool:
    """aws-cli style filters: a pattern with `/` matches the whole key, else the file name."""
    name = key.rsplit("/", 1)[-1]

    def hit(pattern: str) -> bool:
        return glob_match(pattern, key if "/" in pattern else name)

    if include and not any(hit(p) for p in include):
        return False
    return not any(hit(p) for p in exclude)


async def expand(
    inputs: Sequence[str], client: ClientFactory, *,
    include: Sequence[str] = (), exclude: Sequence[str] = (),
) -> tuple[list[Source], list[tuple[str, Exception]]]:
    """Expand inputs concurrently into de-duplicated sources, plus (input, error) for failures.

    Raises InvalidS3UriError for text that is no URI or path at all (a usage error).
    """
    parsed = [parse_input(text) for text in inputs]

    async def one(target: S3Uri | Path) -> list[Source]:
        if isinstance(target, Path):
            return await asyncio.to_thread(_expand_local, target)
        return await _expand_s3(target, await client())

    outcomes = await asyncio.gather(*(one(t) for t in parsed), return_exceptions=True)
    sources: dict[str, Source] = {}
    failures: list[tuple[str, Exception]] = []
    for text, target, outcome in zip(inputs, parsed, outcomes, strict=True):
        if isinstance(outcome, BaseException):
            if not isinstance(outcome, Exception) or isinstance(outcome, InvalidS3UriError):
                raise outcome
            shown = target.resolve().as_uri() if isinstance(target, Path) else text
            failures.append((shown, outcome))
            continue
        for src in outcome:
            key = src.path.as_posix() if src.path else src.uri
            if src.uri not in sources and _wanted(key, include, exclude):
                sources[src.uri] = src
    return list(sources.values()), failures


def default_table_name(inputs: Sequence[str]) -> str:
    """The table a run writes to when none is given.

    A single file gives its stem (`data.csv.gz` -> `data`); a prefix or glob gives its last fixed
    path segment (`s3://b/events/2024-*.csv` -> `events`). Characters unfit for an identifier
    become `_`. Inputs that disagree raise InvalidS3UriError asking for --table.
    """
    names = {_name_for(parse_input(text)) for text in inputs}
    if len(names) != 1:
        raise InvalidS3UriError(
            f"these inputs suggest different table names ({', '.join(sorted(names))}); "
            "choose one with --table NAME"
        )
    return names.pop()


def _name_for(target: S3Uri | Path) -> str:
    if isinstance(target, Path):
        parts = list(target.parts)
        fixed = parts[: next((i for i, p in enumerate(parts) if has_glob(p)), len(parts))]
        is_file = len(fixed) == len(parts) and not target.is_dir()
        leaf = fixed[-1] if fixed else "data"
    else:
        segments = target.key.split("/")
        fixed = segments[: next((i for i, s in enumerate(segments) if has_glob(s)), len(segments))]
        fixed = [s for s in fixed if s]
        is_file = not (target.is_glob or target.is_prefix)
        leaf = fixed[-1] if fixed else target.bucket
    if is_file:
        leaf = leaf.split(".", 1)[0] or leaf
    name = _UNSAFE.sub("_", leaf).strip("_") or "data"
    if name[0].isdigit():
        name = f"t_{name}"
    return name[:63].lower()


def new_spool() -> Path:
    """A fresh directory for this run's big objects, in $DREAMBOLT_TMPDIR or the system default.

    Spools of runs that were killed (their process is gone) are removed first.
    """
    base = Path(os.environ.get("DREAMBOLT_TMPDIR") or tempfile.gettempdir())
    for stale in base.glob("dreambolt-spool-*"):
        owner = stale.name.split("-")[2]
        if owner.isdigit() and not _alive(int(owner)):
            shutil.rmtree(stale, ignore_errors=True)
    return Path(tempfile.mkdtemp(prefix=f"dreambolt-spool-{os.getpid()}-", dir=base))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True
