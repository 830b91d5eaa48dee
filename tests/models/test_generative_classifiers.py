"""Naive Bayes, LDA and QDA as Pyro models: closed forms, posteriors, predictions, bad input."""

import numpy as np
import pytest
import torch
from scipy import stats

import probgen as pg
from probgen.models import (
    BernoulliNaiveBayes,
    CategoricalNaiveBayes,
    GaussianNaiveBayes,
    LinearDiscriminantAnalysis,
    QuadraticDiscriminantAnalysis,
)

ALL = [GaussianNaiveBayes, LinearDiscriminantAnalysis, QuadraticDiscriminantAnalysis]


@pytest.fixture
def iris(float64):
    data = pg.load_dataset("iris", "all")
    return data.x.double(), data.y


@pytest.mark.parametrize("cls", ALL)
def test_probabilities_are_normalised_and_consistent(cls, iris):
    x, y = iris
    model = cls(4, "real", 3).fit_closed_form(x, y)
    log_proba = model.predict_log_proba(x)
    assert torch.allclose(log_proba.exp().sum(-1), torch.ones(len(x)))
    joint = model.joint_log_prob(x)
    assert torch.allclose(model.log_prob(x), torch.logsumexp(joint, -1))
    assert torch.allclose(log_proba, joint - torch.logsumexp(joint, -1, keepdim=True))


def test_gaussian_nb_predictive_is_a_product_of_student_ts(iris):
    x, y = iris
    model = GaussianNaiveBayes(4, "real", num_classes=3).fit_closed_form(x, y)
    xc = x[y == 1].numpy()
    n, mean = len(xc), xc.mean(0)
    m0, k0, a0, b0 = model.prior_loc.numpy(), model.prior_kappa, 1.0, model.prior_b.numpy()
    kappa, a = k0 + n, a0 + n / 2
    loc = (k0 * m0 + n * mean) / kappa
    b = b0 + 0.5 * ((xc - mean) ** 2).sum(0) + k0 * n * (mean - m0) ** 2 / (2 * kappa)
    scale = np.sqrt(b * (kappa + 1) / (a * kappa))
    new = x[:5].numpy()
    expected = stats.t.logpdf(new, 2 * a, loc, scale).sum(1) + np.log((50 + 1) / (150 + 3))
    assert np.allclose(model.joint_log_prob(x[:5])[:, 1].numpy(), expected)


def test_qda_predictive_is_a_multivariate_student_t(iris):
    x, y = iris
    model = QuadraticDiscriminantAnalysis(4, "real", num_classes=3).fit_closed_form(x, y)
    xc = x[y == 2].numpy()
    n, d, mean = len(xc), 4, xc.mean(0)
    m0, k0, nu0, psi0 = model.prior_loc.numpy(), 0.01, 6.0, model.prior_scatter.numpy()
    kappa, nu = k0 + n, nu0 + n
    loc = (k0 * m0 + n * mean) / kappa
    psi = psi0 + (xc - mean).T @ (xc - mean) + k0 * n / kappa * np.outer(mean - m0, mean - m0)
    df = nu - d + 1
    expected = stats.multivariate_t.logpdf(x[:4].numpy(), loc, psi * (kappa + 1) / (kappa * df), df)
    expected += np.log((50 + 1) / (150 + 3))
    assert np.allclose(model.joint_log_prob(x[:4])[:, 2].numpy(), expected)


def test_lda_predictive_is_a_multivariate_student_t_with_pooled_scatter(iris):
    """LDA's exact predictive, computed here from the Normal-Wishart update with one shared
    precision: unequal classes (the first 100 flowers: 50 / 30 / 20), numpy and scipy only."""
    x, y = iris
    keep = torch.cat([torch.arange(50), torch.arange(50, 80), torch.arange(100, 120)])
    x, y = x[keep], y[keep]
    model = LinearDiscriminantAnalysis(4, "real", num_classes=3).fit_closed_form(x, y)
    xs, ys, d, k0 = x.numpy(), y.numpy(), 4, 0.01
    m0 = xs.mean(0)
    psi = model.reg_param * (len(xs) / 3) * np.eye(d)  # the documented empirical-Bayes prior scatter
    assert np.allclose(model.prior_scatter.numpy(), psi)
    kappas, locs = [], []
    for c in range(3):
        xc = xs[ys == c]
        n, mean = len(xc), xc.mean(0)
        kappas.append(k0 + n)
        locs.append((k0 * m0 + n * mean) / (k0 + n))
        psi = psi + (xc - mean).T @ (xc - mean) + k0 * n / (k0 + n) * np.outer(mean - m0, mean - m0)
    df = (d + 2 + len(xs)) - d + 1
    for c, count in enumerate((50, 30, 20)):
        shape = psi * (kappas[c] + 1) / (kappas[c] * df)
        expected = stats.multivariate_t.logpdf(xs[:5], locs[c], shape, df) + np.log((count + 1) / (100 + 3))
        assert np.allclose(model.joint_log_prob(x[:5])[:, c].numpy(), expected)


