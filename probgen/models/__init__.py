"""Model families. Each model is a Pyro model/guide pair on the :class:`GenerativeModel` contract.

The registry maps CLI names to classes and says which data each suits and what budget
``probgen compare`` gives it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from probgen.data.support import parse_support
from probgen.models.autoencoder import Autoencoder
from probgen.models.base import DENSITY_KINDS, GenerativeModel
from probgen.models.discriminant import (
    DiscriminantAnalysis,
    LinearDiscriminantAnalysis,
    QuadraticDiscriminantAnalysis,
)
from probgen.models.factorized import (
    Factorized,
    IndependentBernoulli,
    IndependentCategorical,
    IndependentGaussian,
    independent,
)
from probgen.models.generative_classifier import GenerativeClassifier
from probgen.models.naive_bayes import (
    BernoulliNaiveBayes,
    CategoricalNaiveBayes,
    GaussianNaiveBayes,
)
from probgen.models.vae import VAE, ConditionalVAE

__all__ = [
    "DENSITY_KINDS",
    "Autoencoder",
    "BernoulliNaiveBayes",
    "CategoricalNaiveBayes",
    "DiscriminantAnalysis",
    "GaussianNaiveBayes",
    "GenerativeClassifier",
    "LinearDiscriminantAnalysis",
    "QuadraticDiscriminantAnalysis",
    "VAE",
    "ConditionalVAE",
    "VAE",
    "ConditionalVAE",
    "Factorized",
    "GenerativeModel",
    "IndependentBernoulli",
    "IndependentCategorical",
    "IndependentGaussian",
    "MODELS",
    "ModelSpec",
    "build_model",
    "independent",
    "model_class",
    "register",
]


@dataclass(frozen=True)
class ModelSpec:
    """A registered model: its class, a one-line description and its default training budget."""

    cls: type[GenerativeModel]
    description: str
    fit_defaults: dict[str, Any] = field(default_factory=dict)
    needs_labels: bool = False
    #: the model takes ``image_shape=(H, W)`` and should get the dataset's
    uses_image_shape: bool = False

    def suits(self, support: str, has_labels: bool = False) -> bool:
        return parse_support(support)[0] in self.cls.supports and (has_labels or not self.needs_labels)


MODELS: dict[str, ModelSpec] = {}


def register(spec: ModelSpec) -> ModelSpec:
    """Add a model to the registry under ``spec.cls.name``."""
    MODELS[spec.cls.name] = spec
    return spec


def model_class(name: str) -> type[GenerativeModel]:
    """The class registered under ``name``."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; expected one of {sorted(MODELS)}")
    return MODELS[name].cls


def build_model(name: str, data: Any, **kwargs: Any) -> GenerativeModel:
    """An untrained model named ``name`` shaped for ``data`` (a :class:`~probgen.data.Dataset`)."""
    spec = MODELS.get(name)
    if spec is None:
        raise ValueError(f"unknown model {name!r}; expected one of {sorted(MODELS)}")
    if not spec.suits(data.support, data.y is not None):
        needs = " with labels" if spec.needs_labels else ""
        raise ValueError(
            f"model {name!r} does not suit {data.name!r} (support {data.support!r}); "
            f"it needs {'/'.join(spec.cls.supports)} data{needs}"
        )
    if spec.needs_labels:
        kwargs.setdefault("num_classes", max(int(data.y.max()) + 1, 2))
    if spec.uses_image_shape and data.image_shape is not None:
        kwargs.setdefault("image_shape", data.image_shape)
    return spec.cls(data.event_shape, data.support, **kwargs)


_FACTORIZED_BUDGET = {"epochs": 60, "batch_size": 100, "lr": 0.05}
register(ModelSpec(IndependentBernoulli, "independent Bernoulli per dimension, Beta priors", _FACTORIZED_BUDGET))
register(
    ModelSpec(
        IndependentCategorical,
        "independent categorical per dimension, Dirichlet priors",
        _FACTORIZED_BUDGET,
    )
)
register(
    ModelSpec(
        IndependentGaussian,
        "independent Gaussian per dimension, Normal-Gamma priors",
        _FACTORIZED_BUDGET,
    )
)

for _cls, _text in (
    (GaussianNaiveBayes, "Gaussian Naive Bayes classifier, Normal-Gamma priors"),
    (BernoulliNaiveBayes, "Bernoulli Naive Bayes classifier, Beta priors"),
    (CategoricalNaiveBayes, "categorical Naive Bayes classifier, Dirichlet priors"),
    (LinearDiscriminantAnalysis, "LDA: class Gaussians, shared covariance, Normal-Wishart prior"),
    (QuadraticDiscriminantAnalysis, "QDA: class Gaussians, own covariances, Normal-Wishart prior"),
):
    register(ModelSpec(_cls, _text, {"epochs": 300, "lr": 0.05, "batch_size": 10_000}, True))

_VAE_BUDGET = {"epochs": 300, "lr": 1e-3, "batch_size": 100, "patience": 40}
register(ModelSpec(VAE, "variational autoencoder (ELBO by SVI; IWAE lower bounds)", _VAE_BUDGET, uses_image_shape=True))
register(ModelSpec(ConditionalVAE, "label-conditioned VAE p(x | z, y)", _VAE_BUDGET, True, True))
register(ModelSpec(Autoencoder, "deterministic autoencoder: reconstructs, no density", _VAE_BUDGET))
