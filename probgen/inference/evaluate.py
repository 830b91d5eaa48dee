"""``log_likelihood``: score a model on data, saying what kind of number it is."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor

from probgen.inference._data import as_xy, batches

__all__ = ["log_likelihood", "LogLikelihood", "bits_per_dim", "METHODS"]

METHODS = ("auto", "exact")


@dataclass(frozen=True)
class LogLikelihood:
    """Mean log-likelihood per example and how it was obtained.

    Attributes:
        nats: mean log p(x) per example in nats (higher is better).
        stderr: standard error of that mean over examples (and Monte-Carlo draws).
        bits_per_dim: negative log-likelihood in bits per dimension (lower is better).
        kind: "exact", "lower_bound" or "estimate".
        method: how it was computed.
        num_samples: Monte-Carlo / importance samples per example (1 for exact).
        num_examples: number of examples scored.
        num_dims: the D of bits/dim.
    """

    nats: float
    stderr: float
    bits_per_dim: float
    kind: str
    method: str
    num_samples: int
    num_examples: int
    num_dims: int

    @property
    def nll(self) -> float:
        """Negative log-likelihood in nats per example."""
        return -self.nats

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "nll": self.nll}

    def __str__(self) -> str:
        bound = {"lower_bound": " (lower bound on log p)", "estimate": " (estimate)"}.get(self.kind, "")
        return (
            f"NLL {self.nll:.3f} ± {self.stderr:.3f} nats/example, "
            f"{self.bits_per_dim:.4f} bits/dim [{self.kind}, {self.method}]{bound}"
        )


def bits_per_dim(nats_per_example: float, num_dims: int) -> float:
    """Convert a mean log-likelihood in nats per example to NLL in bits per dimension."""
    return -nats_per_example / (num_dims * math.log(2))


def _exact(model: Any, x: Tensor, batch_size: int) -> Tensor:
    with torch.no_grad():
        return torch.cat([model.log_prob(x[idx]).detach() for idx in batches(len(x), batch_size)])


def log_likelihood(
    model: Any,
    data: Any,
    *,
    method: str = "auto",
    num_samples: int = 1,
    batch_size: int = 1000,
) -> LogLikelihood:
    """Mean per-example log-likelihood of ``data`` under ``model``, with its standard error.

    Args:
        model: a model with ``density`` "exact" (``log_prob``) or "lower_bound".
        data: a Dataset, tensor or ``(x, y)`` pair; labels are ignored.
        method: "auto" picks the best the model offers ("exact" for explicit densities).
        num_samples: importance samples per example for bound/estimate methods.
        batch_size: examples scored at once (memory stays bounded).

    Example:
        >>> import probgen as pg
        >>> train, test = pg.load_dataset("digits-binary"), pg.load_dataset("digits-binary", "test")
        >>> model = pg.models.IndependentBernoulli(64).fit_conjugate(train.x)
        >>> round(pg.log_likelihood(model, test).nll, 1)
        24.9
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; expected one of {METHODS}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1:
        raise ValueError(f"num_samples must be a positive integer, got {num_samples!r}")
    density = getattr(model, "density", None)
    if density == "implicit":
        raise ValueError(f"{type(model).__name__} is an implicit model: it has no likelihood to report")
    x, _ = as_xy(data)
    x = model.validate(x)
    if len(x) == 0:
        raise ValueError("cannot score empty data")
    values = _exact(model, x, batch_size)
    kind = "estimate" if getattr(model, "log_prob_is_estimate", False) else density
    n = len(values)
    mean = values.double().mean().item()
    stderr = values.double().std(unbiased=True).item() / math.sqrt(n) if n > 1 else float("nan")
    return LogLikelihood(
        nats=mean,
        stderr=stderr,
        bits_per_dim=bits_per_dim(mean, model.num_dims),
        kind=kind,
        method="exact" if kind == "exact" else "log_prob",
        num_samples=num_samples if kind == "estimate" else 1,
        num_examples=n,
        num_dims=model.num_dims,
    )
