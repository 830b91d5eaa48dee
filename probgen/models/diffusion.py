"""Denoising diffusion probabilistic models (DDPM) as a hierarchical latent-variable model.

The forward process ``q(x_t | x_{t-1}) = N(sqrt(1 - beta_t) x_{t-1}, beta_t I)`` is fixed; it is
the guide, written in its reverse factorisation ``q(x_T | x_0) prod_t q(x_{t-1} | x_t, x_0)``.
The learned reverse process is the model: ``p(x_T) = N(0, I)``,
``p(x_{t-1} | x_t) = N(mu(x_t, t), sigma_t^2 I)`` with ``mu`` from a noise predictor
``eps(x_t, t)`` and ``sigma_t^2`` fixed (beta_t or the posterior's variance), and a decoder ``p(x_0 | x_1)`` that
is a discretized Gaussian on the data's levels (k-level data mapped to [-1, 1]) or, for real
data, a Gaussian in the data's units. Its ELBO is the variational bound of Ho et al.: with
analytic KLs (``objective="analytic_kl"``; :meth:`DDPM.variational_bound`) each site pair is
one ``L_{t-1}`` term. Training uses the simple noise-prediction loss
(:func:`ddpm_simple_loss`, its ``default_objective``); the density is "lower_bound" —
reported in nats and bits/dim, never as a likelihood.

References:
    Sohl-Dickstein et al., "Deep Unsupervised Learning using Nonequilibrium Thermodynamics"
    (2015), arXiv:1503.03585.
    Ho, Jain & Abbeel, "Denoising Diffusion Probabilistic Models" (2020), arXiv:2006.11239.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pyro
import pyro.distributions as dist
import torch
from pyro.nn import pyro_method
from torch import Tensor, nn
from torch.distributions import constraints

from probgen._checks import check_int
from probgen.models.base import GenerativeModel
from probgen.models.networks import MLP
from probgen.models.registry import register

__all__ = ["DDPM", "DiscretizedGaussian", "ddpm_simple_loss", "REVERSE_VARIANCES"]

REVERSE_VARIANCES = ("beta", "posterior")


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
    over dimensions), scaled like an ELBO (N / B times the batch sum) for ``probgen.fit``."""
    return model.simple_loss(x)


