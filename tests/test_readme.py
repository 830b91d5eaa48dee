"""Every fenced Python block of the README runs on its own, as pasted, in a fresh namespace (only
the training budgets are shortened, so the suite stays fast: what is checked is that the names,
imports and calls work, not how good a 1000-epoch fit is)."""

from __future__ import annotations

import pathlib
import re
import warnings

import numpy as np
import pytest

import probgen

ROOT = pathlib.Path(__file__).resolve().parents[1]
BLOCKS = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)
#: (text, replacement) applied to a block before it runs: NUTS with a handful of draws
SHORTER = [('method="nuts")', 'method="nuts", num_samples=10, warmup_steps=10)')]


def test_the_readme_has_its_python_blocks():
    assert len(BLOCKS) >= 5


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_block_runs_on_its_own(index, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)  # the user's own file that the data block reads
    np.save(tmp_path / "mine.npy", rng.normal(size=(60, 3)).astype(np.float32))
    np.save(tmp_path / "mine-labels.npy", rng.integers(0, 2, size=60))
    fit, score = probgen.fit, probgen.log_likelihood

    def short_fit(model, data, **kwargs):
        kwargs["epochs"] = min(kwargs.get("epochs", 2), 2)
        return fit(model, data, **{**kwargs, "progress": False})

    def short_score(model, data, **kwargs):
        if kwargs.get("num_samples"):
            kwargs["num_samples"] = min(kwargs["num_samples"], 20)
        return score(model, data, **kwargs)

    monkeypatch.setattr(probgen, "fit", short_fit)
    monkeypatch.setattr(probgen, "log_likelihood", short_score)
    code = BLOCKS[index]
    for old, new in SHORTER:
        code = code.replace(old, new)
    namespace: dict = {"__name__": f"readme_block_{index}"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ArviZ's Pareto-k warning on a 10-draw posterior, say
        exec(compile(code, f"README.md block {index}", "exec"), namespace)  # noqa: S102
    printed = capsys.readouterr().out
    assert "Error" not in printed
