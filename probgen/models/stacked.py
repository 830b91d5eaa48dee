"""Stacking: a mixture of fitted models whose weights are fitted on held-out data.

``log p(x) = log sum_k w_k p_k(x)``. The components are trained first, each on the training
data; the weights ``w`` (a softmax of K logits, the only parameters ``probgen.fit`` trains here:
the stack holds copies of the components, their parameters frozen)
are then the maximum-likelihood mixture weights on data the components did not see — validation
data. On the components' own training data the most overfitted component would take all the
weight. The components stay fixed and in eval mode (no dropout) while the weights are fitted.
``probgen.fit`` fits them by EM on the components' log-likelihoods, computed once (the
``"mixture_weights"`` strategy); the Pyro program, ``pyro.factor`` of the mixture's log-density,
trains the same logits under plain ``pyro.infer.SVI``.

A mixture of normalized densities is normalized. So a stack of exact densities is an exact
density, and one with an ``"estimate"`` component is an estimate. Components that only bound
their likelihood (VAEs, dequantized flows), unnormalized and implicit models are refused: a mixture
of bounds is not a bound of the mixture's own likelihood.

Components may see the data in different shapes of the same size (a PixelCNN's 1 x 8 x 8 images,
a MADE's 64-vectors): each gets ``x`` reshaped to its own ``event_shape``.

To use all the data at the end, as scikit-learn's ``StackingClassifier`` refits its estimators:
refit each component on training and validation data together (for the epochs its first fit
took to its best validation loss), stack the refitted models, and give them the weights fitted
above with ``set_weights(stack.weights)`` (``benchmarks/frontier.py``'s stack does this).

References:
    Smyth & Wolpert, "Linearly Combining Density Estimators via Stacking" (1999), Machine
    Learning 36, 59-83.
"""

from __future__ import annotations

import copy
import math
import warnings
from collections.abc import Sequence
from typing import Any

import pyro
import pyro.distributions as dist
import torch
from pyro import poutine
from pyro.nn import pyro_method
from torch import Tensor, nn

from probgen.models.base import GenerativeModel, data_plate, evaluating, is_trained, network
from probgen.models.registry import model_class, register

__all__ = ["Stacked"]

#: the component densities a stack accepts (a mixture of them is a density of the same kind)
_STACKABLE = ("exact", "estimate")


class _Logits(nn.Module):
    """The K logits of the mixture weights (a network of its own, as the Pyro program fetches it)."""

    def __init__(self, k: int, dtype: torch.dtype) -> None:
        super().__init__()
        self.logits = nn.Parameter(torch.zeros(k, dtype=dtype))


