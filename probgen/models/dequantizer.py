"""Variational dequantization's noise distribution: a conditional flow q(u | x) on the unit cube.

Uniform dequantization bounds ``log P(x)`` by ``E_u[log p((x + u) / k)] - D log k`` with
``u ~ U[0, 1)^D``; the gap is ``KL(U[0, 1)^D || p(u | x))``, large where the density varies
inside a bin. Variational dequantization (Flow++, section 3.1) learns the noise instead:
``u = sigmoid(f(eps; x))`` with ``eps ~ N(0, I)`` and ``f`` a flow conditioned on ``x``, trained
jointly with the model on the bound ``E_q[log p((x + u) / k) - D log k - log q(u | x)] <= log
P(x)``, whose gap is ``KL(q(u | x) || p(u | x))``.

:class:`DequantizationFlow` is ``f``: affine autoregressive layers (Pyro's
:class:`~pyro.distributions.transforms.ConditionalAffineAutoregressive`, their MADE networks
taking the bin's centre as context) in the inverse-autoregressive direction, so that drawing
``u`` and scoring the draw (all a bound needs) is one network pass per layer; the orders
alternate between layers. The final layer of each network starts at zero, so the flow starts
at the identity and q at the logit-normal ``sigmoid(N(0, I))``.

References:
    Ho, Chen, Srinivas, Duan & Abbeel, "Flow++: Improving Flow-Based Generative Models with
    Variational Dequantization and Architecture Design" (ICML 2019), arXiv:1902.00275.
    Kingma, Salimans, Jozefowicz, Chen, Sutskever & Welling, "Improved Variational Inference
    with Inverse Autoregressive Flow" (NeurIPS 2016), arXiv:1606.04934.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import pyro.distributions as dist
import torch
from pyro.distributions.transforms import ConditionalAffineAutoregressive
from pyro.nn import ConditionalAutoRegressiveNN
from torch import Tensor, nn
from torch.distributions.transforms import ReshapeTransform, SigmoidTransform

from probgen._checks import check_int
from probgen.models.networks import identity_start

__all__ = ["DequantizationFlow"]


class DequantizationFlow(nn.Module):
    """``q(u | x)`` on ``[0, 1)^event_shape``: a standard normal through ``num_layers`` conditional
    affine autoregressive layers (context: ``x`` scaled to ``[-1, 1]``), then a sigmoid.

    Args:
        event_shape: of the data.
        num_levels: k, the data's levels (the context is ``2 (x + 1/2) / k - 1``).
        num_layers: affine autoregressive layers.
        hidden_features: the widths of each layer's MADE network (each raised to at least the
            number of dimensions, as a masked network needs).

    Example:
        >>> import torch
        >>> q = DequantizationFlow((3,), 4, num_layers=2, hidden_features=(8,))
        >>> u = q.distribution(torch.tensor([[0.0, 1.0, 3.0]])).rsample()
        >>> u.shape, bool(((u > 0) & (u < 1)).all())
        (torch.Size([1, 3]), True)
    """

    def __init__(
        self,
        event_shape: Sequence[int],
        num_levels: int,
        *,
        num_layers: int = 2,
        hidden_features: Sequence[int] = (64,),
    ) -> None:
        super().__init__()
        self.event_shape = torch.Size(event_shape)
        self.num_levels = check_int("num_levels", num_levels, minimum=2)
        check_int("num_layers", num_layers)
        hidden = [check_int("hidden_features", h) for h in hidden_features]
        if not hidden:
            raise ValueError("hidden_features must name at least one width, got ()")
        d = self.num_dims = math.prod(self.event_shape)
        hidden = [max(h, d) for h in hidden]  # a masked network needs each width >= its inputs (as the flows')
        self.layers = nn.ModuleList()
        for i in range(num_layers):
            order = torch.arange(d) if i % 2 == 0 else torch.arange(d).flip(0)
            with warnings.catch_warnings():  # one dimension: Pyro suggests a plain affine map, which this is
                warnings.simplefilter("ignore", UserWarning)
                net = ConditionalAutoRegressiveNN(d, d, hidden, permutation=order)
            self.layers.append(ConditionalAffineAutoregressive(identity_start(net)))

    def distribution(self, x: Tensor) -> dist.TorchDistribution:
        """``q(u | x)`` for data ``x`` of shape ``[N, *event_shape]``: batch ``[N]``, event
        ``event_shape`` (reparameterized: ``rsample`` and ``log_prob`` of its own draws)."""
        lead = x.shape[: x.dim() - len(self.event_shape)]
        context = (2 * x.reshape(*lead, self.num_dims) + 1) / self.num_levels - 1
        zero = torch.zeros((), dtype=x.dtype, device=x.device)
        base = dist.Normal(zero, zero + 1).expand(lead + (self.num_dims,)).to_event(1)
        transforms = [layer.condition(context) for layer in self.layers]
        # cached, so that scoring a draw reads each layer's input back instead of inverting it (D passes)
        transforms += [
            SigmoidTransform(cache_size=1),
            ReshapeTransform((self.num_dims,), self.event_shape, cache_size=1),
        ]
        return dist.TransformedDistribution(base, transforms)
