"""Diagnostics of Monte-Carlo estimates: say when not to trust an importance-weighted number.

- **Pareto k-hat** of the log importance weights (PSIS, Vehtari et al. 2024), fitted by
  ArviZ's :func:`arviz.psislw`: below 0.5 the estimate is reliable, between 0.5 and 0.7 it
  converges slowly, above 0.7 the variance of the weights is (practically) infinite and the
  number is not to be trusted, whatever its printed standard error.
- **Importance ESS** ``(sum w)^2 / sum w^2``: how many equally-weighted draws the weights are
  worth.
- **Spread over independent runs** of AIS/SMC (the standard deviation of their log estimates).
- **BDMC** (Grosse, Ghahramani & Adams 2015): for data the model simulated itself, with the
  latents that generated them (an exact posterior sample), forward AIS gives a stochastic lower
  bound of log p(x) and reverse AIS started at those latents a stochastic upper bound; their
  gap bounds the error of AIS with that schedule on data like these.

References:
    Vehtari, Simpson, Gelman, Yao & Gabry, "Pareto Smoothed Importance Sampling" (JMLR 2024).
    Yao, Vehtari, Simpson & Gelman, "Yes, but Did It Work?" (ICML 2018).
    Grosse, Ghahramani & Adams, "Sandwiching the marginal likelihood using bidirectional
    Monte Carlo" (2015), arXiv:1511.02543.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from probgen._checks import check_int
from probgen.inference.annealing import ProgramTarget, anneal, piloted_anneal, power_schedule, resolve_program
from probgen.models.base import GenerativeModel, evaluating

__all__ = [
    "MIN_SAMPLES",
    "KHAT_GOOD",
    "KHAT_BAD",
    "SPREAD_BAD",
    "BDMC_GAP_BAD",
    "Diagnostics",
    "BDMCResult",
    "pareto_khat",
    "importance_ess",
    "importance_diagnostics",
    "run_diagnostics",
    "bdmc",
]

#: fewer importance samples than this get no k-hat (nan): the tail fit needs enough of them
MIN_SAMPLES = 20
#: k-hat below this: the importance-sampling estimate is reliable (Vehtari et al.)
KHAT_GOOD = 0.5
#: k-hat above this: the weights' variance is practically infinite; do not trust the number
KHAT_BAD = 0.7
#: independent AIS/SMC runs whose log estimates spread (standard deviation) more than this, in nats
SPREAD_BAD = 1.0
#: a BDMC gap (upper - lower bound) above this many nats per data set: the schedule is too short
BDMC_GAP_BAD = 1.0


@dataclass(frozen=True)
class Diagnostics:
    """How far a Monte-Carlo estimate can be trusted.

    Attributes:
        method: what was diagnosed: "importance" (IWAE weights), "ais" or "smc".
        num_samples: importance samples or chains per estimate.
        khat_max: largest Pareto k-hat over examples (None where not computed).
        khat_mean: mean k-hat over examples.
        khat_above: fraction of examples whose k-hat exceeds ``KHAT_BAD`` (0.7).
        ess: mean importance effective sample size over examples (or over runs, for SMC the
            last stage's ESS before its resampling).
        run_spread: standard deviation, in nats, of the log estimates of independent runs.
        num_runs: number of independent runs behind ``run_spread``.
        num_stages: SMC: the number of temperatures the adaptive schedule took.
        bdmc_gap: upper minus lower BDMC bound, in nats (None where not run).
        warning: what failed and what to do, or None when every diagnostic passed.

    Example:
        >>> import torch
        >>> d = importance_diagnostics(torch.zeros(50, 3, dtype=torch.float64))  # equal weights
        >>> d.ok, round(d.ess, 6), d.num_samples  # ESS = 1 / sum(w^2) = K for equal weights
        (True, 50.0, 50)
        >>> Diagnostics("ais", 16, run_spread=0.8, num_runs=4, warning="the runs disagree").summary
        'spread 0.800 over 4 runs [FAILED]'
    """

    method: str
    num_samples: int
    khat_max: float | None = None
    khat_mean: float | None = None
    khat_above: float | None = None
    ess: float | None = None
    run_spread: float | None = None
    num_runs: int | None = None
    num_stages: int | None = None
    bdmc_gap: float | None = None
    warning: str | None = None

    @property
    def ok(self) -> bool:
        """True when no diagnostic failed."""
        return self.warning is None

    @property
    def summary(self) -> str:
        """One short line for a table column: k-hat, ESS, run spread, BDMC gap."""
        parts = []
        if self.khat_max is not None:
            parts.append(f"k̂ max {self.khat_max:.2f}")
            if self.khat_above:
                parts.append(f"{100 * self.khat_above:.0f}% > {KHAT_BAD}")
        if self.ess is not None:
            parts.append(f"ESS {self.ess:.1f}/{self.num_samples}")
        if self.run_spread is not None:
            parts.append(f"spread {self.run_spread:.3f} over {self.num_runs} runs")
        if self.bdmc_gap is not None:
            parts.append(f"BDMC gap {self.bdmc_gap:.3f}")
        return ", ".join(parts) + ("" if self.ok else " [FAILED]")

    def as_dict(self) -> dict[str, Any]:
        """JSON-able: every field, plus ``summary`` and ``ok``."""
        return {**asdict(self), "summary": self.summary, "ok": self.ok}

    def __str__(self) -> str:
        return self.summary + (f"\n  warning: {self.warning}" if self.warning else "")


def _as_numpy(log_weights: Tensor | np.ndarray) -> np.ndarray:
    if isinstance(log_weights, Tensor):
        log_weights = log_weights.detach().cpu().double().numpy()
    return np.asarray(log_weights, dtype=np.float64)


def pareto_khat(log_weights: Tensor | np.ndarray) -> np.ndarray:
    """Pareto k-hat of each column of ``log_weights`` (``[K]`` or ``[K, B]``: samples first).

    Fitted by :func:`arviz.psislw` (the generalized Pareto fit of Zhang & Stephens to the
    largest weights); a column with too few samples for a tail fit gets ``inf``.

    Example:
        >>> import torch
        >>> lw = torch.randn(1000, 2, generator=torch.Generator().manual_seed(0))
        >>> bool((pareto_khat(lw * torch.tensor([0.1, 3.0])) < 0.7)[0])
        True
    """
    import arviz as az  # imported here: arviz is slow to import and most callers never need it

    lw = _as_numpy(log_weights)
    if lw.ndim not in (1, 2):
        raise ValueError(f"log_weights must be [K] or [K, B] (samples first); got shape {lw.shape}")
    column = lw.ndim == 1
    lw = lw.reshape(lw.shape[0], -1).T  # psislw wants samples last
    if lw.shape[1] < MIN_SAMPLES:  # too few for a tail fit: no diagnostic rather than a false alarm
        khat = np.full(lw.shape[0], np.nan)
        return khat[0] if column else khat
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # we say it ourselves, once, with what to do
        _, khat = az.psislw(lw.copy())
    khat = np.atleast_1d(np.asarray(khat, dtype=np.float64))
    # equal weights (the exact posterior as proposal) have no tail: the fit fails (inf), but
    # the estimate is exact; report k-hat 0
    khat = np.where(np.ptp(lw, axis=-1) < 1e-8, 0.0, khat)
    return khat[0] if column else khat


def importance_ess(log_weights: Tensor, dim: int = 0) -> Tensor:
    """Importance effective sample size ``(sum w)^2 / sum w^2`` along ``dim``, from log weights.

    Example:
        >>> import torch
        >>> round(importance_ess(torch.zeros(50, dtype=torch.float64)).item(), 6)
        50.0
    """
    return torch.exp(2 * torch.logsumexp(log_weights, dim) - torch.logsumexp(2 * log_weights, dim))


def _khat_warning(khat_max: float, what: str) -> str | None:
    if math.isnan(khat_max) or khat_max <= KHAT_BAD:  # nan: too few samples to tell (inf fails)
        return None
    return (
        f"{what}: Pareto k-hat {khat_max:.2f} > {KHAT_BAD}: the importance weights are too heavy-tailed "
        "for the estimate to be trusted; use a better guide (closer to the posterior, wider rather than "
        "narrower), or AIS (method='ais'); more samples help only slowly"
    )


def importance_diagnostics(log_weights: Tensor, what: str = "importance-weighted estimate") -> Diagnostics:
    """Diagnostics of importance weights ``[K]`` or ``[K, B]`` (K samples for each of B examples).

    Example:
        >>> import torch
        >>> d = importance_diagnostics(torch.randn(200, 3, generator=torch.Generator().manual_seed(1)) * 0.1)
        >>> d.ok, d.khat_max < 0.5
        (True, True)
    """
    log_weights = log_weights.detach().double()
    if log_weights.dim() == 1:
        log_weights = log_weights[:, None]
    khat = pareto_khat(log_weights)
    ess = importance_ess(log_weights, 0)
    khat_max = float(np.nanmax(khat)) if not np.isnan(khat).all() else float("nan")
    return Diagnostics(
        method="importance",
        num_samples=int(log_weights.shape[0]),
        khat_max=khat_max,
        khat_mean=float(np.nanmean(khat)) if not np.isnan(khat).all() else float("nan"),
        khat_above=float(np.mean(khat > KHAT_BAD)),  # inf (a failed fit) counts, nan does not
        ess=float(ess.mean()),
        warning=_khat_warning(khat_max, what),
    )


def run_diagnostics(
    method: str,
    run_estimates: Tensor,
    log_weights: Tensor | None = None,
    *,
    ess: float | None = None,
    num_samples: int | None = None,
    num_stages: int | None = None,
) -> Diagnostics:
    """Diagnostics of AIS or SMC from the log estimates of independent runs (``[G]``) and, for
    AIS, the pooled log weights of every chain (``[K]`` or ``[K, B]``: k-hat and ESS)."""
    spread = float(run_estimates.double().std()) if run_estimates.numel() > 1 else float("nan")
    khat = khat_mean = khat_above = None
    problems = []
    if log_weights is not None:
        d = importance_diagnostics(log_weights, f"{method.upper()} weights")
        khat, khat_mean, khat_above, ess, num_samples = d.khat_max, d.khat_mean, d.khat_above, d.ess, d.num_samples
        if d.warning:
            problems.append(
                d.warning.replace("use a better guide", "use more annealing steps (num_steps), a better guide")
            )
    if spread > SPREAD_BAD:
        problems.append(
            f"{method.upper()}: independent runs disagree by {spread:.2f} nats (standard deviation) > {SPREAD_BAD}; "
            "use more annealing steps (num_steps) or more chains (num_samples)"
        )
    return Diagnostics(
        method=method,
        num_samples=int(num_samples or 0),
        khat_max=khat,
        khat_mean=khat_mean,
        khat_above=khat_above,
        ess=ess,
        run_spread=spread,
        num_runs=int(run_estimates.numel()),
        num_stages=num_stages,
        warning="; ".join(problems) or None,
    )


@dataclass(frozen=True)
class BDMCResult:
    """A BDMC sandwich of log p(x) for a data set the model simulated.

    Attributes:
        lower: forward AIS estimate (a stochastic lower bound), nats for the whole data set.
        upper: reverse AIS estimate from the simulating latents (a stochastic upper bound).
        gap: ``upper - lower``: bounds the error of forward AIS with this schedule on such data.
        num_chains: chains per direction.
        num_steps: annealing steps per direction.
        data: the simulated data set (a tensor like the one given).
        diagnostics: a :class:`Diagnostics` with ``bdmc_gap`` and a warning above ``BDMC_GAP_BAD``.
        lower_stderr: Monte-Carlo standard error of ``lower``, by the delta method on the
            chains' weights, ``sqrt(1/ESS - 1/K)`` (as IWAE's; it understates the error when a
            few chains carry all the weight, which a large gap already says).
        upper_stderr: the same for ``upper``, from the reverse chains' weights.
    """

    lower: float
    upper: float
    gap: float
    num_chains: int
    num_steps: int
    data: Tensor
    diagnostics: Diagnostics
    lower_stderr: float = math.nan
    upper_stderr: float = math.nan

    def as_dict(self) -> dict[str, Any]:
        """JSON-able (without the data)."""
        return {
            "lower": self.lower,
            "upper": self.upper,
            "gap": self.gap,
            "lower_stderr": self.lower_stderr,
            "upper_stderr": self.upper_stderr,
            "num_chains": self.num_chains,
            "num_steps": self.num_steps,
            "diagnostics": self.diagnostics.as_dict(),
        }


def _bdmc_diagnostics(gap: float, num_chains: int, num_steps: int) -> Diagnostics:
    """The gap as a diagnostic, warned about above ``BDMC_GAP_BAD``."""
    warning = None
    if not gap <= BDMC_GAP_BAD:
        warning = (
            f"BDMC gap {gap:.2f} nats > {BDMC_GAP_BAD}: AIS with {num_steps} steps is not accurate on data "
            "like these; use more annealing steps (num_steps)"
        )
        warnings.warn(warning, stacklevel=3)
    return Diagnostics(method="bdmc", num_samples=num_chains, bdmc_gap=gap, warning=warning)


def _log_mean_and_stderr(log_weights: Tensor) -> tuple[float, float]:
    """``log mean w`` of the chains' weights and its delta-method standard error."""
    log_w = log_weights.detach().double().flatten()
    num = log_w.numel()
    ess = float(importance_ess(log_w))
    # var(mean w) / mean(w)^2 estimated by (K / ESS - 1) / K
    return float(torch.logsumexp(log_w, 0) - math.log(num)), math.sqrt(max(1 / ess - 1 / num, 0.0))


