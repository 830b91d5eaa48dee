"""Denoising diffusion probabilistic models (DDPM) as a hierarchical latent-variable model.

The forward process ``q(x_t | x_{t-1}) = N(sqrt(1 - beta_t) x_{t-1}, beta_t I)`` is fixed; it is
the guide, written in its reverse factorisation ``q(x_T | x_0) prod_t q(x_{t-1} | x_t, x_0)``.
The learned reverse process is the model: ``p(x_T) = N(0, I)``,
``p(x_{t-1} | x_t) = N(mu(x_t, t), sigma_t^2 I)`` with ``mu`` from a noise predictor
``eps(x_t, t)`` and ``sigma_t^2`` fixed (beta_t or the posterior's variance) or learned (per
dimension, between the two, as Nichol & Dhariwal), and a decoder ``p(x_0 | x_1)`` that
is a discretized Gaussian on the data's levels (k-level data mapped to [-1, 1]) or, for real
data, a Gaussian in the data's units. For discrete data the denoiser can instead (and does by
default) give each dimension's posterior over its levels, ``p(x_0 = c_k | x_t)``, by Bayes'
rule: the mean of that posterior predicts x_0 (hence eps), and at t = 1 the posterior itself
is the decoder, a categorical. Its ELBO is the variational bound of Ho et al.: with
analytic KLs (``objective="analytic_kl"``; :meth:`DDPM.variational_bound`) each site pair is
one ``L_{t-1}`` term. Training uses the simple noise-prediction loss
(:func:`ddpm_simple_loss`) or, with learned variances, the hybrid loss
(:func:`ddpm_hybrid_loss`), L_simple plus a small multiple of the bound that trains the
variances; the density is "lower_bound" — reported in nats and bits/dim, never as a likelihood.
Betas follow a linear schedule (Ho et al.) or the cosine one (Nichol & Dhariwal).

References:
    Sohl-Dickstein et al., "Deep Unsupervised Learning using Nonequilibrium Thermodynamics"
    (2015), arXiv:1503.03585.
    Ho, Jain & Abbeel, "Denoising Diffusion Probabilistic Models" (2020), arXiv:2006.11239.
    Nichol & Dhariwal, "Improved Denoising Diffusion Probabilistic Models" (2021),
    arXiv:2102.09672.
    Dieleman et al., "Continuous diffusion for categorical data" (2022), arXiv:2211.15089.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import pyro
import pyro.distributions as dist
import torch
from pyro.nn import pyro_method
from torch import Tensor, nn
from torch.distributions import constraints

from probgen._checks import check_int
from probgen.models.base import GenerativeModel, data_plate, network, num_data
from probgen.models.networks import MLP
from probgen.models.registry import register

__all__ = ["DDPM", "DiscretizedGaussian", "ddpm_simple_loss", "ddpm_hybrid_loss", "cosine_betas"]

REVERSE_VARIANCES = ("beta", "posterior", "learned")
SCHEDULES = ("linear", "cosine")
PARAMETERIZATIONS = ("noise", "levels")
#: the most levels for which "levels" is the default (the output layer grows with D x levels)
MAX_DEFAULT_LEVELS = 32
#: beta_range when none is given (T near 50): levels need noise near their spacing at step 1
DEFAULT_BETA_RANGES = {"noise": (1e-3, 0.2), "levels": (0.03, 0.2)}


class Denoised(NamedTuple):
    """One pass of the denoiser: the noise prediction ``eps``, the variance interpolation ``v``
    (learned variances) and the levels' logits ``log p(x_0 = c_k | x_t)`` ("levels")."""

    eps: Tensor
    v: Tensor | None = None
    logits: Tensor | None = None


def cosine_betas(steps: int, offset: float = 0.008) -> Tensor:
    """Betas (float64, steps 1..T) with ``alpha_bar_t = f(t) / f(0)``,
    ``f(t) = cos^2((t / T + s) / (1 + s) * pi / 2)``, each clipped at 0.999 (Nichol & Dhariwal's eq. 17).

    Example:
        >>> b = cosine_betas(50)
        >>> round(b[0].item(), 5), b[-1].item(), bool((b[1:] >= b[:-1]).all())
        (0.00175, 0.999, True)
    """
    f = torch.cos((torch.arange(steps + 1, dtype=torch.float64) / steps + offset) / (1 + offset) * math.pi / 2) ** 2
    return (1 - f[1:] / f[:-1]).clamp(max=0.999)


