"""Any user's Pyro program as a probgen model: :class:`PyroModel`, with no subclass to write.

The program follows the plain-Pyro-program convention (docs/bring-your-own-model.md): ``model(x)``
observes ``x`` (shape ``[N, *event_shape]``) at exactly one site inside ``pyro.plate("data",
x.shape[0])``; latent sites inside that plate are local (one per example), those outside it are
global; ``guide(x)`` has the same signature (or is an AutoGuide, or a name such as
``"auto_normal"``). The adapter inspects the program once with ``poutine.trace`` (at construction,
on a placeholder of two zero rows, and again on the first training batch) and then declares what
the :class:`~probgen.models.base.GenerativeModel` contract asks:

- ``density``: ``"exact"`` without latents (``log_prob`` is the observed site's log-density,
  summed over its event dims, one value per example), ``"lower_bound"`` with latents (so IWAE,
  ELBO and AIS bound or estimate log p(x));
- minibatches: inside :func:`~probgen.models.base.scaled_to` every sample site
  inside the data plate (the observed site, the local latents, in the model and the guide) is
  scaled by N / B with a small messenger, the global sites are not: the minibatch ELBO is an
  unbiased estimate of the full-data ELBO;
- parameters: ``pyro.param`` statements of the user's functions become parameters of the
  :class:`PyroModel` (a ``ParameterDict``; with ``module_local_params`` on, Pyro's global store
  is not used), ``PyroModule``\\ s given as model or guide become submodules, and an AutoGuide's
  parameters are created at construction, so ``fit`` trains them all and ``save`` stores them;
- sampling: ``poutine.uncondition`` of the model on a placeholder ``x`` of ``n`` rows, with the
  global latents drawn once from the guide (the fitted posterior).

A Python function cannot be rebuilt from JSON, so a checkpoint of a :class:`PyroModel` holds its
weights and a description of its program (its sites); ``pg.load(path, model=template)`` puts the
weights into a copy of ``template`` (a PyroModel built from the same program) and refuses
weights or sites that do not match. A factory registered by name (``pg.models.register`` on a
function ``factory(event_shape, support, **kwargs) -> PyroModel``, or a plug-in) loads with a
plain ``pg.load(path)``.

The inspection of the program (its sites, the convention checks, the messengers it runs under) is
in ``pyro_program.py`` and the class a factory becomes in ``pyro_factory.py``; ``ProgramSites`` and
``pyro_model_class`` are importable from here as before.
"""

from __future__ import annotations

import copy
import warnings
import weakref
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any, ClassVar

import pyro.infer.autoguide as autoguide
import pyro.poutine as poutine
import torch
from pyro.nn import pyro_method
from torch import Tensor
from torch.distributions import constraints, transform_to

from probgen.models.base import GenerativeModel, is_trained, num_data
from probgen.models.pyro_factory import _factory_class
from probgen.models.pyro_program import (
    ProgramSites,
    _autoguide_class,
    _broadcasts,
    _check_guide_trace,
    _key,
    _LocalScale,
    _model_sites,
    _nesting,
    _ParamCapture,
)

__all__ = ["PyroModel", "ProgramSites", "pyro_model_class"]

#: the densities a program can declare: exact without latents, a lower bound with them
_DENSITIES = ("exact", "lower_bound")


