"""examples/flows.py at a tiny budget: every flow beats the independent Gaussian on moons."""

import importlib.util
import math
from pathlib import Path

SCRIPT = Path(__file__).parents[1] / "examples" / "flows.py"


def _example():
    spec = importlib.util.spec_from_file_location("flows_example", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_flows_example_beats_the_gaussian_baseline(tmp_path):
    example = _example()
    flows = {label: example.FLOWS[label] for label in ("RealNVP", "MAF")}
    results = example.fit_and_score(flows, ("moons",), epochs=3, num_layers=2, hidden=(32,))
    moons = results["moons"]
    for label, nats in moons["nats"].items():
        assert math.isfinite(nats) and nats > moons["baseline"] + 0.1, (label, nats, moons["baseline"])
    png = example.plot_flow("MAF", results, tmp_path / "maf.png", grid=20)
    assert png.stat().st_size > 1000