class DiscretizedGaussian(dist.TorchDistribution):
    """``N(loc, scale)`` integrated over the bins of k levels ``-1, ..., 1`` (the end bins open)."""

    arg_constraints = {"loc": constraints.real, "scale": constraints.positive}
    has_rsample = False

    def __init__(self, loc: Tensor, scale: Tensor, levels: int, validate_args: bool | None = None) -> None:
        self.loc, self.scale = torch.broadcast_tensors(loc, scale)
        self.levels, self.half = levels, 1.0 / (levels - 1)  # half a bin on the [-1, 1] scale
        super().__init__(self.loc.shape, validate_args=validate_args)

    @property
    def support(self) -> constraints.Constraint:
        return constraints.integer_interval(0, self.levels - 1)

    def expand(self, batch_shape, _instance=None) -> DiscretizedGaussian:
        return DiscretizedGaussian(self.loc.expand(batch_shape), self.scale.expand(batch_shape), self.levels)

    def log_prob(self, value: Tensor) -> Tensor:
        centre = 2 * value / (self.levels - 1) - 1
        upper = (centre + self.half - self.loc) / self.scale
        lower = (centre - self.half - self.loc) / self.scale
        log_cdf_upper, log_sf_lower = torch.special.log_ndtr(upper), torch.special.log_ndtr(-lower)
        between = torch.log((torch.special.ndtr(upper) - torch.special.ndtr(lower)).clamp(min=1e-12))
        return torch.where(value <= 0, log_cdf_upper, torch.where(value >= self.levels - 1, log_sf_lower, between))

    def sample(self, sample_shape=torch.Size()) -> Tensor:
        with torch.no_grad():
            v = torch.normal(
                self.loc.expand(sample_shape + self.loc.shape), self.scale.expand(sample_shape + self.loc.shape)
            )
            return ((v + 1) * (self.levels - 1) / 2).round().clamp(0, self.levels - 1)


def ddpm_simple_loss(model: DDPM, x: Tensor, y: Tensor | None = None) -> Tensor:
    """Ho et al.'s ``L_simple``: ``|eps - eps(x_t, t)|^2`` at one uniform t per example (summed
    over dimensions), scaled like an ELBO (N / B times the batch sum) for ``probgen.fit``. With
    the "levels" parameterization it adds the categorical decoder's ``-log p(x_0 | x_1)`` at a
    fresh x_1 (the decoder is trained by its likelihood, as the bound weighs it)."""
    return model.simple_loss(x)


def ddpm_hybrid_loss(model: DDPM, x: Tensor, y: Tensor | None = None) -> Tensor:
    """Nichol & Dhariwal's ``L_hybrid = L_simple + lambda L_vlb`` (lambda = ``model.vlb_weight``):
    at one uniform t per example, the noise loss plus lambda T times that step's term of the bound,
    whose reverse mean is held fixed (stop-gradient), so the bound trains only the variances."""
    return model.simple_loss(x, vlb_weight=model.vlb_weight)


def _check_beta_range(beta_range: Any) -> tuple[float, float]:
    """``beta_range`` as two floats, each a variance in (0, 1); else a ValueError naming it."""
    numbers = isinstance(beta_range, Sequence) and not isinstance(beta_range, str) and len(beta_range) == 2
    if not numbers or not all(isinstance(b, int | float) and not isinstance(b, bool) and 0 < b < 1 for b in beta_range):
        raise ValueError(f"beta_range must be two numbers in (0, 1) (the first and last beta), got {beta_range!r}")
    return float(beta_range[0]), float(beta_range[1])


