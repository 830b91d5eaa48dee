"""Autoregressive models: exact log p(x) by the chain rule, sequential sampling and inpainting."""

from __future__ import annotations

from probgen.models.autoregressive.base import Autoregressive, AutoregressiveDistribution, MaskedLinear, OutputHead
from probgen.models.autoregressive.fvbn import FVBN
from probgen.models.autoregressive.made import MADE
from probgen.models.autoregressive.nade import NADE
from probgen.models.autoregressive.pixelcnn import PixelCNN
from probgen.models.autoregressive.transformer import CausalTransformer

__all__ = [
    "FVBN",
    "MADE",
    "NADE",
    "CausalTransformer",
    "PixelCNN",
    "Autoregressive",
    "AutoregressiveDistribution",
    "MaskedLinear",
    "OutputHead",
]
