import itertools

import numpy as np
import pytest
import torch
from scipy import stats

import probgen as pg
from probgen.models import IndependentBernoulli, IndependentCategorical, IndependentGaussian


def _bernoulli_data(n=400, probs=(0.15, 0.4, 0.6, 0.85), seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.bernoulli(torch.tensor(probs).expand(n, -1), generator=g)


def test_bernoulli_log_prob_is_the_closed_form_posterior_predictive(float64):
    x = _bernoulli_data()
    model = IndependentBernoulli(4, prior_a=2.0, prior_b=3.0).fit_closed_form(x)
    ones = x.sum(0).numpy()
    p = (2.0 + ones) / (5.0 + len(x))
    new = np.array([[1, 0, 1, 1], [0, 0, 0, 1]], dtype=float)
    expected = (new * np.log(p) + (1 - new) * np.log1p(-p)).sum(1)
    got = model.log_prob(torch.tensor(new)).detach().numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-12)


def test_gaussian_predictive_is_student_t_and_matches_posterior_draws(float64):
    x = torch.randn(50, 2) * torch.tensor([2.0, 0.5]) + torch.tensor([1.0, -3.0])
    model = IndependentGaussian(2, prior_kappa=0.5, prior_a=2.0, prior_b=1.5).fit_closed_form(x)
    n, mean = 50, x.mean(0).numpy()
    kappa, a = 0.5 + n, 2.0 + n / 2
    loc = n * mean / kappa
    b = 1.5 + 0.5 * ((x.numpy() - mean) ** 2).sum(0) + 0.5 * n * mean**2 / (2 * kappa)
    new = np.array([[0.0, -2.5], [3.0, -3.2]])
    scale = np.sqrt(b * (kappa + 1) / (a * kappa))
    expected = stats.t.logpdf(new, df=2 * a, loc=loc, scale=scale).sum(1)
    got = model.log_prob(torch.tensor(new)).detach().numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-10)
    # the same number as a Monte-Carlo average over draws from the Normal-Gamma posterior
    tau = torch.distributions.Gamma(torch.tensor(a), torch.tensor(b)).sample((200000,))
    mu = torch.tensor(loc) + torch.randn(200000, 2) / (kappa * tau).sqrt()
    lik = torch.distributions.Normal(mu, tau.rsqrt()).log_prob(torch.tensor(new)[:, None]).sum(-1)
    mc = torch.logsumexp(lik, 1) - np.log(200000)
    np.testing.assert_allclose(mc.numpy(), expected, atol=0.02)


@pytest.mark.parametrize("method", ["bayes", "map", "mle"])
def test_discrete_models_sum_to_one_over_the_support(float64, method):
    x = _bernoulli_data(50)[:, :3]
    bern = IndependentBernoulli(3, method=method).fit_closed_form(x)
    grid = torch.tensor(list(itertools.product([0.0, 1.0], repeat=3)))
    assert bern.log_prob(grid).exp().sum().item() == pytest.approx(1.0, abs=1e-12)
    levels = torch.randint(0, 3, (40, 3)).double()
    cat = IndependentCategorical(3, "discrete(3)", method=method).fit_closed_form(levels)
    grid = torch.tensor(list(itertools.product([0.0, 1.0, 2.0], repeat=3)))
    assert cat.log_prob(grid).exp().sum().item() == pytest.approx(1.0, abs=1e-12)


def test_gaussian_predictive_integrates_to_one(float64):
    model = IndependentGaussian(1).fit_closed_form(torch.randn(5, 1) * 3 + 2)
    grid = torch.linspace(-200, 200, 400001)[:, None]
    mass = torch.trapezoid(model.log_prob(grid).exp(), grid[:, 0]).item()
    assert mass == pytest.approx(1.0, abs=1e-3)


SVI_BUDGET = dict(epochs=1000, lr=0.1, lr_decay=0.997, objective="analytic_kl", num_samples=128)


def test_svi_recovers_beta_bernoulli_posterior_mean_within_two_percent(float64):
    # the posterior mean converges fast; the concentration (its spread) slowly, and a
    # too-diffuse Beta biases the mean towards 1/2 by about (1/2 - p) / concentration
    x = _bernoulli_data(200, probs=(0.2, 0.4, 0.6, 0.8))
    exact = IndependentBernoulli(4).fit_closed_form(x)
    model = IndependentBernoulli(4)
    pg.fit(model, x, batch_size=200, progress=False, **SVI_BUDGET)
    fitted, target = (m.estimate()["a"] / sum(m.estimate().values()) for m in (model, exact))
    rel = ((fitted - target).abs() / target).max().item()
    assert rel < 0.02, (fitted, target)