@register(
    "ddpm",
    description="DDPM diffusion (levels' posterior or eps, learned variances; variational lower bound)",
    fit_defaults={"epochs": 300, "lr": 1e-3, "batch_size": 100},
    compare_budget={"epochs": 15},
)
class DDPM(GenerativeModel):
    """A DDPM with an MLP denoiser on flattened x.

    Args:
        event_shape, support: of the data ("binary", "discrete(k)" or "real").
        steps: T, the number of diffusion steps.
        hidden_features: hidden widths of the denoiser.
        beta_range: betas linear from ``beta_range[0]`` (step 1) to ``beta_range[1]`` (step T);
            Ho et al.'s (1e-4, 0.02) is for T = 1000; the defaults are for T near 50: (1e-3, 0.2)
            for eps prediction, (0.03, 0.2) for levels (step 1's noise near their spacing).
        schedule: "linear" (``beta_range``) or "cosine" (:func:`cosine_betas`; ``beta_range``
            unused). The cosine schedule is made for T in the thousands: its last beta, 0.999,
            multiplies eps errors by 30 in the bound, which dominates it at T = 50.
        reverse_variance: sigma_t^2 of the reverse steps, "beta" (beta_t; the exact reversal
            when the data are N(0, I)), "posterior" (beta~_t; exact for a single point) or
            "learned": ``exp(f log beta_t + (1 - f) log beta~_t)``, ``f = (tanh(v) + 1) / 2`` with
            ``v`` a second output of the denoiser per dimension (Nichol & Dhariwal's f is
            ``(v + 1) / 2`` unbounded; beta~_1, zero, is replaced by beta~_2), trained by
            :func:`ddpm_hybrid_loss` (the default objective then).
        vlb_weight: lambda of the hybrid loss (Nichol & Dhariwal's 0.001).
        parameterization: what the denoiser predicts: "noise" (eps, Ho et al.; the default for
            real data and for more than 32 levels) or, for discrete data (the default for up to
            32 levels: the output layer has D x levels units), "levels": logits over each
            dimension's levels, added to the Gaussian log-likelihood of x_t under each level; the
            posterior's mean level predicts x_0 (eps follows) and at t = 1 the posterior is the
            decoder. Bayes' rule with a learned prior, in the spirit of the score interpolation of
            Dieleman et al. (2022): exact where the noise is below the levels' spacing, where an
            eps-network's errors dominate the bound (on 17-level digits, T = 50, 300 epochs:
            98 nats against 166).

    Example:
        >>> import probgen as pg
        >>> data = pg.load_dataset("digits")
        >>> ddpm = DDPM.from_dataset(data, steps=20, hidden_features=(64,))
        >>> _ = pg.fit(ddpm, data, epochs=1, progress=False)
        >>> pg.log_likelihood(ddpm, data.x[:50], method="elbo", num_samples=2).kind
        'lower_bound'
    """

    density = "lower_bound"

    def default_fit_options(self) -> dict[str, Any]:
        """The objective: the simple noise-prediction loss of Ho et al. (eq. 14), or the hybrid
        loss of Nichol & Dhariwal when the variances are learned (L_simple does not train them).
        Validation scores the bound (its KLs analytic): the training losses are surrogates that
        stop tracking it, and choosing the best epoch by them stops early."""
        objective = ddpm_hybrid_loss if self.reverse_variance == "learned" else ddpm_simple_loss
        return {"objective": objective, "val_objective": "analytic_kl"}

    def __init__(
        self,
        event_shape,
        support: str,
        *,
        steps: int = 50,
        hidden_features: Sequence[int] = (256, 256),
        beta_range: Sequence[float] | None = None,
        schedule: str = "linear",
        reverse_variance: str = "learned",
        vlb_weight: float = 0.001,
        parameterization: str | None = None,
    ) -> None:
        super().__init__(event_shape, support)
        self.steps, self.hidden_features = check_int("steps", steps), tuple(int(h) for h in hidden_features)
        if parameterization is None:
            few = self.num_levels is not None and self.num_levels <= MAX_DEFAULT_LEVELS
            parameterization = "levels" if few else "noise"
        self._check_options(schedule, reverse_variance, parameterization, vlb_weight)
        self.schedule, self.reverse_variance, self.vlb_weight = schedule, reverse_variance, float(vlb_weight)
        self.parameterization = parameterization
        self.beta_range = _check_beta_range(beta_range or DEFAULT_BETA_RANGES[parameterization])
        if schedule == "cosine":
            betas = cosine_betas(self.steps)
        else:
            betas = torch.linspace(*self.beta_range, self.steps, dtype=torch.float64)
        self.register_buffer("betas", torch.cat([betas.new_zeros(1), betas]).float())  # index t = 1..T
        self.register_buffer("data_loc", torch.zeros(self.num_dims))
        self.register_buffer("data_scale", torch.ones(self.num_dims))
        per_dim = self.num_levels if parameterization == "levels" else 1
        outputs = self.num_dims * (per_dim + (reverse_variance == "learned"))
        self.denoiser = MLP(self.num_dims + 16, self.hidden_features, outputs, activation=nn.SiLU)

    def _check_options(self, schedule: str, reverse_variance: str, parameterization: str, vlb_weight: Any) -> None:
        for name, value, known in (
            ("schedule", schedule, SCHEDULES),
            ("reverse_variance", reverse_variance, REVERSE_VARIANCES),
            ("parameterization", parameterization, PARAMETERIZATIONS),
        ):
            if value not in known:
                raise ValueError(f"unknown {name} {value!r}; expected one of {known}")
        if parameterization == "levels" and self.num_levels is None:
            raise ValueError(
                f"parameterization 'levels' needs discrete data (binary or discrete(k)), got {self.support!r}"
            )
        if isinstance(vlb_weight, bool) or not isinstance(vlb_weight, int | float) or not 0 <= vlb_weight < math.inf:
            raise ValueError(f"vlb_weight must be a non-negative number (finite), got {vlb_weight!r}")

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> DDPM:
        """As :meth:`GenerativeModel.from_config`; a config written before an option existed was
        made with that option's value of the time (eps prediction, fixed variances)."""
        before = {"parameterization": "noise", "reverse_variance": "beta", "beta_range": [1e-3, 0.2]}
        return super().from_config(before | config)

    # -------------------------------------------------------------- the diffusion's coefficients
    @property
    def alpha_bars(self) -> Tensor:
        """``alpha_bar_t = prod_{s <= t} (1 - beta_s)`` for t = 0..T (alpha_bar_0 = 1)."""
        return torch.cumprod(1 - self.betas, 0)

    @staticmethod
    def _at(table: Tensor, t: Tensor | int, like: Tensor) -> Tensor:
        """``table[t]`` in ``like``'s dtype: a scalar for one step, ``[B, 1]`` for a step per row."""
        value = table[torch.as_tensor(t, device=table.device)].to(like.dtype)
        return value[:, None] if value.dim() else value

    def _coefficients(self, t: Tensor | int, like: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """beta_t, alpha_bar_t and alpha_bar_{t-1} at step(s) ``t``."""
        ab = self.alpha_bars
        return tuple(self._at(table, t, like) for table in (self.betas, ab, torch.cat([ab[:1], ab[:-1]])))

    def _log_variances(self, t: Tensor | int, like: Tensor) -> tuple[Tensor, Tensor]:
        """log beta_t and log beta~_t at step(s) ``t``; beta~_1 (zero) is replaced by beta~_2
        (by beta_1 when T = 1), as Nichol & Dhariwal clip it."""
        betas, ab = self.betas, self.alpha_bars
        tilde = betas[1:] * (1 - ab[:-1]) / (1 - ab[1:])  # steps 1..T
        first = tilde[1:2] if self.steps > 1 else betas[1:2]
        tables = torch.cat([betas[1:2], betas[1:]]), torch.cat([first, first, tilde[1:]])  # steps 0..T
        return self._at(tables[0].log(), t, like), self._at(tables[1].log(), t, like)

    def _embed(self, t: Tensor, like: Tensor) -> Tensor:
        freqs = torch.exp(torch.linspace(0, math.log(1000), 8, dtype=like.dtype, device=like.device))
        angle = (t.to(like.dtype)[..., None] / self.steps) * freqs
        return torch.cat([angle.sin(), angle.cos()], -1).expand(*like.shape[:-1], 16)

    def _denoise(self, x_t: Tensor, t: Tensor | int) -> Denoised:
        """One pass of the denoiser at step(s) ``t``."""
        out = network(self, "denoiser")(torch.cat([x_t, self._embed(torch.as_tensor(t, device=x_t.device), x_t)], -1))
        v = out[..., -self.num_dims :] if self.reverse_variance == "learned" else None
        if self.parameterization == "noise":
            return Denoised(out[..., : self.num_dims], v)
        _, ab, _ = self._coefficients(t, x_t)
        logits = self._level_logits(x_t, ab, out[..., : self.num_dims * self.num_levels])
        x0 = (logits.softmax(-1) * self._levels(x_t)).sum(-1)  # E[x_0 | x_t]
        return Denoised((x_t - ab.sqrt() * x0) / (1 - ab).sqrt(), v, logits)

    def _levels(self, like: Tensor) -> Tensor:
        """The data's levels on the diffusion scale, ``c_k = 2k / (levels - 1) - 1``."""
        return torch.linspace(-1, 1, self.num_levels, dtype=like.dtype, device=like.device)

    def _level_logits(self, x_t: Tensor, ab: Tensor, out: Tensor) -> Tensor:
        """``log p(x_0 = c_k | x_t)`` per dimension up to a constant, by Bayes' rule: the Gaussian
        likelihood ``q(x_t | x_0 = c_k)`` of each level ``c_k`` plus the network's output (its
        learned log prior ratios). At low noise the likelihood decides alone, and exactly."""
        ab = ab[..., None] if ab.dim() else ab
        log_lik = -((x_t[..., None] - ab.sqrt() * self._levels(x_t)) ** 2) / (2 * (1 - ab))
        return log_lik + out.unflatten(-1, (self.num_dims, self.num_levels))

    def epsilon(self, x_t: Tensor, t: Tensor | int) -> Tensor:
        """The predicted noise of flat ``x_t`` at step(s) ``t``."""
        return self._denoise(x_t, t).eps

    def _posterior(self, x0: Tensor, x_t: Tensor, t: Tensor | int) -> tuple[Tensor, Tensor]:
        """Mean and scale of ``q(x_{t-1} | x_t, x_0)``."""
        beta, ab, ab_prev = self._coefficients(t, x_t)
        mean = (ab_prev.sqrt() * beta * x0 + (1 - beta).sqrt() * (1 - ab_prev) * x_t) / (1 - ab)
        return mean, (beta * (1 - ab_prev) / (1 - ab)).sqrt()

    def _mean(self, x_t: Tensor, t: Tensor | int, eps: Tensor) -> Tensor:
        beta, ab, _ = self._coefficients(t, x_t)
        return (x_t - beta / (1 - ab).sqrt() * eps) / (1 - beta).sqrt()

    def _scale(self, t: Tensor | int, v: Tensor | None, like: Tensor) -> Tensor:
        """sigma_t: learned from ``v``, or fixed: sqrt(beta_t), or sqrt(beta~_t) (sqrt(beta_1) at t = 1)."""
        log_beta, log_tilde = self._log_variances(t, like)
        if v is not None:
            frac = (v.tanh() + 1) / 2  # kept inside [beta~_t, beta_t]: finite even where v runs away
            return ((frac * log_beta + (1 - frac) * log_tilde) / 2).exp()
        if self.reverse_variance == "posterior":
            late = self._at(torch.arange(self.steps + 1, device=like.device) > 1, t, like)
            return (torch.where(late > 0, log_tilde, log_beta) / 2).exp()
        return (log_beta / 2).exp()

    def reverse(self, x_t: Tensor, t: int) -> tuple[Tensor, Tensor]:
        """Mean and scale of ``p(x_{t-1} | x_t)``: ``mu = (x_t - beta_t / sqrt(1 - alpha_bar_t)
        eps(x_t, t)) / sqrt(alpha_t)`` and sigma_t (fixed, or learned per dimension)."""
        if self.reverse_variance == "learned":
            eps, v, _ = self._denoise(x_t, t)
        else:
            eps, v = self.epsilon(x_t, t), None
        return self._mean(x_t, t, eps), self._scale(t, v, x_t)

    def reverse_mean(self, x_t: Tensor, t: int) -> Tensor:
        """``mu(x_t, t)``, the mean of :meth:`reverse`."""
        return self.reverse(x_t, t)[0]

    def _reverse_scale(self, t: int) -> Tensor:
        """The fixed sigma_t of step ``t`` (not for learned variances, which depend on x_t)."""
        return self._scale(t, None, self.betas)

    # -------------------------------------------------------------- data scale and decoder
    def _to_diffusion(self, x: Tensor) -> Tensor:
        x = x.reshape(*x.shape[: x.dim() - len(self.event_shape)], -1)
        if self.num_levels is not None:
            return 2 * x / (self.num_levels - 1) - 1
        return (x - self.data_loc) / self.data_scale

    def _decoder(self, x1: Tensor) -> dist.TorchDistribution:
        """``p(x_0 | x_1)``: the levels' posterior (a categorical) for the "levels"
        parameterization, else a discretized Gaussian (a Gaussian for real data) at the reverse mean."""
        if self.parameterization == "levels":
            return dist.Categorical(logits=self._denoise(x1, 1).logits).to_event(1)
        return self._decoder_at(*self.reverse(x1, 1))

    def _decoder_at(self, loc: Tensor, scale: Tensor, logits: Tensor | None = None) -> dist.TorchDistribution:
        if logits is not None:
            return dist.Categorical(logits=logits).to_event(1)
        if self.num_levels is not None:
            return DiscretizedGaussian(loc, scale.expand(loc.shape), self.num_levels).to_event(1)
        return dist.Normal(self.data_loc + self.data_scale * loc, self.data_scale * scale).to_event(1)

    def _observed(self, x: Tensor) -> Tensor:
        return x.reshape(*x.shape[: x.dim() - len(self.event_shape)], -1)

    # -------------------------------------------------------------- the Pyro program
    @pyro_method
    def model(self, x: Tensor, y: Tensor | None = None) -> None:
        flat = self._observed(x)
        with data_plate(self, flat):
            zero = torch.zeros_like(flat)
            x_t = pyro.sample(f"x{self.steps}", dist.Normal(zero, 1.0).to_event(1))
            for t in range(self.steps, 1, -1):
                x_t = pyro.sample(f"x{t - 1}", dist.Normal(*self.reverse(x_t, t)).to_event(1))
            pyro.sample("x", self._decoder(x_t), obs=flat)

    @pyro_method
    def guide(self, x: Tensor, y: Tensor | None = None) -> None:
        x0 = self._to_diffusion(x)
        with data_plate(self, x0):
            ab = self.alpha_bars[self.steps].to(x0.dtype)
            x_t = pyro.sample(f"x{self.steps}", dist.Normal(ab.sqrt() * x0, (1 - ab).sqrt()).to_event(1))
            for t in range(self.steps, 1, -1):
                x_t = pyro.sample(f"x{t - 1}", dist.Normal(*self._posterior(x0, x_t, t)).to_event(1))

    # -------------------------------------------------------------- training and the bound
    def simple_loss(self, x: Tensor, vlb_weight: float = 0.0) -> Tensor:
        """``L_simple`` (plus ``vlb_weight`` times the bound's term, see :func:`ddpm_hybrid_loss`)
        summed over the batch and scaled by N / B (see :func:`ddpm_simple_loss`)."""
        x0 = self._to_diffusion(x)
        t = torch.randint(1, self.steps + 1, (len(x0),), device=x0.device)
        noise = torch.randn_like(x0)
        ab = self.alpha_bars[t].to(x0.dtype)[:, None]
        x_t = ab.sqrt() * x0 + (1 - ab).sqrt() * noise
        eps, v, logits = self._denoise(x_t, t)
        per_example = ((noise - eps) ** 2).sum(-1)
        flat = self._observed(x)
        if vlb_weight:
            fixed = self._mean(x_t, t, eps.detach()), None if logits is None else logits.detach()
            per_example = per_example + vlb_weight * self.steps * self._bound_term(flat, x0, x_t, t, *fixed, v)
        if self.parameterization == "levels":  # the categorical decoder's own term, -log p(x_0 | x_1)
            ab1 = self.alpha_bars[1].to(x0.dtype)
            x1 = ab1.sqrt() * x0 + (1 - ab1).sqrt() * torch.randn_like(x0)
            per_example = per_example - self._decoder(x1).log_prob(flat)
        return per_example.sum() * (num_data(self) or len(x)) / len(x)

    def _bound_term(
        self, flat: Tensor, x0: Tensor, x_t: Tensor, t: Tensor, mean: Tensor, logits: Tensor | None, v: Tensor | None
    ) -> Tensor:
        """The bound's term of step ``t`` per example: ``KL(q(x_{t-1} | x_t, x_0) || p(x_{t-1} |
        x_t))`` for t > 1, the decoder's ``-log p(x_0 | x_1)`` at t = 1 (nats)."""
        scale = self._scale(t, v, x_t).expand_as(mean)
        terms, late = x0.new_zeros(len(x0)), t > 1
        if late.any():
            q = dist.Normal(*self._posterior(x0[late], x_t[late], t[late]))
            terms[late] = torch.distributions.kl_divergence(q, dist.Normal(mean[late], scale[late])).sum(-1)
        if not late.all():
            first = None if logits is None else logits[~late]
            terms[~late] = -self._decoder_at(mean[~late], scale[~late], first).log_prob(flat[~late])
        return terms

    def variational_bound(self, x: Tensor) -> dict[str, Tensor]:
        """The negative bound's terms per example, in nats (one draw of the forward chain):
        ``prior`` = KL(q(x_T | x_0) || p(x_T)), ``diffusion`` = sum of the KLs
        ``L_{t-1}``, ``decoder`` = -log p(x_0 | x_1); ``total`` their sum and ``bits_per_dim``."""
        x = self.validate(x)
        x0, flat = self._to_diffusion(x), self._observed(x)
        ab = self.alpha_bars[self.steps].to(x0.dtype)
        q = dist.Normal(ab.sqrt() * x0, (1 - ab).sqrt())
        x_t = q.sample()
        prior = torch.distributions.kl_divergence(q, dist.Normal(torch.zeros_like(x0), 1.0)).sum(-1)
        diffusion = torch.zeros_like(prior)
        with torch.no_grad():
            for t in range(self.steps, 1, -1):
                q_t = dist.Normal(*self._posterior(x0, x_t, t))
                diffusion += torch.distributions.kl_divergence(q_t, dist.Normal(*self.reverse(x_t, t))).sum(-1)
                x_t = q_t.sample()
            decoder = -self._decoder(x_t).log_prob(flat)
        total = prior + diffusion + decoder
        return {"prior": prior, "diffusion": diffusion, "decoder": decoder, "total": total,
                "bits_per_dim": total / (self.num_dims * math.log(2))}  # fmt: skip

    # -------------------------------------------------------------- sampling
    def reverse_chain(self, n: int, every: int = 1) -> list[Tensor]:
        """Ancestral sampling: ``[x_T, x_{T - every}, ...]`` (the steps divisible by ``every``, on the
        diffusion scale) and finally x_0 drawn from the decoder (in the data's units)."""
        n = self._check_n(n)
        with torch.no_grad():
            x_t = torch.randn(n, self.num_dims, dtype=self.dtype, device=self.device)
            chain = [x_t]
            for t in range(self.steps, 1, -1):
                mean, scale = self.reverse(x_t, t)
                x_t = mean + scale * torch.randn_like(x_t)
                if (t - 1) % every == 0:
                    chain.append(x_t)
            chain.append(self._decoder(x_t).sample().to(self.dtype).reshape(n, *self.event_shape))
        return chain

    def forward_chain(self, x: Tensor, every: int = 1) -> list[Tensor]:
        """``[x_0, x_every, ...]`` drawn from the forward process (on the diffusion scale)."""
        x_t = self._to_diffusion(self.validate(x))
        chain = [x_t]
        with torch.no_grad():
            for t in range(1, self.steps + 1):
                x_t = (1 - self.betas[t]).sqrt() * x_t + self.betas[t].sqrt() * torch.randn_like(x_t)
                if t % every == 0:
                    chain.append(x_t)
        return chain

    def sample(self, n: int) -> Tensor:
        return self.reverse_chain(n, every=self.steps)[-1]

    def init_from_data(self, x: Tensor, y: Tensor | None = None) -> None:
        """Real data are diffused in standardized units (the decoder reports in the data's)."""
        if self.num_levels is None and len(x) > 1:
            flat = x.reshape(len(x), -1)
            self.data_loc, self.data_scale = flat.mean(0), flat.std(0).clamp(min=1e-6)

    def _config_kwargs(self) -> dict[str, Any]:
        return {
            "steps": self.steps,
            "hidden_features": list(self.hidden_features),
            "beta_range": list(self.beta_range),
            "schedule": self.schedule,
            "reverse_variance": self.reverse_variance,
            "vlb_weight": self.vlb_weight,
            "parameterization": self.parameterization,
        }
