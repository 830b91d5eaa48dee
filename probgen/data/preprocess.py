"""Preprocessing that keeps likelihoods honest: binarization, dequantization, logit transform."""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["binarize", "dequantize", "logit_transform", "discrete_log_prob_offset"]


def binarize(x: Tensor, threshold: float | None = 0.5, *, generator: torch.Generator | None = None) -> Tensor:
    """Binarize data in [0, 1] by a threshold (``x >= threshold``) or stochastically.

    With ``threshold=None`` each value is a Bernoulli draw with probability ``x``
    (the "dynamically binarized" MNIST protocol).
    """
    if x.numel() and (x.min() < 0 or x.max() > 1):
        raise ValueError(f"binarize expects values in [0, 1], got range [{x.min().item()}, {x.max().item()}]")
    if threshold is None:
        return torch.bernoulli(x, generator=generator)
    return (x >= threshold).to(x.dtype)


def dequantize(x: Tensor, num_levels: int, *, generator: torch.Generator | None = None) -> Tensor:
    """Uniform dequantization of integer levels ``0..num_levels-1`` to ``[0, 1)``.

    Returns ``(x + u) / num_levels`` with ``u ~ U[0, 1)``. A density ``p`` on the result gives
    ``log P(x) >= E_u[log p((x+u)/k)] - D log k`` on the discrete scale (Theis et al., 2016).
    """
    if num_levels < 2:
        raise ValueError(f"num_levels must be >= 2, got {num_levels}")
    if x.numel() and (x.min() < 0 or x.max() > num_levels - 1 or (x != x.round()).any()):
        raise ValueError(f"dequantize expects integers in 0..{num_levels - 1}")
    u = torch.rand(x.shape, generator=generator, dtype=x.dtype, device=x.device)
    return (x + u) / num_levels


def discrete_log_prob_offset(num_dims: int, num_levels: int) -> float:
    """The ``-D log k`` that turns a density on ``[0,1)^D`` into a log-probability of levels."""
    return -num_dims * math.log(num_levels)


def logit_transform(x: Tensor, alpha: float = 1e-6) -> tuple[Tensor, Tensor]:
    """Map ``x`` in ``[0, 1]`` to ``logit(alpha + (1 - 2 alpha) x)``; return it and ``log|dy/dx|``.

    The log-Jacobian is summed over all but the first dimension, so a density ``q`` on the
    output gives ``log p(x) = log q(y) + logdet``.

    References:
        Dinh et al., "Density estimation using Real NVP" (2017), arXiv:1605.08803, section 4.1.
    """
    if not 0 <= alpha < 0.5:
        raise ValueError(f"alpha must be in [0, 0.5), got {alpha}")
    if x.numel() and (x.min() < 0 or x.max() > 1):
        raise ValueError("logit_transform expects values in [0, 1]")
    s = alpha + (1 - 2 * alpha) * x
    y = torch.log(s) - torch.log1p(-s)
    log_det = math.log(1 - 2 * alpha) - torch.log(s) - torch.log1p(-s)
    return y, log_det.reshape(x.shape[0], -1).sum(-1)
