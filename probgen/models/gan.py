"""Generative adversarial networks: MLP or DCGAN networks, an implicit density.

The generator is the Pyro program ``z ~ N(0, I)``, ``x = mu + s * G(z)`` (``mu``, ``s`` the
training data's mean and scale, set by ``init_from_data``); it defines no density over x
(``density = "implicit"``), so it is scored by the likelihood-free metrics of
:mod:`probgen.inference.sample_metrics`, never in nats.

Discrete data ("binary", "discrete(k)": the bundled digits and binarized digits) are generated in
[-1, 1], cut into k equal bins: the generator's output is bounded by a tanh, level j is the centre
of bin j for the discriminator, ``(2j + 1) / k - 1`` (``mu = (k - 1) / 2``, ``s = k / 2``, fixed,
not data statistics), and a sample is the index of the bin its output falls in, an integer
0..k-1 (as a float, like the other discrete models' samples). Why this map: every output of the
tanh lands on a level and no level needs the tanh to saturate (bin centres stay 1/k inside the
ends). On the digits it gave samples closer to held-out data (MMD²) than ``x / (k - 1)`` or
per-pixel standardization, uniform dequantization of the real data (``dequantize``) made them
worse, and MLP generators collapsed where a DCGAN did not; hence ``from_dataset`` builds a DCGAN
for images (the digits are flattened 8x8 images, seen as ``(1, 8, 8)``).

The "adversarial" strategy trains it, stepping the discriminator on
:meth:`GAN.discriminator_loss` and the generator on :meth:`GAN.generator_loss`, each with its own
optimizer parameter group.

Losses (``loss=``): "minimax" (the original value function, generator minimises
``log(1 - D(G(z)))``), "non_saturating" (the generator maximises ``log D(G(z))`` instead) and
"wasserstein_gp" (a critic with a gradient penalty of weight 10).

Networks (``architecture=``): "mlp" on flat vectors, or "dcgan" for images ``(C, H, W)`` with H
and W multiples of 4 (8x8 digits, say): a transposed-convolution generator with batch norm and
ReLU, and a strided-convolution discriminator with leaky ReLU and batch norm on every layer but
the first (none for the Wasserstein critic, whose gradient penalty is per example), as Radford
et al. recommend. A DCGAN standardizes with one mean and scale over all pixels, so the networks see
the images as images.

References:
    Goodfellow et al., "Generative Adversarial Nets" (2014), arXiv:1406.2661.
    Radford, Metz & Chintala, "Unsupervised Representation Learning with Deep Convolutional
    Generative Adversarial Networks" (2016), arXiv:1511.06434.
    Gulrajani et al., "Improved Training of Wasserstein GANs" (2017), arXiv:1704.00028.
"""

from __future__ import annotations

import math
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
from probgen.models.base import GenerativeModel, data_plate, evaluating, network
from probgen.models.networks import MLP
from probgen.models.registry import register
from probgen.models.vocabulary import check_kwargs

__all__ = ["GAN", "GAN_LOSSES", "GAN_ARCHITECTURES", "DCGANGenerator", "DCGANDiscriminator"]

GAN_LOSSES = ("minimax", "non_saturating", "wasserstein_gp")
GAN_ARCHITECTURES = ("mlp", "dcgan")
GRADIENT_PENALTY = 10.0


