"""The public API is what dreambolt/__init__.py re-exports; keep __all__ honest and sorted, and
make sure every name the README presents as DreamBolt's API can be imported from `dreambolt`."""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import pytest

import dreambolt
from dreambolt import errors

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()

# Backticked CamelCase words in the README that are not DreamBolt names: the S3 error codes and
# SinkError codes of the troubleshooting table, and polars' `Array(Float32, dim)`. A new word of
# that shape must be added here on purpose, or exported.
NOT_API = {
    "AccessDenied": "S3 error code",
    "ExpiredToken": "S3 error code",
    "InvalidAccessKeyId": "S3 error code",
    "SignatureDoesNotMatch": "S3 error code",
    "NoCredentials": "S3AuthError code",
    "NotADatabase": "SinkError code",
    "NoSuchDirectory": "SinkError code",
    "InvalidPath": "SinkError code",
    "Locked": "SinkError code",
    "IOError": "SinkError code",
    "Array": "polars dtype",
    "UInt8": "polars dtype",
    "UInt16": "polars dtype",
    "UInt32": "polars dtype",
    "UInt64": "polars dtype",
    "DeltaTable": "deltalake's table class (Lakehouse: reading the result)",
    "Client": "Dask distributed's client (README: Scale-out)",
    "Object": "EventBridge detail-type (README: Running as a service)",
    "Recreate": "Kubernetes Deployment strategy",
    "StartAfter": "S3 ListObjectsV2 parameter",
    "TimeoutStopSec": "systemd unit setting",
    "ProcessPoolExecutor": "concurrent.futures",
}

_SPAN = re.compile(r"`([^`\n]+)`")
_CAMEL = re.compile(r"([A-Z][A-Za-z0-9_]*[a-z][A-Za-z0-9_]*)(?=$|[(.\[\s])")
_PYTHON_BLOCK = re.compile(r"```python\n(.*?)```", re.DOTALL)
_FROM_IMPORT = re.compile(r"^\s*from dreambolt import (\([^)]*\)|[^\n]+)", re.MULTILINE)
_CALLED = re.compile(r"(?<![\w.])([A-Z][A-Za-z0-9_]*[a-z][A-Za-z0-9_]*)\(")
_DOTTED = re.compile(r"(?<![\w./-])dreambolt((?:\.[A-Za-z_]\w*)+)")


def names_in(text: str) -> tuple[set[str], set[str]]:
    """(top-level names, dotted paths) that `text` presents as DreamBolt API.

    The rule:
    1. every name in a `from dreambolt import …` line of a ```python block;
    2. every CamelCase name called in a ```python block (`Ingester(…)`, `S3Options(…)`);
    3. every backticked span that starts with a CamelCase identifier (a capital, then at least
       one lower-case letter; followed by the end of the span, `(`, `.`, `[` or a space, so
       header names like `Retry-After` are not taken) — e.g. `S3ObjectChangedError`,
       `Ingester(csv=…)`, `S3Client.read` — unless listed in NOT_API;
    4. every `dreambolt.a.b` path (in code or prose), except file names (`dreambolt.duckdb`):
       it must resolve to a module or attribute.
    Names of the first three kinds must be importable from `dreambolt` itself.
    """
    names: set[str] = set()
    for block in _PYTHON_BLOCK.findall(text):
        for imported in _FROM_IMPORT.findall(block):
            names |= {n.strip() for n in imported.strip("()").split(",") if n.strip()}
        names |= {n for n in _CALLED.findall(block) if n not in NOT_API}
    for span in _SPAN.findall(text):
        found = _CAMEL.match(span)
        if found and found.group(1) not in NOT_API:
            names.add(found.group(1))
    dotted = {"dreambolt" + d for d in _DOTTED.findall(text) if not d.endswith(".duckdb")}
    return names, dotted


def resolve(path: str) -> object:
    """Import the longest module prefix of `path`, then follow the remaining attributes."""
    parts = path.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            value: object = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for attr in parts[cut:]:
            value = getattr(value, attr)
        return value
    raise ModuleNotFoundError(path)


README_NAMES, README_PATHS = names_in(README)


