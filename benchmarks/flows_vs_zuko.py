"""Benchmark: probgen's flows against zuko's on 17-level digits (zuko is a benchmark-only
dependency: ``pip install zuko``), two ways in one process.

The protocol: the standard split (1,000 / 350 / 447), ``num_layers`` layers of ``hidden_features``
widths (default 5 of [256, 256]), Adam 1e-3, batch 100, early stopping on the validation bound
with ``patience`` (default 20), ``Dequantized``'s default dequantization (variational: a learned
q(u | x); ``--dequantization uniform`` for uniform noise) with the logit pre-transform at its
default alpha (1e-3) for training, and the test log-likelihood estimated with 32 importance draws:
IWAE over q(u | x), or over the uniform noise (nats per example).

1. In probgen's harness: zuko's flow is wrapped as a probgen model of real vectors, so both go
   through the same ``Dequantized`` wrapper, ``fit`` and evaluation.
2. zuko in its own plain loop (:func:`plain_loop`), with uniform noise as a zuko user writes it: a
   PyTorch loop over shuffled batches of
   ``-flow().log_prob(logit(alpha + (1 - 2 alpha) (x + u) / 17))`` minus the log-Jacobian, the
   best validation epoch's weights kept, scored the same way. This is what a zuko user writes,
   with no probgen code in the loop.

Pairs: MAF / zuko MAF, RealNVP / zuko RealNVP, NSF-AR (autoregressive rational-quadratic
splines, bound 5) / zuko NSF (the same construction), NSF (coupling) / zuko NSF, and NAF (Pyro's
deep sigmoidal flow, 16 units) / zuko NAF (its unconstrained monotonic network, 16 signals).

Printed: for each flow and seed, the test NLL of probgen, zuko in the harness and zuko in its
plain loop, the epochs each ran and the training-step time (median of ``timing_steps`` steps of
each, alternating so machine noise hits both) with the ratio probgen / zuko; then the means over
the seeds.

Run: python benchmarks/flows_vs_zuko.py [--epochs 1000] [--flows maf realnvp nsf-ar nsf naf] [--seeds 0 1 2]
"""

from __future__ import annotations

import argparse
import copy
import math
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
from probgen.models.dequantized import DEFAULT_LOGIT_ALPHA


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


#: the dequantization of the harness's models (None: Dequantized's default); set by --dequantization
DEQUANTIZATION: dict[str, str] = {}


def dequantized(base: GenerativeModel, train: pg.data.Dataset, **kwargs) -> Dequantized:
    return Dequantized.from_dataset(train, base=base, **{**DEQUANTIZATION, **kwargs})


def _log_joint(flow: torch.nn.Module, x: Tensor, u: Tensor, alpha: float, levels: int) -> Tensor:
    """``log p(x, u)``: the flow's density of the logit of ``(x + u) / levels`` with its Jacobian."""
    s = alpha + (1 - 2 * alpha) * (x + u) / levels
    y = torch.log(s) - torch.log1p(-s)
    log_det = (math.log(1 - 2 * alpha) - torch.log(s) - torch.log1p(-s)).sum(-1) - x.shape[-1] * math.log(levels)
    return flow().log_prob(y) + log_det


def plain_loop(flow: torch.nn.Module, splits, seed: int, epochs: int, patience: int) -> tuple[float, float, int]:
    """zuko's ``flow`` trained in a plain PyTorch loop; its test NLL (32-draw IW), standard error, epochs."""
    train, val, test = (split.x.reshape(len(split.x), -1).float() for split in splits)
    alpha, levels = DEFAULT_LOGIT_ALPHA, 17
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(flow.parameters(), lr=1e-3)
    best, best_state, waited, ran = math.inf, copy.deepcopy(flow.state_dict()), 0, 0
    for ran in range(1, epochs + 1):  # noqa: B007 - the epochs run are returned
        for batch in torch.randperm(len(train), generator=generator).split(100):
            x = train[batch]
            loss = -_log_joint(flow, x, torch.rand(x.shape, generator=generator), alpha, levels).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            bound = -_log_joint(flow, val, torch.rand(val.shape, generator=generator), alpha, levels).mean().item()
        if bound < best:
            best, best_state, waited = bound, copy.deepcopy(flow.state_dict()), 0
        elif (waited := waited + 1) >= patience:
            break
    flow.load_state_dict(best_state)
    torch.manual_seed(seed)
    with torch.no_grad():
        u = torch.rand(32, *test.shape)
        per_example = torch.logsumexp(_log_joint(flow, test.expand(32, -1, -1), u, alpha, levels), 0) - math.log(32)
    return -per_example.mean().item(), per_example.std().item() / math.sqrt(len(test)), ran


