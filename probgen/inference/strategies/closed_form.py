"""The ``"closed_form"`` strategy: sufficient statistics summed batch by batch, then one exact
update (conjugate posterior, posterior mode or MLE) — so data larger than memory fit too.

Distributed, each rank sums the statistics of its part of every batch and the ranks' totals
are added (with ``+``, in rank order) before the one update, which every rank then makes."""

from __future__ import annotations

import time
from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor

from probgen.inference.data import DataSource
from probgen.inference.distributed import SINGLE, Shard, all_sum, current_shard, reduce_statistics
from probgen.inference.strategies.base import (
    FitOptions,
    FitResult,
    FitStrategy,
    model_batches,
    register_strategy,
    require_hooks,
)
from probgen.progress import progress_bar

__all__ = ["ClosedFormStrategy", "computed_result", "mean_nll"]


def mean_nll(model: Any, source: DataSource, batch_size: int, shard: Shard = SINGLE) -> float:
    """Negative log-likelihood per example (``-model.log_prob``), batch by batch (each rank
    its share, the sums added over the ranks)."""
    with torch.no_grad():
        batches = model_batches(model, source, batch_size, labels=False, shard=shard)
        total = sum(model.log_prob(x).double().sum().item() for x, _ in batches)
    return -all_sum(torch.tensor([total], dtype=torch.float64), shard).item() / len(source)


@runtime_checkable
class ClosedForm(Protocol):
    """What a model fitted by the ``"closed_form"`` strategy implements (conjugate models,
    posterior modes, MLEs)."""

    def closed_form_statistics(self, x: Tensor, y: Tensor | None) -> dict[str, Any]:
        """Sufficient statistics of one batch; values add (``+``) across batches."""
        ...

    def set_closed_form(self, statistics: dict[str, Any]) -> None:
        """Set the closed-form fit (exact posterior, mode or MLE) from the summed statistics."""
        ...


@register_strategy("closed_form")
class ClosedFormStrategy(FitStrategy):
    """Sum ``model.closed_form_statistics`` over the batches; ``model.set_closed_form`` the total."""

    distributed = True

    def fit(self, model: Any, train: DataSource, val: DataSource | None, options: FitOptions) -> FitResult:
        require_hooks(model, "closed_form", ClosedForm)
        t0 = time.perf_counter()
        shard = current_shard() if options.distributed else SINGLE
        total: dict[str, Any] | None = None
        batches = model_batches(model, train, options.batch_size, shard=shard)
        quiet = not options.progress or not shard.is_main
        with torch.no_grad():
            for x, y in progress_bar(batches, desc=f"closed-form {model.name}", disable=quiet):
                stats = model.closed_form_statistics(x, y)
                total = stats if total is None else {k: total[k] + v for k, v in stats.items()}
            model.set_closed_form(reduce_statistics(total, shard, model.device))
        return computed_result(model, train, val, options, "closed_form", time.perf_counter() - t0)


def computed_result(
    model: Any,
    train: DataSource,
    val: DataSource | None,
    options: FitOptions,
    strategy: str,
    seconds: float,
    train_nll: float | None = None,
) -> FitResult:
    """The result of a fit computed in one go (no epochs): one history record of the training
    (and validation) NLL, and the checkpoint written if one was asked for. ``train_nll``: the
    training NLL where the strategy has it already (else the training data are scored again)."""
    from probgen.checkpoint import save

    shard = current_shard() if options.distributed else SINGLE
    if train_nll is None:
        train_nll = mean_nll(model, train, options.batch_size, shard)
    record = {"epoch": 0, "train_loss": train_nll, "lr": 0.0}
    if val is not None:
        record["val_loss"] = mean_nll(model, val, options.batch_size, shard)
    best = record.get("val_loss", record["train_loss"])
    result = FitResult([record], 0, best, False, seconds, options.checkpoint, strategy)
    if options.checkpoint is not None and shard.is_main:
        save(model, options.checkpoint, extra={"epoch": 0, "history": result.history})
    return result
