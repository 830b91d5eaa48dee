"""The ``"svi"`` strategy: stochastic variational inference (or maximum likelihood) by minibatches.

The loss is an objective of :mod:`probgen.inference.objectives` (a Pyro ELBO's loss, or one
equal to it on the same draws), stepped with a torch optimizer over every parameter the model
and guide touch — Pyro's documented pattern for custom objectives — which gives the updates of
``pyro.infer.SVI`` plus learning-rate schedules, gradient clipping, early stopping and
exact resume (the epoch loop of :mod:`.loop`, shared with the other minibatch strategies).

Distributed (``fit(..., distributed=True)``): the objective is wrapped in an
:class:`~probgen.inference.distributed.ObjectiveModule` inside ``DistributedDataParallel``;
each rank computes the weighted loss of its part of the global batch (scaled to the global data
size N by the model's data plate), and the averaged gradients are those of the global batch.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import pyro
import pyro.poutine as poutine
import torch
from torch import Tensor

from probgen.inference.data import DataSource
from probgen.inference.distributed import SINGLE, ObjectiveModule, Shard, all_sum, wrap_data_parallel
from probgen.inference.objectives import Objective, make_objective
from probgen.inference.strategies.base import (
    FitOptions,
    FitResult,
    FitStrategy,
    model_batches,
    register_strategy,
)
from probgen.inference.strategies.loop import EpochLoop, shard_of
from probgen.models.base import parameters_held, scaled_to

__all__ = ["SVI_DEFAULTS", "SVIStrategy", "diagnose", "mean_loss"]

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


def _collect_params(model: Any, loss_fn: Objective, x: Tensor, y: Tensor | None) -> tuple[list[Tensor], Tensor]:
    """Every unconstrained parameter the loss touches (creating lazy ones, e.g. AutoGuides', on
    the data's device and dtype), and that loss."""
    with poutine.trace(param_only=True) as param_capture:
        loss = loss_fn(model, x, y)
    params = {}
    for site in param_capture.trace.nodes.values():
        value = site["value"]
        value = value.unconstrained() if hasattr(value, "unconstrained") else value
        params.setdefault(id(value), value)
    for p in model.parameters():  # after the call, so lazily created ones are included
        params.setdefault(id(p), p)
    return [p for p in params.values() if p.requires_grad], loss


def _data_parallel(module: ObjectiveModule, params: list[Tensor], probe: Tensor) -> torch.nn.Module:
    """``module`` in DistributedDataParallel, told whether some parameters get no gradient
    from the loss (found on the probe loss), which DDP must then look for in every step."""
    owned = {id(p) for p in module.parameters()}
    outside = [p for p in params if id(p) not in owned]
    if outside:
        raise ValueError(
            f"a distributed fit averages the gradients of the model's own parameters; {len(outside)} parameter(s) "
            "live only in Pyro's param store: expected them as PyroParams or in PyroModule submodules"
        )
    grads = torch.autograd.grad(probe, params, allow_unused=True) if probe.requires_grad else [None] * len(params)
    return wrap_data_parallel(module, params[0].device, any(g is None for g in grads))


def mean_loss(model: Any, loss_fn: Objective, source: DataSource, batch_size: int, shard: Shard = SINGLE) -> float:
    """Loss per example on ``source``: the NLL for exact-density models (the Bayesian ones' posterior
    predictive), else the objective with each batch standing for the whole of ``source``
    (each rank scoring its share, the sums added over the ranks)."""
    total = 0.0
    with torch.no_grad(), scaled_to(model, len(source)):
        for x, y in model_batches(model, source, batch_size, shard=shard):
            if model.density == "exact":
                total -= model.log_prob(x).sum().item()
            else:
                total += loss_fn(model, x, y).item() * len(x) / len(source)
    return all_sum(torch.tensor([total], dtype=torch.float64), shard).item() / len(source)


def _loss(
    loop: EpochLoop, objective: torch.nn.Module, x: Tensor, y: Tensor | None, weight: float, where: str
) -> Tensor:
    """The (weighted) objective on one batch; a distribution refusing non-finite parameters
    stops the fit with the offending site named."""
    try:
        return objective(x, y, weight)
    except ValueError as err:
        site = diagnose(loop.model, x, y)
        if site == ALL_FINITE:
            raise
        loop.stop(f"the loss is not finite at {where}: {site}", err)
        raise  # unreachable: stop raises


def _epoch(loop: EpochLoop, step_loss: list[torch.nn.Module], train: DataSource, epoch: int, generator: Any) -> dict:
    """One pass over the training data; ``train_loss`` per example (of the global batches)."""
    total, shard, batch_size = 0.0, loop.shard, loop.options.batch_size
    for step, (x, y, weight) in enumerate(loop.batches(train, generator, labels=True)):
        where = f"epoch {epoch}, step {step}"
        loss = _loss(loop, step_loss[0], x, y, weight, where)
        value = loop.step(loss, 0, where, "training", partial(diagnose, loop.model, x, y))
        total += value * (_global_size(step, batch_size, len(train)) if shard.active else len(x))
    return {"train_loss": total / len(train) ** 2}


def _global_size(step: int, batch_size: int, num_examples: int) -> int:
    """The size of global batch ``step`` of stored data (all full but the last)."""
    return min(batch_size, num_examples - step * batch_size)


#: the objectives of a model that suggests none (``default_fit_options``): training minimises
#: the ELBO; validation data are scored by the training objective (None)
SVI_DEFAULTS: dict[str, Any] = {"objective": "elbo", "val_objective": None}


def _declared(model: Any, name: str) -> Any:
    """The model's suggested fit option ``name``, else the SVI default."""
    return model.default_fit_options().get(name, SVI_DEFAULTS[name])


def _validation_objective(model: Any, objective: Any, options: FitOptions) -> Objective | None:
    """The objective scoring validation data when the options name one apart from training's."""
    named = options.val_objective if options.val_objective is not None else _declared(model, "val_objective")
    if named is None and options.val_num_samples is None:
        return None
    val_objective = objective if named is None else named
    num_samples = options.num_samples if options.val_num_samples is None else options.val_num_samples
    return make_objective(val_objective, num_samples, model.max_plate_nesting, model.vectorizable)


@register_strategy("svi")
class SVIStrategy(FitStrategy):
    """Minibatch SVI with early stopping on validation data and atomic per-epoch checkpoints."""

    distributed = True
    mixed_precision = True

    def fit(self, model: Any, train: DataSource, val: DataSource | None, options: FitOptions) -> FitResult:
        objective = _declared(model, "objective") if options.objective is None else options.objective
        loss_fn = make_objective(objective, options.num_samples, model.max_plate_nesting, model.vectorizable)
        shard = shard_of(options)
        step_loss: list[torch.nn.Module] = [ObjectiveModule(model, loss_fn, options.precision)]

        def groups() -> list[dict[str, Any]]:
            x, y = next(model_batches(model, train, options.batch_size))
            params, probe = _collect_params(model, loss_fn, x, y)
            if shard.active:  # after the lazy parameters exist; rank 0's are broadcast
                step_loss[0] = _data_parallel(step_loss[0], params, probe)
            return [{"params": params}]

        val_loss_fn = _validation_objective(model, objective, options) or loss_fn

        def val_fn(source: DataSource) -> float:
            return mean_loss(model, val_loss_fn, source, options.batch_size, shard)

        with scaled_to(model, len(train)), parameters_held(model), pyro.validation_enabled(options.validate):
            loop = EpochLoop.start(model, train, options, "svi", groups)
            return loop.run(train, val, partial(_epoch, loop, step_loss, train), val_fn)
