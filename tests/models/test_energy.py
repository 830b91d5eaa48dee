"""RBM (Bernoulli-Bernoulli): exact log Z against brute force, normalisation, AIS against the exact value, CD/PCD
training, Gibbs sampling against the exact distribution, and the strategy's guard and resume."""

import itertools
import math

import pytest
import torch

import probgen as pg
from probgen.inference import NonFiniteLossError
from probgen.models import RBM
from probgen.models.energy import GaussianRBM


def _random_rbm(d, h, scale, seed=0):
    torch.manual_seed(seed)
    rbm = RBM(d, "binary", num_hidden=h).double()
    with torch.no_grad():
        rbm.weight = scale * torch.randn(d, h, dtype=torch.float64)
        rbm.visible_bias = torch.randn(d, dtype=torch.float64) - 0.5
        rbm.hidden_bias = 0.5 * torch.randn(h, dtype=torch.float64)
    return rbm


def _all_states(n):
    return torch.tensor(list(itertools.product([0.0, 1.0], repeat=n)), dtype=torch.float64)


@pytest.mark.parametrize("d,h", [(5, 3), (3, 5)])  # enumerates the hiddens, then the visibles
def test_exact_log_normalizer_equals_brute_force_over_visible_and_hidden_states(d, h, float64):
    rbm = _random_rbm(d, h, scale=1.0)
    v, hs = _all_states(d), _all_states(h)
    energy = -(v @ rbm.visible_bias)[:, None] - (hs @ rbm.hidden_bias)[None, :] - v @ rbm.weight @ hs.T
    brute = torch.logsumexp((-energy).flatten(), 0)
    log_z, kind = rbm.log_normalizer()
    assert kind == "exact"
    assert torch.allclose(log_z, brute, rtol=1e-12)


def test_log_prob_normalises_over_all_visible_configurations(float64):
    rbm = _random_rbm(10, 7, scale=0.8)
    log_z, _ = rbm.log_normalizer()
    total = torch.logsumexp(rbm.log_prob(_all_states(10)) - log_z, 0)
    assert abs(total.item()) < 1e-10
    # and log_likelihood reports log p~ - log Z as exact
    x = _all_states(10)[::37]
    score = pg.log_likelihood(rbm, x)
    assert score.kind == "exact" and math.isclose(score.nats, (rbm.log_prob(x) - log_z).mean().item(), rel_tol=1e-12)


def _check_ais_against_exact(rbm, min_spread):
    """100 AIS runs of 500 temperatures within 0.1 nats of the exact log Z, their spread over
    runs kept, and ``log_normalizer(method="ais")`` the log-mean-exp of the runs."""
    exact, _ = rbm.log_normalizer(method="exact")
    torch.manual_seed(0)
    runs = rbm.ais_log_weights(100, 500)
    estimate = torch.logsumexp(runs, 0) - math.log(100)
    assert runs.shape == (100,) and runs.std() > min_spread
    assert abs(estimate - exact) < 0.1, (estimate, exact)
    rbm.num_ais_steps = 20
    torch.manual_seed(0)
    runs = rbm.ais_log_weights(10)
    torch.manual_seed(0)
    assert rbm.log_normalizer(10, method="ais") == (torch.logsumexp(runs, 0) - math.log(10), "estimate")


def test_ais_matches_exact_log_z_on_a_12_hidden_unit_rbm(float64):
    """100 AIS runs, 500 linearly spaced temperatures, from the base-rate model."""
    rbm = _random_rbm(64, 12, scale=0.3, seed=1)
    rbm.init_from_data(pg.load_dataset("digits-binary").x.double())
    _check_ais_against_exact(rbm, min_spread=0.0)


def test_gibbs_samples_follow_the_exact_distribution(float64):
    rbm = _random_rbm(4, 3, scale=1.5)
    rbm.num_gibbs_steps = 30
    torch.manual_seed(0)
    draws = rbm.sample(20000)
    index = (draws * 2 ** torch.arange(4, dtype=torch.float64)).sum(-1).long()
    empirical = torch.bincount(index, minlength=16).double() / len(draws)
    states = _all_states(4).flip(-1)  # itertools' order has the first unit as the highest bit
    exact = (rbm.log_prob(states) - rbm.log_normalizer()[0]).exp()
    assert 0.5 * (empirical - exact).abs().sum() < 0.02  # total variation


@pytest.mark.parametrize("persistent", [False, True])
def test_cd_training_lowers_the_exact_held_out_nll(persistent):
    train, test = pg.load_dataset("digits-binary"), pg.load_dataset("digits-binary", "test")
    rbm = RBM.from_dataset(train, num_hidden=12)
    before = pg.log_likelihood(rbm, test)
    result = pg.fit(rbm, train, val_data=test, epochs=4, batch_size=20, lr=0.01, progress=False,
                    strategy_options={"k": 1, "persistent": persistent})  # fmt: skip
    after = pg.log_likelihood(rbm, test)
    assert before.kind == after.kind == "exact"
    assert after.nll < before.nll - 10  # 44.4 nats (uniform, nearly) -> about 25
    assert math.isclose(result.best_loss, after.nll, rel_tol=1e-5)  # the kept epoch is the best one


