"""Fully factorized models: every dimension independent, one distribution per dimension.

The "independence assumption" baseline of generative modelling: ``p(x) = prod_d p(x_d)`` with
D (Bernoulli), D(k-1) (Categorical) or 2D (Gaussian) parameters. Each parameter has a
conjugate prior, declared once per model (hyperparameters, conjugate update, compound
predictive, mode, maximum likelihood); ``method`` chooses the posterior object of
:mod:`probgen.models.conjugate` that fits it:

- ``"bayes"``: SVI fits a variational posterior of the conjugate family (Beta, Dirichlet,
  Normal-Gamma); :meth:`log_prob` is the exact posterior predictive under it.
- ``"map"``: a Delta guide, the posterior mode.
- ``"mle"``: no prior, the parameters are point estimates in the model; SVI with an empty guide
  is maximum likelihood.

:meth:`~probgen.models.closed_form.ClosedFormFit.fit_closed_form` (or ``fit(..., strategy="closed_form")``,
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
from pyro.nn import pyro_method
from torch import Tensor
from torch.distributions import constraints

from probgen._checks import check_positive, check_real
from probgen.models.base import GenerativeModel, data_plate
from probgen.models.closed_form import ClosedFormFit
from probgen.models.conjugate import ESTIMATORS
from probgen.models.moments import Moments
from probgen.models.registry import register

__all__ = [
    "Factorized",
    "IndependentBernoulli",
    "IndependentCategorical",
    "IndependentGaussian",
    "independent",
]

FACTORIZED_BUDGET = {"epochs": 60, "batch_size": 100, "lr": 0.05}


class Factorized(ClosedFormFit, GenerativeModel):
    """Shared machinery of the fully factorized models (see the module docstring).

    A subclass declares its conjugate family (:class:`probgen.models.conjugate.ConjugateFamily`):
    ``hyper_constraints``, ``point_constraints``, ``prior_hyper``, ``initial_point``,
    ``sample_params``, ``likelihood``, ``compound``, ``update``, ``mode`` and ``mle``, and its
    sufficient statistics (``_statistics``).

    Example:
        >>> import probgen as pg, torch
        >>> x = pg.load_dataset("digits-binary").x
        >>> mle = pg.models.IndependentBernoulli(64, method="mle").fit_closed_form(x)
        >>> isinstance(mle, pg.models.Factorized), sorted(mle.estimate())
        (True, ['theta'])
        >>> # the MLE: each pixel's frequency (kept in [eps, 1 - eps]: a pixel never on keeps a finite log p)
        >>> torch.allclose(mle.estimate()["theta"], x.mean(0), atol=1e-6)
        True
        >>> bayes = pg.models.IndependentBernoulli(64, method="bayes").fit_closed_form(x)
        >>> predictive = (x.sum(0) + 1) / (len(x) + 2)  # Beta(1, 1) prior: Laplace's rule of succession
        >>> torch.allclose(bayes.log_prob(x[:2]), torch.distributions.Bernoulli(predictive).log_prob(x[:2]).sum(-1))
        True
    """

    hyper_constraints: dict[str, constraints.Constraint] = {}
    point_constraints: dict[str, constraints.Constraint] = {}

    def __init__(self, event_shape, support: str, *, method: str = "bayes") -> None:
        super().__init__(event_shape, support)
        if method not in ESTIMATORS:
            raise ValueError(f"unknown method {method!r}; expected one of {tuple(ESTIMATORS)}")
        self.method = method
        self.register_buffer("closed_form", torch.tensor(False))

    def _set_posterior(self) -> None:
        """Create the posterior object (once the subclass has set its prior)."""
        self.posterior = ESTIMATORS[self.method](self)

    @property
    def predictive(self) -> str:
        """ "plug-in" for MAP/MLE; for "bayes", "posterior" after a closed-form fit (the exact
        posterior predictive), "variational" after SVI (the predictive under q)."""
        return self.posterior.predictive(bool(self.closed_form))

    def after_fit(self, x: Tensor, y: Tensor | None) -> None:
        self.closed_form.fill_(False)

    @pyro_method
    def model(self, x: Tensor, y: Tensor | None = None) -> None:
        params = self.posterior.params(self)
        with data_plate(self, x):
            pyro.sample("x", self.likelihood(params), obs=self._observed(x))

    @pyro_method
    def guide(self, x: Tensor, y: Tensor | None = None) -> None:
        self.posterior.guide(self)

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
        """The fitted (posterior predictive, or plug-in) distribution of one example."""
        return self.posterior.distribution(self)

    def estimate(self) -> dict[str, Tensor]:
        """The fitted values: the posterior's hyperparameters ("bayes") or the point ("map",
        "mle"), keyed by name."""
        return self.posterior.values()

    def initial_hyper(self) -> dict[str, Tensor]:
        """Where a variational posterior starts: the prior."""
        return self.prior_hyper()

    def closed_form_statistics(self, x: Tensor, y: Tensor | None = None) -> dict[str, Any]:
        return self._statistics(self._observed(x).reshape(x.shape[0], -1))

    def set_closed_form(self, statistics: dict[str, Any]) -> None:
        """Set the exact posterior (bayes), posterior mode (map) or MLE (mle) from the statistics."""
        self.posterior.set_closed_form(self, statistics)
        self.closed_form.fill_(True)

    def _full(self, value: float, shape: tuple[int, ...] | None = None) -> Tensor:
        return torch.full(shape or (self.num_dims,), float(value), dtype=self.dtype, device=self.device)

    def _config_kwargs(self) -> dict[str, Any]:
        return {"method": self.method}


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
    hyper_constraints = {"a": constraints.positive, "b": constraints.positive}
    point_constraints = {"theta": constraints.unit_interval}

    def __init__(
        self,
        event_shape,
        support: str = "binary",
        *,
        method: str = "bayes",
        prior_a: float = 1.0,
        prior_b: float = 1.0,
    ) -> None:
        super().__init__(event_shape, support, method=method)
        self.prior_a, self.prior_b = check_positive("prior_a", prior_a), check_positive("prior_b", prior_b)
        self._set_posterior()

    def prior_hyper(self) -> dict[str, Tensor]:
        return {"a": self._full(self.prior_a), "b": self._full(self.prior_b)}

    def initial_point(self) -> dict[str, Tensor]:
        return {"theta": self._full(0.5)}

    def sample_params(self, hyper: dict[str, Tensor]) -> dict[str, Tensor]:
        return {"theta": pyro.sample("theta", dist.Beta(hyper["a"], hyper["b"]).to_event(1))}

    def likelihood(self, params: dict[str, Tensor]) -> dist.TorchDistribution:
        return dist.Bernoulli(probs=params["theta"]).to_event(1)

    def compound(self, hyper: dict[str, Tensor]) -> dist.TorchDistribution:
        return dist.Bernoulli(probs=hyper["a"] / (hyper["a"] + hyper["b"])).to_event(1)

    def _statistics(self, x: Tensor) -> dict[str, Any]:
        return {"count": torch.tensor(x.shape[0]), "ones": x.sum(0)}

    def update(self, statistics: dict[str, Any]) -> dict[str, Tensor]:
        n, ones = statistics["count"].item(), statistics["ones"]
        return {"a": self.prior_a + ones, "b": self.prior_b + n - ones}

    def _inside(self, probs: Tensor) -> dict[str, Tensor]:
        eps = torch.finfo(self.dtype).eps
        return {"theta": probs.clamp(eps, 1 - eps)}

    def mode(self, hyper: dict[str, Tensor]) -> dict[str, Tensor]:
        a, b = hyper["a"], hyper["b"]
        return self._inside((a - 1) / (a + b - 2))

    def mle(self, statistics: dict[str, Any]) -> dict[str, Tensor]:
        return self._inside(statistics["ones"] / statistics["count"].item())

    def _config_kwargs(self) -> dict[str, Any]:
        return {**super()._config_kwargs(), "prior_a": self.prior_a, "prior_b": self.prior_b}


@register(
    "independent-categorical",
    description="independent categorical per dimension, Dirichlet priors",
    fit_defaults=FACTORIZED_BUDGET,
)
class IndependentCategorical(Factorized):
    """Independent categorical pixels over ``k`` levels with symmetric Dirichlet(alpha) priors.

    Example:
        >>> import probgen as pg, torch
        >>> x = pg.load_dataset("digits").x  # 17 grey levels
        >>> model = pg.models.IndependentCategorical(64, "discrete(17)", prior_alpha=1.0).fit_closed_form(x)
        >>> counts = torch.nn.functional.one_hot(x.long(), 17).sum(0)  # [64, 17]
        >>> predictive = (counts + 1.0) / (len(x) + 17)  # Dirichlet(1) posterior predictive
        >>> expected = predictive.log().gather(1, x[:2].long().T).sum(0)
        >>> torch.allclose(model.log_prob(x[:2]), expected)
        True
    """

    supports = ("discrete", "binary")
    hyper_constraints = {"alpha": constraints.positive}
    point_constraints = {"theta": constraints.simplex}

    def __init__(self, event_shape, support: str, *, method: str = "bayes", prior_alpha: float = 1.0) -> None:
        super().__init__(event_shape, support, method=method)
        self.prior_alpha = check_positive("prior_alpha", prior_alpha)
        self._set_posterior()

    def _observed(self, x: Tensor) -> Tensor:
        return x.reshape(x.shape[0], -1).long()

    def prior_hyper(self) -> dict[str, Tensor]:
        return {"alpha": self._full(self.prior_alpha, (self.num_dims, self.num_levels))}

    def initial_point(self) -> dict[str, Tensor]:
        return {"theta": self._full(1.0 / self.num_levels, (self.num_dims, self.num_levels))}

    def sample_params(self, hyper: dict[str, Tensor]) -> dict[str, Tensor]:
        return {"theta": pyro.sample("theta", dist.Dirichlet(hyper["alpha"]).to_event(1))}

    def likelihood(self, params: dict[str, Tensor]) -> dist.TorchDistribution:
        return dist.Categorical(probs=params["theta"]).to_event(1)

    def compound(self, hyper: dict[str, Tensor]) -> dist.TorchDistribution:
        alpha = hyper["alpha"]
        return dist.Categorical(probs=alpha / alpha.sum(-1, keepdim=True)).to_event(1)

    def _statistics(self, x: Tensor) -> dict[str, Any]:
        return {"counts": torch.nn.functional.one_hot(x, self.num_levels).sum(0).to(self.dtype)}

    def update(self, statistics: dict[str, Any]) -> dict[str, Tensor]:
        return {"alpha": self.prior_alpha + statistics["counts"]}

    def _normalised(self, weights: Tensor) -> dict[str, Tensor]:
        weights = weights.clamp(min=torch.finfo(self.dtype).eps)
        return {"theta": weights / weights.sum(-1, keepdim=True)}

    def mode(self, hyper: dict[str, Tensor]) -> dict[str, Tensor]:
        return self._normalised((hyper["alpha"] - 1).clamp(min=0))

    def mle(self, statistics: dict[str, Any]) -> dict[str, Tensor]:
        return self._normalised(statistics["counts"])

    def sample(self, n: int) -> Tensor:
        return super().sample(n).reshape(n, *self.event_shape)

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

    Example:
        >>> import probgen as pg, torch
        >>> x = pg.load_dataset("iris").x
        >>> mle = pg.models.IndependentGaussian(4, method="mle").fit_closed_form(x)
        >>> normal = torch.distributions.Normal(x.mean(0), x.std(0, unbiased=False))
        >>> torch.allclose(mle.log_prob(x[:3]), normal.log_prob(x[:3]).sum(-1), atol=1e-5)
        True
        >>> bayes = pg.models.IndependentGaussian(4).fit_closed_form(x)  # Normal-Gamma prior, a = 1
        >>> student = bayes.predictive_distribution().base_dist  # Student-t with 2 a_N = 2 (1 + N / 2) dof
        >>> type(student).__name__, student.df.tolist() == [2 * (1 + len(x) / 2)] * 4
        ('StudentT', True)
    """

    supports = ("real",)
    hyper_constraints = {
        "loc": constraints.real,
        "kappa": constraints.positive,
        "a": constraints.positive,
        "b": constraints.positive,
    }
    point_constraints = {"tau": constraints.positive, "mu": constraints.real}

    def __init__(
        self,
        event_shape,
        support: str = "real",
        *,
        method: str = "bayes",
        prior_loc: float = 0.0,
        prior_kappa: float = 0.01,
        prior_a: float = 1.0,
        prior_b: float = 1.0,
    ) -> None:
        super().__init__(event_shape, support, method=method)
        self.prior_loc = check_real("prior_loc", prior_loc)
        self.prior_kappa = check_positive("prior_kappa", prior_kappa)
        self.prior_a, self.prior_b = check_positive("prior_a", prior_a), check_positive("prior_b", prior_b)
        self._set_posterior()

    def prior_hyper(self) -> dict[str, Tensor]:
        values = (self.prior_loc, self.prior_kappa, self.prior_a, self.prior_b)
        return {name: self._full(value) for name, value in zip(self.hyper_constraints, values, strict=True)}

    def initial_hyper(self) -> dict[str, Tensor]:
        return {**self.prior_hyper(), "kappa": self._full(1.0)}

    def initial_point(self) -> dict[str, Tensor]:
        return {"tau": self._full(1.0), "mu": self._full(self.prior_loc)}

    def init_from_data(self, x: Tensor, y: Tensor | None = None) -> None:
        """Start at the data mean and precision (a posterior: one as confident as 10 examples,
        which keeps reparameterised tau away from 0)."""
        x = x.reshape(x.shape[0], -1).to(self.dtype)
        with torch.no_grad():
            mean, precision = x.mean(0), 1.0 / x.var(0, unbiased=False).clamp(min=1e-6)
            ten = torch.full_like(precision, 10.0)
            hyper = {"loc": mean, "kappa": ten, "a": ten, "b": 10.0 / precision}
            self.posterior.start_at({"tau": precision, "mu": mean}, hyper)

    def sample_params(self, hyper: dict[str, Tensor]) -> dict[str, Tensor]:
        tau = pyro.sample("tau", dist.Gamma(hyper["a"], hyper["b"]).to_event(1))
        mu = pyro.sample("mu", dist.Normal(hyper["loc"], (hyper["kappa"] * tau).rsqrt()).to_event(1))
        return {"tau": tau, "mu": mu}

    def likelihood(self, params: dict[str, Tensor]) -> dist.TorchDistribution:
        return dist.Normal(params["mu"], params["tau"].rsqrt()).to_event(1)

    def compound(self, hyper: dict[str, Tensor]) -> dist.TorchDistribution:
        a, b, kappa = hyper["a"], hyper["b"], hyper["kappa"]
        scale = (b * (kappa + 1) / (a * kappa)).sqrt()
        return dist.StudentT(2 * a, hyper["loc"], scale).to_event(1)

    def _observed(self, x: Tensor) -> Tensor:
        return x.reshape(x.shape[0], -1)

    def _statistics(self, x: Tensor) -> dict[str, Any]:
        return {"moments": Moments.of(x)}

    def update(self, statistics: dict[str, Any]) -> dict[str, Tensor]:
        moments = statistics["moments"]
        n, mean, ss = moments.count[0].item(), moments.mean[0], moments.scatter[0]
        k0, m0 = self.prior_kappa, self.prior_loc
        kappa = k0 + n
        b = self.prior_b + 0.5 * ss + k0 * n * (mean - m0) ** 2 / (2 * kappa)
        return {
            "loc": (k0 * m0 + n * mean) / kappa,
            "kappa": torch.full_like(mean, kappa),
            "a": torch.full_like(mean, self.prior_a + n / 2),
            "b": b,
        }

    def mode(self, hyper: dict[str, Tensor]) -> dict[str, Tensor]:
        """The joint mode of the Normal-Gamma posterior."""
        return {"tau": (hyper["a"] - 0.5) / hyper["b"], "mu": hyper["loc"]}

    def mle(self, statistics: dict[str, Any]) -> dict[str, Tensor]:
        moments = statistics["moments"]
        n, mean, ss = moments.count[0].item(), moments.mean[0], moments.scatter[0]
        return {"tau": 1.0 / (ss / n).clamp(min=1e-12), "mu": mean}

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
        >>> type(independent(4, "discrete(17)")).__name__
        'IndependentCategorical'
    """
    from probgen.data.support import parse_support

    kind, _ = parse_support(support)
    cls = {"binary": IndependentBernoulli, "discrete": IndependentCategorical}.get(kind, IndependentGaussian)
    return cls(event_shape, support, **kwargs)
