"""`dreambolt --help` and usage errors answer without importing the heavy libraries.

Each case runs the real entry point in a fresh interpreter and reads `sys.modules` there after
the command exits: a regression (a module-level `import polars` in the CLI, an eager name in
`dreambolt/__init__.py`) shows up as the offending module's name, not as a slower run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

HEAVY = ("polars", "duckdb", "pyarrow", "aiobotocore", "botocore", "aiohttp", "numpy")

_CHILD = """
import json, sys
args, watched = json.loads(sys.argv[1]), set(json.loads(sys.argv[2]))
from dreambolt.cli import main
sys.argv = ["dreambolt", *args]
code = None
try:
    main()
except SystemExit as exc:
    code = exc.code
heavy = sorted({name.split(".")[0] for name in sys.modules} & watched)
sys.__stdout__.write("\\n" + json.dumps({"code": code, "heavy": heavy}) + "\\n")
"""


def run_cli(args: list[str]) -> tuple[int | str | None, list[str], str]:
    """Run the CLI with `args` in a fresh interpreter: (exit code, heavy modules, output)."""
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, json.dumps(args), json.dumps(HEAVY)],
        capture_output=True,
        text=True,
        env=dict(os.environ),
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    *shown, last = done.stdout.rstrip("\n").split("\n")
    outcome = json.loads(last)
    return outcome["code"], outcome["heavy"], "\n".join(shown) + done.stderr


@pytest.mark.parametrize(
    ("args", "code", "says"),
    [
        (["--help"], 0, "Commands:"),
        (["ingest", "--help"], 0, "--on-error"),
        (["ls", "--help"], 0, "--endpoint-url"),
        (["demo", "--help"], 0, "--db"),
        (["--version"], 0, "0.1.0"),
        (["ingest", "--no-such-flag"], 2, "No such option"),
        (["ingest", "x.csv", "--concurrency", "0"], 2, "--concurrency"),
        (["ingest", "x.csv", "--part-size", "eight"], 2, "8MiB"),
        (["nosuchcommand"], 2, "No such command"),
        (["ingest"], 2, "no input"),
    ],
)
def test_help_and_usage_errors_import_no_heavy_library(
    args: list[str], code: int, says: str
) -> None:
    exit_code, heavy, output = run_cli(args)
    assert exit_code == code, output
    assert says in output
    assert heavy == [], f"`dreambolt {' '.join(args)}` imported {heavy}"


def test_the_check_sees_a_heavy_import() -> None:
    """The probe works: a command that does run imports the library, and the child reports it."""
    exit_code, heavy, output = run_cli(["ingest", "no-such-file.csv", "--db", ":memory:", "-q"])
    assert exit_code == 1, output
    assert {"polars", "duckdb"} <= set(heavy)


def test_import_dreambolt_is_light_and_names_still_resolve() -> None:
    probe = (
        "import sys, dreambolt\n"
        f"before = sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r}))\n"
        "from dreambolt import Ingester, S3Client\n"
        "print(before, Ingester.__module__, S3Client.__module__)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.split() == ["[]", "dreambolt.ingest", "dreambolt.s3.client"]
