"""Masked affine autoregressive flows: MAF (density in one pass) and IAF (sampling in one pass).

Both use Pyro's :class:`~pyro.distributions.transforms.AffineAutoregressive` (a MADE network
giving ``mu`` and ``log sigma`` of each coordinate from the preceding ones), whose forward is
one network pass and whose inverse is sequential, one pass per dimension. The orientation
decides which direction users get cheaply.

References:
    Papamakarios, Pavlakou & Murray, "Masked Autoregressive Flow for Density Estimation"
    (2017), arXiv:1705.07057.
    Kingma, Salimans, Jozefowicz, Chen, Sutskever & Welling, "Improving Variational Inference
    with Inverse Autoregressive Flow" (2016), arXiv:1606.04934.
    Germain, Gregor, Murray & Larochelle, "MADE" (2015), arXiv:1502.03509.
"""

from __future__ import annotations

import torch
from pyro.distributions.transforms import AffineAutoregressive
from pyro.distributions.transforms.utils import clamp_preserve_gradients
from pyro.nn import AutoRegressiveNN
from torch.distributions import Transform

from probgen.models.flows.base import FLOW_BUDGET, Flow
from probgen.models.networks import identity_start
from probgen.models.registry import register

__all__ = ["MAF", "IAF"]


class _AffineAutoregressive(AffineAutoregressive):
    """Pyro's affine autoregressive transform with a sequential inverse in the input's dtype
    (Pyro 1.9 starts it from float32 zeros, which breaks float64 flows)."""

    def _inverse(self, y: torch.Tensor) -> torch.Tensor:
        x = [y.new_zeros(y.shape[:-1])] * y.size(-1)
        for idx in self.arn.permutation:  # one network pass per dimension
            mean, log_scale = self.arn(torch.stack(x, dim=-1))
            log_scale = clamp_preserve_gradients(log_scale, self.log_scale_min_clip, self.log_scale_max_clip)
            x[idx] = (y[..., idx] - mean[..., idx]) * torch.exp(-log_scale[..., idx])
        self._cached_log_scale = log_scale
        return torch.stack(x, dim=-1)


class _AffineAutoregressiveFlow(Flow):
    """Affine autoregressive layers (natural order, reversed between layers), each starting as
    the identity (:func:`~probgen.models.networks.identity_start`); ``density_fast`` places
    each as ``t.inv`` so that ``log_prob`` calls each network once."""

    density_fast = True

    def _layers(self) -> list[Transform]:
        d = self.num_dims

        def layer() -> Transform:
            net = identity_start(AutoRegressiveNN(d, self.made_hidden, permutation=torch.arange(d)))
            t = _AffineAutoregressive(net)
            return t.inv if self.density_fast else t

        return self._stacked(layer)


@register("maf", description="masked autoregressive flow (exact density, one pass)", fit_defaults=FLOW_BUDGET)
class MAF(_AffineAutoregressiveFlow):
    """Masked autoregressive flow: ``z_i = (x_i - mu_i(x_<i)) exp(-alpha_i(x_<i))``.

    Density (``log_prob``, training) is one network pass per layer. Sampling is slow: it
    inverts each layer sequentially, ``num_dims`` passes per layer (64 passes per layer for
    8x8 digits).

    Dropout (``dropout``) regularizes it where data are few for their dimension: on 17-level
    digits (1,000 examples of 64 values; 5 layers of [256, 256], uniform dequantization, means
    of 3 seeds, 32-draw importance-weighted NLL) the validation NLL is 97.57 nats without
    dropout (test 94.86), 95.96 at 0.1 (93.00) and 95.27 at 0.2 (92.45). It stays off by
    default: on two moons (2 values, 5 layers of [64, 64], 50 epochs, seed 0) 0.2 raises the
    test NLL from 1.78 to 2.10 nats.

    Args:
        event_shape, support, num_layers, hidden_features, dropout: see
            :class:`~probgen.models.flows.Flow` (at least 2 dimensions; hidden widths below
            ``num_dims`` are raised to it).

    Example:
        >>> import probgen as pg
        >>> data = pg.load_dataset("moons")
        >>> maf = MAF.from_dataset(data, num_layers=2, hidden_features=(16,))
        >>> _ = pg.fit(maf, data, epochs=1, progress=False)
        >>> maf.sample(4).shape
        torch.Size([4, 2])
    """

    density_fast = True


@register("iaf", description="inverse autoregressive flow (exact density, one-pass sampling)", fit_defaults=FLOW_BUDGET)
class IAF(_AffineAutoregressiveFlow):
    """Inverse autoregressive flow: ``x_i = mu_i(z_<i) + exp(alpha_i(z_<i)) z_i``.

    Sampling is one network pass per layer. Density is slow: ``log_prob`` (and so training by
    maximum likelihood) inverts each layer sequentially, ``num_dims`` passes per layer — 64x
    the passes of :class:`MAF` on 8x8 digits. Use it where sampling is what matters (e.g.
    variational posteriors); fit densities with :class:`MAF`.

    Args:
        event_shape, support, num_layers, hidden_features: see :class:`~probgen.models.flows.Flow`.

    Example:
        >>> import probgen as pg
        >>> data = pg.load_dataset("moons")
        >>> iaf = IAF.from_dataset(data, num_layers=2, hidden_features=(16,))
        >>> iaf.sample(4).shape
        torch.Size([4, 2])
    """

    density_fast = False