def test_the_rule_finds_what_it_should() -> None:
    """The extractor works (else the README test below would pass by finding nothing)."""
    sample = (
        "```python\nfrom dreambolt import A1b, Cd\nx = Ef(1)  # Gh is a comment\n```\n"
        "`Ij`, `Kl(m=1)`, `Mn.read`, `Retry-After`, `ORDER BY`, `AccessDenied`, "
        "`dreambolt.duckdb`, `dreambolt.x.y_z`"
    )
    assert names_in(sample) == ({"A1b", "Cd", "Ef", "Ij", "Kl", "Mn"}, {"dreambolt.x.y_z"})
    assert {
        "Ingester",
        "S3Client",
        "S3Options",
        "EmbeddingAuthError",
        "Listener",
        "CsvOptions",
        "S3Uri",
        "IngestReport",
    } <= README_NAMES
    assert "dreambolt.parse_s3_uri" in README_PATHS


@pytest.mark.parametrize("name", sorted(README_NAMES))
def test_every_name_the_readme_uses_is_exported(name: str) -> None:
    assert name in dreambolt.__all__, f"README names `{name}`; export it from dreambolt"
    exec(f"from dreambolt import {name}", {})


@pytest.mark.parametrize("path", sorted(README_PATHS))
def test_every_dotted_path_the_readme_uses_resolves(path: str) -> None:
    resolve(path)


def test_not_api_words_are_in_the_readme_and_not_exported() -> None:
    """The exclusions stay current: each still appears in the README and is not a DreamBolt name."""
    for word in NOT_API:
        assert f"`{word}" in README, f"{word} is no longer in the README: drop it from NOT_API"
        assert word not in dreambolt.__all__


def test_all_is_sorted_and_complete() -> None:
    names = [n for n in dreambolt.__all__ if n != "__version__"]
    assert names == sorted(names)
    assert all(hasattr(dreambolt, name) for name in dreambolt.__all__)
    public = {n for n in dir(dreambolt) if not n.startswith("_") and n[0].isupper()}
    assert public <= set(dreambolt.__all__)
    with pytest.raises(AttributeError, match="no_such_name"):
        dreambolt.no_such_name  # noqa: B018


def test_lazy_names_are_typed_where_they_are_imported() -> None:
    """Each lazily exported name is also imported under TYPE_CHECKING from the same module, so
    mypy sees exactly what `from dreambolt import X` returns at run time."""
    tree = ast.parse((ROOT / "dreambolt" / "__init__.py").read_text())
    typed: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and ast.unparse(node.test) in (
            "TYPE_CHECKING",
            "typing.TYPE_CHECKING",
        ):
            for stmt in node.body:
                assert isinstance(stmt, ast.ImportFrom) and stmt.module
                typed |= {alias.name: stmt.module for alias in stmt.names}
    for name, module in typed.items():
        assert getattr(importlib.import_module(module), name) is getattr(dreambolt, name), name
    assert set(typed) == set(dreambolt.__all__) - {"__version__"}


def test_contract_names_exist() -> None:
    for name in ("S3Client", "Ingester", "parse_s3_uri", "S3Uri", "IngestReport", "FileResult"):
        assert name in dreambolt.__all__
    assert dreambolt.S3Client.parse_s3_uri is dreambolt.parse_s3_uri


def test_error_tree_matches_the_contract() -> None:
    base = errors.DreamBoltError
    assert issubclass(errors.InvalidS3UriError, base) and issubclass(
        errors.InvalidS3UriError, ValueError
    )
    for name in (
        "S3AuthError",
        "S3NotFoundError",
        "S3RateLimitError",
        "S3ObjectChangedError",
        "S3IntegrityError",
        "S3GenericError",
    ):
        assert issubclass(getattr(errors, name), errors.S3BaseError)
    for cls in (errors.S3BaseError, errors.FormatError, errors.EmbeddingError, errors.SinkError):
        assert issubclass(cls, base)
    assert issubclass(errors.EmbeddingAuthError, errors.EmbeddingError)
    assert dreambolt.EmbeddingAuthError is errors.EmbeddingAuthError
