"""Tutorial: the independence baseline on binarized digits, three ways.

A fully factorized Bernoulli model p(x) = prod_d Bernoulli(x_d | theta_d) with Beta(1, 1)
priors. We fit its posterior by SVI, compare with the exact conjugate posterior, look at
samples, and score both on held-out digits in nats and bits/dim.

Run: python examples/factorized.py [--out DIR] [--quick]
"""

import argparse
from pathlib import Path

import torch
from _summary import print_summary

import probgen as pg
from probgen.plots import image_grid, loss_curve


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/example-factorized")
    parser.add_argument("--quick", action="store_true", help="a tiny budget (smoke test)")
    args = parser.parse_args()
    torch.set_num_threads(1)  # small networks: one thread is faster, and never oversubscribes shared cores
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    train = pg.load_dataset("digits-binary", "train")
    val = pg.load_dataset("digits-binary", "val")
    test = pg.load_dataset("digits-binary", "test")
    print(train)

    # 1. Variational posterior by SVI (Beta guide per pixel).
    svi_model = pg.models.IndependentBernoulli(train.event_shape)
    epochs = 3 if args.quick else 60
    result = pg.fit(svi_model, train, val_data=val, epochs=epochs, lr=0.05, batch_size=100)

    # 2. The exact conjugate posterior: Beta(1 + ones, 1 + zeros) per pixel.
    exact = pg.models.IndependentBernoulli(train.event_shape).fit_closed_form(train.x)

    # 3. Maximum likelihood (no prior).
    mle = pg.models.IndependentBernoulli(train.event_shape, method="mle").fit_closed_form(train.x)

    table = pg.compare({"svi posterior": svi_model, "exact posterior": exact, "mle": mle}, test)
    print(table)
    print_summary({"test_nll": {row["model"]: row["nll_nats"] for row in table.rows}})
    never_on = int((train.x.sum(0) == 0).sum())
    print(f"{never_on} pixels are never on in training: the MLE gives them probability ~0,")
    print("so a test digit that lights one costs it ~36 nats; the posteriors hedge.")

    plot_figures(result.history, exact, out)
    print(f"plots in {out}/")


def plot_figures(history: list[dict], exact: pg.models.IndependentBernoulli, out: Path) -> list[Path]:
    """The SVI fit's loss per epoch, samples of the exact posterior predictive, and its pixel
    probabilities (a value per pixel: on a colour scale with its bar)."""
    title = "independent Bernoulli, SVI"
    paths = [loss_curve(history, out / "loss.png", title=title, ylabel="negative ELBO (nats / example)")]
    title = "64 samples of the exact posterior predictive"
    paths.append(image_grid(exact.sample(64), (8, 8), out / "samples.png", vmax=1, title=title))
    probabilities = exact.predictive_distribution().mean[None]
    paths.append(image_grid(probabilities, (8, 8), out / "pixel-probabilities.png", vmax=1, cmap="viridis",
                            colorbar="P(pixel on)", title="posterior predictive\nP(pixel on)"))  # fmt: skip
    return paths


if __name__ == "__main__":
    main()
