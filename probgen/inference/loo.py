"""LOO for any fitted Bayesian program: ArviZ ``InferenceData`` and PSIS-LOO, variational fits included.

:func:`to_inference_data` exports a fitted model's posterior draws, the pointwise log-likelihood
``log p(x_i | theta_s)`` and the observed data, so that ``az.loo``, ``az.waic`` and
``az.compare`` take it:

- a probgen Bayesian model whose posterior object exports itself (the classifiers: closed form,
  MAP, VI or NUTS) is handed to that export (its names and coordinates); for a variational fit
  the same draws' importance log-weights are added (below);
- any other model with global latents (a :class:`~probgen.models.PyroModel` of a user's plain
  Pyro program, the factorized baselines) is read through its Pyro program: the global latents
  (sample sites outside the data plate) are drawn from the model's guide, and each draw is put
  into the program with ``poutine.condition`` to score every example. Draws are vectorised in
  one ``pyro.plate`` left of the program's plates where the model declares it ``vectorizable``
  (and a trial on the data with a few draws confirms it), one run per draw otherwise. Local
  latents (sites inside the data plate) are marginalised per example by importance sampling
  with the guide (``num_particles`` draws of them per posterior draw, the guide conditioned on
  that draw's globals), so with local latents the pointwise log-likelihood is an
  importance-sampling estimate (exact when the guide's local conditional is exact). A guide that
  gives one point (an ``AutoDelta``: a MAP fit) has no spread to draw from: the draws then come
  from the Laplace approximation at that point (:mod:`probgen.models.laplace`, as a MAP-fitted
  classifier's export), with their log q, so they are reweighted like a guide's (below).

Draws from a guide q are not posterior draws. Where the model says its predictive is not the
exact posterior's (``model.predictive != "posterior"``) the export keeps, per draw, the
importance log-weight ``log p(theta, D) - log q(theta)`` as ``sample_stats.log_weight``, and
:func:`loo` then computes PSIS-LOO corrected for q (Vehtari et al. 2024, section 6; Yao et al.
2018): the LOO ratios of draws from q are ``log w(theta_s) - log p(x_i | theta_s)``, smoothed by
PSIS (:func:`arviz.psislw`), and ``elpd_loo_i = log sum_s softmax(lw_i)_s p(x_i | theta_s)``;
its Pareto k-hats say where the correction (and q itself) cannot be trusted. For exact draws
(conjugate) and MCMC draws, plain ``az.loo`` on the InferenceData is the estimate, and
:func:`loo` calls it.

References:
    Vehtari, Gelman & Gabry, "Practical Bayesian model evaluation using leave-one-out
    cross-validation and WAIC", Statistics and Computing 27 (2017).
    Vehtari, Simpson, Gelman, Yao & Gabry, "Pareto Smoothed Importance Sampling" (JMLR 2024).
    Yao, Vehtari, Simpson & Gelman, "Yes, but Did It Work?: Evaluating Variational
    Inference" (ICML 2018).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from dataclasses import replace
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pyro
import pyro.poutine as poutine
import torch
from torch import Tensor

from probgen._checks import check_int
from probgen.inference.data import DataSource
from probgen.inference.diagnostics import KHAT_BAD, importance_diagnostics
from probgen.inference.program_draws import Program, guide_draws, inspect_program, laplace_draws, pointwise, vectorizes
from probgen.models.base import GenerativeModel, model_labels

__all__ = ["POINT_GUIDE_NOTE", "PSIS_VARIATIONAL_NOTE", "loo", "to_inference_data"]

#: what :func:`loo` says of a LOO estimate computed from draws of a variational approximation
PSIS_VARIATIONAL_NOTE = (
    "PSIS-corrected LOO from a variational approximation: the draws come from the guide q, "
    "reweighted by p(theta, D) / q(theta) and Pareto-smoothed per held-out point"
)

#: what the draws of a program fitted with a point guide (an AutoDelta: MAP) are
POINT_GUIDE_NOTE = (
    "independent draws from the Laplace approximation at the guide's point (a MAP fit): N(mode, H^-1) in the "
    "unconstrained space (H: the Hessian of the negative log joint there), mapped to each site's support and split "
    "into chains (R-hat ~ 1 by construction), with their importance log-weights p(theta, D) / q(theta)"
)


@runtime_checkable
class ExportingPosterior(Protocol):
    """A posterior object that exports itself to ArviZ (probgen's Bayesian classifiers')."""

    predictive: str

    def to_inference_data(self, model: Any, x: Tensor, y: Tensor, **kwargs: Any) -> Any: ...


# ---------------------------------------------------------------------------------------- the export
def _data(model: GenerativeModel, data: Any) -> tuple[Tensor, Tensor | None]:
    x, y = DataSource(data, "data").all()
    x = model.validate(x, name="data")
    return x, model_labels(model, y, len(x))


def _chains(num_samples: int, num_chains: int) -> None:
    check_int("num_samples", num_samples, minimum=2)
    check_int("num_chains", num_chains)
    if num_samples % num_chains:
        raise ValueError(
            f"num_samples={num_samples} draws cannot be split into num_chains={num_chains} chains of equal length; "
            f"pass a multiple of {num_chains}"
        )


def _user_draws(draws: Mapping[str, Any], prog: Program, model: GenerativeModel) -> tuple[dict[str, Tensor], int]:
    """Given draws ``{site: [chains, draws, *shape]}`` (``MCMC.get_samples(group_by_chain=True)``), flattened."""
    missing = [n for n in prog.global_ if n not in draws]
    if missing:
        raise ValueError(f"draws has no value for global site(s) {missing}; expected {{site: [chains, draws, ...]}}")
    values = {n: torch.as_tensor(draws[n], dtype=model.dtype, device=model.device) for n in prog.global_}
    for n, v in values.items():
        if tuple(v.shape[2:]) != prog.shapes[n]:
            raise ValueError(
                f"draws[{n!r}] has shape {tuple(v.shape)}; expected (chains, draws, *{prog.shapes[n]}) for site {n!r}"
            )
    chains = next(iter(values.values())).shape[0]
    return {n: v.flatten(0, 1) for n, v in values.items()}, chains


def _site_dims(model: GenerativeModel, prog: Program) -> dict[str, list[str]]:
    """A global site shaped like one example (a per-feature parameter) gets the ``feature`` dimension."""
    flat = (math.prod(model.event_shape),)
    return {n: ["feature"] for n in prog.global_ if prog.shapes[n] in (model.event_shape, flat) and len(flat) == 1}


def to_inference_data(
    model: GenerativeModel,
    data: Any,
    *,
    num_samples: int = 1000,
    num_chains: int = 4,
    num_particles: int = 64,
    draws: Mapping[str, Any] | None = None,
    coords: Mapping[str, Any] | None = None,
    seed: int | None = 0,
) -> Any:
    """An ``arviz.InferenceData`` of a fitted Bayesian model on ``data`` for ``az.loo``,
    ``az.waic``, ``az.compare`` and ``az.summary`` (what is drawn: the module docstring).

    Groups: ``posterior`` (the global latent sites; ``num_chains`` chains of independent draws, so
    R-hat is near 1 by construction), ``log_likelihood`` (``log p(x_i | theta_s)``, dims
    ``(chain, draw, obs_id)``), ``observed_data`` (``x``: ``(obs_id, feature)``) and, for draws
    from an approximation, ``sample_stats`` ``log_weight`` = log p(theta, D) - log q(theta) and
    ``lp`` = log p(theta, D) (for :func:`loo`). The posterior's ``probgen_draws`` attribute says
    what the draws are.

    Args:
        model: a fitted probgen model with global latents (a ``PyroModel``, a Bayesian baseline
            or classifier).
        data: the examples (tensor, array, Dataset or ``(x, y)``); the training data for LOO.
        num_samples: draws in all, a multiple of ``num_chains`` (NUTS fits keep their own).
        num_chains: chains of independent draws.
        num_particles: importance draws of the local latents per posterior draw.
        draws: draws of one's own, ``{site: [chains, draws, *shape]}`` (as
            ``MCMC.get_samples(group_by_chain=True)``), scored as posterior draws (no weights).
        coords: coordinate values by dimension name (``feature`` names, say).
        seed: seeds Pyro's generators first (None: leave them).

    Raises:
        TypeError: not a probgen model.
        ValueError: no global latent; bad ``num_samples`` or ``draws``.

    Example:
        >>> import torch, pyro, pyro.distributions as dist, probgen as pg
        >>> def mean(x):
        ...     mu = pyro.sample("mu", dist.Normal(x.new_zeros(()), 2.0))
        ...     with pyro.plate("data", x.shape[0]):
        ...         pyro.sample("x", dist.Normal(mu[..., None], 1.0).to_event(1), obs=x)
        >>> def exact(x):  # the conjugate posterior of mu given the 3 points below: N(0.8, 1 / 3.25)
        ...     pyro.sample("mu", dist.Normal(x.new_tensor(0.8), 3.25**-0.5))
        >>> m = pg.models.PyroModel(mean, exact, event_shape=(1,), support="real").double()
        >>> idata = to_inference_data(m, torch.tensor([[0.5], [1.0], [1.1]], dtype=torch.float64), num_samples=40)
        >>> dict(idata.log_likelihood["x"].sizes), sorted(idata.sample_stats.data_vars)
        ({'chain': 4, 'draw': 10, 'obs_id': 3}, ['log_weight', 'lp'])
    """
    if not isinstance(model, GenerativeModel):
        raise TypeError(f"model must be a fitted probgen model (e.g. pg.models.PyroModel), got {type(model).__name__}")
    _chains(num_samples, num_chains)
    check_int("num_particles", num_particles)
    if seed is not None:
        pyro.set_rng_seed(seed)
    x, y = _data(model, data)
    if draws is None and isinstance(model.posterior, ExportingPosterior):
        return _exported(model, model.posterior, x, y, num_samples, num_chains, coords, seed)
    return _program_export(model, x, num_samples, num_chains, num_particles, draws, coords)


def _program_export(
    model: GenerativeModel,
    x: Tensor,
    num_samples: int,
    num_chains: int,
    num_particles: int,
    draws: Mapping[str, Any] | None,
    coords: Mapping[str, Any] | None,
) -> Any:
    """The export read through the model's Pyro program (guide draws, or ``draws``)."""
    prog = inspect_program(model.model, x, model.max_plate_nesting)
    prog = replace(prog, vectorized=vectorizes(model, prog, x))
    if draws is not None:
        values, chains = _user_draws(draws, prog, model)
        note, log_q = "the given draws (e.g. MCMC), scored as posterior draws", None
    else:
        values, log_q = guide_draws(model, prog, x, num_samples)
        chains = num_chains
        exact = model.predictive == "posterior"
        note = "independent draws from the " + ("exact posterior" if exact else "guide q (a variational approximation)")
        note += ", split into chains (R-hat ~ 1 by construction)"
        if all(bool((v == v[:1]).all()) for v in values.values()):  # a point guide: a MAP fit
            values, log_q = laplace_draws(model, prog, x, {n: v[0] for n, v in values.items()}, num_samples)
            exact, note = False, POINT_GUIDE_NOTE
        log_q = None if exact else log_q
    log_lik, log_prior = pointwise(model, prog, x, values, num_particles)
    return _assemble(model, prog, x, values, log_lik, log_prior, log_q, chains, note, coords)