def test_discrete_nb_predictive_sums_to_one(float64):
    torch.manual_seed(0)
    x, y = torch.randint(0, 2, (40, 3)).double(), torch.randint(0, 2, (40,))
    grid = torch.tensor([[i >> 2 & 1, i >> 1 & 1, i & 1] for i in range(8)]).double()
    bern = BernoulliNaiveBayes(3, "binary", num_classes=2).fit_closed_form(x, y)
    assert bern.log_prob(grid).exp().sum().item() == pytest.approx(1.0)
    levels = torch.randint(0, 3, (40, 2)).double()
    cat = CategoricalNaiveBayes(2, "discrete(3)", num_classes=2).fit_closed_form(levels, y)
    grid = torch.cartesian_prod(torch.arange(3.0), torch.arange(3.0)).double()
    assert cat.log_prob(grid).exp().sum().item() == pytest.approx(1.0)


def test_bernoulli_nb_is_sklearns_with_alpha_one(float64):
    from sklearn.naive_bayes import BernoulliNB

    data = pg.load_dataset("digits-binary")
    ours = BernoulliNaiveBayes(64, "binary", num_classes=10).fit_closed_form(data.x.double(), data.y)
    theirs = BernoulliNB(alpha=1.0).fit(data.x.numpy(), data.y.numpy())
    test = pg.load_dataset("digits-binary", "test").x.double()
    np.testing.assert_allclose(ours.predict_log_proba(test).numpy(), theirs.predict_log_proba(test.numpy()), atol=1e-2)


def _posterior_moments(draws):
    return {k: (v.mean(0), v.std(0)) for k, v in draws.items()}


def _max_z(fitted, truth):
    """The largest |posterior-mean error| over all entries, in exact posterior sds."""
    got = _posterior_moments(fitted.posterior_draws())
    return {site: ((got[site][0] - m) / sd).abs().max().item() for site, (m, sd) in truth.items()}


@pytest.fixture
def exact_nb_posterior(iris):
    x, y = iris
    exact = GaussianNaiveBayes(4, "real", num_classes=3).fit_closed_form(x, y)
    return _posterior_moments(exact.posterior_draws(20000))


def test_vi_agrees_with_the_conjugate_posterior(iris, exact_nb_posterior):
    """Mean-field AutoNormal, 300 steps of 10 particles, on data where mean field is nearly
    exact: every posterior mean within 0.5 exact posterior sd, and every posterior sd within a
    factor 1.5 of the exact one (an objective that drops the guide's entropy collapses them
    35-50x), and the draws follow the guide, not a copy cached when the fit ended."""
    x, y = iris
    vi = GaussianNaiveBayes(4, "real", num_classes=3, method="vi", num_samples=2000)
    pg.fit(vi, (x, y), epochs=300, batch_size=150, lr=0.02, lr_decay=0.985, num_samples=10, progress=False)
    z = _max_z(vi, exact_nb_posterior)
    assert max(z.values()) < 0.5, z
    got = _posterior_moments(vi.posterior_draws())
    ratios = {site: (got[site][1] / sd) for site, (_, sd) in exact_nb_posterior.items()}
    assert all(1 / 1.5 < r.min() and r.max() < 1.5 for r in ratios.values()), ratios
    with torch.no_grad():
        vi.posterior.autoguide.locs.loc += 1.0
    assert (vi.posterior_draws()["loc"].mean(0) - got["loc"][0] - 1.0).abs().max() < 0.2


@pytest.mark.parametrize("dtype,offset", [(torch.float32, 1e3), (torch.float64, 1e7)])
def test_gaussian_nb_is_exact_on_large_offset_features(dtype, offset):
    """The predictive is translation-equivariant; Sum x^2 - n mean^2 cancels at large offsets."""
    g = torch.Generator().manual_seed(0)
    y = torch.arange(300) % 3
    x = 0.1 * torch.randn(300, 2, generator=g, dtype=torch.float64) + 0.05 * y[:, None]
    centred = GaussianNaiveBayes(2, "real", num_classes=3).double().fit_closed_form(x, y)
    shifted = GaussianNaiveBayes(2, "real", num_classes=3).to(dtype).fit_closed_form((x + offset).to(dtype), y)
    want = centred.log_prob(x)
    got = shifted.log_prob((x + offset).to(dtype)).double()
    assert want.mean() > 1.0  # a density well above 1 for features of spread 0.1
    assert torch.allclose(got, want, atol=0.05), (got[:3], want[:3])
    # float32 features at 1000 carry 6e-5 of rounding: only points on a boundary may flip
    agree = (shifted.predict((x + offset).to(dtype)) == centred.predict(x)).double().mean()
    assert agree > 0.98


