"""The model registry: a decorator beside each class, read by checkpoints, the CLI and compare.

Installed packages add models through the ``probgen.models`` entry-point group (see
:mod:`probgen.models.plugins`); ``import probgen`` loads them last, once the package is whole, so
a plug-in that imports probgen itself finds every name, and a broken one only warns.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from probgen.data.support import parse_support
from probgen.models.base import GenerativeModel
from probgen.models.pyro_model import pyro_model_class
from probgen.models.vocabulary import accepted_kwargs, accepted_parameters, check_kwargs

__all__ = [
    "MODELS",
    "ModelSpec",
    "build_model",
    "model_class",
    "register",
    "accepted_parameters",
    "accepted_kwargs",
    "check_kwargs",
]

M = TypeVar("M", bound=type[GenerativeModel])
F = TypeVar("F")


@dataclass(frozen=True)
class ModelSpec:
    """A registered model: its class, a one-line description, its default training budget
    (keyword arguments of :func:`probgen.fit` that ``probgen fit`` and ``probgen run`` use) and
    the shorter budget of the main job ``probgen compare`` (fit options laid over the defaults,
    counted in epochs, so its numbers do not depend on the machine's speed or load).

    Example:
        >>> import probgen as pg
        >>> spec = pg.models.MODELS["independent-gaussian"]
        >>> isinstance(spec, pg.models.ModelSpec), spec.cls is pg.models.IndependentGaussian
        (True, True)
        >>> spec.suits("real"), spec.suits("binary")  # the data it can be fitted on
        (True, False)
        >>> spec.budget("compare") == {**spec.fit_defaults, **spec.compare_budget}
        True
    """

    #: the model's class
    cls: type[GenerativeModel]
    #: one line: what the model is
    description: str
    #: the model's own training options (keyword arguments of :func:`probgen.fit`)
    fit_defaults: dict[str, Any] = field(default_factory=dict)
    #: the options laid over ``fit_defaults`` for ``probgen compare`` (counted in epochs)
    compare_budget: dict[str, Any] = field(default_factory=dict)
    #: ``probgen compare`` runs it when no models are named (False: a model made of fitted
    #: models, such as a stack, which is no model of its own to compare)
    in_compare: bool = True

    def budget(self, preset: str = "full") -> dict[str, Any]:
        """The fit options of a budget preset: "full" (the defaults) or "compare" (the defaults
        with :attr:`compare_budget` laid over them)."""
        if preset not in ("full", "compare"):
            raise ValueError(f"budget preset {preset!r}: expected 'full' or 'compare'")
        return {**self.fit_defaults, **(self.compare_budget if preset == "compare" else {})}

    def suits(self, support: str, has_labels: bool = False) -> bool:
        """Whether the model can be fitted on data of this support (with or without labels)."""
        return parse_support(support)[0] in self.cls.supports and (has_labels or not self.cls.needs_labels)


#: every registered model by name (:func:`register` adds one; ``probgen list`` shows them)
MODELS: dict[str, ModelSpec] = {}


def register(
    name: str,
    *,
    description: str,
    fit_defaults: dict[str, Any] | None = None,
    compare_budget: dict[str, Any] | None = None,
    in_compare: bool = True,
) -> Callable[[F], Any]:
    """Class decorator: make a :class:`GenerativeModel` known as ``name``.

    Decorating a function ``factory(event_shape, support, **kwargs)`` that returns a
    :class:`~probgen.models.PyroModel` registers the class :func:`~probgen.models.pyro_model_class`
    builds from it (and returns that class, which is called as the function was).

    ``fit_defaults`` are the model's own training options (epochs, lr, batch size, patience);
    ``compare_budget`` shortens them for ``probgen compare`` (e.g. ``{"epochs": 10}`` for a model
    whose epochs are slow), so that the main job ends in minutes with the same numbers anywhere.
    ``in_compare=False`` leaves the model out of ``probgen compare``'s default set of models.

    Example:
        >>> from probgen.models import GenerativeModel, register
        >>> @register("my-model", description="a model of my own", fit_defaults={"epochs": 10})
        ... class MyModel(GenerativeModel): ...
        >>> MyModel.name
        'my-model'
    """

    def decorate(cls: Any) -> Any:
        if not isinstance(cls, type) and callable(cls):
            cls = pyro_model_class(cls, name, description=description)
        if not (isinstance(cls, type) and issubclass(cls, GenerativeModel)):
            raise TypeError(
                f"register({name!r}) decorates GenerativeModel subclasses or PyroModel factories, got {cls!r}"
            )
        known = MODELS.get(name)
        if known is not None and known.cls.__qualname__ != cls.__qualname__:
            raise ValueError(f"model name {name!r} is already registered to {known.cls.__qualname__}")
        cls.name = name
        MODELS[name] = ModelSpec(cls, description, dict(fit_defaults or {}), dict(compare_budget or {}), in_compare)
        return cls

    return decorate


def model_class(name: str) -> type[GenerativeModel]:
    """The class registered under ``name``.

    Example:
        >>> import probgen as pg
        >>> pg.models.model_class("vae") is pg.models.VAE
        True
        >>> pg.models.model_class("vea")
        Traceback (most recent call last):
        ...
        ValueError: unknown model 'vea'; expected one of [...]
    """
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; expected one of {sorted(MODELS)}")
    return MODELS[name].cls


def build_model(name: str, data: Any, **kwargs: Any) -> GenerativeModel:
    """An untrained model named ``name`` shaped for ``data`` (a :class:`~probgen.data.Dataset`).

    Example:
        >>> import probgen as pg
        >>> model = pg.models.build_model("independent-bernoulli", pg.load_dataset("digits-binary"), method="map")
        >>> type(model).__name__, model.event_shape, model.support, model.config["method"]
        ('IndependentBernoulli', (64,), 'binary', 'map')
    """
    return model_class(name).from_dataset(data, **kwargs)
