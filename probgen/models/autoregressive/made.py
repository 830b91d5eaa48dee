"""MADE: a masked autoencoder whose masks make every output depend only on earlier inputs.

Each unit gets a degree: input ``d`` the position of ``d`` in the ordering (1..D), hidden units
a random degree ``m`` in ``[min of the layer below, D - 1]``; a weight is kept when the unit
above has a degree ``>=`` the unit below (``>`` into the outputs), so output ``d`` sees only
``x_<d``. With ``num_masks > 1`` training is order- and connectivity-agnostic (each minibatch
draws one of the masks, orderings random) and ``log_prob`` is the ensemble
``log (1/K) sum_k p_k(x)``; ``sample`` draws a member, then from it. With ``dropout > 0``
the hidden units are dropped (inverted dropout) in the training Pyro program only; ``log_prob``,
``sample`` and ``complete`` use the whole network, so they stay deterministic and normalised.

References:
    Germain, Gregor, Murray & Larochelle, "MADE: Masked Autoencoder for Distribution
    Estimation" (2015), ICML, arXiv:1502.03509.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from probgen._checks import check_dropout, check_int
from probgen.models.autoregressive.base import Autoregressive, MaskedLinear
from probgen.models.base import network
from probgen.models.registry import register

__all__ = ["MADE", "made_masks"]


def made_masks(order: Tensor, hidden: Sequence[int], params_per_dim: int, generator: torch.Generator) -> list[Tensor]:
    """The masks ``[out, in]`` of each layer for ``order`` with random hidden degrees."""
    d = len(order)
    degree = torch.empty(d, dtype=torch.long)
    degree[order] = torch.arange(1, d + 1)
    masks, below = [], degree
    for width in hidden:
        low = min(int(below.min()), d - 1)
        above = torch.randint(low, max(d - 1, low) + 1, (width,), generator=generator)
        masks.append((above[:, None] >= below[None, :]).float())
        below = above
    masks.append((degree[:, None] > below[None, :]).float().repeat_interleave(params_per_dim, 0))
    return masks


@register(
    "made",
    description="MADE: masked autoencoder, order-agnostic training and a mask ensemble (exact)",
    fit_defaults={"epochs": 200, "batch_size": 100, "lr": 1e-3, "patience": 20},
    compare_budget={"epochs": 60},
)
class MADE(Autoregressive):
    """MADE with ``num_masks`` orderings/connectivities (member 0 has the natural ordering).

    Args:
        event_shape, support: of the data ("binary", "discrete(k)" or "real").
        hidden_features: widths of the hidden layers.
        num_masks: K; 1 is a single fixed-order MADE.
        seed: seeds the masks (so a saved model re-creates them).
        components: mixture components per dimension for real data.
        output: for k-level data, \"categorical\" or \"logistic\" (a discretized logistic
            mixture of ``components``; see :class:`OutputHead`).
        dropout: probability in [0, 1) of dropping each hidden unit in the training Pyro
            program (``model``); 0 turns it off. Never applied by ``log_prob``, ``sample``
            or ``complete``.

    Raises:
        ValueError: ``dropout`` is not a number in [0, 1).

    Example:
        >>> import probgen as pg
        >>> data = pg.load_dataset("digits-binary")
        >>> model = MADE.from_dataset(data, hidden_features=(100,), num_masks=4)
        >>> _ = pg.fit(model, data, epochs=2, progress=False)
        >>> model.log_prob(data.x[:3]).shape
        torch.Size([3])
    """

    def __init__(
        self,
        event_shape,
        support: str,
        *,
        hidden_features: Sequence[int] = (500,),
        num_masks: int = 1,
        seed: int = 0,
        components: int = 5,
        output: str = "categorical",
        dropout: float = 0.0,
    ) -> None:
        super().__init__(event_shape, support, components=components, output=output)
        self.hidden_features = tuple(check_int("hidden width", int(h)) for h in hidden_features)
        self.num_masks, self.seed = check_int("num_masks", num_masks), int(seed)
        self.dropout = check_dropout("dropout", dropout)
        widths = [
            self.num_dims * self.head.input_width,
            *self.hidden_features,
            self.num_dims * self.head.params_per_dim,
        ]
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
            layers += [nn.ReLU()] if i else []
            layers.append(MaskedLinear(a, b, torch.ones(b, a)))
        self.made = nn.Sequential(*layers)
        self._members: dict[int, tuple[Tensor, list[Tensor]]] = {}
        self._active: int | tuple[Tensor, list[Tensor]] | None = None  # None: the ensemble

    def member(self, k: int) -> tuple[Tensor, list[Tensor]]:
        """The ordering and masks of ensemble member ``k`` (deterministic in ``seed``)."""
        if k not in self._members:
            g = torch.Generator().manual_seed(self.seed * 100_003 + k)
            order = torch.arange(self.num_dims) if k == 0 else torch.randperm(self.num_dims, generator=g)
            self._members[k] = (order, self._masks(order, g))
        return self._members[k]

    @contextmanager
    def connectivity(self, which: int | Tensor) -> Iterator[None]:
        """Use member ``which`` (an int), or a new mask for the ordering ``which`` (a tensor)."""
        previous = self._active
        if isinstance(which, int):
            self._active = which
        else:
            g = torch.Generator().manual_seed(self.seed * 100_003 - 1)
            order = torch.as_tensor(which).long().cpu()
            self._active = (order, self._masks(order, g))
        try:
            yield
        finally:
            self._active = previous

    def _masks(self, order: Tensor, generator: torch.Generator) -> list[Tensor]:
        masks = made_masks(order, self.hidden_features, self.head.params_per_dim, generator)
        masks[0] = masks[0].repeat_interleave(self.head.input_width, 1)  # each dimension's E inputs
        return masks

    def _current(self) -> tuple[Tensor, list[Tensor]]:
        if self._active is None:
            return self.member(0)
        return self.member(self._active) if isinstance(self._active, int) else self._active

    @property
    def order(self) -> Tensor:
        return self._current()[0].to(self.device)

    def _params(self, x: Tensor, dropout: float = 0.0) -> Tensor:
        """The conditionals' parameters ``[N, D, P]``; ``dropout`` drops hidden units (training)."""
        net = network(self, "made")
        linears = [m for m in net if isinstance(m, MaskedLinear)]
        for layer, mask in zip(linears, self._current()[1], strict=True):
            layer.mask = mask.to(device=x.device, dtype=x.dtype)
        h = self.head.inputs(x).flatten(1)
        for module in net:
            h = module(h)
            if dropout and isinstance(module, nn.ReLU):
                h = F.dropout(h, dropout, training=True)
        return h.reshape(len(x), self.num_dims, self.head.params_per_dim)

    def _log_prob_flat(self, x: Tensor, training: bool = False) -> Tensor:
        """Training: one random member per minibatch (hidden units dropped with probability
        ``dropout``); otherwise the ensemble's log p(x)."""
        one_member = self.num_masks == 1 or self._active is not None
        if training:
            draw = nullcontext() if one_member else self.connectivity(int(torch.randint(self.num_masks, ())))
            with draw:
                return self.head.log_prob(self._params(x, self.dropout), x)
        if one_member:
            return super()._log_prob_flat(x)
        members = []
        for k in range(self.num_masks):
            with self.connectivity(k):
                members.append(super()._log_prob_flat(x))
        return torch.logsumexp(torch.stack(members), 0) - math.log(self.num_masks)

    def sample(self, n: int) -> Tensor:
        """Draw the ensemble member of each sample uniformly, then sample from that member."""
        n = self._check_n(n)
        if self.num_masks == 1:
            return super().sample(n)
        which = torch.randint(self.num_masks, (n,), device=self.device)
        out = torch.empty(n, *self.event_shape, dtype=self.dtype, device=self.device)
        for k in which.unique().tolist():
            with self.connectivity(k):
                out[which == k] = super().sample(int((which == k).sum()))
        return out

    def complete(self, x: Tensor, mask: Tensor, n: int, *, num_particles: int = 100) -> Tensor:
        """As :meth:`Autoregressive.complete`; an order-agnostic MADE (``num_masks > 1``) uses an
        ordering with the observed values first (natural order within each group): exact draws."""
        if self.num_masks == 1:
            return super().complete(x, mask, n, num_particles=num_particles)
        observed = torch.as_tensor(mask).to(torch.bool).reshape(-1)
        if len(observed) != self.num_dims:
            return super().complete(x, mask, n)  # refuses the mask by its shape
        order = torch.cat([observed.nonzero()[:, 0], (~observed).nonzero()[:, 0]]).cpu()
        with self.connectivity(order):
            return super().complete(x, mask, n)

    def num_free_parameters(self) -> int:
        masks = self.member(0)[1]
        linears = [m for m in self.made if isinstance(m, MaskedLinear)]
        return sum(int(mask.sum()) + layer.bias.numel() for layer, mask in zip(linears, masks, strict=True))

    def _config_kwargs(self) -> dict:
        extra = {
            "hidden_features": list(self.hidden_features),
            "num_masks": self.num_masks,
            "seed": self.seed,
            "dropout": self.dropout,
        }
        return {**super()._config_kwargs(), **extra}
