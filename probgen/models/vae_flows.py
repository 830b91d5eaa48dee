"""Richer VAE posteriors and priors: flows on q(z | x), the VampPrior and a flow prior.

Posterior flows push the encoder's Gaussian ``q0(z | x) = N(mu(x), sigma(x))`` through
``flow_num_layers`` transforms whose parameters depend on the encoder's features ``h(x)`` (the
input of its last linear layer). The guide samples ``z`` from a
``TransformedDistribution``, so ``log q(z | x) = log q0(z0 | x) - sum log |det dz_t/dz_{t-1}|``
enters every bound with no change to the objectives. Each kind says where its parameters
come from:

- ``"iaf"``: Pyro's ``ConditionalAffineAutoregressive`` (its ``stable`` form, Kingma et al.'s
  gated update ``z' = s * z + (1 - s) * m``) with a MADE that takes h as context, the variable
  order reversed between layers. Sampling is one pass per layer.
- ``"planar"``: Pyro's ``ConditionalPlanar``: ``u, w, b`` of each layer from h by an MLP.
- ``"sylvester"``: :class:`AmortizedSylvester`, written here: Pyro has no conditional Sylvester
  flow, and its plain ``Sylvester`` transform returns a wrong log-determinant (its map is
  ``z + R^T Q^T tanh(Q S^T z + b)``, whose determinant is not the triangular product it
  reports). Here ``R``, ``R~``, ``b`` and the Householder vectors of ``Q`` all come from h.
- ``"nsf"``: Pyro's ``ConditionalSplineAutoregressive`` (linear rational-quadratic splines on
  ``[-3, 3]``, identity outside) with a MADE on h, orders reversed between layers.

Planar and Sylvester flows have no inverse: ``log q`` is exact at the guide's own draws (all
that ELBO/IWAE need) but cannot be evaluated at other points (AIS needs that; use a Gaussian,
IAF or NSF posterior there).

Priors: ``"vamp"`` is the uniform mixture of the encoder's Gaussians at K learned
pseudo-inputs (with a flow posterior, of its base Gaussians: ``q0(z | u_k)``);
``"flow"`` is ``N(0, I)`` pushed through ``flow_num_layers`` MAF layers, oriented so that
``log p(z)`` is one network pass per layer (sampling is ``latent_dim`` passes).

References:
    Rezende & Mohamed, "Variational Inference with Normalizing Flows" (2015), arXiv:1505.05770.
    Kingma, Salimans, Jozefowicz, Chen, Sutskever & Welling, "Improved Variational Inference
    with Inverse Autoregressive Flow" (2016), arXiv:1606.04934.
    van den Berg, Hasenclever, Tomczak & Welling, "Sylvester Normalizing Flows for Variational
    Inference" (2018), arXiv:1803.05649.
    Durkan, Bekasov, Murray & Papamakarios, "Neural Spline Flows" (2019), arXiv:1906.04032.
    Tomczak & Welling, "VAE with a VampPrior" (2018), arXiv:1705.07120.
    Papamakarios, Pavlakou & Murray, "Masked Autoregressive Flow for Density Estimation"
    (2017), arXiv:1705.07057.
"""

from __future__ import annotations

from collections.abc import Callable

import pyro.distributions as dist
import torch
import torch.nn.functional as F
from pyro.distributions.conditional import ConditionalTransformModule
from pyro.distributions.transforms import (
    AffineAutoregressive,
    ConditionalAffineAutoregressive,
    ConditionalPlanar,
    ConditionalSplineAutoregressive,
)
from pyro.nn import AutoRegressiveNN, ConditionalAutoRegressiveNN, DenseNN
from torch import Tensor, nn
from torch.distributions import Transform, constraints

from probgen.models.networks import GaussianEncoder

__all__ = [
    "POSTERIOR_FLOWS",
    "PRIORS",
    "AmortizedSylvester",
    "ConditionedSylvester",
    "PosteriorFlow",
    "VampPrior",
    "FlowPrior",
    "encoder_features",
]

