"""Bayesian generative classifiers: p(x, y) = p(y) p(x | y), classification by Bayes' rule.

The shared machinery of Naive Bayes and Linear/Quadratic Discriminant Analysis. Every
classifier is one Pyro model with priors on the class weights (Dirichlet) and on the
class-conditional parameters. ``method`` picks the posterior object the fit produces
(:mod:`probgen.models.posterior`):

- ``"conjugate"``: the closed-form posterior (streamed over batches); exact predictive.
- ``"map"``: SVI with an ``AutoDelta`` guide (the posterior mode); plug-in predictive.
- ``"vi"``: SVI with an ``AutoNormal`` guide; the predictive averages fresh guide draws.
- ``"nuts"``: NUTS draws; the predictive averages them.

Whatever the method, ``joint_log_prob(x)[n, c] = log p(x_n, y=c | training data)`` and
``log_prob(x) = logsumexp_c joint_log_prob(x)``; prediction is derived once, here.
"""

from __future__ import annotations

from typing import Any, ClassVar

import pyro
import pyro.distributions as dist
import torch
from pyro.nn import pyro_method
from torch import Tensor

from probgen._checks import check_int, check_positive
from probgen.models.base import GenerativeModel, data_plate, model_labels
from probgen.models.closed_form import ClosedFormFit
from probgen.models.posterior import POSTERIORS

__all__ = ["GenerativeClassifier", "METHODS"]

METHODS = tuple(POSTERIORS)


