"""Linear and Quadratic Discriminant Analysis as Bayesian Pyro models.

Class-conditional Gaussians ``x | y=c ~ N(mu_c, Lambda_c^-1)`` under a Normal-Wishart prior:
``Lambda ~ Wishart(nu0, Psi0^-1)``, ``mu_c | Lambda ~ N(m0, (kappa0 Lambda)^-1)``. LDA shares
one precision across classes, QDA has one per class. The precision is sampled as its
Cholesky factor (:class:`~probgen.models.wishart.WishartCholesky`) so SVI and NUTS can move
on it; the conjugate posterior predictive is a multivariate Student-t.

Defaults (empirical Bayes): ``m0`` = the training mean, ``nu0 = D + 2`` and
``Psi0 = reg_param * (N / C) * I`` (reg_param 0.01 for QDA, 1e-4 for LDA), so that each
class's covariance is shrunk towards ``reg_param * I`` as in scikit-learn's
``QuadraticDiscriminantAnalysis(reg_param=...)``, and a class with a single example still has
a proper (regularised) covariance, never a NaN.

References:
    Murphy, "Conjugate Bayesian analysis of the Gaussian distribution" (2007), section 9.
    Fisher, "The use of multiple measurements in taxonomic problems" (1936).
    Hastie, Tibshirani & Friedman, "The Elements of Statistical Learning" (2009), section 4.3.
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
from probgen.models.wishart import WishartCholesky, gaussian_log_prob_precision_tril

__all__ = ["DiscriminantAnalysis", "LinearDiscriminantAnalysis", "QuadraticDiscriminantAnalysis"]


class DiscriminantAnalysis(GenerativeClassifier):
    """Shared code of LDA (``shared_covariance = True``) and QDA.

    Example:
        >>> import probgen as pg, torch
        >>> iris = pg.load_dataset("iris")
        >>> lda = pg.models.LinearDiscriminantAnalysis(4, num_classes=3).fit_closed_form(iris.x, iris.y)
        >>> qda = pg.models.QuadraticDiscriminantAnalysis(4, num_classes=3).fit_closed_form(iris.x, iris.y)
        >>> isinstance(lda, pg.models.DiscriminantAnalysis), lda.shared_covariance, qda.shared_covariance
        (True, True, False)
        >>> probs = lda.predict_log_proba(iris.x[:3]).exp()
        >>> torch.allclose(probs.sum(-1), torch.ones(3))
        True
    """

    shared_covariance = True
    default_reg_param = 0.01
    sites = ("precision_tril", "loc")

    def __init__(
        self,
        event_shape,
        support: str = "real",
        *,
        num_classes: int = 2,
        reg_param: float | None = None,
        prior_kappa: float = 0.01,
        prior_df: float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(event_shape, support, num_classes=num_classes, **kwargs)
        d = self.num_dims
        reg_param = self.default_reg_param if reg_param is None else reg_param
        self.reg_param = check_positive("reg_param", reg_param)
        self.prior_kappa = check_positive("prior_kappa", prior_kappa)
        if prior_df is not None and check_positive("prior_df", prior_df) <= d - 1:
            raise ValueError(f"prior_df must exceed D - 1 = {d - 1}, got {prior_df}")
        self.prior_df = float(prior_df) if prior_df is not None else float(d + 2)
        c = num_classes
        self.register_buffer("prior_loc", torch.zeros(d))
        self.register_buffer("prior_scatter", torch.eye(d))
        # the posterior mean of the locations is kept as origin (a training row) + post_offset:
        # rounding it to the dtype would cost up to half a unit in the last place of the data
        self.register_buffer("origin", torch.zeros(d))
        self.register_buffer("post_offset", torch.zeros(c, d))
        self.register_buffer("post_kappa", torch.ones(c))
        self.register_buffer("post_df", torch.full((c,), self.prior_df))
        self.register_buffer("post_scatter", torch.eye(d).expand(c, d, d).clone())

    @property
    def post_loc(self) -> Tensor:
        """The posterior mean of each class's location, ``[C, D]`` (rounded to the dtype)."""
        return self.origin + self.post_offset

    def _statistics(self, x, onehot):
        return {"moments": Moments.of(x, onehot, full=True)}

    def _set_prior(self, statistics) -> None:
        pooled = statistics["moments"].pooled()
        self.prior_loc = pooled.mean[0]
        eye = torch.eye(self.num_dims, dtype=self.dtype, device=self.device)
        self.prior_scatter = self.reg_param * (pooled.count[0] / self.num_classes) * eye

    def _moment_values(self, statistics):
        moments = statistics["moments"]
        n = moments.count.clamp(min=1)
        scatter = moments.scatter + self.prior_scatter
        if self.shared_covariance:
            cov = scatter.sum(0) / (moments.count.sum() + self.prior_df)
        else:
            cov = scatter / (n + self.prior_df)[:, None, None]
        return {
            "loc": moments.mean,
            "precision_tril": torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(cov))),
        }

    # -------------------------------------------------------------- the Pyro program
    def _sample_params(self) -> dict[str, Tensor]:
        c, d = self.num_classes, self.num_dims
        wishart_tril = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(self.prior_scatter)))
        prior = WishartCholesky(torch.as_tensor(self.prior_df, dtype=self.dtype, device=self.device), wishart_tril)
        if self.shared_covariance:
            tril = pyro.sample("precision_tril", prior)
            precision = (tril @ tril.T).expand(c, d, d)
        else:
            tril = pyro.sample("precision_tril", prior.expand([c]).to_event(1))
            precision = tril @ tril.transpose(-1, -2)
        loc_prior = dist.MultivariateNormal(self.prior_loc.expand(c, d), precision_matrix=self.prior_kappa * precision)
        loc = pyro.sample("loc", loc_prior.to_event(1))
        return {"precision_tril": tril, "loc": loc}

    def _trils(self, params: dict[str, Tensor]) -> Tensor:
        tril = params["precision_tril"]
        if self.shared_covariance:
            tril = tril.unsqueeze(-3).expand(*tril.shape[:-2], self.num_classes, *tril.shape[-2:])
        return tril

    def _x_given_y(self, params, y):
        tril = self._trils(params)[y]
        return dist.MultivariateNormal(params["loc"][y], precision_matrix=tril @ tril.transpose(-1, -2))

    def _class_log_lik(self, params, x):
        trils = self._trils(params)  # [S, C, D, D]
        return gaussian_log_prob_precision_tril(x[None, :, None, :], params["loc"][:, None], trils[:, None])

    def replicate(self, params, y):
        rows = torch.arange(len(y), device=y.device)
        tril, loc = self._trils(params)[rows, y], params["loc"][rows, y]
        z = torch.randn_like(loc).unsqueeze(-1)
        return loc + torch.linalg.solve_triangular(tril.transpose(-1, -2), z, upper=True).squeeze(-1)

    # -------------------------------------------------------------- conjugate posterior
    def _set_conjugate(self, statistics):
        c, d = self.num_classes, self.num_dims
        moments = statistics["moments"]
        pooled = moments.pooled()
        # every location relative to one training row: the prior mean m0 (the training mean) and
        # the class means are then small numbers known to the rounding of the spread, and
        # k0 m0 + n mean and (mean - m0)(mean - m0)^T do not cancel for data far from 0
        origin, m0 = pooled.shift[0], pooled.offset[0]
        n, mean, scatter = moments.count, moments.offset_from(origin), moments.scatter  # scatter: centred
        k0 = self.prior_kappa
        kappa = k0 + n
        diff = mean - m0
        shrink = (k0 * n / kappa)[:, None, None] * diff[:, :, None] * diff[:, None, :]
        self.origin = origin
        self.post_offset = (k0 * m0 + n[:, None] * mean) / kappa[:, None]
        self.post_kappa = kappa
        if self.shared_covariance:
            total = self.prior_scatter + (scatter + shrink).sum(0)
            self.post_scatter = total.expand(c, d, d).clone()
            self.post_df = torch.full_like(n, self.prior_df + n.sum().item())
        else:
            self.post_scatter = self.prior_scatter + scatter + shrink
            self.post_df = self.prior_df + n

    def _conjugate_class_log_pred(self, x):
        d = self.num_dims
        df = self.post_df - d + 1
        shape = self.post_scatter * ((self.post_kappa + 1) / (self.post_kappa * df))[:, None, None]
        student = dist.MultivariateStudentT(df, self.post_offset, torch.linalg.cholesky(shape))
        # x - origin is exact for x near the training data (Sterbenz), unlike x - post_loc
        return student.log_prob((x - self.origin)[:, None, :])

    def _conjugate_site_draws(self, num_samples):
        wishart_tril = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(self.post_scatter)))
        if self.shared_covariance:
            tril = WishartCholesky(self.post_df[0], wishart_tril[0]).sample((num_samples,))
        else:
            tril = WishartCholesky(self.post_df, wishart_tril).sample((num_samples,))
        trils = self._trils({"precision_tril": tril})
        z = torch.randn(num_samples, self.num_classes, self.num_dims, 1, dtype=self.dtype, device=self.device)
        scaled = trils.transpose(-1, -2) * self.post_kappa.sqrt()[:, None, None]
        loc = self.post_loc + torch.linalg.solve_triangular(scaled, z, upper=True).squeeze(-1)
        return {"precision_tril": tril, "loc": loc}

    # -------------------------------------------------------------- summaries
    def covariance(self) -> Tensor:
        """Posterior mean of each class's covariance, ``[C, D, D]`` (E[Lambda^-1]): exact for the
        conjugate posterior, else averaged over posterior draws."""
        self.posterior.check_fitted()
        if self.method == "conjugate":
            return self.post_scatter / (self.post_df - self.num_dims - 1).clamp(min=1)[:, None, None]
        return torch.cholesky_inverse(self._trils(self.posterior_draws())).mean(0)

    def class_means(self) -> Tensor:
        """Posterior mean of each class's mean, ``[C, D]``."""
        self.posterior.check_fitted()
        return self.post_loc if self.method == "conjugate" else self.posterior_draws()["loc"].mean(0)

    def _config_kwargs(self) -> dict[str, Any]:
        return {
            **super()._config_kwargs(),
            "reg_param": self.reg_param,
            "prior_kappa": self.prior_kappa,
            "prior_df": self.prior_df,
        }


