"""Tutorial: a restricted Boltzmann machine on binarized digits, trained by contrastive divergence.

An RBM defines p(v) only up to its normalizer Z: log_prob is log p~(v). With 20 or fewer hidden
units log Z is a sum over 2^H states and the held-out NLL is exact; otherwise it is estimated by
annealed importance sampling (AIS), whose runs we keep to show their spread. We train by CD-1 and
by persistent CD, compare AIS with the exact log Z, and look at Gibbs samples.

Run: python examples/rbm.py [--out DIR] [--quick]
"""

import argparse
import math
from pathlib import Path

import torch

import probgen as pg
from probgen.plots import image_grid, loss_curve


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
    print("independent Bernoulli (exact):", pg.log_likelihood(baseline, test))
    for name, persistent in (("CD-1", False), ("PCD-1", True)):
        torch.manual_seed(0)
        rbm = pg.models.RBM(64, "binary", hidden=hidden)
        options = {"k": 1, "persistent": persistent}
        result = pg.fit(rbm, train, val_data=val, epochs=epochs, lr=0.01, batch_size=20, strategy_options=options)
        loss_curve(result.history, out / f"loss-{name}.png", title=f"RBM ({name}): val_loss is the exact NLL")
        print(f"RBM, {hidden} hidden units, {name}, best epoch {result.best_epoch}:", pg.log_likelihood(rbm, test))

    exact, _ = rbm.log_normalizer(method="exact")
    runs, steps = (20, 200) if args.quick else (100, 2000)
    torch.manual_seed(1)
    weights = rbm.ais_log_weights(runs, steps)
    estimate = torch.logsumexp(weights, 0) - math.log(runs)
    print(f"log Z: exact {exact.item():.3f}; AIS with {runs} runs and {steps} temperatures {estimate.item():.3f}")
    print(f"  (per-run estimates: sd {weights.std().item():.3f}, min {weights.min().item():.3f}, "
          f"max {weights.max().item():.3f})")  # fmt: skip
    rbm.gibbs_steps = 100 if args.quick else 1000
    image_grid(rbm.sample(64), (8, 8), out / "samples.png", vmax=1)
    print(f"plots in {out}/")


if __name__ == "__main__":
    main()
