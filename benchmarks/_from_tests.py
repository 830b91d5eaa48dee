"""Load a module of the test suite by path, so that a benchmark measures the very models, data
and budgets its test asserts on (one definition of each), without making tests/ a package."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

TESTS = Path(__file__).resolve().parents[1] / "tests"


def test_module(relative: str) -> ModuleType:
    """The module at ``tests/<relative>`` (e.g. ``"inference/test_evidence.py"``), executed."""
    path = TESTS / relative
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
