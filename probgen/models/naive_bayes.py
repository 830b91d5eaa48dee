"""Naive Bayes: class-conditionally independent features, as Bayesian Pyro models.

``p(x, y) = Categorical(y | pi) prod_d p(x_d | theta_{y,d})`` with ``pi ~ Dirichlet`` and a
conjugate prior per class and feature: Normal-Gamma (Gaussian features), Beta (binary
features) or Dirichlet (categorical features). The conjugate posterior predictive is exact:
Student-t, Bernoulli with add-a/b smoothing, categorical with add-alpha smoothing.

References:
    Murphy, "Machine Learning: a Probabilistic Perspective" (2012), section 3.5.
    Murphy, "Conjugate Bayesian analysis of the Gaussian distribution" (2007).
"""

from __future__ import annotations

from typing import Any

import pyro
import pyro.distributions as dist
import torch
from torch import Tensor

from probgen._checks import check_positive
from probgen.models.generative_classifier import GenerativeClassifier
from probgen.models.moments import Moments
from probgen.models.registry import register

_BUDGET = {"epochs": 300, "lr": 0.05, "batch_size": 10_000}

__all__ = ["GaussianNaiveBayes", "BernoulliNaiveBayes", "CategoricalNaiveBayes"]


@register("gaussian-nb", description="Gaussian Naive Bayes classifier, Normal-Gamma priors", fit_defaults=_BUDGET)
class GaussianNaiveBayes(GenerativeClassifier):
    """Gaussian Naive Bayes with Normal-Gamma priors per class and feature.

    Prior: ``tau_cd ~ Gamma(a0, b0_d)``, ``mu_cd | tau ~ Normal(m0_d, (kappa0 tau_cd)^-1/2)``
    with a vague location prior (``kappa0 = 1e-6``: a feature that is constant within a class
    keeps its constant as the predictive mean), the empirical-Bayes defaults ``m0`` = the
    training mean and
    ``b0 = (a0 + N / 2C) * var_smoothing * max_d Var(x_d)``: a class of average size gets
    scikit-learn's variance floor added to its sample variance.

    Example:
        >>> import probgen as pg
        >>> iris = pg.load_dataset("iris")
        >>> nb = GaussianNaiveBayes(4, "real", num_classes=3).fit_closed_form(iris.x, iris.y)
        >>> torch.allclose(nb.predict_log_proba(iris.x[:2]).exp().sum(-1), torch.ones(2))
        True
    """

    sites = ("precision", "loc")

    def __init__(
        self,
        event_shape,
        support: str = "real",
        *,
        num_classes: int = 2,
        prior_kappa: float = 1e-6,
        prior_a: float = 1.0,
        var_smoothing: float = 1e-9,
        **kwargs: Any,
    ) -> None:
        super().__init__(event_shape, support, num_classes=num_classes, **kwargs)
        self.prior_kappa, self.prior_a = check_positive("prior_kappa", prior_kappa), check_positive("prior_a", prior_a)
        self.var_smoothing = check_positive("var_smoothing", var_smoothing)
        c, d = num_classes, self.num_dims
        self.register_buffer("prior_loc", torch.zeros(d))
        self.register_buffer("prior_b", torch.full((d,), self.prior_a))
        # the posterior mean of the locations is kept as origin (a training row) + post_offset:
        # rounding it to the dtype would cost up to half a unit in the last place of the data
        self.register_buffer("origin", torch.zeros(d))
        for name in ("post_offset", "post_kappa", "post_a", "post_b"):
            self.register_buffer(name, torch.ones(c, d))

    @property
    def post_loc(self) -> Tensor:
        """The posterior mean of each class's location, ``[C, D]`` (rounded to the dtype)."""
        return self.origin + self.post_offset

    def _statistics(self, x, onehot):
        return {"moments": Moments.of(x, onehot)}

    def _set_prior(self, statistics) -> None:
        pooled = statistics["moments"].pooled()
        num_data = pooled.count[0]
        floor = self.var_smoothing * (pooled.scatter[0] / num_data).max().clamp(min=1e-12)
        self.prior_loc = pooled.mean[0]
        # a class of average size n = N / C gets variance ~ (SS / 2 + b0) / (a0 + n / 2),
        # i.e. its sample variance plus scikit-learn's floor
        self.prior_b = torch.full_like(self.prior_loc, self.prior_a + num_data / (2 * self.num_classes)) * floor

    def _moment_values(self, statistics):
        moments = statistics["moments"]
        n = moments.count[:, None].clamp(min=1)
        var = moments.scatter / n + 2 * self.prior_b / (2 * self.prior_a + n)
        return {"loc": moments.mean, "precision": 1 / var}

    def _sample_params(self) -> dict[str, Tensor]:
        c, d = self.num_classes, self.num_dims
        a0 = torch.as_tensor(self.prior_a, dtype=self.dtype, device=self.device).expand(c, d)
        tau = pyro.sample("precision", dist.Gamma(a0, self.prior_b.expand(c, d)).to_event(2))
        scale = (self.prior_kappa * tau).rsqrt()
        loc = pyro.sample("loc", dist.Normal(self.prior_loc.expand(c, d), scale).to_event(2))
        return {"precision": tau, "loc": loc}

    def _x_given_y(self, params, y):
        return dist.Normal(params["loc"][y], params["precision"][y].rsqrt()).to_event(1)

    def _class_log_lik(self, params, x):
        loc, tau = params["loc"][:, None], params["precision"][:, None]  # [S, 1, C, D]
        return dist.Normal(loc, tau.rsqrt()).log_prob(x[None, :, None, :]).sum(-1)

    def replicate(self, params, y):
        rows = torch.arange(len(y), device=y.device)
        loc, tau = params["loc"][rows, y], params["precision"][rows, y]
        return dist.Normal(loc, tau.rsqrt()).sample()

    def _set_conjugate(self, statistics):
        moments = statistics["moments"]
        pooled = moments.pooled()
        # every location relative to one training row: the prior mean m0 (the training mean) and
        # the class means are then small numbers known to the rounding of the spread, and
        # k0 m0 + n mean and (mean - m0)^2 do not cancel for data far from 0
        origin, m0 = pooled.shift[0], pooled.offset[0]
        n, mean, ss = moments.count[:, None], moments.offset_from(origin), moments.scatter  # ss: centred
        k0 = self.prior_kappa
        self.origin = origin
        self.post_kappa = (k0 + n).expand_as(mean).clone()
        self.post_offset = (k0 * m0 + n * mean) / self.post_kappa
        self.post_a = (self.prior_a + n / 2).expand_as(mean).clone()
        self.post_b = self.prior_b + 0.5 * ss + k0 * n * (mean - m0) ** 2 / (2 * self.post_kappa)

    def _conjugate_class_log_pred(self, x):
        a, b, kappa = self.post_a, self.post_b, self.post_kappa
        scale = (b * (kappa + 1) / (a * kappa)).sqrt()
        # x - origin is exact for x near the training data (Sterbenz), unlike x - post_loc
        return dist.StudentT(2 * a, self.post_offset, scale).log_prob((x - self.origin)[:, None, :]).sum(-1)

    def _conjugate_site_draws(self, num_samples):
        tau = dist.Gamma(self.post_a, self.post_b).sample((num_samples,))
        loc = dist.Normal(self.post_loc, (self.post_kappa * tau).rsqrt()).sample()
        return {"precision": tau, "loc": loc}

    def _config_kwargs(self) -> dict[str, Any]:
        return {
            **super()._config_kwargs(),
            "prior_kappa": self.prior_kappa,
            "prior_a": self.prior_a,
            "var_smoothing": self.var_smoothing,
        }


