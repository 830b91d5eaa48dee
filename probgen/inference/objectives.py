"""Training objectives: each is a function ``loss(model, x, y) -> scalar`` to minimise (nats)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pyro.infer
from torch import Tensor

__all__ = ["make_objective", "OBJECTIVES"]

Objective = Callable[[Any, Tensor, "Tensor | None"], Tensor]

OBJECTIVES = {
    "elbo": "Monte-Carlo ELBO (pyro.infer.Trace_ELBO); maximum likelihood without latents",
    "analytic_kl": "ELBO with analytic KL where Pyro knows it (pyro.infer.TraceMeanField_ELBO)",
}


def _pyro_objective(elbo: pyro.infer.ELBO) -> Objective:
    loss = elbo.differentiable_loss

    def objective(model: Any, x: Tensor, y: Tensor | None) -> Tensor:
        args = (x,) if y is None else (x, y)
        return loss(model.model, model.guide, *args)

    return objective


def make_objective(
    objective: str | pyro.infer.ELBO | Objective,
    num_particles: int = 1,
    max_plate_nesting: int | None = None,
    vectorize: bool = True,
) -> Objective:
    """Build a loss function from a name in :data:`OBJECTIVES`, a Pyro ELBO, or a callable."""
    if isinstance(num_particles, bool) or not isinstance(num_particles, int) or num_particles < 1:
        raise ValueError(f"num_particles must be a positive integer, got {num_particles!r}")
    if isinstance(objective, pyro.infer.ELBO):
        return _pyro_objective(objective)
    if callable(objective):
        return objective
    # particles are drawn in one vectorized pass (an extra plate on the left)
    options: dict[str, Any] = {
        "num_particles": num_particles,
        "vectorize_particles": vectorize and num_particles > 1,
    }
    if max_plate_nesting is not None:
        options["max_plate_nesting"] = max_plate_nesting
    if objective == "elbo":
        return _pyro_objective(pyro.infer.Trace_ELBO(**options))
    if objective == "analytic_kl":
        return _pyro_objective(pyro.infer.TraceMeanField_ELBO(**options))
    raise ValueError(f"unknown objective {objective!r}; expected one of {sorted(OBJECTIVES)}")
