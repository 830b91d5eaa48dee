"""Tutorial: Bayesian Naive Bayes on iris — closed-form posterior, NUTS, and what they predict.

Gaussian Naive Bayes models p(x, y) = p(y) prod_d N(x_d | mu_yd, 1/tau_yd) with Dirichlet and
Normal-Gamma priors. The conjugate posterior is exact; NUTS samples the same posterior, so
their posterior means agree; predictions average over the posterior (Student-t predictive).

Run: python examples/naive_bayes.py [--out DIR] [--quick]
"""

import argparse
from pathlib import Path

import arviz as az
import numpy as np
import torch
from _boundary import decision_boundary
from _summary import print_summary
from sklearn.datasets import load_iris
from sklearn.model_selection import cross_val_score

import probgen as pg
from probgen.classifiers import GaussianNB
from probgen.models import GaussianNaiveBayes
from probgen.models.posterior import loo_compare

IRIS = ("setosa", "versicolor", "virginica")


def plot_boundary(petals: np.ndarray, y: np.ndarray, path: Path) -> Path:
    """Gaussian Naive Bayes's decision regions on iris petals."""
    names = {"feature_names": ("petal length (cm)", "petal width (cm)"), "class_names": IRIS}
    return decision_boundary(GaussianNB().fit(petals, y), petals, y, path, "Gaussian NB, petals", **names)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/example-naive-bayes")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)  # small networks: one thread is faster, and never oversubscribes shared cores
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    X, y = load_iris(return_X_y=True)

    exact = GaussianNB().fit(X, y)  # closed-form posterior
    accuracy = float(cross_val_score(GaussianNB(), X, y, cv=5).mean())
    print(f"5-fold CV accuracy: {accuracy:.3f}")
    first = float(exact.log_prob(X[:1])[0])
    print(f"log p(x) of the first flower: {first:.3f} nats")

    # NUTS with two chains, so that R-hat (agreement between chains) is defined; trees of at most
    # 2^5 leapfrog steps keep the tutorial quick (the posterior is smooth and low-dimensional)
    draws = 30 if args.quick else 200
    model = GaussianNaiveBayes((X.shape[1],), "real", num_classes=3, method="nuts").double()
    data = (torch.as_tensor(X), torch.as_tensor(y))
    nuts = {"num_samples": draws, "warmup_steps": draws, "num_chains": 2, "max_tree_depth": 5}
    pg.fit(model, data, progress=False, strategy_options=nuts)  # chains run one after the other
    exact_id = exact.to_inference_data(X, y, num_samples=2000)
    nuts_id = model.to_inference_data(*data)
    summary = az.summary(nuts_id, var_names=["loc"])
    print(summary.head(4))
    rhat = float(summary["r_hat"].max())
    verdict = "the chains agree" if rhat < 1.01 else "the chains disagree: run longer before trusting these draws"
    short = " (--quick runs 30 draws per chain)" if args.quick and rhat >= 1.01 else ""
    print(f"chains: {nuts_id.posterior.sizes['chain']}, largest R-hat: {rhat:.3f} ({verdict}, threshold 1.01){short}")
    exact_loc = exact_id.posterior["loc"]
    gap = np.abs(exact_loc.mean(("chain", "draw")) - nuts_id.posterior["loc"].mean(("chain", "draw")))
    gap_sd = float((gap / exact_loc.std(("chain", "draw"))).max())
    print(f"largest |posterior mean(loc): exact - NUTS| = {float(gap.max()):.4f} ({gap_sd:.2f} posterior sd)")
    # PSIS-LOO of both; loo_compare says in words where its Pareto k-hat is too high to trust
    table, notes = loo_compare({"exact": exact_id, "nuts": nuts_id})
    print(table[["elpd_loo", "se", "elpd_diff", "dse"]])
    print("\n".join(notes) or "Pareto k below the threshold at every flower: the LOO estimates are reliable")
    print_summary({
        "cv_accuracy": accuracy, "first_flower_log_p": first, "max_r_hat": rhat, "loc_gap_in_posterior_sd": gap_sd,
        "draws_per_chain": draws, "elpd_loo": {name: float(table.loc[name, "elpd_loo"]) for name in table.index},
    })  # fmt: skip

    two = X[:, 2:]  # petal length and width: a picture of the decision regions
    plot_boundary(two, y, out / "boundary.png")
    print(f"plots in {out}/")


if __name__ == "__main__":
    main()
