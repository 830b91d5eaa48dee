"""A MAP fit's ArviZ export: draws from the Laplace approximation at the mode (issue #29).

The Hessian is checked against Pyro's own ``AutoLaplaceApproximation.laplace_approximation`` and
against closed forms (a Gaussian posterior, where it is exact; Normal-Gamma Naive Bayes at large N,
where it is exact to O(1/N)); the export against ``az.loo`` / ``az.summary`` / ``az.compare`` with
the conjugate fit of the same model. Small data keep it fast (iris: 15 flowers per species).
"""

import math
import warnings
from functools import cache

import arviz as az
import numpy as np
import pandas as pd
import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro.distributions import constraints
from pyro.infer.autoguide import AutoLaplaceApproximation
from sklearn.datasets import load_iris

import probgen as pg
from probgen.classifiers import LDA, QDA, BernoulliNB, CategoricalNB, GaussianNB
from probgen.models.laplace import LAPLACE_NOTE, laplace_approximation
from probgen.models.posterior import loo_compare

torch.set_num_threads(1)
F64 = torch.float64
ROWS = np.r_[0:15, 50:65, 100:115]
FEATURES = ["sepal length (cm)", "petal length (cm)"]
CLASSIFIERS = {"gaussian-nb": GaussianNB, "bernoulli-nb": BernoulliNB, "categorical-nb": CategoricalNB}
CLASSIFIERS |= {"lda": LDA, "qda": QDA}
#: ArviZ's Pareto-k warning (a property of the data and model, reported by psis_loo as a note)
PARETO = "Estimated shape parameter of Pareto distribution"


# ----------------------------------------------------------------------------- the Hessian
def small_program(x):
    """Sites on four supports: positive, real, unit interval, simplex."""
    tau = pyro.sample("tau", dist.Gamma(torch.tensor(2.0, dtype=F64), 1.0))
    mu = pyro.sample("mu", dist.Normal(torch.zeros(2, dtype=F64), 3.0).to_event(1))
    p = pyro.sample("p", dist.Beta(torch.tensor(2.0, dtype=F64), 3.0))
    w = pyro.sample("w", dist.Dirichlet(torch.ones(3, dtype=F64)))
    with pyro.plate("data", x.shape[0]):
        pyro.sample("x", dist.Normal(mu, tau.rsqrt()).to_event(1), obs=x)
        pyro.sample("b", dist.Bernoulli(p), obs=(x[:, 0] > 0).double())
        pyro.sample("k", dist.Categorical(w), obs=(x[:, 1] > 0).long() + (x[:, 1] > 1).long())


def test_hessian_is_pyros_autolaplace_at_the_same_point():
    x = torch.randn(20, 2, generator=torch.Generator().manual_seed(0), dtype=F64) + 0.5
    point = {
        "tau": torch.tensor(1.3, dtype=F64),
        "mu": torch.tensor([0.4, 0.6], dtype=F64),
        "p": torch.tensor(0.45, dtype=F64),
        "w": torch.tensor([0.3, 0.5, 0.2], dtype=F64),
    }
    ours = laplace_approximation(small_program, point, x)
    pyro.clear_param_store()
    guide = AutoLaplaceApproximation(small_program)
    guide(x)  # builds the prototype: the sites in program order, flattened as ours
    with torch.no_grad():
        guide.loc.copy_(ours.loc)
    gaussian = guide.laplace_approximation(x)
    pyro_cov = gaussian.scale[:, None] * (gaussian.scale_tril @ gaussian.scale_tril.T) * gaussian.scale[None, :]
    assert ours.loc.numel() == 1 + 2 + 1 + 2  # the simplex of 3 has 2 free coordinates
    assert torch.allclose(ours.covariance, pyro_cov, rtol=1e-9, atol=1e-12)
    draws = ours.sample(5)  # back on each site's support
    assert draws["tau"].shape == (5,) and bool((draws["tau"] > 0).all())
    assert torch.allclose(draws["w"].sum(-1), torch.ones(5, dtype=F64))