class PyroModel(GenerativeModel):
    """A user's Pyro program (functions or ``PyroModule``\\ s) as a probgen model.

    Args:
        model: ``model(x)`` following the convention (module docstring): one observed site, of
            event shape ``event_shape``, inside the plate named ``data_plate``.
        guide: ``guide(x)``, a ``PyroModule``, an AutoGuide instance, or the snake-case name of an
            AutoGuide (``"auto_normal"``, ``"auto_delta"``, ``"auto_diagonal_normal"``, ...)
            built on the model. None: no guide for a program without latents, ``"auto_normal"``
            for one with global latents only. Local latents need an amortized guide of one's own
            (an AutoGuide would learn one parameter per training example and could not score new
            data).
        event_shape: the shape of one example.
        support: ``"binary"``, ``"discrete(k)"`` or ``"real"``.
        density: None (``"exact"`` without latents, ``"lower_bound"`` with them) or one of those.
        log_evidence: optional ``log_evidence(x) -> scalar``, the closed-form log p(D) with every
            latent marginalised (read by ``pg.evidence(method="exact")``).
        data_plate: the name of the program's data plate.
        name: the model's name in tables and checkpoints (default: the model callable's name).

    Raises:
        ValueError: the program has no observed site or several, its observed site is outside the
            data plate or of another event shape, it has a discrete latent (enumeration is not
            supported), or the guide misses a latent site or draws a local one outside the plate.

    Example:
        >>> import torch, pyro, pyro.distributions as dist, probgen as pg
        >>> from torch.distributions import constraints
        >>> def coins(x):
        ...     p = pyro.param("p", torch.full((3,), 0.5), constraint=constraints.unit_interval)
        ...     with pyro.plate("data", x.shape[0]):
        ...         pyro.sample("x", dist.Bernoulli(p).to_event(1), obs=x)
        >>> m = pg.models.PyroModel(coins, event_shape=(3,), support="binary")
        >>> m.density, m.sites.observed, [n for n, _ in m.named_parameters()]
        ('exact', 'x', ['pyro_params.p'])
        >>> round(m.log_prob(torch.ones(2, 3))[0].item(), 4)  # 3 log(1/2)
        -2.0794
    """

    name: ClassVar[str] = "pyro-model"
    supports: ClassVar[tuple[str, ...]] = ("binary", "discrete", "real")

    def __init__(
        self,
        model: Callable[..., Any],
        guide: Callable[..., Any] | str | None = None,
        *,
        event_shape: tuple[int, ...] | int,
        support: str,
        density: str | None = None,
        log_evidence: Callable[[Tensor], Tensor] | None = None,
        data_plate: str = "data",
        name: str | None = None,
    ) -> None:
        super().__init__(event_shape, support)
        if not callable(model):
            raise TypeError(f"model must be a Pyro callable model(x), got {type(model).__name__}")
        if guide is not None and not (callable(guide) or isinstance(guide, str)):
            raise TypeError(f"guide must be a callable guide(x), an AutoGuide or its name, got {type(guide).__name__}")
        if density is not None and density not in _DENSITIES:
            raise ValueError(f"density={density!r}: expected None, 'exact' (no latents) or 'lower_bound'")
        if log_evidence is not None and not callable(log_evidence):
            raise TypeError(f"log_evidence must be a callable log_evidence(x), got {type(log_evidence).__name__}")
        if not isinstance(data_plate, str) or not data_plate:
            raise ValueError(f"data_plate must be the non-empty name of the program's data plate, got {data_plate!r}")
        if name is not None and (not isinstance(name, str) or not name):
            raise ValueError(f"name must be a non-empty string, got {name!r}")
        # what a factory class re-wraps (pyro_model_class), untouched
        self._arguments = {"model": model, "guide": guide, "density": density, "log_evidence": log_evidence}
        self._arguments["data_plate"] = data_plate
        if name is not None or type(self) is PyroModel:
            self.name = name or getattr(model, "__name__", None) or type(model).__name__
        self.data_plate_name = data_plate
        self.log_evidence = log_evidence
        self._declared_density = density
        # a floating buffer, so that dtype/device (and the data's validation) follow .double()/.to()
        # even before any parameter exists
        self.register_buffer("dtype_anchor", torch.zeros(()))
        self.pyro_params = torch.nn.ParameterDict()
        self._constraints: dict[str, constraints.Constraint] = {}
        self._reinit = False
        # the callables, in a plain dict: a module among them is registered once, by _adopt
        self._fns: dict[str, Callable[..., Any] | None] = {"model": self._adopt(model, "program"), "guide": None}
        self._warned = False
        self.sites = self._first_inspection()
        if density == "exact" and self.sites.latents:
            raise ValueError(
                f"density='exact' for a program with latent sites {list(self.sites.latents)}: it has no exact "
                "log_prob; expected 'lower_bound' (or None)"
            )

    # ------------------------------------------------------------------ building the program
    def _adopt(self, fn: Callable[..., Any], slot: str) -> Callable[..., Any]:
        """``fn``, with the module it is (or is a method of) made a submodule named ``slot``, so
        its parameters are the model's."""
        owner = fn if isinstance(fn, torch.nn.Module) else getattr(fn, "__self__", None)
        if isinstance(owner, torch.nn.Module) and owner is not self:
            if not any(owner is m for m in self._modules.values()):
                setattr(self, slot, owner)
        return fn

    def _model_for_guide(self, x: Tensor, y: Tensor | None = None) -> None:
        """The user's model with its ``pyro.param`` statements answered by this model: what an
        AutoGuide traces to find the latent sites."""
        with _ParamCapture(self._param_value):
            self._fns["model"](x)

    def _build_guide(self, sites: ProgramSites) -> None:
        spec = self._arguments["guide"]
        if spec is None and sites.local:
            raise ValueError(
                f"the model has local latent site(s) {', '.join(map(repr, sites.local))} (inside plate "
                f"{self.data_plate_name!r}) and no guide: expected an amortized guide(x) drawing them"
            )
        if spec is None and not sites.latents:
            return
        if isinstance(spec, str) or spec is None:
            spec = _autoguide_class(spec or "auto_normal")(self._model_for_guide)
        if isinstance(spec, autoguide.AutoGuide):
            if sites.local:
                raise ValueError(
                    f"an AutoGuide cannot guide the local latent site(s) {', '.join(map(repr, sites.local))}: it "
                    "would learn one parameter per training example and could not score new data; expected an "
                    "amortized guide(x) (e.g. an encoder network)"
                )
            spec._model = (self._model_for_guide,)  # trace the model through this one's param capture
        self._fns["guide"] = self._adopt(spec, "guide_module")

    def _placeholder(self, n: int) -> Tensor:
        """``n`` rows of zeros (inside every support), on the model's device and dtype."""
        return torch.zeros((n, *self.event_shape), dtype=self.dtype, device=self.device)

    def _first_inspection(self) -> ProgramSites:
        """The sites, traced on a float32 placeholder, or a float64 one (the model then in
        float64) for a program whose own networks or tensors are float64."""
        try:
            return self._inspect(self._placeholder(2))
        except RuntimeError as float32_error:
            self.dtype_anchor.data = self.dtype_anchor.double()
            try:
                sites = self._inspect(self._placeholder(2))
            except RuntimeError:
                shape = (2, *self.event_shape)
                raise ValueError(
                    f"the program failed on a placeholder data set of shape {shape} in float32 and in float64: "
                    f"{str(float32_error).splitlines()[0]}"
                ) from float32_error
            self.double()
            return sites

    def _inspect(self, x: Tensor) -> ProgramSites:
        """Trace the program on ``x``; check it against the convention; return its sites."""
        with torch.no_grad():
            trace = poutine.trace(self.model).get_trace(x)
        plate = self.data_plate_name
        sites = _model_sites(trace, plate, self.event_shape, x.shape[0])
        if self._fns["guide"] is None:
            self._build_guide(sites)
        nesting = sites.max_plate_nesting
        if sites.latents:
            with torch.no_grad():
                guide_trace = poutine.trace(self.guide).get_trace(x)
            _check_guide_trace(guide_trace, sites, plate)
            nesting = max(nesting, _nesting(guide_trace))
        vectorizable = _broadcasts(self.model, self.guide, x, sites.observed, nesting)
        sites = ProgramSites(sites.observed, sites.local, sites.global_, nesting, vectorizable)
        if sites.latents and not sites.vectorizable and not self._warned:
            self._warned = True
            warnings.warn(
                f"{self.name}: the program does not broadcast over a batch dimension of particles left of its "
                f"plates (dim {-(nesting + 1)}), so importance-weighted bounds (IWAE, AIS), which draw their "
                "particles in one vectorized pass, cannot score it; write it with broadcasting operations",
                stacklevel=3,
            )
        return sites

    # ------------------------------------------------------------------ parameters
    def _param_value(self, name: str, init: Any, constraint: constraints.Constraint) -> Tensor:
        """The constrained value of the user's ``pyro.param(name, init, constraint)``."""
        key, store = _key(name), self._modules["pyro_params"]
        if key not in store:
            if init is None:
                raise ValueError(f"pyro.param({name!r}) has no initial value; expected pyro.param(name, init_tensor)")
            store[key] = self._new_parameter(init, constraint)
            self._constraints[key] = constraints.real if isinstance(init, torch.nn.Parameter) else constraint
        elif self._reinit and init is not None and not isinstance(init, torch.nn.Parameter):
            with torch.no_grad():  # the data-dependent start (init_from_data) of an untrained model
                fresh = self._new_parameter(init, self._constraints.get(key, constraint))
                if fresh.shape == store[key].shape and bool(torch.isfinite(fresh).all()):
                    store[key].copy_(fresh)
        unconstrained = store[key]
        constraint = self._constraints.setdefault(key, constraint)
        if constraint is constraints.real:
            value = unconstrained
        else:
            value = transform_to(constraint)(unconstrained)
        value.unconstrained = weakref.ref(unconstrained)  # as Pyro's own params: plain SVI trains it
        return value

    def _new_parameter(self, init: Any, constraint: constraints.Constraint) -> torch.nn.Parameter:
        if isinstance(init, torch.nn.Parameter):  # pyro.module(...): the user's own parameter, adopted
            return init
        if callable(init) and not isinstance(init, Tensor):
            init = init()
        init = torch.as_tensor(init).detach()
        if init.dtype.is_floating_point:
            init = init.to(dtype=self.dtype)
        init = init.to(device=self.device)
        return torch.nn.Parameter(transform_to(constraint).inv(init).clone())

    @contextmanager
    def _handlers(self, x: Tensor) -> Iterator[None]:
        with ExitStack() as stack:
            stack.enter_context(_ParamCapture(self._param_value))
            if num_data(self) is not None and num_data(self) != x.shape[0]:
                stack.enter_context(_LocalScale(self.data_plate_name, num_data(self) / x.shape[0]))
            yield

    # ------------------------------------------------------------------ the contract
    @property
    def density(self) -> str:
        if self._declared_density is not None:
            return self._declared_density
        return "lower_bound" if self.sites.latents else "exact"

    @property
    def predictive(self) -> str | None:
        """Is "variational" when the program has global latents (drawn from the guide), else None."""
        return "variational" if self.sites.global_ else None

    @property
    def max_plate_nesting(self) -> int:  # type: ignore[override]
        return self.sites.max_plate_nesting

    @property
    def vectorizable(self) -> bool:  # type: ignore[override]
        return self.sites.vectorizable

    @pyro_method
    def model(self, x: Tensor, y: Tensor | None = None) -> None:
        with self._handlers(x):
            self._fns["model"](x)

    @pyro_method
    def guide(self, x: Tensor, y: Tensor | None = None) -> None:
        if self._fns["guide"] is None:
            return
        with self._handlers(x):
            self._fns["guide"](x)

    def init_from_data(self, x: Tensor, y: Tensor | None = None) -> None:
        """Inspect the program again on the first training data (its sites must be those found on
        the placeholder) and, for an untrained model, evaluate the ``pyro.param`` initial values
        on them (a data-dependent initialisation such as ``x.mean(0)`` takes effect)."""
        previous, self._reinit = self._reinit, not is_trained(self)
        try:
            sites = self._inspect(x)
        finally:
            self._reinit = previous
        if sites.describe() != self.sites.describe():
            raise ValueError(
                f"{self.name}: the program's sites on the data, {sites.describe()}, differ from those on a "
                f"placeholder of zeros, {self.sites.describe()}; expected a structure that does not depend on x"
            )
        self.sites = sites

    def log_prob(self, x: Tensor) -> Tensor:
        """The observed site's log-density summed over its event dims: ``[N]`` nats (programs
        without latents; others are bounded by ``probgen.log_likelihood``)."""
        if self.density != "exact":
            return super().log_prob(x)
        x = self.validate(x)
        trace = poutine.trace(self.model).get_trace(x)
        site = trace.nodes[self.sites.observed]
        return site["fn"].log_prob(site["value"]).reshape(x.shape[0])

    def sample(self, n: int) -> Tensor:
        """``n`` draws of x: the model unconditioned on a placeholder of ``n`` rows, local latents
        from their priors and the global latents drawn once from the guide, shared by the draws."""
        x = self._placeholder(self._check_n(n))
        with torch.no_grad():
            fixed = {}
            if self.sites.global_:
                guide_trace = poutine.trace(self.guide).get_trace(x)
                fixed = {name: guide_trace.nodes[name]["value"] for name in self.sites.global_}
            program = poutine.condition(poutine.uncondition(self.model), data=fixed)
            trace = poutine.trace(program).get_trace(x)
        return trace.nodes[self.sites.observed]["value"].detach().reshape(n, *self.event_shape)

    # ------------------------------------------------------------------ configs and checkpoints
    @property
    def config(self) -> dict[str, Any]:
        return {**super().config, "pyro_program": self.sites.describe() | {"data_plate": self.data_plate_name}}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> GenerativeModel:
        raise ValueError(
            f"model {config.get('name')!r} is a PyroModel of a Python program, which a checkpoint cannot rebuild; "
            "expected pg.load(path, model=<a PyroModel of the same program>), or a factory registered by name "
            "(see docs/bring-your-own-model.md)"
        )

    def check_program(self, config: dict[str, Any], where: str = "the checkpoint") -> None:
        """ValueError unless ``config`` (a stored :attr:`config`) describes this model: the same
        name, shapes, support, factory arguments and program sites."""
        mine = self.config
        differ = sorted(k for k in set(mine) | set(config) if mine.get(k) != config.get(k))
        if differ:
            shown = "; ".join(f"{k}: stored {config.get(k)!r}, this model {mine.get(k)!r}" for k in differ)
            raise ValueError(f"{where} was saved from another model than {self.name!r} ({shown})")

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, sites={self.sites.describe()}"

    def __deepcopy__(self, memo: dict[int, Any]) -> PyroModel:
        # AutoGuide keeps its model in a tuple that deepcopy would share; rebind it to the copy
        clone = object.__new__(type(self))
        memo[id(self)] = clone
        for key, value in self.__dict__.items():
            clone.__dict__[key] = copy.deepcopy(value, memo)
        guide = clone.__dict__["_modules"].get("guide_module")
        if isinstance(guide, autoguide.AutoGuide):
            guide._model = (clone._model_for_guide,)
        return clone


