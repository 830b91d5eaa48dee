"""The likelihood frontier: every model family's best configuration on both bundled digits datasets.

Protocol. The standard splits of ``digits-binary`` and ``digits`` (17 levels): train = the first
1000 digits, val = the next 350, test = the last 447. Each family has a short list of named
candidate configurations (:data:`CANDIDATES`), taken from the benchmarks that tuned them
(``autoregressive_quality.py``, ``vae_quality.py``, ``flows_vs_zuko.py``,
``variational_dequantization.py``, ``gan_ddpm_rbm_quality.py``) or from the registry's defaults.
Every fit is seeded (``torch.manual_seed(seed)`` before the model is built, ``seed=seed`` in
``pg.fit``), budgeted in epochs (the ``--epochs`` cap, early stopping on the validation data with
the candidate's own patience, or ``--patience`` for all), never in seconds.

1. Selection, on validation data only: every candidate of a family is fitted with the first seed
   of ``--seeds`` and scored on the validation split exactly as it will be on the test split
   (its evaluation spec); the family's configuration is the one with the lowest validation NLL.
2. The chosen configuration is fitted with every seed of ``--seeds`` (default 0 1 2) and scored
   on the test split. Its row reports the mean test NLL over the seeds (nats per digit and
   bits/dim), the mean over seeds of the per-example standard error (from the LogLikelihood
   result), the spread (standard deviation) of the test NLL over the seeds, the kind of the number
   ("exact", "lower bound" or "estimate", as the LogLikelihood result says), the seeds, the mean
   validation NLL and the mean wall seconds of one seed (build, fit and scoring of both splits).
3. The frontier of a dataset is the family whose chosen configuration has the lowest mean
   validation NLL (a lower bound's NLL is an upper bound of its model's true NLL, so a bound is
   never favoured by its kind). Targets, printed as PASS/FAIL verdicts, not asserted: on
   digits-binary the frontier's test NLL < 16.5 nats; on digits < 80; and on digits the best
   flow (chosen the same way among the flow families) < 88.

The family "stacked" (binary digits) mixes the configurations the families with exact densities
chose (:data:`STACK_MEMBERS`) in a :class:`~probgen.models.Stacked`, built as scikit-learn's
``StackingClassifier`` is: the weights are fitted on predictions of data the members did not train
on, then the members are refitted on all the data the stack was given. Each member is fitted with
the seed as its own row is (training split, early stopping on validation); the weights are fitted
by EM on the members' log-likelihoods of the validation split; each member is then fitted again,
same seed, on the training and validation splits together for as many parameter updates as it took
to its best epoch (Goodfellow et al. 2016, Algorithm 7.2), and the test split is scored exactly by
the refitted members under those weights. The stack's validation NLL, what the selection reads, is
the first members' and cross-fitted (weights fitted on one half of the validation split score the
other, both ways), so that the weights never score their own data. Its cache entry also keeps the
test NLL of the first members' stack and of every member alone, first and refitted, so that the
gain of the refit is read apart from the gain of the mixture. The test split is never seen before
it is scored.

Evaluation specs: exact densities by ``pg.log_likelihood`` (the RBM's log Z enumerated exactly,
as ``probgen compare`` does); VAEs by IWAE with K = 5000 (``vae_quality.py``); the DDPM by its
bound with 10 draws (``gan_ddpm_rbm_quality.py``); flows under uniform dequantization by a
32-draw importance-weighted scorer over the uniform noise
(``Dequantized.from_dataset(train, base=model.base, dequantization="importance", num_samples=32)``)
and under variational dequantization by IWAE with 32 draws of q(u | x). PixelCNNs see the digits
as 1 x 8 x 8 images; flows see the 17-level digits only.

Cache. Every fit's numbers are written to a JSON file (``--cache``, default
``runs/frontier.json``) keyed ``dataset/family/candidate/seed``, atomically (a temporary file and
``os.replace``) after every fit, re-reading the file under a lock and merging before each write.
An interrupted run resumes where it stopped, and a run can be split across processes (e.g.
``--families vae ddpm --data digits`` in one, ``--families flow-maf flow-naf`` in another); a
final ``--report`` prints the tables from the cache alone. An entry is reused only when its budget
(epochs, patience, evaluation) is the one asked for; otherwise it is fitted again and replaced.

Run: python benchmarks/frontier.py [--data digits-binary digits] [--families made vae ...] [--seeds 0 1 2]
[--epochs 1000] [--patience N] [--threads 1] [--cache runs/frontier.json] [--quick] [--report] [--list]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import statistics
import tempfile
import time
import traceback
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

import probgen as pg
from probgen.data import Dataset
from probgen.inference import LogLikelihood
from probgen.inference.strategies.mixture_weights import em_weights
from probgen.models import (
    DDPM,
    FVBN,
    MADE,
    MAF,
    NADE,
    NAF,
    NSF,
    RBM,
    VAE,
    CausalTransformer,
    Dequantized,
    GenerativeModel,
    NSFAutoregressive,
    PixelCNN,
    RealNVP,
    Stacked,
    build_model,
)

BINARY, LEVELS = "digits-binary", "digits"
BOTH = (BINARY, LEVELS)
SPLITS = ("train", "val", "test")
#: early-stopping patience of a candidate that names none (autoregressive_quality.py's default)
DEFAULT_PATIENCE = 50
#: the frontier's test NLL must be below these (nats per digit)
TARGETS = {BINARY: 16.5, LEVELS: 80.0}
#: (dataset, group) -> the group's best, chosen by validation, must be below this on test
GROUP_TARGETS = {(LEVELS, "flow"): 88.0}


@dataclass(frozen=True)
class Evaluation:
    """How a candidate is scored, the same on the validation and the test split.

    ``method``: "auto" (``pg.log_likelihood``'s own: exact densities, the RBM's log Z), "iwae" or
    "elbo" (``num_samples`` draws), or "importance": uniform dequantization scored by an
    importance-weighted ``Dequantized`` over the same base flow with ``num_samples`` draws."""

    method: str = "auto"
    num_samples: int | None = None

    def samples(self, cap: int | None) -> int | None:
        if self.num_samples is None or cap is None:
            return self.num_samples
        return min(self.num_samples, cap)

    def label(self, cap: int | None) -> str:
        k = self.samples(cap)
        return self.method if k is None else f"{self.method}-{k}"

    def score(self, model: Any, data: Dataset, train: Dataset, seed: int, cap: int | None) -> LogLikelihood:
        torch.manual_seed(seed)  # the Monte-Carlo scorers' draws
        k = self.samples(cap)
        if self.method == "auto":
            return pg.log_likelihood(model, data)
        if self.method == "importance":
            scorer = Dequantized.from_dataset(
                train, base=model.base, logit_alpha=model.logit_alpha, dequantization="importance", num_samples=k
            )
            return pg.log_likelihood(scorer, data)
        return pg.log_likelihood(model, data, method=self.method, num_samples=k)


EXACT = Evaluation()
IWAE_VAE = Evaluation("iwae", 5000)  # vae_quality.py's test K
BOUND_DDPM = Evaluation("elbo", 10)  # gan_ddpm_rbm_quality.py
IMPORTANCE_32 = Evaluation("importance", 32)  # flows_vs_zuko.py, variational_dequantization.py
IWAE_32 = Evaluation("iwae", 32)  # variational_dequantization.py


@dataclass(frozen=True)
class Candidate:
    """One named configuration of a family: the datasets it suits, a builder of an untrained
    model from the training split, fit options besides ``batch_size`` 100 and the budget (its own
    ``patience`` / ``epochs`` cap where it names them), how it is scored, whether it sees the
    digits as 1 x 8 x 8 images, and where the configuration comes from."""

    name: str
    datasets: tuple[str, ...]
    build: Callable[[Dataset], GenerativeModel]
    fit: dict[str, Any] = field(default_factory=dict)
    evaluation: Evaluation = EXACT
    images: bool = False
    source: str = ""
    #: a stack's members, (family, candidate name) each: their fits, mixed (``fit_and_score_stack``)
    members: tuple[tuple[str, str], ...] = ()


def _flow(
    name: str,
    base: Callable[..., GenerativeModel],
    dequantization: str,
    *,
    layers: int = 5,
    q: tuple[int, int] = (2, 128),
    dropout: float = 0.0,
    **kwargs: Any,
) -> Candidate:
    """A flow of ``layers`` layers of [256, 256] (flows_vs_zuko.py: 5) on the dequantized 17-level
    digits, uniform or variational (Flow++'s q(u | x) of ``q = (layers, width)`` affine layers;
    variational_dequantization.py: 2 of [128]), ``dropout`` in its networks in training."""

    def build(train: Dataset) -> Dequantized:
        flow = base(train.event_shape, num_layers=layers, hidden_features=[256, 256], dropout=dropout, **kwargs)
        extra = {"dequantizer_num_layers": q[0], "dequantizer_hidden_features": (q[1],)}
        extra = extra if dequantization == "variational" else {}
        return Dequantized.from_dataset(train, base=flow, dequantization=dequantization, **extra)

    suffix = "" if dequantization == "uniform" or q == (2, 128) else f"-q{q[0]}x{q[1]}"
    suffix += f"-drop{dropout}" if dropout else ""
    return Candidate(
        f"{name}-{layers}x256-{dequantization}{suffix}",
        (LEVELS,),
        build,
        {"lr": 1e-3, "patience": 40 if dropout else 20},  # dropout slows the fit: twice the patience
        IMPORTANCE_32 if dequantization == "uniform" else IWAE_32,
        source="flows_vs_zuko.py" if dequantization == "uniform" else "variational_dequantization.py",
    )


#: more candidates of a flow family: (dequantization, layers, q, dropout). A variational RealNVP
#: with a wider q, from a seed-0 scan of the validation NLL (5 x [256, 256] with q 2 x [128]: 91.55;
#: q 4 x [512]: 91.05; 4 layers with q 4 x [256]: 90.97; 10 layers or [512] widths: 92.4-92.6),
#: and with dropout in its networks (4 layers, q 4 x [256]: 90.45 at 0.1, 90.24 at 0.3); the
#: other flows with dropout 0.2 (MAF under uniform noise, 3 seeds: validation 95.27 against 97.57)
MORE_FLOWS = {
    **{name: [("variational", 5, (2, 128), 0.2)] for name in ("maf", "nsf-ar", "nsf", "naf")},
    "realnvp": [
        ("variational", 5, (4, 512), 0.0),
        ("variational", 4, (4, 256), 0.0),
        ("variational", 4, (4, 256), 0.3),
        ("uniform", 4, (2, 128), 0.3),
    ],
}


def _closed_form(name: str, datasets: tuple[str, ...], model: str, source: str, **kwargs: Any) -> Candidate:
    """A registered model fitted in closed form (its conjugate posterior predictive), with ``kwargs``."""
    return Candidate(
        name,
        datasets,
        lambda d: build_model(model, d, **kwargs),
        {"strategy": "closed_form"},
        source=source,
    )


_IWAE5 = {"objective": "iwae", "num_samples": 5}
_VAE = {"latent_dim": 8, "hidden_features": (200,)}
_VAMP = {**_VAE, "prior": "vamp", "bounded_pseudo_inputs": True}


def _vamp(name: str, dropout: float, source: str) -> Candidate:
    """vae_quality.py's VampPrior VAE: IWAE-5 training, validation by IWAE-200, encoder dropout."""
    return Candidate(
        name,
        BOTH,
        lambda d: VAE(d.event_shape, d.support, **_VAMP, encoder_dropout=dropout),
        {"lr": 1e-3, "patience": 100, **_IWAE5, "val_objective": "iwae", "val_num_samples": 200},
        IWAE_VAE,
        source=source,
    )