def test_svi_recovers_dirichlet_posterior_mean(float64):
    x = torch.multinomial(torch.tensor([0.2, 0.5, 0.3]), 200, replacement=True)[:, None].double()
    exact = IndependentCategorical(1, "discrete(3)").fit_closed_form(x)
    model = IndependentCategorical(1, "discrete(3)")
    pg.fit(model, x, batch_size=200, progress=False, **SVI_BUDGET)
    fitted, target = (m.estimate()["alpha"] / m.estimate()["alpha"].sum(-1, keepdim=True) for m in (model, exact))
    assert ((fitted - target).abs() / target).max().item() < 0.02


@pytest.mark.parametrize("method", ["map", "mle"])
def test_point_estimates_by_svi_match_the_closed_form(float64, method):
    x = _bernoulli_data(300)
    exact = IndependentBernoulli(4, prior_a=3.0, prior_b=2.0, method=method).fit_closed_form(x)
    model = IndependentBernoulli(4, prior_a=3.0, prior_b=2.0, method=method)
    pg.fit(model, x, epochs=600, batch_size=300, lr=0.05, progress=False)
    assert torch.allclose(model.estimate()["theta"], exact.estimate()["theta"], atol=2e-3)
    expected = (x.sum(0) + 2) / (300 + 3) if method == "map" else x.mean(0)
    assert torch.allclose(exact.estimate()["theta"], expected)


def test_gaussian_map_and_mle_match_the_closed_form(float64):
    x = torch.randn(200, 3) * 2 + 1
    mle = IndependentGaussian(3, method="mle")
    pg.fit(mle, x, epochs=800, batch_size=200, lr=0.05, progress=False)
    assert torch.allclose(mle.estimate()["mu"], x.mean(0), atol=1e-3)
    assert torch.allclose(mle.estimate()["tau"], 1 / x.var(0, unbiased=False), rtol=1e-2)
    exact = IndependentGaussian(3, method="map").fit_closed_form(x)
    svi = IndependentGaussian(3, method="map")
    pg.fit(svi, x, epochs=800, batch_size=200, lr=0.05, progress=False)
    assert torch.allclose(svi.estimate()["mu"], exact.estimate()["mu"], atol=1e-3)
    assert torch.allclose(svi.estimate()["tau"], exact.estimate()["tau"], rtol=1e-2)


def test_samples_follow_the_predictive():
    model = IndependentBernoulli(3).fit_closed_form(_bernoulli_data(200)[:, :3])
    draws = model.sample(20000)
    assert draws.shape == (20000, 3)
    assert torch.allclose(draws.mean(0), model.predictive_distribution().mean, atol=0.015)
    cat = IndependentCategorical((2, 2), "discrete(5)").fit_closed_form(torch.randint(0, 5, (30, 2, 2)))
    assert cat.sample(7).shape == (7, 2, 2)


def test_bad_input_is_a_clear_error():
    model = IndependentBernoulli(4)
    with pytest.raises(ValueError, match="outside the support 'binary'"):
        model.log_prob(torch.tensor([[0.0, 0.5, 1.0, 1.0]]))
    with pytest.raises(ValueError, match=r"expected \(N, 4\)"):
        model.log_prob(torch.zeros(2, 5))
    with pytest.raises(ValueError, match="NaN"):
        model.log_prob(torch.tensor([[0.0, float("nan"), 1.0, 1.0]]))
    with pytest.raises(ValueError, match="unknown method"):
        IndependentBernoulli(4, method="ml")
    with pytest.raises(ValueError, match="does not model 'discrete"):
        IndependentGaussian(4, "discrete(3)")
    with pytest.raises(ValueError, match=r"prior_a must be a finite number > 0 \(below 3.4e38\), got 0"):
        IndependentBernoulli(4, prior_a=0)
    with pytest.raises(ValueError, match="positive integer"):
        model.sample(0)
    with pytest.raises(ValueError, match="outside the support"):
        pg.fit(model, torch.full((3, 4), 0.5), epochs=1, progress=False)
