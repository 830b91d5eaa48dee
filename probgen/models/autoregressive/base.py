"""The shared base of autoregressive models: p(x) = prod_i p(x_{o_i} | x_{o_<i}) for an ordering o.

A subclass supplies one network pass, :meth:`Autoregressive._params`, that maps a batch of
(flattened) examples to the parameters of every conditional at once, ``[N, D, P]``, such that
the parameters of dimension ``o_i`` depend only on ``x_{o_<i}``. The base turns it into:

- an exact ``log_prob`` (one pass) through :class:`AutoregressiveDistribution`, a
  ``TorchDistribution`` observed as ``pyro.sample("x", ..., obs=x)`` inside the data plate
  (the guide is empty: ``fit`` is maximum likelihood);
- sequential ``sample`` and :meth:`Autoregressive.complete` (inpainting), driven by
  :meth:`Autoregressive._conditionals`, which subclasses override with O(1)-per-step caches.

The conditionals are Bernoulli (binary data), Categorical (k levels) or a mixture of Gaussians
(real data), from :class:`OutputHead`.

References:
    Frey, "Graphical Models for Machine Learning and Digital Communication" (1998) — the
    fully visible sigmoid belief network.
    Larochelle & Murray, "The Neural Autoregressive Distribution Estimator" (2011), AISTATS.
    Germain, Gregor, Murray & Larochelle, "MADE: Masked Autoencoder for Distribution
    Estimation" (2015), arXiv:1502.03509.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import pyro
import pyro.distributions as dist
import torch
import torch.nn.functional as F
from pyro.nn import pyro_method
from torch import Tensor, nn
from torch.distributions import constraints

from probgen._checks import check_int
from probgen.data.support import parse_support
from probgen.models.base import GenerativeModel, data_plate

__all__ = ["OUTPUTS", "Autoregressive", "AutoregressiveDistribution", "MaskedLinear", "OutputHead"]


OUTPUTS = ("categorical", "logistic")


class OutputHead:
    """The family of each conditional: P numbers per dimension -> a distribution per dimension.

    Args:
        support: "binary" (Bernoulli, P = 1), "discrete(k)" or "real" (a mixture of
            ``components`` Gaussians, P = 3 * components).
        components: mixture components for real data and for the discretized logistic mixture.
        output: for "discrete(k)": "categorical" (a free softmax over the k levels, P = k) or
            "logistic" (a mixture of ``components`` logistics discretized to the k ordered
            levels, P = 3 * components: nearby levels share probability mass, which suits
            ordinal data such as pixel intensities and needs far fewer parameters).

    References:
        Salimans, Karpathy, Chen & Kingma, "PixelCNN++: Improving the PixelCNN with Discretized
        Logistic Mixture Likelihood and Other Modifications" (2017), ICLR, arXiv:1701.05517.
    """

    def __init__(self, support: str, components: int = 5, output: str = "categorical") -> None:
        self.kind, self.levels = parse_support(support)
        self.components = check_int("components", components)
        if output not in OUTPUTS:
            raise ValueError(f"unknown output {output!r}; expected one of {OUTPUTS}")
        self.output = output
        ordinal = self.kind == "discrete" and output == "logistic"
        self.params_per_dim = {"binary": 1, "discrete": self.levels, "real": 3 * self.components}[self.kind]
        self.params_per_dim = 3 * self.components if ordinal else self.params_per_dim
        self._ordinal = ordinal
        #: numbers per dimension of a network's input: one-hot levels for k > 2 categorical
        #: levels, else the value (ordinal levels scaled to [-1, 1])
        self.input_width = self.levels if self.kind == "discrete" and not ordinal else 1

    def inputs(self, x: Tensor) -> Tensor:
        """A network's input ``[N, D, E]``: k > 2 categorical levels one-hot (as
        ``relu(1 - |x - level|)``, which is one-hot at the levels and lets autograd see the
        dependence on x); ordinal levels as their bin centres in [-1, 1]; else x."""
        if self._ordinal:
            return (2.0 * x / (self.levels - 1) - 1.0)[..., None]
        if self.kind != "discrete":
            return x[..., None]
        levels = torch.arange(self.levels, dtype=x.dtype, device=x.device)
        return torch.relu(1 - (x[..., None] - levels).abs())

    def dist(self, params: Tensor) -> torch.distributions.Distribution:
        """Independent conditionals of batch shape ``params.shape[:-1]``."""
        if self.kind == "binary":
            return torch.distributions.Bernoulli(logits=params[..., 0], validate_args=False)
        if self._ordinal:
            return torch.distributions.Categorical(logits=self._level_log_probs(params), validate_args=False)
        if self.kind == "discrete":
            return torch.distributions.Categorical(logits=params, validate_args=False)
        logits, loc, raw = params.chunk(3, -1)
        normal = torch.distributions.Normal(loc, F.softplus(raw) + 1e-3, validate_args=False)
        mixing = torch.distributions.Categorical(logits=logits, validate_args=False)
        return torch.distributions.MixtureSameFamily(mixing, normal, validate_args=False)

    def _level_log_probs(self, params: Tensor) -> Tensor:
        """log P(level) ``[..., k]`` of the discretized logistic mixture: each component's mass
        on the bin ``[c - h, c + h]`` of level centre ``c`` (levels spread over [-1, 1], bin
        half-width h), the end bins open to infinity, so the k masses sum to 1 exactly."""
        logits, loc, raw = params.chunk(3, -1)  # [..., C] each
        k = self.levels
        centres = torch.linspace(-1.0, 1.0, k, dtype=params.dtype, device=params.device)
        h = 1.0 / (k - 1)
        inv_scale = torch.exp(-raw.clamp(min=-7.0))[..., None, :]  # [..., 1, C]
        upper = (centres[:, None] + h - loc[..., None, :]) * inv_scale  # [..., k, C]
        lower = (centres[:, None] - h - loc[..., None, :]) * inv_scale
        log_cdf_upper, log_sf_lower = F.logsigmoid(upper), F.logsigmoid(-lower)
        # log(sigmoid(u) - sigmoid(l)) = log sigmoid(u) + log sigmoid(-l) + log(1 - exp(l - u))
        gap = (lower - upper).clamp(max=-1e-12)
        middle = log_cdf_upper + log_sf_lower + torch.log(-torch.expm1(gap))
        first, last = log_cdf_upper[..., :1, :], log_sf_lower[..., -1:, :]
        per_component = torch.cat([first, middle[..., 1:-1, :], last], -2)
        return torch.logsumexp(per_component + F.log_softmax(logits, -1)[..., None, :], -1)

    def log_prob(self, params: Tensor, x: Tensor) -> Tensor:
        """Sum over the last dimension of the conditionals' log-probabilities of ``x``."""
        return self.dist(params).log_prob(x.long() if self.kind == "discrete" else x).sum(-1)

    def sample(self, params: Tensor, dtype: torch.dtype) -> Tensor:
        return self.dist(params).sample().to(dtype)


