"""The model contract: what every probgen model declares, and all that ``probgen.inference`` reads.

A model is a :class:`pyro.nn.PyroModule` with a ``model``/``guide`` pair of ``@pyro_method``\\ s
that observe the data inside :func:`data_plate`. Besides the Pyro program it
declares, in this one place:

========================  ===========================================================
``event_shape``           shape of one example; images are ``(C, H, W)``
``support``               ``"binary"``, ``"discrete(k)"`` or ``"real"``
``supports``              the support kinds the class accepts (class attribute)
``density``               what a log-likelihood of it is: one of :data:`DENSITY_KINDS`
``conditional``           its likelihood is of x given a label, log p(x | y)
``needs_labels``          fitting needs labels (classifiers, conditional models)
``num_classes``           label count (0 for unlabelled models)
``fit_strategy``          the name of the registered strategy that fits it
``predictive``            Bayesian models: "posterior", "variational" or "plug-in"
``max_plate_nesting``     plates the program nests ("data" included)
``vectorizable``          particles can be drawn in one vectorized pass
``posterior``             the Bayesian posterior object, or None
``fitted``                whether it has been fitted (a saved buffer)
========================  ===========================================================

and the methods ``log_prob(x) -> [N]``, ``sample(n)``, ``config``, ``check_labels``,
``log_normalizer`` (for "unnormalized" densities) and the optional hooks ``init_from_data``,
``after_fit``, ``closed_form_statistics`` / ``set_closed_form`` (for the ``"closed_form"``
strategy), ``contrastive_divergence_loss`` (``"contrastive_divergence"``) and
``generator_parameters`` / ``discriminator_parameters`` / ``discriminator_loss`` /
``generator_loss`` (``"adversarial"``).

Construction: the metaclass of ``GenerativeModel`` (:class:`ModelMeta`, ``__call__``) handles
every constructor call in one place, before any ``__init__`` body runs. It renames the argument
names of before the one vocabulary (:mod:`probgen.models.vocabulary`; one DeprecationWarning per
call naming the old and new names), then checks the size-like arguments (``hidden_features``,
``num_hidden``, ``latent_dim``, ``num_layers``, ``hidden_channels``, ``event_shape``, ... : the
table :data:`probgen._checks.SIZE_ARGUMENTS`), bound to the subclass's ``__init__`` signature:
a family need not check its sizes, and a bad one is a ValueError naming the argument, never an
error from inside torch. A class whose networks need a hidden layer lists ``hidden_features``
in ``_nonempty_sizes``. :meth:`GenerativeModel.from_config` applies the same renaming, silently,
so a config saved with old names (an old checkpoint) still loads.

Density kinds:

- ``"exact"``: ``log_prob`` is log p(x) (or the exact posterior predictive of a Bayesian model).
- ``"estimate"``: ``log_prob`` is a Monte-Carlo estimate (e.g. a predictive averaged over
  posterior draws).
- ``"lower_bound"``: no ``log_prob``; importance-weighted bounds (ELBO, IWAE) bound log p(x).
- ``"unnormalized"``: ``log_prob`` is log p~(x) = log p(x) + log Z; log Z is estimated apart.
- ``"implicit"``: no density at all (GANs, plain autoencoders).
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, ClassVar, Literal, get_args

import torch
from pyro.nn import PyroModule
from torch import Tensor
from torch.optim.optimizer import register_optimizer_step_post_hook

from probgen._checks import check_constructor_sizes, check_int
from probgen.data.support import check_data, parse_support
from probgen.models.plates import DataPlate
from probgen.models.vocabulary import accepted_parameters, check_kwargs, positional_to_keywords, rename_arguments

if TYPE_CHECKING:
    from probgen.models.conjugate import ConjugateVariational, MaximumLikelihood, PosteriorMode
    from probgen.models.posterior import Posterior

__all__ = [
    "GenerativeModel",
    "DENSITY_KINDS",
    "DensityKind",
    "ModelMeta",
    "check_labels",
    "data_plate",
    "model_labels",
    "network",
    "evaluating",
    "is_trained",
    "mark_fitted",
    "num_data",
    "parameters_held",
    "scaled_to",
]

DensityKind = Literal["exact", "estimate", "lower_bound", "unnormalized", "implicit"]
#: every density kind a model may declare (see the module docstring)
DENSITY_KINDS: tuple[str, ...] = get_args(DensityKind)


#: every torch optimizer that has taken a step in this process (weakly held): a model whose
#: parameters one of them stepped has been trained, whoever drove it (``probgen.fit``, plain
#: ``pyro.infer.SVI`` with ``pyro.optim``, a hand-written loop)
_STEPPED_OPTIMIZERS: weakref.WeakSet = weakref.WeakSet()


def _record_step(optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
    _STEPPED_OPTIMIZERS.add(optimizer)


register_optimizer_step_post_hook(_record_step)


def check_labels(y: Any, n: int, num_classes: int, owner: str = "the model") -> Tensor:
    """``y`` as ``n`` integer labels in ``0..num_classes-1`` (a long tensor), or a ValueError."""
    if y is None:
        raise ValueError(f"{owner} needs labels: pass (x, y) or a labelled Dataset")
    y = torch.as_tensor(y)
    if y.shape != (n,):
        raise ValueError(f"labels have shape {tuple(y.shape)}; expected ({n},) to match x")
    if y.dtype.is_floating_point and not bool((y == y.round()).all()):
        raise ValueError(f"labels must be integers 0..{num_classes - 1}, got non-integer values")
    y = y.long()
    outside = (y < 0) | (y >= num_classes)
    if bool(outside.any()):
        raise ValueError(f"label {y[outside][0].item()} is outside 0..{num_classes - 1}")
    return y


def is_trained(model: GenerativeModel) -> bool:
    """Whether ``model`` has been fitted (``fitted``: by ``probgen.fit`` or in closed form) or
    any optimizer has stepped one of its parameters (plain Pyro SVI, a loop of one's own)."""
    if bool(model.fitted):
        return True
    own = {id(p) for p in model.parameters()}
    return any(id(p) in own for opt in list(_STEPPED_OPTIMIZERS) for g in opt.param_groups for p in g["params"])


def mark_fitted(model: GenerativeModel) -> None:
    """Set ``fitted`` on ``model`` and on every model inside it (a fitted wrapper's base is
    fitted too, so that a new wrapper of it, e.g. a scorer, knows its weights are trained)."""
    for module in model.modules():
        if isinstance(module, GenerativeModel):
            module.fitted.fill_(True)


def network(model: GenerativeModel, name: str) -> torch.nn.Module:
    """The network submodule ``name`` of ``model``, as its Pyro program calls it.

    Outside ``parameters_held(model)`` it is fetched through ``PyroModule``, which announces its
    parameters as ``param`` sites, each marked (as Pyro marks its own parameters) with
    ``unconstrained()`` returning itself, so plain ``pyro.infer.SVI`` with ``pyro.optim`` trains
    them; inside, the module itself (its parameters are already the fit's).

    Example:
        >>> import probgen as pg
        >>> vae = pg.models.VAE(4, "binary", latent_dim=2, hidden_features=(8,))
        >>> decoder = network(vae, "decoder")
        >>> decoder is vae.decoder, all(p.unconstrained() is p for p in decoder.parameters())
        (True, True)
    """
    if model._params_held:
        return model._modules[name]
    for parameter in model._modules[name].parameters():
        parameter.unconstrained = weakref.ref(parameter)
    return getattr(model, name)


def data_plate(model: GenerativeModel, x: Tensor) -> DataPlate:
    """The ``"data"`` plate of ``model``'s program over the rows of ``x``, scaled by N / B inside
    ``scaled_to(model, N)`` (the ELBO's scale for a minibatch of a data set of N).

    Example:
        >>> import torch, probgen as pg
        >>> model, x = pg.models.IndependentBernoulli(4), torch.zeros(10, 4)
        >>> plate = data_plate(model, x)
        >>> with scaled_to(model, 1000):
        ...     scaled = data_plate(model, x)
        >>> plate.size, scaled.size, scaled.subsample_size
        (10, 1000, 10)
    """
    batch = x.shape[0]
    size = model._num_data if model._num_data is not None else batch
    index = model._indices.get((batch, x.device))
    if index is None:
        index = model._indices[(batch, x.device)] = torch.arange(batch, device=x.device)
    return DataPlate("data", size, subsample=index, device=x.device)


def model_labels(model: GenerativeModel, y: Any, n: int) -> Tensor | None:
    """Labels for ``n`` examples on ``model``'s device, checked against its classes, or None for
    a model that takes none (its labels, if any were given, are ignored)."""
    if not model.needs_labels:
        return None
    return check_labels(y, n, model.num_classes, type(model).__name__).to(model.device)


class ModelMeta(type(PyroModule)):  # type: ignore[misc]
    """The metaclass of every model: one place that sees each constructor call's arguments.

    ``Model(...)`` renames deprecated argument names (warning once per call) and checks the
    size-like arguments before ``__new__`` and ``__init__`` run; only here can the renamed
    arguments reach ``__init__``. Pickle and copy rebuild an instance without calling the class,
    and nothing is checked then.
    """

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        if len(args) > 2:  # e.g. a classifier's num_classes, positional before it was keyword-only
            args, kwargs = positional_to_keywords(cls, args, kwargs, stacklevel=2)
        if kwargs:
            # stacklevel 2: the warning points at the line that called the class
            kwargs = rename_arguments(cls, kwargs, warn=True, stacklevel=2)
        if args or kwargs:
            check_constructor_sizes(cls.__init__, accepted_parameters(cls), args, kwargs, cls._nonempty_sizes)
        return super().__call__(*args, **kwargs)


class GenerativeModel(PyroModule, metaclass=ModelMeta):
    """Base class of probgen models: a Pyro model/guide pair with the declared contract above.

    Subclasses implement ``model`` (and ``guide`` when they have latent variables) as
    ``@pyro_method``\\ s — a method that is not ``forward`` must be decorated, or its
    parameters never register with Pyro and SVI silently trains nothing — observe data inside
    :func:`data_plate`, fetch their networks with :func:`network`, and implement :meth:`log_prob`
    (where the density kind allows), :meth:`sample` and :meth:`_config_kwargs`.
    Register a class with :func:`probgen.models.register` to make it known by name to
    checkpoints, ``probgen list`` and ``compare``.

    Attributes:
        name: the registry name, e.g. ``"independent-bernoulli"`` (set by ``register``).
        supports: the support kinds the class accepts ("binary", "discrete", "real").
        conditional: the likelihood is of x given a label (not comparable with log p(x)).
        needs_labels: fitting needs labels.
        max_plate_nesting: plates the program nests; vectorized particles go left of them.
        vectorizable: particles may be drawn in one vectorized pass.
        num_classes: number of label values (0 when the model takes no labels).
        posterior: the posterior object of a Bayesian model (None otherwise): one of
            :mod:`probgen.models.posterior` (classifiers) or :mod:`probgen.models.conjugate`
            (the factorized baselines).

    Example:
        >>> import probgen as pg, torch
        >>> model = pg.models.IndependentBernoulli(64)
        >>> isinstance(model, pg.models.GenerativeModel), model.event_shape, model.support, model.density
        (True, (64,), 'binary', 'exact')
        >>> type(model).from_config(model.config).config == model.config  # a config rebuilds the model
        True
        >>> model.validate(torch.full((1, 64), 2.0))
        Traceback (most recent call last):
        ...
        ValueError: ...outside the support 'binary' (expected integers 0..1)
    """

    name: ClassVar[str] = "model"
    supports: ClassVar[tuple[str, ...]] = ("binary", "discrete", "real")
    conditional: ClassVar[bool] = False
    needs_labels: ClassVar[bool] = False
    max_plate_nesting: ClassVar[int] = 1
    vectorizable: ClassVar[bool] = True
    num_classes: int = 0
    #: width sequences (``hidden_features``) this class needs non-empty; elsewhere () is no hidden layer
    _nonempty_sizes: ClassVar[tuple[str, ...]] = ()
    #: arguments added after configs were first saved, each with the value a config saved
    #: without it meant (so that an old checkpoint loads as the model it was, not as today's default)
    _absent_in_old_configs: ClassVar[dict[str, Any]] = {}

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
        #: the posterior object of a Bayesian model, a submodule once set (None otherwise)
        self.posterior: Posterior | ConjugateVariational | PosteriorMode | MaximumLikelihood | None = None
        #: set once the model has been fitted (by ``probgen.fit`` or ``fit_closed_form``); saved
        self.register_buffer("fitted", torch.tensor(False))
        self._num_data: int | None = None
        self._params_held = False
        self._indices: dict[tuple[int, torch.device], Tensor] = {}  # data_plate's subsample cache

    # ------------------------------------------------------------------ declared per instance
    @property
    def density(self) -> DensityKind:
        """What :func:`probgen.log_likelihood` can report of this model (see the module doc)."""
        return "exact"

    @property
    def predictive(self) -> str | None:
        """For Bayesian models, what ``log_prob`` is the predictive of: "posterior" (the exact
        posterior predictive, or an average over posterior draws), "variational" (under an
        approximate posterior) or "plug-in" (at a point estimate); None for other models."""
        return None

    def default_fit_options(self) -> dict[str, Any]:
        """Fit options this model suggests where ``probgen.fit`` is given none, by
        :class:`~probgen.inference.FitOptions` field name (e.g. the ``objective`` and the
        ``val_objective`` of a model trained on a surrogate loss); none here."""
        return {}

    @property
    def fit_strategy(self) -> str:
        """Name of the registered fit strategy ``probgen.fit`` uses by default."""
        return "svi"

    # ------------------------------------------------------------------ shapes and validation
    @property
    def num_dims(self) -> int:
        """The D of bits/dim: scalar dimensions per example."""
        return math.prod(self.event_shape)

    @property
    def num_levels(self) -> int | None:
        """Values per dimension of discrete data (2 for binary), None for real data."""
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
        """Check ``x`` against the support and event shape; return it on the model's device and
        dtype. Raises ValueError/TypeError naming what was received and what was expected."""
        x = check_data(x, self.support, self.event_shape, name=name)
        return x.to(device=self.device, dtype=self.dtype)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # weights saved before the flag existed are those of a fitted model
        state_dict.setdefault(prefix + "fitted", torch.tensor(True))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    # ------------------------------------------------------------------ the Pyro program
    def model(self, x: Tensor, y: Tensor | None = None) -> None:
        raise NotImplementedError

    def guide(self, x: Tensor, y: Tensor | None = None) -> None:
        """The variational family; empty for fully observed models."""

    def forward(self, x: Tensor, y: Tensor | None = None) -> None:
        return self.model(x, y)

    def log_prob(self, x: Tensor) -> Tensor:
        """Per-example log density in nats, shape ``[N]`` (log p~(x) for "unnormalized").

        A ``conditional`` model's is ``log_prob(x, y)``: log p(x | y).
        """
        if self.density == "lower_bound":
            raise ValueError(
                f"{type(self).__name__} has no exact log_prob; bound it with "
                "probgen.log_likelihood(model, x, method='iwae', num_samples=K)"
            )
        raise ValueError(f"{type(self).__name__} has density {self.density!r}: it has no log_prob")

    def sample(self, n: int) -> Tensor:
        """``n`` draws of x, shape ``(n, *event_shape)``."""
        raise NotImplementedError

    # ------------------------------------------------------------------ optional hooks
    def init_from_data(self, x: Tensor, y: Tensor | None = None) -> None:  # noqa: B027
        """Data-dependent start (called by ``fit`` with the first training batch)."""

    def after_fit(self, x: Tensor, y: Tensor | None) -> None:  # noqa: B027
        """Called by ``fit`` once training has finished, with a training batch."""

    # ------------------------------------------------------------------ construction
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
        """The untrained model a :attr:`config` describes. A config saved with argument names of
        before the one vocabulary (an old checkpoint) loads without a warning: its names are
        renamed here (:func:`probgen.models.vocabulary.rename_arguments`), and the model's own
        config, hence a re-save, holds the new names. An argument added since (a class's
        ``_absent_in_old_configs``) takes the value such a config meant."""
        kwargs = {k: v for k, v in config.items() if k not in ("name", "event_shape", "support")}
        kwargs = {**cls._absent_in_old_configs, **rename_arguments(cls, kwargs, warn=False)}
        check_kwargs(cls, kwargs)
        return cls(tuple(config["event_shape"]), config["support"], **kwargs)

    @classmethod
    def from_dataset(cls, dataset: Any, **kwargs: Any) -> GenerativeModel:
        """A model shaped for ``dataset`` (a :class:`~probgen.data.Dataset`): its event shape,
        support and, for labelled models, number of classes."""
        check_kwargs(cls, kwargs)
        labels = " with labels" if cls.needs_labels else ""
        if parse_support(dataset.support)[0] not in cls.supports:
            raise ValueError(
                f"{cls.name} does not suit {dataset.name!r} (support {dataset.support!r}); "
                f"it needs {'/'.join(cls.supports)} data{labels}"
            )
        if cls.needs_labels:
            if dataset.y is None:
                raise ValueError(
                    f"{cls.name} does not suit {dataset.name!r}: it needs data with labels, and it has none"
                )
            kwargs.setdefault("num_classes", max(int(dataset.y.max()) + 1, 2))
        return cls(dataset.event_shape, dataset.support, **kwargs)

    def _check_n(self, n: int) -> int:
        return check_int("number of samples", n)

    def extra_repr(self) -> str:
        return f"event_shape={self.event_shape}, support={self.support!r}"


# ---------------------------------------------------------------------------------- contexts of a model
# Functions, not methods: they are for the inference layer (and a loop of one's own), not part of
# what a model implements.
@contextmanager
def scaled_to(model: GenerativeModel, num_data: int) -> Iterator[None]:
    """Within this context a minibatch of ``model`` stands for ``num_data`` examples: its
    :func:`data_plate` scales the log-likelihood by N / B (the ELBO's scale).

    Example:
        >>> import probgen as pg, torch
        >>> model = pg.models.IndependentBernoulli(4)
        >>> with scaled_to(model, 100):
        ...     num_data(model), data_plate(model, torch.zeros(10, 4)).size
        (100, 100)
        >>> num_data(model) is None
        True
    """
    previous, model._num_data = model._num_data, int(num_data)
    try:
        yield
    finally:
        model._num_data = previous


def num_data(model: GenerativeModel) -> int | None:
    """The data size a minibatch of ``model`` stands for inside :func:`scaled_to` (None outside)."""
    return model._num_data


@contextmanager
def evaluating(model: GenerativeModel) -> Iterator[None]:
    """Within this context every submodule of ``model`` is in eval mode (dropout off, batch norm
    on its running statistics), as evaluation wants; each module's own mode comes back after.

    Example:
        >>> import probgen as pg
        >>> vae = pg.models.VAE(8, "binary")
        >>> with evaluating(vae):
        ...     vae.training
        False
        >>> vae.training
        True
    """
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for module, mode in modes:
            module.training = mode


@contextmanager
def parameters_held(model: GenerativeModel) -> Iterator[None]:
    """Within this context the caller optimises ``model.parameters()`` itself (as ``fit`` does),
    so :meth:`~GenerativeModel.net` skips announcing each network parameter to Pyro on every call."""
    previous, model._params_held = model._params_held, True
    try:
        yield
    finally:
        model._params_held = previous
