"""NUTS for small Bayesian models, and ArviZ conversion.

``run_nuts`` samples a model's global latent sites with ``pyro.infer.NUTS`` and hands the
draws to the model (``set_posterior_samples``); ``to_inference_data`` turns a fitted model's
posterior into an ``arviz.InferenceData`` with posterior, pointwise log_likelihood,
posterior_predictive and observed_data groups, so ``az.summary``, ``az.loo`` and
``az.compare`` work directly.

References:
    Hoffman & Gelman, "The No-U-Turn Sampler" (2014), arXiv:1111.4246.
    Vehtari, Gelman & Gabry, "Practical Bayesian model evaluation using leave-one-out
    cross-validation and WAIC" (2017), arXiv:1507.04544.
"""

from __future__ import annotations

from typing import Any

import pyro
import torch
from pyro.infer import MCMC, NUTS

from probgen._checks import check_int
from probgen.inference._data import as_xy

__all__ = ["run_nuts", "to_inference_data"]


def run_nuts(
    model: Any,
    data: Any,
    *,
    num_samples: int = 500,
    warmup_steps: int = 300,
    num_chains: int = 1,
    target_accept_prob: float = 0.8,
    max_tree_depth: int = 8,
    seed: int | None = 0,
    progress: bool = True,
) -> MCMC:
    """Sample the posterior of ``model``'s global sites with NUTS; store the draws in the model.

    Args:
        model: a model with ``set_posterior_samples`` (e.g. a generative classifier).
        data: a labelled Dataset or ``(x, y)``.
        num_samples, warmup_steps, num_chains: per chain.

    Returns:
        The ``pyro.infer.MCMC`` object (``.summary()``, ``.diagnostics()``).
    """
    check_int("num_samples", num_samples)
    check_int("warmup_steps", warmup_steps, minimum=0)
    check_int("num_chains", num_chains)
    if not hasattr(model, "set_posterior_samples"):
        raise TypeError(f"{type(model).__name__} cannot take posterior samples from NUTS")
    x, y = as_xy(data)
    x = model.validate(x)
    if hasattr(model, "check_labels"):
        y = model.check_labels(y, len(x))
    if seed is not None:
        pyro.set_rng_seed(seed)
    kernel = NUTS(
        model.model,
        target_accept_prob=target_accept_prob,
        max_tree_depth=max_tree_depth,
        jit_compile=False,
    )
    mcmc = MCMC(
        kernel,
        num_samples=num_samples,
        warmup_steps=warmup_steps,
        num_chains=num_chains,
        disable_progbar=not progress,
        mp_context="spawn" if num_chains > 1 else None,
    )
    with model.scaled_to(len(x)):
        mcmc.run(x, y)
    model.set_posterior_samples(mcmc.get_samples())
    model._chains = num_chains
    return mcmc


def to_inference_data(model: Any, data: Any, *, num_samples: int = 200, num_predictive: int | None = None):
    """An ``arviz.InferenceData`` of a fitted model's posterior on ``data``.

    Groups: ``posterior`` (every global site), ``log_likelihood`` (``obs``: pointwise
    ``log p(x_n, y_n | theta_s)``), ``posterior_predictive`` (``x``: one replicate of the
    data's features per draw) and ``observed_data``.

    Args:
        model: a fitted model with ``posterior_draws`` and ``pointwise_log_likelihood``.
        data: the labelled data the log-likelihood is computed on.
        num_samples: draws to take when the posterior is in closed form.
        num_predictive: posterior-predictive replicates (default: one per draw, at most 100).
    """
    import arviz as az

    x, y = as_xy(data)
    draws = model.posterior_draws(num_samples)
    num_draws = next(iter(draws.values())).shape[0]
    chains = getattr(model, "_chains", 1) if model.method == "nuts" else 1
    if num_draws % chains:
        chains = 1

    def by_chain(t: torch.Tensor):
        return t.detach().cpu().reshape(chains, num_draws // chains, *t.shape[1:]).numpy()

    with torch.no_grad():
        log_lik = model.pointwise_log_likelihood(x, y, draws)  # [S, N]
        reps = min(num_draws, 100) if num_predictive is None else num_predictive
        replicate = torch.stack(
            [model._draw_x({k: v[s].expand(len(y), *v.shape[1:]) for k, v in draws.items()}, y) for s in range(reps)]
        )
    return az.from_dict(
        posterior={k: by_chain(v) for k, v in draws.items()},
        log_likelihood={"obs": by_chain(log_lik)},
        posterior_predictive={"x": replicate[None].cpu().numpy()},
        observed_data={"x": x.cpu().numpy(), "y": y.cpu().numpy()},
    )
