"""``log_likelihood``: score a model on data, saying what kind of number it is."""

from __future__ import annotations

import dataclasses
import math
import warnings
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from probgen._checks import check_int
from probgen.inference.data import DataSource
from probgen.inference.diagnostics import Diagnostics, importance_diagnostics
from probgen.inference.distributed import SINGLE, Shard, all_sum, broadcast_value, current_shard
from probgen.inference.placement import place_model
from probgen.inference.strategies.base import model_batches
from probgen.models.base import evaluating, is_trained

__all__ = ["log_likelihood", "LogLikelihood", "bits_per_dim", "METHODS"]

METHODS = ("auto", "exact", "iwae", "elbo", "ais")
#: data-sized values per pass of importance sampling (bounds memory for any num_samples)
VALUES_PER_PASS = 1_000_000


@dataclass(frozen=True)
class LogLikelihood:
    """Mean log-likelihood per example and how it was obtained.

    Attributes:
        nats: mean log p(x) per example in nats (higher is better).
        stderr: standard error of that mean over examples (and Monte-Carlo draws).
        bits_per_dim: negative log-likelihood in bits per dimension (lower is better).
        kind: "exact", "lower_bound" or "estimate".
        method: how it was computed: "exact" (log_prob), "monte_carlo" (a log_prob that averages
            over draws), "iwae", "elbo", "ais", "log_normalizer" (log p~(x) - estimated log Z).
        num_samples: Monte-Carlo / importance samples per example (1 for exact).
        num_examples: number of examples scored.
        num_dims: the D of bits/dim.
        conditional: True when it is of x given the labels, log p(x | y).
        predictive: for Bayesian models, "posterior", "variational" or "plug-in" (else None).
        diagnostics: for "iwae" and "ais", the Pareto k-hat and importance ESS of each
            example's weights, summarised (:class:`~probgen.inference.diagnostics.Diagnostics`;
            of this process's examples when distributed); None otherwise.

    Example:
        >>> import math
        >>> import probgen as pg
        >>> data = pg.load_dataset("digits-binary")
        >>> model = pg.models.IndependentBernoulli(64).fit_closed_form(data.x)
        >>> ll = pg.log_likelihood(model, data)
        >>> ll.kind, ll.method, ll.num_examples, ll.num_dims, ll.predictive
        ('exact', 'exact', 1000, 64, 'posterior')
        >>> math.isclose(ll.nats, model.log_prob(data.x).double().mean().item(), rel_tol=1e-6)
        True
        >>> math.isclose(ll.bits_per_dim, -ll.nats / (64 * math.log(2))), ll.as_dict()["nll_nats"] == -ll.nats
        (True, True)
    """

    nats: float
    stderr: float
    bits_per_dim: float
    kind: str
    method: str
    num_samples: int
    num_examples: int
    num_dims: int
    conditional: bool = False
    predictive: str | None = None
    diagnostics: Diagnostics | None = None

    @property
    def nll(self) -> float:
        """Negative log-likelihood in nats per example."""
        return -self.nats

    def as_dict(self) -> dict[str, Any]:
        """JSON-able, with unambiguous names: ``nll_nats`` (positive), ``stderr_nats``, ..."""
        return {
            "nll_nats": self.nll,
            "stderr_nats": self.stderr,
            "bits_per_dim": self.bits_per_dim,
            "kind": self.kind,
            "method": self.method,
            "num_samples": self.num_samples,
            "num_examples": self.num_examples,
            "num_dims": self.num_dims,
            "conditional": self.conditional,
            "predictive": self.predictive,
            "diagnostic": self.diagnostics.summary if self.diagnostics else None,
            "diagnostics": self.diagnostics.as_dict() if self.diagnostics else None,
        }

    def __str__(self) -> str:
        of = "log p(x | y)" if self.conditional else "log p(x)"
        what = {"lower_bound": f" (lower bound on {of})", "estimate": f" (estimate of {of})"}.get(self.kind, "")
        if self.kind == "exact" and self.conditional:
            what = f" ({of})"
        predictive = f", {self.predictive} predictive" if self.predictive else ""
        diagnostics = f"; {self.diagnostics.summary}" if self.diagnostics else ""
        return (
            f"NLL {self.nll:.3f} ± {self.stderr:.3f} nats/example, "
            f"{self.bits_per_dim:.4f} bits/dim [{self.kind}, {self.method}{predictive}]{what}{diagnostics}"
        )