#: (hidden width, num_masks, dropout[, depth]) of more MADE mask ensembles (two hidden layers
#: unless named), on binary digits, where MADE is the frontier (on 17 levels it trails PixelCNN by
#: 11 validation nats). Seed-0 validation NLL against 18.159 for made-ensemble-dropout: 32 masks
#: 18.165; dropout 0.5 18.33 (still falling at the 1000-epoch cap); three layers 18.17; 1500 units
#: with dropout 0.4 18.10
MADE_ENSEMBLES = [(1000, 32, 0.3), (1000, 16, 0.5), (1000, 16, 0.3, 3), (1500, 16, 0.4)]


def _made(width: int, masks: int, dropout: float, depth: int = 2) -> Candidate:
    """MADE of ``depth`` hidden layers of ``width`` with an ensemble of ``masks`` orderings and masks,
    dropout in training, fitted as autoregressive_quality.py's best (lr 2e-3 decaying 0.998 an epoch)."""
    return Candidate(
        f"made-{width}x{depth}-m{masks}-drop{dropout}",
        (BINARY,),
        lambda d: MADE.from_dataset(d, hidden_features=(width,) * depth, num_masks=masks, dropout=dropout),
        {"lr": 2e-3, "lr_decay": 0.998, "patience": 100},
        source="MADE's mask ensembles (Germain et al. 2015)",
    )


