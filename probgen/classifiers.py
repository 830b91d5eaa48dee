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
from probgen.models.naive_bayes import (
    BernoulliNaiveBayes,
    CategoricalNaiveBayes,
    GaussianNaiveBayes,
)

__all__ = ["GaussianNB", "BernoulliNB", "CategoricalNB", "LDA", "QDA"]


class _GenerativeClassifier(ClassifierMixin, BaseEstimator):
    _model_cls: type = GaussianNaiveBayes

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
    def _model_kwargs(self) -> dict[str, Any]:
        return {}

    def _support(self, X: np.ndarray) -> str:
        return "real"

    def _tensor(self, X: Any) -> torch.Tensor:
        check_is_fitted(self, "model_")
        X = check_array(X, dtype=np.float64)
        if X.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X has {X.shape[1]} features, but {type(self).__name__} was fitted with {self.n_features_in_} features"
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
        kwargs = self._model_kwargs()
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
            strategy_options=(
                {"num_samples": self.num_samples, "warmup_steps": self.warmup_steps}
                if model.fit_strategy == "nuts"
                else {}
            ),
        )
        self.model_ = model
        return self

    # -------------------------------------------------------------- sklearn API
    def predict_log_proba(self, X: Any) -> np.ndarray:
        """``log p(y | x, training data)``, rows normalised by logsumexp."""
        x = self._tensor(X)
        with torch.no_grad():
            return self.model_.predict_log_proba(x).numpy()

    def predict_proba(self, X: Any) -> np.ndarray:
        return np.exp(self.predict_log_proba(X))

    def predict(self, X: Any) -> np.ndarray:
        best = self.predict_log_proba(X).argmax(1)
        return self.classes_[best]

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
        x = self._tensor(X)
        with torch.no_grad():
            return self.model_.log_prob(x).numpy()

    def joint_log_prob(self, X: Any) -> np.ndarray:
        x = self._tensor(X)
        with torch.no_grad():
            return self.model_.joint_log_prob(x).numpy()

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
        x_t = self._tensor(X)
        y = np.asarray(y)
        unseen = np.setdiff1d(np.unique(y), self.classes_)
        if len(unseen):
            raise ValueError(f"labels {unseen.tolist()} were not seen in training")
        codes = torch.as_tensor(np.searchsorted(self.classes_, y))
        return self.model_.to_inference_data(x_t, codes, **kwargs)


class GaussianNB(_GenerativeClassifier):
    """Bayesian Gaussian Naive Bayes (Normal-Gamma priors); see
    :class:`~probgen.models.naive_bayes.GaussianNaiveBayes`."""

    _model_cls = GaussianNaiveBayes

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
        seed: int = 0,
    ) -> None:
        super().__init__(
            method=method,
            num_posterior_samples=num_posterior_samples,
            epochs=epochs,
            lr=lr,
            num_samples=num_samples,
            warmup_steps=warmup_steps,
            seed=seed,
        )
        self.var_smoothing = var_smoothing
        self.prior_kappa = prior_kappa

    def _model_kwargs(self) -> dict[str, Any]:
        return {"var_smoothing": self.var_smoothing, "prior_kappa": self.prior_kappa}


class BernoulliNB(_GenerativeClassifier):
    """Bayesian Bernoulli Naive Bayes (Beta priors) for 0/1 features."""

    _model_cls = BernoulliNaiveBayes

    def __init__(
        self,
        *,
        prior_a: float = 1.0,
        prior_b: float = 1.0,
        method: str = "conjugate",
        num_posterior_samples: int = 100,
        epochs: int = 500,
        lr: float = 0.05,
        num_samples: int = 300,
        warmup_steps: int = 200,
        seed: int = 0,
    ) -> None:
        super().__init__(
            method=method,
            num_posterior_samples=num_posterior_samples,
            epochs=epochs,
            lr=lr,
            num_samples=num_samples,
            warmup_steps=warmup_steps,
            seed=seed,
        )
        self.prior_a = prior_a
        self.prior_b = prior_b

    def _model_kwargs(self) -> dict[str, Any]:
        return {"prior_a": self.prior_a, "prior_b": self.prior_b}

    def _support(self, X: np.ndarray) -> str:
        if not np.isin(X, (0.0, 1.0)).all():
            raise ValueError("BernoulliNB needs binary features (0/1); binarize them first")
        return "binary"


class CategoricalNB(_GenerativeClassifier):
    """Bayesian categorical Naive Bayes (Dirichlet priors) for features in ``0..num_levels-1``."""

    _model_cls = CategoricalNaiveBayes

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
        seed: int = 0,
    ) -> None:
        super().__init__(
            method=method,
            num_posterior_samples=num_posterior_samples,
            epochs=epochs,
            lr=lr,
            num_samples=num_samples,
            warmup_steps=warmup_steps,
            seed=seed,
        )
        self.prior_alpha = prior_alpha
        self.num_levels = num_levels

    def _model_kwargs(self) -> dict[str, Any]:
        return {"prior_alpha": self.prior_alpha}

    def _support(self, X: np.ndarray) -> str:
        if (X < 0).any() or (X != np.round(X)).any():
            raise ValueError("CategoricalNB needs non-negative integer features")
        levels = self.num_levels if self.num_levels is not None else int(X.max()) + 1
        return f"discrete({max(levels, 2)})"


class LDA(TransformerMixin, _GenerativeClassifier):
    """Bayesian Linear Discriminant Analysis; ``transform`` gives the Fisher projection."""

    _model_cls = LinearDiscriminantAnalysis

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
        seed: int = 0,
    ) -> None:
        super().__init__(
            method=method,
            num_posterior_samples=num_posterior_samples,
            epochs=epochs,
            lr=lr,
            num_samples=num_samples,
            warmup_steps=warmup_steps,
            seed=seed,
        )
        self.reg_param = reg_param
        self.n_components = n_components

    def _model_kwargs(self) -> dict[str, Any]:
        return {"reg_param": self.reg_param}

    def transform(self, X: Any) -> np.ndarray:
        x = self._tensor(X)
        with torch.no_grad():
            return self.model_.transform(x, self.n_components).numpy()


class QDA(_GenerativeClassifier):
    """Bayesian Quadratic Discriminant Analysis (one covariance per class)."""

    _model_cls = QuadraticDiscriminantAnalysis

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
        seed: int = 0,
    ) -> None:
        super().__init__(
            method=method,
            num_posterior_samples=num_posterior_samples,
            epochs=epochs,
            lr=lr,
            num_samples=num_samples,
            warmup_steps=warmup_steps,
            seed=seed,
        )
        self.reg_param = reg_param

    def _model_kwargs(self) -> dict[str, Any]:
        return {"reg_param": self.reg_param}
