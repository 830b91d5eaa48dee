"""Tutorial: generative against discriminative classifiers — learning curves after Ng & Jordan.

A generative classifier models p(x | y) p(y) and classifies by Bayes' rule; a discriminative one
models p(y | x) directly. Ng & Jordan (2002, "On discriminative vs. generative classifiers")
showed that Naive Bayes reaches its (higher) asymptotic error with far fewer examples than
logistic regression — O(log D) against O(D) — so that logistic regression overtakes it only as the
training set grows. This tutorial draws those learning curves (test error against training-set
size, several random training sets per size, mean ± sd) for probgen's Bayesian Naive Bayes, LDA
and QDA, each with its exact posterior predictive ("closed form") and with a MAP point estimate
(plug-in predictive), against scikit-learn's LogisticRegression, on the bundled iris, wine,
breast-cancer and digits sets and on a synthetic problem where the Naive Bayes assumption holds
exactly (features independent Gaussians given the class, known parameters), so that the Bayes
error is known in closed form. Beside the error: the test log loss and a reliability diagram at
the smallest size, where the posterior predictive should show its value over a plug-in.

It prints its key numbers one per line, for scripts to read:
``bayes_error synthetic <x>``, ``error <dataset> <model> n=<size> mean=<x> sd=<y>``,
``logloss <dataset> <model> n=<size> mean=<x> sd=<y>`` and ``crossing <dataset> n=<size>``
(``crossing <dataset> none`` where logistic regression never overtakes Naive Bayes).

Run: python examples/generative_vs_discriminative.py [--out DIR] [--quick]
"""

import argparse
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from scipy.stats import norm  # noqa: E402
from sklearn.datasets import load_breast_cancer, load_digits, load_iris, load_wine  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.metrics import log_loss  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

from probgen.classifiers import LDA, QDA, GaussianNB  # noqa: E402
from probgen.plots import save_figure  # noqa: E402

__all__ = [
    "Synthetic",
    "Curves",
    "synthetic_problem",
    "real_splits",
    "synthetic_splits",
    "make_models",
    "learning_curves",
    "crossing",
    "plot_curves",
]

#: the discriminative baseline every generative model is compared with: maximum-likelihood
#: (unpenalized) logistic regression, as in Ng & Jordan; "logistic-l2" is scikit-learn's default
#: (an L2 penalty, C = 1: a Gaussian prior on the weights), shown beside it
BASELINE = "logistic"
PENALIZED = "logistic-l2"
#: the generative model whose crossing with the baseline is reported (the classic pair)
GENERATIVE = "naive-bayes"
#: covariances shrunk towards 0.1 I on standardized features: with the default 1e-4 (LDA) an
#: n < D training set leaves directions of near-zero variance whose huge predictive precision
#: makes LDA's error near chance on digits at 30 examples; 0.1 keeps every size well posed
REG_PARAM = 0.1
#: full-batch SVI steps of a MAP fit (Adam, lr 0.1): the error and log loss no longer move
#: between 100 and 500 steps on these sets, while 50 steps leave Naive Bayes on digits unconverged
MAP_EPOCHS = 100


# ---------------------------------------------------------------------------------- the data


