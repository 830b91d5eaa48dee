"""Fully factorized models: every dimension independent, one distribution per dimension.

The "independence assumption" baseline of generative modelling: ``p(x) = prod_d p(x_d)`` with
D (Bernoulli), D(k-1) (Categorical) or 2D (Gaussian) parameters. Each parameter has a
conjugate prior, so the model can be fitted three ways, chosen by ``estimator``:

- ``"bayes"``: SVI fits a variational posterior of the conjugate family (Beta, Dirichlet,
  Normal-Gamma); :meth:`log_prob` is the exact posterior predictive under it.
- ``"map"``: a Delta guide, the posterior mode.
- ``"mle"``: no prior, the parameters are point estimates in the model; SVI with an empty guide
  is maximum likelihood.

:meth:`~probgen.models.GenerativeModel.fit_closed_form` (or ``fit(..., strategy="closed_form")``,
streaming over batches) sets the exact posterior (or mode, or MLE) in closed form.

References:
    Bishop, "Pattern Recognition and Machine Learning" (2006), sections 2.1-2.3.
    Murphy, "Conjugate Bayesian analysis of the Gaussian distribution" (2007).
"""

from __future__ import annotations

from typing import Any

import pyro
import pyro.distributions as dist
import torch
from pyro.nn import PyroParam, pyro_method
from torch import Tensor
from torch.distributions import constraints

from probgen.models.base import GenerativeModel
from probgen.models.moments import Moments
from probgen.models.registry import register

__all__ = [
    "Factorized",
    "IndependentBernoulli",
    "IndependentCategorical",
    "IndependentGaussian",
    "independent",
]

ESTIMATORS = ("bayes", "map", "mle")
FACTORIZED_BUDGET = {"epochs": 60, "batch_size": 100, "lr": 0.05}


class Factorized(GenerativeModel):
    """Shared machinery of the fully factorized models (see the module docstring)."""

    def __init__(self, event_shape, support: str, *, estimator: str = "bayes") -> None:
        super().__init__(event_shape, support)
        if estimator not in ESTIMATORS:
            raise ValueError(f"unknown estimator {estimator!r}; expected one of {ESTIMATORS}")
        self.estimator = estimator
        self.register_buffer("closed_form", torch.tensor(False))

    @property
    def predictive(self) -> str:
        """ "plug-in" for MAP/MLE; for "bayes", "posterior" after a closed-form fit (the exact
        posterior predictive), "variational" after SVI (the predictive under q)."""
        if self.estimator != "bayes":
            return "plug-in"
        return "posterior" if bool(self.closed_form) else "variational"

    def after_fit(self, x: Tensor, y: Tensor | None) -> None:
        self.closed_form = torch.tensor(False)

    # subclasses: _sample_params (model side), _guide_params, _likelihood, predictive, posterior
    @pyro_method
    def model(self, x: Tensor, y: Tensor | None = None) -> None:
        params = self._sample_params()
        with self.data_plate(x):
            pyro.sample("x", self._likelihood(*params), obs=self._observed(x))

    @pyro_method
    def guide(self, x: Tensor, y: Tensor | None = None) -> None:
        if self.estimator != "mle":
            self._guide_params()

    def _observed(self, x: Tensor) -> Tensor:
        return x

    def log_prob(self, x: Tensor) -> Tensor:
        """Posterior predictive log p(x | training data) per example (exact), in nats."""
        return self.predictive_distribution().log_prob(self._observed(self.validate(x)))

    def sample(self, n: int) -> Tensor:
        """Draws from the (posterior) predictive distribution, shape ``(n, *event_shape)``."""
        with torch.no_grad():
            draws = self.predictive_distribution().sample((self._check_n(n),))
        return draws.to(self.dtype).reshape(n, *self.event_shape)

    def predictive_distribution(self) -> dist.TorchDistribution:
        """The fitted (posterior predictive) distribution of one example."""
        raise NotImplementedError

    def closed_form_statistics(self, x: Tensor, y: Tensor | None = None) -> dict[str, Any]:
        return self._statistics(self._observed(x).reshape(x.shape[0], -1))

    def set_closed_form(self, statistics: dict[str, Any]) -> None:
        """Set the exact posterior (bayes), posterior mode (map) or MLE (mle) from the statistics."""
        self._set_closed_form(statistics)
        self.closed_form = torch.tensor(True)

    def _config_kwargs(self) -> dict[str, Any]:
        return {"estimator": self.estimator}


