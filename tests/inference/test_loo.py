"""LOO for fitted Bayesian programs (probgen.inference.loo), against closed-form conjugate LOO.

The exact LOO predictive of a conjugate model is its posterior predictive given the other N - 1
points; the three fits (exact posterior draws, SVI with PSIS correction, NUTS) must each be
within their standard error of it, and of one another.
"""

import math
import sys
import warnings
from pathlib import Path

import arviz as az
import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro.infer import MCMC, NUTS

import probgen as pg
from probgen.inference.loo import POINT_GUIDE_NOTE, PSIS_VARIATIONAL_NOTE, loo, to_inference_data

N, TAU, SIGMA = 30, 2.0, 1.0  # Normal mean, prior N(0, TAU^2), known noise SIGMA


def normal_mean(x):
    mu = pyro.sample("mu", dist.Normal(x.new_zeros(()), TAU))
    with pyro.plate("data", x.shape[0]):
        pyro.sample("x", dist.Normal(mu[..., None], SIGMA).to_event(1), obs=x)


def posterior_of(x):
    """The conjugate posterior N(m, s^2) of mu given x."""
    precision = 1 / TAU**2 + len(x) / SIGMA**2
    return float(x.sum() / SIGMA**2 / precision), precision**-0.5


def exact_loo(x):
    """sum_i log p(x_i | x_-i): the posterior predictive given the other points, by hand."""
    total = 0.0
    for i in range(len(x)):
        m, s = posterior_of(torch.cat([x[:i], x[i + 1 :]]))
        total += float(dist.Normal(m, math.sqrt(s**2 + SIGMA**2)).log_prob(x[i, 0]))
    return total


@pytest.fixture(scope="module")
def data():
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    return 0.7 + SIGMA * torch.randn(N, 1, generator=g, dtype=torch.float64)


def guide_at(m, s):
    def guide(x):
        pyro.sample("mu", dist.Normal(x.new_tensor(m), s))

    return guide


def program(guide):
    return pg.models.PyroModel(normal_mean, guide, event_shape=(1,), support="real").double()


@pytest.fixture(scope="module")
def exact_idata(data):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no ArviZ shape warning, no other
        return to_inference_data(program(guide_at(*posterior_of(data))), data, num_samples=2000)


def test_exact_draws_export_and_plain_az_loo_match_closed_form(data, exact_idata):
    idata = exact_idata
    assert dict(idata.log_likelihood["x"].sizes) == {"chain": 4, "draw": 500, "obs_id": N}
    assert list(idata.observed_data["x"].dims) == ["obs_id", "feature"]
    m, s = posterior_of(data)
    mu = torch.as_tensor(idata.posterior["mu"].values)
    reference = dist.Normal(mu[..., None], SIGMA).log_prob(data[:, 0])  # log p(x_i | mu_s) by hand
    torch.testing.assert_close(torch.as_tensor(idata.log_likelihood["x"].values), reference, rtol=0, atol=1e-10)
    assert abs(float(az.summary(idata, var_names=["mu"])["r_hat"].iloc[0]) - 1) < 0.01
    assert abs(float(mu.mean()) - m) < 4 * s / math.sqrt(mu.numel())
    # the guide is the exact posterior: log w = log p(D) for every draw (up to rounding)
    lw = idata.sample_stats["log_weight"].values
    assert lw.std() < 1e-8
    elpd = az.loo(idata)
    assert abs(elpd["elpd_loo"] - exact_loo(data)) < elpd["se"]
    assert abs(elpd["elpd_loo"] - exact_loo(data)) < 0.05  # a tight check: 2000 exact draws
    corrected = loo(idata)  # PSIS-corrected with constant weights: ArviZ's estimate for independent draws
    assert corrected["khat_q"] < 0.5 and not corrected["warning"]
    plain = az.loo(idata, pointwise=True, reff=1.0)
    assert abs(corrected["elpd_loo"] - plain["elpd_loo"]) < 1e-8
    torch.testing.assert_close(torch.as_tensor(corrected["pareto_k"].values), torch.as_tensor(plain["pareto_k"].values))


