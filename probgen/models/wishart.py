"""A Wishart distribution over the Cholesky factor of a precision matrix.

Pyro and torch cannot transform to ``positive_definite`` matrices, so SVI and NUTS cannot work
with a plain Wishart site. Sampling the lower-Cholesky factor ``L`` of ``Lambda = L L^T``
instead works with every guide and sampler (``lower_cholesky`` has a bijection). The density
of ``L`` is the Wishart density of ``L L^T`` times the Jacobian of ``L -> L L^T``:
``2^D prod_i L_ii^(D - i + 1)`` (i = 1..D).

References:
    Gupta & Nagar, "Matrix Variate Distributions" (2000), Theorem 1.28 (the Jacobian).
"""

from __future__ import annotations

import math

import pyro.distributions as dist
import torch
from torch import Tensor
from torch.distributions import constraints

__all__ = [
    "WishartCholesky",
    "LowerCholeskyFromVector",
    "lower_cholesky_factor",
    "gaussian_log_prob_precision_tril",
]


class _LowerCholeskyFactor(constraints._LowerCholesky):
    """``lower_cholesky``, with a bijection from ``R^(D(D+1)/2)`` so SVI and NUTS can use it."""


lower_cholesky_factor = _LowerCholeskyFactor()


class LowerCholeskyFromVector(torch.distributions.Transform):
    """Bijection from vectors of length ``D(D+1)/2`` to lower-triangular matrices with positive
    diagonal: fill the lower triangle row by row and exponentiate the diagonal."""

    domain = constraints.real_vector
    codomain = lower_cholesky_factor
    bijective = True

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LowerCholeskyFromVector)

    @staticmethod
    def _dim(n: int) -> int:
        dim = int(round((math.sqrt(8 * n + 1) - 1) / 2))
        if dim * (dim + 1) // 2 != n:
            raise ValueError(f"a vector of length {n} does not fill a lower triangle")
        return dim

    def _call(self, x: Tensor) -> Tensor:
        dim = self._dim(x.shape[-1])
        rows, cols = torch.tril_indices(dim, dim, device=x.device)
        full = x.new_zeros(x.shape[:-1] + (dim, dim))
        full[..., rows, cols] = x
        return full.tril(-1) + torch.diag_embed(full.diagonal(dim1=-2, dim2=-1).exp())

    def _inverse(self, y: Tensor) -> Tensor:
        dim = y.shape[-1]
        rows, cols = torch.tril_indices(dim, dim, device=y.device)
        full = y.tril(-1) + torch.diag_embed(y.diagonal(dim1=-2, dim2=-1).log())
        return full[..., rows, cols]

    def log_abs_det_jacobian(self, x: Tensor, y: Tensor) -> Tensor:
        return y.diagonal(dim1=-2, dim2=-1).log().sum(-1)

    def forward_shape(self, shape):
        return torch.Size(shape[:-1]) + (self._dim(shape[-1]),) * 2

    def inverse_shape(self, shape):
        return torch.Size(shape[:-2]) + (shape[-1] * (shape[-1] + 1) // 2,)


@torch.distributions.biject_to.register(_LowerCholeskyFactor)
@torch.distributions.transform_to.register(_LowerCholeskyFactor)
def _to_lower_cholesky_factor(constraint):
    return LowerCholeskyFromVector()


class WishartCholesky(dist.TorchDistribution):
    """``L`` such that ``L L^T ~ Wishart(df, scale_tril @ scale_tril^T)``.

    Example:
        >>> d = WishartCholesky(torch.tensor(5.0), torch.eye(3))
        >>> d.sample().shape
        torch.Size([3, 3])
    """

    arg_constraints = {"df": constraints.positive, "scale_tril": constraints.lower_cholesky}
    support = lower_cholesky_factor
    has_rsample = True

    def __init__(self, df: Tensor, scale_tril: Tensor, validate_args: bool | None = None) -> None:
        self.df, self.scale_tril = df, scale_tril
        self._wishart = torch.distributions.Wishart(df, scale_tril=scale_tril, validate_args=False)
        dim = scale_tril.shape[-1]
        super().__init__(self._wishart.batch_shape, (dim, dim), validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        batch_shape = torch.Size(batch_shape)
        dim = self.scale_tril.shape[-1]
        return WishartCholesky(self.df.expand(batch_shape), self.scale_tril.expand(batch_shape + (dim, dim)))

    def rsample(self, sample_shape=torch.Size()) -> Tensor:
        """Bartlett decomposition: ``L = scale_tril @ A``, A lower triangular with
        ``A_ii = sqrt(chi2(df - i))`` (i = 0..D-1) and standard normals below the diagonal."""
        shape = torch.Size(sample_shape) + self.batch_shape
        dim = self.scale_tril.shape[-1]
        offsets = torch.arange(dim, dtype=self.df.dtype, device=self.df.device)
        chi2 = torch.distributions.Chi2(self.df.unsqueeze(-1) - offsets).rsample(sample_shape)
        normals = torch.randn(shape + (dim, dim), dtype=self.df.dtype, device=self.df.device)
        bartlett = normals.tril(-1) + torch.diag_embed(chi2.sqrt())
        return self.scale_tril @ bartlett

    def log_prob(self, value: Tensor) -> Tensor:
        dim = value.shape[-1]
        matrix = value @ value.transpose(-1, -2)
        diag = value.diagonal(dim1=-2, dim2=-1)
        powers = torch.arange(dim, 0, -1, dtype=value.dtype, device=value.device)
        log_jacobian = dim * math.log(2.0) + (powers * diag.log()).sum(-1)
        return self._wishart.log_prob(matrix) + log_jacobian


def gaussian_log_prob_precision_tril(x: Tensor, loc: Tensor, precision_tril: Tensor) -> Tensor:
    """``log N(x | loc, (L L^T)^-1)`` with ``L = precision_tril``, without inverting anything."""
    dim = x.shape[-1]
    z = ((x - loc).unsqueeze(-2) @ precision_tril).squeeze(-2)
    log_det = precision_tril.diagonal(dim1=-2, dim2=-1).log().sum(-1)
    return log_det - 0.5 * (z * z).sum(-1) - 0.5 * dim * math.log(2 * math.pi)
