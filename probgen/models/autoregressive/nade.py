"""NADE: the neural autoregressive distribution estimator, weights shared across conditionals.

``h_d = sigmoid(c + W[:, <d] x_<d)``, ``p(x_d | x_<d)`` from ``V_d h_d + b_d``. The hidden
pre-activation is a running sum, ``a_{d+1} = a_d + W[:, d] x_d``, so the density of all D
conditionals costs O(DH) (an exclusive cumulative sum) and sampling keeps the running sum,
O(DH) in all instead of O(D^2 H) for recomputation.

References:
    Larochelle & Murray, "The Neural Autoregressive Distribution Estimator" (2011), AISTATS,
    JMLR W&CP 15:29-37.
    Uria, Côté, Gregor, Murray & Larochelle, "Neural Autoregressive Distribution Estimation"
    (2016), JMLR 17(205).
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from probgen._checks import check_int
from probgen.models.autoregressive.base import Autoregressive
from probgen.models.base import network
from probgen.models.registry import register

__all__ = ["NADE", "NADENet"]


class NADENet(nn.Module):
    """NADE's weights: ``W [H, D, E]`` (E inputs per dimension), ``c [H]``, ``V [D, P, H]``, ``b [D, P]``."""

    def __init__(self, num_dims: int, hidden: int, params_per_dim: int, input_width: int = 1) -> None:
        super().__init__()
        self.W = nn.Parameter(torch.randn(hidden, num_dims, input_width) / num_dims**0.5)
        self.c = nn.Parameter(torch.zeros(hidden))
        self.V = nn.Parameter(torch.randn(num_dims, params_per_dim, hidden) / hidden**0.5)
        self.b = nn.Parameter(torch.zeros(num_dims, params_per_dim))

    def forward(self, u: Tensor) -> Tensor:
        """All conditionals' parameters ``[N, D, P]`` from inputs ``u [N, D, E]``, in O(NDEH)."""
        contributions = F.pad(torch.einsum("nde,hde->ndh", u[:, :-1], self.W[:, :-1]), (0, 0, 1, 0))
        a = self.c + contributions.cumsum(1)  # [N, D, H], row d sums x_<d only
        return torch.einsum("ndh,dph->ndp", torch.sigmoid(a), self.V) + self.b

    def output(self, a: Tensor, d: int) -> Tensor:
        return torch.sigmoid(a) @ self.V[d].T + self.b[d]


@register(
    "nade",
    description="NADE: shared-weight autoregressive network, O(DH) density and sampling (exact)",
    fit_defaults={"epochs": 200, "batch_size": 100, "lr": 3e-3, "patience": 20},
    compare_budget={"epochs": 60},
)
class NADE(Autoregressive):
    """NADE in the natural (raster) ordering.

    Args:
        event_shape, support: of the data ("binary", "discrete(k)" or "real").
        num_hidden: H, the hidden units shared by all conditionals.
        components: mixture components per dimension for real data.
        output: for k-level data, \"categorical\" or \"logistic\" (a discretized logistic
            mixture of ``components``; see :class:`OutputHead`).

    Example:
        >>> import probgen as pg
        >>> data = pg.load_dataset("digits-binary")
        >>> model = NADE.from_dataset(data, num_hidden=50)
        >>> _ = pg.fit(model, data, epochs=2, progress=False)
        >>> model.sample(4).shape
        torch.Size([4, 64])
    """

    def __init__(
        self, event_shape, support: str, *, num_hidden: int = 100, components: int = 5, output: str = "categorical"
    ) -> None:
        super().__init__(event_shape, support, components=components, output=output)
        self.num_hidden = check_int("num_hidden", num_hidden)
        self.nade = NADENet(self.num_dims, self.num_hidden, self.head.params_per_dim, self.head.input_width)

    def _params(self, x: Tensor) -> Tensor:
        return network(self, "nade")(self.head.inputs(x))

    def _conditionals(self, x: Tensor, start: int) -> Iterator[tuple[int, Tensor]]:
        """The running pre-activation: O(H) per step after an O(start * H) prefix."""
        net = self.nade
        a = net.c + self.head.inputs(x[:, :start]).flatten(1) @ net.W[:, :start].flatten(1).T
        for d in range(start, self.num_dims):
            yield d, net.output(a, d)
            a = a + self.head.inputs(x[:, d]) @ net.W[:, d].T

    def _config_kwargs(self) -> dict:
        return {**super()._config_kwargs(), "num_hidden": self.num_hidden}
