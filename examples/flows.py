"""Tutorial: normalizing flows on 2-D data — RealNVP, MAF, IAF, NSF, NSF-AR and NAF.

Each flow is fitted by maximum likelihood to four 2-D sets (two moons, eight Gaussians, a
checkerboard, concentric rings) with validation early stopping, scored on the test split
(exact nats; the independent Gaussian is the baseline), and drawn: one PNG per flow with the
density heatmap (top row) and samples (bottom row) on each set.

Run: python examples/flows.py [--out DIR] [--quick]
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import torch
from _summary import print_summary

import probgen as pg
from probgen.models import IAF, MAF, NAF, NSF, NSFAutoregressive, RealNVP
from probgen.plots import save_figure

FLOWS = {"RealNVP": RealNVP, "MAF": MAF, "IAF": IAF, "NSF": NSF, "NSF-AR": NSFAutoregressive, "NAF": NAF}
DATASETS = ("moons", "8gaussians", "checkerboard", "rings")


def fit_and_score(
    flows: dict[str, type], datasets: tuple[str, ...], *, epochs: int, num_layers: int, hidden_features: tuple[int, ...]
) -> dict[str, dict[str, Any]]:
    """For each dataset: its test split, the Gaussian baseline's test score, and each flow
    fitted on train (early-stopped on val) with its test score."""
    results: dict[str, dict[str, Any]] = {}
    for name in datasets:
        train, val, test = (pg.load_dataset(name, split) for split in ("train", "val", "test"))
        gaussian = pg.models.IndependentGaussian(2, "real", method="mle").fit_closed_form(train.x)
        models = {}
        for label, cls in flows.items():
            models[label] = cls.from_dataset(train, num_layers=num_layers, hidden_features=hidden_features)
            budget = dict(epochs=epochs, lr=3e-3, batch_size=100, patience=20, progress=False)
            pg.fit(models[label], train, val_data=val, **budget)
        print(pg.compare({"independent gaussian": gaussian, **models}, test, dataset=name))
        scores = {label: pg.log_likelihood(m, test).nats for label, m in models.items()}
        baseline = pg.log_likelihood(gaussian, test).nats
        results[name] = {"test": test, "models": models, "nats": scores, "baseline": baseline}
    return results


def plot_flow(label: str, results: dict[str, dict[str, Any]], path: Path, *, grid: int = 120) -> Path:
    """Density heatmaps (top) and 1,000 samples (bottom) of one flow on every dataset."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, len(results), figsize=(3.6 * len(results), 6), squeeze=False)
    for column, (name, result) in enumerate(results.items()):
        model, x = result["models"][label], result["test"].x
        lo, hi = x.min(0).values - 0.5, x.max(0).values + 0.5
        u, v = (torch.linspace(lo[i].item(), hi[i].item(), grid) for i in range(2))
        points = torch.cartesian_prod(u, v)
        with torch.no_grad():
            density = model.log_prob(points).exp().reshape(grid, grid).T.numpy()
        extent = (u[0].item(), u[-1].item(), v[0].item(), v[-1].item())
        image = axes[0, column].imshow(density, origin="lower", extent=extent, aspect="auto")
        fig.colorbar(image, ax=axes[0, column], label="density p(x)")
        axes[0, column].set_title(f"{name}: test NLL {-result['nats'][label]:.2f} nats")
        draws = model.sample(1000).numpy()
        axes[1, column].scatter(draws[:, 0], draws[:, 1], s=2, alpha=0.5)
        axes[1, column].set_xlim(extent[:2])
        axes[1, column].set_ylim(extent[2:])
        axes[1, column].set_title("1,000 samples")
        for ax in axes[:, column]:
            ax.set(xlabel="x[0]", ylabel="x[1]")
    fig.suptitle(f"{label}: density (top) and samples (bottom)")
    return save_figure(fig, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/example-flows")
    parser.add_argument("--quick", action="store_true", help="a tiny budget (smoke test)")
    args = parser.parse_args()
    torch.set_num_threads(1)  # small networks: one thread is faster, and never oversubscribes shared cores
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    if args.quick:
        results = fit_and_score(FLOWS, ("moons",), epochs=3, num_layers=2, hidden_features=(32,))
    else:
        results = fit_and_score(FLOWS, DATASETS, epochs=200, num_layers=5, hidden_features=(64, 64))
    print(f"{'test NLL (nats)':16}" + "".join(f"{name:>14}" for name in results))
    for label in ["independent gaussian", *FLOWS]:
        row = [r["baseline"] if label == "independent gaussian" else r["nats"][label] for r in results.values()]
        print(f"{label:16}" + "".join(f"{-nats:14.3f}" for nats in row))
    print_summary(
        {
            name: {"independent gaussian": -r["baseline"], **{label: -nats for label, nats in r["nats"].items()}}
            for name, r in results.items()
        }
    )  # test NLL in nats per example
    for label in FLOWS:
        plot_flow(label, results, out / f"{label.lower()}.png", grid=40 if args.quick else 120)
    print(f"plots in {out}/")


if __name__ == "__main__":
    main()