def _assemble(
    model: GenerativeModel,
    prog: Program,
    x: Tensor,
    values: dict[str, Tensor],
    log_lik: Tensor,
    log_prior: Tensor,
    log_q: Tensor | None,
    chains: int,
    note: str,
    coords: Mapping[str, Any] | None,
) -> Any:
    import arviz as az  # slow to import; most of probgen never needs it

    def by_chain(t: Tensor) -> np.ndarray:  # chains one after the other along the leading dim
        return t.detach().cpu().double().reshape(chains, -1, *t.shape[1:]).numpy()

    name = prog.observed[0] if len(prog.observed) == 1 else "obs"
    x_flat = x.reshape(len(x), -1).cpu().numpy()
    dims = _site_dims(model, prog) | {name: ["obs_id"], "x": ["obs_id", "feature"]}
    groups: dict[str, Any] = {"posterior": {n: by_chain(v) for n, v in values.items()}}
    groups["log_likelihood"] = {name: by_chain(log_lik)}
    if log_q is not None:
        lp = log_prior + log_lik.sum(1)
        groups["sample_stats"] = {"log_weight": by_chain(lp - log_q), "lp": by_chain(lp)}
    all_coords = {"obs_id": np.arange(len(x)), "feature": np.arange(x_flat.shape[1])} | dict(coords or {})
    if len(all_coords["feature"]) != x_flat.shape[1]:
        raise ValueError(
            f"coords['feature'] has {len(all_coords['feature'])} names; the data have {x_flat.shape[1]} features"
        )
    return az.from_dict(
        **groups,
        observed_data={"x": x_flat},
        coords={k: np.asarray(v) for k, v in all_coords.items()},
        dims=dims,
        posterior_attrs={"probgen_draws": note, "probgen_model": model.name},
    )


