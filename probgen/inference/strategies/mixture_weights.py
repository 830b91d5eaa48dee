"""The ``"mixture_weights"`` strategy: the maximum-likelihood weights of a mixture whose components
are fixed, by EM — the components' log-likelihoods of the data computed once, batch by batch,
then EM steps on that table until the log-likelihood stops rising.

With the components fixed the log-likelihood is concave in the weights, so EM (each step
``w_k <- mean_n r_nk``, the responsibilities ``r_nk`` proportional to ``w_k p_k(x_n)``) rises to
the global maximum from the uniform start, and the components, which may be large networks, are
evaluated once instead of once per step.

References:
    Dempster, Laird & Rubin, "Maximum Likelihood from Incomplete Data via the EM Algorithm" (1977).
    Smyth & Wolpert, "Linearly Combining Density Estimators via Stacking" (1999).
"""

from __future__ import annotations

import math
import time
from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor

from probgen.inference.data import DataSource
from probgen.inference.strategies.base import (
    FitOptions,
    FitResult,
    FitStrategy,
    model_batches,
    register_strategy,
    require_hooks,
)
from probgen.inference.strategies.closed_form import computed_result

__all__ = ["MixtureWeightsStrategy", "em_weights"]

#: EM stops when a step raises the mean log-likelihood by less than this (nats per example)
TOLERANCE = 1e-12
MAX_STEPS = 100_000


@runtime_checkable
class MixtureOfFixed(Protocol):
    """What a model fitted by the ``"mixture_weights"`` strategy implements (:class:`~probgen.models.Stacked`)."""

    def component_log_probs(self, x: Tensor) -> Tensor:
        """``log p_k(x)`` of each example and fixed component, shape ``[N, K]``."""
        ...

    def set_weights(self, weights: Tensor) -> None:
        """Set the mixture weights (``[K]``, summing to 1)."""
        ...


def em_weights(log_probs: Tensor, tolerance: float = TOLERANCE, max_steps: int = MAX_STEPS) -> Tensor:
    """The maximum-likelihood weights of a mixture of fixed components, from their log-likelihoods
    ``log_probs`` (``[N, K]``), by EM from uniform weights (float64).

    Example:
        >>> import torch
        >>> table = torch.tensor([[0.0, -10.0], [-10.0, 0.0], [0.0, -10.0], [0.0, -10.0]])
        >>> em_weights(table).round(decimals=3).tolist()  # three of the four examples prefer the first
        [0.75, 0.25]
    """
    table = log_probs.double()
    n, k = table.shape
    log_w = torch.full((k,), -math.log(k), dtype=torch.float64)
    previous = -math.inf
    for _ in range(max_steps):
        joint = table + log_w
        log_p = torch.logsumexp(joint, 1, keepdim=True)  # each example's log-likelihood
        log_w = torch.logsumexp(joint - log_p, 0) - math.log(n)  # the mean responsibilities
        current = log_p.mean().item()
        if current - previous < tolerance:
            break
        previous = current
    return log_w.exp()


@register_strategy("mixture_weights")
class MixtureWeightsStrategy(FitStrategy):
    """The components' log-likelihoods of the training data, then :func:`em_weights` on them."""

    def fit(self, model: Any, train: DataSource, val: DataSource | None, options: FitOptions) -> FitResult:
        require_hooks(model, "mixture_weights", MixtureOfFixed)
        t0 = time.perf_counter()
        with torch.no_grad():
            batches = model_batches(model, train, options.batch_size, labels=False)
            table = torch.cat([model.component_log_probs(x).double() for x, _ in batches])
            weights = em_weights(table)
            model.set_weights(weights)
        # the training NLL from the same table: the components, maybe large networks, are not run again
        train_nll = -torch.logsumexp(table + weights.log(), 1).mean().item()
        return computed_result(model, train, val, options, "mixture_weights", time.perf_counter() - t0, train_nll)
