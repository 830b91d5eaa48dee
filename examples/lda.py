"""Tutorial: Bayesian Linear Discriminant Analysis — classifier, posterior, Fisher projection.

LDA models each class as a Gaussian with one covariance shared by all classes, under a
Normal-Wishart prior; the conjugate posterior is exact and its predictive is a multivariate
Student-t. Shared covariance means linear decision boundaries. LDA's other use is the Fisher
projection onto the (C - 1) directions that best separate the classes.

Run: python examples/lda.py [--out DIR] [--quick]
"""

import argparse
from pathlib import Path

import arviz as az
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from _boundary import decision_boundary  # noqa: E402
from _summary import print_summary  # noqa: E402
from sklearn.datasets import load_iris, load_wine  # noqa: E402
from sklearn.model_selection import StratifiedKFold, cross_val_score  # noqa: E402

from probgen.classifiers import LDA  # noqa: E402
from probgen.plots import legend_outside, save_figure  # noqa: E402

IRIS = ("setosa", "versicolor", "virginica")


def plot_projection(Z: np.ndarray, y: np.ndarray, path: Path) -> Path:
    """The wine bottles on the two Fisher discriminants, one colour per cultivar."""
    fig, ax = plt.subplots(figsize=(5.8, 4))
    for i, c in enumerate(np.unique(y)):
        ax.scatter(Z[y == c, 0], Z[y == c, 1], s=12, color=f"C{i}", label=f"cultivar {c}")
    legend_outside(ax, title="class", title_fontsize=8)
    ax.set(xlabel="discriminant 1", ylabel="discriminant 2", title="LDA projection of wine")
    return save_figure(fig, path)


def plot_boundary(sepals: np.ndarray, y: np.ndarray, path: Path) -> Path:
    """LDA's (linear) decision regions on iris sepals."""
    names = {"feature_names": ("sepal length (cm)", "sepal width (cm)"), "class_names": IRIS}
    return decision_boundary(LDA().fit(sepals, y), sepals, y, path, "LDA on iris sepals: linear", **names)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/example-lda")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    X, y = load_wine(return_X_y=True)
    cv = StratifiedKFold(5, shuffle=True, random_state=0)
    accuracy = float(cross_val_score(LDA(), X, y, cv=cv).mean())
    print(f"wine, 5-fold accuracy: {accuracy:.3f}")

    lda = LDA().fit(X, y)
    # 4 chains of independent exact draws (so R-hat is defined, and near 1). The summary needs only
    # the posterior: log_likelihood=False skips the pointwise log-likelihood of every draw at every bottle.
    idata = lda.to_inference_data(X, y, num_samples=200 if args.quick else 2000, log_likelihood=False)
    print("posterior of the class weights:")
    weights = az.summary(idata, var_names=["pi"])
    print(weights)
    pi = idata.posterior["pi"]
    print_summary({
        "cv_accuracy": accuracy, "pi_mean": pi.mean(("chain", "draw")).values.tolist(),
        "pi_sd": pi.std(("chain", "draw")).values.tolist(), "draws": int(pi.sizes["chain"] * pi.sizes["draw"]),
        "max_r_hat": float(weights["r_hat"].max()),
    })  # fmt: skip

    Z = lda.transform(X)  # the Fisher projection onto (3 - 1) = 2 directions
    plot_projection(Z, y, out / "projection.png")

    X, y = load_iris(return_X_y=True)
    plot_boundary(X[:, :2], y, out / "boundary.png")
    print(f"plots in {out}/")


if __name__ == "__main__":
    main()
