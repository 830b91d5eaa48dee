"""Per-group counts, means and centred scatter that merge across batches without cancellation.

Conjugate Gaussian posteriors need each group's count, mean and sum of squared deviations.
Computing the latter as ``sum x^2 - n mean^2`` cancels catastrophically when the mean is large
against the spread (features of 1000 + N(0, 0.1) lose every digit in float32); here each batch
is centred on its own mean and batches merge by the pairwise update of Chan, Golub & LeVeque,
so closed-form fits stream over data larger than memory at full precision.

References:
    Chan, Golub & LeVeque, "Algorithms for computing the sample variance: analysis and
    recommendations" (1983), The American Statistician 37(3).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["Moments"]


@dataclass(frozen=True)
class Moments:
    """Counts ``[G]``, means ``[G, D]`` and centred scatter ``[G, D]`` (diagonal) or
    ``[G, D, D]`` (full) of G groups of D-dimensional rows; ``a + b`` merges two batches.

    Example:
        >>> x = torch.randn(100, 3, dtype=torch.float64) + 1e6
        >>> both = Moments.of(x[:40]) + Moments.of(x[40:])
        >>> torch.allclose(both.scatter[0] / 100, x.var(0, unbiased=False))
        True
    """

    count: Tensor
    mean: Tensor
    scatter: Tensor

    @property
    def full(self) -> bool:
        return self.scatter.dim() == 3

    @classmethod
    def of(cls, x: Tensor, groups: Tensor | None = None, *, full: bool = False) -> Moments:
        """Moments of the rows of ``x`` ``[N, D]``; ``groups`` is a one-hot ``[N, G]`` (one group
        of all rows when None)."""
        if groups is None:
            groups = x.new_ones(x.shape[0], 1)
        count = groups.sum(0)
        mean = (groups.T @ x) / count.clamp(min=1)[:, None]
        if full:
            scatter = torch.stack([((x - m) * w[:, None]).T @ (x - m) for m, w in zip(mean, groups.T, strict=True)])
        else:
            scatter = torch.stack([w @ (x - m) ** 2 for m, w in zip(mean, groups.T, strict=True)])
        return cls(count, mean, scatter)

    def __add__(self, other: Moments) -> Moments:
        count = self.count + other.count
        share = other.count / count.clamp(min=1)
        delta = other.mean - self.mean
        weight = self.count * share  # n_a n_b / (n_a + n_b)
        if self.full:
            extra = weight[:, None, None] * delta[:, :, None] * delta[:, None, :]
        else:
            extra = weight[:, None] * delta**2
        return Moments(count, self.mean + delta * share[:, None], self.scatter + other.scatter + extra)

    def pooled(self) -> Moments:
        """The moments of all groups together (one group)."""
        total = Moments(self.count[:1], self.mean[:1], self.scatter[:1])
        for g in range(1, len(self.count)):
            total = total + Moments(self.count[g : g + 1], self.mean[g : g + 1], self.scatter[g : g + 1])
        return total
