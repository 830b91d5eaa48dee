"""A fitted model's global latents drawn from its guide, and each example scored under each draw.

What :func:`probgen.inference.loo.to_inference_data` reads of a Pyro program (a
:class:`~probgen.models.PyroModel` or any model with global latents): the observed sites, the data
plate and the latent sites, found by tracing it once; draws of the global sites from the guide
(vectorised in one plate left of the program's plates where the program broadcasts, one run per
draw otherwise) with their log q; and, per draw, ``log p(x_i | theta)`` with the local latents
marginalised by importance sampling with the guide.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, replace
from typing import Any

import pyro
import pyro.poutine as poutine
import torch
from pyro.poutine.subsample_messenger import _Subsample
from torch import Tensor

from probgen.models.base import GenerativeModel
from probgen.models.laplace import laplace_approximation

__all__ = ["Program", "guide_draws", "inspect_program", "laplace_draws", "pointwise", "vectorizes"]

#: the plate that vectorises draws; left of every plate of the program
_DRAWS_PLATE = "_probgen_loo_draws"
#: data-sized values evaluated at once (draws x particles x examples), bounding memory
_CHUNK_VALUES = 2**20


@dataclass(frozen=True)
class Program:
    """What tracing a model's program on the data found."""

    observed: tuple[str, ...]
    plate: str
    global_: tuple[str, ...]
    local: tuple[str, ...]
    shapes: dict[str, tuple[int, ...]]  # one run's value shape of each global site
    batch_dims: dict[str, int]  # and how many of its leading dims are batch dims
    nesting: int
    vectorized: bool = False  # draws in one plate left of the program's (else one run per draw)


# ---------------------------------------------------------------------------------------- reading the program
def _random_sites(trace: Any) -> list[dict]:
    return [s for s in trace.nodes.values() if s["type"] == "sample" and not isinstance(s["fn"], _Subsample)]


def _plates(site: dict) -> dict[str, Any]:
    return {frame.name: frame for frame in site["cond_indep_stack"]}


def inspect_program(program: Callable, x: Tensor, nesting: int) -> Program:
    """The observed sites, the data plate (the plate of size N around them) and the latents."""
    with torch.no_grad():
        trace = poutine.trace(program).get_trace(x)
    sites = _random_sites(trace)
    observed = [s for s in sites if s["is_observed"]]
    if not observed:
        raise ValueError("the model's program has no observed site; expected pyro.sample(name, d, obs=x)")
    frames = [f for f in _plates(observed[0]).values() if f.size == len(x) and f.dim is not None]
    if not frames:
        raise ValueError(
            f"observed site {observed[0]['name']!r} is in no plate of size {len(x)} (the data); expected it "
            "inside pyro.plate('data', x.shape[0])"
        )
    plate = next((f.name for f in frames if f.name == "data"), frames[0].name)
    latent = [s for s in sites if not s["is_observed"]]
    global_ = [s for s in latent if plate not in _plates(s)]
    if not global_:
        raise ValueError(
            "the model has no global latent site (a sample site outside the data plate): there is no posterior "
            "over parameters, so LOO has nothing to reweight; expected a Bayesian model"
        )
    return Program(
        observed=tuple(s["name"] for s in observed if plate in _plates(s)),
        plate=plate,
        global_=tuple(s["name"] for s in global_),
        local=tuple(s["name"] for s in latent if plate in _plates(s)),
        shapes={s["name"]: tuple(s["value"].shape) for s in global_},
        batch_dims={s["name"]: s["value"].dim() - s["fn"].event_dim for s in global_},
        nesting=max([nesting, *(-f.dim for s in sites for f in s["cond_indep_stack"] if f.dim is not None)]),
    )


def vectorizes(model: GenerativeModel, prog: Program, x: Tensor) -> bool:
    """Whether the model declares it broadcasts and, tried on the data with a few draws (3, or 5
    for 3 examples: a number unlike the data's, so that an ``expand`` to the data's size cannot
    pass by chance), guide and program then score ``[draws, N]``."""
    if not model.vectorizable:
        return False
    trial, num = replace(prog, vectorized=True), 3 if len(x) != 3 else 5
    try:
        values, log_q = guide_draws(model, trial, x, num)
        per_example, prior = _score(model, trial, x, values)
    except (RuntimeError, ValueError, IndexError, TypeError):
        return False
    return tuple(per_example.shape) == (num, len(x)) and tuple(log_q.shape) == tuple(prior.shape) == (num,)


def _layout(prog: Program, name: str, value: Tensor) -> Tensor:
    """Draws ``[P, *shape]`` of a global site laid out for the draws plate at dim -(nesting + 1)."""
    pad = prog.nesting - prog.batch_dims[name]
    return value.reshape(value.shape[0], *([1] * pad), *prog.shapes[name])


def _per_row(site: dict, rows: int, data_dim: int | None, nesting: int) -> Tensor:
    """A site's unscaled log-density summed to ``[rows]`` or, given the data plate's dim, ``[rows, N]``."""
    lp = site["fn"].log_prob(site["value"])
    lp = lp.reshape((1,) * (nesting + 1 - lp.dim()) + tuple(lp.shape))
    if data_dim is None:
        return lp.expand(rows, *lp.shape[1:]).reshape(rows, -1).sum(1)
    size = next(f.size for f in site["cond_indep_stack"] if f.dim == data_dim)
    lp = lp.movedim(nesting + 1 + data_dim, 1)
    return lp.expand(rows, size, *lp.shape[2:]).reshape(rows, size, -1).sum(-1)


