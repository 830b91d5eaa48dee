"""Normalizing flows of real data built from Pyro transforms (exact density; fitted by maximum
likelihood). Model discrete data with ``Dequantized(flow, ...)``."""

from __future__ import annotations

from probgen.models.flows.autoregressive import IAF, MAF
from probgen.models.flows.base import ActNorm, Flow
from probgen.models.flows.conditional import ConditionalMAF
from probgen.models.flows.glow import Glow, Squeeze
from probgen.models.flows.naf import NAF
from probgen.models.flows.realnvp import RealNVP
from probgen.models.flows.spline import NSF, NSFAutoregressive

__all__ = [
    "IAF",
    "MAF",
    "NAF",
    "NSF",
    "ActNorm",
    "ConditionalMAF",
    "Flow",
    "Glow",
    "NSFAutoregressive",
    "RealNVP",
    "Squeeze",
]