class MaskedLinear(nn.Linear):
    """A linear layer whose weight is multiplied by a fixed 0/1 ``mask`` (a buffer)."""

    def __init__(self, in_features: int, out_features: int, mask: Tensor) -> None:
        super().__init__(in_features, out_features)
        self.register_buffer("mask", mask.to(self.weight.dtype), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight * self.mask, self.bias)


class AutoregressiveDistribution(dist.TorchDistribution):
    """p(x) of an :class:`Autoregressive` model for ``batch`` examples: exact ``log_prob`` in one
    network pass, sequential ``sample``.

    Given ``observed`` examples, their log-probability is computed at construction, inside the
    Pyro program (so its networks' parameters are recorded as ``param`` sites when Pyro traces
    the model); ``log_prob`` of any other value runs the network again.
    """

    arg_constraints: dict = {}

    def __init__(self, model: Autoregressive, batch: int, observed: Tensor | None = None, training: bool = False):
        self.model, self.training = model, training
        self._observed = observed
        self._log_prob = None if observed is None else self._compute(observed)
        super().__init__(torch.Size([batch]), torch.Size(model.event_shape), validate_args=False)

    @constraints.dependent_property
    def support(self) -> constraints.Constraint:
        head = self.model.head
        base = {"binary": constraints.boolean, "real": constraints.real}.get(head.kind)
        base = base or constraints.integer_interval(0, (head.levels or 2) - 1)
        return constraints.independent(base, len(self.model.event_shape))

    def _compute(self, value: Tensor) -> Tensor:
        lead = value.shape[: value.dim() - len(self.model.event_shape)]
        flat = value.reshape(-1, self.model.num_dims)
        return self.model._log_prob_flat(flat, self.training).reshape(lead)

    def log_prob(self, value: Tensor) -> Tensor:
        if self._log_prob is not None and value is self._observed:
            return self._log_prob
        return self._compute(value)

    def sample(self, sample_shape: torch.Size = torch.Size()) -> Tensor:
        shape = self._extended_shape(sample_shape)
        draws = self.model.sample(math.prod(shape[: len(shape) - len(self.event_shape)]))
        return draws.reshape(shape)


