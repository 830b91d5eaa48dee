"""Tutorial: restricted Boltzmann machines, trained by contrastive divergence.

An RBM defines p(v) only up to its normalizer Z: log_prob is log p~(v). With 20 or fewer hidden
units log Z is a sum over 2^H states and the held-out NLL is exact; otherwise it is estimated by
annealed importance sampling (AIS), whose runs we keep to show their spread. On binarized digits
we train a Bernoulli RBM by CD-1 and by persistent CD, compare AIS with the exact log Z, and look
at Gibbs samples. On 2-D moons a Gaussian-Bernoulli RBM (real visibles, a mixture of 2^H
Gaussians) beats the best diagonal Gaussian, which it is with its weights at zero.

Run: python examples/rbm.py [--out DIR] [--quick]
"""

import argparse
import math
from pathlib import Path

import torch
from _summary import print_summary

import probgen as pg
from probgen.models.energy import GaussianRBM
from probgen.plots import image_grid, loss_curve, scatter_2d


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/example-rbm")
    parser.add_argument("--quick", action="store_true", help="a tiny budget (smoke test)")
    args = parser.parse_args()
    torch.set_num_threads(1)  # small networks: one thread is faster, and never oversubscribes shared cores
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    train, val, test = (pg.load_dataset("digits-binary", s) for s in ("train", "val", "test"))
    hidden, epochs = (12, 3) if args.quick else (20, 200)

    baseline = pg.models.IndependentBernoulli(64).fit_closed_form(train.x)
    independent = pg.log_likelihood(baseline, test)
    print("independent Bernoulli (exact):", independent)
    summary = {"digits": {"independent_nll": independent.nll}, "moons": {}}
    for name, persistent in (("CD-1", False), ("PCD-1", True)):
        torch.manual_seed(0)
        rbm = pg.models.RBM(64, "binary", num_hidden=hidden)
        options = {"k": 1, "persistent": persistent}
        result = pg.fit(rbm, train, val_data=val, epochs=epochs, lr=0.01, batch_size=20, strategy_options=options)
        plot_loss(result.history, name, out / f"loss-{name}.png")
        score = pg.log_likelihood(rbm, test)
        summary["digits"][f"{name}_nll"] = score.nll
        print(f"RBM, {hidden} hidden units, {name}, best epoch {result.best_epoch}:", score)

    exact, _ = rbm.log_normalizer(method="exact")
    runs, steps = (20, 200) if args.quick else (100, 2000)
    torch.manual_seed(1)
    weights = rbm.ais_log_weights(runs, steps)
    estimate = torch.logsumexp(weights, 0) - math.log(runs)
    summary["digits"]["log_z"] = {"exact": exact.item(), "ais": estimate.item(), "ais_run_sd": weights.std().item(),
                                  "runs": runs}  # fmt: skip
    print(f"log Z: exact {exact.item():.3f}; AIS with {runs} runs and {steps} temperatures {estimate.item():.3f}")
    print(f"  (per-run estimates: sd {weights.std().item():.3f}, min {weights.min().item():.3f}, "
          f"max {weights.max().item():.3f})")  # fmt: skip
    rbm.num_gibbs_steps = 100 if args.quick else 1000
    plot_samples(rbm, out / "samples.png")

    moons, moons_test = pg.load_dataset("moons"), pg.load_dataset("moons", "test")
    gaussian = pg.models.IndependentGaussian.from_dataset(moons, method="mle").fit_closed_form(moons.x)
    summary["moons"]["diagonal_gaussian_nll"] = pg.log_likelihood(gaussian, moons_test).nll
    print("moons, diagonal Gaussian (exact):", pg.log_likelihood(gaussian, moons_test))
    torch.manual_seed(0)
    grbm = GaussianRBM(2, "real", num_hidden=12, num_gibbs_steps=100)
    pg.fit(grbm, moons, epochs=3 if args.quick else 50, batch_size=50, lr=0.1, progress=False)
    score = pg.log_likelihood(grbm, moons_test)
    summary["moons"]["gaussian_rbm_nll"] = score.nll
    print("moons, Gaussian RBM, 12 hidden units, CD-1 (exact log Z over 2^12 hidden states):", score)
    exact = grbm.log_normalizer(method="exact")[0].item()
    torch.manual_seed(1)
    weights = grbm.ais_log_weights(runs, steps)
    estimate = (torch.logsumexp(weights, 0) - math.log(runs)).item()
    print(f"  log Z: exact {exact:.3f}; AIS from the base Gaussian with {runs} runs and {steps} temperatures "
          f"{estimate:.3f} (runs' sd {weights.std().item():.3f})")  # fmt: skip
    summary["moons"]["log_z"] = {"exact": exact, "ais": estimate, "ais_run_sd": weights.std().item(), "runs": runs}
    plot_moons(grbm, out / "gaussian-rbm-samples.png")
    print_summary(summary)
    print(f"plots in {out}/")


def plot_loss(history: list[dict], name: str, path: Path) -> Path:
    """The CD surrogate (a free-energy gap, near 0) and the exact validation NLL (tens of nats)
    are different quantities: one panel each, each with its own axis."""
    train = {"train_loss": f"{name} surrogate (training data)"}
    return loss_curve(history, path, title=f"RBM trained by {name}", series=train,
                      ylabel="free energy: data - negative samples", second={"val_loss": "validation NLL (exact)"},
                      second_ylabel="NLL (nats / example)")  # fmt: skip


def plot_samples(rbm: pg.models.RBM, path: Path) -> Path:
    title = f"64 samples of the RBM ({rbm.num_gibbs_steps} Gibbs steps)"
    return image_grid(rbm.sample(64), (8, 8), path, vmax=1, title=title)


def plot_moons(grbm: GaussianRBM, path: Path) -> Path:
    return scatter_2d(grbm.sample(2000), path, title="Gaussian RBM: 2,000 samples (moons)")


if __name__ == "__main__":
    main()
