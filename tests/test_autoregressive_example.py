"""examples/autoregressive.py: its parameter table follows the formulas, and --quick scores every
model of the family with a finite exact test NLL."""

import importlib.util
import math
import re
import sys
from pathlib import Path

EXAMPLE = Path(__file__).parents[1] / "examples" / "autoregressive.py"


def _load():
    spec = importlib.util.spec_from_file_location("autoregressive_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_parameter_table_follows_the_formulas():
    h = 7
    rows = _load().parameter_table(sizes=(4, 16, 64), hidden=h)
    for row in rows:
        n = row["n"]
        assert row["full chain rule"] == 2**n - 1
        assert row["fvbn"] == n + n * (n - 1) // 2  # a bias and a weight on each earlier variable
        assert row[f"nade (H={h})"] == 2 * n * h + n + h  # W, V, b, c
        assert row["independent"] == n


def test_quick_run_scores_the_family(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["autoregressive.py", "--quick", "--out", str(tmp_path)])
    _load().main()
    printed = capsys.readouterr().out
    scores = dict(re.findall(r"^\| ([a-z()0-9 -]+) \| ([0-9.]+) \|.*\| exact \|", printed, flags=re.M))
    assert set(scores) == {"fvbn", "nade", "made", "made (8 orderings)", "pixelcnn", "causal-transformer"}
    for nll in map(float, scores.values()):
        assert 0 < nll < 64 * math.log(2) + 5  # near or below the uniform model's 44.4 nats after an epoch
    assert (tmp_path / "inpainting.png").stat().st_size > 0
