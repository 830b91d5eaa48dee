"""Every tutorial in examples/ runs end to end at its --quick budget, draws its figures, and prints
key numbers that theory or a baseline bounds: each example's check below says which range and why.

The examples run in this process (as ``python examples/NAME.py --quick`` would run them: as
``__main__``, with examples/ first on the path), which saves a Python start and the imports of
torch, Pyro and ArviZ per example. The numbers are read from the one JSON line each example prints
(``examples/_summary.py``): negative log-likelihoods in nats per example, lower is better.
"""

import math
import runpy
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import probgen as pg

EXAMPLES_DIR = Path(__file__).parents[1] / "examples"
#: examples whose numbers a test file of their own checks (with its own, smaller budget)
OWN_TESTS = {
    "generative_vs_discriminative": "tests/test_generative_vs_discriminative.py",
    "model_comparison": "tests/test_model_comparison_example.py",
}
EXAMPLES = sorted(p for p in EXAMPLES_DIR.glob("*.py") if not p.name.startswith("_") and p.stem not in OWN_TESTS)
UNIFORM_BINARY_64 = 64 * math.log(2)  # NLL of the uniform model of 64 binary pixels: 44.36 nats


def run_example(path: Path, out: Path, monkeypatch, capsys) -> str:
    monkeypatch.syspath_prepend(str(EXAMPLES_DIR))
    monkeypatch.setattr(sys, "argv", [str(path), "--quick", "--out", str(out)])
    torch.manual_seed(0)
    try:
        runpy.run_path(str(path), run_name="__main__")
    finally:
        import matplotlib.pyplot as plt

        plt.close("all")
    return capsys.readouterr().out


def _iwae_order(n):
    """K = 1, 10, 100: each bound is tighter than the last up to Monte-Carlo noise (which is
    shared: the same digits), so their NLLs decrease; IWAE_1 is the ELBO in expectation."""
    t = n["test_nll"]
    assert abs(t["iwae_1"]["nll"] - t["elbo"]["nll"]) < 2 * t["elbo"]["stderr"], t
    assert t["iwae_100"]["nll"] <= t["iwae_10"]["nll"] + 0.02 <= t["iwae_1"]["nll"] + 0.04, t


def check_vae(n, tmp_path):
    _iwae_order(n)
    t, sub = n["test_nll"], n["first_digits_nll"]
    # a VAE whose decoder ignores z is the independent model: after a few epochs the bounds are
    # within a nat of it, and far below the uniform model
    for name, score in t.items():
        assert score["nll"] < t["independent"]["nll"] + 1.0, (name, score)
    # AIS (20 steps) is at least about as tight as IWAE_16 on the same digits
    assert sub["ais_16"]["nll"] < sub["iwae_16"]["nll"] + 0.5, sub


def check_autoregressive(n, tmp_path):
    # every model gives an exact NLL; after one epoch each has learned something: below uniform
    nll = n["test_nll"]
    assert set(nll) == {f"digits-binary/{m}" for m in ("fvbn", "nade", "made", "made (8 orderings)", "pixelcnn",
                                                       "causal-transformer")}  # fmt: skip
    assert all(0 < v < UNIFORM_BINARY_64 for v in nll.values()), nll
    assert (tmp_path / "inpainting.png").stat().st_size > 1000


def check_factorized(n, tmp_path):
    """The exact posterior's NLL is the Beta(1 + ones, 1 + zeros) predictive, here from the
    counts; SVI moves from its uniform start towards it."""
    nll = n["test_nll"]
    train, test = pg.load_dataset("digits-binary", "train").x.double(), pg.load_dataset("digits-binary", "test").x
    p = (1 + train.sum(0)) / (2 + len(train))
    exact = -(test * p.log() + (1 - test) * (1 - p).log()).sum(1).mean().item()
    assert nll["exact posterior"] == pytest.approx(exact, abs=1e-4)
    assert nll["exact posterior"] - 0.5 < nll["svi posterior"] < UNIFORM_BINARY_64, nll


def check_flows(n, tmp_path):
    """The baseline is the diagonal Gaussian's maximum likelihood (closed form here); every flow
    beats it by more than 0.1 nats after 3 epochs."""
    train, test = pg.load_dataset("moons", "train").x.double(), pg.load_dataset("moons", "test").x.double()
    gaussian = torch.distributions.Normal(train.mean(0), train.std(0, correction=0))
    moons = n["moons"]
    assert moons["independent gaussian"] == pytest.approx(-gaussian.log_prob(test).sum(1).mean().item(), abs=1e-4)
    assert set(moons) == {"independent gaussian", "RealNVP", "MAF", "IAF", "NSF", "NSF-AR", "NAF"}
    for label, nll in moons.items():
        if label != "independent gaussian":
            assert nll < moons["independent gaussian"] - 0.1, (label, moons)
    assert (tmp_path / "maf.png").stat().st_size > 1000


def check_diffusion(n, tmp_path):
    """The variational bound is a lower bound on log p(x): its NLL is above the mixture's true
    NLL (up to its standard error); training tightens it; on the digits it beats the uniform
    model over 17 levels, and bits/dim is nats / (64 ln 2)."""
    mixture = n["mixture"]
    bounds = mixture["bound_nll"]
    assert all(b["nll"] > mixture["true_nll"] - 3 * b["stderr"] for b in bounds), mixture
    assert bounds[-1]["nll"] < bounds[0]["nll"] - 3 * bounds[0]["stderr"], bounds
    digits = n["digits"]
    assert digits["bound_nll"] < 64 * math.log(17), digits
    assert digits["bits_per_dim"] == pytest.approx(digits["bound_nll"] / (64 * math.log(2)), rel=1e-6)