def _exported(
    model: GenerativeModel,
    posterior: ExportingPosterior,
    x: Tensor,
    y: Tensor | None,
    num_samples: int,
    num_chains: int,
    coords: Mapping[str, Any] | None,
    seed: int | None,
) -> Any:
    """The posterior object's own export; for a variational fit, with the log-weights of its draws.

    The posterior draws its export first, ``num_samples`` calls of its guide on one placeholder
    row; replaying those calls from the same seed under ``poutine.trace`` gives the same draws
    with their log q (checked value for value against the export)."""
    if seed is None:
        seed = int(torch.randint(0, 2**31 - 1, ()))
    kwargs = {"num_samples": num_samples, "num_chains": num_chains, "coords": dict(coords or {}) or None}
    if model.fit_strategy == "nuts":
        kwargs = {"coords": kwargs["coords"]}  # NUTS keeps the chains it ran
    pyro.set_rng_seed(seed)
    idata = posterior.to_inference_data(model, x, y, **kwargs)
    if posterior.predictive != "variational":
        return idata
    pyro.set_rng_seed(seed)
    one_x = torch.zeros(1, *model.event_shape, dtype=model.dtype, device=model.device)
    one_y = torch.zeros(1, dtype=torch.long, device=model.device)
    with torch.no_grad():
        traces = [poutine.trace(model.guide).get_trace(one_x, one_y) for _ in range(num_samples)]
    sites = [n for n, s in traces[0].nodes.items() if s["type"] == "sample" and not s["infer"].get("is_auxiliary")]
    values = {n: torch.stack([t.nodes[n]["value"] for t in traces]) for n in sites}
    exported, _ = model.arviz_variables(values)
    for n, v in exported.items():
        if not np.allclose(idata.posterior[n].values.reshape(v.shape), v.cpu().double().numpy(), rtol=1e-12, atol=0):
            raise RuntimeError(f"the replayed guide draws of {n!r} differ from the exported ones; cannot weight them")
    log_q = torch.stack([t.log_prob_sum() for t in traces])
    log_joint = torch.stack([_log_joint(model, x, y, {n: v[s] for n, v in values.items()}) for s in range(num_samples)])
    lw = (log_joint - log_q).detach().cpu().double().reshape(num_chains, -1).numpy()
    idata.add_groups(sample_stats={"log_weight": lw, "lp": log_joint.cpu().double().reshape(num_chains, -1).numpy()})
    return idata


