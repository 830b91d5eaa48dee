"""The fully visible sigmoid belief network: one logistic (softmax) regression per dimension.

``p(x_d | x_<d) = Bernoulli(sigmoid(b_d + sum_{j<d} W_dj x_j))`` (softmax over k levels, or a
mixture of Gaussians for real data): a single linear layer whose weight is masked to be
strictly lower triangular, so n binary variables take n + n(n - 1)/2 parameters.

References:
    Frey, "Graphical Models for Machine Learning and Digital Communication" (1998).
    Neal, "Connectionist learning of belief networks" (1992), Artificial Intelligence 56.
"""

from __future__ import annotations

import torch
from torch import Tensor

from probgen.models.autoregressive.base import Autoregressive, MaskedLinear
from probgen.models.base import network
from probgen.models.registry import register

__all__ = ["FVBN"]


@register(
    "fvbn",
    description="fully visible sigmoid belief net: a logistic/softmax regression per dimension (exact)",
    fit_defaults={"epochs": 200, "batch_size": 100, "lr": 1e-2, "patience": 20},
    compare_budget={"epochs": 60},
)
class FVBN(Autoregressive):
    """A fully visible sigmoid belief network in the natural (raster) ordering.

    Args:
        event_shape, support: of the data ("binary", "discrete(k)" or "real").
        components: mixture components per dimension for real data.
        output: for k-level data, \"categorical\" or \"logistic\" (a discretized logistic
            mixture of ``components``; see :class:`OutputHead`).

    Example:
        >>> import probgen as pg
        >>> data = pg.load_dataset("digits-binary")
        >>> model = FVBN.from_dataset(data)
        >>> _ = pg.fit(model, data, epochs=2, progress=False)
        >>> model.log_prob(data.x[:3]).shape
        torch.Size([3])
    """

    def __init__(self, event_shape, support: str, *, components: int = 5, output: str = "categorical") -> None:
        super().__init__(event_shape, support, components=components, output=output)
        d, p, e = self.num_dims, self.head.params_per_dim, self.head.input_width
        mask = torch.ones(d, d).tril(-1).repeat_interleave(p, 0).repeat_interleave(e, 1)  # row d*P + k sees x_<d
        self.linear = MaskedLinear(d * e, d * p, mask)

    def _params(self, x: Tensor) -> Tensor:
        out = network(self, "linear")(self.head.inputs(x).flatten(1))
        return out.reshape(len(x), self.num_dims, self.head.params_per_dim)

    def num_free_parameters(self) -> int:
        return int(self.linear.mask.sum()) + self.linear.bias.numel()
