"""scikit-learn estimators around the Bayesian generative classifiers.

Each estimator follows scikit-learn's contract (keyword-only ``__init__`` that only stores
its arguments, fitted attributes ending in ``_``, ``fit`` returning ``self``, a clear error
when used before ``fit``), so it works in ``cross_val_score``, ``GridSearchCV`` and
``Pipeline``. Labels may be any sortable values (strings included), as in scikit-learn.

Example:
    >>> from sklearn.datasets import load_iris
    >>> from sklearn.model_selection import cross_val_score
    >>> X, y = load_iris(return_X_y=True)
    >>> cross_val_score(GaussianNB(), X, y, cv=5).mean() > 0.9
    True
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin, TransformerMixin
from sklearn.utils.validation import check_array, check_is_fitted, check_X_y

from probgen.models.discriminant import LinearDiscriminantAnalysis, QuadraticDiscriminantAnalysis
from probgen.models.naive_bayes import BernoulliNaiveBayes, CategoricalNaiveBayes, GaussianNaiveBayes

__all__ = ["GaussianNB", "BernoulliNB", "CategoricalNB", "LDA", "QDA"]


class _GenerativeClassifier(ClassifierMixin, BaseEstimator):
    _model_cls: type = GaussianNaiveBayes
    _model_params: tuple[str, ...] = ()

    def __init__(
        self,
        *,
        method: str = "conjugate",
        num_posterior_samples: int = 100,
        epochs: int = 500,
        lr: float = 0.05,
        num_samples: int = 300,
        warmup_steps: int = 200,
        seed: int = 0,
    ) -> None:
        self.method = method
        self.num_posterior_samples = num_posterior_samples
        self.epochs = epochs
        self.lr = lr
        self.num_samples = num_samples
        self.warmup_steps = warmup_steps
        self.seed = seed

    # -------------------------------------------------------------- helpers
    def _support(self, X: np.ndarray) -> str:
        return "real"

    def _tensor(self, X: Any) -> torch.Tensor:
        check_is_fitted(self, "model_")
        X = check_array(X, dtype=np.float64)
        if X.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X has {X.shape[1]} features, but {type(self).__name__} was fitted with "
                f"{self.n_features_in_} features"
            )
        return torch.as_tensor(X)

    def fit(self, X: Any, y: Any) -> _GenerativeClassifier:
        """Fit the posterior (by ``method``) on features ``X`` and labels ``y``."""
        import probgen as pg

        X, y = check_X_y(X, y, dtype=np.float64)
        self.classes_, encoded = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError(f"need at least 2 classes, got {len(self.classes_)}: {self.classes_}")
        self.n_features_in_ = X.shape[1]
        kwargs = {name: getattr(self, name) for name in self._model_params}
        model = self._model_cls(
            (X.shape[1],),
            self._support(X),
            len(self.classes_),
            method=self.method,
            num_posterior_samples=self.num_posterior_samples,
            **kwargs,
        ).double()
        x_t, y_t = torch.as_tensor(X), torch.as_tensor(encoded)
        pg.fit(
            model,
            (x_t, y_t),
            epochs=self.epochs,
            batch_size=len(X),
            lr=self.lr,
            seed=self.seed,
            progress=False,
            nuts={"num_samples": self.num_samples, "warmup_steps": self.warmup_steps, "seed": self.seed},
        )
        self.model_ = model
        return self

    # -------------------------------------------------------------- sklearn API
    def predict_log_proba(self, X: Any) -> np.ndarray:
        """``log p(y | x, training data)``, rows normalised by logsumexp."""
        with torch.no_grad():
            return self.model_.predict_log_proba(self._tensor(X)).numpy()

    def predict_proba(self, X: Any) -> np.ndarray:
        return np.exp(self.predict_log_proba(X))

    def predict(self, X: Any) -> np.ndarray:
        return self.classes_[self.predict_log_proba(X).argmax(1)]

    def score(self, X: Any, y: Any, sample_weight: Any = None) -> float:
        """Accuracy; labels never seen in training are an error, not a silent miss."""
        check_is_fitted(self, "model_")
        unseen = np.setdiff1d(np.unique(np.asarray(y)), self.classes_)
        if len(unseen):
            raise ValueError(f"labels {unseen.tolist()} were not seen in training (classes: {self.classes_.tolist()})")
        return super().score(X, y, sample_weight)

    # -------------------------------------------------------------- generative side
    def log_prob(self, X: Any) -> np.ndarray:
        """``log p(x | training data)`` per row, in nats (``logsumexp`` over classes)."""
        with torch.no_grad():
            return self.model_.log_prob(self._tensor(X)).numpy()

    def joint_log_prob(self, X: Any) -> np.ndarray:
        with torch.no_grad():
            return self.model_.joint_log_prob(self._tensor(X)).numpy()

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

    def to_inference_data(self, X: Any, y: Any, **kwargs: Any):
        """ArviZ InferenceData (posterior, log_likelihood, posterior_predictive, observed_data)."""
        from probgen.inference.mcmc import to_inference_data

        x_t = self._tensor(X)
        y = np.asarray(y)
        unseen = np.setdiff1d(np.unique(y), self.classes_)
        if len(unseen):
            raise ValueError(f"labels {unseen.tolist()} were not seen in training")
        codes = torch.as_tensor(np.searchsorted(self.classes_, y))
        return to_inference_data(self.model_, (x_t, codes), **kwargs)


def _with_params(cls, names: tuple[str, ...], defaults: dict[str, Any]):
    """Give an estimator class extra keyword-only hyperparameters (stored as given)."""
    base_init = _GenerativeClassifier.__init__

    def __init__(self, **kwargs):
        extra = {k: kwargs.pop(k, defaults[k]) for k in names}
        base_init(self, **kwargs)
        for key, value in extra.items():
            setattr(self, key, value)

    import inspect

    params = list(inspect.signature(base_init).parameters.values())
    params += [inspect.Parameter(k, inspect.Parameter.KEYWORD_ONLY, default=defaults[k]) for k in names]
    __init__.__signature__ = inspect.Signature(params)
    cls.__init__ = __init__
    cls._model_params = names
    return cls


class GaussianNB(_GenerativeClassifier):
    """Bayesian Gaussian Naive Bayes (Normal-Gamma priors); see
    :class:`~probgen.models.naive_bayes.GaussianNaiveBayes`."""

    _model_cls = GaussianNaiveBayes


class BernoulliNB(_GenerativeClassifier):
    """Bayesian Bernoulli Naive Bayes (Beta priors) for 0/1 features."""

    _model_cls = BernoulliNaiveBayes

    def _support(self, X: np.ndarray) -> str:
        if not np.isin(X, (0.0, 1.0)).all():
            raise ValueError("BernoulliNB needs binary features (0/1); binarize them first")
        return "binary"


class CategoricalNB(_GenerativeClassifier):
    """Bayesian categorical Naive Bayes (Dirichlet priors) for features in ``0..num_levels-1``."""

    _model_cls = CategoricalNaiveBayes

    def _support(self, X: np.ndarray) -> str:
        if (X < 0).any() or (X != np.round(X)).any():
            raise ValueError("CategoricalNB needs non-negative integer features")
        levels = self.num_levels if self.num_levels is not None else int(X.max()) + 1
        return f"discrete({max(levels, 2)})"


class LDA(TransformerMixin, _GenerativeClassifier):
    """Bayesian Linear Discriminant Analysis; ``transform`` gives the Fisher projection."""

    _model_cls = LinearDiscriminantAnalysis

    def transform(self, X: Any) -> np.ndarray:
        with torch.no_grad():
            return self.model_.transform(self._tensor(X), self.n_components).numpy()


class QDA(_GenerativeClassifier):
    """Bayesian Quadratic Discriminant Analysis (one covariance per class)."""

    _model_cls = QuadraticDiscriminantAnalysis


_with_params(GaussianNB, ("var_smoothing", "prior_kappa"), {"var_smoothing": 1e-9, "prior_kappa": 0.01})
_with_params(BernoulliNB, ("prior_a", "prior_b"), {"prior_a": 1.0, "prior_b": 1.0})
_with_params(CategoricalNB, ("prior_alpha", "num_levels"), {"prior_alpha": 1.0, "num_levels": None})
_with_params(LDA, ("reg_param", "n_components"), {"reg_param": 1e-4, "n_components": None})
_with_params(QDA, ("reg_param",), {"reg_param": 0.01})