def bdmc(
    model: Any,
    like: Tensor,
    *,
    num_chains: int = 16,
    num_steps: int = 200,
    leapfrog_steps: int = 5,
    step_size: float = 0.1,
    seed: int | None = None,
) -> BDMCResult:
    """Bidirectional Monte Carlo (Grosse et al. 2015) on data the model simulates itself.

    Draws latents ``z*`` and a data set ``x`` of ``like``'s shape from the program (all its
    latents, global and local, from their priors: ``poutine.uncondition``), then runs AIS from
    the prior to the posterior (its log-mean weight: a stochastic lower bound of log p(x)) and
    AIS in reverse from ``z*`` — an exact posterior sample given ``x`` — to the prior (minus its
    log-mean weight: a stochastic upper bound). Both directions use the same kernels (step sizes
    and mass matrices), fixed in advance by a pilot run, so neither is biased by adaptation. A gap above
    ``BDMC_GAP_BAD`` nats warns that the schedule is too short for estimates on such data.

    A probgen model (a :class:`~probgen.models.VAE`, say) is annealed through its own Pyro
    program ``model.model``, in eval mode (dropout off, so that the target is a fixed density);
    its guide is not used: both directions start from the prior or from ``z*``, so an amortised
    encoder, however poor, cannot bias either bound.

    Args:
        model: a plain Pyro program ``model(x)`` following the convention, or a probgen model.
        like: a tensor of the shape of the data set to simulate (values unused; a probgen
            model's data take the model's dtype and device).
        num_chains: AIS chains in each direction.
        num_steps: annealing steps in each direction.
        leapfrog_steps: leapfrog steps per HMC transition.
        step_size: initial HMC step size (adapted towards 65% acceptance in the forward run).
        seed: seeds torch's generator first when given.

    Example:
        >>> import pyro, pyro.distributions as dist, torch
        >>> def model(x):
        ...     with pyro.plate("data", x.shape[0]):
        ...         z = pyro.sample("z", dist.Normal(0.0, 1.0))
        ...         pyro.sample("x", dist.Normal(z, 1.0), obs=x)
        >>> r = bdmc(model, torch.zeros(5, dtype=torch.float64), num_chains=8, num_steps=50, seed=0)
        >>> r.lower <= r.upper + 0.1
        True
    """
    check_int("num_chains", num_chains)
    check_int("num_steps", num_steps)
    if not isinstance(like, Tensor) or like.dim() == 0 or like.shape[0] == 0:
        got = tuple(like.shape) if isinstance(like, Tensor) else type(like).__name__
        raise ValueError(f"like must be a tensor [N, *event_shape] with N >= 1; got {got}")
    if seed is not None:
        torch.manual_seed(seed)
    program, _, nesting = resolve_program(model)
    if isinstance(model, GenerativeModel):
        like = like.to(device=model.device, dtype=model.dtype)
        with evaluating(model):  # dropout off: AIS needs one fixed target density
            return _bdmc(program, like, nesting, num_chains, num_steps, leapfrog_steps, step_size)
    return _bdmc(program, like, nesting, num_chains, num_steps, leapfrog_steps, step_size)