#: (hidden_channels, num_layers, dropout) of the PixelCNNs regularized by dropout: categorical
#: conditionals on binary digits (where MADE leads by 0.9 validation nats), the logistic mixture
#: on 17 levels (where it beats categorical: validation 84.16 against 85.64 at seed 0 without dropout)
PIXELCNN_DROPOUT = {
    "categorical": [(64, 6, 0.2), (64, 6, 0.4)],
    "logistic": [(64, 6, 0.2), (64, 6, 0.4), (128, 8, 0.4)],
}


def _pixelcnn(
    datasets: tuple[str, ...],
    output: str,
    width: int = 64,
    depth: int = 6,
    dropout: float = 0.0,
    source: str = "autoregressive_quality.py",
) -> Candidate:
    """A gated PixelCNN on 1 x 8 x 8 images: categorical conditionals, or for k-level data a
    discretized mixture of 5 logistics (PixelCNN++), with ``dropout`` in its blocks in training;
    named e.g. "pixelcnn-logistic-64x6-drop0.2"."""
    name = f"pixelcnn-{'logistic-' if output == 'logistic' else ''}{width}x{depth}" + (
        f"-drop{dropout}" if dropout else ""
    )

    def build(d: Dataset) -> PixelCNN:
        options = {"hidden_channels": width, "num_layers": depth, "dropout": dropout}
        return PixelCNN(d.event_shape, d.support, output=output, components=5, **options)

    # patience 30: autoregressive_quality.py's measured run; dropout slows the fit, so 50
    fit = {"lr": 1e-3, "patience": 50 if dropout else 30}
    return Candidate(name, datasets, build, fit, images=True, source=source if not dropout else "PixelCNN++ dropout")


