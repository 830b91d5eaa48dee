"""A small Glow-style image flow: squeezes, actnorm, invertible 1x1 convolutions, affine coupling.

References:
    Kingma & Dhariwal, "Glow: Generative Flow with Invertible 1x1 Convolutions" (2018),
    arXiv:1807.03039.
    Dinh, Sohl-Dickstein & Bengio, "Density estimation using Real NVP" (2017) — squeeze and
    channel-wise coupling.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from pyro.distributions.transforms import AffineCoupling, GeneralizedChannelPermute
from pyro.nn import DenseNN
from torch import Tensor
from torch.distributions import Transform, constraints

from probgen._checks import check_int
from probgen.models.flows.base import FLOW_BUDGET, ActNorm, Flow
from probgen.models.registry import register

__all__ = ["Glow", "Squeeze"]


class Squeeze(Transform):
    """Space to depth: ``(C, H, W) -> (4C, H/2, W/2)``, each 2x2 patch to channels (log-det 0).

    Example:
        >>> Squeeze()(torch.zeros(5, 1, 8, 8)).shape
        torch.Size([5, 4, 4, 4])
    """

    domain = constraints.independent(constraints.real, 3)
    codomain = constraints.independent(constraints.real, 3)
    bijective = True

    def __init__(self) -> None:
        super().__init__(cache_size=1)

    def _call(self, x: Tensor) -> Tensor:
        return F.pixel_unshuffle(x, 2)

    def _inverse(self, y: Tensor) -> Tensor:
        return F.pixel_shuffle(y, 2)

    def log_abs_det_jacobian(self, x: Tensor, y: Tensor) -> Tensor:
        return x.new_zeros(x.shape[:-3])

    def forward_shape(self, shape: torch.Size) -> torch.Size:
        *batch, c, h, w = shape
        return torch.Size((*batch, 4 * c, h // 2, w // 2))

    def inverse_shape(self, shape: torch.Size) -> torch.Size:
        *batch, c, h, w = shape
        return torch.Size((*batch, c // 4, 2 * h, 2 * w))


@register("glow", description="Glow-style image flow for (C, H, W) images (exact density)", fit_defaults=FLOW_BUDGET)
class Glow(Flow):
    """A Glow-style flow of ``(C, H, W)`` images: up to ``num_scales`` levels, each a squeeze then
    ``num_layers`` steps of actnorm, an invertible 1x1 convolution (Pyro's LU-parametrised
    ``GeneralizedChannelPermute``) and an affine coupling of half the channels on the other
    half (an MLP of ``hidden_features`` widths, as the images are small). Every level keeps all
    dimensions (no factoring out).

    Both directions are one network pass per step (coupling and 1x1 convolution invert in
    closed form); the inverse convolution is a triangular solve.

    Args:
        event_shape: ``(C, H, W)``, or flat ``(D,)`` viewed as ``image_shape``.
        support, num_layers, hidden_features: see :class:`~probgen.models.flows.Flow`; ``num_layers``
            steps per level.
        image_shape: the ``(C, H, W)`` the flow sees; default: a 3-D event shape itself, or
            ``(1, sqrt(D), sqrt(D))`` for a flat event of square size (8x8 for digits).
        num_scales: squeeze levels at most (fewer where H or W stops being even).

    Example:
        >>> import probgen as pg
        >>> glow = Glow((1, 8, 8), num_layers=1, hidden_features=(32,))
        >>> glow.sample(2).shape
        torch.Size([2, 1, 8, 8])
    """

    def __init__(
        self,
        event_shape,
        support: str = "real",
        *,
        image_shape: Sequence[int] | None = None,
        num_scales: int = 2,
        **kwargs: Any,
    ) -> None:
        flat = (event_shape,) if isinstance(event_shape, int) else tuple(event_shape)
        side = math.isqrt(math.prod(flat))
        if image_shape is None:
            image_shape = flat if len(flat) == 3 else (1, side, side)
        self.image_shape = tuple(int(d) for d in image_shape)
        if len(self.image_shape) != 3 or math.prod(self.image_shape) != math.prod(flat):
            raise ValueError(f"Glow needs an image_shape (C, H, W) of {math.prod(flat)} values, got {self.image_shape}")
        self.max_levels = check_int("num_scales", num_scales)
        super().__init__(event_shape, support, **kwargs)

    @property
    def shape(self) -> tuple[int, ...]:
        return self.image_shape

    @property
    def levels(self) -> int:
        """Squeeze levels used: ``max_levels`` or fewer, while H and W stay even."""
        c, h, w = self.image_shape
        levels = 0
        while levels < self.max_levels and h % 2 == 0 and w % 2 == 0:
            levels, h, w = levels + 1, h // 2, w // 2
        return levels

    def _layers(self) -> list[Transform]:
        c, h, w = self.image_shape
        layers: list[Transform] = [Squeeze() for _ in range(self.levels)]  # base side: the coarsest level first
        if not self.levels:
            raise ValueError(f"Glow needs an even image height and width, got image_shape {self.image_shape}")
        for level in range(self.levels, 0, -1):
            channels, size = c * 4**level, (h // 2**level) * (w // 2**level)
            split = channels // 2
            for _ in range(self.num_layers):
                net = DenseNN(split * size, list(self.hidden_features), [(channels - split) * size] * 2)
                layers.append(AffineCoupling(split, net, dim=-3))
                layers.append(GeneralizedChannelPermute(channels=channels))
                layers.append(ActNorm((channels, 1, 1), event_dim=3))
            layers.append(Squeeze().inv)
        return layers

    def _config_kwargs(self) -> dict[str, Any]:
        return {**super()._config_kwargs(), "image_shape": list(self.image_shape), "num_scales": self.max_levels}
