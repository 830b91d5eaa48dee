"""Inspecting a plain Pyro program: what :class:`~probgen.models.pyro_model.PyroModel` finds in it.

The convention (docs/bring-your-own-model.md): ``model(x)`` observes ``x`` at exactly one site
inside the data plate; latent sites inside that plate are local, those outside it global. This
module holds what checks a program against it, from its traces, and the two messengers the
adapter runs it under:

- :class:`ProgramSites`, what inspection found (public: ``pg.models.ProgramSites``);
- ``_model_sites(trace, ...)`` and ``_check_guide_trace(trace, ...)``: the convention checks of a
  model's and a guide's trace, each a ValueError naming what was found and what was expected;
- ``_broadcasts(model, guide, ...)``: whether the program runs with vectorized particles;
- ``_ParamCapture`` (the user's ``pyro.param`` statements answered by the model's parameters)
  and ``_LocalScale`` (minibatch scaling of the sites inside the data plate).

The underscored names are internals of ``probgen.models``, shared with ``pyro_model.py``; they
import nothing of it, so the two modules form no cycle.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pyro
import pyro.infer.autoguide as autoguide
import pyro.poutine as poutine
import torch
from pyro.params.param_store import ParamStoreDict
from pyro.poutine.messenger import Messenger
from pyro.poutine.subsample_messenger import _Subsample
from torch import Tensor
from torch.distributions import constraints

__all__ = ["ProgramSites"]


@dataclass(frozen=True)
class ProgramSites:
    """What inspecting a program found: its observed site, its local (inside the data plate) and
    global latent sites, in the order the model samples them, and the plates it nests.

    Example:
        >>> import pyro, pyro.distributions as dist, torch
        >>> import probgen as pg
        >>> def gaussian(x):
        ...     loc = pyro.sample("loc", dist.Normal(torch.zeros(2), 3.0).to_event(1))
        ...     scale = pyro.sample("scale", dist.HalfNormal(torch.ones(2)).to_event(1))
        ...     with pyro.plate("data", x.shape[0]):
        ...         pyro.sample("x", dist.Normal(loc, scale).to_event(1), obs=x)
        >>> sites = pg.models.PyroModel(gaussian, event_shape=2, support="real").sites
        >>> sites.observed, sites.global_, sites.local, sites.latents  # latents outside the data plate: global
        ('x', ('loc', 'scale'), (), ('loc', 'scale'))
        >>> sites.describe()
        {'observed': 'x', 'local': [], 'global': ['loc', 'scale']}
    """

    observed: str
    local: tuple[str, ...] = ()
    global_: tuple[str, ...] = ()
    max_plate_nesting: int = 1
    vectorizable: bool = True

    @property
    def latents(self) -> tuple[str, ...]:
        return (*self.global_, *self.local)

    def describe(self) -> dict[str, Any]:
        """JSON-able: what a checkpoint records of the program (vectorizability is not structure)."""
        return {"observed": self.observed, "local": list(self.local), "global": list(self.global_)}


# ---------------------------------------------------------------------------------------- messengers
def _key(name: str) -> str:
    """A ``pyro.param`` name as a ``ParameterDict`` key (which may not contain '.'), reversibly."""
    return name.replace("%", "%25").replace(".", "%2E")


def _is_store_param(msg: dict) -> bool:
    """Whether a param message is a user's ``pyro.param`` statement (one that would read Pyro's
    param store), not the announcement of a ``PyroModule``'s own parameter."""
    return getattr(msg["fn"], "__func__", None) is ParamStoreDict.get_param


class _ParamCapture(Messenger):
    """Answers the user's ``pyro.param`` statements with ``answer(name, init, constraint)`` (the
    owning model's parameter, created on its first statement), so they are trained, saved and
    moved with the model."""

    def __init__(self, answer: Callable[[str, Any, constraints.Constraint], Tensor]) -> None:
        super().__init__()
        self.answer = answer

    def _pyro_param(self, msg: dict) -> None:
        if not _is_store_param(msg):
            return
        args = msg["args"]
        init = args[1] if len(args) > 1 else None
        constraint = msg["kwargs"].get("constraint") or constraints.real
        msg["value"] = self.answer(args[0], init, constraint)
        msg["done"] = True


class _LocalScale(Messenger):
    """Multiplies the scale of every sample site inside the plate ``plate`` by ``factor`` (N / B):
    what ``pyro.plate(name, N, subsample=...)`` would do, for a program whose plate has size B."""

    def __init__(self, plate: str, factor: float) -> None:
        super().__init__()
        self.plate, self.factor = plate, factor

    def _process_message(self, msg: dict) -> None:
        if msg["type"] == "sample" and any(f.name == self.plate for f in msg["cond_indep_stack"]):
            msg["scale"] = msg["scale"] * self.factor


def _autoguide_class(name: str) -> type:
    """``"auto_normal"`` -> ``pyro.infer.autoguide.AutoNormal`` (any AutoGuide, by snake-case name)."""
    camel = "".join(part.capitalize() for part in name.split("_"))
    cls = getattr(autoguide, camel, None)
    if not (isinstance(cls, type) and issubclass(cls, autoguide.AutoGuide)) or camel == "AutoGuide":
        raise ValueError(
            f"guide={name!r}: expected a guide callable, an AutoGuide or the snake-case name of one of "
            "pyro.infer.autoguide's guides, such as 'auto_normal', 'auto_delta', 'auto_diagonal_normal', "
            "'auto_multivariate_normal'"
        )
    return cls


