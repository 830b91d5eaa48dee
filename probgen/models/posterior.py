"""Posterior objects: what a Bayesian fit produced, behind one interface.

A Bayesian model holds one of these as its ``posterior`` submodule (so its state is saved with
the model's checkpoint). Whatever produced it — the closed-form conjugate update, a MAP point,
a variational guide or NUTS draws — it answers the same questions:

- ``fit_strategy``: which registered strategy of :func:`probgen.fit` produces it;
- ``draws(model, S)``: S draws of every global site, ``{site: [S, ...]}``;
- ``joint_log_predictive(model, x)``: the predictive ``log p(x_n, y=c | data)``, ``[N, C]``;
- ``predictive`` / ``density``: what that predictive is ("posterior", "variational" or
  "plug-in"; "exact" or a Monte-Carlo "estimate");
- ``to_inference_data(model, x, y)``: an ArviZ ``InferenceData``.

The model supplies the family-specific pieces it declares in :class:`BayesianModel`.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, Protocol

import pyro
import torch
from pyro.infer.autoguide import AutoDelta, AutoGuide, AutoNormal, init_to_median
from pyro.nn import PyroModule
from torch import Tensor

__all__ = [
    "POSTERIORS",
    "BayesianModel",
    "ConjugatePosterior",
    "DrawsPosterior",
    "GuidePosterior",
    "MAPPosterior",
    "NormalPosterior",
    "Posterior",
]


class BayesianModel(Protocol):
    """What a posterior object asks of its model."""

    sites: tuple[str, ...]
    event_shape: tuple[int, ...]
    dtype: torch.dtype
    device: torch.device

    def model(self, x: Tensor, y: Tensor | None = None) -> None: ...
    def conjugate_draws(self, num_samples: int) -> dict[str, Tensor]: ...
    def conjugate_joint_log_predictive(self, x: Tensor) -> Tensor: ...
    def joint_given_params(self, params: dict[str, Tensor], x: Tensor) -> Tensor: ...
    def pointwise_log_likelihood(self, x: Tensor, y: Tensor, params: dict[str, Tensor]) -> Tensor: ...
    def replicate(self, params: dict[str, Tensor], y: Tensor) -> Tensor: ...


class Posterior(PyroModule):
    """Base of the posterior objects (see the module docstring)."""

    fit_strategy: ClassVar[str] = "svi"
    predictive: ClassVar[str] = "posterior"
    density: ClassVar[str] = "estimate"

    def __init__(self, num_samples: int = 100) -> None:
        super().__init__()
        self.num_samples = num_samples
        self.register_buffer("fitted", torch.tensor(False))

    @property
    def num_chains(self) -> int:
        return 1

    def check_fitted(self) -> None:
        if not bool(self.fitted):
            raise ValueError("this model is not fitted yet: call probgen.fit (or fit_closed_form) first")

    def guide(self, model: BayesianModel, x: Tensor, y: Tensor | None) -> Any:
        """The variational guide of SVI fits; nothing for computed posteriors."""

    def start_at(self, model: BayesianModel, values: dict[str, Tensor]) -> None:  # noqa: B027
        """Where an optimised posterior starts (data moments, say); ignored by the others."""

    def draws(self, model: BayesianModel, num_samples: int | None = None) -> dict[str, Tensor]:
        raise NotImplementedError

    def set_draws(self, draws: dict[str, Tensor], num_chains: int = 1) -> None:
        raise ValueError(f"a {type(self).__name__} does not take posterior draws")

    def joint_log_predictive(self, model: BayesianModel, x: Tensor) -> Tensor:
        """``log (1/S) sum_s p(x_n, y=c | theta_s)``: ``[N, C]``."""
        joint = model.joint_given_params(self.draws(model), x)
        return torch.logsumexp(joint, 0) - math.log(joint.shape[0])

    def to_inference_data(
        self, model: BayesianModel, x: Tensor, y: Tensor, *, num_samples: int = 200, num_predictive: int | None = None
    ) -> Any:
        """An ``arviz.InferenceData``: posterior (every global site), log_likelihood (``obs``:
        pointwise ``log p(x_n, y_n | theta_s)``), posterior_predictive (``x``) and observed_data."""
        import arviz as az

        draws = self.draws(model, num_samples)
        num_draws = next(iter(draws.values())).shape[0]
        chains = self.num_chains if num_draws % self.num_chains == 0 else 1

        def by_chain(t: Tensor) -> Any:
            return t.detach().cpu().reshape(chains, num_draws // chains, *t.shape[1:]).numpy()

        with torch.no_grad():  # [S, N], a few draws at a time: a draw's terms can be [N, C, D, D]
            log_lik = torch.cat(
                [
                    model.pointwise_log_likelihood(x, y, {k: v[start : start + 16] for k, v in draws.items()})
                    for start in range(0, num_draws, 16)
                ]
            )
            reps = min(num_draws, 100) if num_predictive is None else num_predictive
            replicate = torch.stack(
                [
                    model.replicate({k: v[s].expand(len(y), *v.shape[1:]) for k, v in draws.items()}, y)
                    for s in range(reps)
                ]
            )
        return az.from_dict(
            posterior={k: by_chain(v) for k, v in draws.items()},
            log_likelihood={"obs": by_chain(log_lik)},
            posterior_predictive={"x": replicate[None].cpu().numpy()},
            observed_data={"x": x.cpu().numpy(), "y": y.cpu().numpy()},
        )


class ConjugatePosterior(Posterior):
    """The exact posterior, computed in closed form; its predictive is exact."""

    fit_strategy = "closed_form"
    density = "exact"

    def draws(self, model: BayesianModel, num_samples: int | None = None) -> dict[str, Tensor]:
        self.check_fitted()
        return model.conjugate_draws(num_samples or self.num_samples)

    def joint_log_predictive(self, model: BayesianModel, x: Tensor) -> Tensor:
        self.check_fitted()
        return model.conjugate_joint_log_predictive(x)


class DrawsPosterior(Posterior):
    """Draws from a sampler (NUTS); the predictive averages over them (an estimate)."""

    fit_strategy = "nuts"

    def __init__(self, num_samples: int = 100) -> None:
        super().__init__(num_samples)
        self.register_buffer("chains", torch.tensor(1))
        self.site_names: list[str] = []

    @property
    def num_chains(self) -> int:
        return int(self.chains)

    def set_draws(self, draws: dict[str, Tensor], num_chains: int = 1) -> None:
        """Keep these draws (leading dimension: draws, chains one after the other)."""
        for name, value in draws.items():
            self.register_buffer(f"draw_{name}", value.detach().clone())
        self.site_names = list(draws)
        self.chains.fill_(int(num_chains))
        self.fitted.fill_(True)

    def draws(self, model: BayesianModel, num_samples: int | None = None) -> dict[str, Tensor]:
        self.check_fitted()
        return {name: getattr(self, f"draw_{name}") for name in self.site_names}

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        for key, value in state_dict.items():
            if key.startswith(prefix + "draw_"):
                name = key[len(prefix) + len("draw_") :]
                self.register_buffer(f"draw_{name}", torch.empty_like(value))
                if name not in self.site_names:
                    self.site_names.append(name)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


class GuidePosterior(Posterior):
    """A Pyro AutoGuide fitted by SVI; fresh draws follow the guide as it trains."""

    guide_class: ClassVar[type[AutoGuide]] = AutoNormal
    guide_options: ClassVar[dict[str, Any]] = {}

    def __init__(self, num_samples: int = 100) -> None:
        super().__init__(num_samples)
        self.autoguide: AutoGuide | None = None

    def start_at(self, model: BayesianModel, values: dict[str, Tensor]) -> None:
        from pyro.infer.autoguide import init_to_value

        if self.autoguide is None:
            self.autoguide = self.guide_class(
                model.model, init_loc_fn=init_to_value(values=values, fallback=init_to_median), **self.guide_options
            )

    def guide(self, model: BayesianModel, x: Tensor, y: Tensor | None) -> Any:
        if self.autoguide is None:
            self.autoguide = self.guide_class(model.model, init_loc_fn=init_to_median, **self.guide_options)
        self.fitted.fill_(True)
        return self.autoguide(x, y)

    def draws(self, model: BayesianModel, num_samples: int | None = None) -> dict[str, Tensor]:
        if self.autoguide is None:
            self.check_fitted()
        x = torch.zeros(1, *model.event_shape, dtype=model.dtype, device=model.device)
        y = torch.zeros(1, dtype=torch.long, device=model.device)
        count = self.num_draws(num_samples)
        with torch.no_grad(), pyro.poutine.block():
            samples = [self.autoguide(x, y) for _ in range(count)]
        return {k: torch.stack([s[k] for s in samples]) for k in samples[0]}

    def num_draws(self, num_samples: int | None) -> int:
        return num_samples or self.num_samples


class NormalPosterior(GuidePosterior):
    """Mean-field Normal in the unconstrained space (``AutoNormal``): a variational posterior
    whose predictive is a Monte-Carlo estimate."""

    guide_options = {"init_scale": 0.05}
    predictive = "variational"


class MAPPosterior(GuidePosterior):
    """The posterior mode (``AutoDelta``); its predictive plugs the point in (exact for it)."""

    guide_class = AutoDelta
    predictive = "plug-in"
    density = "exact"

    def num_draws(self, num_samples: int | None) -> int:
        return 1


#: method name -> posterior class, as the models' ``method=`` argument takes them
POSTERIORS: dict[str, type[Posterior]] = {
    "conjugate": ConjugatePosterior,
    "map": MAPPosterior,
    "vi": NormalPosterior,
    "nuts": DrawsPosterior,
}
