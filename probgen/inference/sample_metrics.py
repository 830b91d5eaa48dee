"""Likelihood-free evaluation: compare a model's samples with held-out data.

For models with no density ("implicit", e.g. GANs) — and as a second opinion for any model —
these work from two sets of points, never in the nats column of a likelihood table:

- :func:`mmd_test`: kernel maximum mean discrepancy (Gaussian kernel, median-heuristic
  bandwidth), unbiased MMD², with a permutation p-value.
- :func:`classifier_two_sample_test`: a classifier trained to tell the sets apart; its
  held-out accuracy (0.5 when it cannot) and a one-sided binomial p-value.
- :func:`precision_recall`: the k-NN-ball precision and recall of Kynkäänniemi et al.
- :func:`parzen_log_likelihood`: a Gaussian kernel density on the samples, bandwidth chosen on
  validation data — a WEAK estimate of log p(x), biased and high-variance in more than a few
  dimensions (Theis et al.), reported with kind "parzen" and never as a likelihood.
- :func:`mode_coverage`: which of known mode centres the samples reach (e.g. eight Gaussians).
- :func:`sample_metrics`: all of them for ``model.sample(n)`` against data.

References:
    Gretton et al., "A Kernel Two-Sample Test" (2012), JMLR 13.
    Lopez-Paz & Oquab, "Revisiting Classifier Two-Sample Tests" (2017), arXiv:1610.06545.
    Kynkäänniemi et al., "Improved Precision and Recall Metric for Assessing Generative
    Models" (2019), arXiv:1904.06991.
    Theis, van den Oord & Bethge, "A note on the evaluation of generative models" (2016),
    arXiv:1511.01844.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor

from probgen._checks import check_int

__all__ = [
    "METRIC_COLUMNS",
    "METRIC_KEYS",
    "METRIC_SAMPLES",
    "MMDResult",
    "TwoSampleResult",
    "ParzenResult",
    "mmd_test",
    "classifier_two_sample_test",
    "precision_recall",
    "parzen_log_likelihood",
    "mode_coverage",
    "sample_metrics",
]


def _points(x: Any, name: str) -> Tensor:
    """``x`` as float64 points ``[N, features]`` on the CPU (where scikit-learn and the
    permutation generator work, whichever device the samples came from)."""
    x = torch.as_tensor(x).detach().to("cpu", torch.float64)
    if x.dim() < 2 or len(x) < 2:
        raise ValueError(f"{name} must be at least 2 points of shape (N, ...), got shape {tuple(x.shape)}")
    x = x.reshape(len(x), -1)
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} holds NaN or inf values")
    return x


def _pair(x: Any, y: Any) -> tuple[Tensor, Tensor]:
    x, y = _points(x, "x"), _points(y, "y")
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"x has {x.shape[1]} dimensions per point, y has {y.shape[1]}; expected the same")
    return x, y


@dataclass(frozen=True)
class MMDResult:
    """Unbiased MMD² (Gaussian kernel of ``bandwidth``) and its permutation p-value."""

    mmd2: float
    p_value: float
    bandwidth: float
    num_permutations: int


def _mmd2(kernel: Tensor, in_x: Tensor) -> Tensor:
    """Unbiased MMD² for each row of the boolean ``in_x`` masks ``[P, N]`` over the pooled kernel."""
    in_x = in_x.to(kernel.dtype)
    in_y = 1 - in_x
    off = kernel - torch.diag_embed(kernel.diagonal())
    m, n = in_x.sum(-1), in_y.sum(-1)
    kxx = torch.einsum("pi,ij,pj->p", in_x, off, in_x) / (m * (m - 1))
    kyy = torch.einsum("pi,ij,pj->p", in_y, off, in_y) / (n * (n - 1))
    kxy = torch.einsum("pi,ij,pj->p", in_x, kernel, in_y) / (m * n)
    return kxx + kyy - 2 * kxy


def mmd_test(
    x: Any, y: Any, *, bandwidth: float | None = None, num_permutations: int = 200, seed: int = 0
) -> MMDResult:
    """Kernel two-sample test of ``x`` against ``y`` (Gretton et al. 2012).

    The bandwidth is the median pairwise distance of the pooled points unless given; the p-value
    is ``(1 + #{permuted MMD² >= observed}) / (1 + num_permutations)``.

    Example:
        >>> import torch
        >>> g = torch.Generator().manual_seed(0)
        >>> same = mmd_test(torch.randn(200, 2, generator=g), torch.randn(200, 2, generator=g))
        >>> same.p_value > 0.05
        True
    """
    x, y = _pair(x, y)
    check_int("num_permutations", num_permutations)
    pooled = torch.cat([x, y])
    distances = torch.cdist(pooled, pooled)
    if bandwidth is None:
        bandwidth = distances[torch.triu_indices(len(pooled), len(pooled), 1).unbind()].median().item()
    kernel = torch.exp(-(distances**2) / (2 * bandwidth**2))
    labels = torch.arange(len(pooled)) < len(x)
    g = torch.Generator().manual_seed(seed)
    permuted = torch.stack([labels[torch.randperm(len(pooled), generator=g)] for _ in range(num_permutations)])
    observed = _mmd2(kernel, labels[None])[0]
    null = torch.cat([_mmd2(kernel, chunk) for chunk in permuted.split(50)])
    p_value = (1 + (null >= observed).sum().item()) / (1 + num_permutations)
    return MMDResult(observed.item(), p_value, float(bandwidth), num_permutations)


@dataclass(frozen=True)
class TwoSampleResult:
    """Held-out accuracy of a classifier telling the sets apart, and its binomial p-value."""

    accuracy: float
    p_value: float
    num_test: int
    classifier: str


def classifier_two_sample_test(
    x: Any, y: Any, *, classifier: str = "logistic", test_fraction: float = 0.5, seed: int = 0
) -> TwoSampleResult:
    """Classifier two-sample test (Lopez-Paz & Oquab 2017), with scikit-learn.

    ``classifier``: "logistic" (linear: sees differences of means) or "mlp" (a small network).
    Under the null hypothesis (same distribution) the held-out accuracy is Binomial(n, 1/2)/n;
    the p-value is one-sided (accuracy that high or higher).
    """
    from scipy.stats import binomtest
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x, y = _pair(x, y)
    models = {
        "logistic": lambda: LogisticRegression(max_iter=1000),
        "mlp": lambda: MLPClassifier((32, 32), learning_rate_init=0.01, max_iter=300, random_state=seed),
    }
    if classifier not in models:
        raise ValueError(f"unknown classifier {classifier!r}; expected one of {sorted(models)}")
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    features = torch.cat([x, y]).numpy()
    labels = torch.cat([torch.ones(len(x)), torch.zeros(len(y))]).numpy()
    split = train_test_split(features, labels, test_size=test_fraction, random_state=seed, stratify=labels)
    train_x, test_x, train_y, test_y = split
    with warnings.catch_warnings():  # an MLP stopped at max_iter is still a valid test
        warnings.simplefilter("ignore", ConvergenceWarning)
        fitted = make_pipeline(StandardScaler(), models[classifier]()).fit(train_x, train_y)
    correct = int((fitted.predict(test_x) == test_y).sum())
    p_value = binomtest(correct, len(test_y), 0.5, alternative="greater").pvalue
    return TwoSampleResult(correct / len(test_y), float(p_value), len(test_y), classifier)


def _knn_radii(points: Tensor, k: int) -> Tensor:
    distances = torch.cdist(points, points)
    return distances.kthvalue(k + 1, dim=1).values  # the 0th neighbour is the point itself


def precision_recall(real: Any, fake: Any, *, k: int = 3) -> tuple[float, float]:
    """Precision and recall of ``fake`` against ``real`` (Kynkäänniemi et al. 2019).

    Precision: the fraction of fakes inside some real point's ball reaching its k-th nearest
    real neighbour; recall: the fraction of reals inside some fake point's k-NN ball.
    """
    real, fake = _pair(real, fake)
    check_int("k", k)
    if k >= min(len(real), len(fake)):
        raise ValueError(f"k must be below the number of points in each set, got k={k}")

    def covered(points: Tensor, centres: Tensor) -> float:
        inside = torch.cdist(points, centres) <= _knn_radii(centres, k)[None, :]
        return inside.any(1).double().mean().item()

    return covered(fake, real), covered(real, fake)


@dataclass(frozen=True)
class ParzenResult:
    """Mean Parzen-window log-density of test points (nats/example) — a weak estimate."""

    nats: float
    stderr: float
    bandwidth: float
    kind: str = "parzen (weak estimate; not a likelihood)"


def _parzen(squared_distances: Tensor, dims: int, bandwidth: float) -> Tensor:
    """Log-density of each row's point under the Gaussian KDE of the columns' samples."""
    norm = math.log(squared_distances.shape[1]) + dims / 2 * math.log(2 * math.pi * bandwidth**2)
    return torch.logsumexp(-squared_distances / (2 * bandwidth**2), 1) - norm


def parzen_log_likelihood(samples: Any, test: Any, *, val: Any, bandwidths: Any = None) -> ParzenResult:
    """Gaussian Parzen-window log-likelihood of ``test`` under a KDE of ``samples``.

    The bandwidth is the one (of ``bandwidths``, default 20 log-spaced in [1e-2, 10] times the
    samples' mean standard deviation) with the highest mean log-density on ``val``. A WEAK
    estimate: in more than a few dimensions it says little about log p (Theis et al. 2016).
    """
    samples, test = _pair(samples, test)
    val = _pair(samples, val)[1]
    if bandwidths is None:
        bandwidths = (samples.std(0).mean() * torch.logspace(-2, 1, 20, dtype=torch.float64)).tolist()
    d, to_val = samples.shape[1], torch.cdist(val, samples) ** 2
    scores = [_parzen(to_val, d, float(h)).mean().item() for h in bandwidths]
    best = float(bandwidths[max(range(len(scores)), key=scores.__getitem__)])
    values = _parzen(torch.cdist(test, samples) ** 2, d, best)
    return ParzenResult(values.mean().item(), values.std().item() / math.sqrt(len(values)), best)


def mode_coverage(samples: Any, centres: Any, *, radius: float, min_count: int = 1) -> dict[str, Any]:
    """Which modes the samples reach: per-centre counts of samples within ``radius`` of it.

    Returns ``counts`` (per centre), ``modes_hit`` (centres with at least ``min_count``) and
    ``high_quality`` (the fraction of samples within ``radius`` of some centre).
    """
    samples, centres = _pair(samples, centres)
    nearest = torch.cdist(samples, centres).min(1)
    close = nearest.values <= radius
    counts = torch.bincount(nearest.indices[close], minlength=len(centres))
    return {
        "counts": counts.tolist(),
        "modes_hit": int((counts >= min_count).sum()),
        "high_quality": close.double().mean().item(),
    }


#: the one metric schema: every key :func:`sample_metrics` reports (the Parzen ones given ``val``)
METRIC_KEYS = (
    "mmd2", "mmd_p_value", "c2st_accuracy", "c2st_p_value", "precision", "recall",
    "parzen_nats", "parzen_stderr", "parzen_bandwidth", "parzen_kind",
)  # fmt: skip
#: the numbers of it that tables show as columns (Parzen: a weak estimate of log p, higher is better)
METRIC_COLUMNS = ("mmd2", "mmd_p_value", "c2st_accuracy", "c2st_p_value", "precision", "recall", "parzen_nats")
#: samples drawn from an implicit model, and the most evaluation examples they are compared
#: with (the first ones), wherever probgen scores one: ``pg.compare``, ``probgen run``, ``fit``, ``eval``
METRIC_SAMPLES = 1000


def sample_metrics(
    model: Any, test: Any, *, val: Any = None, num_samples: int = METRIC_SAMPLES, classifier: str = "mlp", seed: int = 0
) -> dict[str, Any]:
    """Every likelihood-free metric of ``model.sample(num_samples)`` against ``test`` (tensors or
    Datasets), with the ``classifier`` two-sample test; the Parzen estimate needs ``val``.
    Flat, JSON-able, one key per column."""
    from probgen.inference.data import DataSource

    test_x = model.validate(DataSource(test, "test data").all()[0], name="test data")
    torch.manual_seed(seed)
    fake = model.sample(check_int("num_samples", num_samples))
    mmd = mmd_test(test_x, fake, seed=seed)
    c2st = classifier_two_sample_test(test_x, fake, classifier=classifier, seed=seed)
    precision, recall = precision_recall(test_x, fake)
    out = {"mmd2": mmd.mmd2, "mmd_p_value": mmd.p_value, "c2st_accuracy": c2st.accuracy}
    out |= {"c2st_p_value": c2st.p_value, "precision": precision, "recall": recall}
    if val is not None:
        val_x = model.validate(DataSource(val, "validation data").all()[0], name="validation data")
        parzen = parzen_log_likelihood(fake, test_x, val=val_x)
        out |= {f"parzen_{k}": v for k, v in asdict(parzen).items()}
    return out
