"""The module graph of probgen, from the AST: every import counts, function-level ones included.

Layers import only downwards (docs/architecture.md): a cycle, even one hidden inside a function,
means two modules that cannot be understood (or tested) apart.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "probgen"


def module_name(path: Path, package: Path = PACKAGE) -> str:
    parts = path.relative_to(package.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(node: ast.AST, here: str, is_package: bool, modules: set[str]) -> list[str]:
    """probgen modules an import statement loads (a ``from X import name`` of a submodule counts
    as that submodule)."""
    if isinstance(node, ast.Import):
        names = [a.name for a in node.names]
    elif isinstance(node, ast.ImportFrom):
        if node.level:
            base = here.split(".") if is_package else here.split(".")[:-1]
            base = base[: len(base) - (node.level - 1)]
            source = ".".join(base + ([node.module] if node.module else []))
        else:
            source = node.module or ""
        names = [f"{source}.{a.name}" if f"{source}.{a.name}" in modules else source for a in node.names]
    else:
        return []
    found = []
    for name in names:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        if name.startswith("probgen"):
            found.append(name)
    return found


def import_graph(package: Path = PACKAGE) -> dict[str, set[str]]:
    """Module -> the probgen modules it imports anywhere in its body.

    Importing ``probgen.a.b`` runs ``probgen/a/__init__.py`` first, so it counts as importing
    ``probgen.a`` too, except where the importer lives inside ``probgen.a`` itself (its own
    packages are loaded already) and for the top-level facade ``probgen``, which re-exports the
    public names of every layer."""
    files = {module_name(p, package): p for p in package.rglob("*.py")}
    modules = set(files)
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        is_package = path.name == "__init__.py"
        edges = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.If) and _is_type_checking(node.test):
                node.body = []  # imports for type hints only never run
        for node in ast.walk(tree):
            edges.update(imported(node, name, is_package, modules))
        for edge in list(edges):
            parts = edge.split(".")
            edges.update(".".join(parts[:i]) for i in range(2, len(parts)))
        edges.discard(name)
        root = package.name
        graph[name] = {e for e in edges if e != root and not name.startswith(e + ".")}
    return graph


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the graph as a list of modules (first == last), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start)):
            return found
    return None


def test_no_import_cycle():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_checker_finds_a_planted_cycle(tmp_path):
    pkg = tmp_path / "probgen"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from probgen.sub import b\n")
    (pkg / "sub" / "b.py").write_text("def f():\n    from probgen import a  # hidden in a function\n")
    graph = import_graph(pkg)
    assert find_cycle(graph) in (
        ["probgen.a", "probgen.sub.b", "probgen.a"],
        ["probgen.sub.b", "probgen.a", "probgen.sub.b"],
    )
    (pkg / "sub" / "b.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from probgen import a\n"
    )
    assert find_cycle(import_graph(pkg)) is None


@pytest.mark.parametrize("upper", ["probgen.cli", "probgen.experiments"])
def test_library_layers_never_import_the_layers_above(upper):
    lower = ("probgen.models", "probgen.data", "probgen.inference", "probgen.checkpoint", "probgen._io")
    graph = import_graph()
    bad = [f"{m} -> {e}" for m, edges in graph.items() if m.startswith(lower) for e in edges if e.startswith(upper)]
    assert not bad, bad
