"""A model trained outside ``probgen.fit`` (plain Pyro SVI, a loop of one's own) is not scored as
if it were untrained; a model nobody trained still is warned about."""

from __future__ import annotations

import warnings

import pyro
import pytest
import torch
from pyro.infer import SVI, Trace_ELBO

import probgen as pg
from probgen.models.base import is_trained


@pytest.fixture(scope="module")
def data():
    return pg.load_dataset("digits-binary").x[:200], pg.load_dataset("digits-binary", "test").x[:50]


def _vae():
    pyro.set_rng_seed(0)
    return pg.models.VAE(64, "binary", latent_dim=2, hidden_features=(16,))


def _score(model, x):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = pg.log_likelihood(model, x, num_samples=5)
    return result, [str(w.message) for w in caught if "never fitted" in str(w.message)]


def test_plain_pyro_svi_counts_as_training(data):
    train, test = data
    vae = _vae()
    svi = SVI(vae.model, vae.guide, pyro.optim.Adam({"lr": 1e-2}), Trace_ELBO())
    before, warned = _score(vae, test)
    assert warned == ["VAE was never fitted: scoring its initial parameters"] and not is_trained(vae)
    for _ in range(30):
        svi.step(train)
    after, warned = _score(vae, test)
    assert is_trained(vae) and warned == []
    assert after.nll < before.nll  # it did train: the bound moved


def test_a_hand_written_loop_counts_and_another_models_optimizer_does_not(data):
    train, test = data
    vae, other = _vae(), _vae()
    _score(vae, train)  # creates nothing lazily, but runs the guide once
    optimizer = torch.optim.SGD(other.parameters(), lr=1e-3)
    loss = -other.log_prob(train[:10]).mean() if other.density == "exact" else sum(p.sum() for p in other.parameters())
    loss.backward()
    optimizer.step()
    assert is_trained(other) and not is_trained(vae)
    assert _score(vae, test)[1] and not _score(other, test)[1]
