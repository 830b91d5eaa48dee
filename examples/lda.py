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
from _boundary import decision_boundary  # noqa: E402
from sklearn.datasets import load_iris, load_wine  # noqa: E402
from sklearn.model_selection import StratifiedKFold, cross_val_score  # noqa: E402

from probgen.classifiers import LDA  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/example-lda")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    X, y = load_wine(return_X_y=True)
    cv = StratifiedKFold(5, shuffle=True, random_state=0)
    print(f"wine, 5-fold accuracy: {cross_val_score(LDA(), X, y, cv=cv).mean():.3f}")

    lda = LDA().fit(X, y)
    # The summary needs only posterior draws. to_inference_data would also evaluate the pointwise
    # log-likelihood of every draw at every flower (for LDA a [draws, N, C, D, D] intermediate, 1.6 GB
    # at 2000 draws), so draw from the exact posterior directly and keep memory small.
    draws = lda.model_.posterior_draws(200 if args.quick else 2000)
    idata = az.from_dict(posterior={name: value[None].detach().numpy() for name, value in draws.items()})
    print("posterior of the class weights:")
    print(az.summary(idata, var_names=["pi"], kind="stats"))

    Z = lda.transform(X)  # the Fisher projection onto (3 - 1) = 2 directions
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.scatter(Z[:, 0], Z[:, 1], c=y, s=12, cmap="viridis")
    ax.set(xlabel="discriminant 1", ylabel="discriminant 2", title="LDA projection of wine")
    fig.tight_layout()
    fig.savefig(out / "projection.png", dpi=100)
    plt.close(fig)

    X, y = load_iris(return_X_y=True)
    sepals = X[:, :2]
    decision_boundary(LDA().fit(sepals, y), sepals, y, out / "boundary.png", "LDA on iris sepals: linear")
    print(f"plots in {out}/")


if __name__ == "__main__":
    main()