@register(
    "independent-bernoulli",
    description="independent Bernoulli per dimension, Beta priors",
    fit_defaults=FACTORIZED_BUDGET,
)
class IndependentBernoulli(Factorized):
    """Independent Bernoulli pixels with Beta(a0, b0) priors.

    Example:
        >>> import probgen as pg
        >>> data = pg.load_dataset("digits-binary")
        >>> m = IndependentBernoulli(64).fit_closed_form(data.x)
        >>> m.log_prob(data.x).shape
        torch.Size([1000])
    """

    supports = ("binary",)

    def __init__(
        self,
        event_shape,
        support: str = "binary",
        *,
        estimator: str = "bayes",
        prior_a: float = 1.0,
        prior_b: float = 1.0,
    ) -> None:
        super().__init__(event_shape, support, estimator=estimator)
        if prior_a <= 0 or prior_b <= 0:
            raise ValueError(f"Beta prior needs a, b > 0, got a={prior_a}, b={prior_b}")
        self.prior_a, self.prior_b = float(prior_a), float(prior_b)
        d = self.num_dims
        if estimator == "bayes":
            self.q_a = PyroParam(torch.full((d,), self.prior_a), constraints.positive)
            self.q_b = PyroParam(torch.full((d,), self.prior_b), constraints.positive)
        else:  # map: Delta guide location; mle: the parameter itself
            self.probs = PyroParam(torch.full((d,), 0.5), constraints.unit_interval)

    def _sample_params(self) -> tuple[Tensor]:
        if self.estimator == "mle":
            return (self.probs,)
        prior = dist.Beta(self.constant(self.prior_a), self.constant(self.prior_b))
        return (pyro.sample("theta", prior.expand([self.num_dims]).to_event(1)),)

    def _guide_params(self) -> None:
        q = dist.Delta(self.probs) if self.estimator == "map" else dist.Beta(self.q_a, self.q_b)
        pyro.sample("theta", q.to_event(1))

    def _likelihood(self, probs: Tensor) -> dist.TorchDistribution:
        return dist.Bernoulli(probs=probs).to_event(1)

    def predictive_distribution(self) -> dist.TorchDistribution:
        probs = self.q_a / (self.q_a + self.q_b) if self.estimator == "bayes" else self.probs
        return dist.Bernoulli(probs=probs).to_event(1)

    def _statistics(self, x: Tensor) -> dict[str, Any]:
        return {"count": torch.tensor(x.shape[0]), "ones": x.sum(0)}

    def _set_closed_form(self, statistics: dict[str, Any]) -> None:
        n, ones = statistics["count"].item(), statistics["ones"]
        a, b = self.prior_a + ones, self.prior_b + n - ones
        if self.estimator == "bayes":
            self.q_a, self.q_b = a, b
            return
        probs = (a - 1) / (a + b - 2) if self.estimator == "map" else ones / n
        eps = torch.finfo(self.dtype).eps
        self.probs = probs.clamp(eps, 1 - eps)

    def _config_kwargs(self) -> dict[str, Any]:
        return {**super()._config_kwargs(), "prior_a": self.prior_a, "prior_b": self.prior_b}