def test_log_likelihood_says_what_it_is_of():
    digits = pg.load_dataset("digits-binary")
    cvae = pg.models.ConditionalVAE(64, "binary", num_classes=10, latent_dim=2, hidden_features=(16,))
    pg.fit(cvae, digits, epochs=1, progress=False)
    score = pg.log_likelihood(cvae, digits, num_samples=2)
    assert score.conditional and score.kind == "lower_bound" and "log p(x | y)" in str(score)
    iris = pg.load_dataset("iris")
    point = GaussianNaiveBayes(4, "real", num_classes=3, method="map")
    pg.fit(point, iris, epochs=5, progress=False)
    assert pg.log_likelihood(point, iris).predictive == "plug-in"
    exact = GaussianNaiveBayes(4, "real", num_classes=3).fit_closed_form(iris.x, iris.y)
    assert pg.log_likelihood(exact, iris).predictive == "posterior"
    assert not pg.log_likelihood(exact, iris).conditional
    with pytest.raises(ValueError, match="separate tables"):
        pg.compare({"cvae": cvae, "nb": exact}, iris)


@pytest.mark.slow  # ~40 s: 600 NUTS iterations of ~14 leapfrog steps at ~5 ms each (Pyro, no JIT)
def test_nuts_agrees_with_the_conjugate_posterior(iris, exact_nb_posterior):
    """NUTS, 2 chains of 150 draws after 150 warm-up (tree depth <= 6): every posterior mean
    within 0.3 posterior sd. (Quicker checks of NUTS, run by default: examples/naive_bayes.py's
    smoke test and tests/test_classifiers.py.)"""
    x, y = iris
    nuts = GaussianNaiveBayes(4, "real", num_classes=3, method="nuts")
    pg.fit(
        nuts, (x, y), strategy_options={"num_samples": 150, "warmup_steps": 150, "max_tree_depth": 6}, progress=False
    )
    z = _max_z(nuts, exact_nb_posterior)
    assert max(z.values()) < 0.3, z


def test_map_agrees_with_the_posterior_mode(iris):
    x, y = iris
    exact = GaussianNaiveBayes(4, "real", num_classes=3).fit_closed_form(x, y)
    mode = GaussianNaiveBayes(4, "real", num_classes=3, method="map")
    pg.fit(mode, (x, y), epochs=800, batch_size=150, lr=0.02, progress=False)
    # joint mode of Normal-Gamma: loc = m_n, precision = (a_n - 1/2) / b_n
    assert torch.allclose(mode.posterior_draws()["loc"][0], exact.post_loc, rtol=1e-3)
    expected = (exact.post_a - 0.5) / exact.post_b
    assert torch.allclose(mode.posterior_draws()["precision"][0], expected, rtol=2e-2)


def test_lda_transform_matches_sklearn_up_to_sign_and_scale(float64):
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis as SkLDA

    for name in ("iris", "wine"):
        data = pg.load_dataset(name, "all")
        x, y = data.x.double(), data.y
        ours = LinearDiscriminantAnalysis(x.shape[1], "real", num_classes=3).fit_closed_form(x, y).transform(x)
        theirs = SkLDA().fit(x.numpy(), y.numpy()).transform(x.numpy())
        assert ours.shape == theirs.shape == (len(x), 2)
        for k in range(2):
            corr = np.corrcoef(ours[:, k].numpy(), theirs[:, k])[0, 1]
            assert abs(corr) > 0.999, (name, k, corr)


def test_single_example_classes_are_regularised_not_nan(float64):
    x = torch.tensor([[0.0, 1.0, 2.0], [3.0, 1.0, 0.5], [1.0, -1.0, 0.0]])
    y = torch.tensor([0, 1, 2])
    for cls in ALL:
        model = cls(3, "real", 3).fit_closed_form(x, y)
        out = model.predict_log_proba(torch.randn(10, 3))
        assert torch.isfinite(out).all(), cls.__name__
        assert torch.isfinite(model.sample(5)).all()


def test_samples_follow_the_class(iris):
    x, y = iris
    model = QuadraticDiscriminantAnalysis(4, "real", num_classes=3).fit_closed_form(x, y)
    draws = model.sample(4000, y=2)
    assert draws.shape == (4000, 4)
    assert torch.allclose(draws.mean(0), x[y == 2].mean(0), atol=0.05)
    assert torch.allclose(torch.cov(draws.T), torch.cov(x[y == 2].T), rtol=0.25, atol=0.02)


def test_bad_input(iris):
    x, y = iris
    model = GaussianNaiveBayes(4, "real", num_classes=3)
    with pytest.raises(ValueError, match="not fitted"):
        model.predict(x)
    with pytest.raises(ValueError, match="needs labels"):
        pg.fit(model, x, progress=False)
    with pytest.raises(ValueError, match="label 3 is outside 0..2"):
        model.fit_closed_form(x, torch.full((150,), 3))
    with pytest.raises(ValueError, match=r"labels have shape \(149,\)"):
        model.fit_closed_form(x, y[:-1])
    bad = x.clone()
    bad[3, 1] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        model.fit_closed_form(bad, y)
    with pytest.raises(ValueError, match="unknown method"):
        GaussianNaiveBayes(4, "real", num_classes=3, method="ep")
    with pytest.raises(ValueError, match="num_classes"):
        QuadraticDiscriminantAnalysis(4, "real", num_classes=1)
