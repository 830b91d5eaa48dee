"""The shared base of the flows: a standard normal pushed through a chain of Pyro transforms.

A flow is ``x = f(z)``, ``z ~ N(0, I)``, with ``f`` a composition of invertible
:class:`pyro.distributions.transforms` and, on the data side, an :class:`ActNorm` initialised
from the data. ``log p(x) = log N(f^-1(x)) + log |det d f^-1(x) / dx|`` exactly (density kind
"exact"), and the Pyro model observes ``x`` under ``dist.TransformedDistribution`` inside the
data plate, so ``fit`` (and plain ``pyro.infer.SVI`` with an empty guide) is maximum likelihood.

Each family lists its transforms in the generative direction (base to data) and chooses the
orientation: a transform whose forward is one network pass placed as ``t.inv`` makes density
one pass (MAF), placed as ``t`` makes sampling one pass (IAF).

References:
    Rezende & Mohamed, "Variational Inference with Normalizing Flows" (2015), arXiv:1505.05770.
    Papamakarios, Nalisnick, Rezende, Mohamed & Lakshminarayanan, "Normalizing Flows for
    Probabilistic Modeling and Inference" (2021), arXiv:1912.02762.
    Kingma & Dhariwal, "Glow" (2018), arXiv:1807.03039 — actnorm.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import pyro
import pyro.distributions as dist
import torch
from pyro.distributions.conditional import ConditionalTransform
from pyro.distributions.torch_transform import TransformModule
from pyro.distributions.transforms import Permute
from pyro.nn import pyro_method
from torch import Tensor, nn
from torch.distributions import Transform, constraints

from probgen._checks import check_dropout, check_int
from probgen.models.base import GenerativeModel, data_plate, evaluating, network
from probgen.models.networks import hidden_dropout

__all__ = [
    "ActNorm",
    "COUPLINGS",
    "CouplingFlow",
    "Flow",
    "FLOW_BUDGET",
    "check_coupling",
    "checkerboard_order",
    "reverse",
]

#: the default training budget of the flows (``compare`` and the CLI use it)
FLOW_BUDGET = {"epochs": 100, "lr": 1e-3, "batch_size": 100, "patience": 20}


class ActNorm(TransformModule):
    """``y = loc + exp(log_scale) * x`` with learned ``loc``/``log_scale`` of shape ``shape``
    (broadcast over the event), initialised so that data ``y`` map to zero mean, unit scale.

    Example:
        >>> t = ActNorm((3,))
        >>> t.initialize(torch.randn(100, 3) * 5 + 2)
        >>> bool(t.inv(torch.full((1, 3), 2.0)).abs().max() < 1)
        True
    """

    bijective = True

    def __init__(self, shape: Sequence[int], event_dim: int = 1) -> None:
        super().__init__(cache_size=1)
        self.loc = nn.Parameter(torch.zeros(tuple(shape)))
        self.log_scale = nn.Parameter(torch.zeros(tuple(shape)))
        self._event_dim = event_dim

    @constraints.dependent_property(is_discrete=False)
    def domain(self) -> constraints.Constraint:
        return constraints.independent(constraints.real, self._event_dim)

    @constraints.dependent_property(is_discrete=False)
    def codomain(self) -> constraints.Constraint:
        return constraints.independent(constraints.real, self._event_dim)

    def _call(self, x: Tensor) -> Tensor:
        return self.loc + self.log_scale.exp() * x

    def _inverse(self, y: Tensor) -> Tensor:
        return (y - self.loc) * torch.exp(-self.log_scale)

    def log_abs_det_jacobian(self, x: Tensor, y: Tensor) -> Tensor:
        return self.log_scale.expand(x.shape).flatten(-self._event_dim).sum(-1)

    @torch.no_grad()
    def initialize(self, y: Tensor) -> None:
        """Set ``loc``/``log_scale`` to the mean and log standard deviation of outputs ``y``
        (shape ``(N, *event)``), over the examples and the broadcast dimensions."""
        dims = [0] + [1 + i for i, s in enumerate(self.loc.shape) if s == 1]
        self.loc.copy_(y.mean(dims).reshape(self.loc.shape))
        std = y.std(dims).reshape(self.loc.shape) if len(y) > 1 else torch.ones_like(self.loc)
        self.log_scale.copy_(std.clamp(min=1e-3).log())


def reverse(dim: int) -> Permute:
    """The order-reversing permutation of a ``dim``-vector (alternates coupling halves and
    autoregressive orders between layers)."""
    return Permute(torch.arange(dim - 1, -1, -1))


def checkerboard_order(event_shape: Sequence[int]) -> Tensor:
    """The flattened coordinates of ``event_shape``, those of one checkerboard colour first.

    A coordinate's colour is the parity of the sum of its indices (Dinh et al.'s checkerboard
    mask): over the event shape itself, or over ``(sqrt(D), sqrt(D))`` for a flat event of square
    size ``D`` (an 8x8 digit flattened to 64 values), else the parity of the position. Coupling
    layers that split the reordered vector in halves then condition each pixel on its
    neighbours, where splitting the raw vector would condition the image's bottom on its top.

    Example:
        >>> checkerboard_order((6,)).tolist()
        [0, 2, 4, 1, 3, 5]
        >>> checkerboard_order((2, 2)).tolist()
        [0, 3, 1, 2]
    """
    shape = tuple(int(s) for s in event_shape)
    size = math.prod(shape)
    side = math.isqrt(size)
    grid = shape if len(shape) > 1 else (side, side) if side * side == size and side > 1 else (size,)
    indices = torch.cartesian_prod(*(torch.arange(s) for s in grid)).reshape(size, len(grid))
    colour = indices.sum(-1) % 2
    return torch.argsort(colour, stable=True)


#: the ways a coupling flow splits its coordinates (``coupling=``)
COUPLINGS = ("checkerboard", "halves")


def check_coupling(coupling: str) -> str:
    """``coupling`` if it is one of :data:`COUPLINGS`, else a ValueError naming them."""
    if coupling not in COUPLINGS:
        raise ValueError(f"coupling must be one of {', '.join(map(repr, COUPLINGS))}, got {coupling!r}")
    return coupling


class Flow(GenerativeModel):
    """A normalizing flow of real data: ``x = actnorm(f_L(... f_1(z)))``, ``z ~ N(0, I)``.

    Subclasses implement :meth:`_layers` — the transforms in the generative direction, base to
    data — and say in their docstring which direction is one network pass. Their transforms
    act on :attr:`shape`: flattened vectors, or images for image flows.

    Args:
        event_shape: shape of one example (flattened to a vector of ``num_dims``).
        support: "real".
        num_layers: number of flow layers (each with its own network).
        hidden_features: hidden widths of each layer's network.
        dropout: probability in [0, 1) of dropping each hidden unit of the layers' networks, in
            train mode only (:func:`~probgen.models.networks.hidden_dropout`). A flow starts in
            eval mode, where ``log_prob`` is the exact density of its weights; ``fit`` turns
            train mode on for its training epochs only, and sampling is always in eval mode.

    Example:
        >>> import probgen as pg, torch
        >>> data = pg.load_dataset("moons")
        >>> flow = pg.models.RealNVP.from_dataset(data, num_layers=2, hidden_features=(16,))
        >>> _ = pg.fit(flow, data, epochs=1, progress=False)
        >>> isinstance(flow, pg.models.Flow), flow.density, flow.sample(3).shape
        (True, 'exact', torch.Size([3, 2]))
        >>> side = torch.linspace(-8, 8, 321)  # the density integrates to 1 (quadrature on a grid)
        >>> grid = torch.cartesian_prod(side, side)
        >>> with torch.no_grad():
        ...     mass = flow.log_prob(grid).exp().sum().item() * (side[1] - side[0]).item() ** 2
        >>> abs(mass - 1) < 0.02
        True
    """

    supports = ("real",)
    _nonempty_sizes = ("hidden_features",)  # Pyro's DenseNN and AutoRegressiveNN need a hidden layer
    _absent_in_old_configs: ClassVar[dict[str, Any]] = {"dropout": 0.0}  # configs saved before the option

    def __init__(
        self,
        event_shape,
        support: str = "real",
        *,
        num_layers: int = 5,
        hidden_features: Sequence[int] = (64, 64),
        dropout: float = 0.0,
    ):
        super().__init__(event_shape, support)
        self.num_layers = check_int("num_layers", num_layers)
        self.hidden_features = tuple(check_int("hidden width", int(h)) for h in hidden_features)
        self.dropout = check_dropout("dropout", dropout)
        actnorm = ActNorm(self.shape[:1] + (1,) * (len(self.shape) - 1), len(self.shape))  # per channel
        #: the transforms, base to data (Permutes and ``t.inv`` included)
        self.chain: list[Transform] = [*self._layers(), actnorm]
        modules = [t if isinstance(t, nn.Module) else t.inv for t in self.chain]
        self.transforms = hidden_dropout(nn.ModuleList([m for m in modules if isinstance(m, nn.Module)]), self.dropout)
        self.eval()  # a density from the start: only fit's training epochs (train mode) drop units

    def _layers(self) -> list[Transform]:
        raise NotImplementedError

    def _stacked(self, make_layer: Callable[[], Transform]) -> list[Transform]:
        """``num_layers`` layers from ``make_layer``, the vector order reversed between them (so
        coupling halves and autoregressive orders alternate); at least 2 dimensions."""
        self._check_min_dims(2)
        layers: list[Transform] = []
        for i in range(self.num_layers):
            if i:
                layers.append(reverse(self.num_dims))
            layers.append(make_layer())
        return layers

    @property
    def made_hidden(self) -> list[int]:
        """Hidden widths for a masked autoregressive network: each at least ``num_dims``."""
        return [max(h, self.num_dims) for h in self.hidden_features]

    @property
    def actnorm(self) -> ActNorm:
        """The data-side normalisation, initialised from data by :meth:`init_from_data`."""
        return self.transforms[-1]

    @property
    def shape(self) -> tuple[int, ...]:
        """The shape the transforms act on: ``(num_dims,)`` (image flows: ``(C, H, W)``)."""
        return (self.num_dims,)

    def _check_min_dims(self, minimum: int) -> None:
        if self.num_dims < minimum:
            name = type(self).__name__
            raise ValueError(f"{name} needs at least {minimum} dimensions, got event_shape {self.event_shape}")

    # ------------------------------------------------------------------ the distribution
    def distribution(self, like: Tensor | None = None, context: Tensor | None = None) -> dist.TransformedDistribution:
        """``p(x)`` (or ``p(x | context)`` for conditional transforms) over x of :attr:`shape`,
        as a ``TransformedDistribution`` (caches cleared, so that a transform never returns a
        value computed with earlier parameters)."""
        network(self, "transforms")  # announces the parameters to Pyro outside fit
        layers = []
        for t in self.chain:
            if isinstance(t, ConditionalTransform):
                if context is None:
                    raise ValueError(f"{type(self).__name__} needs a context (labels y); got none")
                t = t.condition(context)
            else:
                t.clear_cache()
                t.inv.clear_cache()
            layers.append(t)
        like = self._reference_tensor() if like is None else like
        zero = torch.zeros((), dtype=like.dtype, device=like.device)
        base = dist.Normal(zero, zero + 1).expand(self.shape).to_event(len(self.shape))
        return dist.TransformedDistribution(base, layers)

    @pyro_method
    def model(self, x: Tensor, y: Tensor | None = None) -> None:
        x = x.reshape(x.shape[0], *self.shape)
        with data_plate(self, x):
            pyro.sample("x", self.distribution(x), obs=x)

    def log_prob(self, x: Tensor) -> Tensor:
        x = self.validate(x).reshape(len(x), *self.shape)
        return self.distribution(x).log_prob(x)

    def to_base(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``z = f^-1(x)`` and ``log |det dz/dx|`` per example, for ``x`` of shape ``(N, *event_shape)``."""
        z = x.reshape(len(x), *self.shape)
        log_det = z.new_zeros(len(x))
        for t in reversed(self.distribution(z, context).transforms):
            previous, z = z, t.inv(z)
            log_det = log_det - t.log_abs_det_jacobian(z, previous)
        return z, log_det

    def from_base(self, z: Tensor, context: Tensor | None = None) -> Tensor:
        """``x = f(z)`` for base points ``z`` of shape ``(N, *shape)``; shape ``(N, *event_shape)``."""
        for t in self.distribution(z, context).transforms:
            z = t(z)
        return z.reshape(len(z), *self.event_shape)

    def sample(self, n: int) -> Tensor:
        n = self._check_n(n)
        with torch.no_grad(), evaluating(self):  # never a draw of a dropped-out network
            return self.distribution().sample((n,)).reshape(n, *self.event_shape)

    def init_from_data(self, x: Tensor, y: Tensor | None = None) -> None:
        self.actnorm.initialize(x.reshape(len(x), *self.shape).to(self.dtype))

    def _config_kwargs(self) -> dict[str, Any]:
        return {"num_layers": self.num_layers, "hidden_features": list(self.hidden_features), "dropout": self.dropout}


