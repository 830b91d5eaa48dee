"""Size limits of probgen's code (issue #25): no module over 500 lines, no function over 60.

Lines are counted as an editor shows them, docstrings and comments included: a module or a
function gets under its limit by being split into well-named helpers with one concern each, never
by shortening its documentation. A function is measured from its ``def`` line to its last line
(decorators excluded), methods and nested functions included, from the AST.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "probgen"
MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 60


def _functions(tree: ast.AST, prefix: str = "") -> list[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef]]:
    """Every function of the tree with its qualified name (``Class.method``, ``outer.inner``)."""
    found = []
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            found.append((prefix + node.name, node))
            found.extend(_functions(node, f"{prefix}{node.name}."))
        elif isinstance(node, ast.ClassDef):
            found.extend(_functions(node, f"{prefix}{node.name}."))
        else:  # functions defined under an if, a try or a with statement
            found.extend(_functions(node, prefix))
    return found


def oversized(package: Path = PACKAGE) -> tuple[list[str], list[str]]:
    """The modules over :data:`MAX_MODULE_LINES` lines and the functions over
    :data:`MAX_FUNCTION_LINES`, one line each: ``path: N lines`` and ``path:line name: N lines``."""
    modules, functions = [], []
    for path in sorted(package.rglob("*.py")):
        text = path.read_text()
        where = path.relative_to(package.parent).as_posix()
        if (lines := len(text.splitlines())) > MAX_MODULE_LINES:
            modules.append(f"{where}: {lines} lines")
        for name, node in _functions(ast.parse(text, filename=str(path))):
            if (size := node.end_lineno - node.lineno + 1) > MAX_FUNCTION_LINES:
                functions.append(f"{where}:{node.lineno} {name}: {size} lines")
    return modules, functions


def test_no_module_over_500_lines():
    modules, _ = oversized()
    assert not modules, f"modules over {MAX_MODULE_LINES} lines (split them by concern):\n" + "\n".join(modules)


def test_no_function_over_60_lines():
    _, functions = oversized()
    assert not functions, f"functions over {MAX_FUNCTION_LINES} lines (split them into helpers):\n" + "\n".join(
        functions
    )


def _body(lines: int) -> str:
    """A function body of ``lines`` lines (the ``def`` line is one more)."""
    return "".join(f"    x{i} = {i}\n" for i in range(lines))


def test_the_checker_finds_planted_oversizes(tmp_path):
    pkg = tmp_path / "probgen"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    # at the limits: 500 lines in the module, 60 in the function (its docstring counts)
    (pkg / "fine.py").write_text('def f():\n    """Doc."""\n' + _body(58) + "\n" * 440)
    big = "class A:\n    @property\n    def m(self):\n" + _body(60).replace("    ", "        ")
    big += "\n\ndef outer():\n    def inner():\n" + _body(60).replace("    ", "        ") + "    return inner\n"
    big += "\n\nif True:\n    async def hidden():\n" + _body(61).replace("    ", "        ")
    (pkg / "sub" / "big.py").write_text(big + "\n" * (501 - len(big.splitlines())))
    modules, functions = oversized(pkg)
    assert modules == ["probgen/sub/big.py: 501 lines"]
    assert functions == [
        "probgen/sub/big.py:3 A.m: 61 lines",
        "probgen/sub/big.py:66 outer: 63 lines",
        "probgen/sub/big.py:67 outer.inner: 61 lines",
        "probgen/sub/big.py:132 hidden: 62 lines",
    ]
