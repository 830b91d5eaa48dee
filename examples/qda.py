"""Tutorial: Bayesian Quadratic Discriminant Analysis — one covariance per class.

QDA gives every class its own Gaussian covariance (Normal-Wishart prior per class), so the
decision boundaries are quadratic. The prior also regularises: a class with few examples
still gets a proper covariance. ArviZ's PSIS-LOO compares QDA with LDA as density models.

Run: python examples/qda.py [--out DIR] [--quick]
"""

import argparse
from pathlib import Path

import numpy as np
from _boundary import decision_boundary
from _summary import print_summary
from sklearn.datasets import load_iris

from probgen.classifiers import LDA, QDA
from probgen.models.posterior import loo_compare

IRIS = ("setosa", "versicolor", "virginica")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/example-qda")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    X, y = load_iris(return_X_y=True)

    qda = QDA().fit(X, y)
    covariances = qda.model_.covariance().numpy()  # posterior mean of each class's covariance
    for name, cov in zip(IRIS, covariances, strict=True):
        print(f"{name:10s} posterior-mean covariance diagonal: {np.round(np.diag(cov), 3)}")

    draws = 200 if args.quick else 2000
    models = {
        name: est.fit(X, y).to_inference_data(X, y, num_samples=draws) for name, est in (("LDA", LDA()), ("QDA", QDA()))
    }
    table, notes = loo_compare(models)  # az.compare; high Pareto k-hat reported in words, once per model
    print(table[["elpd_loo", "se", "elpd_diff", "dse"]])
    print("\n".join(notes) or "Pareto k below the threshold at every flower: the LOO estimates are reliable")
    print_summary({
        "elpd_loo": {name: float(table.loc[name, "elpd_loo"]) for name in table.index},
        "elpd_diff_se": {name: float(table.loc[name, "dse"]) for name in table.index},
    })  # fmt: skip

    sepals = X[:, :2]
    plot_boundaries(sepals, y, out)
    print(f"plots in {out}/")


def plot_boundaries(sepals: np.ndarray, y: np.ndarray, out: Path) -> list[Path]:
    """QDA's decision regions on iris sepals, from all flowers and from two per class."""
    labels = {"feature_names": ("sepal length (cm)", "sepal width (cm)"), "class_names": IRIS}
    paths = [decision_boundary(QDA().fit(sepals, y), sepals, y, out / "boundary.png", "QDA on iris sepals: quadratic",
                               **labels)]  # fmt: skip
    few = np.concatenate([np.flatnonzero(y == c)[:2] for c in range(3)])  # two flowers per class
    title = "QDA from two flowers per class (prior-regularised)"
    paths.append(decision_boundary(QDA().fit(sepals[few], y[few]), sepals[few], y[few], out / "two-per-class.png",
                                   title, **labels))  # fmt: skip
    return paths


if __name__ == "__main__":
    main()