class CouplingFlow(Flow):
    """A flow of coupling layers, each transforming one half of the coordinates given the
    other: ``coupling="checkerboard"`` (the default) makes the halves the two colours of
    :func:`checkerboard_order`, ``"halves"`` the first and the second half of the flattened
    event (the layout of configs saved before the option, which load as such).

    Subclasses build their layers with :meth:`_coupled`.
    """

    _absent_in_old_configs: ClassVar[dict[str, Any]] = {**Flow._absent_in_old_configs, "coupling": "halves"}

    def __init__(self, event_shape, support: str = "real", *, coupling: str = "checkerboard", **kwargs: Any) -> None:
        self.coupling = check_coupling(coupling)
        super().__init__(event_shape, support, **kwargs)

    def _coupled(self, make_layer: Callable[[], Transform]) -> list[Transform]:
        """``num_layers`` coupling layers from ``make_layer``, each transforming the second half
        of its input given the first, swapped between layers, on the coordinates of
        :attr:`coupling`."""
        layers = self._stacked(make_layer)
        if self.coupling == "checkerboard":
            layers.append(Permute(torch.argsort(checkerboard_order(self.event_shape))))
        return layers

    def _config_kwargs(self) -> dict[str, Any]:
        return {**super()._config_kwargs(), "coupling": self.coupling}