@register(
    "independent-categorical",
    description="independent categorical per dimension, Dirichlet priors",
    fit_defaults=FACTORIZED_BUDGET,
)
class IndependentCategorical(Factorized):
    """Independent categorical pixels over ``k`` levels with symmetric Dirichlet(alpha) priors."""

    supports = ("discrete", "binary")

    def __init__(self, event_shape, support: str, *, estimator: str = "bayes", prior_alpha: float = 1.0) -> None:
        super().__init__(event_shape, support, estimator=estimator)
        if prior_alpha <= 0:
            raise ValueError(f"Dirichlet prior needs alpha > 0, got {prior_alpha}")
        self.prior_alpha = float(prior_alpha)
        shape = (self.num_dims, self.num_levels)
        if estimator == "bayes":
            self.q_alpha = PyroParam(torch.full(shape, self.prior_alpha), constraints.positive)
        else:
            self.probs = PyroParam(torch.full(shape, 1.0 / shape[1]), constraints.simplex)

    def _observed(self, x: Tensor) -> Tensor:
        return x.reshape(x.shape[0], -1).long()

    def _sample_params(self) -> tuple[Tensor]:
        if self.estimator == "mle":
            return (self.probs,)
        alpha = self.constant(self.prior_alpha).expand(self.num_dims, self.num_levels)
        return (pyro.sample("theta", dist.Dirichlet(alpha).to_event(1)),)

    def _guide_params(self) -> None:
        if self.estimator == "map":
            q = dist.Delta(self.probs, event_dim=1)
        else:
            q = dist.Dirichlet(self.q_alpha)
        pyro.sample("theta", q.to_event(1))

    def _likelihood(self, probs: Tensor) -> dist.TorchDistribution:
        return dist.Categorical(probs=probs).to_event(1)

    def predictive_distribution(self) -> dist.TorchDistribution:
        if self.estimator == "bayes":
            probs = self.q_alpha / self.q_alpha.sum(-1, keepdim=True)
        else:
            probs = self.probs
        return dist.Categorical(probs=probs).to_event(1)

    def sample(self, n: int) -> Tensor:
        return super().sample(n).reshape(n, *self.event_shape)

    def _statistics(self, x: Tensor) -> dict[str, Any]:
        return {"counts": torch.nn.functional.one_hot(x, self.num_levels).sum(0).to(self.dtype)}

    def _set_closed_form(self, statistics: dict[str, Any]) -> None:
        counts = statistics["counts"]
        alpha = self.prior_alpha + counts
        if self.estimator == "bayes":
            self.q_alpha = alpha
            return
        probs = (alpha - 1).clamp(min=0) if self.estimator == "map" else counts
        probs = probs.clamp(min=torch.finfo(self.dtype).eps)
        self.probs = probs / probs.sum(-1, keepdim=True)

    def _config_kwargs(self) -> dict[str, Any]:
        return {**super()._config_kwargs(), "prior_alpha": self.prior_alpha}


