"""Training objectives: each is a function ``loss(model, x, y) -> scalar`` to minimise (nats)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pyro.infer
import torch
from pyro.distributions.util import scale_and_mask
from pyro.poutine.messenger import Messenger
from pyro.poutine.subsample_messenger import _Subsample
from torch import Tensor
from torch.distributions import kl_divergence

from probgen._checks import check_int

__all__ = ["make_objective", "OBJECTIVES"]

Objective = Callable[[Any, Tensor, "Tensor | None"], Tensor]

#: the training objectives ``fit(objective=...)`` takes by name, each a factory of the loss
OBJECTIVES = {
    "elbo": "Monte-Carlo ELBO (pyro.infer.Trace_ELBO); maximum likelihood without latents",
    "analytic_kl": "ELBO with analytic KL where Pyro knows it (pyro.infer.TraceMeanField_ELBO)",
    "iwae": "importance-weighted bound with num_samples samples per example (local latents)",
}


def _pyro_objective(elbo: pyro.infer.ELBO) -> Objective:
    loss = elbo.differentiable_loss

    def objective(model: Any, x: Tensor, y: Tensor | None) -> Tensor:
        args = (x,) if y is None else (x, y)
        return loss(model.model, model.guide, *args)

    return objective


class _SiteRecorder(Messenger):
    """Keeps every sample site's message (no copies, no graph), optionally replaying the latent
    values of an earlier run: what ``trace`` + ``replay`` do, in one light handler."""

    def __init__(self, replay: dict[str, dict] | None = None) -> None:
        super().__init__()
        self.sites: dict[str, dict] = {}
        self.replay = replay

    def _pyro_sample(self, msg: dict) -> None:
        if self.replay is not None and not msg["is_observed"] and msg["name"] in self.replay:
            msg["value"] = self.replay[msg["name"]]["value"]
            msg["done"] = True

    def _pyro_post_sample(self, msg: dict) -> None:
        if not isinstance(msg["fn"], _Subsample):  # a plate's index draw, not a random variable
            self.sites[msg["name"]] = msg


def _kl(q: Any, p: Any) -> Tensor | None:
    try:
        return kl_divergence(q, p)
    except NotImplementedError:
        return None


def _scaled_log_prob(site: dict) -> Tensor:
    """A site's log-probability, scaled by its plates and summed, in float32 at least (under
    bf16 autocast the networks' outputs are bfloat16, their log-densities are summed wider)."""
    log_prob = site["fn"].log_prob(site["value"])
    log_prob = log_prob.to(torch.promote_types(log_prob.dtype, torch.float32))
    return scale_and_mask(log_prob, site["scale"], site["mask"]).sum()


def _reparameterized_elbo(fallback: Objective, analytic_kl: bool = False) -> Objective:
    """The single-sample Monte-Carlo ELBO of ``Trace_ELBO``: one guide run, one model run with
    the guide's latents replayed, ``sum log p - sum log q`` over every site of each (scaled by
    its plates, so minibatches are scaled by N/B). It skips what only non-reparameterized sites
    need: the first call checks that every latent site of the guide has ``rsample``, and if one
    has not (a discrete latent, say) every call uses ``fallback`` (Pyro's ``Trace_ELBO``).
    """
    state: dict[str, bool] = {}

    def objective(model: Any, x: Tensor, y: Tensor | None) -> Tensor:
        if state.get("fallback"):
            return fallback(model, x, y)
        args = (x,) if y is None else (x, y)
        first = "fallback" not in state
        rng = torch.get_rng_state() if first else None
        with _SiteRecorder() as guide:
            model.guide(*args)
        if first:
            state["fallback"] = any(
                not site["is_observed"] and not site["fn"].has_rsample for site in guide.sites.values()
            )
            if state["fallback"]:  # Pyro draws from the state this call started at
                torch.set_rng_state(rng)
                return fallback(model, x, y)
        with _SiteRecorder(guide.sites) as joint:
            model.model(*args)
        elbo, analytic = 0.0, set()
        for name, site in joint.sites.items():
            q_site = None if site["is_observed"] else guide.sites.get(name)
            kl = _kl(q_site["fn"], site["fn"]) if analytic_kl and q_site is not None else None
            if kl is not None:  # E_q[log p - log q] = -KL(q || p), in closed form
                elbo = elbo - scale_and_mask(kl, q_site["scale"], q_site["mask"]).sum()
                analytic.add(name)
                continue
            elbo = elbo + _scaled_log_prob(site)
        # every guide site counts in log q, auxiliary ones too (an AutoNormal's "_unconstrained"
        # draws carry its entropy; its Delta sites only the Jacobian)
        for name, q_site in guide.sites.items():
            if not q_site["is_observed"] and name not in analytic:
                elbo = elbo - _scaled_log_prob(q_site)
        return -elbo

    return objective


def make_objective(
    objective: str | pyro.infer.ELBO | Objective,
    num_samples: int = 1,
    max_plate_nesting: int | None = None,
    vectorize: bool = True,
) -> Objective:
    """Build a loss function from a name in :data:`OBJECTIVES`, a Pyro ELBO, or a callable.

    Example:
        >>> import probgen as pg
        >>> x = pg.load_dataset("digits-binary").x[:10]
        >>> model = pg.models.IndependentBernoulli(64, method="mle")  # no latents: the ELBO is log p(x)
        >>> loss = make_objective("elbo")
        >>> torch.allclose(loss(model, x, None), -model.log_prob(x).sum())
        True
        >>> make_objective("kl")
        Traceback (most recent call last):
        ...
        ValueError: unknown objective 'kl'; expected one of ['analytic_kl', 'elbo', 'iwae']
    """
    check_int("num_samples", num_samples)
    if isinstance(objective, pyro.infer.ELBO):
        return _pyro_objective(objective)
    if callable(objective):
        return objective
    # particles are drawn in one vectorized pass (an extra plate on the left)
    options: dict[str, Any] = {
        "num_particles": num_samples,  # Pyro's name
        "vectorize_particles": vectorize and num_samples > 1,
    }
    if max_plate_nesting is not None:
        options["max_plate_nesting"] = max_plate_nesting
    if objective == "elbo":
        trace_elbo = _pyro_objective(pyro.infer.Trace_ELBO(**options))
        return _reparameterized_elbo(trace_elbo) if num_samples == 1 else trace_elbo
    if objective == "iwae":
        from probgen.inference.importance import iwae_objective

        return iwae_objective(num_samples)
    if objective == "analytic_kl":
        mean_field = _pyro_objective(pyro.infer.TraceMeanField_ELBO(**options))
        return _reparameterized_elbo(mean_field, analytic_kl=True) if num_samples == 1 else mean_field
    raise ValueError(f"unknown objective {objective!r}; expected one of {sorted(OBJECTIVES)}")