class DCGANGenerator(nn.Module):
    """``z -> linear -> (2c, H/4, W/4) -> [BN, ReLU, 4x4 transposed conv, stride 2] x 2 -> (C, H, W)``,
    batch norm and ReLU before the second upsampling too; flat ``[n, C*H*W]`` out."""

    def __init__(self, latent_dim: int, image_shape: tuple[int, int, int], channels: int) -> None:
        super().__init__()
        c, h, w = image_shape
        self.base = (2 * channels, h // 4, w // 4)
        self.project = nn.Linear(latent_dim, math.prod(self.base))
        self.body = nn.Sequential(
            nn.BatchNorm2d(2 * channels),
            nn.ReLU(),
            nn.ConvTranspose2d(2 * channels, channels, 4, stride=2, padding=1),
            nn.BatchNorm2d(channels),
            nn.ReLU(),
            nn.ConvTranspose2d(channels, c, 4, stride=2, padding=1),
        )

    def forward(self, z: Tensor) -> Tensor:
        return self.body(self.project(z).reshape(len(z), *self.base)).flatten(1)


class DCGANDiscriminator(nn.Module):
    """Flat ``[n, C*H*W]`` -> (C, H, W) -> 4x4 conv, stride 2, leaky ReLU -> 4x4 conv, stride 2,
    batch norm (optional), leaky ReLU -> linear -> one logit (critic value)."""

    def __init__(self, image_shape: tuple[int, int, int], channels: int, batch_norm: bool = True) -> None:
        super().__init__()
        c, h, w = image_shape
        self.image_shape = image_shape
        self.body = nn.Sequential(
            nn.Conv2d(c, channels, 4, stride=2, padding=1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(channels, 2 * channels, 4, stride=2, padding=1),
            nn.BatchNorm2d(2 * channels) if batch_norm else nn.Identity(),
            nn.LeakyReLU(0.2),
            nn.Flatten(),
            nn.Linear(2 * channels * (h // 4) * (w // 4), 1),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x.reshape(len(x), *self.image_shape))


@register(
    "gan",
    description="GAN, MLP or DCGAN networks, on real or discrete data (adversarial fit; implicit density)",
    fit_defaults={"epochs": 300, "lr": 1e-3, "batch_size": 100},
    compare_budget={"epochs": 20},
)
class GAN(GenerativeModel):
    """A generative adversarial network on real or discrete (binary, k-level) vectors or images.

    Args:
        event_shape, support: of the data ("real", "binary" or "discrete(k)"); ``(C, H, W)``, H
            and W multiples of 4, for "dcgan" (or a flat event with ``image_shape``).
        latent_dim: size of z.
        hidden_features: hidden widths of both networks ("mlp").
        loss: one of :data:`GAN_LOSSES`.
        architecture: one of :data:`GAN_ARCHITECTURES`.
        hidden_channels: feature maps of the first discriminator layer and the last generator layer
            ("dcgan"; the others have twice as many).
        image_shape: ``(C, H, W)`` a "dcgan" sees a flat event as (``from_dataset`` sets it from
            the dataset's ``image_shape``, ``(1, 8, 8)`` for the bundled digits).
        dequantize: discrete data only: spread each real example uniformly over its level's bin
            before the discriminator sees it (off by default: on the digits it made the DCGAN's
            samples worse, see the module doc).

    Example:
        >>> import probgen as pg
        >>> data = pg.load_dataset("8gaussians", n=500)
        >>> gan = GAN(2, "real", hidden_features=(64, 64))
        >>> _ = pg.fit(gan, data, epochs=2, progress=False)
        >>> gan.sample(3).shape
        torch.Size([3, 2])
        >>> digits = pg.load_dataset("digits")  # 17 grey levels, flattened 8x8 images
        >>> dcgan = GAN.from_dataset(digits, hidden_channels=16)
        >>> dcgan.architecture, dcgan.image_shape
        ('dcgan', (1, 8, 8))
        >>> _ = pg.fit(dcgan, digits, epochs=1, progress=False)
        >>> draws = dcgan.sample(3)  # on the levels 0..16
        >>> draws.shape, bool((draws == draws.round()).all()), 0 <= draws.min().item() <= draws.max().item() <= 16
        (torch.Size([3, 64]), True, True)
    """

    supports = ("binary", "discrete", "real")
    density = "implicit"
    fit_strategy = "adversarial"

    def __init__(
        self,
        event_shape,
        support: str = "real",
        *,
        latent_dim: int = 8,
        hidden_features: Sequence[int] = (128, 128),
        loss: str = "non_saturating",
        architecture: str = "mlp",
        hidden_channels: int = 32,
        image_shape: Sequence[int] | None = None,
        dequantize: bool = False,
    ) -> None:
        super().__init__(event_shape, support)
        if loss not in GAN_LOSSES:
            raise ValueError(f"unknown GAN loss {loss!r}; expected one of {GAN_LOSSES}")
        if architecture not in GAN_ARCHITECTURES:
            raise ValueError(f"unknown GAN architecture {architecture!r}; expected one of {GAN_ARCHITECTURES}")
        if not isinstance(dequantize, bool):
            raise TypeError(f"dequantize must be True or False, got {dequantize!r}")
        self.image_shape = self._image_shape(architecture, image_shape)
        shape = self.image_shape if architecture == "dcgan" else self.event_shape
        if architecture == "dcgan" and (len(shape) != 3 or shape[1] % 4 or shape[2] % 4):
            raise ValueError(
                "architecture='dcgan' needs an image event_shape (C, H, W) (or a flat one with an image_shape) "
                f"with H and W multiples of 4, got {shape}"
            )
        self.latent_dim, self.loss = check_int("latent_dim", latent_dim), loss
        self.hidden_features, self.architecture = tuple(int(h) for h in hidden_features), architecture
        self.hidden_channels = check_int("hidden_channels", hidden_channels)
        self.dequantize = dequantize
        d = self.num_dims
        if architecture == "dcgan":
            self.generator = DCGANGenerator(self.latent_dim, shape, self.hidden_channels)
            self.discriminator = DCGANDiscriminator(shape, self.hidden_channels, batch_norm=loss != "wasserstein_gp")
        else:
            self.generator = MLP(self.latent_dim, self.hidden_features, d, activation=nn.ReLU)
            self.discriminator = MLP(d, self.hidden_features, 1, activation=partial(nn.LeakyReLU, 0.2))
        k = self.num_levels
        # real data: the training data's statistics, set by init_from_data; k levels: the fixed
        # map of level j to the centre of the j-th of k equal bins of [-1, 1] (see to_generator_range)
        self.register_buffer("data_loc", torch.full((d,), 0.0 if k is None else (k - 1) / 2))
        self.register_buffer("data_scale", torch.full((d,), 1.0 if k is None else k / 2))

    def _image_shape(self, architecture: str, image_shape: Sequence[int] | None) -> tuple[int, ...] | None:
        """The (C, H, W) a DCGAN sees: ``image_shape`` (a flat event viewed as an image) or the event itself."""
        if image_shape is None:
            return self.event_shape if architecture == "dcgan" else None
        if architecture != "dcgan":
            raise ValueError(f"image_shape is for architecture='dcgan', got architecture={architecture!r}")
        shape = tuple(int(s) for s in image_shape)
        if len(shape) != 3 or math.prod(shape) != self.num_dims:
            raise ValueError(
                f"image_shape must be (C, H, W) with C*H*W = {self.num_dims} values (event_shape "
                f"{self.event_shape}), got {tuple(image_shape)}"
            )
        return shape

    @classmethod
    def from_dataset(cls, dataset: Any, **kwargs: Any) -> GAN:
        """A GAN shaped for ``dataset``; unless ``architecture`` is given, a "dcgan" on images
        whose height and width are multiples of 4 (a ``(C, H, W)`` event, or flattened images that
        carry ``dataset.image_shape``, as the bundled digits do: seen as ``(1, H, W)``), else an
        "mlp". On the digits a DCGAN's samples are far closer to held-out data than an MLP's at
        the same number of epochs (see the module doc)."""
        event, image = tuple(dataset.event_shape), getattr(dataset, "image_shape", None)
        view = event if len(event) == 3 else None
        if len(event) == 1 and image is not None and math.prod(image) == event[0]:
            view = (1, *image)
        suits = view is not None and view[1] % 4 == 0 and view[2] % 4 == 0
        check_kwargs(cls, kwargs)
        kwargs.setdefault("architecture", "dcgan" if suits else "mlp")
        if kwargs["architecture"] == "dcgan" and view is not None and view != event:
            kwargs.setdefault("image_shape", view)
        return super().from_dataset(dataset, **kwargs)

    # -------------------------------------------------------------- generating
    def _prior(self, n: int) -> dist.TorchDistribution:
        zero = torch.zeros((), dtype=self.dtype, device=self.device)
        return dist.Normal(zero, zero + 1).expand((n, self.latent_dim)).to_event(1)

    def _generate(self, z: Tensor) -> Tensor:
        """Samples ``G(z)`` in the generator's range, ``[n, D]``: standardized for real data,
        inside (-1, 1) (a tanh) for discrete data, so that every draw falls on a level."""
        out = network(self, "generator")(z)
        return out if self.num_levels is None else torch.tanh(out)

    def to_generator_range(self, x: Tensor) -> Tensor:
        """Data ``x`` (levels, or real values) in the coordinates the networks work in, ``[n, D]``.

        Real data: standardized, ``(x - mu) / s``. Level ``j`` of k: the centre of the j-th of
        k equal bins of [-1, 1], ``(2j + 1) / k - 1`` (so -1 + 1/k ... 1 - 1/k; ±0.5 for binary);
        :meth:`from_generator_range` maps every point of the bin back to ``j``.
        """
        return (x.reshape(len(x), -1) - self.data_loc) / self.data_scale

    def from_generator_range(self, g: Tensor) -> Tensor:
        """Generator coordinates ``g`` ``[n, D]`` back to data: ``mu + s * g`` for real data; for
        k levels the index of the bin of [-1, 1] that holds ``g`` (integers 0..k-1, as floats)."""
        x = self.data_loc + self.data_scale * g
        k = self.num_levels
        return x if k is None else x.round().clamp(0, k - 1)

    @pyro_method
    def model(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """The generative program for ``len(x)`` draws (x itself is not scored: no density)."""
        with data_plate(self, x):
            z = pyro.sample("z", self._prior(len(x)))
            return pyro.deterministic("x", self.from_generator_range(self._generate(z)), event_dim=1)

    def sample(self, n: int) -> Tensor:
        """``n`` draws (on the levels, as floats, for discrete data); batch norm uses its running
        statistics, so each draw is independent of the others in the batch (each module's mode is
        restored)."""
        n = self._check_n(n)
        with evaluating(self), torch.no_grad():
            x = self.from_generator_range(self._generate(self._prior(n).sample()))
        return x.reshape(n, *self.event_shape)

    def init_from_data(self, x: Tensor, y: Tensor | None = None) -> None:
        """Generate and discriminate in the data's standardized coordinates: per dimension for
        "mlp", one mean and scale over all pixels for "dcgan". Discrete data keep the fixed map
        of :meth:`to_generator_range` (no statistics: the levels say where the data can be)."""
        if self.num_levels is not None:
            return
        flat = x.reshape(len(x), -1)
        if len(x) < 2:
            self.data_loc, self.data_scale = flat.mean(0), torch.ones_like(self.data_scale)
        elif self.architecture == "dcgan":
            self.data_loc = flat.mean().expand(self.num_dims).clone()
            self.data_scale = flat.std().clamp(min=1e-6).expand(self.num_dims).clone()
        else:
            self.data_loc, self.data_scale = flat.mean(0), flat.std(0).clamp(min=1e-6)

    # -------------------------------------------------------------- the two players
    def generator_parameters(self) -> Iterator[nn.Parameter]:
        return self.generator.parameters()

    def discriminator_parameters(self) -> Iterator[nn.Parameter]:
        return self.discriminator.parameters()

    def _critic(self, standardized: Tensor) -> Tensor:
        return network(self, "discriminator")(standardized).squeeze(-1)

    def discriminator_loss(self, x: Tensor) -> Tensor:
        """The discriminator's (critic's) loss on real ``x`` and as many fresh fakes (detached).

        Discrete real data are spread uniformly over their bins when ``dequantize`` is set: the
        discriminator then sees two continuous sets and cannot tell real from fake by the real
        ones sitting exactly on the bin centres."""
        if self.num_levels is not None and self.dequantize:
            x = x.reshape(len(x), -1) + torch.rand_like(x.reshape(len(x), -1)) - 0.5
        real = self.to_generator_range(x)
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
        return {
            "latent_dim": self.latent_dim,
            "hidden_features": list(self.hidden_features),
            "loss": self.loss,
            "architecture": self.architecture,
            "hidden_channels": self.hidden_channels,
            # a flat event's view as an image; an image event is its own
            "image_shape": None if self.image_shape in (None, self.event_shape) else list(self.image_shape),
            "dequantize": self.dequantize,
        }