def test_gaussian_posterior_is_exact():
    """Normal mean with a known covariance: the posterior is Gaussian and the Laplace covariance is it."""
    noise = torch.tensor([[1.0, 0.3], [0.3, 0.5]], dtype=F64)
    prior_cov = 4.0 * torch.eye(2, dtype=F64)
    x = torch.randn(7, 2, generator=torch.Generator().manual_seed(1), dtype=F64)

    def program(x):
        mu = pyro.sample("mu", dist.MultivariateNormal(torch.zeros(2, dtype=F64), prior_cov))
        with pyro.plate("data", x.shape[0]):
            pyro.sample("x", dist.MultivariateNormal(mu, noise), obs=x)

    post_precision = torch.linalg.inv(prior_cov) + len(x) * torch.linalg.inv(noise)
    post_mean = torch.linalg.solve(post_precision, torch.linalg.inv(noise) @ x.sum(0))
    laplace = laplace_approximation(program, {"mu": post_mean}, x)
    assert torch.allclose(laplace.covariance, torch.linalg.inv(post_precision), rtol=1e-10, atol=0)
    assert torch.allclose(laplace.site_covariance("mu"), laplace.covariance)


def test_not_positive_definite_names_the_site():
    def flat(x):  # "free" never meets the data and has a flat prior: no curvature along it
        loc = pyro.sample("loc", dist.Normal(torch.tensor(0.0, dtype=F64), 1.0))
        pyro.sample("free", dist.ImproperUniform(constraints.real, (), (2,)))
        with pyro.plate("data", x.shape[0]):
            pyro.sample("x", dist.Normal(loc, 1.0), obs=x)

    x = torch.zeros(3, dtype=F64)
    point = {"loc": torch.tensor(0.0, dtype=F64), "free": torch.zeros(2, dtype=F64)}
    with pytest.raises(ValueError, match=r"not positive definite at site 'free' \(unconstrained element \(0,\)\)"):
        laplace_approximation(flat, point, x)
    with pytest.raises(ValueError, match=r"latent site\(s\) \['loc'\] with no value"):
        laplace_approximation(flat, {"free": point["free"]}, x)
    with pytest.raises(ValueError, match=r"value\(s\) for \['nope'\], which the program does not sample"):
        laplace_approximation(flat, point | {"nope": point["loc"]}, x)


def test_gaussian_naive_bayes_at_the_mode_matches_the_exact_posterior():
    """Normal-Gamma at large N: at the exact joint mode, the Laplace variance of each location is the
    Student-t variance b / (kappa (a - 1)) and of each log-precision trigamma(a), both to O(1/N)."""
    gen = torch.Generator().manual_seed(2)
    y = torch.arange(2).repeat_interleave(1000)
    x = (torch.randn(2000, 1, generator=gen, dtype=F64) * torch.tensor([1.0, 2.5], dtype=F64)[y, None]) + 3 * y[:, None]
    exact = pg.models.GaussianNaiveBayes(1, num_classes=2).double().fit_closed_form(x, y)
    a, b, kappa = exact.post_a, exact.post_b, exact.post_kappa
    mode = {"pi": torch.tensor([0.5, 0.5], dtype=F64), "precision": (a - 0.5) / b, "loc": exact.post_loc}
    mapped = pg.models.GaussianNaiveBayes(1, num_classes=2, method="map").double()
    for name in ("prior_loc", "prior_b", "class_counts"):  # the same (empirical-Bayes) prior
        getattr(mapped, name).copy_(getattr(exact, name))
    mapped.posterior.start_at(mapped, mode)
    mapped.posterior.guide(mapped, x[:1], y[:1])  # the AutoDelta, at the mode
    laplace = mapped.posterior.laplace(mapped, x, y)
    loc_var = laplace.site_covariance("loc").diagonal()
    assert torch.allclose(loc_var, (b / (kappa * (a - 1))).flatten(), rtol=2e-3)  # 1 / (2a) ~ 1e-3 apart
    log_tau_var = laplace.site_covariance("precision").diagonal()
    assert torch.allclose(log_tau_var, torch.polygamma(1, a).flatten(), rtol=2e-3)
    where_loc, where_tau = laplace.sites["loc"][0], laplace.sites["precision"][0]
    assert laplace.covariance[where_loc, where_tau].abs().max() < 1e-10  # at the mode: uncorrelated
    draws = laplace.sample(4000)  # and the draws have that spread
    assert torch.allclose(draws["loc"].var(0).flatten(), loc_var, rtol=0.1)


