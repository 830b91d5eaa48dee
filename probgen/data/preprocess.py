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

    Example:
        >>> import torch
        >>> binarize(torch.tensor([0.2, 0.5, 0.9]))
        tensor([0., 1., 1.])
        >>> g = torch.Generator().manual_seed(0)
        >>> draws = binarize(torch.full((10_000,), 0.25), None, generator=g)
        >>> abs(draws.mean().item() - 0.25) < 0.02  # Bernoulli(0.25) draws: sd of the mean 0.004
        True
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

    Example:
        >>> import torch
        >>> x = torch.tensor([[0.0, 3.0], [16.0, 7.0]])
        >>> v = dequantize(x, 17, generator=torch.Generator().manual_seed(0))
        >>> bool(((v * 17).floor() == x).all())  # each value stays in its level's bin [x/k, (x+1)/k)
        True
    """
    if num_levels < 2:
        raise ValueError(f"num_levels must be >= 2, got {num_levels}")
    if x.numel() and (x.min() < 0 or x.max() > num_levels - 1 or (x != x.round()).any()):
        raise ValueError(f"dequantize expects integers in 0..{num_levels - 1}")
    u = torch.rand(x.shape, generator=generator, dtype=x.dtype, device=x.device)
    return (x + u) / num_levels


def discrete_log_prob_offset(num_dims: int, num_levels: int) -> float:
    """The ``-D log k`` that turns a density on ``[0,1)^D`` into a log-probability of levels.

    Example:
        >>> import math
        >>> # the uniform density on [0, 1)^2 (log density 0) gives each of the 17 ** 2 pairs of levels 1/289
        >>> round(math.exp(discrete_log_prob_offset(2, 17)) * 17**2, 12)
        1.0
        >>> round(discrete_log_prob_offset(784, 256), 3)  # MNIST's bytes: -784 log 256
        -4347.419
    """
    return -num_dims * math.log(num_levels)


def logit_transform(x: Tensor, alpha: float = 1e-6) -> tuple[Tensor, Tensor]:
    """Map ``x`` in ``[0, 1]`` to ``logit(alpha + (1 - 2 alpha) x)``; return it and ``log|dy/dx|``.

    The log-Jacobian is summed over all but the first dimension, so a density ``q`` on the
    output gives ``log p(x) = log q(y) + logdet``.

    References:
        Dinh et al., "Density estimation using Real NVP" (2017), arXiv:1605.08803, section 4.1.

    Example:
        >>> import math, torch
        >>> y, log_det = logit_transform(torch.tensor([[0.5, 0.25]], dtype=torch.float64), alpha=0.0)
        >>> y
        tensor([[ 0.0000, -1.0986]], dtype=torch.float64)
        >>> # dy/dx = 1 / (x (1 - x)): log 4 + log(16 / 3)
        >>> math.isclose(log_det.item(), math.log(4) + math.log(16 / 3))
        True
    """
    if not 0 <= alpha < 0.5:
        raise ValueError(f"alpha must be in [0, 0.5), got {alpha}")
    if x.numel() and (x.min() < 0 or x.max() > 1):
        raise ValueError("logit_transform expects values in [0, 1]")
    s = alpha + (1 - 2 * alpha) * x
    y = torch.log(s) - torch.log1p(-s)
    log_det = math.log(1 - 2 * alpha) - torch.log(s) - torch.log1p(-s)
    return y, log_det.reshape(x.shape[0], -1).sum(-1)