@register("bernoulli-nb", description="Bernoulli Naive Bayes classifier, Beta priors", fit_defaults=_BUDGET)
class BernoulliNaiveBayes(GenerativeClassifier):
    """Bernoulli Naive Bayes with ``Beta(a0, b0)`` priors; with ``a0 = b0 = 1`` the predictive
    is scikit-learn's ``BernoulliNB(alpha=1)``.

    Example:
        >>> import probgen as pg, torch
        >>> from sklearn.naive_bayes import BernoulliNB
        >>> data = pg.load_dataset("digits-binary")
        >>> nb = pg.models.BernoulliNaiveBayes(64, num_classes=10).fit_closed_form(data.x, data.y)
        >>> sk = BernoulliNB(alpha=1.0).fit(data.x.numpy(), data.y.numpy())
        >>> test = pg.load_dataset("digits-binary", "test")
        >>> bool((nb.predict(test.x).numpy() == sk.predict(test.x.numpy())).all())
        True
    """

    supports = ("binary",)
    sites = ("probs",)

    def __init__(
        self,
        event_shape,
        support: str = "binary",
        *,
        num_classes: int = 2,
        prior_a: float = 1.0,
        prior_b: float = 1.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(event_shape, support, num_classes=num_classes, **kwargs)
        self.prior_a, self.prior_b = check_positive("prior_a", prior_a), check_positive("prior_b", prior_b)
        self.register_buffer("post_a", torch.ones(num_classes, self.num_dims))
        self.register_buffer("post_b", torch.ones(num_classes, self.num_dims))

    def _sample_params(self):
        shape = (self.num_classes, self.num_dims)
        a, b = (torch.as_tensor(v, dtype=self.dtype, device=self.device) for v in (self.prior_a, self.prior_b))
        prior = dist.Beta(a, b).expand(shape)
        return {"probs": pyro.sample("probs", prior.to_event(2))}

    def _statistics(self, x, onehot):
        return {"ones": onehot.T @ x}

    def _moment_values(self, statistics):
        n = statistics["class_counts"][:, None]
        return {"probs": (statistics["ones"] + self.prior_a) / (n + self.prior_a + self.prior_b)}

    def _x_given_y(self, params, y):
        return dist.Bernoulli(probs=params["probs"][y]).to_event(1)

    def _class_log_lik(self, params, x):
        probs = params["probs"][:, None]  # [S, 1, C, D]
        return dist.Bernoulli(probs=probs).log_prob(x[None, :, None, :].expand(-1, -1, probs.shape[2], -1)).sum(-1)

    def replicate(self, params, y):
        return torch.bernoulli(params["probs"][torch.arange(len(y), device=y.device), y])

    def _set_conjugate(self, statistics):
        ones = statistics["ones"]
        self.post_a = self.prior_a + ones
        self.post_b = self.prior_b + statistics["class_counts"][:, None] - ones

    def _conjugate_class_log_pred(self, x):
        probs = self.post_a / (self.post_a + self.post_b)
        return x @ probs.log().T + (1 - x) @ torch.log1p(-probs).T

    def _conjugate_site_draws(self, num_samples):
        return {"probs": dist.Beta(self.post_a, self.post_b).sample((num_samples,))}

    def _config_kwargs(self):
        return {**super()._config_kwargs(), "prior_a": self.prior_a, "prior_b": self.prior_b}


@register("categorical-nb", description="categorical Naive Bayes classifier, Dirichlet priors", fit_defaults=_BUDGET)
class CategoricalNaiveBayes(GenerativeClassifier):
    """Categorical Naive Bayes over ``k`` levels with symmetric ``Dirichlet(alpha)`` priors;
    with ``alpha = 1`` the predictive is scikit-learn's ``CategoricalNB(alpha=1)``.

    Example:
        >>> import probgen as pg, torch
        >>> from sklearn.naive_bayes import CategoricalNB
        >>> data = pg.load_dataset("digits")  # 17 grey levels
        >>> nb = pg.models.CategoricalNaiveBayes(64, "discrete(17)", num_classes=10).fit_closed_form(data.x, data.y)
        >>> sk = CategoricalNB(alpha=1.0, min_categories=17).fit(data.x.numpy(), data.y.numpy())
        >>> test = pg.load_dataset("digits", "test")
        >>> bool((nb.predict(test.x).numpy() == sk.predict(test.x.numpy())).all())
        True
    """

    supports = ("discrete", "binary")
    sites = ("probs",)

    def __init__(self, event_shape, support: str, *, num_classes: int = 2, prior_alpha: float = 1.0, **kwargs) -> None:
        super().__init__(event_shape, support, num_classes=num_classes, **kwargs)
        self.prior_alpha = check_positive("prior_alpha", prior_alpha)
        self.register_buffer("post_alpha", torch.ones(num_classes, self.num_dims, self.num_levels))

    def _observed(self, x: Tensor) -> Tensor:
        return x.reshape(x.shape[0], -1).long()

    def _sample_params(self):
        shape = (self.num_classes, self.num_dims, self.num_levels)
        prior = dist.Dirichlet(torch.as_tensor(self.prior_alpha, dtype=self.dtype, device=self.device).expand(shape))
        return {"probs": pyro.sample("probs", prior.to_event(2))}

    def _statistics(self, x, onehot):
        levels = torch.nn.functional.one_hot(x, self.num_levels).to(self.dtype)  # [N, D, K]
        return {"levels": torch.einsum("nc,ndk->cdk", onehot, levels)}

    def _moment_values(self, statistics):
        counts = statistics["levels"] + self.prior_alpha
        return {"probs": counts / counts.sum(-1, keepdim=True)}

    def _x_given_y(self, params, y):
        return dist.Categorical(probs=params["probs"][y]).to_event(1)

    def _class_log_lik(self, params, x):
        logp = params["probs"].log()  # [S, C, D, K]
        s, c, d, _ = logp.shape
        index = x.T[None, None, :, :].expand(s, c, d, -1)  # [S, C, D, N]
        return logp.gather(-1, index).sum(2).transpose(1, 2)  # [S, N, C]

    def replicate(self, params, y):
        return dist.Categorical(probs=params["probs"][torch.arange(len(y), device=y.device), y]).sample().to(self.dtype)

    def _set_conjugate(self, statistics):
        self.post_alpha = self.prior_alpha + statistics["levels"]

    def _conjugate_class_log_pred(self, x):
        logp = (self.post_alpha / self.post_alpha.sum(-1, keepdim=True)).log()[None]
        return self._class_log_lik({"probs": logp.exp()}, x)[0]

    def _conjugate_site_draws(self, num_samples):
        return {"probs": dist.Dirichlet(self.post_alpha).sample((num_samples,))}

    def _config_kwargs(self):
        return {**super()._config_kwargs(), "prior_alpha": self.prior_alpha}