@pytest.fixture(scope="module")
def svi_elpd(data):
    m = pg.models.PyroModel(normal_mean, "auto_normal", event_shape=(1,), support="real")
    pg.fit(m, data, epochs=300, batch_size=N, lr=0.05, seed=0, progress=False, dtype="float64")
    return loo(m, data, num_samples=2000)


def test_svi_loo_is_psis_corrected_and_agrees(data, svi_elpd):
    elpd = svi_elpd
    assert elpd["method"] == "psis-variational" and elpd["note"].startswith(PSIS_VARIATIONAL_NOTE)
    assert "PSIS-corrected" in elpd["note"] and "variational" in elpd["note"]
    assert elpd["khat_q"] < 0.7 and float(elpd["pareto_k"].max()) < elpd["good_k"]
    assert list(elpd["loo_i"].dims) == ["obs_id"] and elpd["n_data_points"] == N
    assert abs(elpd["elpd_loo"] - exact_loo(data)) < elpd["se"]
    assert abs(elpd["elpd_loo"] - exact_loo(data)) < 0.2  # tighter: the Monte-Carlo error is small here
    assert 0.5 < elpd["p_loo"] < 2.0  # one parameter


@pytest.fixture(scope="module")
def nuts_run(data):
    """pg.fit(strategy="nuts") needs a posterior object PyroModel lacks: Pyro's MCMC directly."""
    pyro.set_rng_seed(0)
    mcmc = MCMC(NUTS(program(None).model), num_samples=400, warmup_steps=150, num_chains=1, disable_progbar=True)
    mcmc.run(data)
    return mcmc


def test_nuts_loo_agrees_and_our_pointwise_equals_arviz_from_pyro(data, nuts_run, exact_idata, svi_elpd):
    theirs = az.from_pyro(nuts_run)
    nuts = az.loo(theirs)
    assert abs(nuts["elpd_loo"] - exact_loo(data)) < nuts["se"]
    ours = to_inference_data(program(None), data, draws=nuts_run.get_samples(group_by_chain=True))
    assert "sample_stats" not in ours.groups()  # MCMC draws: no importance weights
    torch.testing.assert_close(
        torch.as_tensor(ours.log_likelihood["x"].values), torch.as_tensor(theirs.log_likelihood["x"].values)
    )
    exact = az.loo(exact_idata)
    for a, b in [(nuts, exact), (nuts, svi_elpd), (exact, svi_elpd)]:  # each pair within their errors
        assert abs(a["elpd_loo"] - b["elpd_loo"]) < max(a["se"], b["se"])
    table = az.compare({"nuts": nuts, "svi": svi_elpd, "exact": exact})  # ELPDData of ours is accepted
    assert sorted(table.index) == ["exact", "nuts", "svi"]


def test_a_guide_five_times_too_narrow_is_caught(data):
    m, s = posterior_of(data)
    with pytest.warns(UserWarning, match="PSIS-corrected LOO from a variational approximation.*unreliable"):
        elpd = loo(program(guide_at(m, s / 5)), data, num_samples=2000)
    assert elpd["khat_q"] > 0.7
    assert float(elpd["pareto_k"].max()) > 0.7 and elpd["warning"]


def coin(x):  # the convention's example: .expand to [N, 1] does not broadcast over draws
    p = pyro.sample("p", dist.Beta(x.new_tensor(1.0), x.new_tensor(1.0)))
    with pyro.plate("data", x.shape[0]):
        pyro.sample("x", dist.Bernoulli(p).expand([x.shape[0], 1]).to_event(1), obs=x)


def beta_bernoulli_loo(x, a=1.0, b=1.0):
    n, k = len(x), float(x.sum())
    return sum(math.log(((a + k - 1) if xi else (b + n - k - 1)) / (a + b + n - 1)) for xi in x[:, 0].tolist())


