"""Tutorial: LDA and QDA as Bayesian generative models on wine and iris.

Both model each class as a Gaussian under a Normal-Wishart prior: LDA shares one covariance
(linear boundaries), QDA gives each class its own (quadratic boundaries). LDA also projects
onto its Fisher discriminant directions. ArviZ's LOO compares the two as density models.

Run: python examples/discriminant_analysis.py [--out DIR] [--quick]
"""

import argparse
from pathlib import Path

import arviz as az
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from _boundary import decision_boundary  # noqa: E402
from sklearn.datasets import load_iris, load_wine  # noqa: E402
from sklearn.model_selection import cross_val_score  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

from probgen.classifiers import LDA, QDA  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/example-discriminant")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    X, y = load_wine(return_X_y=True)
    for est in (LDA(), QDA()):
        acc = cross_val_score(make_pipeline(StandardScaler(), est), X, y, cv=5).mean()
        print(f"{type(est).__name__} wine 5-fold accuracy: {acc:.3f}")

    lda = make_pipeline(StandardScaler(), LDA()).fit(X, y)
    Z = lda.transform(X)  # the Fisher projection onto (3 - 1) = 2 directions
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.scatter(Z[:, 0], Z[:, 1], c=y, s=12, cmap="viridis")
    ax.set_xlabel("discriminant 1")
    ax.set_ylabel("discriminant 2")
    ax.set_title("LDA projection of wine")
    fig.tight_layout()
    fig.savefig(out / "lda-projection.png", dpi=100)
    plt.close(fig)

    X, y = load_iris(return_X_y=True)
    two = X[:, :2]  # sepal length and width: classes overlap, so the shapes differ visibly
    for est in (LDA(), QDA()):
        name = type(est).__name__
        decision_boundary(est.fit(two, y), two, y, out / f"{name.lower()}-boundary.png", f"{name}, sepals")

    draws = 200 if args.quick else 2000
    models = {
        name: est.fit(X, y).to_inference_data(X, y, num_samples=draws) for name, est in (("LDA", LDA()), ("QDA", QDA()))
    }
    print(az.compare(models))
    print(f"plots in {out}/")


if __name__ == "__main__":
    main()
