"""RealNVP: affine coupling layers with alternating halves.

References:
    Dinh, Sohl-Dickstein & Bengio, "Density estimation using Real NVP" (2017), arXiv:1605.08803.
"""

from __future__ import annotations

from pyro.distributions.transforms import AffineCoupling
from pyro.nn import DenseNN
from torch.distributions import Transform

from probgen.models.flows.base import FLOW_BUDGET, Flow
from probgen.models.registry import register

__all__ = ["RealNVP"]


@register("realnvp", description="RealNVP: affine coupling flow (exact density)", fit_defaults=FLOW_BUDGET)
class RealNVP(Flow):
    """RealNVP: ``num_layers`` affine couplings ``x2 -> exp(s(x1)) * x2 + t(x1)``; the halves
    swap (the order reverses) between layers.

    Both directions are one network pass per layer: density and sampling cost the same.

    Args:
        event_shape, support, num_layers, hidden_features: see :class:`~probgen.models.flows.Flow`
            (at least 2 dimensions).

    Example:
        >>> import probgen as pg
        >>> data = pg.load_dataset("moons")
        >>> flow = RealNVP.from_dataset(data, num_layers=2, hidden_features=(16,))
        >>> _ = pg.fit(flow, data, epochs=1, progress=False)
        >>> flow.log_prob(data.x[:3]).shape
        torch.Size([3])
    """

    def _layers(self) -> list[Transform]:
        d, split = self.num_dims, self.num_dims // 2
        return self._stacked(
            lambda: AffineCoupling(split, DenseNN(split, list(self.hidden_features), [d - split, d - split]))
        )
