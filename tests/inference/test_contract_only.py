"""probgen/inference/ knows models only through the declared contract (models/base.py)."""

import ast
import pathlib

import pytest

import probgen
from probgen.models import MODELS

INFERENCE = pathlib.Path(probgen.__file__).parent / "inference"
FILES = sorted(INFERENCE.rglob("*.py"))


def _model_like(node: ast.AST) -> bool:
    return isinstance(node, ast.Name) and "model" in node.id


def _violations(tree: ast.AST) -> list[str]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("getattr", "hasattr"):
            if node.args and _model_like(node.args[0]):
                found.append(f"line {node.lineno}: {node.func.id}({node.args[0].id}, ...)")
        if isinstance(node, ast.Attribute) and _model_like(node.value) and node.attr.startswith("_"):
            found.append(f"line {node.lineno}: {node.value.id}.{node.attr}")
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("probgen.models."):
            # the contract, the registry, and the Laplace approximation of any Pyro program (no family)
            if node.module not in ("probgen.models.base", "probgen.models.registry", "probgen.models.laplace"):
                found.append(f"line {node.lineno}: imports {node.module}")
    return found


@pytest.mark.parametrize("path", FILES, ids=[str(p.relative_to(INFERENCE)) for p in FILES])
def test_no_probing_no_private_reads_no_family_imports(path):
    assert _violations(ast.parse(path.read_text())) == []


@pytest.mark.parametrize("path", FILES, ids=[str(p.relative_to(INFERENCE)) for p in FILES])
def test_no_family_named_in_code(path):
    """Docstring examples may use a model; the code itself names none."""
    families = {spec.cls.__name__ for spec in MODELS.values()} | set(MODELS)
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Name):
            names.add(node.id)
        elif isinstance(node, ast.Attribute):
            names.add(node.attr)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and "\n" not in node.value:
            names.add(node.value)  # a registry name as a string key, say
    assert sorted(names & families) == []


def test_the_check_catches_what_it_should():
    code = "def f(model, x):\n    getattr(model, 'density')\n    hasattr(model, 'y')\n    return model._num_data\n"
    assert len(_violations(ast.parse(code))) == 3
    assert _violations(ast.parse("from probgen.models.vae import VAE")) == ["line 1: imports probgen.models.vae"]


def test_no_function_in_inference_is_longer_than_60_lines():
    long = []
    for path in FILES:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.end_lineno - node.lineno + 1 > 60:
                long.append(f"{path.name}:{node.name} ({node.end_lineno - node.lineno + 1} lines)")
    assert long == []
