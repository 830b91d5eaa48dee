"""Cross-validated accuracy of probgen's Bayesian classifiers beside scikit-learn's.

5-fold stratified shuffled CV (seed 0 unless --seeds says otherwise) on iris, wine,
breast_cancer and digits: probgen's GaussianNB / LDA / QDA (conjugate posterior predictive)
against sklearn's GaussianNB / LinearDiscriminantAnalysis / QuadraticDiscriminantAnalysis
(reg_param=0.01). Prints both side by side and the difference in percentage points.

Run: python benchmarks/sklearn_parity.py [--seeds 0 1 2]
"""

from __future__ import annotations

import argparse

import numpy as np
import sklearn.datasets
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis, QuadraticDiscriminantAnalysis
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.naive_bayes import GaussianNB

from probgen import classifiers

DATASETS = ("iris", "wine", "breast_cancer", "digits")
PAIRS = {
    "GaussianNB": (classifiers.GaussianNB, lambda: GaussianNB()),
    "LDA": (classifiers.LDA, lambda: LinearDiscriminantAnalysis()),
    "QDA": (classifiers.QDA, lambda: QuadraticDiscriminantAnalysis(reg_param=0.01)),
}


def parity(datasets=DATASETS, seed: int = 0) -> list[dict]:
    """One row per (dataset, model): mean CV accuracy of probgen and of scikit-learn."""
    rows = []
    for name in datasets:
        X, y = getattr(sklearn.datasets, f"load_{name}")(return_X_y=True)
        cv = StratifiedKFold(n_splits=5, shuffle=True, random_state=seed)
        for model, (ours, theirs) in PAIRS.items():
            a = cross_val_score(ours(), X, y, cv=cv).mean()
            b = cross_val_score(theirs(), X, y, cv=cv).mean()
            rows.append({"dataset": name, "model": model, "seed": seed, "probgen": a, "sklearn": b})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    args = parser.parse_args()
    print(f"{'dataset':14s} {'model':11s} seed  probgen  sklearn  diff(pp)")
    worst = 0.0
    for seed in args.seeds:
        for r in parity(seed=seed):
            diff = 100 * (r["probgen"] - r["sklearn"])
            worst = max(worst, abs(diff))
            print(
                f"{r['dataset']:14s} {r['model']:11s} {seed:4d}  {r['probgen']:.4f}   {r['sklearn']:.4f}   {diff:+.2f}"
            )
    print(f"largest |difference|: {worst:.2f} percentage points")
    np.testing.assert_array_less(worst, 1.0)


if __name__ == "__main__":
    main()