def bits_per_dim(nats_per_example: float, num_dims: int) -> float:
    """Convert a mean log-likelihood in nats per example to NLL in bits per dimension.

    Example:
        >>> import math
        >>> bits_per_dim(64 * math.log(0.5), 64)  # 64 fair coins: one bit per dimension
        1.0
    """
    return -nats_per_example / (num_dims * math.log(2))


def _choose(model: Any, method: str, num_samples: int | None, batch_size: int) -> str:
    """The method to use (checking the arguments against the model's density kind)."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; expected one of {METHODS}")
    check_int("batch_size", batch_size)
    if num_samples is not None:
        check_int("num_samples", num_samples)
    if not is_trained(model):
        warnings.warn(f"{type(model).__name__} was never fitted: scoring its initial parameters", stacklevel=3)
    density = model.density
    if density == "implicit":
        raise ValueError(f"{type(model).__name__} is an implicit model: it has no likelihood to report")
    if method == "auto":
        return {"lower_bound": "iwae", "unnormalized": "log_normalizer"}.get(density, "exact")
    if density in ("exact", "estimate") and method != "exact":
        raise ValueError(f"{type(model).__name__} has an {density} density; use method='exact' (or 'auto')")
    if density == "lower_bound" and method == "exact":
        raise ValueError(f"{type(model).__name__} has no exact density; use method='iwae', 'elbo' or 'ais'")
    if density == "unnormalized":
        raise ValueError(f"{type(model).__name__} has an unnormalized density; use method='auto' (log Z estimated)")
    return method


def _iwae_weights(model: Any, x: Tensor, y: Tensor | None, num_samples: int, per_pass: int) -> Tensor:
    """Each example's K log importance weights ``[K, B]``, drawn ``per_pass`` at a time (the
    weights are K x B numbers, not K x B data-sized values, so memory stays bounded)."""
    from probgen.inference.importance import log_importance_weights

    sizes = [min(per_pass, num_samples - start) for start in range(0, num_samples, per_pass)]
    return torch.cat([log_importance_weights(model, x, y, k) for k in sizes], 0)


def _scores(
    model: Any, source: DataSource, method: str, num_samples: int, batch_size: int, ais_steps: int, shard: Shard
) -> tuple[Tensor, Tensor | None]:
    """Per-example values and, for "iwae" and "ais", the log weights ``[K, examples]``."""
    from probgen.inference.ais import ais_log_likelihood
    from probgen.inference.importance import iwae_bound

    per_pass = max(1, VALUES_PER_PASS // (batch_size * model.num_dims))
    out = [torch.zeros(0, dtype=model.dtype, device=model.device)]  # a rank may get no rows
    weights = []
    with torch.no_grad():
        for x, y in model_batches(model, source, batch_size, labels=model.conditional, shard=shard):
            if method in ("exact", "log_normalizer"):
                out.append((model.log_prob(x, y) if model.conditional else model.log_prob(x)).detach())
            elif method == "ais":
                value, log_w = ais_log_likelihood(
                    model, x, y, num_chains=num_samples, num_steps=ais_steps, return_weights=True
                )
                out.append(value)
                weights.append(log_w)
            elif method == "iwae":
                weights.append(_iwae_weights(model, x, y, num_samples, per_pass))
                out.append(torch.logsumexp(weights[-1], 0) - math.log(num_samples))
            else:
                out.append(iwae_bound(model, x, y, num_samples, max_particles_per_pass=per_pass, mean=True))
    return torch.cat(out), torch.cat(weights, 1) if weights else None


def _diagnose(method: str, weights: Tensor | None) -> Diagnostics | None:
    """k-hat and ESS of each example's weights; a warning saying what to do when k-hat > 0.7."""
    if weights is None or weights.shape[1] == 0:
        return None
    diagnostics = dataclasses.replace(
        importance_diagnostics(weights, f"log_likelihood(method={method!r})"), method=method
    )
    if diagnostics.warning:
        warnings.warn(diagnostics.warning, stacklevel=3)
    return diagnostics


def _normalized(model: Any, values: Tensor, num_samples: int, shard: Shard) -> tuple[Tensor, str]:
    """log p~(x) - log Z (rank 0's estimate of log Z on every rank) and the kind of the result."""
    log_z, z_kind = model.log_normalizer(num_samples)
    log_z = broadcast_value(torch.as_tensor(log_z, dtype=values.dtype, device=values.device), shard)
    return values - log_z, "exact" if z_kind == "exact" else "estimate"