#: the ``posterior_flow`` kinds of :class:`~probgen.models.VAE` (None: the Gaussian alone)
POSTERIOR_FLOWS = ("iaf", "planar", "sylvester", "nsf")
#: the ``prior`` kinds of :class:`~probgen.models.VAE`
PRIORS = ("standard", "vamp", "flow")
#: the kinds built on autoregressive networks, which need at least two latent dimensions
AUTOREGRESSIVE = ("iaf", "nsf")
SPLINE_BINS = 8
#: a bounded VampPrior's pseudo-inputs start in [margin, 1 - margin], where hardtanh has a gradient
BOUND_MARGIN = 0.01


def _order(latent_dim: int, layer: int) -> Tensor:
    """The variable order of autoregressive layer ``layer``: natural, reversed, natural, ..."""
    order = torch.arange(latent_dim)
    return order.flip(0) if layer % 2 else order


def encoder_features(encoder: GaussianEncoder, x: Tensor, y: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """``(loc, scale, h)``: the encoder's Gaussian and its features ``h`` (the input of its last
    linear layer, the one-hot label included), the context of a posterior flow.

    Example:
        >>> from probgen.models.networks import make_encoder
        >>> loc, scale, h = encoder_features(make_encoder("mlp", 6, (8,), 2, None), torch.rand(3, 6))
        >>> loc.shape, h.shape
        (torch.Size([3, 2]), torch.Size([3, 8]))
    """
    h = encoder.features(x, y)
    return (*encoder.gaussian(h), h)


class ConditionedSylvester(Transform):
    """``z' = z + Q R tanh(R~ Q^T z + b)`` for one batch of amortized parameters.

    ``R``, ``R~`` are upper triangular with diagonals in (-1, 1), so ``1 + tanh'(.) R_ii R~_ii > 0``
    and ``log |det dz'/dz| = sum_i log(1 + tanh'(a_i) R_ii R~_ii)``, ``a = R~ Q^T z + b``.
    Parameters have a leading batch shape that broadcasts against ``z`` (particles on the left).
    No inverse: only values this transform produced can be scored (they are cached).
    """

    domain = constraints.real_vector
    codomain = constraints.real_vector
    bijective = True

    def __init__(self, q: Tensor, r: Tensor, r_tilde: Tensor, bias: Tensor) -> None:
        super().__init__(cache_size=1)
        self.into = q @ r_tilde.mT  # row form: z @ into = (R~ Q^T z)^T
        self.out = (q @ r).mT  # row form: t @ out = (Q R t)^T
        self.bias = bias
        self.diagonal = r.diagonal(dim1=-2, dim2=-1) * r_tilde.diagonal(dim1=-2, dim2=-1)
        self._log_det: Tensor | None = None

    def _call(self, z: Tensor) -> Tensor:
        a = (z.unsqueeze(-2) @ self.into).squeeze(-2) + self.bias
        t = torch.tanh(a)
        self._log_det = torch.log1p((1 - t**2) * self.diagonal).sum(-1)
        return z + (t.unsqueeze(-2) @ self.out).squeeze(-2)

    def _inverse(self, y: Tensor) -> Tensor:
        raise NotImplementedError("a Sylvester flow has no closed-form inverse: only its own draws can be scored")

    def log_abs_det_jacobian(self, x: Tensor, y: Tensor) -> Tensor:
        x_old, y_old = self._cached_x_y
        if x is not x_old or y is not y_old:
            self(x)  # recomputes (and caches) y and the log-determinant at x
        return self._log_det


class AmortizedSylvester(ConditionalTransformModule):
    """Householder Sylvester flow layer (van den Berg et al. 2018) with every parameter from the
    context: ``R``, ``R~`` (strict upper parts and tanh-squashed diagonals), ``b`` and
    ``num_reflections`` Householder vectors whose product is the orthogonal ``Q``.

    Example:
        >>> layer = AmortizedSylvester(3, context_dim=5, hidden=(16,))
        >>> t = layer.condition(torch.randn(4, 5))
        >>> z = torch.randn(4, 3)
        >>> t.log_abs_det_jacobian(z, t(z)).shape
        torch.Size([4])
    """

    def __init__(self, latent_dim: int, context_dim: int, hidden: tuple[int, ...], num_reflections: int = 0) -> None:
        super().__init__()
        d = self.latent_dim = latent_dim
        self.num_reflections = num_reflections or latent_dim
        self.nn = DenseNN(context_dim, list(hidden), param_dims=[d * d, d * d, d, d, d, self.num_reflections * d])
        self.register_buffer("strict_upper", torch.triu(torch.ones(d, d), diagonal=1))

    def condition(self, context: Tensor) -> ConditionedSylvester:
        d, batch = self.latent_dim, context.shape[:-1]
        r_full, rt_full, r_diag, rt_diag, bias, vectors = self.nn(context)
        mask = self.strict_upper.to(context.dtype)
        r = r_full.reshape(*batch, d, d) * mask + torch.diag_embed(torch.tanh(r_diag))
        r_tilde = rt_full.reshape(*batch, d, d) * mask + torch.diag_embed(torch.tanh(rt_diag))
        vectors = F.normalize(vectors.reshape(*batch, self.num_reflections, d), dim=-1)
        q = torch.eye(d, dtype=context.dtype, device=context.device).expand(*batch, d, d)
        for k in range(self.num_reflections):  # Q = H_1 H_2 ... H_K, H = I - 2 v v^T
            v = vectors[..., k, :]
            q = q - 2 * (q @ v.unsqueeze(-1)) @ v.unsqueeze(-2)
        return ConditionedSylvester(q, r, r_tilde, bias)


class PosteriorFlow(nn.Module):
    """``length`` conditional flow layers of one ``kind`` (see the module docstring), each with a
    conditioner MLP of widths ``hidden`` on the context.

    Example:
        >>> flow = PosteriorFlow("iaf", latent_dim=2, context_dim=5, length=2)
        >>> base = dist.Normal(torch.zeros(4, 2), 1.0).to_event(1)
        >>> q = dist.TransformedDistribution(base, flow.transforms(torch.randn(4, 5)))
        >>> q.log_prob(q.rsample()).shape
        torch.Size([4])
    """

    def __init__(self, kind: str, latent_dim: int, context_dim: int, length: int, hidden: tuple[int, ...] = ()):
        super().__init__()
        if kind not in POSTERIOR_FLOWS:
            raise ValueError(f"unknown posterior_flow {kind!r}; expected None or one of {POSTERIOR_FLOWS}")
        if kind in AUTOREGRESSIVE and latent_dim < 2:
            raise ValueError(f"posterior_flow={kind!r} needs latent_dim >= 2, got {latent_dim}")
        self.kind = kind
        hidden = tuple(hidden) or (10 * latent_dim,)
        self.layers = nn.ModuleList([self._layer(kind, latent_dim, context_dim, hidden, i) for i in range(length)])

    @staticmethod
    def _layer(kind: str, d: int, c: int, hidden: tuple[int, ...], i: int) -> ConditionalTransformModule:
        if kind == "iaf":
            made = ConditionalAutoRegressiveNN(d, c, list(hidden), permutation=_order(d, i))
            return ConditionalAffineAutoregressive(made, stable=True)
        if kind == "nsf":
            bins = SPLINE_BINS
            made = ConditionalAutoRegressiveNN(
                d, c, list(hidden), param_dims=[bins, bins, bins - 1, bins], permutation=_order(d, i)
            )
            return ConditionalSplineAutoregressive(d, made, count_bins=bins, bound=3.0, order="linear")
        if kind == "planar":
            return ConditionalPlanar(DenseNN(c, list(hidden), param_dims=[1, d, d]))
        return AmortizedSylvester(d, c, hidden)

    def transforms(self, context: Tensor) -> list[Transform]:
        """The layers conditioned on ``context`` (``[..., context_dim]``), base to z: fresh
        transform objects each call, so no cache outlives the parameters it was computed with."""
        return [layer.condition(context) for layer in self.layers]


class VampPrior(nn.Module):
    """``p(z) = (1/K) sum_k q0(z | u_k)``: the encoder's Gaussians at K learned pseudo-inputs
    ``u_k`` (in the encoder's input space; :meth:`initialize` sets them to training examples).

    ``bounded=True`` keeps every ``u_k`` in [0, 1], the range of the encoder's inputs for binary
    and discrete data, as Tomczak & Welling's code does: ``u_k = hardtanh(a_k, 0, 1)`` of the
    free parameter ``a_k`` (``pseudo_inputs``), which starts inside (0, 1) so that every entry
    gets a gradient at first. :meth:`inputs` gives the ``u_k`` either way.

    Example:
        >>> from probgen.models.networks import make_encoder
        >>> encoder = make_encoder("mlp", 6, (8,), 2, None)
        >>> prior = VampPrior(3, 6)
        >>> prior.distribution(encoder).log_prob(torch.zeros(5, 2)).shape
        torch.Size([5])
        >>> bounded = VampPrior(3, 6, bounded=True)
        >>> bounded.initialize(torch.tensor([[0.0, 1.0, 0.0, 1.0, 1.0, 0.5]]).expand(4, 6))
        >>> [round(v, 4) for v in bounded.inputs()[0].tolist()]
        [0.01, 0.99, 0.01, 0.99, 0.99, 0.5]
    """

    def __init__(self, num_pseudo_inputs: int, input_dim: int, bounded: bool = False) -> None:
        super().__init__()
        self.bounded = bool(bounded)
        self.pseudo_inputs = nn.Parameter(torch.rand(num_pseudo_inputs, input_dim))

    def inputs(self) -> Tensor:
        """The pseudo-inputs ``u_k``, ``[K, input_dim]`` (bounded: in [0, 1])."""
        return F.hardtanh(self.pseudo_inputs, 0.0, 1.0) if self.bounded else self.pseudo_inputs

    @torch.no_grad()
    def initialize(self, encoder_inputs: Tensor) -> None:
        """Set the pseudo-inputs to randomly chosen rows of ``encoder_inputs`` (distinct rows
        when there are enough); bounded, clamped to [0.01, 0.99], where hardtanh has a gradient."""
        k, n = len(self.pseudo_inputs), len(encoder_inputs)
        rows = torch.randperm(n)[:k] if n >= k else torch.randint(n, (k,))
        values = encoder_inputs[rows.to(encoder_inputs.device)]
        self.pseudo_inputs.copy_(values.clamp(BOUND_MARGIN, 1 - BOUND_MARGIN) if self.bounded else values)

    def distribution(self, encoder: Callable[[Tensor], tuple[Tensor, Tensor]]) -> dist.TorchDistribution:
        """The mixture, with event shape ``(latent_dim,)`` and an empty batch shape."""
        loc, scale = encoder(self.inputs())
        uniform = dist.Categorical(logits=loc.new_zeros(len(loc)))
        return dist.MixtureSameFamily(uniform, dist.Normal(loc, scale).to_event(1))


class FlowPrior(nn.Module):
    """``p(z)``: ``N(0, I)`` pushed through ``length`` MAF layers (``AffineAutoregressive.inv``,
    variable orders alternating), so ``log p(z)`` is one MADE pass per layer.

    Example:
        >>> prior = FlowPrior(2, length=2)
        >>> prior.distribution().log_prob(torch.zeros(5, 2)).shape
        torch.Size([5])
    """

    def __init__(self, latent_dim: int, length: int, hidden: tuple[int, ...] = ()) -> None:
        super().__init__()
        if latent_dim < 2:
            raise ValueError(f"prior='flow' needs latent_dim >= 2, got {latent_dim}")
        hidden = tuple(hidden) or (10 * latent_dim,)
        self.latent_dim = latent_dim
        self.layers = nn.ModuleList(
            [
                AffineAutoregressive(AutoRegressiveNN(latent_dim, list(hidden), permutation=_order(latent_dim, i)))
                for i in range(length)
            ]
        )

    def distribution(self, encoder: object = None) -> dist.TransformedDistribution:
        """The flow density (event shape ``(latent_dim,)``); caches cleared, so that no stale
        value computed with earlier parameters is reused. ``encoder`` is not used."""
        for layer in self.layers:
            layer.clear_cache()
        like = next(self.parameters())
        zero = torch.zeros((), dtype=like.dtype, device=like.device)
        base = dist.Normal(zero, zero + 1).expand((self.latent_dim,)).to_event(1)
        return dist.TransformedDistribution(base, [layer.inv for layer in self.layers])
