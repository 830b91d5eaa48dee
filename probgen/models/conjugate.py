"""Posterior objects of the conjugate-exponential models (the fully factorized baselines).

A conjugate model declares its family once (:class:`ConjugateFamily`): the prior's
hyperparameters, how its parameters are drawn given hyperparameters (the prior's, or the
posterior's: the same family), the likelihood at a parameter value, the compound (posterior
predictive) distribution, the conjugate update, the posterior mode and the maximum-likelihood
point. How the model is fitted is then one of three posterior objects, chosen by name:

- ``"bayes"`` (:class:`ConjugateVariational`): a variational posterior of the conjugate family,
  fitted by SVI, or set exactly by the closed-form update; ``log_prob`` is the posterior
  predictive under it (exact).
- ``"map"`` (:class:`PosteriorMode`): a Delta guide at the posterior mode.
- ``"mle"`` (:class:`MaximumLikelihood`): no prior; the parameters are points in the model and
  SVI with an empty guide is maximum likelihood.

Each holds its own parameters (so the model's checkpoint holds them), issues the model's and the
guide's sample statements for the parameters, gives the predictive distribution, and sets
itself from sufficient statistics: the model files carry no branch on the estimator.

References:
    Bishop, "Pattern Recognition and Machine Learning" (2006), sections 2.1-2.3.
"""

from __future__ import annotations

from typing import Any, Protocol

import pyro
import pyro.distributions as dist
from pyro.nn import PyroModule, PyroParam
from torch import Tensor
from torch.distributions import Distribution, constraints

__all__ = ["ConjugateFamily", "ConjugateVariational", "PosteriorMode", "MaximumLikelihood", "ESTIMATORS"]


class ConjugateFamily(Protocol):
    """What a conjugate model declares; ``params`` and points are keyed by sample-site name, in
    the order the sites are drawn."""

    hyper_constraints: dict[str, constraints.Constraint]
    point_constraints: dict[str, constraints.Constraint]

    def prior_hyper(self) -> dict[str, Tensor]: ...
    def initial_hyper(self) -> dict[str, Tensor]: ...
    def initial_point(self) -> dict[str, Tensor]: ...
    def sample_params(self, hyper: dict[str, Tensor]) -> dict[str, Tensor]: ...
    def likelihood(self, params: dict[str, Tensor]) -> Distribution: ...
    def compound(self, hyper: dict[str, Tensor]) -> Distribution: ...
    def update(self, statistics: dict[str, Any]) -> dict[str, Tensor]: ...
    def mode(self, hyper: dict[str, Tensor]) -> dict[str, Tensor]: ...
    def mle(self, statistics: dict[str, Any]) -> dict[str, Tensor]: ...


class _Estimate(PyroModule):
    """Named tensors held as constrained ``PyroParam``s (hyperparameters or a point)."""

    def __init__(self, values: dict[str, Tensor], constraint: dict[str, constraints.Constraint]) -> None:
        super().__init__()
        self.names = tuple(values)
        for name, value in values.items():
            setattr(self, name, PyroParam(value.clone(), constraint[name]))

    def values(self) -> dict[str, Tensor]:
        return {name: getattr(self, name) for name in self.names}

    def assign(self, values: dict[str, Tensor]) -> None:
        for name, value in values.items():
            setattr(self, name, value.detach().clone())

    def predictive(self, closed_form: bool) -> str:
        """What the model's ``log_prob`` is the predictive of (see ``GenerativeModel.predictive``)."""
        return "plug-in"

    def params(self, model: ConjugateFamily) -> dict[str, Tensor]:
        """The parameters as the model samples them: drawn from the prior."""
        return model.sample_params(model.prior_hyper())

    def guide(self, model: ConjugateFamily) -> None:
        raise NotImplementedError

    def distribution(self, model: ConjugateFamily) -> Distribution:
        raise NotImplementedError

    def set_closed_form(self, model: ConjugateFamily, statistics: dict[str, Any]) -> None:
        raise NotImplementedError

    def start_at(self, point: dict[str, Tensor], hyper: dict[str, Tensor]) -> None:
        """Where SVI starts: near ``point`` (a point estimate) or ``hyper`` (a posterior)."""
        self.assign(point)


class ConjugateVariational(_Estimate):
    """A posterior of the conjugate family: fitted by SVI, or exact after the closed-form update."""

    def __init__(self, model: ConjugateFamily) -> None:
        super().__init__(model.initial_hyper(), model.hyper_constraints)

    def predictive(self, closed_form: bool) -> str:
        return "posterior" if closed_form else "variational"

    def guide(self, model: ConjugateFamily) -> None:
        model.sample_params(self.values())

    def distribution(self, model: ConjugateFamily) -> Distribution:
        return model.compound(self.values())

    def set_closed_form(self, model: ConjugateFamily, statistics: dict[str, Any]) -> None:
        self.assign(model.update(statistics))

    def start_at(self, point: dict[str, Tensor], hyper: dict[str, Tensor]) -> None:
        self.assign(hyper)


class PosteriorMode(_Estimate):
    """The posterior mode: a Delta guide (MAP by SVI), or the mode of the conjugate posterior."""

    def __init__(self, model: ConjugateFamily) -> None:
        super().__init__(model.initial_point(), model.point_constraints)

    def guide(self, model: ConjugateFamily) -> None:
        for name, value in self.values().items():
            pyro.sample(name, dist.Delta(value, event_dim=value.dim()))

    def distribution(self, model: ConjugateFamily) -> Distribution:
        return model.likelihood(self.values())

    def set_closed_form(self, model: ConjugateFamily, statistics: dict[str, Any]) -> None:
        self.assign(model.mode(model.update(statistics)))


class MaximumLikelihood(PosteriorMode):
    """No prior: the parameters are points of the model (SVI with an empty guide is maximum
    likelihood), or the maximum-likelihood estimate in closed form."""

    def params(self, model: ConjugateFamily) -> dict[str, Tensor]:
        return self.values()

    def guide(self, model: ConjugateFamily) -> None:
        pass

    def set_closed_form(self, model: ConjugateFamily, statistics: dict[str, Any]) -> None:
        self.assign(model.mle(statistics))


#: estimator name -> posterior object
ESTIMATORS: dict[str, type[_Estimate]] = {
    "bayes": ConjugateVariational,
    "map": PosteriorMode,
    "mle": MaximumLikelihood,
}
