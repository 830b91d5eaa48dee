"""The class behind :func:`probgen.models.pyro_model_class`: a factory of PyroModels, as a class.

``pyro_model_class(factory, name)`` (defined, with its example, in ``pyro_model.py``) returns a
subclass of :class:`~probgen.models.pyro_model.PyroModel` whose constructor is
``factory(event_shape, support, **kwargs)`` and whose config is those keyword arguments, so that
a registered program is rebuilt from a checkpoint's JSON by name. The base class is passed in
(``_factory_class(PyroModel, factory, ...)``) rather than imported: this module then imports
nothing of ``pyro_model.py``, which re-exports ``pyro_model_class``, and the two form no cycle.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from probgen.models.vocabulary import check_kwargs

if TYPE_CHECKING:  # type hints only: the class itself is passed in, see the module docstring
    from probgen.models.pyro_model import PyroModel

__all__: list[str] = []


def _factory_class(
    base: type[PyroModel], factory: Callable[..., PyroModel], name: str | None = None, *, description: str | None
) -> type[PyroModel]:
    """A subclass of ``base`` built by ``factory(event_shape, support, **kwargs)`` (see the module docstring)."""
    if not callable(factory) or isinstance(factory, type):
        raise TypeError(f"expected a function factory(event_shape, support, **kwargs), got {factory!r}")
    accepted = _accepted_parameters(factory)
    label = name or factory.__name__
    namespace = {
        **_factory_methods(base, factory, label, accepted),
        "__module__": getattr(factory, "__module__", base.__module__),
        "__doc__": description or factory.__doc__,
        "__qualname__": getattr(factory, "__qualname__", label),
        "name": label,
        "factory": staticmethod(factory),
    }
    return type(factory.__name__, (base,), namespace)


def _accepted_parameters(factory: Callable[..., Any]) -> dict[str, inspect.Parameter]:
    """The factory's keyword arguments (its config), after checking it takes (event_shape, support)."""
    signature = inspect.signature(factory)
    positional = [p for p in signature.parameters.values() if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if len(positional) < 2 and not any(p.kind == p.VAR_POSITIONAL for p in signature.parameters.values()):
        raise TypeError(
            f"{getattr(factory, '__name__', factory)!r} takes {len(positional)} positional argument(s); expected "
            "factory(event_shape, support, **kwargs) returning a PyroModel"
        )
    shape_names = {p.name for p in positional[:2]}
    return {
        p.name: p
        for p in signature.parameters.values()
        if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD) and p.name not in shape_names
    }


def _factory_methods(
    base: type[PyroModel], factory: Callable[..., PyroModel], label: str, accepted: dict[str, inspect.Parameter]
) -> dict[str, Any]:
    """The constructor, config and ``from_config`` of the factory's class."""

    def __init__(self: PyroModel, event_shape: Any, support: str, **kwargs: Any) -> None:
        built = factory(event_shape, support, **kwargs)
        if not isinstance(built, base):
            raise TypeError(f"{label}(event_shape, support) returned {type(built).__name__}; expected a PyroModel")
        base.__init__(self, **built._arguments, event_shape=built.event_shape, support=built.support)
        self._kwargs = {k: list(v) if isinstance(v, tuple) else v for k, v in kwargs.items()}

    def _config_kwargs(self: PyroModel) -> dict[str, Any]:
        return dict(self._kwargs)

    def from_config(cls: type, config: dict[str, Any]) -> PyroModel:
        kwargs = {k: v for k, v in config.items() if k not in ("name", "event_shape", "support", "pyro_program")}
        check_kwargs(cls, kwargs)
        kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in kwargs.items()}
        model = cls(tuple(config["event_shape"]), config["support"], **kwargs)
        model.check_program(config)
        return model

    return {
        "__init__": __init__,
        "_config_kwargs": _config_kwargs,
        "_accepted_parameters": dict(accepted),  # read by probgen.models.vocabulary.accepted_parameters
        "from_config": classmethod(from_config),
    }
