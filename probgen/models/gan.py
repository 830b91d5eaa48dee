"""Generative adversarial networks: an MLP generator and discriminator, an implicit density.

The generator is the Pyro program ``z ~ N(0, I)``, ``x = mu + s * G(z)`` (``mu``, ``s`` the
training data's mean and scale, set by ``init_from_data``); it defines no density over x
(``density = "implicit"``), so it is scored by the likelihood-free metrics of
:mod:`probgen.inference.sample_metrics`, never in nats. The "adversarial" strategy trains it,
stepping the discriminator on :meth:`GAN.discriminator_loss` and the generator on
:meth:`GAN.generator_loss`, each with its own optimizer parameter group.

Losses (``loss=``): "minimax" (the original value function, generator minimises
``log(1 - D(G(z)))``), "non_saturating" (the generator maximises ``log D(G(z))`` instead) and
"wasserstein_gp" (a critic with a gradient penalty of weight 10).

References:
    Goodfellow et al., "Generative Adversarial Nets" (2014), arXiv:1406.2661.
    Gulrajani et al., "Improved Training of Wasserstein GANs" (2017), arXiv:1704.00028.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from functools import partial
from typing import Any

import pyro
import pyro.distributions as dist
import torch
import torch.nn.functional as F
from pyro.nn import pyro_method
from torch import Tensor, nn

from probgen._checks import check_int
from probgen.models.base import GenerativeModel
from probgen.models.networks import MLP
from probgen.models.registry import register

__all__ = ["GAN", "GAN_LOSSES"]

GAN_LOSSES = ("minimax", "non_saturating", "wasserstein_gp")
GRADIENT_PENALTY = 10.0


@register(
    "gan",
    description="GAN, MLP generator and discriminator (adversarial fit; implicit density)",
    fit_defaults={"epochs": 300, "lr": 1e-3, "batch_size": 100},
)
class GAN(GenerativeModel):
    """A generative adversarial network on real vectors.

    Args:
        event_shape, support: of the real data.
        latent_dim: size of z.
        hidden: hidden widths of both networks.
        loss: one of :data:`GAN_LOSSES`.

    Example:
        >>> import probgen as pg
        >>> data = pg.load_dataset("8gaussians", n=500)
        >>> gan = GAN(2, "real", hidden=(64, 64))
        >>> _ = pg.fit(gan, data, epochs=2, progress=False)
        >>> gan.sample(3).shape
        torch.Size([3, 2])
    """

    supports = ("real",)
    density = "implicit"
    fit_strategy = "adversarial"

    def __init__(
        self,
        event_shape,
        support: str = "real",
        *,
        latent_dim: int = 8,
        hidden: Sequence[int] = (128, 128),
        loss: str = "non_saturating",
    ) -> None:
        super().__init__(event_shape, support)
        if loss not in GAN_LOSSES:
            raise ValueError(f"unknown GAN loss {loss!r}; expected one of {GAN_LOSSES}")
        self.latent_dim, self.loss = check_int("latent_dim", latent_dim), loss
        self.hidden = tuple(int(h) for h in hidden)
        d = self.num_dims
        self.generator = MLP(self.latent_dim, self.hidden, d, activation=nn.ReLU)
        self.discriminator = MLP(d, self.hidden, 1, activation=partial(nn.LeakyReLU, 0.2))
        self.register_buffer("data_loc", torch.zeros(d))
        self.register_buffer("data_scale", torch.ones(d))

    # -------------------------------------------------------------- generating
    def _prior(self, n: int) -> dist.TorchDistribution:
        zero = torch.zeros((), dtype=self.dtype, device=self.device)
        return dist.Normal(zero, zero + 1).expand((n, self.latent_dim)).to_event(1)

    def _generate(self, z: Tensor) -> Tensor:
        """Standardized samples ``G(z)``, ``[n, D]``."""
        return self.net("generator")(z)

    @pyro_method
    def model(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """The generative program for ``len(x)`` draws (x itself is not scored: no density)."""
        with self.data_plate(x):
            z = pyro.sample("z", self._prior(len(x)))
            return pyro.deterministic("x", self.data_loc + self.data_scale * self._generate(z), event_dim=1)

    def sample(self, n: int) -> Tensor:
        n = self._check_n(n)
        with torch.no_grad():
            x = self.data_loc + self.data_scale * self._generate(self._prior(n).sample())
        return x.reshape(n, *self.event_shape)

    def init_from_data(self, x: Tensor, y: Tensor | None = None) -> None:
        """Generate and discriminate in the data's standardized coordinates."""
        flat = x.reshape(len(x), -1)
        self.data_loc = flat.mean(0)
        self.data_scale = flat.std(0).clamp(min=1e-6) if len(x) > 1 else torch.ones_like(self.data_scale)

    # -------------------------------------------------------------- the two players
    def generator_parameters(self) -> Iterator[nn.Parameter]:
        return self.generator.parameters()

    def discriminator_parameters(self) -> Iterator[nn.Parameter]:
        return self.discriminator.parameters()

    def _critic(self, standardized: Tensor) -> Tensor:
        return self.net("discriminator")(standardized).squeeze(-1)

    def discriminator_loss(self, x: Tensor) -> Tensor:
        """The discriminator's (critic's) loss on real ``x`` and as many fresh fakes (detached)."""
        real = (x.reshape(len(x), -1) - self.data_loc) / self.data_scale
        with torch.no_grad():
            fake = self._generate(self._prior(len(x)).sample())
        real_out, fake_out = self._critic(real), self._critic(fake)
        if self.loss != "wasserstein_gp":  # -E log D(x) - E log(1 - D(G(z)))
            return F.softplus(-real_out).mean() + F.softplus(fake_out).mean()
        t = torch.rand(len(x), 1, dtype=real.dtype, device=real.device)
        between = (t * real + (1 - t) * fake).requires_grad_()
        (grad,) = torch.autograd.grad(self._critic(between).sum(), between, create_graph=True)
        penalty = ((grad.norm(dim=-1) - 1) ** 2).mean()
        return fake_out.mean() - real_out.mean() + GRADIENT_PENALTY * penalty

    def generator_loss(self, n: int) -> Tensor:
        """The generator's loss on ``n`` fresh fakes."""
        out = self._critic(self._generate(self._prior(n).sample()))
        if self.loss == "minimax":  # E log(1 - D(G(z)))
            return -F.softplus(out).mean()
        if self.loss == "non_saturating":  # -E log D(G(z))
            return F.softplus(-out).mean()
        return -out.mean()

    def _config_kwargs(self) -> dict[str, Any]:
        return {"latent_dim": self.latent_dim, "hidden": list(self.hidden), "loss": self.loss}
