"""Neural autoregressive flow: monotone sigmoidal networks per coordinate (deep sigmoidal flow).

References:
    Huang, Krueger, Lacoste & Courville, "Neural Autoregressive Flows" (2018), arXiv:1804.00779.
"""

from __future__ import annotations

from typing import Any

import torch
from pyro.distributions.transforms import NeuralAutoregressive
from pyro.nn import AutoRegressiveNN
from torch import Tensor
from torch.distributions import Transform

from probgen._checks import check_int
from probgen.models.flows.base import FLOW_BUDGET, Flow
from probgen.models.registry import register

__all__ = ["NAF", "BisectionNeuralAutoregressive"]


class BisectionNeuralAutoregressive(NeuralAutoregressive):
    """Pyro's :class:`~pyro.distributions.transforms.NeuralAutoregressive` (which has no
    inverse) with an inverse by bisection: coordinate by coordinate in the autoregressive
    order, ``iterations`` halvings of ``[-bracket, bracket]`` each — ``num_dims * iterations``
    network passes. Each coordinate's output is increasing in it given those before it.
    """

    def __init__(self, autoregressive_nn: AutoRegressiveNN, *, bracket: float = 100.0, iterations: int = 60, **kwargs):
        super().__init__(autoregressive_nn, **kwargs)
        self.bracket, self.iterations = bracket, iterations

    def _inverse(self, y: Tensor) -> Tensor:
        x = torch.zeros_like(y)
        for i in self.arn.permutation.tolist():
            lo, hi = torch.full_like(y[..., i], -self.bracket), torch.full_like(y[..., i], self.bracket)
            for _ in range(self.iterations):
                mid = (lo + hi) / 2
                x[..., i] = mid
                above = self._call(x)[..., i] > y[..., i]
                lo, hi = torch.where(above, lo, mid), torch.where(above, mid, hi)
            x[..., i] = (lo + hi) / 2
        self._call(x)  # leave the caches log_abs_det_jacobian reads at the solution
        return x


@register("naf", description="neural autoregressive flow, deep sigmoidal (exact density)", fit_defaults=FLOW_BUDGET)
class NAF(Flow):
    """Neural autoregressive flow: ``z_i = sigma^-1(w(x_<i) . sigmoid(a(x_<i) x_i + b(x_<i)))``,
    a monotone network of ``width`` sigmoid units per coordinate whose weights a MADE network
    computes; the order reverses between layers.

    Oriented for density: ``log_prob`` is one network pass per layer. Sampling is very slow:
    the transform has no closed-form inverse, so each layer inverts by bisection,
    ``num_dims * 60`` passes per layer (3,840 for 8x8 digits).

    Args:
        event_shape, support, num_layers, hidden: see :class:`~probgen.models.flows.Flow`
            (at least 2 dimensions; hidden widths below ``num_dims`` are raised to it).
        width: sigmoid units of each coordinate's monotone network.

    Example:
        >>> import probgen as pg
        >>> data = pg.load_dataset("moons")
        >>> naf = NAF.from_dataset(data, num_layers=2, hidden=(16,), width=8)
        >>> _ = pg.fit(naf, data, epochs=1, progress=False)
        >>> naf.sample(3).shape
        torch.Size([3, 2])
    """

    def __init__(self, event_shape, support: str = "real", *, width: int = 16, **kwargs: Any):
        self.width = check_int("width", width)
        super().__init__(event_shape, support, **kwargs)

    def _layers(self) -> list[Transform]:
        d = self.num_dims

        def layer() -> Transform:
            net = AutoRegressiveNN(d, self.made_hidden, param_dims=[self.width] * 3, permutation=torch.arange(d))
            return BisectionNeuralAutoregressive(net, hidden_units=self.width).inv

        return self._stacked(layer)

    def _config_kwargs(self) -> dict[str, Any]:
        return {**super()._config_kwargs(), "width": self.width}