def _categorical_baseline(name: str, levels: int) -> float:
    """NLL of independent pixels under the Dirichlet(1) posterior predictive, from the counts."""
    train, test = pg.load_dataset(name, "train").x.long(), pg.load_dataset(name, "test").x.long()
    counts = torch.nn.functional.one_hot(train, levels).sum(0).double()  # [64, levels]
    p = (1 + counts) / (levels + len(train))
    return -p.log().gather(1, test.T).sum(0).mean().item()


def check_gan(n, tmp_path):
    """The trained generator is far closer to held-out data than the untrained one, though not
    as close as held-out data is to itself, and hits most of the eight modes; the DCGAN's table
    holds the exact NLL of independent pixels (here from the counts)."""
    gan, untrained = n["GAN"], n["untrained generator"]
    assert gan["mmd2"] < untrained["mmd2"] / 10 and n["held-out"]["mmd2"] < gan["mmd2"], n
    assert gan["c2st_accuracy"] < untrained["c2st_accuracy"] and gan["modes_hit"] >= 6 > untrained["modes_hit"], n
    assert n["digits"]["independent pixels nll"] == pytest.approx(_categorical_baseline("digits", 17), abs=1e-4)
    assert (tmp_path / "dcgan-samples.png").stat().st_size > 1000


def check_lda(n, tmp_path):
    """Accuracy as scikit-learn's LDA within two bottles; the draws of the class weights are exact
    Dirichlet(1 + counts) draws: their means within 4 Monte-Carlo standard errors."""
    from sklearn.datasets import load_wine
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    X, y = load_wine(return_X_y=True)
    cv = StratifiedKFold(5, shuffle=True, random_state=0)
    assert abs(n["cv_accuracy"] - cross_val_score(LinearDiscriminantAnalysis(), X, y, cv=cv).mean()) < 2 / len(y) + 1e-9
    alpha = np.bincount(y) + 1.0
    mean = alpha / alpha.sum()
    sd = np.sqrt(mean * (1 - mean) / (alpha.sum() + 1))
    assert np.allclose(n["pi_sd"], sd, rtol=0.25), (n["pi_sd"], sd)
    assert np.all(np.abs(np.array(n["pi_mean"]) - mean) < 4 * sd / math.sqrt(n["draws"])), (n["pi_mean"], mean)
    assert n["max_r_hat"] < 1.05


def check_qda(n, tmp_path):
    """QDA is the better density model of iris by PSIS-LOO, by more than two standard errors of
    the difference."""
    elpd, dse = n["elpd_loo"], n["elpd_diff_se"]
    assert elpd["QDA"] - elpd["LDA"] > 2 * dse["LDA"] > 0, n
    assert (tmp_path / "two-per-class.png").stat().st_size > 1000


def check_rbm(n, tmp_path):
    """AIS agrees with the exact log Z within 4 standard errors of its runs' mean; CD training
    stays near the independent baseline (the RBM with zero weights); the Gaussian RBM beats the
    diagonal Gaussian it contains."""
    for data in ("digits", "moons"):
        z = n[data]["log_z"]
        assert abs(z["ais"] - z["exact"]) < 4 * z["ais_run_sd"] / math.sqrt(z["runs"]) + 0.01, (data, z)
    digits = n["digits"]
    for name in ("CD-1_nll", "PCD-1_nll"):
        assert digits[name] < min(digits["independent_nll"] + 0.5, UNIFORM_BINARY_64), digits
    moons = n["moons"]
    assert moons["gaussian_rbm_nll"] < moons["diagonal_gaussian_nll"] - 0.05, moons


def check_naive_bayes(n, tmp_path):
    """Accuracy as scikit-learn's GaussianNB within one flower; NUTS's posterior means of loc
    within 1.2 posterior sd of the exact ones (5 Monte-Carlo standard errors at an effective
    size of 17, about what 2 x 30 draws give here)."""
    from sklearn.datasets import load_iris
    from sklearn.model_selection import cross_val_score
    from sklearn.naive_bayes import GaussianNB

    X, y = load_iris(return_X_y=True)
    assert abs(n["cv_accuracy"] - cross_val_score(GaussianNB(), X, y, cv=5).mean()) < 1 / len(y) + 1e-9
    assert n["loc_gap_in_posterior_sd"] < 1.2, n
    assert set(n["elpd_loo"]) == {"exact", "nuts"}


CHECKS = {
    "autoregressive": check_autoregressive,
    "diffusion": check_diffusion,
    "factorized": check_factorized,
    "flows": check_flows,
    "gan": check_gan,
    "lda": check_lda,
    "naive_bayes": check_naive_bayes,
    "qda": check_qda,
    "rbm": check_rbm,
    "vae": check_vae,
}


@pytest.mark.parametrize("script", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_runs_and_its_numbers_are_in_range(script, tmp_path, monkeypatch, capsys):
    printed = run_example(script, tmp_path, monkeypatch, capsys)
    from _summary import read_summary  # examples/ is on the path now

    assert any(p.suffix == ".png" for p in tmp_path.iterdir())
    check = CHECKS.get(script.stem)
    if check is not None:  # an example added without a check yet still runs and draws
        check(read_summary(printed), tmp_path)


def test_the_summary_reader_refuses_missing_or_non_finite_numbers(monkeypatch):
    monkeypatch.syspath_prepend(str(EXAMPLES_DIR))
    from _summary import PREFIX, read_summary

    assert read_summary(f'x\n{PREFIX}{{"a": {{"b": 1.5}}}}\n') == {"a": {"b": 1.5}}
    with pytest.raises(ValueError, match="no line starting with"):
        read_summary("NLL 3.2 nats\n")
    with pytest.raises(ValueError, match="not finite"):
        read_summary(f'{PREFIX}{{"a": {{"b": NaN}}}}')