# ---------------------------------------------------------------------------------------- draws and scores
def guide_draws(model: GenerativeModel, prog: Program, x: Tensor, num: int) -> tuple[dict[str, Tensor], Tensor]:
    """``num`` draws of the global sites from the guide, ``{site: [num, *shape]}``, and log q of each."""

    def log_q(trace: Any, rows: int) -> Tensor:  # every guide site outside the data plate (auxiliaries too)
        outside = [s for s in _random_sites(trace) if prog.plate not in _plates(s)]
        return sum((_per_row(s, rows, None, prog.nesting) for s in outside), x.new_zeros(rows))

    with torch.no_grad():
        if prog.vectorized:
            with pyro.plate(_DRAWS_PLATE, num, dim=-(prog.nesting + 1)):
                trace = poutine.trace(model.guide).get_trace(x)
            values = {n: trace.nodes[n]["value"].reshape(num, *prog.shapes[n]) for n in prog.global_}
            return values, log_q(trace, num)
        traces = [poutine.trace(model.guide).get_trace(x) for _ in range(num)]
    values = {n: torch.stack([t.nodes[n]["value"].reshape(prog.shapes[n]) for t in traces]) for n in prog.global_}
    return values, torch.cat([log_q(t, 1) for t in traces])


def laplace_draws(
    model: GenerativeModel, prog: Program, x: Tensor, point: dict[str, Tensor], num: int
) -> tuple[dict[str, Tensor], Tensor]:
    """``num`` draws of the global sites from the Laplace approximation at ``point`` (a point
    guide's value, e.g. an AutoDelta's MAP fit), ``{site: [num, *shape]}``, and their log q
    (:meth:`~probgen.models.laplace.Laplace.sample_with_log_density`)."""
    if prog.local:
        raise ValueError(
            f"{model.name}'s guide gives one point (e.g. an AutoDelta: a MAP fit) and the model has local latent "
            f"site(s) {list(prog.local)}: a Laplace approximation of the global latents would need them "
            "marginalised; expected a guide with spread (guide='auto_normal'), or draws from NUTS"
        )
    laplace = laplace_approximation(model.model, {n: point[n].reshape(prog.shapes[n]) for n in prog.global_}, x)
    return laplace.sample_with_log_density(num)


def _score(model: GenerativeModel, prog: Program, x: Tensor, values: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
    """For draws ``values`` (``[P, *shape]``), the per-example log-weight of one run,
    ``log p(x_i, z_i | theta) - log q(z_i | x_i, theta)`` (``[P, N]``; z: the local latents, drawn from
    the guide conditioned on theta), and the prior log-density ``log p(theta)`` (``[P]``)."""
    rows = next(iter(values.values())).shape[0]
    if prog.vectorized:  # one run, the draws in a plate left of the program's plates
        runs = [({n: _layout(prog, n, v) for n, v in values.items()}, rows)]
    else:  # one run per draw
        runs = [({n: v[p].reshape(prog.shapes[n]) for n, v in values.items()}, 1) for p in range(rows)]
    per_example, prior = [], []
    for data, p in runs:
        draws_plate = pyro.plate(_DRAWS_PLATE, p, dim=-(prog.nesting + 1)) if prog.vectorized else nullcontext()
        with torch.no_grad(), draws_plate:
            program = poutine.condition(model.model, data=data)
            if prog.local:
                guide_trace = poutine.trace(poutine.condition(model.guide, data=data)).get_trace(x)
                program = poutine.replay(program, trace=guide_trace)
            trace = poutine.trace(program).get_trace(x)
        dim = next(f.dim for n in prog.observed for f in trace.nodes[n]["cond_indep_stack"] if f.name == prog.plate)
        inside = [trace.nodes[n] for n in (*prog.observed, *prog.local)]
        lw = sum(_per_row(s, p, dim, prog.nesting) for s in inside)
        if prog.local:
            lw = lw - sum(_per_row(guide_trace.nodes[n], p, dim, prog.nesting) for n in prog.local)
        per_example.append(lw)
        prior.append(sum(_per_row(trace.nodes[n], p, None, prog.nesting) for n in prog.global_))
    return torch.cat(per_example), torch.cat(prior)


def pointwise(
    model: GenerativeModel, prog: Program, x: Tensor, values: dict[str, Tensor], num_particles: int
) -> tuple[Tensor, Tensor]:
    """``log p(x_i | theta_s)`` (``[S, N]``; local latents marginalised by importance sampling with
    ``num_particles`` draws) and ``log p(theta_s)`` (``[S]``), in chunks of bounded size."""
    k = num_particles if prog.local else 1
    num = next(iter(values.values())).shape[0]
    chunk = max(1, _CHUNK_VALUES // (k * len(x)))
    log_lik, log_prior = [], []
    for start in range(0, num, chunk):
        part = {n: v[start : start + chunk].repeat_interleave(k, 0) for n, v in values.items()}
        per_example, prior = _score(model, prog, x, part)
        rows = per_example.shape[0] // k
        log_lik.append(torch.logsumexp(per_example.reshape(rows, k, -1), 1) - math.log(k))
        log_prior.append(prior.reshape(rows, k)[:, 0])
    return torch.cat(log_lik), torch.cat(log_prior)
