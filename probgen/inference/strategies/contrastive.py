"""The ``"contrastive_divergence"`` strategy: CD-k and persistent CD for energy-based models.

Each step asks the model for ``contrastive_divergence_loss(x, k, chains)``: a surrogate whose
gradient is the CD-k estimate of the negative log-likelihood gradient (the free energy of the
data minus that of the negative samples, k Gibbs steps from the data — or, for persistent CD,
from the chains carried over from the previous step), together with the new negative samples.
The history's ``train_loss`` is that surrogate (a free-energy gap, not an NLL); ``val_loss`` is
the held-out NLL in nats, log Z minus the mean log p~(x) (exact or estimated, as the
model's ``log_normalizer`` gives it, with 100 runs).

Strategy options: ``k`` (Gibbs steps, default 1), ``persistent`` (default False) and
``val_every`` (score the validation data every so many epochs, default 1).

References:
    Hinton, "Training Products of Experts by Minimizing Contrastive Divergence" (2002).
    Tieleman, "Training Restricted Boltzmann Machines using Approximations to the Likelihood
    Gradient" (2008) — persistent CD.
"""

from __future__ import annotations

import math
from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor

from probgen._checks import check_int
from probgen.inference.data import DataSource
from probgen.inference.strategies.base import (
    FitOptions,
    FitResult,
    FitStrategy,
    register_strategy,
    require_hooks,
    strategy_settings,
)
from probgen.inference.strategies.closed_form import mean_nll
from probgen.inference.strategies.loop import EpochLoop

__all__ = ["ContrastiveDivergenceStrategy", "CD_OPTIONS"]

CD_OPTIONS = {"k": 1, "persistent": False, "val_every": 1}


def _options(given: dict[str, Any]) -> dict[str, Any]:
    options = strategy_settings(given, CD_OPTIONS, "contrastive divergence")
    check_int("k", options["k"])
    check_int("val_every", options["val_every"])
    return options


@runtime_checkable
class ContrastiveDivergence(Protocol):
    """What a model trained by the ``"contrastive_divergence"`` strategy implements (an RBM)."""

    def contrastive_divergence_loss(self, x: Tensor, k: int, chains: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """A loss whose gradient is the CD-k (or, given persistent ``chains``, PCD-k) estimate,
        and the negative samples."""
        ...


@register_strategy("contrastive_divergence")
class ContrastiveDivergenceStrategy(FitStrategy):
    """CD-k / PCD by minibatches; the best validation epoch (held-out NLL) is kept."""

    def fit(self, model: Any, train: DataSource, val: DataSource | None, options: FitOptions) -> FitResult:
        require_hooks(model, "contrastive_divergence", ContrastiveDivergence)
        cd = _options(options.strategy_options)
        loop = EpochLoop.start(
            model, train, options, "contrastive_divergence", lambda: [{"params": model.parameters()}]
        )
        chains: list[Any] = [None]  # the persistent chains, carried across steps and epochs

        def epoch_fn(epoch: int, generator: torch.Generator) -> dict[str, float]:
            total = 0.0
            for step, (x, _, _) in enumerate(loop.batches(train, generator)):
                start = chains[0] if cd["persistent"] and chains[0] is not None else None
                if start is not None and len(start) != len(x):  # a short last batch
                    start = start[: len(x)] if len(start) > len(x) else None
                loss, negatives = model.contrastive_divergence_loss(x, cd["k"], start)
                total += loop.step(loss, 0, f"epoch {epoch}, step {step}", "contrastive divergence") * len(x)
                if cd["persistent"] and (chains[0] is None or len(negatives) >= len(chains[0])):
                    chains[0] = negatives
            return {"train_loss": total / len(train)}

        def val_fn(source: DataSource) -> float:
            epoch = len(loop.result.history)
            if epoch % cd["val_every"] and epoch != options.epochs - 1:
                return math.inf
            with torch.no_grad():  # -(mean log p~(x) - log Z)
                return mean_nll(model, source, options.batch_size) + model.log_normalizer(100)[0].item()

        return loop.run(train, val, epoch_fn, val_fn)
