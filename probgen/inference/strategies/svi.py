"""The ``"svi"`` strategy: stochastic variational inference (or maximum likelihood) by minibatches.

The loss is an objective of :mod:`probgen.inference.objectives` (a Pyro ELBO's loss, or one
equal to it on the same draws), stepped with a torch optimizer over every parameter the model
and guide touch — Pyro's documented pattern for custom objectives — which gives the updates of
``pyro.infer.SVI`` plus learning-rate schedules, gradient clipping, early stopping and
exact resume (the epoch loop of :mod:`.loop`, shared with the other minibatch strategies).
"""

from __future__ import annotations

from functools import partial
from typing import Any

import pyro
import pyro.poutine as poutine
import torch
from torch import Tensor

from probgen.inference.data import DataSource
from probgen.inference.objectives import Objective, make_objective
from probgen.inference.strategies.base import FitOptions, FitResult, FitStrategy, model_batches, register_strategy
from probgen.inference.strategies.loop import EpochLoop

__all__ = ["SVIStrategy", "diagnose", "mean_loss"]

ALL_FINITE = "every site's value and log_prob is finite (the loss or its gradient overflowed)"


def _first_bad_site(trace: Any, where: str) -> str | None:
    for name, site in trace.nodes.items():
        if site["type"] == "param" and not torch.isfinite(site["value"]).all():
            return f"param site {name!r} in the {where} is not finite"
        if site["type"] != "sample":
            continue
        if not torch.isfinite(torch.as_tensor(site["value"], dtype=torch.float64)).all():
            return f"sample site {name!r} in the {where} drew a non-finite value"
        log_prob = site["fn"].log_prob(site["value"])
        if not torch.isfinite(log_prob).all():
            bad = log_prob[~torch.isfinite(log_prob)].flatten()[0].item()
            return f"sample site {name!r} in the {where} has log_prob {bad}"
    return None


def diagnose(model: Any, x: Tensor, y: Tensor | None) -> str:
    """Name the first parameter or sample site whose value or log-prob is not finite."""
    for name, value in model.named_parameters():
        if not torch.isfinite(value).all():
            return f"parameter {name!r} is not finite"
    args = (x,) if y is None else (x, y)
    with torch.no_grad(), pyro.validation_enabled(False):
        guide_trace = poutine.trace(model.guide).get_trace(*args)
        model_trace = poutine.trace(poutine.replay(model.model, trace=guide_trace)).get_trace(*args)
        return _first_bad_site(guide_trace, "guide") or _first_bad_site(model_trace, "model") or ALL_FINITE


def _collect_params(model: Any, loss_fn: Objective, x: Tensor, y: Tensor | None) -> list[Tensor]:
    """Every unconstrained parameter the loss touches (creating lazy ones, e.g. AutoGuides')."""
    with poutine.trace(param_only=True) as param_capture:
        loss_fn(model, x, y)
    params = {}
    for site in param_capture.trace.nodes.values():
        value = site["value"]
        value = value.unconstrained() if hasattr(value, "unconstrained") else value
        params.setdefault(id(value), value)
    for p in model.parameters():  # after the call, so lazily created ones are included
        params.setdefault(id(p), p)
    return [p for p in params.values() if p.requires_grad]


def mean_loss(model: Any, loss_fn: Objective, source: DataSource, batch_size: int) -> float:
    """Loss per example on ``source``: the NLL for exact-density models (the Bayesian ones' posterior
    predictive), else the objective with each batch standing for the whole of ``source``."""
    total = 0.0
    with torch.no_grad(), model.scaled_to(len(source)):
        for x, y in model_batches(model, source, batch_size):
            if model.density == "exact":
                total -= model.log_prob(x).sum().item()
            else:
                total += loss_fn(model, x, y).item() * len(x) / len(source)
    return total / len(source)


def _loss(loop: EpochLoop, loss_fn: Objective, x: Tensor, y: Tensor | None, where: str) -> Tensor:
    """The objective on one batch; a distribution refusing non-finite parameters stops the fit
    with the offending site named."""
    try:
        return loss_fn(loop.model, x, y)
    except ValueError as err:
        site = diagnose(loop.model, x, y)
        if site == ALL_FINITE:
            raise
        loop.stop(f"the loss is not finite at {where}: {site}", err)
        raise  # unreachable: stop raises


@register_strategy("svi")
class SVIStrategy(FitStrategy):
    """Minibatch SVI with early stopping on validation data and atomic per-epoch checkpoints."""

    def fit(self, model: Any, train: DataSource, val: DataSource | None, options: FitOptions) -> FitResult:
        objective = model.default_objective if options.objective is None else options.objective
        loss_fn = make_objective(objective, options.num_samples, model.max_plate_nesting, model.vectorizable)

        def groups() -> list[dict[str, Any]]:
            x, y = next(model_batches(model, train, options.batch_size))
            return [{"params": _collect_params(model, loss_fn, x, y)}]

        def epoch_fn(epoch: int, generator: torch.Generator) -> dict[str, float]:
            total = 0.0
            for step, (x, y) in enumerate(loop.batches(train, generator, labels=True)):
                where = f"epoch {epoch}, step {step}"
                loss = _loss(loop, loss_fn, x, y, where)
                total += loop.step(loss, 0, where, "training", partial(diagnose, model, x, y)) * len(x)
            return {"train_loss": total / len(train) ** 2}

        with model.scaled_to(len(train)), model.parameters_held(), pyro.validation_enabled(options.validate):
            loop = EpochLoop.start(model, train, options, "svi", groups)
            return loop.run(train, val, epoch_fn, lambda source: mean_loss(model, loss_fn, source, options.batch_size))
