"""Models from outside probgen: a user's own Python file, and installed packages' entry points.

Two ways in, both ending in :data:`probgen.models.MODELS` (so ``probgen list``, checkpoints,
``compare`` and ``probgen run`` know the model by name):

- a file: :func:`load_file` imports ``mymodels.py`` by its path (as a ``probgen run`` config's
  ``module = "mymodels.py"`` with ``name = "MyModel"`` does) and registers its attribute
  ``MyModel``;
- an installed package: an entry point in the group ``probgen.models``, e.g. in its
  ``pyproject.toml``::

      [project.entry-points."probgen.models"]
      my-model = "mypackage.models:MyModel"

  loaded the first time the registry is read; the entry point's name is the model's name.

What ``MyModel`` may be: a :class:`~probgen.models.GenerativeModel` subclass, or a function
``MyModel(event_shape, support, **kwargs)`` returning a :class:`~probgen.models.PyroModel` (its
keyword arguments become the config's ``args``). A class or factory already registered with
:func:`probgen.models.register` keeps the name it registered. Nothing is ever unpickled: a file is
imported as Python source, which runs it, as ``import`` would.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import inspect
import sys
import warnings
from pathlib import Path
from typing import Any

from probgen.models.base import GenerativeModel
from probgen.models.pyro_model import pyro_model_class
from probgen.models.registry import MODELS, register

__all__ = ["ENTRY_POINT_GROUP", "as_model_class", "load_entry_points", "load_file", "register_object"]

#: the entry-point group installed packages declare their models in
ENTRY_POINT_GROUP = "probgen.models"


def as_model_class(obj: Any, name: str) -> type[GenerativeModel]:
    """``obj`` as a model class: a GenerativeModel subclass itself, a PyroModel factory function
    through :func:`~probgen.models.pyro_model_class`; else a TypeError saying what is accepted."""
    if isinstance(obj, type) and issubclass(obj, GenerativeModel):
        return obj
    if isinstance(obj, GenerativeModel):
        raise TypeError(
            f"{name!r} is a model instance ({type(obj).__name__}); expected a GenerativeModel subclass or a function "
            "MyModel(event_shape, support, **kwargs) returning a PyroModel, so that it can be built for any data"
        )
    if callable(obj) and not isinstance(obj, type):
        return pyro_model_class(obj, name)
    raise TypeError(
        f"{name!r} is {type(obj).__name__}; expected a GenerativeModel subclass or a function "
        "MyModel(event_shape, support, **kwargs) returning a PyroModel"
    )


def _registered_name(cls: type[GenerativeModel]) -> str | None:
    for key, spec in MODELS.items():
        if spec.cls is cls:
            return key
    return None


def register_object(obj: Any, name: str, description: str | None = None) -> str:
    """Register ``obj`` (see :func:`as_model_class`) as ``name`` unless it is registered already
    (then under its own name); return the name it is known by."""
    if isinstance(obj, type) and issubclass(obj, GenerativeModel):
        known = _registered_name(obj)
        if known is not None:
            return known
    cls = as_model_class(obj, name)
    known = _registered_name(cls)
    if known is not None:
        return known
    spec = MODELS.get(name)
    if spec is not None and spec.cls.__module__ != cls.__module__:
        raise ValueError(f"model name {name!r} is already registered to {spec.cls.__module__}.{spec.cls.__qualname__}")
    if spec is not None:  # the same file imported again (edited): the new definition replaces the old
        del MODELS[name]
    text = description or inspect.getdoc(cls) or f"{name} (from {cls.__module__})"
    register(name, description=text.strip().splitlines()[0])(cls)
    return name


def _import_file(path: Path) -> Any:
    """The module of the Python file ``path`` (imported once per path and contents)."""
    digest = hashlib.sha256(str(path).encode() + path.read_bytes()).hexdigest()[:12]
    module_name = f"probgen_user_models.{path.stem}_{digest}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ValueError(f"{str(path)!r} cannot be imported; expected a Python file (.py)")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as err:
        del sys.modules[module_name]
        raise ValueError(f"importing {str(path)!r} failed: {type(err).__name__}: {err}") from err
    return module


def load_file(path: str | Path, name: str) -> str:
    """Import the Python file ``path`` and register its attribute ``name`` (a GenerativeModel
    subclass or a PyroModel factory); return the registered name.

    Example:
        >>> import pathlib, tempfile
        >>> folder = pathlib.Path(tempfile.mkdtemp())
        >>> _ = (folder / "mine.py").write_text(
        ...     "import torch, pyro, pyro.distributions as dist, probgen as pg\\n"
        ...     "def Coins(event_shape, support):\\n"
        ...     "    def model(x):\\n"
        ...     "        p = pyro.param('p', torch.full(event_shape, 0.5))\\n"
        ...     "        with pyro.plate('data', x.shape[0]):\\n"
        ...     "            pyro.sample('x', dist.Bernoulli(p).to_event(1), obs=x)\\n"
        ...     "    return pg.models.PyroModel(model, event_shape=event_shape, support=support)\\n"
        ... )
        >>> load_file(folder / "mine.py", "Coins")
        'Coins'
        >>> from probgen.models import MODELS
        >>> MODELS["Coins"].cls((3,), "binary").density
        'exact'
    """
    path = Path(path).expanduser().resolve()
    if not path.is_file():
        raise ValueError(f"model module {str(path)!r} does not exist; expected a Python file defining {name!r}")
    module = _import_file(path)
    if not hasattr(module, name):
        candidates = sorted(
            k
            for k, v in vars(module).items()
            if not k.startswith("_")
            and getattr(v, "__module__", None) == module.__name__
            and (inspect.isfunction(v) or (isinstance(v, type) and issubclass(v, GenerativeModel)))
        )
        raise ValueError(
            f"{str(path)!r} defines no {name!r}; expected a GenerativeModel subclass or a PyroModel factory "
            f"(it defines {', '.join(candidates) or 'none'})"
        )
    try:
        return register_object(getattr(module, name), name)
    except TypeError as err:
        raise ValueError(f"{str(path)!r}: {err}") from err


def load_entry_points(group: str = ENTRY_POINT_GROUP) -> list[str]:
    """Register the models installed packages declare in the entry-point ``group``; a plug-in
    that fails to load or register warns, naming it, and is skipped. Returns the names added."""
    added = []
    for entry in importlib.metadata.entry_points(group=group):
        source = f"{entry.value} from {entry.dist.name}" if entry.dist is not None else entry.value
        try:
            if entry.name in MODELS and not _is_same(entry):
                raise ValueError(f"the name {entry.name!r} is already taken by a probgen model")
            added.append(register_object(entry.load(), entry.name))
        except Exception as err:  # a broken plug-in must not stop probgen
            warnings.warn(
                f"probgen: model plug-in {entry.name!r} ({source}) was not loaded: {type(err).__name__}: {err}",
                stacklevel=2,
            )
    return added


def _is_same(entry: importlib.metadata.EntryPoint) -> bool:
    """Whether the registered model of the entry point's name comes from the entry point's module."""
    spec = MODELS.get(entry.name)
    return spec is not None and spec.cls.__module__ == entry.module
