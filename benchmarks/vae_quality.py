"""Quality: held-out IWAE bounds of digits VAEs against the numbers they must reach.

1. Binarized digits (the standard split: train = first 1000, val = next 350, test = last 447),
   a 64-200-8 Bernoulli VAE in the style of Pyro's VAE example (softplus MLPs, Adam 1e-3,
   batch 100), early-stopped on the validation ELBO:
   test NLL from IWAE with K=5000 must be at most 19.7 nats.
2. 17-level digits, the same VAE with a categorical decoder: it must beat the independent
   categorical baseline (the closed-form posterior predictive, about 106.5 nats) by a wide
   margin: we ask for at least 10 nats (about 10%).

Run: python benchmarks/vae_quality.py [--epochs 1000] [--k 5000]
"""

from __future__ import annotations

import argparse
import time

import probgen as pg
from probgen.models import VAE, IndependentCategorical


def fit_and_score(name: str, epochs: int, k: int) -> tuple[float, float]:
    train, val, test = (pg.load_dataset(name, s) for s in ("train", "val", "test"))
    vae = VAE(train.event_shape, train.support, latent_dim=8, hidden=(200,))
    start = time.perf_counter()
    result = pg.fit(vae, train, val_data=val, epochs=epochs, batch_size=100, lr=1e-3, progress=False)
    score = pg.log_likelihood(vae, test, method="iwae", num_samples=k)
    print(f"{name}: VAE 64-200-8, best epoch {result.best_epoch}, {time.perf_counter() - start:.0f}s; test {score}")
    return score.nll, score.stderr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=1000)
    parser.add_argument("--k", type=int, default=5000)
    args = parser.parse_args()

    nll, _ = fit_and_score("digits-binary", args.epochs, args.k)
    print(f"  target: IWAE-{args.k} test NLL <= 19.7 nats -> {'PASS' if nll <= 19.7 else 'FAIL'} ({nll:.2f})")

    nll, _ = fit_and_score("digits", args.epochs, args.k)
    train, test = pg.load_dataset("digits"), pg.load_dataset("digits", "test")
    baseline = pg.log_likelihood(IndependentCategorical(64, "discrete(17)").fit_closed_form(train.x), test).nll
    margin = baseline - nll
    print(f"  independent categorical baseline: {baseline:.2f} nats; the VAE is {margin:.2f} nats better")
    print(f"  target: at least 10 nats better -> {'PASS' if margin >= 10 else 'FAIL'}")


if __name__ == "__main__":
    main()