def _log_joint(model: GenerativeModel, x: Tensor, y: Tensor | None, values: dict[str, Tensor]) -> Tensor:
    """``log p(theta, D)``: the model's program on all the data, conditioned on ``theta``."""
    with torch.no_grad():
        trace = poutine.trace(poutine.condition(model.model, data=values)).get_trace(x, y)
    return trace.log_prob_sum()


# ---------------------------------------------------------------------------------------- PSIS-LOO
def loo(
    source: Any,
    data: Any = None,
    *,
    num_samples: int = 1000,
    num_chains: int = 4,
    num_particles: int = 64,
    seed: int | None = 0,
) -> Any:
    """PSIS-LOO of a fitted Bayesian model (or of its :func:`to_inference_data`), corrected for q
    where the draws come from a variational approximation.

    With ``sample_stats.log_weight`` (draws from a guide q), each point's ratios ``log w(theta_s)
    - log p(x_i | theta_s)`` are Pareto-smoothed (:func:`arviz.psislw`; the draws are
    independent, so relative efficiency 1) and ``elpd_loo_i = log sum_s softmax(lw_i)_s
    p(x_i | theta_s)``; ``p_loo`` is the q-corrected lppd minus elpd_loo. The result says so
    (``method``, ``note``) with the k-hat of every point (``pareto_k``) and of q's own weights
    (``khat_q``, Yao et al. 2018); a k-hat above ``min(1 - 1 / log10(S), 0.7)`` warns
    (UserWarning). Without weights (exact or MCMC draws) it is ``az.loo(idata, pointwise=True)``.

    Args:
        source: a fitted probgen model (with ``data``) or an ``arviz.InferenceData``.
        data: the examples (usually the training data) when ``source`` is a model.
        num_samples, num_chains, num_particles, seed: for :func:`to_inference_data`.

    Returns:
        An ``arviz.ELPDData`` (``az.compare`` takes it) as ``az.loo``'s; PSIS-corrected, also
        ``method`` (``"psis-variational"``), ``khat_q`` and ``note``. A ValueError without a
        ``log_likelihood`` group (exported with ``log_likelihood=False``).

    Example:
        >>> import torch, pyro, pyro.distributions as dist, probgen as pg
        >>> def mean(x):
        ...     mu = pyro.sample("mu", dist.Normal(x.new_zeros(()), 2.0))
        ...     with pyro.plate("data", x.shape[0]):
        ...         pyro.sample("x", dist.Normal(mu[..., None], 1.0).to_event(1), obs=x)
        >>> def wide(x):  # wider than the exact posterior N(0.8, 1 / 3.25); exact LOO: -3.467
        ...     pyro.sample("mu", dist.Normal(x.new_tensor(0.8), 0.8))
        >>> m = pg.models.PyroModel(mean, wide, event_shape=(1,), support="real").double()
        >>> elpd = loo(m, torch.tensor([[0.5], [1.0], [1.1]], dtype=torch.float64), num_samples=400)
        >>> elpd["method"], round(float(elpd["elpd_loo"]), 1), bool(elpd["khat_q"] < 0.7)
        ('psis-variational', -3.5, True)
    """
    import arviz as az

    if isinstance(source, az.InferenceData):
        idata = source
    elif data is None:
        raise ValueError("loo(model, data): a model needs the data to score; or pass its InferenceData alone")
    else:
        idata = to_inference_data(
            source, data, num_samples=num_samples, num_chains=num_chains, num_particles=num_particles, seed=seed
        )
    _checkpointwise(idata)
    if "sample_stats" not in idata.groups() or "log_weight" not in idata.sample_stats:
        return az.loo(idata, pointwise=True)
    return _psis_variational(idata)


