"""ArviZ export of the Bayesian classifiers: every model and fitting method gives InferenceData that
``az.summary``, ``az.loo`` and ``az.compare`` take without warnings, with named dimensions and the
model's own pointwise log-likelihood.

Small data keep it fast: 15 iris flowers per species, two features; NUTS runs 2 chains of 10
draws after 10 warm-up steps, in trees of at most 2^3 leapfrog steps.
"""

import logging
import math
import warnings
from functools import cache

import arviz as az
import numpy as np
import pandas as pd
import pyro
import pytest
import torch
from sklearn.datasets import load_iris

from probgen.classifiers import LDA, QDA, BernoulliNB, CategoricalNB, GaussianNB
from probgen.models.posterior import loo_compare, psis_loo

ROWS = np.r_[0:15, 50:65, 100:115]
FEATURES = ["sepal length (cm)", "petal length (cm)"]
SPECIES = ["setosa", "versicolor", "virginica"]
#: estimator, the features it takes ("real", 0/1 or three levels)
CLASSIFIERS = {
    "gaussian-nb": (GaussianNB, "real"),
    "bernoulli-nb": (BernoulliNB, "binary"),
    "categorical-nb": (CategoricalNB, "levels"),
    "lda": (LDA, "real"),
    "qda": (QDA, "real"),
}
WITH_DRAWS = ("conjugate", "vi", "nuts")
#: every fitting method: a MAP fit exports independent draws of its Laplace approximation
EVERY_METHOD = (*WITH_DRAWS, "map")
#: ArviZ's Pareto-k warning: a property of the data and model (tested through psis_loo), not of the export
PARETO = "Estimated shape parameter of Pareto distribution"


def ignore_arviz_internals() -> None:
    """Inside ``warnings.catch_warnings()``: ignore pandas' deprecation of ``inplace=`` that
    ``az.compare`` itself triggers (arviz 0.23 with pandas 3.1), nothing about probgen's data."""
    warnings.filterwarnings("ignore", message="The inplace keyword in DataFrame", category=DeprecationWarning)


def data(features: str) -> tuple[pd.DataFrame, np.ndarray]:
    """15 flowers per species as a DataFrame with named columns, labels as species names."""
    iris = load_iris(as_frame=True)
    X = iris.data.iloc[ROWS][FEATURES].reset_index(drop=True)
    if features == "binary":
        X = (X > X.mean()).astype(float)
    elif features == "levels":
        X = X.apply(lambda column: pd.qcut(column, 3, labels=False)).astype(float)
    return X, np.asarray(SPECIES)[iris.target.to_numpy()[ROWS]]


def shallow(cls: type) -> type:
    """The estimator with NUTS trees of at most 2^3 leapfrog steps (cheap; the posterior is smooth)."""

    class Shallow(cls):
        def _strategy_options(self, fit_strategy: str) -> dict:
            options = super()._strategy_options(fit_strategy)
            return options | {"max_tree_depth": 3} if fit_strategy == "nuts" else options

    Shallow.__name__ = cls.__name__
    return Shallow


@cache
def fitted(name: str, method: str):
    cls, features = CLASSIFIERS[name]
    X, y = data(features)
    options = {"method": method, "epochs": 30, "num_samples": 10, "warmup_steps": 10, "num_chains": 2, "seed": 0}
    if name == "bernoulli-nb":
        options["binarize"] = None
    return shallow(cls)(**options).fit(X, y), X, y


@cache
def inference_data(name: str, method: str, num_samples: int = 400):
    est, X, y = fitted(name, method)
    pyro.set_rng_seed(0)
    return est.to_inference_data(X, y, num_samples=num_samples)


def params_of(idata, model) -> dict[str, torch.Tensor]:
    """The exported draws, ``[S, ...]``, as the model's sites (a Cholesky factor from its matrix)."""
    params = {}
    for name in ("pi", *model.sites):
        exported = name[: -len("_tril")] if name.endswith("_tril") else name
        value = torch.as_tensor(idata.posterior[exported].to_numpy()).flatten(0, 1)
        params[name] = torch.linalg.cholesky(value) if name.endswith("_tril") else value
    return params


