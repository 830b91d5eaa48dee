"""Importance-weighted bounds for models with local latent variables: IWAE and ELBO.

For one example, ``log w_k = log p(x, z_k) - log q(z_k | x)`` with ``z_k ~ q(z | x)``;
``IWAE_K = log (1/K) sum_k w_k`` is a lower bound on ``log p(x)`` that tightens as K grows,
and ``IWAE_1`` is the ELBO. The weights are computed per example inside the data plate — not
with ``RenyiELBO(alpha=0)``, which is not a per-example IWAE for local latents (pyro#3104) —
in chunks of particles, so memory stays bounded for any K.

References:
    Burda, Grosse & Salakhutdinov, "Importance Weighted Autoencoders" (2016), arXiv:1509.00519.
"""

from __future__ import annotations

import math
from typing import Any

import pyro
import pyro.poutine as poutine
import torch
from pyro.poutine.subsample_messenger import _Subsample
from torch import Tensor

from probgen._checks import check_int
from probgen.models.base import num_data

__all__ = ["log_importance_weights", "iwae_bound", "iwae_objective", "random_sites", "trace_log_density"]


def log_importance_weights(model: Any, x: Tensor, y: Tensor | None, num_samples: int) -> Tensor:
    """``log p(x_b, z_kb) - log q(z_kb | x_b)`` for K particles per example: ``[K, B]``.

    Site log-probabilities are taken unscaled, so neither minibatch scaling nor a beta-VAE's KL
    weight enters the weights.
    """
    check_int("number of importance samples", num_samples)
    args = (x,) if y is None else (x, y)
    dim = -(model.max_plate_nesting + 1)
    with pyro.plate("particles", num_samples, dim=dim):
        guide_trace = poutine.trace(model.guide).get_trace(*args)
        model_trace = poutine.trace(poutine.replay(model.model, trace=guide_trace)).get_trace(*args)
    shape = (num_samples, x.shape[0])
    log_joint = trace_log_density(model_trace, x, shape)
    return log_joint - trace_log_density(guide_trace, x, shape, latent_only=True)


def random_sites(trace: Any, latent_only: bool = False) -> list[dict]:
    """The trace's random-variable sites (not plates' index draws), latent ones only if asked."""
    return [
        site
        for site in trace.nodes.values()
        if site["type"] == "sample"
        and not isinstance(site["fn"], _Subsample)
        and not (latent_only and site["is_observed"])
    ]


def trace_log_density(trace: Any, like: Tensor, shape: tuple[int, ...], latent_only: bool = False) -> Tensor:
    """Sum of the sites' unscaled log-probabilities, broadcast to ``shape`` (particles, batch),
    on ``like``'s device and dtype."""
    total = like.new_zeros(shape)
    for site in random_sites(trace, latent_only):
        total = total + site["fn"].log_prob(site["value"])
    return total


def iwae_bound(
    model: Any,
    x: Tensor,
    y: Tensor | None,
    num_samples: int,
    *,
    max_particles_per_pass: int = 1000,
    mean: bool = False,
) -> Tensor:
    """Per-example ``IWAE_K`` (or, with ``mean=True``, the K-sample ELBO estimate): ``[B]``.

    Particles are drawn ``max_particles_per_pass`` at a time and combined by a running
    logsumexp, so memory does not grow with K.
    """
    check_int("number of importance samples", num_samples)
    total = None
    remaining = num_samples
    while remaining > 0:
        k = min(remaining, max_particles_per_pass)
        log_w = log_importance_weights(model, x, y, k)
        part = log_w.sum(0) if mean else torch.logsumexp(log_w, 0)
        if total is None:
            total = part
        else:
            total = total + part if mean else torch.logaddexp(total, part)
        remaining -= k
    return total / num_samples if mean else total - math.log(num_samples)


def iwae_objective(num_samples: int):
    """The IWAE training loss with K particles: ``-(N/B) sum_b IWAE_K(x_b)``."""
    check_int("num_samples", num_samples)

    def objective(model: Any, x: Tensor, y: Tensor | None) -> Tensor:
        bound = torch.logsumexp(log_importance_weights(model, x, y, num_samples), 0) - math.log(num_samples)
        size = num_data(model) or x.shape[0]
        return -bound.sum() * (size / x.shape[0])

    return objective
