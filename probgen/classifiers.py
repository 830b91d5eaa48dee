"""scikit-learn estimators around the Bayesian generative classifiers.

Each estimator follows scikit-learn's contract (keyword-only ``__init__`` that only stores
its arguments, fitted attributes ending in ``_``, ``fit`` returning ``self``, a clear error
when used before ``fit``) and passes ``sklearn.utils.estimator_checks.parametrize_with_checks``
with the tags of its scikit-learn counterpart, so it works in ``cross_val_score``,
``GridSearchCV`` and ``Pipeline``. Labels may be any sortable values (strings included).

As in scikit-learn's ``_BaseNB``, the subclasses only say which model they wrap, which of their
parameters go to it, and how their input is checked; fitting, prediction, the generative side
(``log_prob``, ``sample``) and ArviZ output are derived once, in :class:`_GenerativeClassifier`.

References:
    Pedregosa et al., "Scikit-learn: Machine Learning in Python", JMLR 12 (2011).
    Buitinck et al., "API design for machine learning software: experiences from the
    scikit-learn project" (2013), arXiv:1309.0238.

Example:
    >>> from sklearn.datasets import load_iris
    >>> from sklearn.model_selection import cross_val_score
    >>> X, y = load_iris(return_X_y=True)
    >>> bool(cross_val_score(GaussianNB(), X, y, cv=5).mean() > 0.9)
    True
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin, TransformerMixin
from sklearn.preprocessing import binarize as binarize_array
from sklearn.utils import Tags
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, check_non_negative, validate_data

from probgen.inference import fit
from probgen.models.discriminant import LinearDiscriminantAnalysis, QuadraticDiscriminantAnalysis
from probgen.models.generative_classifier import GenerativeClassifier
from probgen.models.naive_bayes import BernoulliNaiveBayes, CategoricalNaiveBayes, GaussianNaiveBayes

__all__ = ["GaussianNB", "BernoulliNB", "CategoricalNB", "LDA", "QDA"]


class _GenerativeClassifier(ClassifierMixin, BaseEstimator):
    """Everything the five estimators share, derived from the wrapped model's joint predictive.

    Subclasses set ``_model_cls`` and ``_model_params`` (their own ``__init__`` parameters passed
    to the model as they are) and may override :meth:`_check_support` (binarize, integer levels)
    and :meth:`_support` (the model's support string for the training features).

    Args (common to every subclass):
        method: the posterior: "conjugate" (closed form, exact predictive; the default), "map",
            "vi" or "nuts".
        num_posterior_samples: draws averaged by the "vi"/"nuts" predictive.
        epochs, lr: the SVI budget of "map" and "vi".
        num_samples, warmup_steps, num_chains: NUTS draws and warm-up per chain, and the number
            of chains (two or more, so R-hat is defined).
        seed: the fit's random seed.
    """

    _model_cls: ClassVar[type[GenerativeClassifier]]
    _model_params: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self,
        *,
        method: str,
        num_posterior_samples: int,
        epochs: int,
        lr: float,
        num_samples: int,
        warmup_steps: int,
        num_chains: int,
        seed: int,
    ) -> None:
        self.method = method
        self.num_posterior_samples = num_posterior_samples
        self.epochs = epochs
        self.lr = lr
        self.num_samples = num_samples
        self.warmup_steps = warmup_steps
        self.num_chains = num_chains
        self.seed = seed

    # -------------------------------------------------------------- input checks (hooks)
    def _check_support(self, X: np.ndarray) -> np.ndarray:
        """Features as the model takes them (after scikit-learn's own validation)."""
        return X

    def _support(self, X: np.ndarray) -> str:
        return "real"

    def _check_X(self, X: Any) -> np.ndarray:
        """Validated prediction input: fitted, same number of features as in ``fit``, on the support."""
        check_is_fitted(self, "model_")
        return self._check_support(validate_data(self, X, dtype=np.float64, reset=False))

    def _tensor(self, X: Any) -> torch.Tensor:
        return torch.tensor(self._check_X(X))  # a copy: validated arrays may be read-only

    # -------------------------------------------------------------- fitting
    def _strategy_options(self, fit_strategy: str) -> dict[str, Any]:
        if fit_strategy != "nuts":
            return {}
        return {"num_samples": self.num_samples, "warmup_steps": self.warmup_steps, "num_chains": self.num_chains}

    def fit(self, X: Any, y: Any) -> _GenerativeClassifier:
        """Fit the posterior (by ``method``) on features ``X`` and labels ``y``; returns ``self``."""
        X, y = validate_data(self, X, y, dtype=np.float64)
        check_classification_targets(y)
        X = self._check_support(X)
        self.classes_, codes = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError(f"need at least 2 classes, got 1 class: {self.classes_.tolist()}")
        model = self._model_cls(
            (self.n_features_in_,),
            self._support(X),
            num_classes=len(self.classes_),
            method=self.method,
            num_samples=self.num_posterior_samples,  # the model's name in the one vocabulary
            **{name: getattr(self, name) for name in self._model_params},
        ).double()
        fit(
            model,
            (torch.tensor(X), torch.tensor(codes)),
            epochs=self.epochs,
            batch_size=len(X),
            lr=self.lr,
            seed=self.seed,
            progress=False,
            strategy_options=self._strategy_options(model.fit_strategy),
        )
        self.model_ = model
        return self

    # -------------------------------------------------------------- prediction, derived from one place
    def predict_joint_log_proba(self, X: Any) -> np.ndarray:
        """``log p(x_n, y = c | training data)``, ``[n_samples, n_classes]`` (as scikit-learn's NB)."""
        x = self._tensor(X)
        with torch.no_grad():
            return self.model_.joint_log_prob(x).numpy()

    def joint_log_prob(self, X: Any) -> np.ndarray:
        """Alias of :meth:`predict_joint_log_proba` (probgen's name)."""
        return self.predict_joint_log_proba(X)

    def log_prob(self, X: Any) -> np.ndarray:
        """``log p(x | training data)`` per row, in nats (``logsumexp`` over classes)."""
        return np.logaddexp.reduce(self.predict_joint_log_proba(X), axis=1)

    def predict_log_proba(self, X: Any) -> np.ndarray:
        """``log p(y | x, training data)``, rows normalised by logsumexp."""
        joint = self.predict_joint_log_proba(X)
        return joint - np.logaddexp.reduce(joint, axis=1, keepdims=True)

    def predict_proba(self, X: Any) -> np.ndarray:
        return np.exp(self.predict_log_proba(X))

    def predict(self, X: Any) -> np.ndarray:
        best = self.predict_joint_log_proba(X).argmax(1)  # checks fitted before classes_ is read
        return self.classes_[best]

    def _codes(self, y: Any) -> np.ndarray:
        y = np.asarray(y)
        unseen = np.setdiff1d(np.unique(y), self.classes_)
        if len(unseen):
            raise ValueError(f"labels {unseen.tolist()} were not seen in training (classes: {self.classes_.tolist()})")
        return np.searchsorted(self.classes_, y)

    def score(self, X: Any, y: Any, sample_weight: Any = None) -> float:
        """Accuracy; labels never seen in training are an error, not a silent miss."""
        check_is_fitted(self, "model_")
        self._codes(y)
        return super().score(X, y, sample_weight)

    # -------------------------------------------------------------- generative side
    def sample(self, n: int, y: Any = None) -> np.ndarray:
        """``n`` feature vectors from the posterior predictive (of class ``y`` when given)."""
        check_is_fitted(self, "model_")
        code = None
        if y is not None:
            hits = np.flatnonzero(self.classes_ == y)
            if not len(hits):
                raise ValueError(f"unknown class {y!r}; expected one of {self.classes_.tolist()}")
            code = int(hits[0])
        with torch.no_grad():
            return self.model_.sample(n, code).numpy()

    def to_inference_data(self, X: Any, y: Any, *, log_likelihood: bool | None = True, **kwargs: Any) -> Any:
        """ArviZ InferenceData of the posterior on ``(X, y)`` for ``az.summary``, ``az.loo`` and
        ``az.compare``: posterior, log_likelihood (``obs``: ``log p(x_n, y_n | theta_s)``),
        posterior_predictive and observed_data, with dimensions ``class`` (coordinates: ``classes_``),
        ``feature`` (``feature_names_in_`` when fitted on a DataFrame, else ``0..D-1``) and ``obs_id``.

        The exact ("conjugate") and "vi" posteriors give 4 chains of independent draws by default
        (``num_samples`` in all, ``num_chains``), so R-hat is defined (and near 1); a NUTS fit keeps
        its ``num_chains`` chains. A "map" fit exports independent draws of the Laplace approximation
        at its mode (the Hessian of the negative log joint there), so LOO is defined for it too.
        Other options: see :meth:`probgen.models.posterior.Posterior.to_inference_data`.

        Example:
            >>> from sklearn.datasets import load_iris
            >>> X, y = load_iris(return_X_y=True, as_frame=True)
            >>> idata = QDA().fit(X, y).to_inference_data(X, y, num_samples=40)
            >>> idata.posterior["precision"].dims
            ('chain', 'draw', 'class', 'feature', 'feature_bis')
            >>> idata.posterior["loc"].coords["feature"].values[:2].tolist()
            ['sepal length (cm)', 'sepal width (cm)']
        """
        x = self._tensor(X)
        names = getattr(self, "feature_names_in_", None)  # set by validate_data for a DataFrame only
        coords = {"class": self.classes_, "feature": np.arange(self.n_features_in_) if names is None else names}
        coords |= kwargs.pop("coords", None) or {}
        codes = torch.as_tensor(self._codes(y))
        return self.model_.to_inference_data(x, codes, log_likelihood=log_likelihood, coords=coords, **kwargs)


class GaussianNB(_GenerativeClassifier):
    """Bayesian Gaussian Naive Bayes (Normal-Gamma priors); see
    :class:`~probgen.models.naive_bayes.GaussianNaiveBayes`.

    Args:
        var_smoothing: scikit-learn's variance floor, as a fraction of the largest feature variance.
        prior_kappa: the Normal-Gamma prior's pseudo-count on the class means.
        The remaining arguments: see :class:`_GenerativeClassifier`.

    Example:
        >>> from sklearn.datasets import load_iris
        >>> X, y = load_iris(return_X_y=True)
        >>> GaussianNB().fit(X, y).predict_proba(X[:1]).round(3)
        array([[1., 0., 0.]])
    """

    _model_cls = GaussianNaiveBayes
    _model_params = ("var_smoothing", "prior_kappa")

    def __init__(
        self,
        *,
        var_smoothing: float = 1e-9,
        prior_kappa: float = 1e-6,
        method: str = "conjugate",
        num_posterior_samples: int = 100,
        epochs: int = 500,
        lr: float = 0.05,
        num_samples: int = 300,
        warmup_steps: int = 200,
        num_chains: int = 2,
        seed: int = 0,
    ) -> None:
        super().__init__(
            method=method,
            num_posterior_samples=num_posterior_samples,
            epochs=epochs,
            lr=lr,
            num_samples=num_samples,
            warmup_steps=warmup_steps,
            num_chains=num_chains,
            seed=seed,
        )
        self.var_smoothing = var_smoothing
        self.prior_kappa = prior_kappa


class BernoulliNB(_GenerativeClassifier):
    """Bayesian Bernoulli Naive Bayes (Beta priors) for 0/1 features.

    Args:
        prior_a, prior_b: the Beta prior of each class's feature probabilities (1, 1: scikit-learn's
            ``alpha=1``).
        binarize: features above this threshold become 1, the others 0 (as in scikit-learn's
            ``BernoulliNB``); None takes the features as already binary and refuses any other value.
        The remaining arguments: see :class:`_GenerativeClassifier`.

    Example:
        >>> X = [[0.0, 2.0], [0.0, 3.0], [1.0, 0.0], [2.0, 0.0]]
        >>> BernoulliNB().fit(X, ["a", "a", "b", "b"]).predict([[5.0, 0.0]])
        array(['b'], dtype='<U1')
    """

    _model_cls = BernoulliNaiveBayes
    _model_params = ("prior_a", "prior_b")

    def __init__(
        self,
        *,
        prior_a: float = 1.0,
        prior_b: float = 1.0,
        binarize: float | None = 0.0,
        method: str = "conjugate",
        num_posterior_samples: int = 100,
        epochs: int = 500,
        lr: float = 0.05,
        num_samples: int = 300,
        warmup_steps: int = 200,
        num_chains: int = 2,
        seed: int = 0,
    ) -> None:
        super().__init__(
            method=method,
            num_posterior_samples=num_posterior_samples,
            epochs=epochs,
            lr=lr,
            num_samples=num_samples,
            warmup_steps=warmup_steps,
            num_chains=num_chains,
            seed=seed,
        )
        self.prior_a = prior_a
        self.prior_b = prior_b
        self.binarize = binarize

    def __sklearn_tags__(self) -> Tags:
        tags = super().__sklearn_tags__()
        tags.classifier_tags.poor_score = True  # as scikit-learn's BernoulliNB
        return tags

    def _check_support(self, X: np.ndarray) -> np.ndarray:
        if self.binarize is not None:
            return binarize_array(X, threshold=self.binarize)
        if not np.isin(X, (0.0, 1.0)).all():
            found = np.unique(X[~np.isin(X, (0.0, 1.0))])[:5].tolist()
            raise ValueError(f"BernoulliNB(binarize=None) needs binary features (0/1); got values such as {found}")
        return X

    def _support(self, X: np.ndarray) -> str:
        return "binary"


class CategoricalNB(_GenerativeClassifier):
    """Bayesian categorical Naive Bayes (Dirichlet priors) for features in ``0..num_levels-1``.

    Args:
        prior_alpha: the symmetric Dirichlet prior of each class's level probabilities (1:
            scikit-learn's ``alpha=1``).
        num_levels: the number of levels of every feature (None: the training maximum + 1).
        The remaining arguments: see :class:`_GenerativeClassifier`.

    Example:
        >>> X = [[0, 2], [0, 1], [1, 0], [2, 0]]
        >>> CategoricalNB().fit(X, [0, 0, 1, 1]).predict([[2, 0]])
        array([1])
    """

    _model_cls = CategoricalNaiveBayes
    _model_params = ("prior_alpha",)

    def __init__(
        self,
        *,
        prior_alpha: float = 1.0,
        num_levels: int | None = None,
        method: str = "conjugate",
        num_posterior_samples: int = 100,
        epochs: int = 500,
        lr: float = 0.05,
        num_samples: int = 300,
        warmup_steps: int = 200,
        num_chains: int = 2,
        seed: int = 0,
    ) -> None:
        super().__init__(
            method=method,
            num_posterior_samples=num_posterior_samples,
            epochs=epochs,
            lr=lr,
            num_samples=num_samples,
            warmup_steps=warmup_steps,
            num_chains=num_chains,
            seed=seed,
        )
        self.prior_alpha = prior_alpha
        self.num_levels = num_levels

    def __sklearn_tags__(self) -> Tags:
        tags = super().__sklearn_tags__()  # as scikit-learn's CategoricalNB
        tags.input_tags.categorical = True
        tags.input_tags.positive_only = True
        tags.classifier_tags.poor_score = True
        return tags

    def _check_support(self, X: np.ndarray) -> np.ndarray:
        check_non_negative(X, "CategoricalNB (input X)")
        if (X != np.round(X)).any():
            found = np.unique(X[X != np.round(X)])[:5].tolist()
            raise ValueError(f"CategoricalNB needs non-negative integer features (levels); got values such as {found}")
        return X

    def _support(self, X: np.ndarray) -> str:
        levels = self.num_levels if self.num_levels is not None else int(X.max()) + 1
        return f"discrete({max(levels, 2)})"


class LDA(TransformerMixin, _GenerativeClassifier):
    """Bayesian Linear Discriminant Analysis; ``transform`` gives the Fisher projection.

    Args:
        reg_param: the shrinkage of the shared covariance towards ``reg_param * I``.
        n_components: the number of Fisher directions ``transform`` keeps (None: ``C - 1``).
        The remaining arguments: see :class:`_GenerativeClassifier`.

    Example:
        >>> from sklearn.datasets import load_wine
        >>> X, y = load_wine(return_X_y=True)
        >>> LDA(n_components=1).fit(X, y).transform(X).shape
        (178, 1)
    """

    _model_cls = LinearDiscriminantAnalysis
    _model_params = ("reg_param",)

    def __init__(
        self,
        *,
        reg_param: float = 1e-4,
        n_components: int | None = None,
        method: str = "conjugate",
        num_posterior_samples: int = 100,
        epochs: int = 500,
        lr: float = 0.05,
        num_samples: int = 300,
        warmup_steps: int = 200,
        num_chains: int = 2,
        seed: int = 0,
    ) -> None:
        super().__init__(
            method=method,
            num_posterior_samples=num_posterior_samples,
            epochs=epochs,
            lr=lr,
            num_samples=num_samples,
            warmup_steps=warmup_steps,
            num_chains=num_chains,
            seed=seed,
        )
        self.reg_param = reg_param
        self.n_components = n_components

    def transform(self, X: Any) -> np.ndarray:
        """Project onto the top ``n_components`` Fisher discriminant directions."""
        x = self._tensor(X)
        with torch.no_grad():
            return self.model_.transform(x, self.n_components).numpy()


class QDA(_GenerativeClassifier):
    """Bayesian Quadratic Discriminant Analysis (one covariance per class).

    Args:
        reg_param: the shrinkage of each class's covariance towards ``reg_param * I`` (as
            scikit-learn's ``QuadraticDiscriminantAnalysis(reg_param=...)``).
        The remaining arguments: see :class:`_GenerativeClassifier`.

    Example:
        >>> from sklearn.datasets import load_iris
        >>> X, y = load_iris(return_X_y=True)
        >>> QDA().fit(X, y).score(X, y) > 0.95
        True
    """

    _model_cls = QuadraticDiscriminantAnalysis
    _model_params = ("reg_param",)

    def __init__(
        self,
        *,
        reg_param: float = 0.01,
        method: str = "conjugate",
        num_posterior_samples: int = 100,
        epochs: int = 500,
        lr: float = 0.05,
        num_samples: int = 300,
        warmup_steps: int = 200,
        num_chains: int = 2,
        seed: int = 0,
    ) -> None:
        super().__init__(
            method=method,
            num_posterior_samples=num_posterior_samples,
            epochs=epochs,
            lr=lr,
            num_samples=num_samples,
            warmup_steps=warmup_steps,
            num_chains=num_chains,
            seed=seed,
        )
        self.reg_param = reg_param