@register(
    "stacked",
    description="a mixture of fitted models, its weights fitted on held-out data (Smyth & Wolpert)",
    fit_defaults={"epochs": 1, "batch_size": 1000},  # one pass over the data, then EM on the table
    in_compare=False,  # it mixes models fitted before it
)
class Stacked(GenerativeModel):
    """A mixture ``sum_k w_k p_k(x)`` of fitted models, ``w`` fitted by ``probgen.fit`` on held-out data.

    Args:
        event_shape, support: of the data (every component has the same support and an event
            shape of the same size).
        models: the fitted components (or their configs, as a saved stack holds them), each with
            an exact density or an estimate of it. The stack holds frozen copies. Default: the
            independent baseline of the support (a stack of one).

    Example:
        >>> import probgen as pg
        >>> train, val = pg.load_dataset("digits-binary", "train"), pg.load_dataset("digits-binary", "val")
        >>> parts = [pg.models.FVBN.from_dataset(train), pg.models.IndependentBernoulli.from_dataset(train)]
        >>> for part in parts:
        ...     _ = pg.fit(part, train, epochs=2, progress=False)
        >>> stack = Stacked.from_dataset(train, models=parts)
        >>> _ = pg.fit(stack, val, progress=False)  # the weights, by EM on held-out data
        >>> stack.weights.shape, round(float(stack.weights.sum()), 6)
        (torch.Size([2]), 1.0)
    """

    vectorizable = False

    def __init__(
        self, event_shape, support: str, *, models: Sequence[GenerativeModel | dict[str, Any]] | None = None
    ) -> None:
        super().__init__(event_shape, support)
        default = models is None
        if default:  # a stack of one to start from, as Dequantized's default base
            from probgen.models.factorized import independent

            models = [independent(self.event_shape, self.support)]
        built = [model_class(c.get("name", "")).from_config(c) if isinstance(c, dict) else c for c in models]
        if not built:
            raise ValueError("models must name at least one fitted model; got none")
        for k, c in enumerate(built):
            if not isinstance(c, GenerativeModel):
                raise TypeError(f"models[{k}] must be a probgen model or its config, got {type(c).__name__}")
            if c.conditional or c.density not in _STACKABLE:
                kind = "a conditional density" if c.conditional else f"density {c.density!r}"
                raise ValueError(f"models[{k}] ({c.name}) has {kind}; a stack needs exact densities or estimates")
            if c.support != self.support or c.num_dims != self.num_dims:
                raise ValueError(
                    f"models[{k}] ({c.name}) models {c.num_dims} values of support {c.support!r}; "
                    f"the stack's data have {self.num_dims} of {self.support!r}"
                )
        unfitted = [
            f"models[{k}] ({c.name})"
            for k, (given, c) in enumerate(zip(models, built, strict=True))
            if not isinstance(given, dict) and not is_trained(c)  # a config is loaded with its weights
        ]
        if unfitted and not default:
            warnings.warn(
                f"{', '.join(unfitted)}: never fitted; a stack mixes fitted models (fit each on training data first)",
                UserWarning,
                stacklevel=3,  # past GenerativeModel's metaclass: the caller's line
            )
        # copies, held fixed: the caller's own models stay trainable and untouched
        self.components = nn.ModuleList(copy.deepcopy(c) for c in built)
        self.components.requires_grad_(False)
        self.mixture = _Logits(len(built), built[0].dtype)

    @property
    def density(self) -> str:
        return "exact" if all(c.density == "exact" for c in self.components) else "estimate"

    @property
    def fit_strategy(self) -> str:
        return "mixture_weights"

    def set_weights(self, weights: Tensor) -> None:
        """Set the mixture weights (``[K]``, non-negative, summing to 1); a zero weight is kept
        as a logit of -1e4 relative to the largest, so that ``log_prob`` stays finite. The stack
        counts as fitted after (its weights are chosen, e.g. fitted on another stack of the same
        components' held-out data): scoring it does not warn of initial parameters."""
        if weights.shape != (len(self.components),) or (weights < 0).any():
            raise ValueError(f"weights must be {len(self.components)} non-negative numbers, got {weights.tolist()}")
        with torch.no_grad():
            log_w = weights.double().log()
            self.mixture.logits.copy_(torch.clamp(log_w - log_w.max(), min=-1e4).to(self.mixture.logits.dtype))
        self.fitted.fill_(True)  # the stack's own flag only: its components say for themselves

    @property
    def weights(self) -> Tensor:
        """The mixture weights, shape ``[K]`` (summing to 1)."""
        return torch.softmax(self.mixture.logits.detach(), 0)

    def component_log_probs(self, x: Tensor) -> Tensor:
        """``log p_k(x)`` of every example and component, shape ``[N, K]``: the components held
        fixed (no gradient, eval mode, their Pyro sites hidden from the stack's trace)."""
        columns = []
        with torch.no_grad(), poutine.block():
            for c in self.components:
                with evaluating(c):
                    columns.append(c.log_prob(x.reshape(len(x), *c.event_shape)).to(self.dtype))
        return torch.stack(columns, -1)

    def _log_mixture(self, x: Tensor) -> Tensor:
        log_weights = torch.log_softmax(network(self, "mixture").logits, 0)
        return torch.logsumexp(log_weights + self.component_log_probs(x), -1)

    @pyro_method
    def model(self, x: Tensor, y: Tensor | None = None) -> None:
        with data_plate(self, x):
            pyro.factor("x", self._log_mixture(x))

    def log_prob(self, x: Tensor) -> Tensor:
        return self._log_mixture(self.validate(x))

    def sample(self, n: int) -> Tensor:
        """``n`` draws: a component for each by the weights, then a draw of that component."""
        n = self._check_n(n)
        which = dist.Categorical(self.weights).sample((n,))
        out = torch.empty(n, *self.event_shape, dtype=self.dtype, device=self.device)
        for k, c in enumerate(self.components):
            chosen = (which == k).nonzero().squeeze(-1)
            if len(chosen):
                with torch.no_grad(), evaluating(c):
                    out[chosen] = c.sample(len(chosen)).reshape(len(chosen), *self.event_shape).to(out.dtype)
        return out

    def num_free_parameters(self) -> int:
        """The weights' K - 1 (the components were fitted apart)."""
        return len(self.components) - 1

    def _config_kwargs(self) -> dict[str, Any]:
        return {"models": [c.config for c in self.components]}

    def extra_repr(self) -> str:
        names = ", ".join(c.name for c in self.components)
        return f"{super().extra_repr()}, models=[{names}], log K={math.log(len(self.components)):.3f}"