def _checkpointwise(idata: Any) -> None:
    if "log_likelihood" not in idata.groups():
        note = idata.posterior.attrs.get("probgen_draws", "") if "posterior" in idata.groups() else ""
        raise ValueError(
            f"this InferenceData has no log_likelihood group ({note or 'no pointwise log-likelihood'}), so "
            "PSIS-LOO is not defined for it: export it again without log_likelihood=False"
        )


def _psis_variational(idata: Any) -> Any:
    import arviz as az
    from arviz.stats.stats_utils import ELPDData

    names = list(idata.log_likelihood.data_vars)
    if len(names) != 1:
        raise ValueError(f"the log_likelihood group has variables {names}; expected one (the observed data)")
    ll_da = idata.log_likelihood[names[0]].stack(__sample__=("chain", "draw"))
    ll = ll_da.values.reshape(-1, ll_da.shape[-1])  # [N, S]
    lw = idata.sample_stats["log_weight"].stack(__sample__=("chain", "draw")).values  # [S]
    num = lw.shape[0]
    with warnings.catch_warnings():  # reported below, once, in words
        warnings.simplefilter("ignore")
        smoothed, khat = az.psislw(lw[None, :] - ll, 1.0)
        full, _ = az.psislw(lw[None, :].copy(), 1.0)
    loo_i = _logsumexp(smoothed + ll)
    lppd = _logsumexp(full + ll).sum()
    q_diag = importance_diagnostics(torch.as_tensor(lw), "the guide q as a proposal for the posterior")
    good_k = min(1 - 1 / np.log10(num), KHAT_BAD)
    bad = int((khat > good_k).sum())
    note = f"{PSIS_VARIATIONAL_NOTE}; Pareto k-hat of q's weights {q_diag.khat_max:.2f}"
    if bad or not q_diag.khat_max <= KHAT_BAD:
        note += (
            f"; k-hat > {good_k:.2f} for {bad} of {khat.size} held-out points (largest {np.max(khat):.2f}): the "
            "estimate is unreliable; use a better (wider, closer to the posterior) guide, or NUTS"
        )
        warnings.warn(note, UserWarning, stacklevel=3)
    shape = ll_da.shape[:-1]
    coords = {d: ll_da.coords[d].values for d in ll_da.dims[:-1]}

    def as_array(values: np.ndarray, label: str) -> Any:  # by obs_id, as az.loo gives them
        return _data_array(values.reshape(shape), ll_da.dims[:-1], coords, label)

    elpd = float(loo_i.sum())
    return ELPDData(
        data=[elpd, float((loo_i.size * np.var(loo_i)) ** 0.5), float(lppd - elpd), num, loo_i.size, bool(bad),
              as_array(loo_i, "loo_i"), as_array(khat, "pareto_k"), "log", good_k, "psis-variational",
              q_diag.khat_max, note],
        index=["elpd_loo", "se", "p_loo", "n_samples", "n_data_points", "warning", "loo_i", "pareto_k", "scale",
               "good_k", "method", "khat_q", "note"],
    )  # fmt: skip


def _logsumexp(a: np.ndarray) -> np.ndarray:
    return torch.logsumexp(torch.as_tensor(a), -1).numpy()


def _data_array(values: np.ndarray, dims: tuple[str, ...], coords: dict[str, Any], name: str) -> Any:
    import xarray as xr

    return xr.DataArray(values, dims=dims, coords=coords, name=name)
