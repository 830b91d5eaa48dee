"""Per-group counts, means and centred scatter that merge across batches without cancellation.

Conjugate Gaussian posteriors need each group's count, mean and sum of squared deviations.
Computing the latter as ``sum x^2 - n mean^2`` cancels catastrophically when the mean is large
against the spread (features of 1000 + N(0, 0.1) lose every digit in float32). Centring on the
mean is not enough either when the mean itself comes from an uncentred sum: in float32 the sum
of 150 rows near 1e7 is off by hundreds, the mean by units, and the scatter about that mean is
inflated by ``n delta^2``. Here each group is first shifted by a reference row of its own (the
first row of the batch that falls in the group): ``x - shift`` is exact in floating point when
both are of the same magnitude (Sterbenz' lemma), so the mean and the scatter are those of the
*centred* data, known to float rounding of the spread, and the mean is kept as ``shift`` plus a
small ``offset``. Batches merge by the pairwise update of Chan, Golub & LeVeque in the frame of
one operand's shift, so closed-form fits stream over data larger than memory at full precision.
A consumer that needs the mean to better than the rounding of a number of its magnitude (a
posterior predictive evaluated at ``x - mean``) reads ``shift`` and ``offset`` apart.

References:
    Chan, Golub & LeVeque, "Algorithms for computing the sample variance: analysis and
    recommendations" (1983), The American Statistician 37(3).
    Sterbenz, "Floating-Point Computation" (1974), Theorem 4.3.1 (exact subtraction).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["Moments"]


@dataclass(frozen=True)
class Moments:
    """Counts ``[G]``, reference rows ``shift`` ``[G, D]``, mean offsets ``[G, D]`` (the mean is
    ``shift + offset``) and centred scatter ``[G, D]`` (diagonal) or ``[G, D, D]`` (full) of G
    groups of D-dimensional rows; ``a + b`` merges two batches.

    Example:
        >>> x = torch.randn(100, 3) + 1e6  # float32: one unit in the last place is 0.0625
        >>> both = Moments.of(x[:40]) + Moments.of(x[40:])
        >>> reference = x.double().var(0, unbiased=False)
        >>> torch.allclose(both.scatter[0].double() / 100, reference, rtol=1e-5)
        True
    """

    count: Tensor
    shift: Tensor
    offset: Tensor
    scatter: Tensor

    @property
    def full(self) -> bool:
        return self.scatter.dim() == 3

    @property
    def mean(self) -> Tensor:
        """The groups' means ``[G, D]``, rounded once to the dtype (read ``shift`` and ``offset``
        apart for more)."""
        return self.shift + self.offset

    @classmethod
    def of(cls, x: Tensor, groups: Tensor | None = None, *, full: bool = False) -> Moments:
        """Moments of the rows of ``x`` ``[N, D]``; ``groups`` is a one-hot ``[N, G]`` (one group
        of all rows when None). A group without rows has count, offset and scatter 0."""
        if groups is None:
            groups = x.new_ones(x.shape[0], 1)
        count = groups.sum(0)
        if x.shape[0] == 0:
            shift = x.new_zeros(groups.shape[1], x.shape[1])
        else:  # each group's first row (argmax returns the first maximum); row 0 for an empty group
            shift = x[groups.argmax(0)]
        offsets, scatters = [], []
        for s, w, n in zip(shift, groups.T, count.clamp(min=1), strict=True):
            centred = x - s  # exact for the group's own rows when they are near s
            offset = (w @ centred) / n
            deviation = centred - offset
            weighted = deviation * w[:, None]
            offsets.append(offset)
            scatters.append(weighted.T @ deviation if full else (weighted * deviation).sum(0))
        return cls(count, shift, torch.stack(offsets), torch.stack(scatters))

    def __add__(self, other: Moments) -> Moments:
        na, nb = self.count, other.count
        # merge in the frame of the left operand's shift, or of the right one's where the left
        # group is empty (its shift is any row); an empty side takes the other's offset, so that
        # neither an empty group's shift nor its offset enters the result
        frame = torch.where((na > 0)[:, None], self.shift, other.shift)
        a = self.offset + (self.shift - frame)
        b = other.offset + (other.shift - frame)
        a = torch.where((na > 0)[:, None], a, b)
        b = torch.where((nb > 0)[:, None], b, a)
        count = na + nb
        share = nb / count.clamp(min=1)
        delta = b - a
        weight = na * share  # n_a n_b / (n_a + n_b)
        if self.full:
            extra = weight[:, None, None] * delta[:, :, None] * delta[:, None, :]
        else:
            extra = weight[:, None] * delta**2
        return Moments(count, frame, a + delta * share[:, None], self.scatter + other.scatter + extra)

    def group(self, g: int) -> Moments:
        """Group ``g`` alone (one group)."""
        return Moments(self.count[g : g + 1], self.shift[g : g + 1], self.offset[g : g + 1], self.scatter[g : g + 1])

    def pooled(self) -> Moments:
        """The moments of all groups together (one group)."""
        total = self.group(0)
        for g in range(1, len(self.count)):
            total = total + self.group(g)
        return total

    def offset_from(self, origin: Tensor) -> Tensor:
        """The groups' means minus ``origin`` ``[D]``, ``[G, D]``, without rounding the mean first:
        exact to float rounding of the spread when ``origin`` is near the shifts."""
        return self.offset + (self.shift - origin)
