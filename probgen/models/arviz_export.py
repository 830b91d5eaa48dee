"""Posterior draws as an ArviZ ``InferenceData``: the steps of ``Posterior.to_inference_data``.

:meth:`probgen.models.posterior.Posterior.to_inference_data` (which documents the groups,
chains and coordinates) picks the draws and their chains; the functions here lay them out by
chain, evaluate the pointwise log-likelihood and the posterior-predictive replicates, name the
dimensions and check the coordinates, so that ArviZ's own errors (deep inside xarray) are never
what a user sees. They read the model only through the ``BayesianModel`` protocol, and this
module imports nothing of ``posterior.py`` at run time (which imports it), so there is no cycle.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

from probgen._checks import check_int

if TYPE_CHECKING:  # type hints only: posterior.py imports this module
    from probgen.models.posterior import BayesianModel

__all__: list[str] = []


def _arviz_groups(
    model: BayesianModel,
    x: Tensor,
    y: Tensor,
    draws: dict[str, Tensor],
    chains: int,
    log_likelihood: bool,
    num_predictive: int | None,
) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """The posterior, log_likelihood and posterior_predictive groups (arrays by chain) and their dims."""
    num_draws = next(iter(draws.values())).shape[0]
    per_chain = num_draws // chains

    def by_chain(t: Tensor) -> Any:  # draws of chain c are rows c * per_chain ... (c + 1) * per_chain - 1
        return t.detach().cpu().reshape(chains, per_chain, *t.shape[1:]).numpy()

    variables, dims = model.arviz_variables(draws)
    groups: dict[str, Any] = {"posterior": {k: by_chain(v) for k, v in variables.items()}}
    dims |= {"obs": ["obs_id"], "x": ["obs_id", "feature"], "y": ["obs_id"]}
    with torch.no_grad():
        if log_likelihood:
            groups["log_likelihood"] = {"obs": by_chain(_pointwise_log_likelihood(model, x, y, draws))}
        reps = min(num_draws, 100) if num_predictive is None else num_predictive
        check_int("num_predictive", reps, minimum=0)
        if reps:
            groups["posterior_predictive"] = {"x": _replicates(model, x, y, draws, chains, reps)}
    return groups, dims


def _pointwise_log_likelihood(model: BayesianModel, x: Tensor, y: Tensor, draws: dict[str, Tensor]) -> Tensor:
    """``log p(x_n, y_n | theta_s)``, ``[S, N]``, a few draws at a time: a draw's terms can be ``[N, C, D, D]``."""
    num_draws = next(iter(draws.values())).shape[0]
    return torch.cat(
        [
            model.pointwise_log_likelihood(x, y, {k: v[start : start + 16] for k, v in draws.items()})
            for start in range(0, num_draws, 16)
        ]
    )


def _replicates(model: BayesianModel, x: Tensor, y: Tensor, draws: dict[str, Tensor], chains: int, reps: int) -> Any:
    """One replicate of the data for each of the first ``ceil(reps / chains)`` draws of every chain
    (the same (chain, draw) as the posterior group): ``[chains, draws, N, D]``."""
    per_chain = next(iter(draws.values())).shape[0] // chains
    first = min(-(-reps // chains), per_chain)
    rows = [c * per_chain + d for c in range(chains) for d in range(first)]
    replicate = torch.stack(
        [model.replicate({k: v[s].expand(len(y), *v.shape[1:]) for k, v in draws.items()}, y) for s in rows]
    )
    return replicate.reshape(chains, first, *x.reshape(len(x), -1).shape).cpu().numpy()


def _inference_data(
    model: BayesianModel,
    x: Tensor,
    y: Tensor,
    groups: dict[str, Any],
    dims: dict[str, list[str]],
    coords: dict[str, Any] | None,
    attrs: dict[str, str],
) -> Any:
    """``az.from_dict`` of the groups, with the observed data, the checked coordinates and ``attrs``
    as the posterior group's attributes."""
    import arviz as az

    x_flat = x.reshape(len(x), -1)
    all_coords = _arviz_coords(model.arviz_coords(), coords, dims, len(x))
    _check_coords(all_coords, {**groups["posterior"], "x": x_flat.cpu().numpy()}, dims)
    return az.from_dict(
        **groups,
        observed_data={"x": x_flat.cpu().numpy(), "y": y.cpu().numpy()},
        coords=all_coords,
        dims=dims,
        posterior_attrs=attrs,
    )


def _arviz_coords(
    defaults: dict[str, Any], coords: dict[str, Any] | None, dims: dict[str, list[str]], n: int
) -> dict[str, Any]:
    """The coordinates of the dimensions in use: the model's defaults, ``obs_id``, then ``coords``."""
    coords = dict(coords or {})
    if "feature" in coords:  # the columns of a feature-by-feature matrix are the same features
        coords.setdefault("feature_bis", coords["feature"])
    all_coords = defaults | {"obs_id": np.arange(n)} | coords
    used = {dim for names in dims.values() for dim in names}
    return {dim: np.asarray(values) for dim, values in all_coords.items() if dim in used}


def _check_coords(coords: dict[str, Any], values: dict[str, Any], dims: dict[str, list[str]]) -> None:
    """Coordinates of the right length, with a message naming them (ArviZ's is a deep xarray error)."""
    for name, value in values.items():
        event = value.shape[value.ndim - len(dims[name]) :]
        for dim, size in zip(dims[name], event, strict=True):
            if dim in coords and len(coords[dim]) != size:
                raise ValueError(
                    f"coords[{dim!r}] has {len(coords[dim])} values, but {name!r} has {size} along {dim!r}"
                )
