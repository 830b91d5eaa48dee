"""A model defined outside probgen plugs into fit, log_likelihood, checkpoints and compare.

The model: x_n ~ N(mu, sigma^2) with known sigma and mu ~ N(0, tau^2); the guide q(mu) =
N(m, s^2) is of the posterior's own family, so SVI can reach the exact posterior and the
posterior predictive N(m, s^2 + sigma^2) is exact under it.
"""

import math

import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro.nn import PyroParam, pyro_method
from scipy import stats
from torch.distributions import constraints
from torch.utils.data import DataLoader, TensorDataset

import probgen as pg
from probgen.models import GenerativeModel, register
from probgen.models.base import data_plate


class GaussianMean(GenerativeModel):
    supports = ("real",)

    def __init__(self, event_shape=(1,), support="real", *, noise: float = 1.0, prior_scale: float = 10.0) -> None:
        super().__init__(event_shape, support)
        if self.event_shape != (1,):
            raise ValueError(f"GaussianMean models 1-D data, got event_shape {self.event_shape}")
        self.noise, self.prior_scale = float(noise), float(prior_scale)
        self.q_loc = PyroParam(torch.tensor(0.0))
        self.q_scale = PyroParam(torch.tensor(1.0), constraints.positive)

    @property
    def predictive(self):
        return "variational"

    @pyro_method
    def model(self, x, y=None):
        mu = pyro.sample("mu", dist.Normal(torch.zeros(()), torch.tensor(self.prior_scale)))
        with data_plate(self, x):
            pyro.sample("x", dist.Normal(mu[..., None], self.noise).to_event(1), obs=x)

    @pyro_method
    def guide(self, x, y=None):
        pyro.sample("mu", dist.Normal(self.q_loc, self.q_scale))

    def log_prob(self, x):
        x = self.validate(x)
        scale = (self.q_scale**2 + self.noise**2).sqrt()
        return dist.Normal(self.q_loc, scale).log_prob(x[:, 0])

    def sample(self, n):
        with torch.no_grad():
            mu = dist.Normal(self.q_loc, self.q_scale).sample((self._check_n(n), 1))
            return mu + self.noise * torch.randn_like(mu)

    def closed_form_statistics(self, x, y=None):
        return {"count": x.new_tensor(float(len(x))), "sum": x.sum()}

    def set_closed_form(self, statistics):
        precision = 1 / self.prior_scale**2 + statistics["count"] / self.noise**2
        self.q_loc = statistics["sum"] / self.noise**2 / precision
        self.q_scale = precision.rsqrt()

    def _config_kwargs(self):
        return {"noise": self.noise, "prior_scale": self.prior_scale}


@pytest.fixture(autouse=True)
def registered():
    """Registered with the decorator for these tests only (registration is process-wide)."""
    register("test-gaussian-mean", description="1-D Gaussian, learned mean, conjugate prior")(GaussianMean)
    yield
    del pg.models.MODELS["test-gaussian-mean"]


def _exact(x, noise=1.0, prior_scale=10.0):
    precision = 1 / prior_scale**2 + len(x) / noise**2
    return x.sum() / noise**2 / precision, precision**-0.5


@pytest.fixture
def data():
    g = torch.Generator().manual_seed(1)
    x = (3.0 + torch.randn(400, 1, generator=g)).double()
    return pg.data.Dataset(x[:300], None, "real", name="gauss"), pg.data.Dataset(x[300:], None, "real", name="gauss")


def test_registered_and_built_from_a_dataset(data):
    train, _ = data
    model = pg.models.build_model("test-gaussian-mean", train, noise=1.0)
    assert isinstance(model, GaussianMean) and model.event_shape == (1,)
    with pytest.raises(ValueError, match="unknown argument.*'nosie'.*accepts noise, prior_scale"):
        pg.models.build_model("test-gaussian-mean", train, nosie=1.0)


def test_closed_form_fit_and_exact_log_likelihood(data, tmp_path):
    train, test = data
    model = GaussianMean().double()
    result = pg.fit(model, train, val_data=test, strategy="closed_form", batch_size=64, progress=False)
    loc, scale = _exact(train.x.numpy()[:, 0])
    assert model.q_loc.item() == pytest.approx(loc, rel=1e-12) and model.q_scale.item() == pytest.approx(scale)
    score = pg.log_likelihood(model, test, batch_size=7)
    expected = stats.norm.logpdf(test.x.numpy()[:, 0], loc, math.sqrt(scale**2 + 1)).mean()
    assert score.kind == "exact" and score.nats == pytest.approx(expected, rel=1e-10)
    assert result.history[0]["val_loss"] == pytest.approx(-expected, rel=1e-10)
    loaded = pg.load(pg.save(model, tmp_path / "m.safetensors"))
    assert isinstance(loaded, GaussianMean)
    assert pg.log_likelihood(loaded, test).nats == score.nats


def test_svi_reaches_the_exact_posterior(data):
    train, _ = data
    model = GaussianMean().double()
    pg.fit(model, train, epochs=600, batch_size=300, lr=0.1, lr_decay=0.995, num_samples=16, progress=False)
    loc, scale = _exact(train.x.numpy()[:, 0])
    assert model.q_loc.item() == pytest.approx(loc, abs=0.5 * scale)  # within half a posterior sd
    assert scale / 1.5 < model.q_scale.item() < scale * 1.5


def test_every_data_form_gives_the_same_closed_form(data, tmp_path):
    train, _ = data
    x = train.x
    array = np.lib.format.open_memmap(tmp_path / "x.npy", mode="w+", dtype=np.float64, shape=tuple(x.shape))
    array[:] = x.numpy()
    forms = [train, x, x.numpy(), array, DataLoader(TensorDataset(x), batch_size=50), (x, None)]
    locs = []
    for form in forms:
        model = GaussianMean().double()
        pg.fit(model, form, strategy="closed_form", batch_size=32, progress=False)
        locs.append(model.q_loc.item())
    assert np.allclose(locs, locs[0], rtol=1e-12, atol=0)


def test_compare_reports_it_like_any_registered_model(data):
    train, test = data
    table = pg.compare(
        {"mine": GaussianMean().double()},
        test,
        train=train,
        fit_kwargs={"mine": {"strategy": "closed_form", "progress": False}},
    )
    row = table.rows[0]
    assert row["kind"] == "exact" and row["split"] == "test" and row["predictive"] == "variational"
    loc, scale = _exact(train.x.numpy()[:, 0])
    expected = -stats.norm.logpdf(test.x.numpy()[:, 0], loc, math.sqrt(scale**2 + 1)).mean()
    assert row["nll_nats"] == pytest.approx(expected, rel=1e-10)
