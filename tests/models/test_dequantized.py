"""Dequantized: bounds and estimates on the discrete scale against the exact cell probabilities."""

import math
import warnings

import pytest
import torch
from scipy import stats

import probgen as pg
from probgen.models import Dequantized, IndependentGaussian

LEVELS = 5


def _model(dequantization="uniform", logit_alpha=None, num_samples=16):
    base = IndependentGaussian(2, "real", method="mle").double()
    with torch.no_grad():
        loc = torch.tensor([0.4, 0.7] if logit_alpha is None else [-0.3, 0.5], dtype=torch.float64)
        base.posterior.assign({"mu": loc, "tau": torch.tensor([1 / 0.2**2, 1 / 0.35**2], dtype=torch.float64)})
    return Dequantized(
        2,
        f"discrete({LEVELS})",
        base=base,
        dequantization=dequantization,
        num_samples=num_samples,
        logit_alpha=logit_alpha,
    )


def _exact(model, x):
    """log P(x): the base's probability of each cell [x/k, (x+1)/k) (after the logit map if any)."""
    lo, hi = x / LEVELS, (x + 1) / LEVELS
    if model.logit_alpha is not None:
        a = model.logit_alpha
        lo, hi = (torch.logit(a + (1 - 2 * a) * t) for t in (lo, hi))
    point = model.base.estimate()
    loc, scale = point["mu"].detach().numpy(), point["tau"].detach().rsqrt().numpy()
    cells = stats.norm.cdf(hi.numpy(), loc, scale) - stats.norm.cdf(lo.numpy(), loc, scale)
    return torch.as_tensor(cells).log().sum(-1)


GRID = torch.cartesian_prod(torch.arange(LEVELS), torch.arange(LEVELS)).double()


@pytest.mark.parametrize("logit_alpha", [None, 0.05])
def test_bounds_order_and_reach_the_discrete_likelihood(logit_alpha, float64):
    model = _model(logit_alpha=logit_alpha)
    exact = _exact(model, GRID).mean().item()
    elbo = pg.log_likelihood(model, GRID, method="elbo", num_samples=2000).nats
    iwae = pg.log_likelihood(model, GRID, method="iwae", num_samples=20000)
    assert iwae.kind == "lower_bound" and iwae.num_dims == 2
    # IWAE is a lower bound in expectation; 20,000 draws leave a Monte-Carlo spread of ~0.01
    assert elbo < exact - 0.05 and elbo < iwae.nats
    assert iwae.nats == pytest.approx(exact, abs=0.02)
    assert iwae.bits_per_dim == pytest.approx(-iwae.nats / (2 * math.log(2)))


def test_importance_method_estimates_log_p(float64):
    model = _model(dequantization="importance", num_samples=4000)
    score = pg.log_likelihood(model, GRID)
    assert score.kind == "estimate" and score.method == "monte_carlo"
    assert score.nats == pytest.approx(_exact(model, GRID).mean().item(), abs=0.02)


def test_samples_are_levels_and_bad_arguments_are_refused(float64):
    model = _model()
    draws = model.sample(500)
    assert draws.shape == (500, 2) and set(draws.unique().tolist()) <= set(range(LEVELS))
    with pytest.raises(ValueError, match="exact density of real data"):
        Dequantized(64, "discrete(17)", base=pg.models.VAE(64, "real"))
    with pytest.raises(ValueError, match="event_shape"):
        Dequantized(3, "discrete(17)", base=IndependentGaussian(2, "real"))
    with pytest.raises(ValueError, match="unknown dequantization"):
        Dequantized(2, "discrete(17)", dequantization="flow")
    with pytest.raises(ValueError, match="outside the support"):
        pg.log_likelihood(model, torch.tensor([[5.0, 0.0]]))


def test_fits_digits_and_round_trips(tmp_path):
    train, test = pg.load_dataset("digits"), pg.load_dataset("digits", "test")
    model = Dequantized.from_dataset(train, logit_alpha=0.05)
    pg.fit(model, train, epochs=3, lr=0.05, progress=False)
    torch.manual_seed(0)
    first = pg.log_likelihood(model, test, num_samples=4).nats
    loaded = pg.load(pg.save(model, tmp_path / "d.safetensors"))
    assert loaded.config == model.config
    torch.manual_seed(0)
    assert pg.log_likelihood(loaded, test, num_samples=4).nats == first


def test_a_scorer_around_a_fitted_base_is_fitted_and_one_around_a_fresh_base_warns():
    """fit marks the wrapper and its base fitted, so that an importance scorer built around the
    trained base scores without the never-fitted warning; one around an untrained base warns."""
    data = pg.load_dataset("digits")
    x = pg.data.Dataset(data.x[:100], None, data.support, name="digits")
    model = Dequantized.from_dataset(x, base=pg.models.MAF(64, num_layers=1, hidden_features=(64,)))
    pg.fit(model, x, epochs=1, progress=False)
    assert bool(model.fitted) and bool(model.base.fitted)
    scorer = Dequantized.from_dataset(x, base=model.base, dequantization="importance", num_samples=4)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        warnings.filterwarnings("ignore", message=".*k-hat.*")
        assert pg.log_likelihood(scorer, x).nll > 0
    fresh = Dequantized.from_dataset(x, base=pg.models.MAF(64, num_layers=1, hidden_features=(64,)),
                                     dequantization="importance", num_samples=4)  # fmt: skip
    with pytest.warns(UserWarning, match="never fitted"):
        pg.log_likelihood(fresh, x)
