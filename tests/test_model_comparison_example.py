"""examples/model_comparison.py at a small budget: its numbers against what a reader computes by hand."""

import importlib.util
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import stats
from scipy.special import betaln

EXAMPLES = Path(__file__).parents[1] / "examples"


@pytest.fixture(scope="module")
def ex():
    sys.path.insert(0, str(EXAMPLES))  # the example imports _summary
    try:
        spec = importlib.util.spec_from_file_location("model_comparison_example", EXAMPLES / "model_comparison.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(EXAMPLES))
    torch.set_num_threads(1)
    return module


def test_coin_ais_and_smc_agree_with_the_closed_form(ex):
    x = ex.coin_data(14, 20)
    found = ex.coin_study(x, ex.QUICK, verbose=False, seed=0)
    exact = betaln(1 + 14, 1 + 6) - betaln(1, 1)  # B(a + heads, b + tails) / B(a, b)
    assert found["exact"].log_evidence == pytest.approx(exact, abs=1e-10)
    for method in ("ais", "smc"):
        e = found[method]
        assert e.kind == "estimate" and e.diagnostics.ok, e
        assert abs(e.log_evidence - exact) < min(4 * e.stderr, 0.2), (method, e.log_evidence, e.stderr, exact)


def test_coin_bayes_factor_sign_and_closed_form(ex):
    found = ex.coin_bayes_factors([(10, 20), (17, 20)], ex.QUICK, verbose=False)
    for key, heads in (("10/20", 10), ("17/20", 17)):
        by_numpy = 20 * math.log(0.5) - (betaln(1 + heads, 1 + 20 - heads) - betaln(1, 1))
        r = found[key]
        assert r["exact"].log_bayes_factor == pytest.approx(by_numpy, abs=1e-10)
        assert abs(r["ais"].log_bayes_factor - by_numpy) < 4 * r["ais"].stderr + 0.05, r["ais"]
    assert found["10/20"]["exact"].log_bayes_factor > 0 > found["17/20"]["exact"].log_bayes_factor


def test_pooled_eight_schools_evidence_is_the_gaussian_marginal(ex):
    y, sigma = np.array(ex.SCHOOLS_Y), np.array(ex.SCHOOLS_SIGMA)
    # y = mu 1 + e, mu ~ N(0, 5^2), e ~ N(0, diag(sigma^2)): y ~ N(0, diag(sigma^2) + 25 11^T)
    cov = np.diag(sigma**2) + 25.0 * np.ones((8, 8))
    by_hand = stats.multivariate_normal(np.zeros(8), cov).logpdf(y)
    x = torch.tensor(y, dtype=torch.float64)[:, None]
    assert float(ex.pooled_log_evidence(x)) == pytest.approx(by_hand, abs=1e-10)
    # and the quadrature of the hierarchical model against its SMC estimate
    e = ex.estimate("hier", ex.hierarchical_model(), x, method="smc", num_samples=256, num_steps=3, seed=0,
                    verbose=False)  # fmt: skip
    assert abs(e.log_evidence - ex.hierarchical_log_evidence_quadrature()) < 4 * e.stderr + 0.05, e


def test_mixture_best_k_is_the_true_k(ex):
    x = ex.mixture_data()
    found = ex.mixture_study(x, (2, 3, 4), ex.QUICK, methods=("smc",), verbose=False, seed=0)
    assert found["best_k"] == len(ex.TRUE_MEANS) == 3, {k: e.log_evidence for k, e in found["evidence"]["smc"].items()}
