"""Fitting and scoring. Knows models only through the GenerativeModel contract
(:mod:`probgen.models.base`): no family is named here."""

from probgen.inference.callbacks import Callback
from probgen.inference.compare import ComparisonTable, compare
from probgen.inference.data import DataSource
from probgen.inference.diagnostics import Diagnostics
from probgen.inference.evaluate import LogLikelihood, bits_per_dim, log_likelihood
from probgen.inference.evidence import BayesFactor, Evidence, bayes_factor, evidence
from probgen.inference.fit import fit
from probgen.inference.loo import loo, to_inference_data
from probgen.inference.objectives import OBJECTIVES, make_objective
from probgen.inference.strategies import (
    STRATEGIES,
    FitOptions,
    FitResult,
    FitStrategy,
    NonFiniteLossError,
    register_strategy,
)
from probgen.inference.tracking import MLflow, TensorBoard

__all__ = [
    "OBJECTIVES",
    "STRATEGIES",
    "BayesFactor",
    "Callback",
    "ComparisonTable",
    "DataSource",
    "Diagnostics",
    "Evidence",
    "FitOptions",
    "FitResult",
    "FitStrategy",
    "LogLikelihood",
    "MLflow",
    "NonFiniteLossError",
    "TensorBoard",
    "bayes_factor",
    "bits_per_dim",
    "compare",
    "evidence",
    "fit",
    "log_likelihood",
    "loo",
    "make_objective",
    "register_strategy",
    "to_inference_data",
]
