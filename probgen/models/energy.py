"""Energy-based models: restricted Boltzmann machines with binary or Gaussian visible units.

Both have Bernoulli hiddens h (H) and a joint ``p(v, h) = exp(-E(v, h)) / Z``:

- :class:`RBM` (Bernoulli–Bernoulli): binary v, ``E(v, h) = -b.v - c.h - v.W.h``; summing out h
  gives ``log p~(v) = b.v + sum_j softplus(c_j + v.W_j)``.
- :class:`GaussianRBM` (Gaussian–Bernoulli, in the parameterisation of Cho et al. 2011): real v
  with a per-unit scale sigma (learned or fixed),
  ``E(v, h) = sum_i (v_i - b_i)^2 / (2 sigma_i^2) - c.h - sum_ij (v_i / sigma_i^2) W_ij h_j``, so
  ``p(v | h) = N(b + W h, diag(sigma^2))``, ``p(h_j = 1 | v) = sigmoid(c_j + (v / sigma^2).W_j)``
  and ``log p~(v) = -sum_i (v_i - b_i)^2 / (2 sigma_i^2) + sum_j softplus(c_j + (v / sigma^2).W_j)``.

``log_prob`` returns log p~(v) (minus the free energy; density "unnormalized").
``log_normalizer`` gives log Z exactly by enumeration when few enough states are summed (the
smaller layer of an RBM; the hiddens of a Gaussian RBM, each term a Gaussian integral in closed
form), and otherwise by annealed importance sampling from a base model with a closed-form
normalizer (``ais_log_weights`` keeps every run, so the spread over runs is visible). Training is
CD-k or persistent CD (the "contrastive_divergence" strategy calls
:meth:`RBMBase.contrastive_divergence_loss`).

As a Pyro program the hiddens are summed out: the model is the factor ``log p~(v)`` inside
the data plate and the guide is empty (plain SVI then raises p~, which is not maximum
likelihood: that needs log Z, hence CD).

References:
    Smolensky (1986); Hinton, "Training Products of Experts by Minimizing Contrastive
    Divergence" (2002); Hinton, "A Practical Guide to Training Restricted Boltzmann Machines"
    (2010); Salakhutdinov & Murray, "On the Quantitative Analysis of Deep Belief Networks" (2008);
    Cho, Ilin & Raiko, "Improved Learning of Gaussian-Bernoulli Restricted Boltzmann Machines"
    (ICANN 2011).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from typing import Any

import pyro
import torch
import torch.nn.functional as F
from pyro.nn import PyroParam, pyro_method
from torch import Tensor
from torch.distributions import constraints

from probgen._checks import check_int
from probgen.models.base import GenerativeModel, data_plate
from probgen.models.registry import register

__all__ = ["RBM", "GaussianRBM", "RBMBase", "EXACT_MAX_UNITS"]

#: log Z is computed exactly when at most 2 ** EXACT_MAX_UNITS states are summed
EXACT_MAX_UNITS = 20


def _bernoulli(p: Tensor) -> Tensor:
    """Bernoulli draws of ``p`` (a NaN draws 0, so a diverged model fails at its loss, by name)."""
    return (torch.rand_like(p) < p).to(p.dtype)


class RBMBase(GenerativeModel):
    """What the RBMs share: Bernoulli hiddens, block Gibbs sampling, CD-k/PCD, AIS and log Z.

    A subclass defines the visible layer: :meth:`visible_log_potential` (the part of log p~(v)
    that does not involve h), :meth:`hidden_logits`, :meth:`_sample_visible` along the AIS path,
    the AIS base (:meth:`_base_log_potential`, :meth:`_base_sample`,
    :meth:`_base_log_normalizer`) and the exact :meth:`exact_log_normalizer`.

    AIS runs along ``log f_beta(v) = (1 - beta) log p~_base(v) + beta visible_log_potential(v)
    + sum_j softplus(beta hidden_logits(v)_j)``, whose end points are the base (with the hiddens
    uniform) and the model.
    """

    density = "unnormalized"
    fit_strategy = "contrastive_divergence"

    def __init__(self, event_shape, support: str, num_hidden: int, num_gibbs_steps: int, num_ais_steps: int) -> None:
        super().__init__(event_shape, support)
        self.num_hidden = check_int("num_hidden", num_hidden)
        self.num_gibbs_steps = check_int("num_gibbs_steps", num_gibbs_steps, minimum=0)
        self.num_ais_steps = check_int("num_ais_steps", num_ais_steps)

    # -------------------------------------------------------------- the visible layer (subclasses)
    def visible_log_potential(self, v: Tensor) -> Tensor:
        """The terms of log p~(v) without h, ``[...]`` for flat visibles ``[..., D]``."""
        raise NotImplementedError

    def hidden_logits(self, v: Tensor) -> Tensor:
        """The logits of ``p(h_j = 1 | v)``, ``[..., H]``."""
        raise NotImplementedError

    def _sample_visible(self, h: Tensor, beta: float = 1.0) -> Tensor:
        """A draw of v given h at inverse temperature ``beta`` of the AIS path."""
        raise NotImplementedError

    def _base_log_potential(self, v: Tensor) -> Tensor:
        raise NotImplementedError

    def _base_sample(self, n: int) -> Tensor:
        raise NotImplementedError

    def _base_log_normalizer(self) -> Tensor:
        """log Z of the AIS base: its visible normalizer times 2^H (uniform hiddens)."""
        raise NotImplementedError

    @property
    def _enumerated_units(self) -> int:
        """How many binary units :meth:`exact_log_normalizer` enumerates (2 ** that many states)."""
        raise NotImplementedError

    def exact_log_normalizer(self) -> Tensor:
        """log Z by enumeration."""
        raise NotImplementedError

    # -------------------------------------------------------------- energies and conditionals
    def unnormalized_log_prob(self, v: Tensor) -> Tensor:
        """``log p~(v)`` (minus the free energy) of flat visibles ``[..., D]``."""
        return self.visible_log_potential(v) + F.softplus(self.hidden_logits(v)).sum(-1)

    def log_prob(self, x: Tensor) -> Tensor:
        """log p~(x) in nats, ``[N]``; subtract :meth:`log_normalizer` for log p(x)."""
        x = self.validate(x)
        return self.unnormalized_log_prob(x.reshape(len(x), -1))

    def hidden_probabilities(self, v: Tensor) -> Tensor:
        """``p(h_j = 1 | v)`` for flat visibles ``[..., D]``, ``[..., H]``."""
        return torch.sigmoid(self.hidden_logits(v))

    def _sample_hidden(self, v: Tensor, beta: float = 1.0) -> Tensor:
        return _bernoulli(torch.sigmoid(beta * self.hidden_logits(v)))

    def gibbs(self, v: Tensor, steps: int) -> Tensor:
        """``steps`` block-Gibbs sweeps v -> h -> v from flat visibles ``v``."""
        with torch.no_grad():
            for _ in range(steps):
                v = self._sample_visible(self._sample_hidden(v))
        return v

    def sample(self, n: int) -> Tensor:
        """``n`` draws after ``num_gibbs_steps`` sweeps from the AIS base model."""
        n = self._check_n(n)
        with torch.no_grad():
            return self.gibbs(self._base_sample(n), self.num_gibbs_steps).reshape(n, *self.event_shape)

    # -------------------------------------------------------------- the Pyro program
    @pyro_method
    def model(self, x: Tensor, y: Tensor | None = None) -> None:
        v = x.reshape(len(x), -1)
        with data_plate(self, v):
            pyro.factor("x", self.unnormalized_log_prob(v))

    # -------------------------------------------------------------- training (CD-k, PCD)
    def contrastive_divergence_loss(self, x: Tensor, k: int, chains: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """A loss whose gradient is the CD-k estimate of the mean NLL gradient, and the negatives.

        ``k`` Gibbs sweeps start from the data (CD-k) or from ``chains`` (persistent CD); the loss
        is ``mean log p~(negatives) - mean log p~(x)`` with the negatives held fixed.
        """
        v = x.reshape(len(x), -1)
        negatives = self.gibbs(v if chains is None else chains, k)
        loss = self.unnormalized_log_prob(negatives).mean() - self.unnormalized_log_prob(v).mean()
        return loss, negatives

    # -------------------------------------------------------------- the normalizer
    def _states(self, units: int, chunk: int = 1 << 16) -> Iterator[Tensor]:
        """Every binary vector of length ``units``, in chunks of rows."""
        bits = 2 ** torch.arange(units, device=self.device)
        for start in range(0, 2**units, chunk):
            index = torch.arange(start, min(start + chunk, 2**units), device=self.device)
            yield ((index[:, None] & bits) > 0).to(self.dtype)

    def _check_enumerable(self) -> None:
        if self._enumerated_units > EXACT_MAX_UNITS:
            raise ValueError(
                f"exact log Z enumerates 2^{self._enumerated_units} states; allowed up to 2^{EXACT_MAX_UNITS}"
            )

    def _path_log_prob(self, v: Tensor, beta: float) -> Tensor:
        return (
            (1 - beta) * self._base_log_potential(v)
            + beta * self.visible_log_potential(v)
            + F.softplus(beta * self.hidden_logits(v)).sum(-1)
        )

    def ais_log_weights(self, num_runs: int, num_steps: int | None = None) -> Tensor:
        """Per-run AIS estimates ``log Z_base + log w`` (``[num_runs]``) from the base model.

        Transitions are block-Gibbs sweeps at each beta, betas linear in [0, 1];
        ``logsumexp(w) - log num_runs`` is the estimate of log Z.
        """
        num_runs, num_steps = check_int("num_runs", num_runs), check_int("num_steps", num_steps or self.num_ais_steps)
        with torch.no_grad():
            v = self._base_sample(num_runs)
            log_w = torch.zeros(num_runs, dtype=self.dtype, device=self.device)
            betas = torch.linspace(0, 1, num_steps + 1).tolist()
            for previous, beta in itertools.pairwise(betas):
                log_w += self._path_log_prob(v, beta) - self._path_log_prob(v, previous)
                v = self._sample_visible(self._sample_hidden(v, beta), beta)
            return self._base_log_normalizer() + log_w

    def log_normalizer(self, num_samples: int = 100, *, method: str = "auto") -> tuple[Tensor, str]:
        """(log Z, kind): "exact" by enumeration, or an AIS "estimate" with ``num_samples`` runs.

        ``method``: "auto" (exact when at most 2^20 states are enumerated), "exact" or "ais".
        """
        if method not in ("auto", "exact", "ais"):
            raise ValueError(f"unknown method {method!r}; expected 'auto', 'exact' or 'ais'")
        if method == "exact" or (method == "auto" and self._enumerated_units <= EXACT_MAX_UNITS):
            return self.exact_log_normalizer(), "exact"
        weights = self.ais_log_weights(num_samples)
        return torch.logsumexp(weights, 0) - math.log(num_samples), "estimate"

    def _config_kwargs(self) -> dict[str, Any]:
        return {
            "num_hidden": self.num_hidden,
            "num_gibbs_steps": self.num_gibbs_steps,
            "num_ais_steps": self.num_ais_steps,
        }


@register(
    "rbm",
    description="Bernoulli-Bernoulli RBM (CD-k / PCD; log Z exact or by AIS)",
    fit_defaults={"epochs": 100, "lr": 1e-2, "batch_size": 50},
)
class RBM(RBMBase):
    """A restricted Boltzmann machine with binary visible and hidden units.

    The AIS base is the base-rate model (independent visibles at the data's log-odds, set by
    ``init_from_data``).

    Args:
        event_shape, support: of the binary data.
        num_hidden: number of hidden units H.
        num_gibbs_steps: Gibbs sweeps ``sample`` runs from the base-rate model.
        num_ais_steps: intermediate temperatures of AIS (when log Z is not enumerated).

    Example:
        >>> import probgen as pg
        >>> train = pg.load_dataset("digits-binary")
        >>> rbm = RBM(64, "binary", num_hidden=12)
        >>> _ = pg.fit(rbm, train, epochs=2, progress=False)
        >>> pg.log_likelihood(rbm, train).kind  # log p~(x) - exact log Z
        'exact'
    """

    supports = ("binary",)

    def __init__(
        self,
        event_shape,
        support: str = "binary",
        *,
        num_hidden: int = 16,
        num_gibbs_steps: int = 1000,
        num_ais_steps: int = 2000,
    ) -> None:
        super().__init__(event_shape, support, num_hidden, num_gibbs_steps, num_ais_steps)
        d = self.num_dims
        self.weight = PyroParam(0.01 * torch.randn(d, self.num_hidden))
        self.visible_bias = PyroParam(torch.zeros(d))
        self.hidden_bias = PyroParam(torch.zeros(self.num_hidden))
        self.register_buffer("base_rate_logits", torch.zeros(d))  # the AIS start (and sampling start)

    def visible_log_potential(self, v: Tensor) -> Tensor:
        return v @ self.visible_bias

    def hidden_logits(self, v: Tensor) -> Tensor:
        return v @ self.weight + self.hidden_bias

    def _sample_visible(self, h: Tensor, beta: float = 1.0) -> Tensor:
        logits = beta * (h @ self.weight.T + self.visible_bias) + (1 - beta) * self.base_rate_logits
        return _bernoulli(torch.sigmoid(logits))

    def _base_log_potential(self, v: Tensor) -> Tensor:
        return v @ self.base_rate_logits

    def _base_sample(self, n: int) -> Tensor:
        return torch.bernoulli(torch.sigmoid(self.base_rate_logits.expand(n, -1)))

    def _base_log_normalizer(self) -> Tensor:
        return F.softplus(self.base_rate_logits).sum() + self.num_hidden * math.log(2)

    def init_from_data(self, x: Tensor, y: Tensor | None = None) -> None:
        """Visible biases (and the AIS base rates) at the data's log-odds (Hinton 2010, §8.1)."""
        mean = x.reshape(len(x), -1).mean(0)
        smoothed = (mean * len(x) + 0.5) / (len(x) + 1)
        with torch.no_grad():
            self.base_rate_logits = torch.logit(smoothed)
            self.visible_bias = self.base_rate_logits.clone()

    @property
    def _enumerated_units(self) -> int:
        return min(self.num_dims, self.num_hidden)

    def exact_log_normalizer(self) -> Tensor:
        """log Z by enumerating the smaller layer (at most 2^:data:`EXACT_MAX_UNITS` states)."""
        self._check_enumerable()
        with torch.no_grad():
            if self.num_hidden <= self.num_dims:  # sum over h: c.h + sum_i softplus(b_i + W_i.h)
                terms = [
                    s @ self.hidden_bias + F.softplus(s @ self.weight.T + self.visible_bias).sum(-1)
                    for s in self._states(self.num_hidden)
                ]
            else:
                terms = [self.unnormalized_log_prob(s) for s in self._states(self.num_dims)]
            return torch.logsumexp(torch.cat(terms), 0)


