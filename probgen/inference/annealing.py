"""The annealing engine on a whole Pyro program: AIS and tempered SMC over every latent site,
global and local, on unconstrained space, vectorised over chains; what
:mod:`probgen.inference.evidence` (the evidence of a data set) and
:func:`probgen.inference.diagnostics.bdmc` run. The HMC transition is
:func:`probgen.inference.ais.hmc_transition`, shared with the per-example AIS there.

References:
    Neal, "Annealed Importance Sampling" (2001), arXiv:physics/9803008.
    Del Moral, Doucet & Jasra, "Sequential Monte Carlo samplers" (JRSS B, 2006).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pyro
import pyro.poutine as poutine
import torch
from torch import Tensor
from torch.distributions import biject_to

from probgen._checks import check_int
from probgen.inference.ais import hmc_transition
from probgen.inference.importance import random_sites
from probgen.models.base import GenerativeModel

__all__ = [
    "AnnealRun",
    "ProgramTarget",
    "SMCRun",
    "anneal",
    "piloted_anneal",
    "piloted_smc",
    "plate_nesting",
    "power_schedule",
    "resolve_program",
    "smc",
]


def resolve_program(model: Any) -> tuple[Callable, Callable | None, int | None]:
    """The Pyro program, its guide (None for a plain callable) and its plate nesting (None: found
    by tracing) of a probgen model or of a plain Pyro callable ``model(x)``."""
    if isinstance(model, GenerativeModel):
        return model.model, model.guide, model.max_plate_nesting
    if not callable(model):
        raise TypeError(f"model must be a Pyro callable model(x) or a probgen model; got {type(model).__name__}")
    return model, None, None


def plate_nesting(trace: Any) -> int:
    """How many batch dims the program's sites use (its plates, or wider batch shapes)."""
    depth = 1
    for site in random_sites(trace):
        dims = [-frame.dim for frame in site["cond_indep_stack"] if frame.dim is not None]
        depth = max(depth, len(site["fn"].batch_shape), *dims)
    return depth