@pytest.mark.parametrize("method", EVERY_METHOD)
@pytest.mark.parametrize("name", CLASSIFIERS)
def test_summary_has_finite_r_hat_without_warnings(name, method, caplog):
    idata = inference_data(name, method)
    chains, draws = (2, 10) if method == "nuts" else (4, 100)  # exact and VI: 4 chains of independent draws
    assert dict(idata.posterior.sizes)["chain"] == chains and dict(idata.posterior.sizes)["draw"] == draws
    with caplog.at_level(logging.WARNING, logger="arviz"), warnings.catch_warnings():
        warnings.simplefilter("error")
        summary = az.summary(idata)
    assert not caplog.records, [r.getMessage() for r in caplog.records]  # e.g. "Shape validation failed"
    assert np.isfinite(summary["r_hat"].to_numpy()).all()
    if method != "nuts":  # independent draws: R-hat of every parameter near 1
        assert summary["r_hat"].max() < 1.05


@pytest.mark.parametrize("method", WITH_DRAWS)
@pytest.mark.parametrize("name", CLASSIFIERS)
def test_pointwise_log_likelihood_is_the_models(name, method):
    est, X, y = fitted(name, method)
    idata = inference_data(name, method)
    model, codes = est.model_, torch.as_tensor(est._codes(y))
    log_lik = torch.as_tensor(idata.log_likelihood["obs"].to_numpy()).flatten(0, 1)  # [S, N]
    # the value at (chain, draw) is log p(x_n, y_n | theta) at the posterior draw of that (chain, draw)
    x = torch.tensor(X.to_numpy())
    assert torch.allclose(log_lik, model.pointwise_log_likelihood(x, codes, params_of(idata, model)), atol=1e-8)
    # averaged over the draws: the model's own predictive log p(x_n, y_n | data)
    average = torch.logsumexp(log_lik, 0) - math.log(len(log_lik))
    if method == "conjugate":  # the exact Student-t / Bernoulli / categorical predictive, within Monte-Carlo error
        predictive = torch.as_tensor(est.predict_joint_log_proba(X))[torch.arange(len(y)), codes]
        weights = (log_lik - log_lik.max(0).values).exp()
        stderr = weights.std(0) / weights.mean(0) / math.sqrt(len(log_lik))  # of the log of the mean
        assert ((average - predictive).abs() < 5 * stderr + 1e-9).all()
    else:  # NUTS: its draws; VI: the same guide draws under the same seed
        if method == "vi":
            pyro.set_rng_seed(0)
            idata = est.to_inference_data(X, y, num_samples=est.num_posterior_samples)
            log_lik = torch.as_tensor(idata.log_likelihood["obs"].to_numpy()).flatten(0, 1)
            average = torch.logsumexp(log_lik, 0) - math.log(len(log_lik))
            pyro.set_rng_seed(0)
        predictive = torch.as_tensor(est.predict_joint_log_proba(X))[torch.arange(len(y)), codes]
        assert torch.allclose(average, predictive, atol=1e-10)


def test_chains_hold_the_draws_in_order():
    """Draw d of chain c is posterior draw c * draws_per_chain + d (exact posterior and NUTS)."""
    est, X, y = fitted("qda", "conjugate")
    pyro.set_rng_seed(3)
    loc = est.model_.posterior_draws(40)["loc"]
    pyro.set_rng_seed(3)
    idata = est.to_inference_data(X, y, num_samples=40)
    assert np.array_equal(idata.posterior["loc"].to_numpy(), loc.reshape(4, 10, 3, 2).numpy())
    est, X, y = fitted("gaussian-nb", "nuts")
    idata = est.to_inference_data(X, y, num_samples=7)  # NUTS keeps its draws: num_samples is ignored
    loc = est.model_.posterior_draws()["loc"]
    assert np.array_equal(idata.posterior["loc"].to_numpy(), loc.reshape(2, 10, 3, 2).numpy())


