"""Autoregressive models: exact log p(x) by the chain rule, sequential sampling and inpainting."""

from __future__ import annotations

from probgen.models.autoregressive.base import Autoregressive, AutoregressiveDistribution, MaskedLinear, OutputHead
from probgen.models.autoregressive.fvbn import FVBN
from probgen.models.autoregressive.made import MADE
from probgen.models.autoregressive.nade import NADE

__all__ = ["FVBN", "MADE", "NADE", "Autoregressive", "AutoregressiveDistribution", "MaskedLinear", "OutputHead"]
