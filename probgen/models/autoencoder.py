"""A plain (deterministic) autoencoder: the contrast to the VAE.

It learns to reconstruct — ``x -> code -> x`` trained by maximising ``log p(x | decoder(code(x)))``
— but defines no density over x (``density = "implicit"``): there is no prior over codes, so
no log-likelihood to report, only reconstructions. ``sample`` decodes codes drawn from a
Gaussian fitted to the training codes, a common heuristic that makes no likelihood claim.

References:
    Hinton & Salakhutdinov, "Reducing the dimensionality of data with neural networks" (2006).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pyro
import torch
from pyro.nn import pyro_method
from torch import Tensor

from probgen._checks import check_int
from probgen.models.base import GenerativeModel, data_plate, network
from probgen.models.likelihoods import Likelihood, default_likelihood
from probgen.models.networks import make_decoder, make_encoder
from probgen.models.registry import register

__all__ = ["Autoencoder"]


@register(
    "autoencoder",
    description="deterministic autoencoder: reconstructs, no density",
    fit_defaults={"epochs": 300, "lr": 1e-3, "batch_size": 100, "patience": 40},
    compare_budget={"epochs": 60},
)
class Autoencoder(GenerativeModel):
    """A deterministic autoencoder with the VAE's networks and decoder likelihoods.

    Example:
        >>> import probgen as pg, torch
        >>> data = pg.load_dataset("digits-binary")
        >>> ae = pg.models.Autoencoder(64, "binary", latent_dim=4, hidden_features=(32,))
        >>> _ = pg.fit(ae, data, epochs=1, progress=False)
        >>> ae.density, ae.encode(data.x[:5]).shape, ae.sample(3).shape  # no likelihood: an implicit model
        ('implicit', torch.Size([5, 4]), torch.Size([3, 64]))
        >>> bool(((ae.reconstruct(data.x[:5]) >= 0) & (ae.reconstruct(data.x[:5]) <= 1)).all())
        True
    """

    density = "implicit"

    def __init__(
        self,
        event_shape,
        support: str,
        *,
        latent_dim: int = 8,
        hidden_features: Sequence[int] = (200,),
        likelihood: str | None = None,
    ) -> None:
        super().__init__(event_shape, support)
        check_int("latent_dim", latent_dim)
        self.latent_dim, self.hidden_features = latent_dim, tuple(int(h) for h in hidden_features)
        self.likelihood = Likelihood(likelihood or default_likelihood(support), support, self.num_dims)
        d, per = self.num_dims, self.likelihood.params_per_dim
        self.encoder = make_encoder("mlp", d, self.hidden_features, latent_dim, None)
        self.decoder = make_decoder("mlp", latent_dim, self.hidden_features, d * per, None, per)
        self.register_buffer("code_mean", torch.zeros(latent_dim))
        self.register_buffer("code_scale_tril", torch.eye(latent_dim))

    def encode(self, x: Tensor) -> Tensor:
        x = x.reshape(x.shape[0], -1)
        return network(self, "encoder")(self.likelihood.encoder_input(x))[0]

    @pyro_method
    def model(self, x: Tensor, y: Tensor | None = None) -> None:
        x = x.reshape(x.shape[0], -1)
        with data_plate(self, x):
            out = network(self, "decoder")(self.encode(x))
            pyro.sample("x", self.likelihood(out), obs=self.likelihood.observed(x))

    def after_fit(self, x: Tensor, y: Tensor | None) -> None:
        with torch.no_grad():
            codes = self.encode(x)
            eye = torch.eye(self.latent_dim, dtype=codes.dtype, device=codes.device)
            cov = torch.atleast_2d(torch.cov(codes.T)) + 1e-5 * eye
            self.code_mean, self.code_scale_tril = codes.mean(0), torch.linalg.cholesky(cov)

    def reconstruct(self, x: Tensor) -> Tensor:
        x = self.validate(x)
        with torch.no_grad():
            out = self.decoder(self.encode(x))
            return self.likelihood.mean(out).reshape(x.shape)

    def sample(self, n: int) -> Tensor:
        n = self._check_n(n)
        with torch.no_grad():
            eps = torch.randn(n, self.latent_dim, dtype=self.dtype, device=self.device)
            codes = self.code_mean + eps @ self.code_scale_tril.T
            draw = self.likelihood(self.decoder(codes)).sample()
            return draw.to(self.dtype).reshape(n, *self.event_shape)

    def _config_kwargs(self) -> dict[str, Any]:
        return {
            "latent_dim": self.latent_dim,
            "hidden_features": list(self.hidden_features),
            "likelihood": self.likelihood.name,
        }