@pytest.mark.parametrize("method", EVERY_METHOD)
def test_loo_and_compare(method):
    lda, qda = inference_data("lda", method), inference_data("qda", method)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.filterwarnings("ignore", message=PARETO, category=UserWarning)
        ignore_arviz_internals()
        loo = az.loo(lda, pointwise=True)
        table = az.compare({"lda": lda, "qda": qda})
    assert np.isfinite(loo.elpd_loo) and loo.n_data_points == len(ROWS)
    assert table.loc["lda", "elpd_loo"] == pytest.approx(loo.elpd_loo)
    with warnings.catch_warnings():  # probgen's own call reports high Pareto k as a note, not a warning
        warnings.simplefilter("error")
        ignore_arviz_internals()
        same, notes = loo_compare({"lda": lda, "qda": qda})
        elpd, note = psis_loo(qda, "qda")
    assert same.loc["qda", "elpd_loo"] == pytest.approx(elpd.elpd_loo) == pytest.approx(table.loc["qda", "elpd_loo"])
    bad = int((elpd.pareto_k.to_numpy() > elpd.good_k).sum())
    assert (note is None) == (bad == 0) == (not elpd.warning)
    if note:
        assert note.startswith(f"qda: Pareto k > {elpd.good_k:.2f} for {bad} of {len(ROWS)} held-out points")
        assert note in notes


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_map_exports_its_laplace_approximation_with_loo(name):
    est, X, y = fitted(name, "map")
    pyro.set_rng_seed(0)
    idata = est.to_inference_data(X, y, num_samples=40)  # draws from the Laplace approximation at the mode
    assert "log_likelihood" in idata.groups() and dict(idata.posterior.sizes)["chain"] == 4
    assert idata.posterior.attrs["probgen_draws"].startswith("Laplace approximation at the posterior mode")
    point = est.model_.posterior_draws()
    assert point["pi"].shape[0] == 1  # the predictive is still the plug-in of the point
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=PARETO, category=UserWarning)
        assert np.isfinite(az.loo(idata).elpd_loo)
    assert np.isfinite(psis_loo(idata)[0].elpd_loo)
    # what the experiment runner calls: every group, for a MAP fit too
    x, codes = torch.tensor(X.to_numpy()), torch.as_tensor(est._codes(y))
    runner = est.model_.posterior.to_inference_data(est.model_, x, codes, num_samples=200)
    assert "log_likelihood" in runner.groups() and runner.posterior.sizes["draw"] == 50


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_dimensions_are_named_with_the_estimators_coordinates(name):
    est, X, y = fitted(name, "conjugate")
    idata = inference_data(name, "conjugate")
    posterior = idata.posterior
    assert posterior["pi"].dims == ("chain", "draw", "class")
    assert posterior.coords["class"].to_numpy().tolist() == SPECIES
    assert posterior.coords["feature"].to_numpy().tolist() == FEATURES
    expected = {
        "gaussian-nb": {"loc": ("class", "feature"), "precision": ("class", "feature")},
        "bernoulli-nb": {"probs": ("class", "feature")},
        "categorical-nb": {"probs": ("class", "feature", "level")},
        "lda": {"loc": ("class", "feature"), "precision": ("feature", "feature_bis")},
        "qda": {"loc": ("class", "feature"), "precision": ("class", "feature", "feature_bis")},
    }[name]
    assert set(posterior.data_vars) == {"pi", *expected}
    for variable, dims in expected.items():
        assert posterior[variable].dims == ("chain", "draw", *dims)
    if name == "categorical-nb":
        assert posterior.coords["level"].to_numpy().tolist() == [0, 1, 2]
    if "feature_bis" in posterior.dims:
        assert posterior.coords["feature_bis"].to_numpy().tolist() == FEATURES
    assert idata.log_likelihood["obs"].dims == ("chain", "draw", "obs_id")
    assert idata.log_likelihood.coords["obs_id"].to_numpy().tolist() == list(range(len(ROWS)))
    assert idata.posterior_predictive["x"].dims == ("chain", "draw", "obs_id", "feature")
    observed = idata.observed_data
    assert observed["x"].dims == ("obs_id", "feature") and np.array_equal(observed["x"], X.to_numpy())
    assert np.array_equal(np.asarray(SPECIES)[observed["y"].to_numpy()], y)  # y: indices into the class coordinate


def test_numpy_input_and_given_coordinates():
    est, X, y = fitted("qda", "conjugate")
    with pytest.warns(UserWarning, match="X does not have valid feature names"):  # scikit-learn's, as for predict
        idata = est.to_inference_data(X.to_numpy(), y, num_samples=40, coords={"obs_id": np.arange(100, 145)})
    assert idata.posterior.coords["feature"].to_numpy().tolist() == FEATURES  # the names seen in fit
    bare = QDA().fit(X.to_numpy(), y).to_inference_data(X.to_numpy(), y, num_samples=40)
    assert bare.posterior.coords["feature"].to_numpy().tolist() == [0, 1]
    assert idata.log_likelihood.coords["obs_id"].to_numpy().tolist() == list(range(100, 145))


def test_bad_export_options_are_value_errors():
    est, X, y = fitted("gaussian-nb", "conjugate")
    with pytest.raises(ValueError, match="cannot be split into num_chains=4"):
        est.to_inference_data(X, y, num_samples=30)
    with pytest.raises(ValueError, match=r"coords\['class'\] has 2 values, but 'pi' has 3"):
        est.to_inference_data(X, y, num_samples=40, coords={"class": ["a", "b"]})
    nuts, X, y = fitted("gaussian-nb", "nuts")
    with pytest.raises(ValueError, match="NUTS ran 2 chains"):
        nuts.to_inference_data(X, y, num_chains=4)
