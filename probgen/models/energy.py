"""Energy-based models: the Bernoulli–Bernoulli restricted Boltzmann machine.

``E(v, h) = -b.v - c.h - v.W.h`` over binary visibles v (D) and hiddens h (H), with
``p(v, h) = exp(-E) / Z``. Summing out h gives the unnormalized density
``log p~(v) = b.v + sum_j softplus(c_j + v.W_j)`` (minus the free energy), which is what
``log_prob`` returns (density "unnormalized"). ``log_normalizer`` gives log Z exactly by
enumerating the smaller layer when it has at most 20 units, and otherwise by annealed
importance sampling from the base-rate model (``ais_log_weights`` keeps every run, so the
spread over runs is visible). Training is CD-k or persistent CD (the "contrastive_divergence"
strategy calls :meth:`RBM.contrastive_divergence_loss`).

As a Pyro program the hiddens are summed out: the model is the factor ``log p~(v)`` inside
the data plate and the guide is empty (plain SVI then raises p~, which is not maximum
likelihood: that needs log Z, hence CD).

References:
    Smolensky (1986); Hinton, "Training Products of Experts by Minimizing Contrastive
    Divergence" (2002); Hinton, "A Practical Guide to Training Restricted Boltzmann Machines"
    (2010); Salakhutdinov & Murray, "On the Quantitative Analysis of Deep Belief Networks" (2008).
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import pyro
import torch
import torch.nn.functional as F
from pyro.nn import PyroParam, pyro_method
from torch import Tensor

from probgen._checks import check_int
from probgen.models.base import GenerativeModel
from probgen.models.registry import register

__all__ = ["RBM", "EXACT_MAX_UNITS"]

#: log Z is computed exactly when the smaller layer has at most this many units
EXACT_MAX_UNITS = 20


def _bernoulli(p: Tensor) -> Tensor:
    """Bernoulli draws of ``p`` (a NaN draws 0, so a diverged model fails at its loss, by name)."""
    return (torch.rand_like(p) < p).to(p.dtype)


@register(
    "rbm",
    description="Bernoulli-Bernoulli RBM (CD-k / PCD; log Z exact or by AIS)",
    fit_defaults={"epochs": 100, "lr": 1e-2, "batch_size": 50},
)
class RBM(GenerativeModel):
    """A restricted Boltzmann machine with binary visible and hidden units.

    Args:
        event_shape, support: of the binary data.
        hidden: number of hidden units H.
        gibbs_steps: Gibbs sweeps ``sample`` runs from the base-rate model.
        ais_steps: intermediate temperatures of AIS (when log Z is not enumerated).

    Example:
        >>> import probgen as pg
        >>> train = pg.load_dataset("digits-binary")
        >>> rbm = RBM(64, "binary", hidden=12)
        >>> _ = pg.fit(rbm, train, epochs=2, progress=False)
        >>> pg.log_likelihood(rbm, train).kind  # log p~(x) - exact log Z
        'exact'
    """

    supports = ("binary",)
    density = "unnormalized"
    fit_strategy = "contrastive_divergence"

    def __init__(
        self, event_shape, support: str = "binary", *, hidden: int = 16, gibbs_steps: int = 1000, ais_steps: int = 2000
    ) -> None:
        super().__init__(event_shape, support)
        self.hidden = check_int("hidden", hidden)
        self.gibbs_steps = check_int("gibbs_steps", gibbs_steps, minimum=0)
        self.ais_steps = check_int("ais_steps", ais_steps)
        d = self.num_dims
        self.weight = PyroParam(0.01 * torch.randn(d, self.hidden))
        self.visible_bias = PyroParam(torch.zeros(d))
        self.hidden_bias = PyroParam(torch.zeros(self.hidden))
        self.register_buffer("base_rate_logits", torch.zeros(d))  # the AIS start (and sampling start)

    # -------------------------------------------------------------- energies and conditionals
    def unnormalized_log_prob(self, v: Tensor) -> Tensor:
        """``log p~(v)`` (minus the free energy) of flat visibles ``[..., D]``."""
        return v @ self.visible_bias + F.softplus(v @ self.weight + self.hidden_bias).sum(-1)

    def log_prob(self, x: Tensor) -> Tensor:
        """log p~(x) in nats, ``[N]``; subtract :meth:`log_normalizer` for log p(x)."""
        x = self.validate(x)
        return self.unnormalized_log_prob(x.reshape(len(x), -1))

    def _sample_hidden(self, v: Tensor, beta: float = 1.0) -> Tensor:
        return _bernoulli(torch.sigmoid(beta * (v @ self.weight + self.hidden_bias)))

    def _sample_visible(self, h: Tensor, beta: float = 1.0) -> Tensor:
        logits = beta * (h @ self.weight.T + self.visible_bias) + (1 - beta) * self.base_rate_logits
        return _bernoulli(torch.sigmoid(logits))

    def gibbs(self, v: Tensor, steps: int) -> Tensor:
        """``steps`` block-Gibbs sweeps v -> h -> v from flat visibles ``v``."""
        with torch.no_grad():
            for _ in range(steps):
                v = self._sample_visible(self._sample_hidden(v))
        return v

    def sample(self, n: int) -> Tensor:
        """``n`` draws after ``gibbs_steps`` sweeps from the base-rate model."""
        n = self._check_n(n)
        with torch.no_grad():
            v0 = torch.bernoulli(torch.sigmoid(self.base_rate_logits.expand(n, -1)))
            return self.gibbs(v0, self.gibbs_steps).reshape(n, *self.event_shape)

    # -------------------------------------------------------------- the Pyro program
    @pyro_method
    def model(self, x: Tensor, y: Tensor | None = None) -> None:
        v = x.reshape(len(x), -1)
        with self.data_plate(v):
            pyro.factor("x", v @ self.visible_bias + F.softplus(v @ self.weight + self.hidden_bias).sum(-1))

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

    def init_from_data(self, x: Tensor, y: Tensor | None = None) -> None:
        """Visible biases (and the AIS base rates) at the data's log-odds (Hinton 2010, §8.1)."""
        mean = x.reshape(len(x), -1).mean(0)
        smoothed = (mean * len(x) + 0.5) / (len(x) + 1)
        with torch.no_grad():
            self.base_rate_logits = torch.logit(smoothed)
            self.visible_bias = self.base_rate_logits.clone()

    # -------------------------------------------------------------- the normalizer
    def exact_log_normalizer(self) -> Tensor:
        """log Z by enumerating the smaller layer (at most :data:`EXACT_MAX_UNITS` units)."""
        d, h = self.num_dims, self.hidden
        if min(d, h) > EXACT_MAX_UNITS:
            raise ValueError(f"exact log Z enumerates 2^{min(d, h)} states; allowed up to 2^{EXACT_MAX_UNITS}")
        with torch.no_grad():
            if h <= d:  # sum over h: c.h + sum_i softplus(b_i + W_i.h)
                terms = [
                    s @ self.hidden_bias + F.softplus(s @ self.weight.T + self.visible_bias).sum(-1)
                    for s in self._states(h)
                ]
            else:
                terms = [self.unnormalized_log_prob(s) for s in self._states(d)]
            return torch.logsumexp(torch.cat(terms), 0)

    def _states(self, units: int, chunk: int = 1 << 16):
        """Every binary vector of length ``units``, in chunks of rows."""
        bits = 2 ** torch.arange(units, device=self.device)
        for start in range(0, 2**units, chunk):
            index = torch.arange(start, min(start + chunk, 2**units), device=self.device)
            yield ((index[:, None] & bits) > 0).to(self.dtype)

    def ais_log_weights(self, num_runs: int, num_steps: int | None = None) -> Tensor:
        """Per-run AIS estimates ``log Z_A + log w`` (``[num_runs]``) from the base-rate model.

        The path is ``p_beta(v) ∝ exp((1-beta) a.v + beta b.v) prod_j (1 + exp(beta (c_j + v.W_j)))``
        with ``a`` the base-rate logits; transitions are Gibbs sweeps at each beta, betas linear
        in [0, 1]. ``logsumexp(w) - log num_runs`` is the estimate of log Z.
        """
        num_runs, num_steps = check_int("num_runs", num_runs), check_int("num_steps", num_steps or self.ais_steps)
        a = self.base_rate_logits

        def log_f(v: Tensor, beta: float) -> Tensor:
            return (
                (1 - beta) * (v @ a)
                + beta * (v @ self.visible_bias)
                + F.softplus(beta * (v @ self.weight + self.hidden_bias)).sum(-1)
            )

        with torch.no_grad():
            log_z_base = F.softplus(a).sum() + self.hidden * math.log(2)
            v = torch.bernoulli(torch.sigmoid(a.expand(num_runs, -1)))
            log_w = torch.zeros(num_runs, dtype=self.dtype, device=self.device)
            betas = torch.linspace(0, 1, num_steps + 1).tolist()
            for previous, beta in itertools.pairwise(betas):
                log_w += log_f(v, beta) - log_f(v, previous)
                v = self._sample_visible(self._sample_hidden(v, beta), beta)
            return log_z_base + log_w

    def log_normalizer(self, num_samples: int = 100, *, method: str = "auto") -> tuple[Tensor, str]:
        """(log Z, kind): "exact" by enumeration, or an AIS "estimate" with ``num_samples`` runs.

        ``method``: "auto" (exact when the smaller layer has <= 20 units), "exact" or "ais".
        """
        if method not in ("auto", "exact", "ais"):
            raise ValueError(f"unknown method {method!r}; expected 'auto', 'exact' or 'ais'")
        if method == "exact" or (method == "auto" and min(self.num_dims, self.hidden) <= EXACT_MAX_UNITS):
            return self.exact_log_normalizer(), "exact"
        weights = self.ais_log_weights(num_samples)
        return torch.logsumexp(weights, 0) - math.log(num_samples), "estimate"

    def _config_kwargs(self) -> dict[str, Any]:
        return {"hidden": self.hidden, "gibbs_steps": self.gibbs_steps, "ais_steps": self.ais_steps}