def _mean_and_stderr(values: Tensor, shard: Shard) -> tuple[int, float, float]:
    """Count, mean and standard error of the mean of the values of every rank: the counts and
    sums are all-reduced, then the squared deviations from the global mean (in float64)."""
    values = values.double()
    count_sum = all_sum(torch.stack([values.new_tensor(float(len(values))), values.sum()]), shard)
    n = int(count_sum[0].item())
    mean = count_sum[1].item() / n
    squares = all_sum(((values - mean) ** 2).sum().reshape(1), shard).item()
    return n, mean, math.sqrt(squares / (n - 1) / n) if n > 1 else float("nan")


def log_likelihood(
    model: Any,
    data: Any,
    *,
    method: str = "auto",
    num_samples: int | None = None,
    batch_size: int = 1000,
    ais_steps: int = 500,
    distributed: bool = False,
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
) -> LogLikelihood:
    """Mean per-example log-likelihood of ``data`` under ``model``, with its standard error.

    Args:
        model: a model of any density kind but "implicit".
        data: a Dataset, tensor, array (memmap), ``(x, y)`` pair or DataLoader; labels are used
            only by conditional models.
        method: "exact" (``log_prob``), "iwae" (importance-weighted lower bound with
            ``num_samples`` particles), "elbo" (the ELBO, estimated with ``num_samples``
            draws), "ais" (annealed importance sampling with ``num_samples`` chains, default
            16, and ``ais_steps`` HMC steps; an estimate); "auto" picks exact where the model
            has a normalized density, iwae for lower-bound models, and for unnormalized models
            ``log_prob`` minus the model's estimate of log Z.
        num_samples: importance samples per example (default 100) for "iwae" and "elbo".
        batch_size: examples scored at once (a DataLoader's own batches are kept); importance
            samples go in passes of about 1M values, so memory is bounded for any ``num_samples``.
        distributed: call it in every process of a ``torch.distributed`` group: each rank
            scores its part of every batch, and the counts, sums and squared deviations are
            all-reduced, so every rank returns the value of the whole data (an unnormalized
            model's log Z is rank 0's estimate, broadcast).
        device: score there, the model moved there first as ``fit`` moves it (distributed:
            "cuda" is ``cuda:LOCAL_RANK``); default where the model is. Data follow by batches.
        dtype: "float32" or "float64": the model converted to it first; default: its own.

    Example:
        >>> import probgen as pg
        >>> train, test = pg.load_dataset("digits-binary"), pg.load_dataset("digits-binary", "test")
        >>> model = pg.models.IndependentBernoulli(64).fit_closed_form(train.x)
        >>> round(pg.log_likelihood(model, test).nll, 1)
        24.9
    """
    method = _choose(model, method, num_samples, batch_size)
    num_samples = num_samples or {"ais": 16, "iwae": 100, "elbo": 100, "log_normalizer": 100}.get(method, 1)
    place_model(model, device, dtype, distributed)
    shard = current_shard() if distributed else SINGLE
    with evaluating(model):
        values, weights = _scores(model, DataSource(data, "data"), method, num_samples, batch_size, ais_steps, shard)
    kind = {"exact": model.density, "iwae": "lower_bound", "elbo": "lower_bound"}.get(method, "estimate")
    if method == "log_normalizer":
        values, kind = _normalized(model, values, num_samples, shard)
    if method == "exact" and kind == "estimate":
        method = "monte_carlo"  # log_prob itself averages over draws
    return _summary(model, values, kind, method, num_samples, shard, _diagnose(method, weights))


def _summary(
    model: Any,
    values: Tensor,
    kind: str,
    method: str,
    num_samples: int,
    shard: Shard,
    diagnostics: Diagnostics | None = None,
) -> LogLikelihood:
    """The mean of the per-example ``values`` (over every rank), its standard error and labels."""
    n, mean, stderr = _mean_and_stderr(values, shard)
    return LogLikelihood(
        nats=mean,
        stderr=stderr,
        bits_per_dim=bits_per_dim(mean, model.num_dims),
        kind=kind,
        method=method,
        num_samples=1 if method == "exact" else num_samples,
        num_examples=n,
        num_dims=model.num_dims,
        conditional=model.conditional,
        predictive=model.predictive,
        diagnostics=diagnostics,
    )
