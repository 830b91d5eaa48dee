"""``fit``: stochastic variational inference over minibatches.

The loss is a Pyro ELBO's ``differentiable_loss`` (see Pyro's "custom SVI objectives"), stepped
with a torch optimizer over every parameter the model and guide touch, which gives the same
updates as ``pyro.infer.SVI`` plus learning-rate schedules, gradient clipping, early stopping
and resumable optimizer state.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyro
import pyro.poutine as poutine
import torch
from torch import Tensor
from tqdm.auto import tqdm

from probgen._checks import check_int
from probgen.inference._data import as_xy, batches
from probgen.inference.objectives import make_objective

__all__ = ["fit", "FitResult", "NonFiniteLossError", "OPTIMIZERS"]

OPTIMIZERS = ("adam", "clipped_adam", "sgd")


class NonFiniteLossError(ValueError):
    """Training produced a NaN or inf loss; the message names the offending site."""


@dataclass
class FitResult:
    """What :func:`fit` returns: per-epoch history (nats per example) and the best epoch."""

    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = -1
    best_loss: float = math.inf
    stopped_early: bool = False
    seconds: float = 0.0
    checkpoint: Path | None = None

    @property
    def train_loss(self) -> list[float]:
        return [h["train_loss"] for h in self.history]

    @property
    def val_loss(self) -> list[float]:
        return [h["val_loss"] for h in self.history if "val_loss" in h]


def _diagnose(model: Any, x: Tensor, y: Tensor | None) -> str:
    """Name the first parameter or sample site whose value or log-prob is not finite."""
    args = (x,) if y is None else (x, y)
    with torch.no_grad(), pyro.validation_enabled(False):
        guide_trace = poutine.trace(model.guide).get_trace(*args)
        model_trace = poutine.trace(poutine.replay(model.model, trace=guide_trace)).get_trace(*args)
    for name, value in model.named_parameters():
        if not torch.isfinite(value).all():
            return f"parameter {name!r} is not finite"
    for where, trace in (("guide", guide_trace), ("model", model_trace)):
        for name, site in trace.nodes.items():
            if site["type"] == "param" and not torch.isfinite(site["value"]).all():
                return f"param site {name!r} in the {where} is not finite"
            if site["type"] != "sample":
                continue
            if not torch.isfinite(torch.as_tensor(site["value"], dtype=torch.float64)).all():
                return f"sample site {name!r} in the {where} drew a non-finite value"
            with torch.no_grad(), pyro.validation_enabled(False):
                log_prob = site["fn"].log_prob(site["value"])
            if not torch.isfinite(log_prob).all():
                bad = log_prob[~torch.isfinite(log_prob)].flatten()[0].item()
                return f"sample site {name!r} in the {where} has log_prob {bad}"
    return _ALL_FINITE


_ALL_FINITE = "every site's value and log_prob is finite (the loss or its gradient overflowed)"


def _stop(model: Any, best_state: dict, message: str, checkpoint: Path | None, cause: Exception | None = None):
    """Restore the last good state and raise, naming the offending site and the checkpoint."""
    model.load_state_dict(best_state)
    if checkpoint is not None:
        message += f"; last good checkpoint: {checkpoint}"
    raise NonFiniteLossError(message) from cause


def _collect_params(model: Any, loss_fn, x: Tensor, y: Tensor | None) -> list[Tensor]:
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


def _make_optimizer(name: str, params: list[Tensor], lr: float, weight_decay: float):
    if name in ("adam", "clipped_adam"):
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=weight_decay)
    raise ValueError(f"unknown optimizer {name!r}; expected one of {OPTIMIZERS}")


def _check_device(device: str | torch.device) -> torch.device:
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"unknown device {device!r}; expected e.g. 'cpu' or 'cuda'") from err
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {str(device)!r} was requested but torch finds no CUDA device")
    return device


def _check_lr(lr: Any) -> None:
    if isinstance(lr, bool) or not isinstance(lr, int | float) or not lr > 0:
        raise ValueError(f"lr must be a positive number, got {lr!r}")


def _mean_loss(model, loss_fn, x: Tensor, y: Tensor | None, batch_size: int) -> float:
    """Validation loss per example: the held-out NLL for exact-density models (the Bayesian
    ones' posterior predictive), else the objective with minibatches scaled to len(x)."""
    if getattr(model, "density", None) == "exact":
        with torch.no_grad():
            return -sum(model.log_prob(x[i]).sum().item() for i in batches(len(x), batch_size)) / len(x)
    total = 0.0
    with torch.no_grad(), model.scaled_to(len(x)):
        for idx in batches(len(x), batch_size):
            loss = loss_fn(model, x[idx], None if y is None else y[idx])
            total += loss.item() * len(idx)
    return total / len(x) / len(x)


def fit(
    model: Any,
    data: Any,
    *,
    objective: Any = "elbo",
    epochs: int = 100,
    batch_size: int = 128,
    lr: float = 1e-2,
    optimizer: str = "adam",
    clip_norm: float | None = None,
    lr_decay: float | None = None,
    weight_decay: float = 0.0,
    num_particles: int = 1,
    val_data: Any = None,
    patience: int | None = None,
    seed: int | None = 0,
    device: str | torch.device | None = None,
    checkpoint: str | Path | None = None,
    resume: bool = False,
    init_from_data: bool = True,
    nuts: dict[str, Any] | None = None,
    validate: bool = False,
    progress: bool = True,
) -> FitResult:
    """Fit a model by minimising ``objective`` (default: the negative ELBO) with minibatches.

    The minibatch loss is scaled by N / B through the model's ``data`` plate, so it estimates the
    full-data objective; history records it per example (nats).

    Args:
        model: a :class:`~probgen.models.base.GenerativeModel`.
        data: a Dataset, a tensor, or an ``(x, y)`` pair.
        objective: "elbo", "analytic_kl", a ``pyro.infer.ELBO`` instance, or a callable
            ``loss(model, x, y)``.
        epochs, batch_size, lr: the budget.
        optimizer: "adam", "clipped_adam" (Adam with gradient-norm clipping, ``clip_norm``
            defaulting to 10) or "sgd".
        lr_decay: multiply the learning rate by this factor after each epoch.
        val_data: held-out data; the best epoch is chosen on it (on the training loss without it).
        patience: stop after this many epochs without improvement.
        seed: seeds Pyro, torch and the minibatch order.
        device: move model and data there ("cpu", "cuda", ...).
        checkpoint: path where the best model (with optimizer state) is saved atomically;
            a non-finite loss leaves the last good checkpoint in place.
        resume: continue from ``checkpoint`` if it exists (weights, optimizer, epoch).
        init_from_data: call the model's data-dependent initialisation (not when resuming).
        nuts: options for :func:`~probgen.inference.mcmc.run_nuts` when the model is fitted by
            NUTS (``model.fit_strategy == "nuts"``); a model with a closed-form posterior
            (``"closed_form"``) is fitted exactly and the optimiser options are unused.
        validate: keep Pyro's per-step validation of distributions and site shapes on
            (slower; the data themselves are always validated once up front).
        progress: show a progress bar.

    Returns:
        A :class:`FitResult`; the model is left at its best epoch.

    Raises:
        NonFiniteLossError: a loss or gradient became NaN/inf; the message names the site.

    Example:
        >>> import probgen as pg
        >>> data = pg.load_dataset("digits-binary")
        >>> model = pg.models.IndependentBernoulli(64)
        >>> result = pg.fit(model, data, epochs=5, lr=0.05, progress=False)
    """
    from probgen.checkpoint import load_checkpoint, save

    check_int("epochs", epochs)
    check_int("batch_size", batch_size)
    _check_lr(lr)
    if patience is not None:
        check_int("patience", patience)
    if lr_decay is not None and not 0 < lr_decay <= 1:
        raise ValueError(f"lr_decay must be in (0, 1], got {lr_decay!r}")
    if device is not None:
        model.to(_check_device(device))
    x, y = _validated(model, data, "training data")
    val_x = val_y = None
    if val_data is not None:
        val_x, val_y = _validated(model, val_data, "validation data")
    if seed is not None:
        pyro.set_rng_seed(seed)
    checkpoint = Path(checkpoint) if checkpoint is not None else None
    strategy = getattr(model, "fit_strategy", "svi")
    if strategy != "svi":
        if init_from_data:
            model.init_from_data(x, y)
        return _fit_without_svi(model, strategy, x, y, val_x, checkpoint, nuts or {}, progress)
    generator = torch.Generator().manual_seed(0 if seed is None else seed)
    loss_fn = make_objective(
        objective,
        num_particles,
        getattr(model, "max_plate_nesting", None),
        vectorize=getattr(model, "vectorizable", True),
    )
    start_epoch, result = 0, FitResult(checkpoint=checkpoint)

    # the data were validated above: per-step distribution/shape validation only costs time
    with model.scaled_to(len(x)), model.parameters_held(), pyro.validation_enabled(validate):
        resumed = None
        if resume and checkpoint is not None and checkpoint.exists():
            resumed = load_checkpoint(checkpoint, map_location=str(model.device))
            model.load_state_dict(resumed.model.state_dict())
        elif init_from_data:
            model.init_from_data(x, y)
        params = _collect_params(model, loss_fn, x[:batch_size], None if y is None else y[:batch_size])
        optim = _make_optimizer(optimizer, params, lr, weight_decay)
        if optimizer == "clipped_adam" and clip_norm is None:
            clip_norm = 10.0
        if resumed is not None and resumed.optimizer_state is not None:
            optim.load_state_dict(resumed.optimizer_state)
            start_epoch = int(resumed.extra.get("epoch", -1)) + 1
            result.history = list(resumed.extra.get("history", []))
            result.best_loss = float(resumed.extra.get("best_loss", math.inf))
            result.best_epoch = int(resumed.extra.get("epoch", -1))
        scheduler = torch.optim.lr_scheduler.ExponentialLR(optim, lr_decay) if lr_decay else None
        best_state = copy.deepcopy(model.state_dict())
        bar = tqdm(range(start_epoch, epochs), disable=not progress, desc=f"fit {model.name}")
        t0 = time.perf_counter()
        for epoch in bar:
            total = 0.0
            for step, idx in enumerate(batches(len(x), batch_size, generator=generator, shuffle=True)):
                xb, yb = x[idx], None if y is None else y[idx]
                try:
                    loss = loss_fn(model, xb, yb)
                except ValueError as err:  # a distribution refused non-finite parameters
                    where = _diagnose(model, xb, yb)
                    if where == _ALL_FINITE:
                        raise
                    _stop(
                        model, best_state, f"loss is not finite at epoch {epoch}, step {step}: {where}", checkpoint, err
                    )
                value = loss.item()
                if not math.isfinite(value):
                    message = f"loss is {value} at epoch {epoch}, step {step}: {_diagnose(model, xb, yb)}"
                    _stop(model, best_state, message, checkpoint)
                optim.zero_grad(set_to_none=True)
                loss.backward()
                # a non-finite gradient makes a non-finite parameter, which the next step's loss
                # check then names (the best state, saved before it, stays good)
                if clip_norm is not None:
                    torch.nn.utils.clip_grad_norm_(params, clip_norm)
                optim.step()
                total += value * len(idx)
            record = {
                "epoch": epoch,
                "train_loss": total / len(x) / len(x),
                "lr": optim.param_groups[0]["lr"],
            }
            if val_x is not None:
                record["val_loss"] = _mean_loss(model, loss_fn, val_x, val_y, batch_size)
            result.history.append(record)
            if scheduler is not None:
                scheduler.step()
            score = record.get("val_loss", record["train_loss"])
            bar.set_postfix(
                loss=f"{record['train_loss']:.3f}",
                **({"val": f"{score:.3f}"} if val_x is not None else {}),
            )
            if score < result.best_loss:
                result.best_loss, result.best_epoch = score, epoch
                best_state = copy.deepcopy(model.state_dict())
                if checkpoint is not None:
                    extra = {"epoch": epoch, "best_loss": score, "history": result.history}
                    save(model, checkpoint, optimizer=optim, extra=extra)
            elif patience is not None and epoch - result.best_epoch >= patience:
                result.stopped_early = True
                break
        result.seconds = time.perf_counter() - t0
        model.load_state_dict(best_state)
        model.after_fit(x, y)
    return result


def _validated(model: Any, data: Any, name: str) -> tuple[Tensor, Tensor | None]:
    x, y = as_xy(data, name=name)
    x = model.validate(x, name=name)
    if len(x) == 0:
        raise ValueError(f"{name} is empty: expected at least one example")
    if hasattr(model, "check_labels"):
        return x, model.check_labels(y, len(x))
    return x, None if y is None else y.to(model.device)


def _fit_without_svi(
    model: Any,
    strategy: str,
    x: Tensor,
    y: Tensor | None,
    val_x: Tensor | None,
    checkpoint: Path | None,
    nuts: dict[str, Any],
    progress: bool,
) -> FitResult:
    """Models whose posterior is computed, not optimised: closed form or NUTS."""
    from probgen.checkpoint import save

    t0 = time.perf_counter()
    if strategy == "closed_form":
        model.fit_closed_form(x, y)
    elif strategy == "nuts":
        from probgen.inference.mcmc import run_nuts

        run_nuts(model, (x, y), **{"progress": progress, **nuts})
    else:
        raise ValueError(f"unknown fit strategy {strategy!r}")
    seconds = time.perf_counter() - t0
    with torch.no_grad():
        record = {"epoch": 0, "train_loss": -model.log_prob(x).mean().item(), "lr": 0.0}
        if val_x is not None:
            record["val_loss"] = -model.log_prob(val_x).mean().item()
    result = FitResult([record], 0, record.get("val_loss", record["train_loss"]), False, seconds)
    if checkpoint is not None:
        save(model, checkpoint, extra={"epoch": 0, "history": result.history})
        result.checkpoint = checkpoint
    return result