@register(
    "independent-gaussian",
    description="independent Gaussian per dimension, Normal-Gamma priors",
    fit_defaults=FACTORIZED_BUDGET,
)
class IndependentGaussian(Factorized):
    """Independent Gaussians with Normal-Gamma priors on (mean, precision) per dimension.

    Prior: ``tau ~ Gamma(a0, b0)``, ``mu | tau ~ Normal(m0, 1 / sqrt(k0 tau))``; the variational
    posterior has the same (structured) form, so the posterior predictive is a Student-t.
    """

    supports = ("real",)

    def __init__(
        self,
        event_shape,
        support: str = "real",
        *,
        estimator: str = "bayes",
        prior_loc: float = 0.0,
        prior_kappa: float = 0.01,
        prior_a: float = 1.0,
        prior_b: float = 1.0,
    ) -> None:
        super().__init__(event_shape, support, estimator=estimator)
        if min(prior_kappa, prior_a, prior_b) <= 0:
            raise ValueError(f"Normal-Gamma prior needs kappa, a, b > 0, got {prior_kappa}, {prior_a}, {prior_b}")
        self.prior_loc, self.prior_kappa = float(prior_loc), float(prior_kappa)
        self.prior_a, self.prior_b = float(prior_a), float(prior_b)
        d = self.num_dims
        self.loc = PyroParam(torch.full((d,), self.prior_loc))
        if estimator == "bayes":
            self.q_kappa = PyroParam(torch.full((d,), 1.0), constraints.positive)
            self.q_a = PyroParam(torch.full((d,), self.prior_a), constraints.positive)
            self.q_b = PyroParam(torch.full((d,), self.prior_b), constraints.positive)
        else:
            self.precision = PyroParam(torch.ones(d), constraints.positive)

    def init_from_data(self, x: Tensor, y: Tensor | None = None) -> None:
        """Start the location at the data mean and the precision at 1/variance."""
        x = x.reshape(x.shape[0], -1).to(self.dtype)
        with torch.no_grad():
            self.loc = x.mean(0)
            precision = 1.0 / x.var(0, unbiased=False).clamp(min=1e-6)
            if self.estimator == "bayes":  # a confident start keeps reparameterised tau away from 0
                self.q_a = torch.full_like(precision, 10.0)
                self.q_kappa = torch.full_like(precision, 10.0)
                self.q_b = 10.0 / precision
            else:
                self.precision = precision

    def _sample_params(self) -> tuple[Tensor, Tensor]:
        if self.estimator == "mle":
            return self.loc, self.precision
        d = self.num_dims
        tau = pyro.sample(
            "tau",
            dist.Gamma(self.constant(self.prior_a), self.constant(self.prior_b)).expand([d]).to_event(1),
        )
        scale = (self.prior_kappa * tau).rsqrt()
        mu = pyro.sample("mu", dist.Normal(self.constant(self.prior_loc), scale).to_event(1))
        return mu, tau

    def _guide_params(self) -> None:
        if self.estimator == "map":
            pyro.sample("tau", dist.Delta(self.precision).to_event(1))
            pyro.sample("mu", dist.Delta(self.loc).to_event(1))
            return
        tau = pyro.sample("tau", dist.Gamma(self.q_a, self.q_b).to_event(1))
        pyro.sample("mu", dist.Normal(self.loc, (self.q_kappa * tau).rsqrt()).to_event(1))

    def _likelihood(self, loc: Tensor, precision: Tensor) -> dist.TorchDistribution:
        return dist.Normal(loc, precision.rsqrt()).to_event(1)

    def _observed(self, x: Tensor) -> Tensor:
        return x.reshape(x.shape[0], -1)

    def predictive_distribution(self) -> dist.TorchDistribution:
        if self.estimator != "bayes":
            return dist.Normal(self.loc, self.precision.rsqrt()).to_event(1)
        a, b, kappa = self.q_a, self.q_b, self.q_kappa
        scale = (b * (kappa + 1) / (a * kappa)).sqrt()
        return dist.StudentT(2 * a, self.loc, scale).to_event(1)

    def _statistics(self, x: Tensor) -> dict[str, Any]:
        return {"moments": Moments.of(x)}

    def _set_closed_form(self, statistics: dict[str, Any]) -> None:
        moments = statistics["moments"]
        n, mean, ss = moments.count[0].item(), moments.mean[0], moments.scatter[0]
        k0, m0 = self.prior_kappa, self.prior_loc
        kappa = k0 + n
        loc = (k0 * m0 + n * mean) / kappa
        a = self.prior_a + n / 2
        b = self.prior_b + 0.5 * ss + k0 * n * (mean - m0) ** 2 / (2 * kappa)
        if self.estimator == "bayes":
            self.loc, self.q_kappa = loc, torch.full_like(loc, kappa)
            self.q_a, self.q_b = torch.full_like(loc, a), b
        elif self.estimator == "map":  # joint mode of the Normal-Gamma posterior
            self.loc, self.precision = loc, (a - 0.5) / b
        else:
            self.loc, self.precision = mean, 1.0 / (ss / n).clamp(min=1e-12)

    def _config_kwargs(self) -> dict[str, Any]:
        return {
            **super()._config_kwargs(),
            "prior_loc": self.prior_loc,
            "prior_kappa": self.prior_kappa,
            "prior_a": self.prior_a,
            "prior_b": self.prior_b,
        }


def independent(event_shape, support: str, **kwargs: Any) -> Factorized:
    """The fully factorized model that suits ``support``: Bernoulli, Categorical or Gaussian.

    Example:
        >>> independent(4, "discrete(17)")
        IndependentCategorical(event_shape=(4,), support='discrete(17)')
    """
    from probgen.data.support import parse_support

    kind, _ = parse_support(support)
    cls = {"binary": IndependentBernoulli, "discrete": IndependentCategorical}.get(kind, IndependentGaussian)
    return cls(event_shape, support, **kwargs)
