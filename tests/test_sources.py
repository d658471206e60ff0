"""expand(): local trees with symlink loops and unreadable folders, and inputs that match nothing.

Local listings run in a subprocess, with a timeout: a walk that never ends (a symlink loop) must
fail the test, not hang the session; and, when the tests run as root, to drop privileges, since
root reads a chmod 000 folder as if it were open.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from faultproxy import FaultProxy

from dreambolt import S3Client, S3NotFoundError
from dreambolt.sources import expand

NOBODY = 65534

SCRIPT = r"""
import asyncio, json, os, sys
from dreambolt.sources import expand

args = json.loads(sys.argv[1])

async def no_client():
    raise AssertionError("local inputs need no S3 client")

def run():
    sources, failures = asyncio.run(
        expand(args["inputs"], no_client, include=args["include"], exclude=args["exclude"])
    )
    return {"sources": [s.uri for s in sources],
            "failures": [[shown, type(e).__name__, str(e)] for shown, e in failures]}

if args["nobody"] and os.geteuid() == 0:
    run()  # as root first: every lazy import is done while the interpreter's files are readable
    os.setgroups([])
    os.setgid(args["nobody"])
    os.setuid(args["nobody"])
print(json.dumps(run()))
"""


def list_local(
    *inputs: str | Path,
    include: tuple[str, ...] = (),
    exclude: tuple[str, ...] = (),
    unprivileged: bool = False,
) -> dict[str, Any]:
    """expand() of local inputs in a fresh process: {"sources": [uri], "failures": [...]}."""
    args = {
        "inputs": [str(i) for i in inputs],
        "include": include,
        "exclude": exclude,
        "nobody": NOBODY if unprivileged else None,
    }
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, json.dumps(args)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def uri(path: Path) -> str:
    return path.resolve().as_uri()


@pytest.fixture
def open_tmp() -> Iterator[Path]:
    """A folder every user can enter (pytest's tmp_path is root's alone when we run as root)."""
    folder = Path(tempfile.mkdtemp(prefix="dreambolt-sources-"))
    folder.chmod(0o755)
    yield folder
    for path in [folder, *folder.rglob("*")]:
        if path.is_dir() and not path.is_symlink():
            path.chmod(0o755)
    shutil.rmtree(folder)


# --- 1: symlink loops, symlinked folders and files ----------------------------------------------


def loopy_tree(root: Path) -> dict[str, Path]:
    """tree/a/x.csv, tree/b/y.csv, two loops (a/loop -> tree, b/loop2 -> a), a symlinked
    folder outside the tree, and a symlinked file."""
    tree, outside = root / "tree", root / "outside"
    (tree / "a").mkdir(parents=True)
    (tree / "b").mkdir()
    outside.mkdir()
    files = {"x": tree / "a" / "x.csv", "y": tree / "b" / "y.csv", "z": outside / "z.csv"}
    for path in files.values():
        path.write_text("id\n1\n")
    (tree / "a" / "loop").symlink_to(tree, target_is_directory=True)
    (tree / "b" / "loop2").symlink_to(tree / "a", target_is_directory=True)
    (tree / "ext").symlink_to(outside, target_is_directory=True)
    (tree / "link.csv").symlink_to(files["x"])
    (tree / "dangling.csv").symlink_to(root / "nowhere.csv")
    (tree / ".hidden").mkdir()
    (tree / ".hidden" / "h.csv").write_text("id\n1\n")
    return {"tree": tree, **files}


@pytest.mark.parametrize(
    "pattern",
    ["{tree}", "{tree}/", "{tree}/**/*.csv", "{tree}/**", "{tree}/**/**/*.csv", "file://{tree}/"],
)
def test_symlink_loops_end_and_every_file_is_found_once(tmp_path: Path, pattern: str) -> None:
    paths = loopy_tree(tmp_path)
    got = list_local(pattern.format(tree=paths["tree"]))
    # x.csv once (also reached as link.csv and through both loops), y.csv once, z.csv through
    # the symlinked folder; the dangling link and the hidden folder are not files to load.
    assert sorted(got["sources"]) == sorted(uri(paths[k]) for k in ("x", "y", "z"))
    assert got["failures"] == []


def test_a_glob_through_symlinked_folders_matches_within_them(tmp_path: Path) -> None:
    paths = loopy_tree(tmp_path)
    got = list_local(f"{paths['tree']}/*/*.csv", f"{paths['tree']}/a/loop/b/*.csv")
    assert sorted(got["sources"]) == sorted(uri(paths[k]) for k in ("x", "y", "z"))


# --- 1: folders that cannot be read ---------------------------------------------------------


def locked_tree(root: Path) -> dict[str, Path]:
    (root / "data" / "locked" / "deeper").mkdir(parents=True)
    (root / "data" / "ok.csv").write_text("id\n1\n")
    (root / "data" / "locked" / "secret.csv").write_text("id\n1\n")
    (root / "data" / "locked" / "deeper" / "more.csv").write_text("id\n1\n")
    (root / "data" / "locked").chmod(0)
    return {
        "data": root / "data",
        "locked": root / "data" / "locked",
        "ok": root / "data" / "ok.csv",
    }


@pytest.mark.parametrize("pattern", ["{data}", "{data}/**/*.csv", "{data}/*/*.csv"])
def test_an_unreadable_folder_is_a_failure_naming_it(open_tmp: Path, pattern: str) -> None:
    paths = locked_tree(open_tmp)
    got = list_local(pattern.format(data=paths["data"]), unprivileged=True)
    if pattern != "{data}/*/*.csv":  # that one cannot match ok.csv, one level up
        assert got["sources"] == [uri(paths["ok"])]
    [(shown, kind, message)] = got["failures"]
    assert shown == uri(paths["locked"])
    assert kind == "PermissionError"
    assert str(paths["locked"]) in message and "permission denied" in message
    assert "chmod" in message  # what to do


def test_naming_an_unreadable_folder_is_a_failure_not_an_empty_success(open_tmp: Path) -> None:
    paths = locked_tree(open_tmp)
    for given in (paths["locked"], f"{paths['locked']}/*.csv"):
        got = list_local(given, unprivileged=True)
        assert got["sources"] == []
        [(shown, kind, message)] = got["failures"]
        assert shown == uri(paths["locked"]) and kind == "PermissionError"
        assert str(paths["locked"]) in message


def test_an_unreachable_file_is_a_failure(open_tmp: Path) -> None:
    paths = locked_tree(open_tmp)
    got = list_local(paths["locked"] / "secret.csv", unprivileged=True)
    [(shown, kind, message)] = got["failures"]
    assert (shown, kind) == (uri(paths["locked"] / "secret.csv"), "PermissionError")
    assert "permission denied" in message


# --- 2: local inputs that match nothing ------------------------------------------------------


def test_local_inputs_that_match_nothing_are_failures(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    hidden_only = tmp_path / "hidden_only"
    (hidden_only / ".git").mkdir(parents=True)
    (hidden_only / ".git" / "x.csv").write_text("id\n1\n")
    (tmp_path / "a.csv").write_text("id\n1\n")
    inputs = [
        str(empty),
        str(hidden_only),
        f"{tmp_path}/*.parquet",
        f"{tmp_path}/nope/**/*.csv",
        str(tmp_path / "missing.csv"),
    ]
    got = list_local(*inputs)
    assert got["sources"] == []
    assert [(shown, kind) for shown, kind, _ in got["failures"]] == [
        (uri(empty), "FileNotFoundError"),
        (uri(hidden_only), "FileNotFoundError"),
        (inputs[2], "FileNotFoundError"),
        (inputs[3], "FileNotFoundError"),
        (uri(tmp_path / "missing.csv"), "FileNotFoundError"),
    ]
    messages = [message for _, _, message in got["failures"]]
    assert str(empty) in messages[0] and "no files" in messages[0]
    assert "hidden" in messages[1]
    assert inputs[2] in messages[2] and "no file matches" in messages[2]


def test_local_files_all_excluded_by_filters_are_a_failure(tmp_path: Path) -> None:
    for name in ("a.csv", "b.csv"):
        (tmp_path / name).write_text("id\n1\n")
    got = list_local(tmp_path, f"{tmp_path}/a.csv", exclude=("*.csv",))
    assert got["sources"] == []
    assert [(shown, kind) for shown, kind, _ in got["failures"]] == [
        (uri(tmp_path), "FileNotFoundError"),
        (uri(tmp_path / "a.csv"), "FileNotFoundError"),
    ]
    assert "2 files matched, all excluded by --include/--exclude" in got["failures"][0][2]
    assert "1 file matched, all excluded" in got["failures"][1][2]
    # one input filtered away while another loads: only the first fails
    got = list_local(tmp_path / "a.csv", tmp_path / "b.csv", include=("b*",))
    assert got["sources"] == [uri(tmp_path / "b.csv")]
    assert [shown for shown, _, _ in got["failures"]] == [uri(tmp_path / "a.csv")]


# --- 2: S3 inputs that match nothing ---------------------------------------------------------


async def test_s3_inputs_that_match_nothing_are_failures(
    proxy: FaultProxy, s3: Any, bucket: str
) -> None:
    s3.put_object(Bucket=bucket, Key="data/a.csv", Body=b"id\n1\n")
    s3.put_object(Bucket=bucket, Key="empty/", Body=b"")  # a folder marker, no data
    async with S3Client(endpoint_url=proxy.endpoint_url) as client:

        async def factory() -> S3Client:
            return client

        glob, empty, nowhere = (
            f"s3://{bucket}/data/*.parquet",
            f"s3://{bucket}/empty/",
            f"s3://{bucket}/nowhere/**/*.csv",
        )
        sources, failures = await expand([glob, empty, nowhere, f"s3://{bucket}/data/"], factory)
        assert [s.uri for s in sources] == [f"s3://{bucket}/data/a.csv"]
        assert [shown for shown, _ in failures] == [glob, empty, nowhere]
        for (shown, exc), folder in zip(failures, ["data/", "empty/", "nowhere/"], strict=True):
            assert isinstance(exc, S3NotFoundError)
            assert (exc.code, exc.status, exc.uri) == ("NoMatch", None, shown)
            assert shown in str(exc)
            assert f"dreambolt ls s3://{bucket}/{folder}" in str(exc)

        sources, failures = await expand(
            [f"s3://{bucket}/data/", f"s3://{bucket}/data/a.csv"], factory, exclude=["*.csv"]
        )
        assert sources == []
        assert [(shown, type(exc), getattr(exc, "code", None)) for shown, exc in failures] == [
            (f"s3://{bucket}/data/", S3NotFoundError, "NoMatch"),
            (f"s3://{bucket}/data/a.csv", S3NotFoundError, "NoMatch"),
        ]
        assert "1 object matched, all excluded by --include/--exclude" in str(failures[0][1])


async def test_an_empty_bucket_is_a_failure(proxy: FaultProxy, bucket: str) -> None:
    async with S3Client(endpoint_url=proxy.endpoint_url) as client:

        async def factory() -> S3Client:
            return client

        sources, [(shown, exc)] = await expand([f"s3://{bucket}/"], factory)
    assert sources == [] and shown == f"s3://{bucket}/"
    assert isinstance(exc, S3NotFoundError) and exc.code == "NoMatch"
    assert f"dreambolt ls s3://{bucket}/" in str(exc)
