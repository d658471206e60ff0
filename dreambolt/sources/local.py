"""Local paths, folders and globs expanded into files: a walk that survives symlink loops and
reports folders it cannot read instead of stopping."""

from __future__ import annotations

import errno
import fnmatch
import os
import stat
from collections.abc import Sequence
from pathlib import Path

from dreambolt.s3.uri import has_glob
from dreambolt.sources.source import Failures, Source

__all__ = ["expand_local", "local_etag"]


def local_etag(path: Path) -> tuple[int, str]:
    """Size and a change token (size and mtime) for a local file, as make and rsync judge."""
    stat = path.stat()
    return stat.st_size, f'"{stat.st_size:x}-{stat.st_mtime_ns:x}"'


def _local_source(path: Path) -> Source:
    size, etag = local_etag(path)
    real = path.resolve()
    return Source(uri=real.as_uri(), size=size, etag=etag, path=real)


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
        self._found: dict[Path, None] = {}  # the walk in progress (`run`)
        self._seen: set[tuple[int, int, int]] = set()
        self._stack: list[tuple[Path, int]] = []

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
        self._found, self._seen = {}, set()
        self._stack = [(root, 0)]  # (folder, pattern position)
        last = len(segments) - 1
        while self._stack:
            folder, index = self._stack.pop()
            key = self._enter(folder, index)
            if key is None:
                continue
            segment = segments[index]
            if segment == "**":
                self._any_depth(folder, key, index, index == last)
            elif not has_glob(segment):
                self._literal(folder, segment, index, index == last)
            else:
                self._matching(folder, key, segment, index, index == last)
        return sorted(self._found)

    def _enter(self, folder: Path, index: int) -> tuple[int, int] | None:
        """The folder's (device, inode) if it is a folder not yet visited at this pattern
        position (now marked visited); None to pass it by."""
        try:
            st = os.stat(folder)
        except (FileNotFoundError, NotADirectoryError):
            return None  # not there (a literal segment that names nothing, or a vanished one)
        except OSError as exc:
            self._fail(folder, exc)
            return None
        if not stat.S_ISDIR(st.st_mode) or (index, st.st_dev, st.st_ino) in self._seen:
            return None
        self._seen.add((index, st.st_dev, st.st_ino))
        return st.st_dev, st.st_ino

    def _any_depth(self, folder: Path, key: tuple[int, int], index: int, last: bool) -> None:
        """`**`: every subfolder at this position again; files too if `**` ends the pattern."""
        for entry in self._list(folder, key):
            if entry.name.startswith("."):
                continue
            if _is_dir(entry):
                self._stack.append((folder / entry.name, index))
            elif last and _is_file(entry):
                self._found[folder / entry.name] = None
        if not last:  # `**` matching no folder at all; taken next, so listed once
            self._stack.append((folder, index + 1))

    def _literal(self, folder: Path, segment: str, index: int, last: bool) -> None:
        """A segment without wildcards: the one name, without listing the folder."""
        child = folder / segment
        if not last:
            self._stack.append((child, index + 1))
            return
        try:
            if stat.S_ISREG(os.stat(child).st_mode):
                self._found[child] = None
        except (FileNotFoundError, NotADirectoryError):
            pass
        except OSError as exc:
            self._fail(folder, exc)

    def _matching(
        self, folder: Path, key: tuple[int, int], segment: str, index: int, last: bool
    ) -> None:
        """A segment with wildcards: the names in the folder it matches."""
        for entry in self._list(folder, key):
            if entry.name.startswith(".") and not segment.startswith("."):
                continue
            if not fnmatch.fnmatchcase(entry.name, segment):
                continue
            if not last:
                if _is_dir(entry):
                    self._stack.append((folder / entry.name, index + 1))
            elif _is_file(entry):
                self._found[folder / entry.name] = None


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


def expand_local(path: Path) -> tuple[list[Source], Failures]:
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
