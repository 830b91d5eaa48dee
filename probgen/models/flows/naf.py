"""Neural autoregressive flow: monotone sigmoidal networks per coordinate (deep sigmoidal flow).

References:
    Huang, Krueger, Lacoste & Courville, "Neural Autoregressive Flows" (2018), arXiv:1804.00779.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from pyro.distributions.transforms import NeuralAutoregressive
from pyro.nn import AutoRegressiveNN
from torch import Tensor
from torch.distributions import Transform

from probgen._checks import check_int
from probgen.models.flows.base import FLOW_BUDGET, Flow
from probgen.models.registry import register

__all__ = ["NAF", "BisectionNeuralAutoregressive"]


class BisectionNeuralAutoregressive(NeuralAutoregressive):
    """Pyro's :class:`~pyro.distributions.transforms.NeuralAutoregressive` (same parameters),
    evaluated in log space, with an inverse by bisection.

    The forward is ``y = logit(D)``, ``D = sum_j w_j sigmoid(a_j x + b_j)``. Pyro computes ``D``
    and then its logit, so once every ``sigmoid`` saturates (``|a x + b|`` above about 17 in
    float32, 37 in float64: a few standard units from the data after training) ``D`` rounds to
    (a clip below) 1 and ``y`` and ``log |dy/dx|`` stop following ``x``: measured on moons after
    50 epochs, float32's ``log_prob`` on ``[-10, 10]^2`` was off from float64's by up to 95%.
    Here ``log D = logsumexp(log w + log sigmoid(c))`` and ``log (1 - D) = logsumexp(log w +
    log sigmoid(-c))`` (the weights sum to 1), so ``y = log D - log (1 - D)`` and
    ``log |dy/dx| = logsumexp(log a + log w + log sigmoid(c) + log sigmoid(-c)) - log D -
    log (1 - D)`` hold to rounding for every finite ``x``.

    The inverse goes coordinate by coordinate in the autoregressive order, ``iterations``
    halvings of ``[-bracket, bracket]`` each — ``num_dims * iterations`` network passes. Each
    coordinate's output is increasing in it given those before it.

    Example:
        >>> from pyro.nn import AutoRegressiveNN
        >>> t = BisectionNeuralAutoregressive(AutoRegressiveNN(2, [8], param_dims=[4] * 3), hidden_units=4)
        >>> x = torch.tensor([[0.5, -1.0], [300.0, -200.0]])
        >>> y = t(x)
        >>> bool(torch.isfinite(t.log_abs_det_jacobian(x, y)).all())
        True
        >>> bool(torch.allclose(t.inv(y[:1]), x[:1], atol=1e-4))
        True
    """

    def __init__(self, autoregressive_nn: AutoRegressiveNN, *, bracket: float = 100.0, iterations: int = 60, **kwargs):
        if kwargs.get("activation", "sigmoid") != "sigmoid":
            raise ValueError(
                f"activation must be 'sigmoid' (the one evaluated in log space), got {kwargs['activation']!r}"
            )
        super().__init__(autoregressive_nn, **kwargs)
        self.bracket, self.iterations = bracket, iterations
        self._cached_log_det: Tensor | None = None

    def _forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``y`` and ``log |dy/dx|`` summed over the event."""
        a_pre, w_pre, b = self.arn(x)  # each (..., hidden_units, num_dims)
        a = F.softplus(a_pre)
        log_a = torch.log(a + self.eps)  # Pyro's eps, so that unsaturated values match Pyro's
        c = a * x.unsqueeze(-2) + b
        log_w = torch.log_softmax(w_pre, dim=-2)
        up, down = F.logsigmoid(c), F.logsigmoid(-c)
        log_d, log_one_minus_d = torch.logsumexp(log_w + up, -2), torch.logsumexp(log_w + down, -2)
        log_slope = torch.logsumexp(log_a + log_w + up + down, -2) - log_d - log_one_minus_d
        return log_d - log_one_minus_d, log_slope.sum(-1)

    def _call(self, x: Tensor) -> Tensor:
        y, self._cached_log_det = self._forward(x)
        return y

    def log_abs_det_jacobian(self, x: Tensor, y: Tensor) -> Tensor:
        x_old, y_old = self._cached_x_y
        if x is x_old and y is y_old and self._cached_log_det is not None:
            return self._cached_log_det
        return self._forward(x)[1]

    def _inverse(self, y: Tensor) -> Tensor:
        x = torch.zeros_like(y)
        for i in self.arn.permutation.tolist():
            lo, hi = torch.full_like(y[..., i], -self.bracket), torch.full_like(y[..., i], self.bracket)
            for _ in range(self.iterations):
                mid = (lo + hi) / 2
                x[..., i] = mid
                above = self._forward(x)[0][..., i] > y[..., i]
                lo, hi = torch.where(above, lo, mid), torch.where(above, mid, hi)
            x[..., i] = (lo + hi) / 2
        self._call(x)  # leave the log-det cache at the solution
        return x


@register("naf", description="neural autoregressive flow, deep sigmoidal (exact density)", fit_defaults=FLOW_BUDGET)
class NAF(Flow):
    """Neural autoregressive flow: ``z_i = sigma^-1(w(x_<i) . sigmoid(a(x_<i) x_i + b(x_<i)))``,
    a monotone network of ``num_hidden`` sigmoid units per coordinate whose weights a MADE network
    computes; the order reverses between layers.

    Oriented for density: ``log_prob`` is one network pass per layer. Sampling is very slow:
    the transform has no closed-form inverse, so each layer inverts by bisection,
    ``num_dims * 60`` passes per layer (3,840 for 8x8 digits).

    Args:
        event_shape, support, num_layers, hidden_features: see :class:`~probgen.models.flows.Flow`
            (at least 2 dimensions; hidden widths below ``num_dims`` are raised to it).
        num_hidden: sigmoid units of each coordinate's monotone network.

    Example:
        >>> import probgen as pg
        >>> data = pg.load_dataset("moons")
        >>> naf = NAF.from_dataset(data, num_layers=2, hidden_features=(16,), num_hidden=8)
        >>> _ = pg.fit(naf, data, epochs=1, progress=False)
        >>> naf.sample(3).shape
        torch.Size([3, 2])
    """

    def __init__(self, event_shape, support: str = "real", *, num_hidden: int = 16, **kwargs: Any):
        self.num_hidden = check_int("num_hidden", num_hidden)
        super().__init__(event_shape, support, **kwargs)

    def _layers(self) -> list[Transform]:
        d = self.num_dims

        def layer() -> Transform:
            net = AutoRegressiveNN(d, self.made_hidden, param_dims=[self.num_hidden] * 3, permutation=torch.arange(d))
            return BisectionNeuralAutoregressive(net, hidden_units=self.num_hidden).inv

        return self._stacked(layer)

    def _config_kwargs(self) -> dict[str, Any]:
        return {**super()._config_kwargs(), "num_hidden": self.num_hidden}