# ----------------------------------------------------------------------------- the export
def iris(features: str) -> tuple[pd.DataFrame, np.ndarray]:
    data = load_iris(as_frame=True)
    X = data.data.iloc[ROWS][FEATURES].reset_index(drop=True)
    if features == "binary":
        X = (X > X.mean()).astype(float)
    elif features == "levels":
        X = X.apply(lambda column: pd.qcut(column, 3, labels=False)).astype(float)
    return X, data.target.to_numpy()[ROWS]


@cache
def fitted(name: str, method: str):
    features = {"bernoulli-nb": "binary", "categorical-nb": "levels"}.get(name, "real")
    X, y = iris(features)
    options = {"method": method, "epochs": 200, "seed": 0} | ({"binarize": None} if name == "bernoulli-nb" else {})
    return CLASSIFIERS[name](**options).fit(X, y), X, y


@cache
def exported(name: str, method: str):
    est, X, y = fitted(name, method)
    pyro.set_rng_seed(0)
    return est.to_inference_data(X, y, num_samples=400)


def shape_warnings(caught) -> list[str]:
    return [str(w.message) for w in caught if "shape" in str(w.message).lower() and PARETO not in str(w.message)]


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_map_export_takes_loo_summary_and_compare(name, caplog):
    est, X, y = fitted(name, "map")
    with warnings.catch_warnings(record=True) as caught, caplog.at_level("WARNING", logger="arviz"):
        warnings.simplefilter("always")
        idata = exported(name, "map")
        loo = az.loo(idata, pointwise=True)
        waic = az.waic(idata)
        summary = az.summary(idata)
        table, _ = loo_compare({"map": idata, "conjugate": exported(name, "conjugate")})
    assert not shape_warnings(caught) and not caplog.records, shape_warnings(caught) + caplog.messages
    assert dict(idata.posterior.sizes)["chain"] == 4 and dict(idata.posterior.sizes)["draw"] == 100
    assert idata.posterior.attrs["probgen_draws"] == LAPLACE_NOTE
    assert idata.posterior.attrs["probgen_draws"].startswith("Laplace approximation at the posterior mode")
    assert "PSIS-LOO of the Laplace posterior" in idata.posterior.attrs["probgen_draws"]
    assert idata.log_likelihood["obs"].dims == ("chain", "draw", "obs_id")
    assert idata.posterior["pi"].dims == ("chain", "draw", "class")
    assert np.isfinite(loo.elpd_loo) and np.isfinite(waic.elpd_waic) and loo.n_data_points == len(ROWS)
    assert summary["r_hat"].max() < 1.05  # independent draws split into chains
    assert table.loc["map", "elpd_loo"] == pytest.approx(loo.elpd_loo)
    # the pointwise log-likelihood is the model's at each exported draw (the Laplace spread is real)
    model, codes = est.model_, torch.as_tensor(est._codes(y))
    pi = torch.as_tensor(idata.posterior["pi"].to_numpy()).flatten(0, 1)
    assert pi.std(0).min() > 0
    point = model.posterior_draws()
    assert point["pi"].shape[0] == 1  # the plug-in predictive still uses the point alone
    x = torch.tensor(X.to_numpy())
    plug_in = model.joint_log_prob(x)[torch.arange(len(codes)), codes]
    assert torch.equal(plug_in, model.pointwise_log_likelihood(x, codes, point)[0])


