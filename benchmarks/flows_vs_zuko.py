"""Benchmark: probgen's flows against zuko's on 17-level digits (zuko is a benchmark-only
dependency: ``pip install zuko``).

The same protocol for both libraries, in one process: the standard split (1,000 / 350 / 447),
``num_layers`` layers of ``hidden_features`` widths (default 5 of [256, 256]), Adam 1e-3, batch 100,
early stopping on the validation bound with ``patience`` (default 20), uniform dequantization
with the logit pre-transform (alpha 0.05) for training, and the test log-likelihood estimated
with 32-draw importance-weighted dequantization. zuko's flow is wrapped as a probgen model of
real vectors, so both go through the same ``Dequantized`` wrapper, ``fit`` and evaluation.

Pairs: MAF / zuko MAF, RealNVP / zuko RealNVP, NSF-AR (autoregressive rational-quadratic
splines, bound 5) / zuko NSF (the same construction), NSF (coupling) / zuko NSF, and NAF (Pyro's
deep sigmoidal flow, 16 units) / zuko NAF (its unconstrained monotonic network, 16 signals).

Printed: test NLL in nats and bits/dim for each, and the training-step time (median of
``timing_steps`` steps of each, alternating so machine noise hits both) with the ratio
probgen / zuko.

Run: python benchmarks/flows_vs_zuko.py [--epochs 1000] [--flows maf realnvp nsf-ar nsf naf] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import time

import pyro
import torch
from pyro.infer import Trace_ELBO
from pyro.nn import pyro_method
from torch import Tensor

import probgen as pg
from probgen.models import MAF, NAF, NSF, Dequantized, GenerativeModel, NSFAutoregressive, RealNVP
from probgen.models.base import data_plate, network, parameters_held


class ZukoFlow(GenerativeModel):
    """A zuko flow (a lazy distribution module) as an exact-density probgen model of real vectors."""

    supports = ("real",)

    def __init__(self, event_shape, support: str = "real", *, flow: torch.nn.Module) -> None:
        super().__init__(event_shape, support)
        self.flow = flow

    @pyro_method
    def model(self, x: Tensor, y: Tensor | None = None) -> None:
        x = x.reshape(len(x), -1)
        with data_plate(self, x):
            pyro.factor("x", network(self, "flow")().log_prob(x))

    def log_prob(self, x: Tensor) -> Tensor:
        x = self.validate(x)
        return self.flow().log_prob(x.reshape(len(x), -1))

    def sample(self, n: int) -> Tensor:
        with torch.no_grad():
            return self.flow().sample((n,)).reshape(n, *self.event_shape)


def pair(name: str, layers: int, hidden: list[int]) -> tuple[GenerativeModel, GenerativeModel]:
    import zuko

    shared = {"transforms": layers, "hidden_features": hidden}
    if name == "maf":
        return MAF(64, num_layers=layers, hidden_features=hidden), ZukoFlow(64, flow=zuko.flows.MAF(64, **shared))
    if name == "realnvp":
        return RealNVP(64, num_layers=layers, hidden_features=hidden), ZukoFlow(
            64, flow=zuko.flows.RealNVP(64, **shared)
        )
    if name == "naf":
        return NAF(64, num_layers=layers, hidden_features=hidden), ZukoFlow(64, flow=zuko.flows.NAF(64, **shared))
    ours = {"nsf": NSF, "nsf-ar": NSFAutoregressive}[name](64, num_layers=layers, hidden_features=hidden, bound=5.0)
    return ours, ZukoFlow(64, flow=zuko.flows.NSF(64, **shared))


def dequantized(base: GenerativeModel, train: pg.data.Dataset, **kwargs) -> Dequantized:
    return Dequantized.from_dataset(train, base=base, logit_alpha=0.05, **kwargs)


def step_seconds(models: list[Dequantized], x: Tensor, steps: int) -> list[float]:
    """Median seconds of one training step (the ELBO fit uses, backward, Adam) of each model,
    alternating between the models step by step."""
    optimizers = [torch.optim.Adam(m.parameters(), lr=1e-3) for m in models]
    times: list[list[float]] = [[] for _ in models]
    elbo = Trace_ELBO()
    for step in range(steps + 3):
        batch = x[torch.randint(len(x), (100,))]
        for m, opt, t in zip(models, optimizers, times, strict=True):
            start = time.perf_counter()
            with parameters_held(m):
                loss = elbo.differentiable_loss(m.model, m.guide, batch)
            opt.zero_grad()
            loss.backward()
            opt.step()
            if step >= 3:  # warm-up steps are not counted
                t.append(time.perf_counter() - start)
    return [statistics.median(t) for t in times]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flows", nargs="+", default=["maf", "realnvp", "nsf-ar", "nsf", "naf"])
    parser.add_argument("--epochs", type=int, default=1000, help="at most; early stopping ends sooner")
    parser.add_argument("--patience", type=int, default=20)
    parser.add_argument("--layers", type=int, default=5)
    parser.add_argument("--hidden", type=int, nargs="+", default=[256, 256])
    parser.add_argument("--timing-steps", type=int, default=50)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    train, val, test = (pg.load_dataset("digits", s) for s in ("train", "val", "test"))
    budget = dict(epochs=args.epochs, lr=1e-3, batch_size=100, patience=args.patience, progress=False)
    print(f"digits 17 levels; {args.layers} layers of {args.hidden}; Adam 1e-3, batch 100, patience {args.patience}")
    print(f"{'flow':9} {'library':8} {'test NLL':>9} {'bits/dim':>9} {'epochs':>7} {'ms/step':>8}")
    for name in args.flows:
        rows = []
        torch.manual_seed(args.seed)
        timed = [dequantized(b, train) for b in pair(name, args.layers, args.hidden)]
        seconds = step_seconds(timed, timed[0].validate(train.x), args.timing_steps)
        for index, (library, step) in enumerate(zip(("probgen", "zuko"), seconds, strict=True)):
            torch.manual_seed(args.seed)
            model = dequantized(pair(name, args.layers, args.hidden)[index], train)
            result = pg.fit(model, train, val_data=val, seed=args.seed, **budget)
            scorer = dequantized(model.base, train, dequantization="importance", num_samples=32)
            torch.manual_seed(args.seed)
            score = pg.log_likelihood(scorer, test)
            rows.append((score.nll, step))
            print(
                f"{name:9} {library:8} {score.nll:9.2f} {score.bits_per_dim:9.4f} "
                f"{len(result.history):7d} {1000 * step:8.2f}",
                flush=True,
            )
        (ours, our_step), (theirs, their_step) = rows
        print(f"{name:9} probgen - zuko: {ours - theirs:+.2f} nats; step time ratio {our_step / their_step:.2f}x")


if __name__ == "__main__":
    main()