def _bdmc(
    program: Any, like: Tensor, nesting: int | None, num_chains: int, num_steps: int, leapfrog_steps: int, step_size
) -> BDMCResult:
    """Forward and reverse AIS on data simulated by ``program`` (see :func:`bdmc`)."""
    target, z_star = ProgramTarget.simulate(program, like, nesting)
    betas = power_schedule(num_steps)
    draws = target.draw(2 * num_chains).reshape(2, num_chains, -1)  # the chains, and the pilot's
    forward = piloted_anneal(
        target.prior_parts, draws[:1], betas, draws[1:], leapfrog_steps=leapfrog_steps, step_size=step_size
    )
    # reverse AIS moves at betas[T-1], ..., betas[0] with the forward run's kernel for each beta
    kernels = [forward.kernels[max(num_steps - s - 1, 0)] for s in range(1, num_steps + 1)]
    start = z_star.expand(1, num_chains, -1).clone()
    reverse = anneal(target.prior_parts, start, betas[::-1], leapfrog_steps=leapfrog_steps, kernels=kernels)
    lower, lower_se = _log_mean_and_stderr(forward.log_weights)
    minus_upper, upper_se = _log_mean_and_stderr(reverse.log_weights)
    upper = -minus_upper
    diagnostics = _bdmc_diagnostics(upper - lower, num_chains, num_steps)
    return BDMCResult(lower, upper, upper - lower, num_chains, num_steps, target.x, diagnostics, lower_se, upper_se)