def test_elpd_of_the_laplace_export_is_within_two_standard_errors_of_the_conjugate_one():
    X, y = load_iris(return_X_y=True)
    conjugate = GaussianNB().fit(X, y)
    mapped = GaussianNB(method="map", epochs=300, seed=0).fit(X, y)
    pyro.set_rng_seed(1)
    idatas = {"conjugate": conjugate.to_inference_data(X, y, num_samples=800)}
    idatas["map"] = mapped.to_inference_data(X, y, num_samples=800)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=PARETO)
        exact, laplace = az.loo(idatas["conjugate"]), az.loo(idatas["map"])
        table, _ = loo_compare(idatas)
    assert abs(laplace.elpd_loo - exact.elpd_loo) < 2 * exact.se
    # and by the paired standard error of the difference (0.45 nats here; the difference is 0.77)
    assert abs(table.loc["map", "elpd_loo"] - table.loc["conjugate", "elpd_loo"]) < 3 * table.loc["map", "dse"]


def test_the_laplace_kept_after_fit_is_used_and_saved(tmp_path):
    """``after_fit`` keeps the curvature of the training data, in the state (so in checkpoints);
    a MAP checkpoint without it (as before) loads, predicts, and exports from the data given."""
    data = pg.load_dataset("digits-binary")
    x, y = data.x[:300].double(), data.y[:300]
    model = pg.models.BernoulliNaiveBayes(64, num_classes=10, method="map").double()
    pg.fit(model, (x, y), epochs=20, lr=0.05, batch_size=300, progress=False, seed=0)
    kept = {"posterior.laplace_loc", "posterior.laplace_precision"}
    assert kept <= set(model.state_dict())  # the fit kept it
    del model.posterior.laplace_loc, model.posterior.laplace_precision
    old_keys = set(model.state_dict())
    pg.save(model, tmp_path / "before")  # what a MAP checkpoint holds without a kept Laplace
    loaded = pg.load(tmp_path / "before")
    assert torch.equal(loaded.log_prob(x[:50]), model.log_prob(x[:50]))
    pyro.set_rng_seed(0)
    idata = loaded.to_inference_data(x, y, num_samples=40)
    assert idata.posterior.attrs["laplace_curvature"].endswith("the exported data (300 examples)")

    model.posterior.after_fit(model, x, y)
    assert set(model.state_dict()) - old_keys == kept
    pg.save(model, tmp_path / "after")
    loaded = pg.load(tmp_path / "after")
    pyro.set_rng_seed(0)
    held_out = loaded.to_inference_data(data.x[300:340].double(), data.y[300:340], num_samples=40)
    assert held_out.posterior.attrs["laplace_curvature"].endswith("the training data (kept after the fit)")
    pyro.set_rng_seed(0)
    same = model.to_inference_data(x, y, num_samples=40)  # the kept Laplace is the one from these data
    assert np.allclose(same.posterior["probs"], idata.posterior["probs"], rtol=1e-10, atol=1e-12)
    assert torch.equal(loaded.log_prob(x[:50]), model.log_prob(x[:50]))


def test_the_kept_laplace_is_scaled_to_the_fits_data_size():
    """A hook batch that is part of the data stands for all of it: the precision scales by N / B
    (here exactly: the first half of the data repeated)."""
    data = pg.load_dataset("iris")
    x, y = data.x.double(), data.y
    model = pg.models.GaussianNaiveBayes(4, num_classes=3, method="map").double()
    pg.fit(model, (x, y), epochs=5, progress=False, seed=0)
    whole = model.posterior.laplace(model, torch.cat([x, x]), torch.cat([y, y]))
    half = model.posterior.laplace(model, x, y, num_data=2 * len(x))
    assert torch.allclose(half.precision, whole.precision, rtol=1e-10)
    assert not torch.allclose(model.posterior.laplace(model, x, y).precision, whole.precision, rtol=1e-3)
    assert math.isclose(float(half.loc.sum()), float(whole.loc.sum()))
