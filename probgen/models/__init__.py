"""Model families. Each model is a Pyro model/guide pair on the :class:`GenerativeModel` contract,
registered by name with :func:`register` (``probgen list`` shows them)."""

from __future__ import annotations

from probgen.models.autoencoder import Autoencoder
from probgen.models.autoregressive import FVBN, MADE, NADE, Autoregressive, CausalTransformer, PixelCNN
from probgen.models.base import DENSITY_KINDS, GenerativeModel
from probgen.models.dequantized import Dequantized
from probgen.models.diffusion import DDPM
from probgen.models.discriminant import (
    DiscriminantAnalysis,
    LinearDiscriminantAnalysis,
    QuadraticDiscriminantAnalysis,
)
from probgen.models.energy import RBM
from probgen.models.factorized import (
    Factorized,
    IndependentBernoulli,
    IndependentCategorical,
    IndependentGaussian,
    independent,
)
from probgen.models.gan import GAN
from probgen.models.generative_classifier import GenerativeClassifier
from probgen.models.naive_bayes import (
    BernoulliNaiveBayes,
    CategoricalNaiveBayes,
    GaussianNaiveBayes,
)
from probgen.models.registry import MODELS, ModelSpec, build_model, model_class, register
from probgen.models.vae import VAE, ConditionalVAE

__all__ = [
    "DDPM",
    "DENSITY_KINDS",
    "MODELS",
    "FVBN",
    "MADE",
    "NADE",
    "VAE",
    "Autoencoder",
    "Autoregressive",
    "CausalTransformer",
    "PixelCNN",
    "BernoulliNaiveBayes",
    "CategoricalNaiveBayes",
    "ConditionalVAE",
    "Dequantized",
    "DiscriminantAnalysis",
    "Factorized",
    "GAN",
    "GaussianNaiveBayes",
    "GenerativeClassifier",
    "GenerativeModel",
    "IndependentBernoulli",
    "IndependentCategorical",
    "IndependentGaussian",
    "LinearDiscriminantAnalysis",
    "ModelSpec",
    "QuadraticDiscriminantAnalysis",
    "RBM",
    "build_model",
    "independent",
    "model_class",
    "register",
]