@register(
    "gaussian-rbm",
    description="Gaussian-Bernoulli RBM on real data (CD-k / PCD; log Z exact over the hiddens or by AIS)",
    fit_defaults={"epochs": 100, "lr": 1e-2, "batch_size": 50},
)
class GaussianRBM(RBMBase):
    """A restricted Boltzmann machine with Gaussian visible units and binary hidden units.

    ``p(v | h) = N(b + W h, diag(sigma^2))``: the model is a mixture of 2^H Gaussians with a
    shared diagonal covariance whose weights are set by the hidden biases and W (Cho et al. 2011).
    log Z sums, over the 2^H hidden states, the closed-form Gaussian integral
    ``exp(c.h + sum_i ((b_i + (W h)_i)^2 - b_i^2) / (2 sigma_i^2)) prod_i sqrt(2 pi sigma_i^2)``.
    ``init_from_data`` puts b and sigma at the data's mean and standard deviation, and makes
    that Gaussian ``N(a, diag(s^2))`` the AIS base (with uniform hiddens: the model with W and
    the hidden biases at zero, log Z in closed form).

    Args:
        event_shape, support: of the real data.
        num_hidden: number of hidden units H.
        learn_scale: whether sigma is learned (a parameter) or fixed at its start (the data's
            standard deviation after ``init_from_data``; 1 before).
        num_gibbs_steps: Gibbs sweeps ``sample`` runs from the base Gaussian.
        num_ais_steps: intermediate temperatures of AIS (when log Z is not enumerated).

    Example:
        >>> import probgen as pg
        >>> train = pg.load_dataset("moons")
        >>> rbm = GaussianRBM(2, "real", num_hidden=8)
        >>> _ = pg.fit(rbm, train, epochs=2, progress=False)
        >>> pg.log_likelihood(rbm, train).kind  # log p~(x) - log Z summed over 2^8 hidden states
        'exact'
    """

    supports = ("real",)

    def __init__(
        self,
        event_shape,
        support: str = "real",
        *,
        num_hidden: int = 16,
        learn_scale: bool = True,
        num_gibbs_steps: int = 1000,
        num_ais_steps: int = 2000,
    ) -> None:
        super().__init__(event_shape, support, num_hidden, num_gibbs_steps, num_ais_steps)
        if not isinstance(learn_scale, bool):
            raise ValueError(f"learn_scale must be True or False, got {learn_scale!r}")
        self.learn_scale = learn_scale
        d = self.num_dims
        self.weight = PyroParam(0.01 * torch.randn(d, self.num_hidden))
        self.visible_bias = PyroParam(torch.zeros(d))
        self.hidden_bias = PyroParam(torch.zeros(self.num_hidden))
        if learn_scale:
            self.visible_scale = PyroParam(torch.ones(d), constraints.positive)
        else:
            self.register_buffer("visible_scale", torch.ones(d))
        self.register_buffer("base_loc", torch.zeros(d))  # the AIS base (and sampling start)
        self.register_buffer("base_scale", torch.ones(d))

    def visible_log_potential(self, v: Tensor) -> Tensor:
        return -(((v - self.visible_bias) / self.visible_scale) ** 2).sum(-1) / 2

    def hidden_logits(self, v: Tensor) -> Tensor:
        return (v / self.visible_scale**2) @ self.weight + self.hidden_bias

    def visible_mean(self, h: Tensor) -> Tensor:
        """The mean ``b + W h`` of ``p(v | h)``, ``[..., D]``."""
        return self.visible_bias + h @ self.weight.T

    def _sample_visible(self, h: Tensor, beta: float = 1.0) -> Tensor:
        """``v | h`` under ``(1 - beta) log N(v; a, s^2) + beta log N(v; b + W h, sigma^2)``: a
        Gaussian whose precision and precision-weighted mean are the two's, mixed by beta."""
        model_precision, base_precision = self.visible_scale**-2, self.base_scale**-2
        precision = beta * model_precision + (1 - beta) * base_precision
        weighted = beta * model_precision * self.visible_mean(h) + (1 - beta) * base_precision * self.base_loc
        return weighted / precision + precision.rsqrt() * torch.randn_like(weighted)

    def _base_log_potential(self, v: Tensor) -> Tensor:
        return -(((v - self.base_loc) / self.base_scale) ** 2).sum(-1) / 2

    def _base_sample(self, n: int) -> Tensor:
        return self.base_loc + self.base_scale * torch.randn(n, self.num_dims, dtype=self.dtype, device=self.device)

    def _base_log_normalizer(self) -> Tensor:
        return (0.5 * torch.log(2 * math.pi * self.base_scale**2)).sum() + self.num_hidden * math.log(2)

    def init_from_data(self, x: Tensor, y: Tensor | None = None) -> None:
        """b and sigma (and the AIS base) at the data's mean and standard deviation."""
        flat = x.reshape(len(x), -1)
        with torch.no_grad():
            self.base_loc = flat.mean(0)
            self.base_scale = flat.std(0).clamp(min=1e-3) if len(x) > 1 else torch.ones_like(self.base_scale)
            self.visible_bias = self.base_loc.clone()
            self.visible_scale = self.base_scale.clone()

    @property
    def _enumerated_units(self) -> int:
        return self.num_hidden

    def exact_log_normalizer(self) -> Tensor:
        """log Z summed over the 2^H hidden states (H at most :data:`EXACT_MAX_UNITS`), each term
        the Gaussian integral over v in closed form."""
        self._check_enumerable()
        with torch.no_grad():
            b, variance = self.visible_bias, self.visible_scale**2
            terms = []
            for s in self._states(self.num_hidden):
                shift = s @ self.weight.T  # W h, [S, D]
                terms.append(s @ self.hidden_bias + ((2 * b * shift + shift**2) / (2 * variance)).sum(-1))
            return torch.logsumexp(torch.cat(terms), 0) + (0.5 * torch.log(2 * math.pi * variance)).sum()

    def _config_kwargs(self) -> dict[str, Any]:
        return {**super()._config_kwargs(), "learn_scale": self.learn_scale}
