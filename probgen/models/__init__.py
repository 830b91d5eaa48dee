"""Model families. Each model is a Pyro model/guide pair on the :class:`GenerativeModel` contract,
registered by name with :func:`register` (``probgen list`` shows them). A user's own Pyro
program needs no subclass: :class:`PyroModel`; installed packages add models through the
``probgen.models`` entry-point group (:mod:`probgen.models.plugins`)."""

from __future__ import annotations

from probgen.models.autoencoder import Autoencoder
from probgen.models.autoregressive import FVBN, MADE, NADE, Autoregressive, CausalTransformer, PixelCNN
from probgen.models.base import DENSITY_KINDS, GenerativeModel, data_plate, network
from probgen.models.dequantized import Dequantized
from probgen.models.diffusion import DDPM
from probgen.models.discriminant import (
    DiscriminantAnalysis,
    LinearDiscriminantAnalysis,
    QuadraticDiscriminantAnalysis,
)
from probgen.models.energy import RBM, GaussianRBM
from probgen.models.factorized import (
    Factorized,
    IndependentBernoulli,
    IndependentCategorical,
    IndependentGaussian,
    independent,
)
from probgen.models.flows import IAF, MAF, NAF, NSF, ConditionalMAF, Flow, Glow, NSFAutoregressive, RealNVP
from probgen.models.gan import GAN
from probgen.models.generative_classifier import GenerativeClassifier
from probgen.models.naive_bayes import (
    BernoulliNaiveBayes,
    CategoricalNaiveBayes,
    GaussianNaiveBayes,
)
from probgen.models.pyro_model import ProgramSites, PyroModel, pyro_model_class
from probgen.models.registry import (
    MODELS,
    ModelSpec,
    accepted_kwargs,
    accepted_parameters,
    build_model,
    check_kwargs,
    model_class,
    register,
)
from probgen.models.stacked import Stacked
from probgen.models.vae import VAE, ConditionalVAE

__all__ = [
    "Autoencoder",
    "Autoregressive",
    "BernoulliNaiveBayes",
    "CategoricalNaiveBayes",
    "CausalTransformer",
    "ConditionalMAF",
    "ConditionalVAE",
    "DDPM",
    "DENSITY_KINDS",
    "Dequantized",
    "DiscriminantAnalysis",
    "FVBN",
    "Factorized",
    "Flow",
    "GAN",
    "GaussianNaiveBayes",
    "GenerativeClassifier",
    "GenerativeModel",
    "Glow",
    "IAF",
    "IndependentBernoulli",
    "IndependentCategorical",
    "IndependentGaussian",
    "LinearDiscriminantAnalysis",
    "MADE",
    "MAF",
    "MODELS",
    "ModelSpec",
    "NADE",
    "NAF",
    "NSF",
    "NSFAutoregressive",
    "PixelCNN",
    "Stacked",
    "ProgramSites",
    "PyroModel",
    "QuadraticDiscriminantAnalysis",
    "RBM",
    "GaussianRBM",
    "RealNVP",
    "VAE",
    "accepted_kwargs",
    "accepted_parameters",
    "build_model",
    "check_kwargs",
    "data_plate",
    "independent",
    "model_class",
    "network",
    "pyro_model_class",
    "register",
]
