"""The ``"svi"`` strategy: stochastic variational inference (or maximum likelihood) by minibatches.

The loss is an objective of :mod:`probgen.inference.objectives` (a Pyro ELBO's loss, or one
equal to it on the same draws), stepped with a torch optimizer over every parameter the model
and guide touch — Pyro's documented pattern for custom objectives — which gives the updates of
``pyro.infer.SVI`` plus learning-rate schedules, gradient clipping, early stopping and
resumable optimizer state. The best epoch's state is kept on the CPU.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import pyro
import pyro.poutine as poutine
import torch
from torch import Tensor

from probgen.inference.data import DataSource
from probgen.inference.objectives import Objective, make_objective
from probgen.inference.strategies.base import (
    FitOptions,
    FitResult,
    FitStrategy,
    NonFiniteLossError,
    model_batches,
    register_strategy,
)
from probgen.progress import progress_bar

__all__ = ["SVIStrategy", "OPTIMIZERS", "diagnose"]

OPTIMIZERS = ("adam", "clipped_adam", "sgd")
ALL_FINITE = "every site's value and log_prob is finite (the loss or its gradient overflowed)"
#: examples given to the model's data-dependent hooks (init_from_data, after_fit)
HOOK_EXAMPLES = 10_000


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


def _make_optimizer(options: FitOptions, params: list[Tensor]) -> torch.optim.Optimizer:
    if options.optimizer in ("adam", "clipped_adam"):
        return torch.optim.Adam(params, lr=options.lr, weight_decay=options.weight_decay)
    if options.optimizer == "sgd":
        return torch.optim.SGD(params, lr=options.lr, momentum=0.9, weight_decay=options.weight_decay)
    raise ValueError(f"unknown optimizer {options.optimizer!r}; expected one of {OPTIMIZERS}")


def cpu_state(model: Any) -> dict[str, Tensor]:
    """A copy of the model's state on the CPU (the best-epoch snapshot)."""
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


@dataclass
class _Run:
    """The state of one SVI run."""

    model: Any
    loss_fn: Objective
    params: list[Tensor]
    optim: torch.optim.Optimizer
    options: FitOptions
    result: FitResult
    best_state: dict[str, Tensor]
    start_epoch: int = 0

    def stop(self, message: str, cause: Exception | None = None) -> None:
        """Restore the last good state and raise, naming the offending site and the checkpoint."""
        self.model.load_state_dict(self.best_state)
        if self.options.checkpoint is not None:
            message += f"; last good checkpoint: {self.options.checkpoint}"
        raise NonFiniteLossError(message) from cause

    def step(self, x: Tensor, y: Tensor | None, where: str) -> float:
        try:
            loss = self.loss_fn(self.model, x, y)
        except ValueError as err:  # a distribution refused non-finite parameters
            site = diagnose(self.model, x, y)
            if site == ALL_FINITE:
                raise
            self.stop(f"loss is not finite at {where}: {site}", err)
        value = loss.item()
        if not math.isfinite(value):
            self.stop(f"loss is {value} at {where}: {diagnose(self.model, x, y)}")
        self.optim.zero_grad(set_to_none=True)
        loss.backward()
        # a non-finite gradient makes a non-finite parameter, which the next loss check names
        if self.options.clip_norm is not None:
            torch.nn.utils.clip_grad_norm_(self.params, self.options.clip_norm)
        self.optim.step()
        return value


def _start(model: Any, train: DataSource, options: FitOptions) -> _Run:
    """Objective, data-dependent start or resumed state, parameters and optimizer."""
    objective = model.default_objective if options.objective is None else options.objective
    loss_fn = make_objective(objective, options.num_samples, model.max_plate_nesting, model.vectorizable)
    result = FitResult(checkpoint=options.checkpoint, strategy="svi")
    resumed = resume_or_start(model, train, options)
    x, y = next(model_batches(model, train, options.batch_size))
    params = _collect_params(model, loss_fn, x, y)
    run = _Run(model, loss_fn, params, _make_optimizer(options, params), options, result, cpu_state(model))
    run.start_epoch = restore_progress(result, run.optim, resumed)
    return run


def resume_or_start(model: Any, train: DataSource, options: FitOptions) -> Any:
    """Load the checkpoint's weights when resuming (returning the checkpoint), else run the
    model's data-dependent start (returning None)."""
    from probgen.checkpoint import load_checkpoint

    if options.resume and options.checkpoint is not None and options.checkpoint.exists():
        resumed = load_checkpoint(options.checkpoint, map_location=str(model.device))
        model.load_state_dict(resumed.model.state_dict())
        return resumed
    if options.init_from_data:
        model.init_from_data(*hook_batch(model, train))
    return None


