"""examples/autoregressive.py: its parameter table follows the formulas. (Its --quick run, with
every model's exact test NLL below the uniform model's, is checked in tests/test_examples.py.)"""

import importlib.util
from pathlib import Path

EXAMPLE = Path(__file__).parents[1] / "examples" / "autoregressive.py"


def _load(monkeypatch):
    monkeypatch.syspath_prepend(str(EXAMPLE.parent))  # the example imports its sibling _summary
    spec = importlib.util.spec_from_file_location("autoregressive_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_parameter_table_follows_the_formulas(monkeypatch):
    h = 7
    rows = _load(monkeypatch).parameter_table(sizes=(4, 16, 64), num_hidden=h)
    for row in rows:
        n = row["n"]
        assert row["full chain rule"] == 2**n - 1
        assert row["fvbn"] == n + n * (n - 1) // 2  # a bias and a weight on each earlier variable
        assert row[f"nade (H={h})"] == 2 * n * h + n + h  # W, V, b, c
        assert row["independent"] == n
