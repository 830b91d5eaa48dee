"""The contract every probgen model follows (see DESIGN.md, "The model contract")."""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, ClassVar

import pyro
import torch
from pyro.nn import PyroModule
from torch import Tensor

from probgen._checks import check_int
from probgen.data.support import check_data, parse_support

__all__ = ["GenerativeModel", "DENSITY_KINDS"]

DENSITY_KINDS = ("exact", "lower_bound", "implicit")


class GenerativeModel(PyroModule):
    """Base class of probgen models: a Pyro model/guide pair with an explicit density interface.

    Subclasses implement ``model`` and ``guide`` as ``@pyro_method``\\ s (a method that is not
    ``forward`` must be decorated, or its parameters never register with Pyro and SVI silently
    trains nothing), observe data inside :meth:`data_plate`, and implement :meth:`log_prob`,
    :meth:`sample` and :meth:`_config_kwargs`.

    Attributes:
        name: the registry name, e.g. "independent-bernoulli".
        density: what :func:`probgen.log_likelihood` can report: "exact", "lower_bound" or
            "implicit".
        supports: the data supports the model accepts ("binary", "discrete", "real").
    """

    name: ClassVar[str] = "model"
    density: ClassVar[str] = "exact"
    supports: ClassVar[tuple[str, ...]] = ("binary", "discrete", "real")
    #: True when ``log_prob`` averages over posterior draws by Monte Carlo.
    log_prob_is_estimate: ClassVar[bool] = False
    #: True when its likelihood is of x given a label (log p(x | y)), not comparable to p(x)
    conditional: ClassVar[bool] = False
    #: How many plates the model nests (the "data" plate is one); vectorized particles go left.
    max_plate_nesting: ClassVar[int] = 1

    def __init__(self, event_shape: tuple[int, ...] | int, support: str) -> None:
        super().__init__()
        if isinstance(event_shape, int):
            event_shape = (event_shape,)
        event_shape = tuple(int(d) for d in event_shape)
        if not event_shape or any(d < 1 for d in event_shape):
            raise ValueError(f"event_shape must be non-empty positive sizes, got {event_shape}")
        kind, _ = parse_support(support)
        if kind not in self.supports:
            raise ValueError(
                f"{type(self).__name__} does not model {support!r} data; it supports {', '.join(self.supports)}"
            )
        self.event_shape = event_shape
        self.support = support
        self._num_data: int | None = None
        self._params_held = False
        self._indices: dict[tuple[int, torch.device], Tensor] = {}  # data_plate's subsample cache

    # ------------------------------------------------------------------ shapes and validation
    @property
    def num_dims(self) -> int:
        """The D of bits/dim: scalar dimensions per example."""
        return math.prod(self.event_shape)

    @property
    def num_levels(self) -> int | None:
        return parse_support(self.support)[1]

    def _reference_tensor(self) -> Tensor:
        for tensor in (*self.parameters(), *self.buffers()):
            if tensor.dtype.is_floating_point:
                return tensor
        return torch.empty(0)

    @property
    def device(self) -> torch.device:
        return self._reference_tensor().device

    @property
    def dtype(self) -> torch.dtype:
        return self._reference_tensor().dtype

    def validate(self, x: Any, name: str = "x") -> Tensor:
        """Check ``x`` against the model's support and event shape; return it on the model's
        device and dtype."""
        x = check_data(x, self.support, self.event_shape, name=name)
        return x.to(device=self.device, dtype=self.dtype)

    # ------------------------------------------------------------------ minibatch scaling
    def data_plate(self, x: Tensor) -> pyro.plate:
        """The ``"data"`` plate over the rows of ``x``, scaled by N / B inside :meth:`scaled_to`."""
        batch = x.shape[0]
        size = self._num_data if self._num_data is not None else batch
        index = self._indices.get((batch, x.device))
        if index is None:
            index = self._indices[(batch, x.device)] = torch.arange(batch, device=x.device)
        return pyro.plate("data", size, subsample=index)

    @contextmanager
    def scaled_to(self, num_data: int) -> Iterator[None]:
        """Within this context a minibatch stands for ``num_data`` examples (ELBO scale N / B)."""
        previous, self._num_data = self._num_data, int(num_data)
        try:
            yield
        finally:
            self._num_data = previous

    @contextmanager
    def parameters_held(self) -> Iterator[None]:
        """Within this context the caller optimises ``self.parameters()`` itself (as ``fit``
        does), so :meth:`net` skips announcing each network parameter to Pyro on every call."""
        previous, self._params_held = self._params_held, True
        try:
            yield
        finally:
            self._params_held = previous

    def net(self, name: str) -> torch.nn.Module:
        """The submodule ``name``; outside :meth:`parameters_held` it is fetched through
        ``PyroModule``, which issues the ``param`` statements plain ``pyro.infer.SVI`` needs."""
        return self._modules[name] if self._params_held else getattr(self, name)

    # ------------------------------------------------------------------ the contract
    def model(self, x: Tensor, y: Tensor | None = None) -> None:
        raise NotImplementedError

    def guide(self, x: Tensor, y: Tensor | None = None) -> None:
        """The variational family; empty for fully observed models."""

    def forward(self, x: Tensor, y: Tensor | None = None) -> None:
        return self.model(x, y)

    def log_prob(self, x: Tensor) -> Tensor:
        """Per-example log density in nats, shape ``[N]``."""
        if self.density == "lower_bound":
            raise ValueError(
                f"{type(self).__name__} has no exact log_prob; bound it with "
                "probgen.log_likelihood(model, x, method='iwae', num_samples=K)"
            )
        raise ValueError(f"{type(self).__name__} is an implicit model (density={self.density!r}): it has no log_prob")

    def sample(self, n: int) -> Tensor:
        raise NotImplementedError

    def init_from_data(self, x: Tensor, y: Tensor | None = None) -> None:  # noqa: B027
        """Optional data-dependent initialisation, called by ``fit`` before the first step."""

    def after_fit(self, x: Tensor, y: Tensor | None) -> None:  # noqa: B027 - optional hook
        """Optional hook, called by ``fit`` once SVI has finished (e.g. to keep posterior draws)."""

    def _config_kwargs(self) -> dict[str, Any]:
        return {}

    @property
    def config(self) -> dict[str, Any]:
        """JSON-able; :meth:`from_config` re-creates an identical untrained model from it."""
        return {
            "name": self.name,
            "event_shape": list(self.event_shape),
            "support": self.support,
            **self._config_kwargs(),
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> GenerativeModel:
        kwargs = {k: v for k, v in config.items() if k != "name"}
        kwargs["event_shape"] = tuple(kwargs["event_shape"])
        return cls(**kwargs)

    def _check_n(self, n: int) -> int:
        return check_int("number of samples", n)

    def extra_repr(self) -> str:
        return f"event_shape={self.event_shape}, support={self.support!r}"
