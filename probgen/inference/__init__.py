"""Fitting and scoring. Knows models only through the GenerativeModel contract
(:mod:`probgen.models.base`): no family is named here."""

from probgen.inference.compare import ComparisonTable, compare
from probgen.inference.data import DataSource
from probgen.inference.evaluate import LogLikelihood, bits_per_dim, log_likelihood
from probgen.inference.fit import fit
from probgen.inference.objectives import OBJECTIVES, make_objective
from probgen.inference.strategies import (
    STRATEGIES,
    FitOptions,
    FitResult,
    FitStrategy,
    NonFiniteLossError,
    register_strategy,
)

__all__ = [
    "OBJECTIVES",
    "STRATEGIES",
    "ComparisonTable",
    "DataSource",
    "FitOptions",
    "FitResult",
    "FitStrategy",
    "LogLikelihood",
    "NonFiniteLossError",
    "bits_per_dim",
    "compare",
    "fit",
    "log_likelihood",
    "make_objective",
    "register_strategy",
]
