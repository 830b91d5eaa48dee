"""Decoder likelihoods p(x | decoder output) for latent-variable models.

Each likelihood knows how many numbers per data dimension the decoder must output and turns
those numbers into a ``TorchDistribution`` whose event is one example:

- ``bernoulli``: binary data, one logit per dimension.
- ``categorical``: k grey levels, k logits per dimension.
- ``gaussian``: real data, a mean and a log-scale per dimension.
- ``discretized_logistic``: k grey levels, a logistic's mean and log-scale per dimension,
  integrated over each level's bin (Salimans et al., 2017, arXiv:1701.05517).
"""

from __future__ import annotations

import math

import pyro.distributions as dist
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.distributions import constraints

from probgen.data.support import parse_support

__all__ = ["Likelihood", "DiscretizedLogistic", "LIKELIHOODS", "default_likelihood"]

LIKELIHOODS = ("bernoulli", "categorical", "gaussian", "discretized_logistic")
_SUPPORTS = {
    "bernoulli": ("binary",),
    "categorical": ("binary", "discrete"),
    "gaussian": ("real",),
    "discretized_logistic": ("binary", "discrete"),
}


def default_likelihood(support: str) -> str:
    kind, _ = parse_support(support)
    return {"binary": "bernoulli", "discrete": "categorical", "real": "gaussian"}[kind]


class DiscretizedLogistic(dist.TorchDistribution):
    """A logistic distribution on ``[0, k-1]`` discretized to the integer levels ``0..k-1``.

    ``P(x) = sigmoid((x + 1/2 - mu) / s) - sigmoid((x - 1/2 - mu) / s)``, with the outer bins
    stretched to -inf and +inf so the probabilities sum to one.
    """

    arg_constraints = {"loc": constraints.real, "log_scale": constraints.real}
    has_rsample = False

    def __init__(self, loc: Tensor, log_scale: Tensor, num_levels: int, validate_args=None):
        self.loc, self.log_scale = torch.broadcast_tensors(loc, log_scale)
        self.num_levels = num_levels
        super().__init__(self.loc.shape, validate_args=validate_args)

    @constraints.dependent_property
    def support(self):
        return constraints.integer_interval(0, self.num_levels - 1)

    def expand(self, batch_shape, _instance=None):
        shape = torch.Size(batch_shape)
        return DiscretizedLogistic(self.loc.expand(shape), self.log_scale.expand(shape), self.num_levels)

    def log_prob(self, value: Tensor) -> Tensor:
        inv_scale = torch.exp(-self.log_scale)
        upper = (value + 0.5 - self.loc) * inv_scale
        lower = (value - 0.5 - self.loc) * inv_scale
        log_cdf_upper = F.logsigmoid(upper)
        log_sf_lower = F.logsigmoid(-lower)
        # log(sigmoid(u) - sigmoid(l)) = log sigmoid(u) + log(1 - exp(l - u)) + log sigmoid(-l)
        #   (exact: sigmoid(u) - sigmoid(l) = sigmoid(u) sigmoid(-l) (1 - exp(l - u)))
        middle = log_cdf_upper + log_sf_lower + torch.log(-torch.expm1(lower - upper).clamp(max=-1e-12))
        first = log_cdf_upper  # P(x <= 0.5)
        last = log_sf_lower  # P(x > k - 1.5)
        out = torch.where(value <= 0, first, torch.where(value >= self.num_levels - 1, last, middle))
        return out

    def sample(self, sample_shape=torch.Size()) -> Tensor:
        shape = self._extended_shape(sample_shape)
        u = torch.rand(shape, dtype=self.loc.dtype, device=self.loc.device).clamp(1e-6, 1 - 1e-6)
        draw = self.loc + torch.exp(self.log_scale) * (torch.log(u) - torch.log1p(-u))
        return draw.round().clamp(0, self.num_levels - 1)


class Likelihood:
    """Turns decoder outputs into ``p(x | z)`` for data of a given support.

    Args:
        name: one of :data:`LIKELIHOODS`.
        support: the data's support; ``discrete(k)`` fixes k for the discrete likelihoods.
        num_dims: D, the number of data dimensions per example.
    """

    def __init__(self, name: str, support: str, num_dims: int) -> None:
        if name not in LIKELIHOODS:
            raise ValueError(f"unknown likelihood {name!r}; expected one of {LIKELIHOODS}")
        kind, levels = parse_support(support)
        if kind not in _SUPPORTS[name]:
            raise ValueError(f"likelihood {name!r} cannot model {support!r} data")
        self.name, self.num_dims, self.num_levels = name, num_dims, levels

    @property
    def params_per_dim(self) -> int:
        return {"bernoulli": 1, "categorical": self.num_levels or 0, "gaussian": 2, "discretized_logistic": 2}[
            self.name
        ]

    def encoder_input(self, x: Tensor) -> Tensor:
        """Data scaled to about [0, 1] for the encoder."""
        if self.num_levels and self.num_levels > 2:
            return x / (self.num_levels - 1)
        return x

    def observed(self, x: Tensor) -> Tensor:
        return x.long() if self.name == "categorical" else x

    def __call__(self, out: Tensor) -> dist.TorchDistribution:
        """``out``: decoder output of shape ``[..., D * params_per_dim]``."""
        shape = out.shape[:-1]
        if self.name == "bernoulli":
            return dist.Bernoulli(logits=out).to_event(1)
        if self.name == "categorical":
            return dist.Categorical(logits=out.reshape(*shape, self.num_dims, self.num_levels)).to_event(1)
        loc, log_scale = out.reshape(*shape, 2, self.num_dims).unbind(-2)
        if self.name == "gaussian":
            return dist.Normal(loc, F.softplus(log_scale) + 1e-3).to_event(1)
        centre = (torch.sigmoid(loc) * (self.num_levels - 1)).clamp(0, self.num_levels - 1)
        return DiscretizedLogistic(
            centre, log_scale.clamp(min=-7.0) + math.log(self.num_levels), self.num_levels
        ).to_event(1)

    def mean(self, out: Tensor) -> Tensor:
        """The decoder's expected x (for reconstructions and pictures)."""
        d = self(out).base_dist
        if self.name == "categorical":
            levels = torch.arange(self.num_levels, dtype=out.dtype, device=out.device)
            return (d.probs * levels).sum(-1)
        if self.name == "discretized_logistic":
            return d.loc
        return d.mean