def scored_nll(model: Dequantized, train: pg.data.Dataset, test: pg.data.Dataset) -> float:
    """The 32-draw importance-weighted test NLL: over q(u | x) for variational dequantization (IWAE),
    else over the uniform noise (an importance-weighted ``Dequantized`` of the same base)."""
    if model.dequantization == "variational":
        return pg.log_likelihood(model, test, method="iwae", num_samples=32).nll
    scorer = dequantized(model.base, train, dequantization="importance", num_samples=32)
    return pg.log_likelihood(scorer, test).nll


def step_seconds(models: list[Dequantized], x: Tensor, steps: int) -> list[float]:
    """Median seconds of one training step (the ELBO fit uses, backward, Adam) of each model,
    alternating between the models step by step."""
    optimizers = [torch.optim.Adam(m.parameters(), lr=1e-3) for m in models]
    times: list[list[float]] = [[] for _ in models]
    elbo = Trace_ELBO()
    for m in models:
        m.train()  # as fit's training epochs (a flow starts in eval mode; train mode turns dropout on)
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
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--dequantization", choices=["uniform", "variational"], help="default: Dequantized's")
    args = parser.parse_args()
    if args.dequantization:
        DEQUANTIZATION["dequantization"] = args.dequantization
    torch.set_num_threads(args.threads)
    splits = tuple(pg.load_dataset("digits", s) for s in ("train", "val", "test"))
    train, val, test = splits
    budget = dict(epochs=args.epochs, lr=1e-3, batch_size=100, patience=args.patience, progress=False)
    print(f"digits 17 levels; {args.layers} layers of {args.hidden}; Adam 1e-3, batch 100, patience {args.patience}; "
          f"{args.dequantization or 'default'} dequantization, logit alpha {DEFAULT_LOGIT_ALPHA}; "
          "test NLL in nats (32-draw IW), epochs run")  # fmt: skip
    print(f"{'flow':8} {'seed':>4} {'probgen':>15} {'zuko (harness)':>15} {'zuko (own loop)':>16} {'step ratio':>10}")
    for name in args.flows:
        means = []
        for seed in args.seeds:
            torch.manual_seed(seed)
            timed = [dequantized(b, train) for b in pair(name, args.layers, args.hidden)]
            ours_s, theirs_s = step_seconds(timed, timed[0].validate(train.x), args.timing_steps)
            cells = []
            for index in (0, 1):
                torch.manual_seed(seed)
                model = dequantized(pair(name, args.layers, args.hidden)[index], train)
                result = pg.fit(model, train, val_data=val, seed=seed, **budget)
                torch.manual_seed(seed)
                cells.append((scored_nll(model, train, test), len(result.history)))
            torch.manual_seed(seed)
            zuko_flow = pair(name, args.layers, args.hidden)[1].flow
            own, _, own_epochs = plain_loop(zuko_flow, splits, seed, args.epochs, args.patience)
            cells.append((own, own_epochs))
            means.append([nll for nll, _ in cells])
            shown = [f"{nll:8.2f} ({epochs:3d})" for nll, epochs in cells]
            print(f"{name:8} {seed:4d} {shown[0]:>15} {shown[1]:>15} {shown[2]:>16} {ours_s / theirs_s:9.2f}x",
                  flush=True)  # fmt: skip
        mean = [statistics.mean(column) for column in zip(*means, strict=True)]
        print(f"{name:8} mean {mean[0]:15.2f} {mean[1]:15.2f} {mean[2]:16.2f}   probgen - zuko's own loop: "
              f"{mean[0] - mean[2]:+.2f} nats", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