class ProgramTarget:
    """The log joint of a Pyro program ``program(x)`` with every latent site (global and local)
    moved to unconstrained space by ``biject_to(site["fn"].support)`` (log-abs-det included).

    A state is a flat tensor ``u`` of shape ``[M, P]``: M chains, P unconstrained coordinates.
    All chains are evaluated at once: a program that broadcasts over a leading batch dim (as
    ``Predictive(parallel=True)`` needs) runs once under ``pyro.plate("chains", M)`` left of its
    own plates, ``poutine.condition``-ed on the latents' values; one that does not (say, it
    ``expand``\\ s a distribution to ``[N, 1]``) runs under ``torch.func.vmap`` over the chains.
    Only its initial draws from the prior or a guide are then taken one chain at a time (Pyro's
    samplers do not run under ``vmap``). Log densities are the sites' unscaled ``log_prob``.
    """

    def __init__(self, program: Callable, x: Tensor, nesting: int | None = None, guide: Callable | None = None):
        self.program, self.x, self.guide = program, x, guide
        with torch.no_grad():
            trace = poutine.trace(program).get_trace(x)
        self.nesting = nesting or plate_nesting(trace)
        sites = random_sites(trace)
        if not any(site["is_observed"] for site in sites):
            found = ", ".join(repr(site["name"]) for site in sites) or "none"
            raise ValueError(
                f"the program has no observed site (sample sites: {found}); expected "
                "pyro.sample(name, d, obs=x) inside pyro.plate('data', len(x))"
            )
        latent = [site for site in sites if not site["is_observed"]]
        for site in latent:
            if site["fn"].support.is_discrete:
                raise ValueError(
                    f"latent site {site['name']!r} is discrete ({type(site['fn']).__name__}); evidence "
                    "integrates continuous latents only: marginalise it in the model (e.g. a MixtureSameFamily)"
                )
        self.names = [site["name"] for site in latent]
        self.transforms = {site["name"]: biject_to(site["fn"].support) for site in latent}
        self.shapes = {n: tuple(self.transforms[n].inv(trace.nodes[n]["value"]).shape) for n in self.names}
        self.sizes = [math.prod(self.shapes[n]) for n in self.names]
        self.dim = sum(self.sizes)
        self.broadcasts = False
        self.broadcasts = bool(self.names) and self._broadcasts()

    def _broadcasts(self) -> bool:
        """Whether the program runs for two chains at once under a chains plate (then the
        per-chain shapes become those under the plate: a global gains the plates' dims)."""
        plain = self.shapes
        try:
            with torch.no_grad():
                nodes = self.run(self.program, 2).nodes
                free = {n: self.transforms[n].inv(nodes[n]["value"]) for n in self.names}
                self.shapes = {n: tuple(v.shape[1:]) for n, v in free.items()}
                ok = all(math.prod(self.shapes[n]) == math.prod(plain[n]) for n in self.names)
                if ok:
                    prior, lik = self._log_parts_plate(self.pack(free))
                    ok = prior.shape == (2,) and lik.shape == (2,)
        except (RuntimeError, ValueError, IndexError):
            ok = False
        if not ok:
            self.shapes = plain
        return ok

    @classmethod
    def simulate(cls, program: Callable, like: Tensor, nesting: int | None = None) -> tuple[ProgramTarget, Tensor]:
        """Simulate latents and a data set of ``like``'s shape from the program; the target of
        that data set and the simulating latents, packed as ``[1, P]``."""
        with torch.no_grad():
            names = [s["name"] for s in random_sites(poutine.trace(program).get_trace(like)) if s["is_observed"]]
            trace = poutine.trace(poutine.uncondition(program)).get_trace(like)
        observed = [trace.nodes[n]["value"] for n in names if trace.nodes[n]["value"].shape == like.shape]
        if not observed:
            raise ValueError(f"the program has no observed site of the data's shape {tuple(like.shape)}")
        target = cls(program, observed[0], nesting)
        values = {n: target.transforms[n].inv(trace.nodes[n]["value"])[None] for n in target.names}
        return target, target.pack(values)

    def run(self, fn: Callable, num: int, values: dict[str, Tensor] | None = None) -> Any:
        """Trace ``fn(x)`` for ``num`` chains under the chains plate, conditioned on ``values``."""
        if values is not None:
            fn = poutine.condition(fn, data=values)
        with pyro.plate("chains", num, dim=-(self.nesting + 1)):
            return poutine.trace(fn).get_trace(self.x)

    def per_chain(self, log_prob: Tensor, num: int) -> Tensor:
        """A site's log-probabilities summed over every dim right of the chains dim: ``[num]``."""
        if log_prob.dim() > self.nesting:
            log_prob = log_prob.reshape(*log_prob.shape[: log_prob.dim() - self.nesting], -1).sum(-1)
        else:
            log_prob = log_prob.sum()
        return log_prob.reshape(-1).expand(num) if log_prob.numel() == 1 else log_prob.reshape(num)

    def pack(self, unconstrained: dict[str, Tensor]) -> Tensor:
        """``[M, P]`` from each latent's unconstrained value (leading dim M)."""
        num = next(iter(unconstrained.values())).shape[0]
        return torch.cat([unconstrained[n].reshape(num, -1) for n in self.names], -1)

    def unpack(self, u: Tensor) -> tuple[dict[str, Tensor], Tensor]:
        """Constrained values of every latent for ``u`` ``[M, P]`` (under the chains plate) or
        ``[P]`` (one chain, under ``vmap``), and the log-abs-det, ``[M]`` or ``[]``."""
        lead = u.shape[:-1]
        values, log_det = {}, u.new_zeros(lead)
        for name, part in zip(self.names, torch.split(u, self.sizes, -1), strict=True):
            free = part.reshape((*lead, *self.shapes[name]))
            values[name] = self.transforms[name](free)
            jacobian = self.transforms[name].log_abs_det_jacobian(free, values[name])
            log_det = log_det + jacobian.reshape((*lead, -1)).sum(-1)
        return values, log_det

    def draw(self, num: int, fn: Callable | None = None) -> Tensor:
        """``[num, P]`` unconstrained draws from the prior (or from ``fn``, a guide)."""
        fn = fn or self.program
        with torch.no_grad():
            if self.broadcasts:
                nodes = self.run(fn, num).nodes
                return self.pack({n: self.transforms[n].inv(nodes[n]["value"]) for n in self.names})
            draws = []
            for _ in range(num):  # the initial draws only; every later evaluation is vectorised
                nodes = poutine.trace(fn).get_trace(self.x).nodes
                draws.append(self.pack({n: self.transforms[n].inv(nodes[n]["value"])[None] for n in self.names}))
            return torch.cat(draws)

    def _log_parts_plate(self, u: Tensor) -> tuple[Tensor, Tensor]:
        num = u.shape[0]
        values, log_det = self.unpack(u)
        trace = self.run(self.program, num, values)
        prior = log_det + sum(self.per_chain(trace.nodes[n]["fn"].log_prob(values[n]), num) for n in self.names)
        lik = sum(
            self.per_chain(s["fn"].log_prob(s["value"]), num)
            for s in random_sites(trace)
            if s["is_observed"] and s["name"] not in self.shapes
        )
        return prior, lik

    def _log_parts_one(self, u: Tensor) -> tuple[Tensor, Tensor]:
        values, log_det = self.unpack(u)
        trace = poutine.trace(poutine.condition(self.program, data=values)).get_trace(self.x)
        prior = log_det + sum(trace.nodes[n]["fn"].log_prob(values[n]).sum() for n in self.names)
        lik = sum(s["fn"].log_prob(s["value"]).sum() for s in random_sites(trace) if s["name"] not in self.shapes)
        return prior, lik

    def _log_guide_plate(self, u: Tensor) -> Tensor:
        num = u.shape[0]
        values, log_det = self.unpack(u)
        trace = self.run(self.guide, num, values)
        return log_det + sum(self.per_chain(trace.nodes[n]["fn"].log_prob(values[n]), num) for n in self.names)

    def _log_guide_one(self, u: Tensor) -> Tensor:
        values, log_det = self.unpack(u)
        trace = poutine.trace(poutine.condition(self.guide, data=values)).get_trace(self.x)
        return log_det + sum(trace.nodes[n]["fn"].log_prob(values[n]).sum() for n in self.names)

    def log_parts(self, u: Tensor) -> tuple[Tensor, Tensor]:
        """log prior (on unconstrained space, log-abs-det included) and log-likelihood of the
        states ``u`` ``[M, P]``: each ``[M]``."""
        if self.broadcasts:
            return self._log_parts_plate(u)
        return torch.func.vmap(self._log_parts_one)(u)

    def log_guide(self, u: Tensor) -> Tensor:
        """log q(u) of the guide on unconstrained space (log-abs-det included): ``[M]``."""
        if self.broadcasts:
            return self._log_guide_plate(u)
        return torch.func.vmap(self._log_guide_one)(u)

    def prior_parts(self, u: Tensor) -> tuple[Tensor, Tensor]:
        """For the path from the prior: ``base`` = log prior, ``delta`` = log-likelihood, ``[*lead]``."""
        prior, lik = self.log_parts(u.reshape(-1, u.shape[-1]))
        return prior.reshape(u.shape[:-1]), lik.reshape(u.shape[:-1])

    def guide_parts(self, u: Tensor) -> tuple[Tensor, Tensor]:
        """For the path from the guide: ``base`` = log q, ``delta`` = log p(x, u) - log q."""
        flat = u.reshape(-1, u.shape[-1])
        prior, lik = self.log_parts(flat)
        log_q = self.log_guide(flat)
        return log_q.reshape(u.shape[:-1]), (prior + lik - log_q).reshape(u.shape[:-1])