@register(
    "ddpm",
    description="DDPM diffusion (simple eps loss; variational lower bound with a discretized decoder)",
    fit_defaults={"epochs": 300, "lr": 1e-3, "batch_size": 100},
)
class DDPM(GenerativeModel):
    """A DDPM with an MLP noise predictor on flattened x.

    Args:
        event_shape, support: of the data ("binary", "discrete(k)" or "real").
        steps: T, the number of diffusion steps.
        hidden: hidden widths of the noise predictor.
        beta_range: betas linear from ``beta_range[0]`` (step 1) to ``beta_range[1]`` (step T);
            Ho et al.'s (1e-4, 0.02) is for T = 1000, the default (1e-3, 0.2) for T near 50.
        reverse_variance: sigma_t^2 of the reverse steps, "beta" (beta_t; the exact reversal
            when the data are N(0, I)) or "posterior" (beta~_t; exact for a single point).

    Example:
        >>> import probgen as pg
        >>> data = pg.load_dataset("digits")
        >>> ddpm = DDPM.from_dataset(data, steps=20, hidden=(64,))
        >>> _ = pg.fit(ddpm, data, epochs=1, objective=ddpm_simple_loss, progress=False)
        >>> pg.log_likelihood(ddpm, data.x[:50], method="elbo", num_samples=2).kind
        'lower_bound'
    """

    density = "lower_bound"

    @property
    def default_objective(self) -> Any:
        """The simple noise-prediction loss of Ho et al. (eq. 14)."""
        return ddpm_simple_loss

    def __init__(
        self,
        event_shape,
        support: str,
        *,
        steps: int = 50,
        hidden: Sequence[int] = (256, 256),
        beta_range: Sequence[float] = (1e-3, 0.2),
        reverse_variance: str = "beta",
    ) -> None:
        super().__init__(event_shape, support)
        self.steps, self.hidden = check_int("steps", steps), tuple(int(h) for h in hidden)
        self.beta_range = tuple(float(b) for b in beta_range)
        if reverse_variance not in REVERSE_VARIANCES:
            raise ValueError(f"unknown reverse_variance {reverse_variance!r}; expected one of {REVERSE_VARIANCES}")
        self.reverse_variance = reverse_variance
        betas = torch.linspace(*self.beta_range, self.steps, dtype=torch.float64)
        if not (0 < betas[0] and betas[-1] < 1):
            raise ValueError(f"beta_range {self.beta_range} gives betas outside (0, 1) for {steps} steps")
        self.register_buffer("betas", torch.cat([betas.new_zeros(1), betas]).float())  # index t = 1..T
        self.register_buffer("data_loc", torch.zeros(self.num_dims))
        self.register_buffer("data_scale", torch.ones(self.num_dims))
        self.denoiser = MLP(self.num_dims + 16, self.hidden, self.num_dims, activation=nn.SiLU)

    # -------------------------------------------------------------- the diffusion's coefficients
    @property
    def alpha_bars(self) -> Tensor:
        """``alpha_bar_t = prod_{s <= t} (1 - beta_s)`` for t = 0..T (alpha_bar_0 = 1)."""
        return torch.cumprod(1 - self.betas, 0)

    def _embed(self, t: Tensor, like: Tensor) -> Tensor:
        freqs = torch.exp(torch.linspace(0, math.log(1000), 8, dtype=like.dtype, device=like.device))
        angle = (t.to(like.dtype)[..., None] / self.steps) * freqs
        return torch.cat([angle.sin(), angle.cos()], -1).expand(*like.shape[:-1], 16)

    def epsilon(self, x_t: Tensor, t: Tensor | int) -> Tensor:
        """The predicted noise of flat ``x_t`` at step(s) ``t``."""
        t = torch.as_tensor(t, device=x_t.device)
        return self.net("denoiser")(torch.cat([x_t, self._embed(t, x_t)], -1))

    def _posterior(self, x0: Tensor, x_t: Tensor, t: int) -> tuple[Tensor, Tensor]:
        """Mean and scale of ``q(x_{t-1} | x_t, x_0)``."""
        beta, ab, ab_prev = self.betas[t], self.alpha_bars[t], self.alpha_bars[t - 1]
        mean = (ab_prev.sqrt() * beta * x0 + (1 - beta).sqrt() * (1 - ab_prev) * x_t) / (1 - ab)
        return mean, (beta * (1 - ab_prev) / (1 - ab)).sqrt()

    def reverse_mean(self, x_t: Tensor, t: int) -> Tensor:
        """``mu(x_t, t) = (x_t - beta_t / sqrt(1 - alpha_bar_t) eps(x_t, t)) / sqrt(alpha_t)``."""
        beta, ab = self.betas[t], self.alpha_bars[t]
        return (x_t - beta / (1 - ab).sqrt() * self.epsilon(x_t, t)) / (1 - beta).sqrt()

    def _reverse_scale(self, t: int) -> Tensor:
        """sigma_t: sqrt(beta_t), or the posterior's sqrt(beta~_t) (sqrt(beta_1) at t = 1)."""
        return self._posterior_scale(t) if t > 1 and self.reverse_variance == "posterior" else self.betas[t].sqrt()

    def _posterior_scale(self, t: int) -> Tensor:
        return (self.betas[t] * (1 - self.alpha_bars[t - 1]) / (1 - self.alpha_bars[t])).sqrt()

    # -------------------------------------------------------------- data scale and decoder
    def _to_diffusion(self, x: Tensor) -> Tensor:
        x = x.reshape(*x.shape[: x.dim() - len(self.event_shape)], -1)
        if self.num_levels is not None:
            return 2 * x / (self.num_levels - 1) - 1
        return (x - self.data_loc) / self.data_scale

    def _decoder(self, x1: Tensor) -> dist.TorchDistribution:
        loc, scale = self.reverse_mean(x1, 1), self.betas[1].sqrt().to(x1.dtype)
        if self.num_levels is not None:
            return DiscretizedGaussian(loc, scale.expand(loc.shape), self.num_levels).to_event(1)
        return dist.Normal(self.data_loc + self.data_scale * loc, self.data_scale * scale).to_event(1)

    def _observed(self, x: Tensor) -> Tensor:
        return x.reshape(*x.shape[: x.dim() - len(self.event_shape)], -1)

    # -------------------------------------------------------------- the Pyro program
    @pyro_method
    def model(self, x: Tensor, y: Tensor | None = None) -> None:
        flat = self._observed(x)
        with self.data_plate(flat):
            zero = torch.zeros_like(flat)
            x_t = pyro.sample(f"x{self.steps}", dist.Normal(zero, 1.0).to_event(1))
            for t in range(self.steps, 1, -1):
                scale = self._reverse_scale(t).to(flat.dtype)
                x_t = pyro.sample(f"x{t - 1}", dist.Normal(self.reverse_mean(x_t, t), scale).to_event(1))
            pyro.sample("x", self._decoder(x_t), obs=flat)

    @pyro_method
    def guide(self, x: Tensor, y: Tensor | None = None) -> None:
        x0 = self._to_diffusion(x)
        with self.data_plate(x0):
            ab = self.alpha_bars[self.steps].to(x0.dtype)
            x_t = pyro.sample(f"x{self.steps}", dist.Normal(ab.sqrt() * x0, (1 - ab).sqrt()).to_event(1))
            for t in range(self.steps, 1, -1):
                mean, scale = self._posterior(x0, x_t, t)
                x_t = pyro.sample(f"x{t - 1}", dist.Normal(mean, scale.to(x0.dtype)).to_event(1))

    # -------------------------------------------------------------- training and the bound
    def simple_loss(self, x: Tensor) -> Tensor:
        """``L_simple`` summed over the batch and scaled by N / B (see :func:`ddpm_simple_loss`)."""
        x0 = self._to_diffusion(x)
        t = torch.randint(1, self.steps + 1, (len(x0),), device=x0.device)
        noise = torch.randn_like(x0)
        ab = self.alpha_bars[t].to(x0.dtype)[:, None]
        x_t = ab.sqrt() * x0 + (1 - ab).sqrt() * noise
        per_example = ((noise - self.epsilon(x_t, t)) ** 2).sum(-1)
        return per_example.sum() * (self.num_data or len(x)) / len(x)

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
                mean, scale = self._posterior(x0, x_t, t)
                q_t = dist.Normal(mean, scale.to(x0.dtype))
                p_t = dist.Normal(self.reverse_mean(x_t, t), self._reverse_scale(t).to(x0.dtype))
                diffusion += torch.distributions.kl_divergence(q_t, p_t).sum(-1)
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
                x_t = self.reverse_mean(x_t, t) + self._reverse_scale(t) * torch.randn_like(x_t)
                if (t - 1) % every == 0:
                    chain.append(x_t)
            chain.append(self._decoder(x_t).sample().reshape(n, *self.event_shape))
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
            "hidden": list(self.hidden),
            "beta_range": list(self.beta_range),
            "reverse_variance": self.reverse_variance,
        }
