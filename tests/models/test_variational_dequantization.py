"""Variational dequantization (Flow++): the learned noise q(u | x) gives a lower bound of the
discrete log P(x), checked against quadrature (and the Gaussian's closed-form cell
probabilities) on a 1-D problem, tighter than uniform dequantization's with the same base."""

import math

import pytest
import torch
from scipy import stats

import probgen as pg
from probgen.models import MAF, Dequantized, IndependentGaussian
from probgen.models.dequantizer import DequantizationFlow

LEVELS, ALPHA = 6, 0.05
F64 = torch.float64


def _model(dequantization: str) -> Dequantized:
    base = IndependentGaussian(1, "real", method="mle")
    model = Dequantized((1,), f"discrete({LEVELS})", base=base, dequantization=dequantization, logit_alpha=ALPHA)
    return model.double()


@pytest.fixture(scope="module")
def fitted():
    """Peaked 1-D data (a Gaussian base narrow against a bin: p(u | x) far from uniform)."""
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    probs = torch.tensor([0.02, 0.08, 0.5, 0.3, 0.08, 0.02])
    x = torch.multinomial(probs, 500, replacement=True, generator=g).to(F64)[:, None]
    model = _model("variational")
    pg.fit(model, x, epochs=200, batch_size=100, lr=1e-2, seed=0, progress=False, dtype="float64")
    return model, x


def _quadrature(model: Dequantized) -> torch.Tensor:
    """log P(x) of every level: the integral over the bin of p(x, u) du, 20,000 midpoints."""
    u = (torch.arange(20_000, dtype=F64) + 0.5) / 20_000
    with torch.no_grad():
        return torch.stack(
            [torch.logsumexp(model._log_joint(torch.full((len(u), 1), float(x), dtype=F64), u[:, None]), 0)
             for x in range(LEVELS)]
        ) - math.log(len(u))  # fmt: skip


def _cells(model: Dequantized) -> torch.Tensor:
    """log P(x) in closed form: the base Gaussian's mass on the logit image of each bin."""
    edges = torch.arange(LEVELS + 1, dtype=F64) / LEVELS
    edges = torch.logit(ALPHA + (1 - 2 * ALPHA) * edges)
    point = model.base.estimate()
    loc, scale = float(point["mu"][0]), float(point["tau"][0].rsqrt())
    cdf = torch.as_tensor(stats.norm.cdf(edges.numpy(), loc, scale))
    return (cdf[1:] - cdf[:-1]).log()


def test_the_bound_is_below_the_exact_log_p_and_tighter_than_uniform(fitted):
    model, x = fitted
    exact = _quadrature(model)
    assert torch.allclose(exact, _cells(model), atol=1e-6)  # the quadrature is the discrete model's P(x)
    target = float(exact[x[:, 0].long()].mean())
    uniform = _model("uniform")
    uniform.base.load_state_dict(model.base.state_dict())  # the same density, uniform noise
    torch.manual_seed(1)
    variational = pg.log_likelihood(model, x, method="elbo")
    torch.manual_seed(1)
    plain = pg.log_likelihood(uniform, x, method="elbo")
    assert variational.kind == plain.kind == "lower_bound"
    gap, uniform_gap = target - variational.nats, target - plain.nats
    assert -3 * variational.stderr < gap < uniform_gap / 3, (gap, uniform_gap)  # measured: 0.017 vs 0.115
    torch.manual_seed(2)
    iwae = pg.log_likelihood(model, x, method="iwae", num_samples=1000)  # q as the proposal: to log P(x)
    assert abs(iwae.nats - target) < 0.005 and iwae.nats < target + 3 * iwae.stderr


def test_the_dequantizer_starts_at_the_logit_normal_and_keeps_its_draws_in_the_cube():
    q = DequantizationFlow((2, 3), 17, num_layers=3, hidden_features=(16, 16)).double()
    x = torch.randint(0, 17, (50, 2, 3)).to(F64)
    d = q.distribution(x)
    u = d.rsample()
    assert u.shape == (50, 2, 3) and bool(((u > 0) & (u < 1)).all())
    z = torch.logit(u)  # log q(u) of sigmoid(N(0, I)): the identity start
    expected = (torch.distributions.Normal(0.0, 1.0).log_prob(z) - u.log() - (-u).log1p()).sum((-2, -1))
    assert torch.allclose(d.log_prob(u), expected, atol=1e-8)
    with pytest.raises(ValueError, match="num_layers"):
        DequantizationFlow((3,), 4, num_layers=0)
    with pytest.raises(ValueError, match="hidden_features"):
        DequantizationFlow((3,), 4, hidden_features=())


def test_a_variational_flow_on_digits_fits_saves_and_loads(tmp_path):
    train = pg.load_dataset("digits", "train")
    flow = MAF(64, num_layers=1, hidden_features=(64,))
    model = Dequantized.from_dataset(train, base=flow, dequantization="variational", logit_alpha=0.05,
                                     dequantizer_hidden_features=(32,))  # fmt: skip
    pg.fit(model, train, epochs=2, progress=False, seed=0)
    assert model.density == "lower_bound" and model.config["dequantizer_hidden_features"] == [32]
    assert model.dequantizer.layers[0].nn.layers[0].out_features == 64  # widths of at least D
    pg.save(model, tmp_path)
    loaded = pg.load(tmp_path)
    assert loaded.dequantization == "variational"
    x = train.x[:20]
    torch.manual_seed(0)
    first = pg.log_likelihood(model, x, method="iwae", num_samples=4)
    torch.manual_seed(0)
    again = pg.log_likelihood(loaded, x, method="iwae", num_samples=4)
    assert first.nats == pytest.approx(again.nats, rel=1e-6) and math.isfinite(first.nats)