def power_schedule(num_steps: int, power: float = 4.0) -> list[float]:
    """Inverse temperatures ``(t / T)^power``: small steps near the prior, where the posterior
    of many data moves fastest (measured better than a geometric schedule from 1e-6 here)."""
    check_int("num_steps", num_steps)
    return [(t / num_steps) ** power for t in range(num_steps + 1)]


@dataclass
class AnnealRun:
    """One AIS run: log weights ``[G, C]``, the (step size, scale) used at each step, the final
    state ``[G, C, P]`` and the mean acceptance rate."""

    log_weights: Tensor
    kernels: list[tuple[Tensor, Tensor]]
    state: Tensor
    accept_rate: float


@dataclass
class SMCRun:
    """One tempered SMC run per group: log evidence ``[G]``, stages taken (most of any group),
    the mean ESS of the last reweighting, the final state, the mean acceptance rate and each
    stage's kernel ``(beta [G], eps [G, 1, 1], scale [G, 1, P])`` (its last move's)."""

    log_evidence: Tensor
    num_stages: int
    ess: float
    state: Tensor
    accept_rate: float
    kernels: list[tuple[Tensor, Tensor, Tensor]] = field(default_factory=list)


def _energy(parts: Callable, beta: float | Tensor) -> Callable:
    """``f = base + beta * delta`` and its gradient, for :func:`hmc_transition`."""

    def energy_and_grad(z: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        u = z["u"].detach().requires_grad_()
        with torch.enable_grad():
            base, delta = parts(u)
            f = base + beta * delta
            (grad,) = torch.autograd.grad(f.sum(), [u])
        return f.detach(), {"u": torch.nan_to_num(grad)}

    return energy_and_grad


def _population_scale(u: Tensor) -> Tensor:
    """Each group's spread of its chains per coordinate (``[G, 1, P]``): the diagonal mass
    matrix, estimated within a group so that groups stay independent runs."""
    if u.shape[1] < 2:
        return torch.ones_like(u[:, :1])
    return u.std(1, keepdim=True).clamp_min(1e-8)


def _adapt(eps: Tensor, accept: Tensor) -> Tensor:
    """Each group's step size, moved towards an acceptance rate of 0.65."""
    rate = accept.to(eps.dtype).mean(1)
    return eps * torch.exp(rate - 0.65).reshape(eps.shape)


def _move(parts, u, beta, eps, scale, leapfrog_steps) -> tuple[Tensor, Tensor]:
    z, accept = hmc_transition({"u": u}, _energy(parts, beta), eps, leapfrog_steps, tuple(u.shape[:2]), {"u": scale})
    return z["u"], accept


def anneal(
    parts: Callable,
    u: Tensor,
    betas: list[float],
    *,
    leapfrog_steps: int = 5,
    step_size: float = 0.1,
    kernels: list[tuple[Tensor, Tensor]] | None = None,
) -> AnnealRun:
    """AIS along ``f_beta(u) = base(u) + beta * delta(u)`` for ``betas`` (``parts(u)`` gives
    ``(base, delta)``), from ``u`` ``[G, C, P]`` (G independent groups of C chains) distributed
    as ``exp(f_{betas[0]})``. One HMC transition per step; each group adapts its own step size
    (towards 65% acceptance) and diagonal mass matrix (its chains' spread), unless ``kernels``
    (the ``(eps, scale)`` of each step, e.g. of a forward run for reverse AIS) are given."""
    groups = u.shape[0]
    eps = u.new_full((groups, 1, 1), step_size)
    log_w = u.new_zeros(u.shape[:2])
    with torch.no_grad():
        _, delta = parts(u)
    used, rates = [], []
    for t in range(1, len(betas)):
        log_w = log_w + (betas[t] - betas[t - 1]) * delta
        if kernels is None:
            scale = _population_scale(u)
        else:
            eps, scale = kernels[t - 1]
        used.append((eps, scale))
        u, accept = _move(parts, u, betas[t], eps, scale, leapfrog_steps)
        if kernels is None:
            eps = _adapt(eps, accept)
        rates.append(accept.double().mean().item())
        with torch.no_grad():
            _, delta = parts(u)
    return AnnealRun(log_w, used, u, sum(rates) / max(len(rates), 1))


def piloted_anneal(
    parts: Callable,
    u: Tensor,
    betas: list[float],
    pilot_start: Tensor,
    *,
    leapfrog_steps: int = 5,
    step_size: float = 0.1,
) -> AnnealRun:
    """AIS with kernels fixed in advance by a pilot run from ``pilot_start`` (``[1, C, P]``).

    A kernel tuned on the weighted chains' own states biases their weights (by about +0.1 nats
    on a 1-d Gaussian, +1 nat on 40 dims, measured); one fixed in advance cannot. The pilot runs
    a quarter of the steps and step t uses its kernel nearest in beta.
    """
    steps = len(betas) - 1
    coarse = power_schedule(max(steps // 4, 1))
    pilot = anneal(parts, pilot_start, coarse, leapfrog_steps=leapfrog_steps, step_size=step_size)
    index = [min(int(t * (len(coarse) - 1) / steps), len(coarse) - 2) for t in range(steps)]
    kernels = [pilot.kernels[i] for i in index]
    return anneal(parts, u, betas, leapfrog_steps=leapfrog_steps, kernels=kernels)


def _conditional_ess(log_w: Tensor, delta: Tensor, step: Tensor) -> Tensor:
    """Conditional ESS fraction (Zhou, Johansen & Aston 2016) of reweighting by ``step * delta``."""
    inc = step[:, None] * delta
    return torch.exp(2 * torch.logsumexp(log_w + inc, 1) - torch.logsumexp(log_w + 2 * inc, 1))


def _next_beta(log_w: Tensor, delta: Tensor, beta: Tensor, target: float) -> Tensor:
    """Each group's next inverse temperature, by bisection, keeping the conditional ESS at
    ``target`` (or 1 when the whole way keeps it above)."""
    lo, hi = torch.zeros_like(beta), 1 - beta
    whole = _conditional_ess(log_w, delta, hi) >= target
    for _ in range(50):
        mid = (lo + hi) / 2
        ok = _conditional_ess(log_w, delta, mid) >= target
        lo, hi = torch.where(ok, mid, lo), torch.where(ok, hi, mid)
    return torch.where(whole, torch.ones_like(beta), beta + lo)


def _resample(u: Tensor, log_w: Tensor, which: Tensor) -> tuple[Tensor, Tensor]:
    """Systematic resampling of the groups ``which`` (``[G]`` bool); their weights reset."""
    groups, chains = log_w.shape
    cdf = torch.cumsum(torch.softmax(log_w, 1), 1)
    points = (torch.rand(groups, 1, dtype=u.dtype, device=u.device) + torch.arange(chains, device=u.device)) / chains
    index = torch.searchsorted(cdf.contiguous(), points.contiguous()).clamp_max(chains - 1)
    index = torch.where(which[:, None], index, torch.arange(chains, device=u.device).expand(groups, chains))
    u = torch.gather(u, 1, index[..., None].expand_as(u))
    log_w = torch.where(which[:, None], torch.full_like(log_w, -math.log(chains)), log_w)
    return u, log_w


def _moved(parts, u, beta, eps, moves, leapfrog_steps, kernel) -> tuple[Tensor, tuple, Tensor, list[float]]:
    """One stage's ``moves`` HMC transitions at ``beta``: with the ``kernel`` ``(eps, scale)``
    given, or adapting the run's own (step size towards 65% acceptance, the particles' spread);
    the state, the kernel of the last move, the step size for the next and the acceptance rates."""
    rates = []
    for _ in range(moves):
        used = kernel if kernel is not None else (eps, _population_scale(u))
        u, accept = _move(parts, u, beta[:, None], *used, leapfrog_steps)
        eps = _adapt(used[0], accept) if kernel is None else eps
        rates.append(accept.double().mean().item())
    return u, used, eps, rates


def smc(
    parts: Callable,
    u: Tensor,
    *,
    moves: int = 5,
    leapfrog_steps: int = 5,
    step_size: float = 0.1,
    ess_target: float = 0.9,
    resample_threshold: float = 0.5,
    max_stages: int = 1000,
    kernels: Callable[[Tensor], tuple[Tensor, Tensor]] | None = None,
) -> SMCRun:
    """Tempered SMC (Del Moral, Doucet & Jasra 2006) along ``f_beta = base + beta * delta``,
    from ``u`` ``[G, C, P]`` drawn from ``exp(base)``: G independent runs of C particles. Each
    stage picks the next inverse temperature by bisection so that the conditional ESS of the
    reweighting is ``ess_target`` of C, adds ``log sum_i W_i w_i`` to the log evidence,
    resamples (systematic) when the ESS falls below ``resample_threshold`` of C, and moves every
    particle by ``moves`` HMC transitions: with ``kernels(beta)``'s ``(eps, scale)`` where given
    (see :func:`piloted_smc`), else with a step size and mass matrix adapted on the particles."""
    groups, chains = u.shape[:2]
    beta = u.new_zeros(groups)
    log_w = u.new_full((groups, chains), -math.log(chains))
    log_z = u.new_zeros(groups)
    eps = u.new_full((groups, 1, 1), step_size)
    stages, ess, rates, used = 0, float(chains), [], []
    with torch.no_grad():
        _, delta = parts(u)
    while bool((beta < 1).any()) and stages < max_stages:
        new_beta = _next_beta(log_w, delta, beta, ess_target)
        inc = (new_beta - beta)[:, None] * delta
        log_z = log_z + torch.logsumexp(log_w + inc, 1)
        log_w = log_w + inc
        log_w = log_w - torch.logsumexp(log_w, 1, keepdim=True)
        beta, stages = new_beta, stages + 1
        group_ess = torch.exp(-torch.logsumexp(2 * log_w, 1))
        ess = group_ess.mean().item()
        u, log_w = _resample(u, log_w, group_ess < resample_threshold * chains)
        kernel = None if kernels is None else kernels(beta)
        u, (stage_eps, scale), eps, stage_rates = _moved(parts, u, beta, eps, moves, leapfrog_steps, kernel)
        used.append((beta.clone(), stage_eps, scale))
        rates += stage_rates
        with torch.no_grad():
            _, delta = parts(u)
    return SMCRun(log_z, stages, ess, u, sum(rates) / max(len(rates), 1), used)


def piloted_smc(parts: Callable, u: Tensor, pilot_start: Tensor, **options: Any) -> SMCRun:
    """Tempered SMC whose HMC kernels come from a pilot run from ``pilot_start`` (``[1, C, P]``):
    each stage at inverse temperature beta uses the pilot's kernel of its first stage at or past
    beta. A mass matrix estimated on the very particles it moves biases the evidence upwards
    (+0.46 +- 0.08 nats on a logistic regression, N = 1000, D = 10, 128 particles, measured;
    estimated on other particles: -0.17 +- 0.09); kernels fixed by another run cannot."""
    pilot = smc(parts, pilot_start, **options)
    betas = torch.stack([beta[0] for beta, _, _ in pilot.kernels])
    eps = torch.stack([step[0] for _, step, _ in pilot.kernels])
    scale = torch.stack([spread[0] for _, _, spread in pilot.kernels])

    def kernels(beta: Tensor) -> tuple[Tensor, Tensor]:
        index = torch.searchsorted(betas.contiguous(), beta.contiguous()).clamp_max(len(betas) - 1)
        return eps[index], scale[index]

    return smc(parts, u, kernels=kernels, **options)
