"""Registered fit strategies: ``"svi"``, ``"closed_form"`` and ``"nuts"``.

A new strategy is a new module here: a :class:`FitStrategy` subclass with one ``fit`` method,
decorated with ``@register_strategy(name)``, and imported below.
"""

import probgen.inference.strategies.adversarial  # noqa: F401  (registers "adversarial")
import probgen.inference.strategies.contrastive  # noqa: F401  (registers "contrastive_divergence")
from probgen.inference.strategies import closed_form, mixture_weights, nuts, svi  # noqa: F401  (registers them)
from probgen.inference.strategies.base import (
    STRATEGIES,
    FitOptions,
    FitResult,
    FitStrategy,
    NonFiniteLossError,
    register_strategy,
)

__all__ = ["STRATEGIES", "FitOptions", "FitResult", "FitStrategy", "NonFiniteLossError", "register_strategy"]
