"""``log_likelihood``: score a model on data, saying what kind of number it is."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor

from probgen._checks import check_int
from probgen.inference._data import as_xy, batches

__all__ = ["log_likelihood", "LogLikelihood", "bits_per_dim", "METHODS"]

METHODS = ("auto", "exact", "iwae", "elbo", "ais")


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


def _importance(model: Any, x: Tensor, y: Tensor | None, num_samples: int, batch_size: int, mean: bool) -> Tensor:
    from probgen.inference.importance import iwae_bound

    per_pass = max(1, 1_000_000 // max(1, batch_size * model.num_dims))  # ~1M data-sized values a pass
    out = []
    with torch.no_grad():
        for idx in batches(len(x), batch_size):
            yb = None if y is None else y[idx]
            out.append(iwae_bound(model, x[idx], yb, num_samples, max_particles_per_pass=per_pass, mean=mean))
    return torch.cat(out)


def log_likelihood(
    model: Any,
    data: Any,
    *,
    method: str = "auto",
    num_samples: int | None = None,
    batch_size: int = 1000,
    ais_steps: int = 500,
) -> LogLikelihood:
    """Mean per-example log-likelihood of ``data`` under ``model``, with its standard error.

    Args:
        model: a model with ``density`` "exact" (``log_prob``) or "lower_bound".
        data: a Dataset, tensor or ``(x, y)`` pair; labels are ignored.
        method: "exact" (``log_prob``), "iwae" (importance-weighted lower bound with
            ``num_samples`` particles), "elbo" (the ELBO, estimated with ``num_samples`` draws);
            "auto" picks exact when the model has it, else iwae.
            "ais": annealed importance sampling with ``num_samples`` chains (default 16) and
            ``ais_steps`` HMC annealing steps, reported as an estimate.
        num_samples: importance samples per example (default 100) for "iwae" and "elbo".
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
    check_int("batch_size", batch_size)
    if num_samples is not None:
        check_int("num_samples", num_samples)
    density = getattr(model, "density", None)
    if density == "implicit":
        raise ValueError(f"{type(model).__name__} is an implicit model: it has no likelihood to report")
    if method == "auto":
        method = "exact" if density == "exact" else "iwae"
    if method in ("iwae", "elbo", "ais") and density == "exact":
        raise ValueError(f"{type(model).__name__} has an exact density; use method='exact'")
    if method == "exact" and density != "exact":
        raise ValueError(f"{type(model).__name__} has no exact density; use method='iwae' or 'elbo'")
    x, y = as_xy(data)
    x = model.validate(x)
    if len(x) == 0:
        raise ValueError("cannot score empty data")
    if hasattr(model, "check_labels") and density != "exact":
        y = model.check_labels(y, len(x))
    if method == "exact":
        values, num_samples = _exact(model, x, batch_size), 1
        kind = "estimate" if getattr(model, "log_prob_is_estimate", False) else "exact"
    elif method == "ais":
        from probgen.inference.ais import ais_log_likelihood

        num_samples = num_samples or 16
        chunks = []
        for idx in batches(len(x), min(batch_size, 100)):
            yb = None if y is None else y[idx]
            chunks.append(ais_log_likelihood(model, x[idx], yb, num_chains=num_samples, num_steps=ais_steps))
        values, kind = torch.cat(chunks), "estimate"
    else:
        num_samples = num_samples or 100
        values = _importance(model, x, y, num_samples, min(batch_size, 100), mean=method == "elbo")
        kind = "lower_bound"
    n = len(values)
    mean = values.double().mean().item()
    stderr = values.double().std(unbiased=True).item() / math.sqrt(n) if n > 1 else float("nan")
    return LogLikelihood(
        nats=mean,
        stderr=stderr,
        bits_per_dim=bits_per_dim(mean, model.num_dims),
        kind=kind,
        method=method,
        num_samples=num_samples,
        num_examples=n,
        num_dims=model.num_dims,
    )