def pyro_model_class(
    factory: Callable[..., PyroModel], name: str | None = None, *, description: str | None = None
) -> type[PyroModel]:
    """A :class:`PyroModel` class built by ``factory(event_shape, support, **kwargs)``, so that a
    program can be registered by name: checkpoints (``pg.load(path)``), ``probgen list``,
    ``compare`` and ``probgen run`` configs then know it. Its keyword arguments (JSON-able) are
    its config; :func:`probgen.models.register` applies this to a function it decorates.

    Example:
        >>> import torch, pyro, pyro.distributions as dist, probgen as pg
        >>> def gaussian(event_shape, support="real", *, scale=1.0):
        ...     def model(x):
        ...         loc = pyro.param("loc", torch.zeros(event_shape))
        ...         with pyro.plate("data", x.shape[0]):
        ...             pyro.sample("x", dist.Normal(loc, scale).to_event(1), obs=x)
        ...     return pg.models.PyroModel(model, event_shape=event_shape, support=support)
        >>> Gaussian = pyro_model_class(gaussian, "doc-gaussian")
        >>> m = Gaussian((2,), "real", scale=2.0)
        >>> m.config["name"], m.config["scale"], pg.models.accepted_kwargs(Gaussian)
        ('doc-gaussian', 2.0, ['scale'])
    """
    return _factory_class(PyroModel, factory, name, description=description)
