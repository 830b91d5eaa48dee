"""examples/flows.py's figure at a tiny budget: one PNG with a density panel and a sample panel
per dataset. (Its --quick run, with every flow beating the Gaussian baseline, is checked in
tests/test_examples.py.)"""

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).parents[1] / "examples" / "flows.py"


def _example(monkeypatch):
    monkeypatch.syspath_prepend(str(SCRIPT.parent))  # the example imports its sibling _summary
    spec = importlib.util.spec_from_file_location("flows_example", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_plot_flow_draws_every_dataset(tmp_path, monkeypatch):
    example = _example(monkeypatch)
    results = example.fit_and_score(
        {"MAF": example.FLOWS["MAF"]}, ("moons",), epochs=1, num_layers=1, hidden_features=(8,)
    )
    assert set(results["moons"]["nats"]) == {"MAF"}
    png = example.plot_flow("MAF", results, tmp_path / "maf.png", grid=20)
    assert png.stat().st_size > 1000
