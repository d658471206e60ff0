"""The package's imports point one way: no cycle among `dreambolt` modules, and each stage
imports only the stages below it (the folder listing reads as the pipeline: sources → s3 →
fetch → formats → embed → write → sinks → ingest → cli).

Imports are read from the source (every `import`/`from ... import`, inside functions too: a lazy
import is still a dependency); imports under `if TYPE_CHECKING:` are for the type checker only
and are left out. The implicit import of a parent package (`dreambolt/__init__.py` runs before
`dreambolt.errors`) is not an edge: it is how Python imports, not a choice of the module.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from fnmatch import fnmatchcase
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "dreambolt"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                yield from _imports(ast.Module(body=[child], type_ignores=[]))
            continue
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        yield from _imports(node)


def _resolve(module: str, node: ast.Import | ast.ImportFrom) -> set[str]:
    """The `dreambolt` modules one import statement of `module` loads by name."""
    is_package = MODULES[module].name == "__init__.py"
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        base = node.module or ""
        if node.level:
            anchor = module.split(".")
            anchor = anchor if is_package else anchor[:-1]
            anchor = anchor[: len(anchor) - (node.level - 1)]
            base = ".".join([*anchor, base] if base else anchor)
        names = [
            f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base
            for alias in node.names
        ]
    found = set()
    for name in names:
        while name and name not in MODULES:  # `import dreambolt.x.y as z` names a module
            name = name.rpartition(".")[0]
        if name and name != module:
            found.add(name)
    return found


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for module, path in MODULES.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        graph[module] = set().union(*(_resolve(module, node) for node in _imports(tree)))
    return graph


GRAPH = _graph()


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_graph_sees_the_package() -> None:
    """The reader of imports works: known edges are there (else the other tests prove nothing)."""
    assert {"dreambolt.s3.client", "dreambolt.formats.read", "dreambolt.cli"} <= set(GRAPH)
    assert "dreambolt.errors" in GRAPH["dreambolt.s3.calls"]
    assert "dreambolt.formats.read" in GRAPH["dreambolt.fetch"]


def test_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle() -> None:
    assert _cycles(GRAPH) == [], "import cycles inside dreambolt"


# A module matching the left pattern imports nothing matching a right one: a stage does not
# reach up the pipeline, and nothing above sinks/ names a destination.
FORBIDDEN = {
    "dreambolt.s3*": [
        "dreambolt.cluster*",
        "dreambolt.sources*",
        "dreambolt.fetch",
        "dreambolt.formats*",
        "dreambolt.embed*",
        "dreambolt.write",
        "dreambolt.batching",
        "dreambolt.sinks*",
        "dreambolt.ingest",
        "dreambolt.load",
        "dreambolt.cli*",
    ],
    "dreambolt.formats*": [
        "dreambolt.cluster*",
        "dreambolt.s3*",
        "dreambolt.sources*",
        "dreambolt.fetch",
        "dreambolt.embed*",
        "dreambolt.write",
        "dreambolt.batching",
        "dreambolt.sinks*",
        "dreambolt.ingest",
        "dreambolt.cli*",
    ],
    "dreambolt.embed*": [
        "dreambolt.cluster*",
        "dreambolt.s3*",
        "dreambolt.sources*",
        "dreambolt.fetch",
        "dreambolt.formats*",
        "dreambolt.write",
        "dreambolt.batching",
        "dreambolt.ingest",
        "dreambolt.cli*",
    ],
    "dreambolt.sinks*": [
        "dreambolt.cluster*",
        "dreambolt.s3*",
        "dreambolt.fetch",
        "dreambolt.write",
        "dreambolt.batching",
        "dreambolt.ingest",
        "dreambolt.cli*",
    ],
    "dreambolt.batching": [
        "dreambolt.cluster*",
        "dreambolt.write",
        "dreambolt.ingest",
        "dreambolt.cli*",
    ],
    "dreambolt.write": [
        "dreambolt.cluster*",
        "dreambolt.sinks.duckdb",
        "dreambolt.ingest",
        "dreambolt.cli*",
    ],
    "dreambolt.ingest": ["dreambolt.sinks.duckdb", "dreambolt.cli*", "dreambolt.watch*"],
    "dreambolt.load": ["dreambolt.sinks.duckdb", "dreambolt.ingest", "dreambolt.cli*"],
    "dreambolt.fetch": [
        "dreambolt.cluster*",
        "dreambolt.write",
        "dreambolt.ingest",
        "dreambolt.cli*",
    ],
    # The cluster driver is called by the Ingester and its tasks make one of the driver's
    # class: they never import it (that would be a cycle), nor the CLI.
    "dreambolt.cluster*": ["dreambolt.ingest", "dreambolt.cli*", "dreambolt.sinks.duckdb"],
    # The watch service runs Ingesters; nothing below it runs a service, and it names no
    # destination (the CLI opens the one --db names).
    "dreambolt.watch*": ["dreambolt.cli*", "dreambolt.cluster*", "dreambolt.sinks.duckdb"],
}


@pytest.mark.parametrize("importer", sorted(FORBIDDEN))
def test_stages_import_downwards(importer: str) -> None:
    wrong = sorted(
        f"{module} imports {target}"
        for module, targets in GRAPH.items()
        if fnmatchcase(module, importer)
        for target in targets
        if any(fnmatchcase(target, pattern) for pattern in FORBIDDEN[importer])
    )
    assert wrong == []


SINK_FACE = {"dreambolt.sinks", "dreambolt.sinks.base", "dreambolt.sinks.names"}


def test_nothing_above_sinks_names_a_destination() -> None:
    """Outside sinks/, only the protocol, the factory and table names are imported: which
    destination is written to is the factory's choice (`open_sink`)."""
    wrong = sorted(
        f"{module} imports {target}"
        for module, targets in GRAPH.items()
        if not module.startswith("dreambolt.sinks")
        for target in targets
        if target.startswith("dreambolt.sinks") and target not in SINK_FACE
    )
    assert wrong == []


def test_imports_that_are_lazy_are_still_seen() -> None:
    """The CLI imports its stages inside commands (for a fast --help); they are edges too."""
    assert any(target.startswith("dreambolt.ingest") for target in GRAPH["dreambolt.cli.ingest"])