def test_strategy_rejects_unknown_options_and_names_a_non_finite_parameter():
    train = pg.load_dataset("digits-binary")
    rbm = RBM.from_dataset(train, num_hidden=4)
    with pytest.raises(ValueError, match=r"unknown contrastive divergence option\(s\) \['kk'\]"):
        pg.fit(rbm, train, epochs=1, progress=False, strategy_options={"kk": 2})
    with torch.no_grad():
        rbm.hidden_bias = torch.full((4,), math.nan)
    with pytest.raises(NonFiniteLossError, match="contrastive divergence loss is nan.*'hidden_bias_unconstrained'"):
        pg.fit(rbm, train, epochs=1, progress=False, init_from_data=False)


def test_checkpoint_and_resume_continue_the_history(tmp_path):
    train = pg.load_dataset("digits-binary")
    path = tmp_path / "rbm.safetensors"
    rbm = RBM.from_dataset(train, num_hidden=4)
    pg.fit(rbm, train, epochs=2, progress=False, checkpoint=path)
    resumed = pg.load(path)
    result = pg.fit(resumed, train, epochs=3, progress=False, checkpoint=path, resume=True)
    assert [h["epoch"] for h in result.history] == [0, 1, 2]


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="num_hidden must be a positive integer, got 0"):
        RBM(4, "binary", num_hidden=0)
    with pytest.raises(ValueError, match="does not model 'real' data"):
        RBM(4, "real")
    with pytest.raises(ValueError, match="enumerates 2\\^21 states"):
        RBM(21, "binary", num_hidden=21).log_normalizer(method="exact")
    with pytest.raises(ValueError, match="unknown method 'mc'"):
        RBM(4, "binary").log_normalizer(method="mc")


# ------------------------------------------------------------------ Gaussian-Bernoulli RBM
def _random_gaussian_rbm(d, h, scale, seed=0):
    torch.manual_seed(seed)
    rbm = GaussianRBM(d, "real", num_hidden=h).double()
    with torch.no_grad():
        rbm.weight = scale * torch.randn(d, h, dtype=torch.float64)
        rbm.visible_bias = torch.randn(d, dtype=torch.float64)
        rbm.hidden_bias = 0.5 * torch.randn(h, dtype=torch.float64)
        rbm.visible_scale = 0.5 + torch.rand(d, dtype=torch.float64)
    return rbm


def _grid(d, half_width=12.0, points=801):
    """A regular grid on [-half_width, half_width]^d and the volume of one cell."""
    axis = torch.linspace(-half_width, half_width, points, dtype=torch.float64)
    cell = (axis[1] - axis[0]).item() ** d
    return (axis[:, None] if d == 1 else torch.cartesian_prod(axis, axis)), cell


@pytest.mark.parametrize("d", [1, 2])
def test_gaussian_exact_log_normalizer_equals_quadrature_of_the_joint(d, float64):
    """Z = sum_h integral exp(-E(v, h)) dv with E written out from its definition (Cho et al.),
    integrated on a grid (the trapezoid rule is exact to ~1e-15 for Gaussians this wide)."""
    rbm = _random_gaussian_rbm(d, 3, scale=1.0)
    v, cell = _grid(d)
    h = _all_states(3)
    b, c, w, sigma = rbm.visible_bias, rbm.hidden_bias, rbm.weight, rbm.visible_scale
    energy = (((v - b) / sigma) ** 2).sum(-1, keepdim=True) / 2 - (h @ c)[None, :] - (v / sigma**2) @ w @ h.T
    quadrature = torch.logsumexp((-energy).flatten(), 0) + math.log(cell)
    log_z, kind = rbm.log_normalizer()
    assert kind == "exact"
    assert torch.allclose(log_z, quadrature, rtol=1e-10), (log_z, quadrature)


@pytest.mark.parametrize("d", [1, 2])
def test_gaussian_density_integrates_to_one(d, float64):
    rbm = _random_gaussian_rbm(d, 5, scale=0.8, seed=1)
    v, cell = _grid(d)
    log_z, _ = rbm.log_normalizer()
    total = torch.logsumexp(rbm.log_prob(v) - log_z, 0) + math.log(cell)
    assert abs(total.item()) < 1e-9
    score = pg.log_likelihood(rbm, v[::97])  # log p~ - exact log Z, reported as exact
    assert score.kind == "exact" and math.isclose(score.nats, (rbm.log_prob(v[::97]) - log_z).mean().item())


def test_gaussian_ais_matches_exact_log_z_on_a_12_hidden_unit_rbm(float64):
    """D = 16, H = 12: 100 AIS runs, 500 linearly spaced temperatures, from the base Gaussian
    N(b, sigma^2) with uniform hiddens (the model with W and c at zero); error 0.02 at seed 0."""
    rbm = _random_gaussian_rbm(16, 12, scale=0.5, seed=1)
    rbm.base_loc, rbm.base_scale = rbm.visible_bias.detach().clone(), rbm.visible_scale.detach().clone()
    _check_ais_against_exact(rbm, min_spread=0.1)  # the runs differ: the base is not the model