class GenerativeClassifier(ClosedFormFit, GenerativeModel):
    """Base of the Bayesian generative classifiers (see the module docstring).

    Subclasses define the global sites (:meth:`_sample_params`, named in ``sites``), the
    class-conditional likelihood for a batch of parameter draws (:meth:`_class_log_lik`),
    sampling (:meth:`replicate`), the batch statistics (:meth:`_statistics`) and, from their
    sums, the empirical-Bayes prior (:meth:`_set_prior`), the conjugate posterior
    (:meth:`_set_conjugate`, :meth:`_conjugate_class_log_pred`, :meth:`_conjugate_site_draws`)
    and where SVI starts (:meth:`_moment_values`).

    Example:
        >>> import probgen as pg, torch
        >>> iris, test = pg.load_dataset("iris"), pg.load_dataset("iris", "test")
        >>> nb = pg.models.GaussianNaiveBayes(4, num_classes=3, method="conjugate").fit_closed_form(iris.x, iris.y)
        >>> isinstance(nb, pg.models.GenerativeClassifier), nb.density, nb.predictive
        (True, 'exact', 'posterior')
        >>> log_joint = nb.joint_log_prob(test.x)  # log p(x, y) for each class y
        >>> torch.allclose(nb.predict_log_proba(test.x), log_joint - log_joint.logsumexp(-1, keepdim=True), atol=1e-5)
        True
        >>> bool((nb.predict(test.x) == log_joint.argmax(-1)).all())
        True
    """

    supports: ClassVar[tuple[str, ...]] = ("real",)
    needs_labels: ClassVar[bool] = True
    vectorizable: ClassVar[bool] = False
    #: the global sites besides the class weights "pi", in the order the model samples them
    sites: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self,
        event_shape,
        support: str,
        *,
        num_classes: int,
        method: str = "conjugate",
        prior_class: float = 1.0,
        num_samples: int = 100,
    ) -> None:
        super().__init__(event_shape, support)
        check_int("num_classes", num_classes, minimum=2)
        if method not in POSTERIORS:
            raise ValueError(f"unknown method {method!r}; expected one of {METHODS}")
        check_positive("prior_class", prior_class)  # the classes' Dirichlet concentration
        check_int("num_samples", num_samples)
        self.num_classes, self.method = num_classes, method
        self.prior_class, self.num_samples = float(prior_class), num_samples
        self.register_buffer("class_counts", torch.zeros(num_classes))
        self.posterior = POSTERIORS[method](num_samples)

    # ------------------------------------------------------------------ declared by the posterior
    @property
    def fit_strategy(self) -> str:
        return self.posterior.fit_strategy

    @property
    def density(self) -> str:
        return self.posterior.density

    @property
    def predictive(self) -> str:
        """ "posterior", "variational" or "plug-in": what :meth:`log_prob` is the predictive of."""
        return self.posterior.predictive

    # ------------------------------------------------------------------ the Pyro program
    @pyro_method
    def model(self, x: Tensor, y: Tensor | None = None) -> None:
        if y is None:
            raise ValueError(f"{type(self).__name__}.model needs labels y for its data")
        concentration = torch.as_tensor(self.prior_class, dtype=self.dtype, device=self.device).expand(self.num_classes)
        pi = pyro.sample("pi", dist.Dirichlet(concentration))
        params = self._sample_params()
        with data_plate(self, x):
            pyro.sample("y", dist.Categorical(pi), obs=y)
            pyro.sample("x", self._x_given_y(params, y), obs=self._observed(x))

    @pyro_method
    def guide(self, x: Tensor, y: Tensor | None = None) -> Any:
        return self.posterior.guide(self, x, y)

    def _observed(self, x: Tensor) -> Tensor:
        return x.reshape(x.shape[0], -1)

    def _onehot(self, y: Tensor) -> Tensor:
        return torch.nn.functional.one_hot(y, self.num_classes).to(self.dtype)

    # ------------------------------------------------------------------ fitting
    def closed_form_statistics(self, x: Tensor, y: Tensor | None) -> dict[str, Any]:
        onehot = self._onehot(y)
        return {"class_counts": onehot.sum(0), **self._statistics(self._observed(x), onehot)}

    def set_closed_form(self, statistics: dict[str, Any]) -> None:
        self._set_prior(statistics)
        self.class_counts = statistics["class_counts"].to(self.dtype)
        self._set_conjugate(statistics)
        self.posterior.fitted.fill_(True)

    def init_from_data(self, x: Tensor, y: Tensor | None = None) -> None:
        """Set the empirical-Bayes prior from these data; start an optimised posterior at their
        per-class moments."""
        with torch.no_grad():
            statistics = self.closed_form_statistics(self.validate(x), model_labels(self, y, len(x)))
            self._set_prior(statistics)
            self.class_counts = statistics["class_counts"].to(self.dtype)
            counts = statistics["class_counts"]
            pi = (counts + 1) / (counts.sum() + self.num_classes)
            self.posterior.start_at(self, {"pi": pi, **self._moment_values(statistics)})

    def after_fit(self, x: Tensor, y: Tensor | None) -> None:
        """Let the posterior keep what it needs of the training data (a MAP fit: the curvature of
        its Laplace approximation, for the ArviZ export)."""
        self.posterior.after_fit(self, x, model_labels(self, y, len(x)))

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        if any(k.startswith("posterior.autoguide.") for k in state_dict):  # build the lazy guide
            x = torch.zeros(1, *self.event_shape, dtype=self.dtype, device=self.device)
            self.posterior.guide(self, x, torch.zeros(1, dtype=torch.long, device=self.device))
        return super().load_state_dict(state_dict, strict=strict, assign=assign)

    # ------------------------------------------------------------------ the posterior's questions
    def conjugate_draws(self, num_samples: int) -> dict[str, Tensor]:
        """Draws of every global site from the conjugate posterior."""
        pi = dist.Dirichlet(self.class_counts + self.prior_class).sample((num_samples,))
        return {"pi": pi, **self._conjugate_site_draws(num_samples)}

    def conjugate_joint_log_predictive(self, x: Tensor) -> Tensor:
        """The exact posterior predictive ``log p(x_n, y=c | data)``, ``[N, C]``."""
        counts = self.class_counts + self.prior_class
        return counts.log() - counts.sum().log() + self._conjugate_class_log_pred(x)

    def joint_given_params(self, params: dict[str, Tensor], x: Tensor) -> Tensor:
        """``log p(x_n, y=c | theta_s)`` for draws s: ``[S, N, C]``."""
        return params["pi"].log()[:, None, :] + self._class_log_lik(params, x)

    def pointwise_log_likelihood(self, x: Tensor, y: Tensor, params: dict[str, Tensor]) -> Tensor:
        """``log p(x_n, y_n | theta_s)``, ``[S, N]`` (ArviZ's log_likelihood group)."""
        x = self._observed(self.validate(x))
        y = model_labels(self, y, len(x))
        joint = self.joint_given_params(params, x)
        return joint.gather(-1, y.expand(joint.shape[0], -1)[..., None]).squeeze(-1)

    def posterior_draws(self, num_samples: int | None = None) -> dict[str, Tensor]:
        """Draws of every global site from the fitted posterior, ``{site: [S, ...]}``."""
        return self.posterior.draws(self, num_samples)

    def to_inference_data(self, x: Tensor, y: Tensor, *, log_likelihood: bool | None = True, **kwargs: Any) -> Any:
        """ArviZ InferenceData of the posterior on ``(x, y)``, for ``az.summary``, ``az.loo`` and
        ``az.compare`` (see :meth:`Posterior.to_inference_data
        <probgen.models.posterior.Posterior.to_inference_data>` for the groups, chains and
        options). The ``log_likelihood`` group is asked for by default; a MAP fit exports draws
        of the Laplace approximation at its mode, so LOO is defined for it too.

        Example:
            >>> import probgen as pg
            >>> iris = pg.load_dataset("iris")
            >>> nb = pg.models.GaussianNaiveBayes(4, "real", num_classes=3)
            >>> idata = nb.fit_closed_form(iris.x, iris.y).to_inference_data(iris.x, iris.y, num_samples=40)
            >>> dict(idata.posterior["loc"].sizes)
            {'chain': 4, 'draw': 10, 'class': 3, 'feature': 4}
        """
        x = self.validate(x)
        y = model_labels(self, y, len(x))
        return self.posterior.to_inference_data(self, x, y, log_likelihood=log_likelihood, **kwargs)

    def arviz_variables(self, draws: dict[str, Tensor]) -> tuple[dict[str, Tensor], dict[str, list[str]]]:
        """The posterior group of ArviZ output, and the dimension names of each variable.

        Every global site as drawn, except a Cholesky factor ``<name>_tril`` (LDA's and QDA's
        ``precision_tril``), exported as the matrix ``L L^T`` it parametrises (``<name>``): its
        upper triangle is zero in every draw, and the R-hat of a constant is 0 / 0. Dimensions:
        ``class`` (sites with one value per class), ``feature``, ``feature_bis`` (the columns of a
        feature-by-feature matrix, as PyMC names them) and ``level`` (categorical features).
        """
        variables, dims = {}, {}
        for name, value in draws.items():
            event = value.dim() - 1
            if name == "pi":
                variables[name], dims[name] = value, ["class"]
            elif name.endswith("_tril"):
                name = name[: -len("_tril")]
                variables[name] = value @ value.transpose(-1, -2)
                dims[name] = ["class"] * (event == 3) + ["feature", "feature_bis"]
            else:
                variables[name], dims[name] = value, ["class", "feature", "level"][:event]
        return variables, dims

    def arviz_coords(self) -> dict[str, Any]:
        """Default coordinates of the dimensions of :meth:`arviz_variables`: ``0..n-1``."""
        coords: dict[str, Any] = {"class": list(range(self.num_classes)), "feature": list(range(self.num_dims))}
        coords["feature_bis"] = coords["feature"]
        if self.num_levels is not None:
            coords["level"] = list(range(self.num_levels))
        return coords

    # ------------------------------------------------------------------ prediction
    def joint_log_prob(self, x: Tensor) -> Tensor:
        """``log p(x_n, y = c | training data)``, shape ``[N, C]``."""
        return self.posterior.joint_log_predictive(self, self._observed(self.validate(x)))

    def log_prob(self, x: Tensor) -> Tensor:
        """``log p(x | training data) = logsumexp_c log p(x, c | training data)``, ``[N]``."""
        return torch.logsumexp(self.joint_log_prob(x), -1)

    def predict_log_proba(self, x: Tensor) -> Tensor:
        joint = self.joint_log_prob(x)
        return joint - torch.logsumexp(joint, -1, keepdim=True)

    def predict(self, x: Tensor) -> Tensor:
        return self.joint_log_prob(x).argmax(-1)

    def sample(self, n: int, y: Tensor | int | None = None) -> Tensor:
        """Draws from the posterior predictive ``p(x | data)`` (or ``p(x | y, data)``)."""
        n = self._check_n(n)
        with torch.no_grad():
            draws = self.posterior_draws(n)
            pick = torch.randint(0, draws["pi"].shape[0], (n,), device=self.device)
            params = {k: v[pick] for k, v in draws.items()}
            if y is None:
                y = dist.Categorical(params["pi"]).sample()
            else:
                y = model_labels(self, torch.as_tensor(y).expand(n), n)
            return self.replicate(params, y).reshape(n, *self.event_shape)

    def _config_kwargs(self) -> dict[str, Any]:
        return {
            "num_classes": self.num_classes,
            "method": self.method,
            "prior_class": self.prior_class,
            "num_samples": self.num_samples,
        }

    # ------------------------------------------------------------------ subclass hooks
    def _sample_params(self) -> dict[str, Tensor]:
        raise NotImplementedError

    def _x_given_y(self, params: dict[str, Tensor], y: Tensor) -> dist.TorchDistribution:
        raise NotImplementedError

    def _class_log_lik(self, params: dict[str, Tensor], x: Tensor) -> Tensor:
        """``log p(x_n | y=c, theta_s)``: ``[S, N, C]``."""
        raise NotImplementedError

    def replicate(self, params: dict[str, Tensor], y: Tensor) -> Tensor:
        """One x per row given that row's parameters (leading dimension N) and label."""
        raise NotImplementedError

    def _statistics(self, x: Tensor, onehot: Tensor) -> dict[str, Any]:
        """Per-class sufficient statistics of a batch; values add across batches."""
        raise NotImplementedError

    def _set_prior(self, statistics: dict[str, Any]) -> None:
        """Empirical-Bayes prior hyperparameters from the summed statistics (optional)."""

    def _set_conjugate(self, statistics: dict[str, Any]) -> None:
        raise NotImplementedError

    def _moment_values(self, statistics: dict[str, Any]) -> dict[str, Tensor]:
        """Per-class moment estimates of every site in ``sites`` (where SVI starts)."""
        raise NotImplementedError

    def _conjugate_class_log_pred(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def _conjugate_site_draws(self, num_samples: int) -> dict[str, Tensor]:
        raise NotImplementedError
