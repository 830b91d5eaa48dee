"""Variational autoencoders as Pyro model/guide pairs: VAE and label-conditioned VAE.

``p(z) = N(0, I)`` (or a VampPrior, or a flow prior), ``p(x | z)`` a decoder likelihood
(Bernoulli, categorical over k levels, Gaussian or discretized logistic), and the amortised
guide ``q(z | x) = N(mu(x), sigma(x))``, optionally pushed through a normalizing flow
conditioned on the encoder's features (IAF, planar, Sylvester or spline flows; see
:mod:`probgen.models.vae_flows`). ``fit`` maximises the ELBO (or the IWAE bound);
``log_likelihood`` reports importance-weighted lower bounds on log p(x), so ``density`` is
"lower_bound". With a flow posterior or a non-standard prior the KL term has no closed form:
the "analytic_kl" objective then takes ``log p(z) - log q(z | x)`` at the sampled z.

References:
    Kingma & Welling, "Auto-Encoding Variational Bayes" (2014), arXiv:1312.6114.
    Sohn, Lee & Yan, "Learning Structured Output Representation using Deep Conditional
    Generative Models" (2015) — the conditional VAE.
    Im, Ahn, Memisevic & Bengio, "Denoising Criterion for Variational Auto-Encoding Framework"
    (2017), arXiv:1511.06406 — ``encoder_dropout``.
    Kingma et al., "Improved Variational Inference with Inverse Autoregressive Flow" (2016),
    arXiv:1606.04934; Tomczak & Welling, "VAE with a VampPrior" (2018), arXiv:1705.07120 —
    and the other flow references in :mod:`probgen.models.vae_flows`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

import pyro
import pyro.distributions as dist
import torch
from pyro.nn import pyro_method
from torch import Tensor

from probgen._checks import check_dropout, check_int, check_positive
from probgen.models.base import GenerativeModel, data_plate, model_labels, network
from probgen.models.likelihoods import Likelihood, default_likelihood
from probgen.models.networks import make_decoder, make_encoder, one_hot_concat
from probgen.models.registry import register
from probgen.models.vae_flows import POSTERIOR_FLOWS, PRIORS, FlowPrior, PosteriorFlow, VampPrior, encoder_features

__all__ = ["VAE", "ConditionalVAE"]

ARCHITECTURES = ("mlp", "conv")


VAE_BUDGET = {"epochs": 300, "lr": 1e-3, "batch_size": 100, "patience": 40}


@register(
    "vae",
    description="variational autoencoder (ELBO by SVI; IWAE lower bounds)",
    fit_defaults=VAE_BUDGET,
    compare_budget={"epochs": 100},
)
class VAE(GenerativeModel):
    """A variational autoencoder.

    Args:
        event_shape: the data's event shape, e.g. ``(64,)``.
        support: "binary", "discrete(k)" or "real".
        latent_dim: size of z.
        hidden_features: hidden widths of the MLP encoder (the decoder mirrors them).
        likelihood: decoder likelihood; default from the support (bernoulli / categorical /
            gaussian); "discretized_logistic" for discrete levels.
        architecture: "mlp" or "conv" (convolutional networks for ``event_shape=(1, H, W)``).
        beta: weight of the KL term in the ELBO (beta-VAE; 1 is the true ELBO).
        posterior_flow: None (the Gaussian q(z | x)) or "iaf", "planar", "sylvester", "nsf":
            the Gaussian pushed through ``flow_num_layers`` layers conditioned on the encoder's
            features (:mod:`probgen.models.vae_flows` says what each layer is).
        flow_num_layers: number of layers of the posterior flow and of the flow prior.
        prior: "standard" (N(0, I)), "vamp" (the VampPrior: a uniform mixture of the encoder's
            Gaussians at ``num_pseudo_inputs`` learned pseudo-inputs, initialised from training
            examples; unconditional VAEs only) or "flow" (N(0, I) through ``flow_num_layers`` MAF
            layers).
        num_pseudo_inputs: K, the VampPrior's number of pseudo-inputs.
        bounded_pseudo_inputs: keep the VampPrior's pseudo-inputs in [0, 1], the range of the
            encoder's inputs (hardtanh of free parameters, as Tomczak & Welling's code);
            ``prior="vamp"`` and binary or discrete data only.
        flow_hidden_features: hidden widths of each posterior-flow layer's conditioner network (the
            MADE of an IAF); empty: one layer of ``10 * latent_dim`` units.
        encoder_dropout: probability of dropping each input of the encoder (inverted dropout)
            in train mode, i.e. in ``fit``'s training epochs: every step then trains a bound
            whose encoder sees a corrupted x (the denoising criterion of Im et al. 2017), still
            a lower bound on log p(x) (with a VampPrior, whose pseudo-inputs go through the
            same encoder: on that of the prior at the dropped pseudo-inputs); validation and
            ``log_likelihood`` run in eval mode, on the clean encoder.

    Example:
        >>> import probgen as pg
        >>> train = pg.load_dataset("digits-binary")
        >>> vae = VAE(64, "binary", latent_dim=8, hidden_features=(200,))
        >>> _ = pg.fit(vae, train, epochs=2, lr=1e-3, batch_size=100, progress=False)
        >>> pg.log_likelihood(vae, train, method="iwae", num_samples=10).kind
        'lower_bound'
        >>> iaf = VAE(64, "binary", posterior_flow="iaf", flow_num_layers=2, prior="vamp")
        >>> _ = pg.fit(iaf, train, epochs=2, progress=False)
        >>> iaf.sample(3).shape
        torch.Size([3, 64])
    """

    density = "lower_bound"

    def __init__(
        self,
        event_shape,
        support: str,
        *,
        latent_dim: int = 8,
        hidden_features: Sequence[int] = (200,),
        likelihood: str | None = None,
        architecture: str = "mlp",
        beta: float = 1.0,
        posterior_flow: str | None = None,
        flow_num_layers: int = 4,
        prior: str = "standard",
        num_pseudo_inputs: int = 50,
        bounded_pseudo_inputs: bool = False,
        flow_hidden_features: Sequence[int] = (),
        encoder_dropout: float = 0.0,
    ) -> None:
        super().__init__(event_shape, support)
        check_int("latent_dim", latent_dim)
        image_shape = self._check_options(
            architecture, beta, posterior_flow, prior, bounded_pseudo_inputs, flow_hidden_features
        )
        self.encoder_dropout = check_dropout("encoder_dropout", encoder_dropout)
        self.flow_num_layers = check_int("flow_num_layers", flow_num_layers)
        self.bounded_pseudo_inputs = bounded_pseudo_inputs
        self.flow_hidden_features = tuple(flow_hidden_features)
        self.num_pseudo_inputs = check_int("num_pseudo_inputs", num_pseudo_inputs)
        self.posterior_flow, self.prior = posterior_flow, prior
        self.latent_dim, self.hidden_features = latent_dim, tuple(int(h) for h in hidden_features)
        self.architecture, self.image_shape, self.beta = architecture, image_shape, float(beta)
        self.likelihood = Likelihood(likelihood or default_likelihood(support), support, self.num_dims)
        self._standard: dict = {}  # N(0, 1) per (device, dtype), expanded for each batch
        self._build_networks()

    def _check_options(
        self,
        architecture: str,
        beta: float,
        posterior_flow: str | None,
        prior: str,
        bounded_pseudo_inputs: bool,
        flow_hidden_features: Sequence[int],
    ) -> tuple[int, ...] | None:
        """ValueError for an option out of range or at odds with the data; the image shape (H, W)
        of single-channel images, else None."""
        if architecture not in ARCHITECTURES:
            raise ValueError(f"unknown architecture {architecture!r}; expected one of {ARCHITECTURES}")
        image_shape = self.event_shape[1:] if len(self.event_shape) == 3 and self.event_shape[0] == 1 else None
        if architecture == "conv" and image_shape is None:
            raise ValueError(f"architecture='conv' needs event_shape=(1, H, W), got {self.event_shape}")
        check_positive("beta", beta)
        if posterior_flow is not None and posterior_flow not in POSTERIOR_FLOWS:
            raise ValueError(f"unknown posterior_flow {posterior_flow!r}; expected None or one of {POSTERIOR_FLOWS}")
        if prior not in PRIORS:
            raise ValueError(f"unknown prior {prior!r}; expected one of {PRIORS}")
        if prior == "vamp" and self.num_classes:
            name = type(self).__name__
            raise ValueError(f"prior='vamp' needs an unconditional encoder; {name} takes prior 'standard' or 'flow'")
        if not isinstance(bounded_pseudo_inputs, bool):
            raise ValueError(f"bounded_pseudo_inputs must be True or False, got {bounded_pseudo_inputs!r}")
        if bounded_pseudo_inputs and prior != "vamp":
            raise ValueError(f"bounded_pseudo_inputs=True needs prior='vamp', got prior={prior!r}")
        if bounded_pseudo_inputs and self.support == "real":
            raise ValueError("bounded_pseudo_inputs=True needs binary or discrete data (inputs in [0, 1]), got 'real'")
        if isinstance(flow_hidden_features, (str, int)) or not all(
            isinstance(h, int) and not isinstance(h, bool) and h > 0 for h in flow_hidden_features
        ):
            raise ValueError(
                f"flow_hidden_features must be a sequence of positive integers, got {flow_hidden_features!r}"
            )
        return image_shape

    def _build_networks(self) -> None:
        """The encoder, the decoder and, where asked for, the posterior flow and the prior network."""
        d, lik, c = self.num_dims, self.likelihood, self.num_classes
        self.encoder = make_encoder(
            self.architecture, d, self.hidden_features, self.latent_dim, self.image_shape, c, self.encoder_dropout
        )
        self.decoder = make_decoder(
            self.architecture,
            self.latent_dim + c,
            self.hidden_features,
            d * lik.params_per_dim,
            self.image_shape,
            lik.params_per_dim,
        )
        self.flow: PosteriorFlow | None = None
        if self.posterior_flow is not None:
            context_dim = self.encoder.head.in_features  # the features h(x) (and label) of the encoder
            self.flow = PosteriorFlow(
                self.posterior_flow, self.latent_dim, context_dim, self.flow_num_layers, self.flow_hidden_features
            )
        self.prior_net: VampPrior | FlowPrior | None = None
        if self.prior == "vamp":
            self.prior_net = VampPrior(self.num_pseudo_inputs, d, bounded=self.bounded_pseudo_inputs)
        elif self.prior == "flow":
            self.prior_net = FlowPrior(self.latent_dim, self.flow_num_layers)

    # -------------------------------------------------------------- the Pyro program
    def _decode(self, z: Tensor, y: Tensor | None) -> Tensor:
        return network(self, "decoder")(z)

    def _prior(self, batch: int, like: Tensor) -> dist.TorchDistribution:
        if self.prior_net is not None:
            return network(self, "prior_net").distribution(network(self, "encoder")).expand((batch,))
        standard = self._standard.get((like.device, like.dtype))
        if standard is None:
            zero = torch.zeros((), device=like.device, dtype=like.dtype)
            standard = self._standard[(like.device, like.dtype)] = dist.Normal(zero, zero + 1)
        return standard.expand((batch, self.latent_dim)).to_event(1)

    @pyro_method
    def model(self, x: Tensor, y: Tensor | None = None) -> None:
        x = x.reshape(x.shape[0], -1)
        with data_plate(self, x):
            with self._beta_scale():
                z = pyro.sample("z", self._prior(x.shape[0], x))
            pyro.sample("x", self.likelihood(self._decode(z, y)), obs=self.likelihood.observed(x))

    @pyro_method
    def guide(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        x = x.reshape(x.shape[0], -1)
        with data_plate(self, x):
            q = self._posterior(self.likelihood.encoder_input(x), y)
            with self._beta_scale():
                return pyro.sample("z", q)

    def _posterior(self, encoder_input: Tensor, y: Tensor | None) -> dist.TorchDistribution:
        """q(z | x): the encoder's Gaussian, pushed through the flow (conditioned on the
        encoder's features) when there is one."""
        labels = self._label_args(y)
        if self.flow is None:
            loc, scale = network(self, "encoder")(encoder_input, *labels)
            return dist.Normal(loc, scale).to_event(1)
        loc, scale, h = encoder_features(network(self, "encoder"), encoder_input, *labels)
        base = dist.Normal(loc, scale).to_event(1)
        return dist.TransformedDistribution(base, network(self, "flow").transforms(h))

    def _beta_scale(self):
        return pyro.poutine.scale(scale=self.beta) if self.beta != 1.0 else contextlib.nullcontext()

    def _label_args(self, y: Tensor | None) -> tuple:
        return ()

    # -------------------------------------------------------------- using it
    def encode(self, x: Tensor, y: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Mean and standard deviation of q(z | x), each ``[N, latent_dim]`` (with a posterior
        flow: of its base Gaussian)."""
        x = self.validate(x).reshape(len(x), -1)
        return self.encoder(self.likelihood.encoder_input(x), *self._label_args(y))

    def decode(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        """The decoder's mean of x given z, ``[N, *event_shape]``."""
        out = self._decode(z, y)
        return self.likelihood.mean(out).reshape(*z.shape[:-1], *self.event_shape)

    def reconstruct(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """Decode the posterior mean of z (with a posterior flow: the flow applied to its base
        Gaussian's mean): the reconstruction of ``x``."""
        with torch.no_grad():
            x = self.validate(x).reshape(len(x), -1)
            q = self._posterior(self.likelihood.encoder_input(x), y)
            if self.flow is None:
                return self.decode(q.mean, y)
            z = q.base_dist.mean
            for transform in q.transforms:
                z = transform(z)
            return self.decode(z, y)

    def sample(self, n: int, y: Tensor | int | None = None, *, mean: bool = False) -> Tensor:
        """``n`` draws of x from the model (``mean=True``: the decoder means, for pictures)."""
        n = self._check_n(n)
        with torch.no_grad():
            if self.prior_net is None:
                z = torch.randn(n, self.latent_dim, dtype=self.dtype, device=self.device)
            else:
                z = self._prior(n, self._reference_tensor()).sample()
            y = self._sample_labels(n, y)
            if mean:
                return self.decode(z, y)
            draw = self.likelihood(self._decode(z, y)).sample()
            return draw.to(self.dtype).reshape(n, *self.event_shape)

    def _sample_labels(self, n: int, y: Tensor | int | None) -> Tensor | None:
        return None

    def interpolate(self, x0: Tensor, x1: Tensor, steps: int = 8) -> Tensor:
        """Decoder means along the straight line between the codes of two examples."""
        with torch.no_grad():
            z0 = self.encode(x0.reshape(1, *self.event_shape))[0]
            z1 = self.encode(x1.reshape(1, *self.event_shape))[0]
            t = torch.linspace(0, 1, steps, dtype=z0.dtype, device=z0.device)[:, None]
            return self.decode((1 - t) * z0 + t * z1)

    def _config_kwargs(self) -> dict[str, Any]:
        return {
            "latent_dim": self.latent_dim,
            "hidden_features": list(self.hidden_features),
            "likelihood": self.likelihood.name,
            "architecture": self.architecture,
            "beta": self.beta,
            "posterior_flow": self.posterior_flow,
            "flow_num_layers": self.flow_num_layers,
            "prior": self.prior,
            "num_pseudo_inputs": self.num_pseudo_inputs,
            "bounded_pseudo_inputs": self.bounded_pseudo_inputs,
            "flow_hidden_features": list(self.flow_hidden_features),
            "encoder_dropout": self.encoder_dropout,
        }

    def init_from_data(self, x: Tensor, y: Tensor | None = None) -> None:
        """A VampPrior's pseudo-inputs start at randomly chosen training examples."""
        if isinstance(self.prior_net, VampPrior):
            self.prior_net.initialize(self.likelihood.encoder_input(x.reshape(len(x), -1)))


@register("conditional-vae", description="label-conditioned VAE p(x | z, y)", fit_defaults=VAE_BUDGET)
class ConditionalVAE(VAE):
    """A label-conditioned VAE: ``p(x | z, y)`` and ``q(z | x, y)``; ``sample(n, y=...)``.

    Its bounds are on log p(x | y) (``conditional = True``), not comparable with log p(x).

    Example:
        >>> import probgen as pg, torch
        >>> data = pg.load_dataset("digits-binary")
        >>> cvae = pg.models.ConditionalVAE(64, "binary", num_classes=10, latent_dim=4, hidden_features=(32,))
        >>> _ = pg.fit(cvae, data, epochs=1, progress=False)
        >>> cvae.sample(2, y=3).shape
        torch.Size([2, 64])
        >>> ll = pg.log_likelihood(cvae, data, method="iwae", num_samples=5)
        >>> ll.conditional, ll.kind  # a bound on log p(x | y), never mixed with log p(x)
        (True, 'lower_bound')
    """

    conditional = True
    needs_labels = True

    def __init__(self, event_shape, support: str, *, num_classes: int = 10, **kwargs: Any) -> None:
        self.num_classes = check_int("num_classes", num_classes, minimum=2)  # the networks need it
        super().__init__(event_shape, support, **kwargs)

    def _decode(self, z: Tensor, y: Tensor | None) -> Tensor:
        if y is None:
            raise ValueError("ConditionalVAE needs labels y")
        return network(self, "decoder")(one_hot_concat(z, y, self.num_classes))

    def _label_args(self, y: Tensor | None) -> tuple:
        if y is None:
            raise ValueError("ConditionalVAE needs labels y")
        return (y,)

    def _sample_labels(self, n: int, y: Tensor | int | None) -> Tensor:
        if y is None:
            return torch.randint(0, self.num_classes, (n,), device=self.device)
        return model_labels(self, torch.as_tensor(y).expand(n), n)

    def interpolate(self, x0: Tensor, x1: Tensor, steps: int = 8) -> Tensor:
        raise ValueError("ConditionalVAE.interpolate needs labels; decode codes with decode(z, y)")

    def _config_kwargs(self) -> dict[str, Any]:
        return {**super()._config_kwargs(), "num_classes": self.num_classes}