class Autoregressive(GenerativeModel):
    """Base of the autoregressive models (see the module docstring).

    Subclasses implement ``_params(x) -> [N, D, P]`` on flattened raw values, fetching their
    networks with ``network(self, ...)``, and may override ``order`` and ``_conditionals``.

    Example:
        >>> import itertools
        >>> import probgen as pg, torch
        >>> nade = pg.models.NADE(3, "binary", num_hidden=8)
        >>> isinstance(nade, pg.models.Autoregressive), nade.density
        (True, 'exact')
        >>> x = torch.tensor(list(itertools.product([0.0, 1.0], repeat=3)))  # all 2**3 binary vectors
        >>> # log p(x) is a sum of D conditionals, so it normalizes exactly, trained or not
        >>> round(torch.logsumexp(nade.log_prob(x).double(), 0).exp().item(), 5)
        1.0
    """

    def __init__(self, event_shape, support: str, *, components: int = 5, output: str = "categorical") -> None:
        super().__init__(event_shape, support)
        self.head = OutputHead(support, components, output)
        self.components, self.output = components, output

    @property
    def order(self) -> Tensor:
        """The ordering o: ``order[i]`` is the (flat) dimension generated i-th."""
        return torch.arange(self.num_dims, device=self.device)

    def _params(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def _log_prob_flat(self, x: Tensor, training: bool = False) -> Tensor:
        return self.head.log_prob(self._params(x), x)

    # -------------------------------------------------------------- the Pyro program
    @pyro_method
    def model(self, x: Tensor, y: Tensor | None = None) -> None:
        with data_plate(self, x):
            pyro.sample("x", AutoregressiveDistribution(self, x.shape[0], observed=x, training=True), obs=x)

    def log_prob(self, x: Tensor) -> Tensor:
        """Exact log p(x) per example, in nats (one network pass)."""
        x = self.validate(x)
        return self._log_prob_flat(x.reshape(len(x), -1))

    # -------------------------------------------------------------- sequential use
    def _conditionals(self, x: Tensor, start: int) -> Iterator[tuple[int, Tensor]]:
        """Yield ``(d, params of p(x_d | x_<d))`` for ``d = order[start:]`` in turn; the caller
        writes ``x[:, d]`` before asking for the next. This one recomputes the whole pass at
        each step (O(D) passes); subclasses keep caches."""
        for d in self.order[start:].tolist():
            yield d, self._params(x)[:, d]

    def _fill(self, x: Tensor, start: int, observed: Tensor | None = None) -> Tensor:
        """Draw ``x[:, order[start:]]`` in order, in place, keeping the ``observed`` dimensions;
        return the log-probability of those kept values under their conditionals."""
        log_w = x.new_zeros(x.shape[0])
        for d, params in self._conditionals(x, start):
            if observed is not None and bool(observed[d]):
                log_w = log_w + self.head.log_prob(params[:, None], x[:, d : d + 1])
            else:
                x[:, d] = self.head.sample(params, x.dtype)
        return log_w

    def sample(self, n: int) -> Tensor:
        """``n`` draws, one dimension at a time in the model's ordering."""
        n = self._check_n(n)
        with torch.no_grad():
            x = torch.zeros(n, self.num_dims, dtype=self.dtype, device=self.device)
            self._fill(x, 0)
        return x.reshape(n, *self.event_shape)

    def complete(self, x: Tensor, mask: Tensor, n: int, *, num_particles: int = 100) -> Tensor:
        """Sample the missing values of ``x`` given the observed ones: ``(n, *x.shape)`` draws.

        Args:
            x: examples ``(M, *event_shape)``; the values where ``mask`` is False are ignored.
            mask: ``event_shape`` booleans, True where a value is observed (the same for every row).
            n: completions per example.
            num_particles: where observed values come after missing ones in the ordering,
                draws are resampled from this many importance-weighted particles (the proposal
                draws the missing values from their conditionals); where the observed values
                come first in the ordering the draws are exact and this is unused.
        """
        x, n = self.validate(torch.as_tensor(x).to(self.dtype).clone()), self._check_n(n)
        mask = torch.as_tensor(mask)
        if tuple(mask.shape) != self.event_shape:
            raise ValueError(f"mask has shape {tuple(mask.shape)}; expected the event shape {self.event_shape}")
        observed = mask.to(device=self.device, dtype=torch.bool).reshape(-1)
        in_order = observed[self.order]
        start = int(in_order.long().argmin()) if not bool(in_order.all()) else self.num_dims
        exact = not bool(in_order[start:].any())
        k = 1 if exact else check_int("num_particles", num_particles)
        rows = x.reshape(1, len(x), -1).expand(n * k, -1, -1).reshape(-1, self.num_dims).clone()
        with torch.no_grad():
            log_w = self._fill(rows, start, None if exact else observed)
        rows = rows.reshape(n, k, len(x), self.num_dims)
        if not exact:
            pick = torch.distributions.Categorical(logits=log_w.reshape(n, k, len(x)).transpose(1, 2)).sample()
            rows = rows.gather(1, pick[:, None, :, None].expand(-1, 1, -1, self.num_dims))
        return rows.reshape(n, *x.shape)

    def num_free_parameters(self) -> int:
        """Parameters that can take effect (masked-out weights excluded)."""
        return sum(p.numel() for p in self.parameters())

    def _config_kwargs(self) -> dict:
        return {"components": self.components, "output": self.output}
