"""Expanding what the user named — S3 URIs, prefixes, globs, local paths — into files to load;
the default table name they give."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

from dreambolt.errors import InvalidS3UriError, S3BaseError, S3NotFoundError
from dreambolt.s3.client import ObjectInfo, S3Client
from dreambolt.s3.uri import S3Uri, glob_match, has_glob, is_local, local_path, parse_s3_uri
from dreambolt.sources.local import expand_local
from dreambolt.sources.source import Failures, Source

__all__ = ["default_table_name", "expand", "parse_input", "wanted_key"]

ClientFactory = Callable[[], Awaitable[S3Client]]
_UNSAFE = re.compile(r"[^A-Za-z0-9_]+")


def parse_input(text: str) -> S3Uri | Path:
    """An input as an S3Uri or a local Path; raises InvalidS3UriError for unusable text."""
    if is_local(text):
        return local_path(text)
    return parse_s3_uri(text)


async def _expand_s3(uri: S3Uri, client: S3Client) -> list[Source]:
    def source(info: ObjectInfo) -> Source:
        return Source(uri=str(info.uri), size=info.size, etag=info.etag or None, info=info)

    if uri.is_glob or uri.is_prefix:
        found = [source(info) async for info in client.list(uri)]
        if not found:
            raise _no_match(uri)
        return found
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


def _listing_uri(uri: S3Uri) -> str:
    """Where to `dreambolt ls` for an input: the folder a glob or prefix starts in."""
    fixed = uri.list_prefix if uri.is_glob else uri.key
    folder = fixed.rsplit("/", 1)[0] + "/" if "/" in fixed else ""
    return str(S3Uri(uri.bucket, folder, uri.region))


def _no_match(uri: S3Uri) -> S3NotFoundError:
    what = "glob" if uri.is_glob else "prefix"
    hint = f"run `dreambolt ls {_listing_uri(uri)}` to see what is there"
    return S3NotFoundError(
        f"{uri}: no object matches this {what}; {hint}",
        uri=str(uri),
        code="NoMatch",
        status=None,
        hint=hint,
    )


def _all_excluded(shown: str, target: S3Uri | Path, count: int) -> Exception:
    objects = "object" if isinstance(target, S3Uri) else "file"
    hint = (
        "check --include/--exclude: a pattern with `/` matches the whole key (path), "
        "one without matches the file name"
    )
    message = (
        f"{shown}: {count} {objects}{'s' if count != 1 else ''} matched, "
        f"all excluded by --include/--exclude; {hint}"
    )
    if isinstance(target, Path):
        return FileNotFoundError(message)
    return S3NotFoundError(message, uri=shown, code="NoMatch", status=None, hint=hint)


def wanted_key(key: str, include: Sequence[str], exclude: Sequence[str]) -> bool:
    """aws-cli style filters: a pattern with `/` matches the whole key, else the file name."""
    name = key.rsplit("/", 1)[-1]

    def hit(pattern: str) -> bool:
        return glob_match(pattern, key if "/" in pattern else name)

    if include and not any(hit(p) for p in include):
        return False
    return not any(hit(p) for p in exclude)


async def expand(
    inputs: Sequence[str],
    client: ClientFactory,
    *,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
) -> tuple[list[Source], list[tuple[str, Exception]]]:
    """Expand inputs concurrently into de-duplicated sources, plus (input, error) for failures.

    Raises InvalidS3UriError for text that is no URI or path at all (a usage error).
    """
    parsed = [parse_input(text) for text in inputs]

    async def one(target: S3Uri | Path) -> tuple[list[Source], Failures]:
        if isinstance(target, Path):
            return await asyncio.to_thread(expand_local, target)
        return await _expand_s3(target, await client()), []

    outcomes = await asyncio.gather(*(one(t) for t in parsed), return_exceptions=True)
    sources: dict[str, Source] = {}
    failures: Failures = []
    for text, target, outcome in zip(inputs, parsed, outcomes, strict=True):
        shown = _shown(text, target)
        if isinstance(outcome, BaseException):
            if not isinstance(outcome, Exception) or isinstance(outcome, InvalidS3UriError):
                raise outcome
            failures.append((shown, outcome))
            continue
        found, unreadable = outcome
        failures.extend(unreadable)
        wanted = [
            src
            for src in found
            if wanted_key(src.path.as_posix() if src.path else src.uri, include, exclude)
        ]
        if found and not wanted:
            failures.append((shown, _all_excluded(shown, target, len(found))))
        for src in wanted:
            sources.setdefault(src.uri, src)
    return list(sources.values()), failures


def _shown(text: str, target: S3Uri | Path) -> str:
    """How an input is named in failures: S3 as given, a local path as its file:// URI (a
    local pattern as given, which a URI would percent-encode)."""
    if isinstance(target, S3Uri) or has_glob(str(target)):
        return text
    return target.resolve().as_uri()


def default_table_name(inputs: Sequence[str | Source]) -> str:
    """The table a run writes to when none is given.

    A single file gives its stem (`data.csv.gz` -> `data`); a prefix or glob gives its last fixed
    path segment (`s3://b/events/2024-*.csv` -> `events`). Characters unfit for an identifier
    become `_`. Inputs that disagree raise InvalidS3UriError asking for --table.
    """
    texts = [i.uri if isinstance(i, Source) else i for i in inputs]
    names = {_name_for(parse_input(text)) for text in texts}
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