def test_gaussian_free_energy_gradients_equal_autograd(float64):
    """d log p~(v) / d theta in closed form, with P = p(h = 1 | v) from the hidden conditional:
    dW = (v / sigma^2) P^T, dc = P, db = (v - b) / sigma^2, dsigma = ((v - b)^2 - 2 v (W P)) / sigma^3,
    and the score d/dv = (b + W P - v) / sigma^2."""
    rbm = _random_gaussian_rbm(3, 4, scale=0.7, seed=2)
    v = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
    params = [rbm.weight, rbm.hidden_bias, rbm.visible_bias, rbm.visible_scale_unconstrained]
    grads = list(torch.autograd.grad(rbm.unnormalized_log_prob(v).sum(), [*params, v]))
    grads[3] = grads[3] / rbm.visible_scale.detach()  # sigma = exp(u): d/dsigma = d/du / sigma
    with torch.no_grad():
        b, w, sigma = rbm.visible_bias, rbm.weight, rbm.visible_scale
        p = rbm.hidden_probabilities(v)
        wp = p @ w.T
        want = [
            (v / sigma**2).T @ p,
            p.sum(0),
            ((v - b) / sigma**2).sum(0),
            (((v - b) ** 2 - 2 * v * wp) / sigma**3).sum(0),
            (b + wp - v) / sigma**2,
        ]
    for got, expected in zip(grads, want, strict=True):
        assert torch.allclose(got, expected, rtol=1e-12), (got, expected)


def test_gaussian_gibbs_samples_match_the_exact_moments(float64):
    """D = 1, H = 3: 20000 chains of 30 sweeps against the mean and variance by quadrature."""
    rbm = _random_gaussian_rbm(1, 3, scale=1.5, seed=3)
    rbm.num_gibbs_steps = 30
    torch.manual_seed(0)
    draws = rbm.sample(20000).squeeze(-1)
    v, cell = _grid(1)
    density = (rbm.log_prob(v) - rbm.log_normalizer()[0]).exp() * cell
    mean = (density * v[:, 0]).sum()
    variance = (density * (v[:, 0] - mean) ** 2).sum()
    assert abs(draws.mean() - mean) < 4 * (variance / len(draws)).sqrt(), (draws.mean(), mean)
    assert abs(draws.var() / variance - 1) < 4 * math.sqrt(2 / len(draws)), (draws.var(), variance)


def test_gaussian_cd_training_beats_the_best_diagonal_gaussian_on_moons():
    """CD-1, 12 hiddens, 10 epochs of 40 batches of 50 at lr 0.1 (seed 0; about 3 s): held-out
    log-likelihood (exact log Z) from -3.37 nats at the start to -3.05 (standard error 0.01);
    the maximum-likelihood diagonal Gaussian, which the model is at W = 0, scores -3.37."""
    train, test = pg.load_dataset("moons"), pg.load_dataset("moons", "test")
    gaussian = pg.models.IndependentGaussian.from_dataset(train, method="mle")
    pg.fit(gaussian, train, strategy="closed_form", progress=False)
    baseline = pg.log_likelihood(gaussian, test)
    torch.manual_seed(0)
    rbm = GaussianRBM.from_dataset(train, num_hidden=12)
    rbm.init_from_data(train.x)
    before = pg.log_likelihood(rbm, test)
    pg.fit(rbm, train, epochs=10, batch_size=50, lr=0.1, progress=False, strategy_options={"k": 1})
    after = pg.log_likelihood(rbm, test)
    assert before.kind == after.kind == "exact"
    assert abs(before.nats - baseline.nats) < 0.05  # the start is (nearly) the Gaussian
    assert after.nats > baseline.nats + 0.2, (after, baseline)  # 0.32 at seed 0


def test_gaussian_fixed_scale_is_not_trained():
    train = pg.load_dataset("moons", n=200)
    rbm = GaussianRBM.from_dataset(train, num_hidden=4, learn_scale=False)
    pg.fit(rbm, train, epochs=2, batch_size=50, lr=0.05, progress=False)
    assert "visible_scale" not in dict(rbm.named_parameters())
    assert torch.allclose(rbm.visible_scale, train.x.std(0))  # set from the data, then kept
    assert type(rbm).from_config(rbm.config).learn_scale is False


def test_gaussian_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="does not model 'binary' data"):
        GaussianRBM(4, "binary")
    with pytest.raises(ValueError, match="learn_scale must be True or False, got 'yes'"):
        GaussianRBM(4, "real", learn_scale="yes")
    with pytest.raises(ValueError, match="enumerates 2\\^21 states"):
        GaussianRBM(2, "real", num_hidden=21).log_normalizer(method="exact")
