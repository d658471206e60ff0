"""Expanding what the user named — S3 URIs, prefixes, globs, local paths — into files to load."""

from __future__ import annotations

import asyncio
import errno
import fnmatch
import os
import re
import stat
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from dreambolt.errors import InvalidS3UriError, S3BaseError, S3NotFoundError
from dreambolt.s3.client import ObjectInfo, S3Client
from dreambolt.s3.uri import S3Uri, glob_match, has_glob, is_local, local_path, parse_s3_uri
from dreambolt.spool import Spool, new_spool, open_spool

__all__ = [
    "Source",
    "Spool",
    "default_table_name",
    "expand",
    "new_spool",
    "open_spool",
    "parse_input",
]

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
    real = path.resolve()
    return Source(uri=real.as_uri(), size=size, etag=etag, path=real)


Failures = list[tuple[str, Exception]]


def _unreadable(folder: Path, exc: OSError) -> Exception:
    """The failure for a folder a listing could not enter: named, with what to do."""
    shown = folder.absolute()
    if isinstance(exc, PermissionError):
        return PermissionError(
            errno.EACCES,
            f"{shown}: cannot list this folder (permission denied), so none of its files were "
            "loaded; give this user read and execute permission on it (chmod u+rx), run as a "
            "user who can read it, or leave it out of the input",
        )
    return type(exc)(
        exc.errno,
        f"{shown}: cannot list this folder ({exc.strerror or exc}), "
        "so none of its files were loaded",
    )


class _LocalWalk:
    """Files matching a path pattern, each real folder listed once (symlink loops end).

    Patterns follow `glob` with `recursive=True`: `*`, `?` and `[...]` match within a name,
    `**` as a whole segment any number of folders; names starting with `.` are only matched by
    a pattern segment that starts with `.` (so hidden folders are not descended into). Symlinks
    are followed, but a real folder (device and inode) is visited at most once per pattern
    position, so `a/loop -> ..` does not recurse forever and a file reached by two paths is
    found once (by its resolved path). A folder that cannot be listed is a failure, not a
    silence.
    """

    def __init__(self) -> None:
        self.failures: Failures = []
        self._failed: set[str] = set()
        # The last listing: `**` lists a folder for its subfolders and, next, for the segment
        # after it; kept for one step only, so memory does not grow with the tree.
        self._last: tuple[tuple[int, int], list[os.DirEntry[str]]] | None = None

    def _list(self, folder: Path, key: tuple[int, int]) -> list[os.DirEntry[str]]:
        if self._last is not None and self._last[0] == key:
            return self._last[1]
        entries: list[os.DirEntry[str]] = []
        try:
            with os.scandir(folder) as scan:
                entries = sorted(scan, key=lambda e: e.name)
        except FileNotFoundError:
            pass  # removed while we walked: nothing there any more
        except OSError as exc:
            self._fail(folder, exc)
        self._last = (key, entries)
        return entries

    def _fail(self, folder: Path, exc: OSError) -> None:
        shown = folder.absolute().as_uri()
        if shown not in self._failed:
            self._failed.add(shown)
            self.failures.append((shown, _unreadable(folder, exc)))

    def run(self, root: Path, segments: Sequence[str]) -> list[Path]:
        """Files under `root` (a folder) whose relative path matches `segments`."""
        found: dict[Path, None] = {}
        seen: set[tuple[int, int, int]] = set()
        stack: list[tuple[Path, int]] = [(root, 0)]
        last = len(segments) - 1
        while stack:
            folder, index = stack.pop()
            try:
                st = os.stat(folder)
            except (FileNotFoundError, NotADirectoryError):
                continue  # not there (a literal segment that names nothing, or a vanished one)
            except OSError as exc:
                self._fail(folder, exc)
                continue
            if not stat.S_ISDIR(st.st_mode):
                continue
            key = (st.st_dev, st.st_ino)
            if (index, *key) in seen:
                continue
            seen.add((index, *key))
            segment = segments[index]
            if segment == "**":
                for entry in self._list(folder, key):
                    if entry.name.startswith("."):
                        continue
                    if _is_dir(entry):
                        stack.append((folder / entry.name, index))
                    elif index == last and _is_file(entry):
                        found[folder / entry.name] = None
                if index < last:  # `**` matching no folder at all; taken next, so listed once
                    stack.append((folder, index + 1))
            elif not has_glob(segment):
                child = folder / segment
                if index == last:
                    try:
                        if stat.S_ISREG(os.stat(child).st_mode):
                            found[child] = None
                    except (FileNotFoundError, NotADirectoryError):
                        pass
                    except OSError as exc:
                        self._fail(folder, exc)
                else:
                    stack.append((child, index + 1))
            else:
                for entry in self._list(folder, key):
                    if entry.name.startswith(".") and not segment.startswith("."):
                        continue
                    if not fnmatch.fnmatchcase(entry.name, segment):
                        continue
                    if index == last:
                        if _is_file(entry):
                            found[folder / entry.name] = None
                    elif _is_dir(entry):
                        stack.append((folder / entry.name, index + 1))
        return sorted(found)


def _is_dir(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_dir()  # follows symlinks
    except OSError:
        return False


def _is_file(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_file()  # follows symlinks; a dangling link is neither
    except OSError:
        return False


def _expand_local(path: Path) -> tuple[list[Source], Failures]:
    """The files a local path, folder or glob names, and the folders that could not be read.

    Raises FileNotFoundError (PermissionError) when the path itself does not exist (cannot be
    reached) or names a folder that holds no files.
    """
    walk = _LocalWalk()
    text = str(path)
    if has_glob(text):
        parts = path.parts
        fixed = next(i for i, part in enumerate(parts) if has_glob(part))
        root = Path(*parts[:fixed]) if fixed else Path(".")
        files = walk.run(root, parts[fixed:])
        empty = f"{text}: no file matches this pattern"
        advice = (
            "check the pattern: `*` matches within a folder name, `**` any number of "
            "folders, and names starting with `.` only match a pattern starting with `.`"
        )
    else:
        try:
            st = path.stat()
        except (FileNotFoundError, NotADirectoryError):
            raise FileNotFoundError(f"{path}: no such file or directory") from None
        except PermissionError as exc:
            raise PermissionError(
                errno.EACCES,
                f"{path}: cannot reach it (permission denied on "
                "a folder on the way); check the permissions",
            ) from exc
        if not stat.S_ISDIR(st.st_mode):
            return [_local_source(path)], []
        files = walk.run(path, ["**", "*"])
        empty = f"{path}: the folder holds no files"
        advice = "hidden files and folders (names starting with `.`) are not loaded"
    sources: dict[str, Source] = {}  # a file reached by several paths (symlinks) counts once
    for file in files:
        try:
            src = _local_source(file)
        except FileNotFoundError:
            continue  # removed since it was listed
        except OSError as exc:
            walk.failures.append((file.absolute().as_uri(), exc))
            continue
        sources.setdefault(src.uri, src)
    if not sources and not walk.failures:
        raise FileNotFoundError(f"{empty}; {advice}")
    return list(sources.values()), walk.failures


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


def _wanted(key: str, include: Sequence[str], exclude: Sequence[str]) -> bool:
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
            return await asyncio.to_thread(_expand_local, target)
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
            if _wanted(src.path.as_posix() if src.path else src.uri, include, exclude)
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