@register(
    "lda",
    description="LDA: class Gaussians, shared covariance, Normal-Wishart prior",
    fit_defaults={"epochs": 300, "lr": 0.05, "batch_size": 10_000},
)
class LinearDiscriminantAnalysis(DiscriminantAnalysis):
    """LDA: one covariance shared by all classes; linear decision boundaries.

    Besides classification, :meth:`transform` projects onto the Fisher discriminant directions.

    Example:
        >>> import probgen as pg
        >>> wine = pg.load_dataset("wine")
        >>> lda = LinearDiscriminantAnalysis(13, "real", num_classes=3).fit_closed_form(wine.x, wine.y)
        >>> lda.transform(wine.x).shape
        torch.Size([106, 2])
    """

    shared_covariance = True
    # one pooled covariance from all N examples needs (and scikit-learn applies) far less
    default_reg_param = 1e-4

    def transform(self, x: Tensor, num_components: int | None = None) -> Tensor:
        """Project onto the top (at most C - 1) Fisher discriminant directions.

        Solves ``S_b v = lambda S_w v`` with ``S_w`` the posterior mean within-class covariance and
        ``S_b`` the class-weighted scatter of the class means; matches scikit-learn's
        ``LinearDiscriminantAnalysis.transform`` up to the sign and scale of each component.
        """
        import scipy.linalg

        x = self._observed(self.validate(x))
        max_components = min(self.num_classes - 1, self.num_dims)
        k = max_components if num_components is None else num_components
        if not 1 <= k <= max_components:
            raise ValueError(f"num_components must be in 1..{max_components}, got {num_components}")
        means = self.class_means().double()
        weights = (self.class_counts / self.class_counts.sum()).double()
        centre = weights @ means
        between = ((means - centre).T * weights) @ (means - centre)
        within = self.covariance()[0].double()
        _, vectors = scipy.linalg.eigh(between.cpu().numpy(), within.cpu().numpy())
        directions = torch.as_tensor(vectors[:, ::-1][:, :k].copy(), device=x.device)
        return ((x.double() - centre) @ directions).to(x.dtype)


@register(
    "qda",
    description="QDA: class Gaussians, own covariances, Normal-Wishart prior",
    fit_defaults={"epochs": 300, "lr": 0.05, "batch_size": 10_000},
)
class QuadraticDiscriminantAnalysis(DiscriminantAnalysis):
    """QDA: one covariance per class; quadratic decision boundaries.

    Example:
        >>> import probgen as pg
        >>> from sklearn.discriminant_analysis import QuadraticDiscriminantAnalysis as SkQDA
        >>> iris, test = pg.load_dataset("iris"), pg.load_dataset("iris", "test")
        >>> qda = pg.models.QuadraticDiscriminantAnalysis(4, num_classes=3).fit_closed_form(iris.x, iris.y)
        >>> sk = SkQDA(reg_param=0.01).fit(iris.x.numpy(), iris.y.numpy())
        >>> agree = (qda.predict(test.x).numpy() == sk.predict(test.x.numpy())).mean()
        >>> bool(agree >= 0.9), (qda.predict(test.x) == test.y).float().mean().item()  # test accuracy
        (True, 1.0)
    """

    shared_covariance = False