#: family -> its candidates; the autoregressive models and the flows are a family per
#: model (their taxonomy group in :data:`GROUP`), so that every one has a row of its own
CANDIDATES: dict[str, list[Candidate]] = {
    "factorized": [
        _closed_form(
            "bernoulli-beta1",
            (BINARY,),
            "independent-bernoulli",
            "README (closed-form posterior predictive, Beta(1, 1))",
        ),
        _closed_form(
            "bernoulli-beta0.5",
            (BINARY,),
            "independent-bernoulli",
            "Jeffreys prior Beta(1/2, 1/2)",
            prior_a=0.5,
            prior_b=0.5,
        ),
        _closed_form(
            "categorical-dir1",
            (LEVELS,),
            "independent-categorical",
            "vae_quality.py's baseline (closed form, Dirichlet(1))",
        ),
        _closed_form(
            "categorical-dir0.5", (LEVELS,), "independent-categorical", "Jeffreys prior Dirichlet(1/2)", prior_alpha=0.5
        ),
    ],
    "naive-bayes": [  # p(x) = sum_y p(x, y): an exact density of x (not conditional)
        _closed_form("bernoulli-nb", (BINARY,), "bernoulli-nb", "registry default, conjugate posterior"),
        _closed_form("categorical-nb-dir1", (LEVELS,), "categorical-nb", "registry default, conjugate posterior"),
        _closed_form("categorical-nb-dir0.5", (LEVELS,), "categorical-nb", "Dirichlet(1/2)", prior_alpha=0.5),
    ],
    "fvbn": [
        Candidate("fvbn", BOTH, lambda d: FVBN.from_dataset(d), {"lr": 1e-2}, source="autoregressive_quality.py"),
    ],
    "nade": [
        Candidate(
            "nade-500",
            BOTH,
            lambda d: NADE.from_dataset(d, num_hidden=500),
            {"lr": 1e-3},
            source="autoregressive_quality.py",
        ),
    ],
    "made": [
        Candidate(
            "made-ensemble",
            BOTH,
            lambda d: MADE.from_dataset(d, hidden_features=(500, 500), num_masks=16),
            {"lr": 1e-3},
            source="autoregressive_quality.py (17.30 on binary)",
        ),
        Candidate(  # dropout in training only; Adam's rate decays 0.998 an epoch
            "made-ensemble-dropout",
            BOTH,
            lambda d: MADE.from_dataset(d, hidden_features=(1000, 1000), num_masks=16, dropout=0.3),
            {"lr": 2e-3, "lr_decay": 0.998, "patience": 100},
            source="autoregressive_quality.py (16.93 on binary, its best)",
        ),
        *(_made(*entry) for entry in MADE_ENSEMBLES),
    ],
    "pixelcnn": [
        _pixelcnn(BOTH, "categorical"),
        _pixelcnn((LEVELS,), "logistic", source="autoregressive_quality.py (81.34 on digits)"),
        *(_pixelcnn((BINARY,), "categorical", *entry) for entry in PIXELCNN_DROPOUT["categorical"]),
        *(_pixelcnn((LEVELS,), "logistic", *entry) for entry in PIXELCNN_DROPOUT["logistic"]),
    ],
    "causal-transformer": [
        Candidate(
            "transformer-64x3",
            BOTH,
            lambda d: CausalTransformer.from_dataset(d, embed_dim=64, num_layers=3),
            {"lr": 1e-3},
            source="autoregressive_quality.py",
        ),
    ],
    "rbm": [  # log Z enumerated exactly (20 hidden units: 2^20 states), as compare does
        Candidate(
            f"rbm-20-{'p' if persistent else ''}cd1",
            (BINARY,),
            lambda d: RBM(d.event_shape, d.support, num_hidden=20),
            {"lr": 0.01, "batch_size": 20, "strategy_options": {"k": 1, "persistent": persistent}},
            source="gan_ddpm_rbm_quality.py",
        )
        for persistent in (False, True)
    ],
    "vae": [
        Candidate(
            "gaussian",
            BOTH,
            lambda d: VAE(d.event_shape, d.support, **_VAE),
            {"lr": 1e-3, "patience": 100},
            IWAE_VAE,
            source="vae_quality.py (the 64-200-8 VAE; 17.98 on binary)",
        ),
        _vamp("vamp01-iwae5-s200-drop", 0.1, "vae_quality.py --flows (17.21 on binary)"),
        _vamp("vamp01-iwae5-s200-drop0.2", 0.2, "vae_quality.py --flows (17.23 on binary, its best by validation)"),
    ],
    "ddpm": [  # the default: levels (Bayes' rule over each pixel's levels), learned variances
        Candidate(
            "ddpm-levels",
            BOTH,
            lambda d: DDPM.from_dataset(d, steps=50, hidden_features=(256, 256)),
            {"lr": 1e-3},
            BOUND_DDPM,
            source="gan_ddpm_rbm_quality.py (98.1 on digits, 20.9 on binary)",
        ),
        Candidate(
            "ddpm-levels-betas0.1-0.3",
            BOTH,
            lambda d: DDPM.from_dataset(d, steps=50, hidden_features=(256, 256), beta_range=(0.1, 0.3)),
            {"lr": 1e-3},
            BOUND_DDPM,
            source="gan_ddpm_rbm_quality.py (97.3 on digits)",
        ),
    ],
    **{
        f"flow-{name}": [_flow(name, base, noise, **kwargs) for noise in ("uniform", "variational")]
        + [
            _flow(name, base, noise, layers=n, q=q, dropout=rate, **kwargs)
            for noise, n, q, rate in MORE_FLOWS.get(name, [])
        ]
        for name, base, kwargs in (
            ("maf", MAF, {}),
            ("nsf-ar", NSFAutoregressive, {"bound": 5.0}),
            ("nsf", NSF, {"bound": 5.0}),
            ("naf", NAF, {}),
            ("realnvp", RealNVP, {}),
        )
    },
}


def candidate_named(family: str, name: str) -> Candidate:
    """The candidate ``name`` of ``family``."""
    found = [c for c in CANDIDATES[family] if c.name == name]
    if not found:
        raise ValueError(f"{family} has no candidate {name!r}; it has {[c.name for c in CANDIDATES[family]]}")
    return found[0]


def _no_build(data: Dataset) -> GenerativeModel:
    raise TypeError("a stack is built from its fitted members (fit_and_score_stack), not from data")