# ---------------------------------------------------------------------------------------- sites of a trace
def _random_sites(trace: Any) -> list[tuple[str, dict]]:
    """The trace's sample sites (observed and latent), without the plates' subsample sites."""
    return [
        (name, site)
        for name, site in trace.nodes.items()
        if site["type"] == "sample" and not isinstance(site["fn"], _Subsample)
    ]


def _plate_names(site: dict) -> set[str]:
    """The names of the plates around a site."""
    return {frame.name for frame in site["cond_indep_stack"]}


def _nesting(trace: Any) -> int:
    """How many plates the trace's sample sites nest (at least 1, the data plate)."""
    dims = [-f.dim for _, site in _random_sites(trace) for f in site["cond_indep_stack"] if f.dim is not None]
    return max([1, *dims])


# ---------------------------------------------------------------------------------------- the convention
def _model_sites(trace: Any, plate: str, event_shape: tuple[int, ...], n: int) -> ProgramSites:
    """The sites of a model's trace on ``n`` rows, checked against the convention (guide-free)."""
    random = _random_sites(trace)
    observed = _observed_site(random, plate)
    _check_observed_shape(trace.nodes[observed], observed, event_shape, n)
    local, global_ = _split_latents(random, plate)
    return ProgramSites(observed, local, global_, _nesting(trace))


def _observed_site(random: list[tuple[str, dict]], plate: str) -> str:
    """The name of the one observed site, which must lie inside the data plate."""
    observed = [name for name, site in random if site["is_observed"]]
    if len(observed) != 1:
        found = ", ".join(f"{n!r} ({'observed' if s['is_observed'] else 'latent'})" for n, s in random) or "none"
        raise ValueError(
            f"the model has {len(observed)} observed sites; expected exactly one, pyro.sample(name, d, obs=x) "
            f"inside pyro.plate({plate!r}, x.shape[0]) (sample sites found: {found})"
        )
    obs = dict(random)[observed[0]]
    if plate not in _plate_names(obs):
        raise ValueError(
            f"observed site {observed[0]!r} is outside the data plate {plate!r}; expected it inside "
            f"pyro.plate({plate!r}, x.shape[0]) (plates around it: {sorted(_plate_names(obs)) or 'none'})"
        )
    return observed[0]


def _check_observed_shape(obs: dict, name: str, event_shape: tuple[int, ...], n: int) -> None:
    """ValueError unless the observed site has the model's event shape and one log-density per row."""
    if tuple(obs["fn"].event_shape) == event_shape:
        log_prob_shape: Any = tuple(obs["fn"].log_prob(obs["value"]).shape)
    else:
        log_prob_shape = "(not computed)"
    if tuple(obs["fn"].event_shape) != event_shape or log_prob_shape != (n,):
        raise ValueError(
            f"observed site {name!r} has event_shape {tuple(obs['fn'].event_shape)} and log_prob of "
            f"shape {log_prob_shape}; expected event_shape {event_shape} (one example: use "
            f".to_event(k)) and log_prob of shape ({n},)"
        )


def _split_latents(random: list[tuple[str, dict]], plate: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The continuous latent sites as (local: inside the data plate, global: outside), in order."""
    local, global_ = [], []
    for name, site in random:
        if site["is_observed"]:
            continue
        if site["fn"].support.is_discrete:
            raise ValueError(
                f"latent site {name!r} is discrete ({type(site['fn']).__name__}): PyroModel needs continuous "
                "latents (enumeration is not supported); marginalise it in the model (e.g. MixtureSameFamily)"
            )
        (local if plate in _plate_names(site) else global_).append(name)
    return tuple(local), tuple(global_)


def _check_guide_trace(guide_trace: Any, sites: ProgramSites, plate: str) -> None:
    """ValueError unless the guide draws every latent site, and the local ones inside the plate."""
    drawn = {n: s for n, s in _random_sites(guide_trace)}
    missing = [n for n in sites.latents if n not in drawn]
    if missing:
        raise ValueError(
            f"the guide draws no value for latent site(s) {', '.join(map(repr, missing))} of the model; "
            f"expected a pyro.sample statement of each (the guide draws {sorted(drawn) or 'none'})"
        )
    outside = [n for n in sites.local if plate not in _plate_names(drawn[n])]
    if outside:
        raise ValueError(
            f"the guide draws local latent site(s) {', '.join(map(repr, outside))} outside the data plate; "
            f"expected them inside pyro.plate({plate!r}, x.shape[0]) as in the model"
        )


def _broadcasts(model: Callable[..., Any], guide: Callable[..., Any], x: Tensor, observed: str, nesting: int) -> bool:
    """Whether model and guide run inside a plate of 3 particles left of their plates (3, not 2:
    the placeholder has 2 rows, and a plate of 2 would let `.expand([N, 1])` pass by coincidence), and the
    observed site's log-density is then one per particle and example."""
    try:
        with torch.no_grad(), pyro.plate("particles", 3, dim=-(nesting + 1)):
            guide_trace = poutine.trace(guide).get_trace(x)
            model_trace = poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace(x)
        obs = model_trace.nodes[observed]
        shape = torch.broadcast_shapes(obs["fn"].log_prob(obs["value"]).shape, (3, x.shape[0]))
    except (RuntimeError, ValueError, IndexError, TypeError):
        return False
    return tuple(shape) == (3, x.shape[0])