def test_a_program_that_does_not_broadcast_is_scored_draw_by_draw():
    x = (torch.rand(20, 1, generator=torch.Generator().manual_seed(1), dtype=torch.float64) < 0.3).double()
    n, k = len(x), float(x.sum())

    def exact(x):  # Beta(1 + k, 1 + n - k) given the n training points (not len(x): any x is passed)
        pyro.sample("p", dist.Beta(x.new_tensor(1 + k), x.new_tensor(1 + n - k)))

    m = pg.models.PyroModel(coin, exact, event_shape=(1,), support="binary").double()
    idata = to_inference_data(m, x, num_samples=800)
    p = torch.as_tensor(idata.posterior["p"].values)[..., None]
    reference = dist.Bernoulli(p).log_prob(x[:, 0])
    torch.testing.assert_close(torch.as_tensor(idata.log_likelihood["x"].values), reference, rtol=0, atol=1e-12)
    elpd = az.loo(idata)
    assert abs(elpd["elpd_loo"] - beta_bernoulli_loo(x)) < elpd["se"]


def test_local_latents_are_marginalised_by_importance_sampling():
    """z_i ~ N(mu, 1), x_i | z_i ~ N(z_i, 1): p(x_i | mu) = N(mu, 2); the guide's z-conditional is
    exact, so the importance estimate is exact for any number of particles."""

    def model(x):
        mu = pyro.sample("mu", dist.Normal(x.new_zeros(()), 2.0))
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", dist.Normal(mu[..., None], 1.0).to_event(1))
            pyro.sample("x", dist.Normal(z, 1.0).to_event(1), obs=x)

    def guide(x):
        mu = pyro.sample("mu", dist.Normal(x.new_tensor(0.4), 0.3))
        with pyro.plate("data", x.shape[0]):
            pyro.sample("z", dist.Normal((mu[..., None] + x) / 2, 0.5**0.5).to_event(1))

    x = 0.5 + 1.5 * torch.randn(15, 1, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    m = pg.models.PyroModel(model, guide, event_shape=(1,), support="real").double()
    idata = to_inference_data(m, x, num_samples=40, num_particles=3)
    mu = torch.as_tensor(idata.posterior["mu"].values)[..., None]
    reference = dist.Normal(mu, math.sqrt(2)).log_prob(x[:, 0])
    torch.testing.assert_close(torch.as_tensor(idata.log_likelihood["x"].values), reference, rtol=0, atol=1e-10)


def test_probgen_models_closed_form_map_and_vi():
    x = (torch.rand(20, 1, generator=torch.Generator().manual_seed(1), dtype=torch.float64) < 0.3).double()
    baseline = pg.models.IndependentBernoulli(1, "binary")
    pg.fit(baseline, x, strategy="closed_form", progress=False)
    idata = to_inference_data(baseline, x, num_samples=800)
    assert "sample_stats" not in idata.groups()  # exact draws: plain az.loo
    elpd = loo(idata)
    assert abs(elpd["elpd_loo"] - beta_bernoulli_loo(x)) < elpd["se"]

    from sklearn.datasets import load_iris

    features, labels = load_iris(return_X_y=True)
    xy = (torch.as_tensor(features), torch.as_tensor(labels))
    mapped = pg.models.GaussianNaiveBayes(4, "real", num_classes=3, method="map")
    pg.fit(mapped, xy, epochs=2, progress=False, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # two epochs: high Pareto k
        assert math.isfinite(float(loo(mapped, xy, num_samples=40)["elpd_loo"]))  # MAP: PSIS-LOO of Laplace draws
    vi = pg.models.GaussianNaiveBayes(4, "real", num_classes=3, method="vi")
    pg.fit(vi, xy, epochs=2, progress=False, seed=0)
    idata = to_inference_data(vi, xy, num_samples=40)
    lw, lp = idata.sample_stats["log_weight"].values, idata.sample_stats["lp"].values
    assert lw.shape == (4, 10) and (lp - lw).std() > 0  # log q varies over draws
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # two epochs: a poor q, said by the k-hats
        assert loo(idata)["method"] == "psis-variational"


def test_bad_input():
    with pytest.raises(TypeError, match="probgen model"):
        to_inference_data(normal_mean, torch.zeros(3, 1))

    def no_latents(x):
        loc = pyro.param("loc", torch.zeros(1))
        with pyro.plate("data", x.shape[0]):
            pyro.sample("x", dist.Normal(loc, 1.0).to_event(1), obs=x)

    plain = pg.models.PyroModel(no_latents, event_shape=(1,), support="real")
    with pytest.raises(ValueError, match="no global latent"):
        to_inference_data(plain, torch.zeros(3, 1))
    m = program(guide_at(0.0, 1.0))
    with pytest.raises(ValueError, match="num_samples=10 draws cannot be split into num_chains=4"):
        to_inference_data(m, torch.zeros(3, 1, dtype=torch.float64), num_samples=10)
    with pytest.raises(ValueError, match=r"draws\['mu'\] has shape \(2, 5, 3\)"):
        to_inference_data(m, torch.zeros(3, 1, dtype=torch.float64), draws={"mu": torch.zeros(2, 5, 3)})
    with pytest.raises(ValueError, match="needs the data"):
        loo(m)

    def local_mean(x):  # a point guide with local latents has no Laplace approximation of the globals
        mu = pyro.sample("mu", dist.Normal(x.new_zeros(()), TAU))
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", dist.Normal(mu[..., None], 1.0).to_event(1))
            pyro.sample("x", dist.Normal(z, SIGMA).to_event(1), obs=x)

    def point_guide(x):  # mu at one point, z amortized
        pyro.sample("mu", dist.Delta(pyro.param("mu_map", x.new_zeros(()))))
        with pyro.plate("data", x.shape[0]):
            pyro.sample("z", dist.Normal(x, 1.0).to_event(1))

    point = pg.models.PyroModel(local_mean, point_guide, event_shape=(1,), support="real").double()
    with pytest.raises(ValueError, match=r"one point.*local latent site\(s\) \['z'\]"):
        to_inference_data(point, torch.zeros(3, 1, dtype=torch.float64), num_samples=8)


def test_a_map_fit_loo_draws_from_the_laplace_approximation_psis_corrected(data):
    """An AutoDelta has one point: the export draws from the Laplace Gaussian there (exact for this
    Gaussian posterior: LOO equal to the closed form, k-hat of q near 0), with its log q."""
    point = pg.models.PyroModel(normal_mean, "auto_delta", event_shape=(1,), support="real").double()
    pg.fit(point, data, epochs=300, batch_size=N, lr=0.05, seed=0, progress=False, dtype="float64")
    elpd = loo(point, data, num_samples=1000)
    assert elpd["method"] == "psis-variational" and elpd["khat_q"] < 0.5
    assert abs(float(elpd["elpd_loo"]) - exact_loo(data)) < 0.05
    idata = to_inference_data(point, data, num_samples=400, seed=1)
    assert idata.posterior.attrs["probgen_draws"] == POINT_GUIDE_NOTE
    m, s = posterior_of(data)
    draws = idata.posterior["mu"].values.ravel()
    assert abs(draws.mean() - m) < 4 * s / 20 and abs(draws.std() / s - 1) < 0.15


def test_the_laplace_draws_log_q_includes_the_jacobian_of_a_constrained_site():
    """Normal-Inverse-Gamma (a positive site): the mean importance weight p(theta, D) / q(theta) of
    the Laplace draws is the evidence, checked against its closed form (a wrong log-Jacobian in
    log q would shift it by E[log var], 0.32 nats here)."""
    sys.path.insert(0, str(Path(__file__).parent))
    from test_evidence import _data, nig, nig_exact

    x = _data("nig", 100)
    point = pg.models.PyroModel(nig, "auto_delta", event_shape=(1,), support="real").double()
    pg.fit(point, x, epochs=500, batch_size=100, lr=0.05, seed=0, progress=False, dtype="float64")
    idata = to_inference_data(point, x, num_samples=4000, seed=0)
    log_weight = torch.as_tensor(idata.sample_stats["log_weight"].values.ravel())
    estimate = float(torch.logsumexp(log_weight, 0) - math.log(len(log_weight)))
    assert abs(estimate - nig_exact(x)) < 0.05
    assert bool((idata.posterior["var"].values > 0).all())