def restore_progress(result: FitResult, optimizer: torch.optim.Optimizer, resumed: Any) -> int:
    """Optimizer state, history and best epoch from a resumed checkpoint; the epoch to start at."""
    if resumed is None or resumed.optimizer_state is None:
        return 0
    optimizer.load_state_dict(resumed.optimizer_state)
    result.history = list(resumed.extra.get("history", []))
    result.best_loss = float(resumed.extra.get("best_loss", math.inf))
    result.best_epoch = int(resumed.extra.get("epoch", -1))
    return result.best_epoch + 1


def hook_batch(model: Any, source: DataSource) -> tuple[Tensor, Tensor | None]:
    """Up to ``HOOK_EXAMPLES`` validated examples for the model's data-dependent hooks."""
    x, y = source.head(HOOK_EXAMPLES)
    x = model.validate(x, name=source.name)
    return x, model.check_labels(y, len(x))


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


@register_strategy("svi")
class SVIStrategy(FitStrategy):
    """Minibatch SVI with early stopping on validation data and atomic best-epoch checkpoints."""

    def fit(self, model: Any, train: DataSource, val: DataSource | None, options: FitOptions) -> FitResult:
        with model.scaled_to(len(train)), model.parameters_held(), pyro.validation_enabled(options.validate):
            run = _start(model, train, options)
            epochs = range(run.start_epoch, options.epochs)
            bar = progress_bar(epochs, desc=f"fit {model.name}", disable=not options.progress)
            generator = torch.Generator().manual_seed(0 if options.seed is None else options.seed)
            t0 = time.perf_counter()
            for epoch in bar:
                record = self._epoch(run, train, val, epoch, generator)
                bar.set_postfix({k: f"{v:.3f}" for k, v in record.items() if k.endswith("loss")})
                if not self._keep(run, record, epoch, bar):
                    break
            bar.close()
            run.result.seconds = time.perf_counter() - t0
            model.load_state_dict(run.best_state)
            model.after_fit(*hook_batch(model, train))
        return run.result

    def _epoch(self, run: _Run, train: DataSource, val: DataSource | None, epoch: int, generator) -> dict:
        total, options, t0 = 0.0, run.options, time.perf_counter()
        batches = model_batches(run.model, train, options.batch_size, shuffle=True, generator=generator)
        for step, (x, y) in enumerate(batches):
            total += run.step(x, y, f"epoch {epoch}, step {step}") * len(x)
        record = {
            "epoch": epoch,
            "train_loss": total / len(train) ** 2,
            "lr": run.optim.param_groups[0]["lr"],
            "seconds": time.perf_counter() - t0,
        }
        if val is not None:
            record["val_loss"] = mean_loss(run.model, run.loss_fn, val, options.batch_size)
        if options.lr_decay is not None:
            for group in run.optim.param_groups:
                group["lr"] *= options.lr_decay
        run.result.history.append(record)
        return record

    def _keep(self, run: _Run, record: dict, epoch: int, bar: Any) -> bool:
        """Track the best epoch; False when patience has run out.

        With validation data the model ends at (and the checkpoint holds) the epoch of the best
        validation loss. Without it, the training loss is a noisy Monte-Carlo estimate whose
        minimum is no better an epoch than the last: the model ends at (and the checkpoint
        follows) the last epoch, and patience counts epochs without a new lowest training loss.
        """
        from probgen.checkpoint import save

        result, options = run.result, run.options
        validated = "val_loss" in record
        score = record["val_loss"] if validated else record["train_loss"]
        improved = score < result.best_loss
        if improved:
            result.best_loss, result.best_epoch = score, epoch
        if improved or not validated:
            run.best_state = cpu_state(run.model)
            if options.checkpoint is not None:
                extra = {"epoch": epoch, "best_loss": result.best_loss, "history": result.history}
                save(run.model, options.checkpoint, optimizer=run.optim, extra=extra)
        if improved:
            return True
        if options.patience is not None and epoch - result.best_epoch >= options.patience:
            result.stopped_early = True
            if options.progress:
                which = "val" if validated else "train"
                bar.write(
                    f"early stop at epoch {epoch}: no improvement for {options.patience} epochs; "
                    f"best epoch {result.best_epoch} ({which} loss {result.best_loss:.4f})"
                )
            return False
        return True