@dataclass(frozen=True)
class Synthetic:
    """Two equally likely classes whose features are independent Gaussians given the class, with
    one scale per feature shared by both classes: the Naive Bayes assumption holds exactly, and
    so does logistic regression's (the log-odds are linear in x).

    Attributes:
        loc: class means, ``[2, D]``.
        scale: feature standard deviations, ``[D]``.
    """

    loc: np.ndarray
    scale: np.ndarray

    @property
    def num_features(self) -> int:
        return len(self.scale)

    @property
    def bayes_error(self) -> float:
        """The Bayes error in closed form: with shared scales the Bayes rule is linear and errs
        with probability ``Phi(-Delta / 2)``, Delta the Mahalanobis distance of the class means."""
        delta = float(np.linalg.norm((self.loc[1] - self.loc[0]) / self.scale))
        return float(norm.cdf(-delta / 2))

    def bayes_predict(self, X: np.ndarray) -> np.ndarray:
        """The Bayes classifier (the known parameters): the class of larger likelihood."""
        z = (X[:, None, :] - self.loc[None]) / self.scale
        return np.argmin((z**2).sum(-1), axis=1)

    def sample(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """``n`` examples, labels first drawn with equal probabilities."""
        y = rng.integers(0, 2, n)
        return self.loc[y] + self.scale * rng.standard_normal((n, self.num_features)), y


def synthetic_problem(num_features: int = 30, bayes_error: float = 0.1, seed: int = 0) -> Synthetic:
    """A :class:`Synthetic` problem with ``num_features`` features and the given Bayes error.

    The per-feature separations decay as ``1 / sqrt(d + 1)`` (a few strong features, many weak
    ones, as in text or pixels), scaled so that the Mahalanobis distance gives ``bayes_error``.

    Example:
        >>> problem = synthetic_problem(10, bayes_error=0.2)
        >>> round(problem.bayes_error, 6), problem.loc.shape
        (0.2, (2, 10))
    """
    if not 0 < bayes_error < 0.5:
        raise ValueError(f"bayes_error must lie in (0, 0.5), got {bayes_error}")
    if num_features < 1:
        raise ValueError(f"num_features must be >= 1, got {num_features}")
    rng = np.random.default_rng(seed)
    scale = rng.uniform(0.5, 2.0, num_features)
    weights = 1 / np.sqrt(np.arange(1, num_features + 1))
    delta = 2 * norm.ppf(1 - bayes_error)  # the Mahalanobis distance that gives this error
    gap = delta * weights / np.linalg.norm(weights) * scale * rng.choice([-1.0, 1.0], num_features)
    centre = rng.normal(0.0, 1.0, num_features)
    return Synthetic(np.stack([centre - gap / 2, centre + gap / 2]), scale)


Split = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def real_splits(X: np.ndarray, y: np.ndarray, test_fraction: float = 0.3) -> Callable[[int], Split]:
    """Draw ``r`` -> (pool X, pool y, test X, test y): a stratified test split of its own per draw."""

    def draw(r: int) -> Split:
        Xp, Xt, yp, yt = train_test_split(X, y, test_size=test_fraction, stratify=y, random_state=r)
        return Xp, yp, Xt, yt

    return draw


def synthetic_splits(problem: Synthetic, pool: int, test: int, seed: int = 0) -> Callable[[int], Split]:
    """Draw ``r`` -> fresh pool and test samples of the synthetic problem."""

    def draw(r: int) -> Split:
        rng = np.random.default_rng([seed, r])
        return (*problem.sample(pool, rng), *problem.sample(test, rng))

    return draw


DATASETS: dict[str, Callable[[], tuple[np.ndarray, np.ndarray]]] = {
    "iris": lambda: load_iris(return_X_y=True),
    "wine": lambda: load_wine(return_X_y=True),
    "breast-cancer": lambda: load_breast_cancer(return_X_y=True),
    "digits": lambda: load_digits(return_X_y=True),
}

#: training-set sizes: a doubling grid from about two examples per class to the 70% pool
SIZES = {
    "synthetic": (48, 96, 192, 384, 768, 1536),
    "iris": (6, 12, 24, 48, 96),
    "wine": (6, 12, 24, 48, 96),
    "breast-cancer": (6, 12, 24, 48, 96, 192, 384),
    "digits": (20, 40, 80, 160, 320, 640, 1200),
}
QUICK_SIZES = {
    "synthetic": (48, 192, 1536),
    "iris": (6, 24, 96),
    "wine": (6, 24, 96),
    "breast-cancer": (6, 48, 384),
    "digits": (20, 160, 640),
}


# ---------------------------------------------------------------------------------- the models


def make_models(map_models: Sequence[str] = ("naive-bayes", "lda", "qda"), map_epochs: int = MAP_EPOCHS) -> dict:
    """Factories of the classifiers by printed name: the closed-form posteriors of probgen's
    Naive Bayes, LDA and QDA, their MAP fits for the names in ``map_models``, and the baseline.

    Example:
        >>> sorted(make_models(map_models=("lda",)))
        ['lda', 'lda-map', 'logistic', 'logistic-l2', 'naive-bayes', 'qda']
    """
    generative = {
        "naive-bayes": lambda **kw: GaussianNB(**kw),
        "lda": lambda **kw: LDA(reg_param=REG_PARAM, **kw),
        "qda": lambda **kw: QDA(reg_param=REG_PARAM, **kw),
    }
    unknown = set(map_models) - set(generative)
    if unknown:
        raise ValueError(f"map_models: unknown {sorted(unknown)}; expected some of {sorted(generative)}")
    models: dict[str, Callable[[], Any]] = {}
    for name, build in generative.items():
        models[name] = build
        if name in map_models:
            models[f"{name}-map"] = lambda build=build: build(method="map", epochs=map_epochs, lr=0.1)
    # multinomial logistic regression on standardized features: by maximum likelihood, and with
    # scikit-learn's default L2 penalty (which at small n acts much like a shared-variance prior)
    models[BASELINE] = lambda: LogisticRegression(C=np.inf, max_iter=1000)
    models[PENALIZED] = lambda: LogisticRegression(max_iter=1000)
    return models


# ---------------------------------------------------------------------------------- the curves


@dataclass
class Curves:
    """Learning curves of one dataset.

    Attributes:
        sizes: the training-set sizes.
        error, logloss: model -> ``[draws, len(sizes)]`` test error and test log loss (nats).
        confidence, correct: model -> the top predicted probability and whether it was right, of
            every test example of every draw at the smallest size (for the reliability diagram).
        seconds: model -> total fit and predict time.
    """

    sizes: tuple[int, ...]
    error: dict[str, np.ndarray] = field(default_factory=dict)
    logloss: dict[str, np.ndarray] = field(default_factory=dict)
    confidence: dict[str, np.ndarray] = field(default_factory=dict)
    correct: dict[str, np.ndarray] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    def mean(self, model: str, what: str = "error") -> np.ndarray:
        return getattr(self, what)[model].mean(0)

    def sd(self, model: str, what: str = "error") -> np.ndarray:
        values = getattr(self, what)[model]
        return values.std(0, ddof=1) if len(values) > 1 else np.zeros(values.shape[1])


def _subsample(X: np.ndarray, y: np.ndarray, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A stratified training set of ``n`` rows of the pool (the whole pool when ``n`` is its size)."""
    if n >= len(y):
        return X, y
    Xn, _, yn, _ = train_test_split(X, y, train_size=n, stratify=y, random_state=seed)
    return Xn, yn


def learning_curves(
    split: Callable[[int], Split], sizes: Sequence[int], models: dict[str, Callable[[], Any]], *, draws: int
) -> Curves:
    """Test error and log loss of every model at every size, over ``draws`` random draws.

    Each draw takes a pool and a test set from ``split(draw)``, then for each size a stratified
    training set of that many pool rows; features are standardized with the training set's own
    mean and scale (what a user would do), for every model alike.

    Args:
        split: draw index -> (pool X, pool y, test X, test y) (:func:`real_splits`, :func:`synthetic_splits`).
        sizes: training-set sizes, increasing; each must hold every class.
        models: name -> factory of an unfitted scikit-learn-style classifier (:func:`make_models`).
        draws: random draws per size (at least 1; 2 or more give a standard deviation).
    """
    if draws < 1:
        raise ValueError(f"draws must be >= 1, got {draws}")
    if list(sizes) != sorted(set(sizes)):
        raise ValueError(f"sizes must be increasing and distinct, got {list(sizes)}")
    curves = Curves(tuple(sizes))
    for name in models:
        curves.error[name] = np.zeros((draws, len(sizes)))
        curves.logloss[name] = np.zeros((draws, len(sizes)))
        curves.seconds[name] = 0.0
    confidence: dict[str, list[np.ndarray]] = {name: [] for name in models}
    correct: dict[str, list[np.ndarray]] = {name: [] for name in models}
    for r in range(draws):
        Xp, yp, Xt, yt = split(r)
        classes = np.unique(np.concatenate([yp, yt]))
        for i, n in enumerate(sizes):
            X, y = _subsample(Xp, yp, n, seed=1000 * r + i)
            if len(np.unique(y)) != len(classes):
                raise ValueError(f"a training set of {n} rows lacks a class; use sizes of at least 2 per class")
            scaler = StandardScaler().fit(X)
            X, Xtest = scaler.transform(X), scaler.transform(Xt)
            for name, build in models.items():
                start = time.perf_counter()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # lbfgs at its iteration cap on separable sets
                    model = build().fit(X, y)
                proba = model.predict_proba(Xtest)
                curves.seconds[name] += time.perf_counter() - start
                predicted = model.classes_[proba.argmax(1)]
                curves.error[name][r, i] = np.mean(predicted != yt)
                # log loss clips probabilities at machine epsilon: a plug-in's 0 costs 36 nats
                curves.logloss[name][r, i] = log_loss(yt, proba / proba.sum(1, keepdims=True), labels=model.classes_)
                if i == 0:
                    confidence[name].append(proba.max(1))
                    correct[name].append(predicted == yt)
    curves.confidence = {k: np.concatenate(v) for k, v in confidence.items()}
    curves.correct = {k: np.concatenate(v) for k, v in correct.items()}
    return curves


def crossing(curves: Curves, generative: str = GENERATIVE, discriminative: str = BASELINE) -> int | None:
    """Where the discriminative model overtakes the generative one for good: the smallest size
    from which its mean error stays below the generative one's, provided the generative model was
    the better at some smaller size; None where there is no such crossing.

    Example:
        >>> nb, lr = np.array([[0.25, 0.15, 0.14, 0.13]]), np.array([[0.2, 0.3, 0.12, 0.1]])
        >>> crossing(Curves((10, 20, 40, 80), error={"nb": nb, "lr": lr}), "nb", "lr")
        40
    """
    gen, disc = curves.mean(generative), curves.mean(discriminative)
    for i, size in enumerate(curves.sizes):
        if (disc[i:] < gen[i:]).all():
            return size if i > 0 and (gen[:i] < disc[:i]).any() else None
    return None


# ---------------------------------------------------------------------------------- the figures

STYLE = {
    "naive-bayes": ("C0", "-"),
    "naive-bayes-map": ("C0", "--"),
    "lda": ("C1", "-"),
    "lda-map": ("C1", "--"),
    "qda": ("C2", "-"),
    "qda-map": ("C2", "--"),
    BASELINE: ("C3", "-"),
    PENALIZED: ("C3", "--"),
}
LABELS = {
    "naive-bayes": "Naive Bayes, posterior predictive",
    "naive-bayes-map": "Naive Bayes, MAP plug-in",
    "lda": "LDA, posterior predictive",
    "lda-map": "LDA, MAP plug-in",
    "qda": "QDA, posterior predictive",
    "qda-map": "QDA, MAP plug-in",
    BASELINE: "logistic regression, maximum likelihood",
    PENALIZED: "logistic regression, L2 (C=1)",
}


def _reliability(confidence: np.ndarray, correct: np.ndarray, bins: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Mean confidence and accuracy of the non-empty confidence bins."""
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(confidence, edges) - 1, 0, bins - 1)
    keep = [b for b in range(bins) if (which == b).any()]
    return (
        np.array([confidence[which == b].mean() for b in keep]),
        np.array([correct[which == b].mean() for b in keep]),
    )


def plot_curves(name: str, curves: Curves, path: Path, bayes_error: float | None = None) -> Path:
    """Three panels: test error (mean ± sd over draws) and test log loss against the training-set
    size, and the reliability diagram at the smallest size; one legend for the figure."""
    fig, (err_ax, loss_ax, rel_ax) = plt.subplots(1, 3, figsize=(15, 4.3))
    for model in curves.error:
        colour, line = STYLE.get(model, ("k", ":"))
        for ax, what in ((err_ax, "error"), (loss_ax, "logloss")):
            mean, sd = curves.mean(model, what), curves.sd(model, what)
            ax.plot(curves.sizes, mean, line, color=colour, marker="o", ms=3, label=LABELS.get(model, model))
            ax.fill_between(curves.sizes, mean - sd, mean + sd, color=colour, alpha=0.12, lw=0)
        conf, acc = _reliability(curves.confidence[model], curves.correct[model])
        rel_ax.plot(conf, acc, line, color=colour, marker="o", ms=3)
    if bayes_error is not None:
        err_ax.axhline(bayes_error, color="k", ls=":", lw=1, label="Bayes error (closed form)")
    rel_ax.plot([0, 1], [0, 1], color="grey", lw=0.8, label="perfect calibration")
    cross = crossing(curves) if GENERATIVE in curves.error and BASELINE in curves.error else None
    if cross is not None:
        err_ax.axvline(cross, color="grey", lw=0.8, ls="-.", label=f"logistic overtakes Naive Bayes (n={cross})")
    for ax in (err_ax, loss_ax):
        ax.set_xscale("log", base=2)
        ax.set_xticks(curves.sizes, [str(n) for n in curves.sizes])
        ax.minorticks_off()
        ax.set_xlabel("training-set size n")
    err_ax.set(ylabel="test error", title=f"{name}: test error (mean ± sd)")
    loss_ax.set_yscale("log")
    loss_ax.set(ylabel="test log loss (nats)", title=f"{name}: log loss (mean ± sd)")
    rel_ax.set(
        xlabel="confidence (top predicted probability)",
        ylabel="accuracy",
        title=f"{name}: reliability at n={curves.sizes[0]}",
        xlim=(0, 1.02),
        ylim=(0, 1.02),
    )
    handles, labels = err_ax.get_legend_handles_labels()
    extra, extra_labels = rel_ax.get_legend_handles_labels()
    fig.legend(handles + extra, labels + extra_labels, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8)
    return save_figure(fig, path)


# ---------------------------------------------------------------------------------- the script


def _print_curves(name: str, curves: Curves) -> None:
    for model in curves.error:
        for what in ("error", "logloss"):
            for n, m, s in zip(curves.sizes, curves.mean(model, what), curves.sd(model, what), strict=True):
                print(f"{what} {name} {model} n={n} mean={m:.4f} sd={s:.4f}")
    cross = crossing(curves)
    print(f"crossing {name} " + (f"n={cross}" if cross is not None else "none"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/example-generative-vs-discriminative")
    parser.add_argument("--quick", action="store_true")
    names = ("synthetic", *DATASETS)
    parser.add_argument("--datasets", nargs="+", choices=names, default=names, help="default: all")
    parser.add_argument("--draws", type=int, default=None, help="draws per size (default: 10; --quick: 3)")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    draws = args.draws if args.draws is not None else (3 if args.quick else 10)
    if draws < 1:
        parser.error(f"--draws must be >= 1, got {draws}")
    sizes = QUICK_SIZES if args.quick else SIZES

    problem = synthetic_problem()
    print(f"bayes_error synthetic {problem.bayes_error:.4f}")
    jobs: dict[str, Callable[[int], Split]] = {
        "synthetic": synthetic_splits(problem, pool=max(sizes["synthetic"]), test=5000 if args.quick else 20000)
    }
    jobs |= {name: real_splits(*load()) for name, load in DATASETS.items() if name in args.datasets}
    for name, split in jobs.items():
        if name not in args.datasets:
            continue
        # a MAP fit is SVI on the Normal-Wishart posterior, 0.1 s a step on digits (64-dimensional
        # Wisharts): LDA/QDA MAP there would take hours; --quick keeps MAP fits to iris
        map_models = ("naive-bayes",) if name == "digits" else ("naive-bayes", "lda", "qda")
        if args.quick and name != "iris":
            map_models = ()
        skipped = sorted({"naive-bayes", "lda", "qda"} - set(map_models))
        if skipped:
            print(f"skipped {name} " + " ".join(f"{m}-map" for m in skipped) + " (MAP by SVI: too slow here)")
        curves = learning_curves(split, sizes[name], make_models(map_models), draws=draws)
        _print_curves(name, curves)
        timing = ", ".join(f"{m} {s:.1f}s" for m, s in curves.seconds.items())
        print(f"time {name}: {timing}")
        plot_curves(name, curves, out / f"{name}.png", problem.bayes_error if name == "synthetic" else None)
    print(f"plots in {out}/")


if __name__ == "__main__":
    main()
