"""Fitting and scoring. Knows models only through the GenerativeModel contract."""

from probgen.inference.compare import ComparisonTable, compare
from probgen.inference.evaluate import LogLikelihood, bits_per_dim, log_likelihood
from probgen.inference.objectives import OBJECTIVES, make_objective
from probgen.inference.svi import FitResult, NonFiniteLossError, fit

__all__ = [
    "OBJECTIVES",
    "ComparisonTable",
    "FitResult",
    "LogLikelihood",
    "NonFiniteLossError",
    "bits_per_dim",
    "compare",
    "fit",
    "log_likelihood",
    "make_objective",
]