#: the stack on binary digits: the configuration each family with an exact density chose by
#: validation (seed 0; the RBM's density is unnormalized, the VAE's a bound), mixed with weights
#: fitted on the validation split. On seed 0 the weights went mostly to MADE and PixelCNN
STACK_MEMBERS = (
    ("made", "made-1500x2-m16-drop0.4"),
    ("pixelcnn", "pixelcnn-64x6-drop0.2"),
    ("nade", "nade-500"),
    ("causal-transformer", "transformer-64x3"),
    ("fvbn", "fvbn"),
)
CANDIDATES["stacked"] = [
    Candidate(
        "stack-" + "-".join(family.split("-")[-1] for family, _ in STACK_MEMBERS),
        (BINARY,),
        _no_build,
        members=STACK_MEMBERS,
        source="stacking (Smyth & Wolpert 1999): each exact family's chosen configuration",
    )
]

#: family -> its group in the map of families (Goodfellow's taxonomy, probgen.models.families)
GROUP = {
    "factorized": "factorized",
    "naive-bayes": "Bayesian classifier",
    **dict.fromkeys(("fvbn", "nade", "made", "pixelcnn", "causal-transformer"), "autoregressive"),
    "rbm": "energy-based",
    "vae": "VAE",
    "ddpm": "diffusion",
    **{family: "flow" for family in CANDIDATES if family.startswith("flow-")},
    "stacked": "stacked",
}


# ---------------------------------------------------------------------------------------- cache
@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock beside the cache (POSIX ``flock``; no lock where there is none)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX: os.replace still keeps the file whole
        yield
        return
    with open(path.with_name(path.name + ".lock"), "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def read_cache(path: Path) -> dict[str, dict[str, Any]]:
    """The cache's entries (none when there is no file yet)."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return {}
    try:
        return dict(json.loads(text)["entries"])
    except (ValueError, KeyError, TypeError) as err:
        raise SystemExit(f"{path}: not a frontier cache ({err}); move it away or pass another --cache") from err


def store(path: Path, key: str, entry: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Add one entry: re-read the cache under the lock, merge, write a temporary file, replace."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with _locked(path):
        entries = read_cache(path)
        entries[key] = entry
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as handle:
                json.dump({"version": 1, "entries": entries}, handle, indent=1, sort_keys=True)
            os.chmod(tmp, 0o644)  # mkstemp's 0600 would make the cache private
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
    return entries


# ------------------------------------------------------------------------------------------ fits
def images(data: Dataset) -> Dataset:
    return Dataset(data.x.reshape(-1, 1, 8, 8), data.y, data.support, name=data.name)


def budget(candidate: Candidate, args: argparse.Namespace) -> dict[str, Any]:
    """What the fit's numbers depend on beyond the candidate: the epochs cap, the patience, the
    evaluation (an entry of the cache is reused only under the same budget)."""
    epochs = min(candidate.fit.get("epochs", args.epochs), args.epochs)
    patience = args.patience if args.patience is not None else candidate.fit.get("patience", DEFAULT_PATIENCE)
    spent = {"epochs": epochs, "patience": patience, "eval": candidate.evaluation.label(args.max_samples)}
    if candidate.members:
        spent["members_refitted"] = "train+val, the updates to the best epoch"
    return spent


def fitted(
    splits: tuple[Dataset, Dataset, Dataset], candidate: Candidate, seed: int, args: argparse.Namespace
) -> tuple[GenerativeModel, Any]:
    """One candidate built and fitted with one seed (on its training split, early stopping on its
    validation split): the model and the fit's result."""
    train, val, _ = (images(s) if candidate.images else s for s in splits)
    spent = budget(candidate, args)
    options = {"batch_size": 100, **candidate.fit, "epochs": spent["epochs"], "patience": spent["patience"]}
    torch.manual_seed(seed)
    model = candidate.build(train)
    return model, pg.fit(model, train, val_data=val, seed=seed, progress=False, **options)


def fit_and_score(
    splits: tuple[Dataset, Dataset, Dataset], candidate: Candidate, seed: int, args: argparse.Namespace
) -> dict[str, Any]:
    """Build, fit and score one candidate with one seed: the cache entry."""
    if candidate.members:
        return fit_and_score_stack(splits, candidate, seed, args)
    train, val, test = (images(s) if candidate.images else s for s in splits)
    start = time.perf_counter()
    model, result = fitted(splits, candidate, seed, args)
    fit_seconds = time.perf_counter() - start
    val_score = candidate.evaluation.score(model, val, train, seed, args.max_samples)
    test_score = candidate.evaluation.score(model, test, train, seed, args.max_samples)
    return {
        "budget": budget(candidate, args),
        "val_nll": val_score.nll,
        "val_stderr": val_score.stderr,
        **_test_fields(test_score),
        "best_epoch": result.best_epoch + 1,
        "epochs_run": len(result.history),
        "fit_seconds": fit_seconds,
        "wall_seconds": time.perf_counter() - start,
        "threads": torch.get_num_threads(),
    }


def _test_fields(score: LogLikelihood) -> dict[str, Any]:
    return {
        "test_nll": score.nll,
        "test_stderr": score.stderr,
        "test_bits_per_dim": score.bits_per_dim,
        "kind": score.kind,
        "method": score.method,
        "num_samples": score.num_samples,
    }


def _fit_weights(stack: Stacked, data: Dataset, seed: int) -> Any:
    """The stack's mixture weights by maximum likelihood on ``data`` (EM, probgen's default for a stack)."""
    return pg.fit(stack, data, seed=seed, progress=False)


def refitted(
    splits: tuple[Dataset, Dataset, Dataset], candidate: Candidate, seed: int, args: argparse.Namespace, epochs: int
) -> GenerativeModel:
    """One candidate built and fitted again with the same seed on the training and validation
    splits together, for as many parameter updates as its early-stopped fit took to its best epoch
    (Goodfellow et al. 2016, Algorithm 7.2): ``epochs`` epochs of the training split, in epochs of
    the larger split, rounded, at least one."""
    train, val, _ = (images(s) if candidate.images else s for s in splits)
    both = Dataset(torch.cat([train.x, val.x]), None, train.support, name=train.name)
    options = {"batch_size": 100, **candidate.fit}
    options.pop("patience", None)
    options["epochs"] = max(1, round(epochs * len(train) / len(both)))
    torch.manual_seed(seed)
    model = candidate.build(train)
    pg.fit(model, both, seed=seed, progress=False, **options)
    return model


def _cross_fitted_log_probs(table: torch.Tensor, seed: int) -> torch.Tensor:
    """Each validation example's log-probability under the weights fitted (by the EM of ``pg.fit``
    on a stack) on the other half of the validation split, both ways, so that no weight scores
    its own data; ``table``: the members' log-likelihoods of the validation split, ``[N, K]``."""
    halves = torch.randperm(len(table), generator=torch.Generator().manual_seed(seed)).chunk(2)
    held_out = []
    for fold, other in ((0, 1), (1, 0)):
        log_weights = em_weights(table[halves[fold]]).log()
        held_out.append(torch.logsumexp(table[halves[other]] + log_weights, 1))
    return torch.cat(held_out)


def _member_nlls(table: torch.Tensor, names: list[str]) -> dict[str, float]:
    """Each member's own exact NLL, from the members' log-likelihoods ``table`` (``[N, K]``)."""
    return dict(zip(names, (-table.mean(0)).tolist(), strict=True))


def _table(stack: Stacked, data: Dataset) -> torch.Tensor:
    """The stack's members' log-likelihoods of ``data``, ``[N, K]``, in float64."""
    return stack.component_log_probs(data.x).double()


def fit_and_score_stack(
    splits: tuple[Dataset, Dataset, Dataset], candidate: Candidate, seed: int, args: argparse.Namespace
) -> dict[str, Any]:
    """A stack's cache entry, built as scikit-learn's ``StackingClassifier`` is: the weights are
    fitted on predictions of data the members did not train on, and the members are then refitted
    on all the data the stack was given. Here the members are fitted with the seed as their own
    candidates are (training split, early stopping on validation), the weights by EM on their
    log-likelihoods of the validation split, and each member is refitted on training and
    validation together for the updates it took to its best epoch (:func:`refitted`); the test
    split is scored exactly by the refitted members under those weights. Its validation NLL, what
    the selection reads, is the first members' and cross-fitted: the weights fitted on each half
    of the validation split score the other half. The entry also keeps the test NLL of the first
    members' stack and of every member alone, first and refitted."""
    train, val, test = splits
    names = [name for _, name in candidate.members]
    start = time.perf_counter()
    first = [fitted(splits, candidate_named(family, name), seed, args) for family, name in candidate.members]
    parts = [model for model, _ in first]
    stack = Stacked.from_dataset(train, models=parts)
    val_log_probs = _cross_fitted_log_probs(_table(stack, val), seed)
    result = _fit_weights(stack, val, seed)
    test_table = _table(stack, test)  # the first members' stack, scored from the same table
    first_test_nll = -torch.logsumexp(test_table + stack.weights.double().log(), 1).mean().item()
    refits = [
        refitted(splits, candidate_named(family, name), seed, args, fit.best_epoch + 1)
        for (family, name), (_, fit) in zip(candidate.members, first, strict=True)
    ]
    fit_seconds = time.perf_counter() - start
    final = Stacked.from_dataset(train, models=refits)
    final.set_weights(stack.weights)
    test_score = pg.log_likelihood(final, test)
    return {
        "budget": budget(candidate, args),
        "val_nll": -val_log_probs.mean().item(),
        "val_stderr": val_log_probs.std().item() / math.sqrt(len(val_log_probs)),
        "val_nll_weights_fitted": result.history[0]["train_loss"],  # the fit's own mean NLL of val
        **_test_fields(test_score),
        "test_nll_first_members": first_test_nll,
        "member_test_nll": _member_nlls(test_table, names),
        "refitted_member_test_nll": _member_nlls(_table(final, test), names),
        "member_best_epoch": dict(zip(names, (fit.best_epoch + 1 for _, fit in first), strict=True)),
        "weights": dict(zip(names, stack.weights.tolist(), strict=True)),
        "best_epoch": result.best_epoch + 1,
        "epochs_run": len(result.history),
        "fit_seconds": fit_seconds,
        "wall_seconds": time.perf_counter() - start,
        "threads": torch.get_num_threads(),
    }


class Runs:
    """The cache's entries, and the fits that fill it (none with ``--report``)."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args, self.path = args, Path(args.cache)
        self.entries = read_cache(self.path)
        self.fitted = self.reused = self.failed = 0
        self.seen: set[str] = set()  # keys already printed by this process (the selection's seed)

    def get(
        self, splits: tuple[Dataset, Dataset, Dataset], family: str, candidate: Candidate, seed: int
    ) -> dict[str, Any] | None:
        """The entry of ``dataset/family/candidate/seed``: from the cache when it holds one under
        this budget, else fitted (and stored) now; None when it failed or is not to be fitted."""
        dataset = splits[0].name
        key = f"{dataset}/{family}/{candidate.name}/{seed}"
        label = f"{dataset} {family}/{candidate.name} seed {seed}"
        entry = self.entries.get(key)
        if entry is None or entry.get("budget") != budget(candidate, self.args):
            self.entries = read_cache(self.path)  # another process may have fitted it meanwhile
            entry = self.entries.get(key)
        if entry is not None and entry.get("budget") == budget(candidate, self.args):
            if key not in self.seen:
                self.seen.add(key)
                self.reused += 1
                print(f"{label}: cached: {_describe(entry)}", flush=True)
            return entry
        if self.args.report:
            return None
        try:
            entry = fit_and_score(splits, candidate, seed, self.args)
        except Exception as err:  # one failed fit is reported; the others go on
            self.failed += 1
            last = traceback.format_exception_only(type(err), err)[-1].strip()
            print(f"{label}: FAILED: {last}", flush=True)
            return None
        self.fitted += 1
        self.seen.add(key)
        self.entries = store(self.path, key, entry)
        print(f"{label}: {_describe(entry)}", flush=True)
        return entry


def _describe(entry: dict[str, Any]) -> str:
    return (
        f"val NLL {entry['val_nll']:.2f}, test NLL {entry['test_nll']:.2f} ± {entry['test_stderr']:.2f} nats "
        f"[{_kind(entry['kind'])}, {entry['budget']['eval']}] (best epoch {entry['best_epoch']} of "
        f"{entry['epochs_run']}, {entry['wall_seconds']:.0f} s)" + _describe_stack(entry)
    )


def _describe_stack(entry: dict[str, Any]) -> str:
    """A stack's parts: its weights, its first members' test NLL, every member's alone (first and refitted)."""
    if "refitted_member_test_nll" not in entry:
        return ""
    members = ", ".join(
        f"{name} {entry['weights'][name]:.3f}: {nll:.2f} -> {entry['refitted_member_test_nll'][name]:.2f}"
        for name, nll in entry["member_test_nll"].items()
    )
    return (
        f"; test NLL of the first members' stack {entry['test_nll_first_members']:.2f}; "
        f"members (weight: test NLL alone, first -> refitted on train+val): {members}"
    )


def _kind(kind: str) -> str:
    return kind.replace("_", " ")


# --------------------------------------------------------------------------------------- tables
@dataclass
class Row:
    """A family's chosen configuration over the seeds."""

    family: str
    candidate: str
    entries: list[dict[str, Any]]
    seeds: list[int]

    def mean(self, name: str) -> float:
        return statistics.fmean(entry[name] for entry in self.entries)

    @property
    def spread(self) -> float | None:
        values = [entry["test_nll"] for entry in self.entries]
        return statistics.stdev(values) if len(values) > 1 else None

    @property
    def kind(self) -> str:
        return "/".join(sorted({_kind(entry["kind"]) for entry in self.entries}))


def _cells(values: list[Any]) -> str:
    return "| " + " | ".join(str(v) for v in values) + " |"


def markdown(header: list[str], rows: list[list[Any]]) -> str:
    return "\n".join([_cells(header), "|" + "|".join("---" for _ in header) + "|", *map(_cells, rows)])


def _num(value: float | None, digits: int = 2) -> str:
    return "—" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def frontier_table(rows: list[Row]) -> str:
    header = ["family", "group", "chosen configuration", "test NLL (nats)", "bits/dim", "stderr (mean)"]
    header += ["sd over seeds", "kind", "seeds", "val NLL", "wall s / seed"]
    body = [
        [
            row.family,
            GROUP[row.family],
            row.candidate,
            _num(row.mean("test_nll")),
            _num(row.mean("test_bits_per_dim"), 4),
            _num(row.mean("test_stderr")),
            _num(row.spread),
            row.kind,
            " ".join(map(str, row.seeds)),
            _num(row.mean("val_nll")),
            _num(row.mean("wall_seconds"), 0),
        ]
        for row in sorted(rows, key=lambda r: r.mean("val_nll"))
    ]
    return markdown(header, body)


def selection_table(tried: list[tuple[str, Candidate, dict[str, Any] | None, bool]]) -> str:
    header = ["family", "candidate", "val NLL", "test NLL", "kind", "eval", "best epoch / run", "wall s", "chosen"]
    body = []
    for family, candidate, entry, chosen in tried:
        if entry is None:
            body.append([family, candidate.name, "—", "—", "—", "—", "—", "—", "not run"])
            continue
        epochs = f"{entry['best_epoch']} / {entry['epochs_run']}"
        body.append(
            [family, candidate.name, _num(entry["val_nll"]), _num(entry["test_nll"]), _kind(entry["kind"])]
            + [entry["budget"]["eval"], epochs, _num(entry["wall_seconds"], 0), "yes" if chosen else ""]
        )
    return markdown(header, body)


def verdict(label: str, rows: list[Row], target: float, complete: bool) -> str:
    if not rows:
        return f"n/a: {label}: no finished row (no such family run here)"
    best = min(rows, key=lambda r: r.mean("val_nll"))
    test = best.mean("test_nll")
    outcome = "PASS" if test < target else "FAIL"
    among = "" if complete else " (among the families finished only)"
    return (
        f"{outcome}: {label} < {target:g} nats{among}: {best.family} ({best.candidate}) test NLL {_num(test)} "
        f"[{best.kind}], mean of {len(best.entries)} seed(s) (val {_num(best.mean('val_nll'))})"
    )


def run_dataset(name: str, runs: Runs, args: argparse.Namespace) -> None:
    splits = tuple(pg.load_dataset(name, s) for s in SPLITS)
    rows: list[Row] = []
    tried: list[tuple[str, Candidate, dict[str, Any] | None, bool]] = []
    first = args.seeds[0]
    for family in args.families:
        candidates = [c for c in CANDIDATES[family] if name in c.datasets]
        if args.candidates:  # a restricted run: the choice is among these (the others show "not run")
            tried += [(family, c, None, False) for c in candidates if c.name not in args.candidates]
            candidates = [c for c in candidates if c.name in args.candidates]
        if not candidates:
            continue
        selection = [(c, runs.get(splits, family, c, first)) for c in candidates]
        done = [(c, e) for c, e in selection if e is not None and math.isfinite(e["val_nll"])]
        chosen = min(done, key=lambda pair: pair[1]["val_nll"])[0] if done else None
        tried += [(family, c, e, c is chosen) for c, e in selection]
        if chosen is None:
            continue
        entries = [runs.get(splits, family, chosen, seed) for seed in args.seeds]
        kept = [(seed, e) for seed, e in zip(args.seeds, entries, strict=True) if e is not None]
        if kept:
            rows.append(Row(family, chosen.name, [e for _, e in kept], [seed for seed, _ in kept]))
    train, val, test = splits
    print(f"\n## {name}: {len(train)} / {len(val)} / {len(test)} digits, {train.support}, {train.num_dims} dims\n")
    print(f"Selection (seed {first}, by validation NLL; test shown, not used):\n")
    print(selection_table(tried))
    print(f"\nFrontier (each family's chosen configuration, test NLL mean over seeds {args.seeds}):\n")
    print(frontier_table(rows) if rows else "(no finished row)")
    # a verdict over fewer families than suit the dataset (some not run, failed or not cached) says so
    finished = {row.family for row in rows}
    suited = {family for family, candidates in CANDIDATES.items() if any(name in c.datasets for c in candidates)}
    complete = suited <= finished
    if rows:
        best = min(rows, key=lambda r: r.mean("val_nll"))
        print(
            f"\nfrontier {name}: {best.family} ({GROUP[best.family]}; {best.candidate}), chosen by validation "
            f"(val {_num(best.mean('val_nll'))}): test NLL {_num(best.mean('test_nll'))} nats, "
            f"{_num(best.mean('test_bits_per_dim'), 4)} bits/dim [{best.kind}], seeds {best.seeds}"
        )
    if name in TARGETS:
        print(verdict(f"{name} best", rows, TARGETS[name], complete))
    for (dataset, group), target in GROUP_TARGETS.items():
        if dataset == name:
            members = [row for row in rows if GROUP[row.family] == group]
            everyone = {family for family in suited if GROUP[family] == group} <= finished
            print(verdict(f"{name} best {group}", members, target, everyone))


def list_candidates() -> None:
    header = ["family", "group", "candidate", "datasets", "fit options", "evaluation", "from"]
    body = [
        [family, GROUP[family], c.name, " ".join(c.datasets), json.dumps(c.fit, default=str)]
        + [c.evaluation.label(None) + (", 1x8x8 images" if c.images else ""), c.source]
        for family, candidates in CANDIDATES.items()
        for c in candidates
    ]
    print(markdown(header, body))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", nargs="+", default=list(BOTH), choices=list(BOTH))
    parser.add_argument("--families", nargs="+", default=list(CANDIDATES), choices=list(CANDIDATES))
    parser.add_argument("--candidates", nargs="+", help="only these candidates (by name) of the families")
    parser.add_argument("--seeds", nargs="+", type=int, help="torch and fit seeds (default 0 1 2; --quick: 0)")
    parser.add_argument("--epochs", type=int, help="cap on every fit's epochs (default 1000; --quick: 2)")
    parser.add_argument("--patience", type=int, help="early-stopping patience of every fit (default: each own)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--cache", default="runs/frontier.json", help="JSON cache of the fits")
    parser.add_argument("--max-samples", type=int, help="cap on the evaluations' draws (--quick: 100)")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 2 epochs, patience 2, seed 0, K <= 100")
    parser.add_argument("--report", action="store_true", help="print the tables from the cache; fit nothing")
    parser.add_argument("--list", action="store_true", help="print the candidate table and stop")
    args = parser.parse_args()
    if args.list:
        list_candidates()
        return
    if args.epochs is None:
        args.epochs = 2 if args.quick else 1000
    if args.patience is None and args.quick:
        args.patience = 2
    if args.seeds is None:
        args.seeds = [0] if args.quick else [0, 1, 2]
    if args.max_samples is None and args.quick:
        args.max_samples = 100
    torch.set_num_threads(args.threads)
    # the importance-weighted scores' Pareto k-hat: the numbers carry their own diagnostics
    warnings.filterwarnings("ignore", message=".*k-hat.*", category=UserWarning)
    start = time.perf_counter()
    runs = Runs(args)
    print(f"# The likelihood frontier (cache {args.cache}; epochs <= {args.epochs}, patience "
          f"{args.patience or 'each own'}, {args.threads} thread(s))", flush=True)  # fmt: skip
    for name in args.data:
        run_dataset(name, runs, args)
    print(
        f"\n{runs.fitted} fit(s) run, {runs.reused} reused from {args.cache}, {runs.failed} failed; "
        f"{time.perf_counter() - start:.0f} s"
    )


if __name__ == "__main__":
    main()
