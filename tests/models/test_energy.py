"""RBM: exact log Z against brute force, normalisation, AIS against the exact value, CD/PCD
training, Gibbs sampling against the exact distribution, and the strategy's guard and resume."""

import itertools
import math

import pytest
import torch

import probgen as pg
from probgen.inference import NonFiniteLossError
from probgen.models import RBM


def _random_rbm(d, h, scale, seed=0):
    torch.manual_seed(seed)
    rbm = RBM(d, "binary", hidden=h).double()
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


def test_ais_matches_exact_log_z_on_a_12_hidden_unit_rbm(float64):
    """100 AIS runs, 500 linearly spaced temperatures, from the base-rate model."""
    rbm = _random_rbm(64, 12, scale=0.3, seed=1)
    rbm.init_from_data(pg.load_dataset("digits-binary").x.double())
    exact, _ = rbm.log_normalizer(method="exact")
    torch.manual_seed(0)
    runs = rbm.ais_log_weights(100, 500)
    estimate = torch.logsumexp(runs, 0) - math.log(100)
    assert runs.shape == (100,) and runs.std() > 0  # the spread over runs is kept
    assert abs(estimate - exact) < 0.1, (estimate, exact)
    rbm.ais_steps = 20  # log_normalizer is the log-mean-exp of the runs
    torch.manual_seed(0)
    runs = rbm.ais_log_weights(10)
    torch.manual_seed(0)
    assert rbm.log_normalizer(10, method="ais") == (torch.logsumexp(runs, 0) - math.log(10), "estimate")


def test_gibbs_samples_follow_the_exact_distribution(float64):
    rbm = _random_rbm(4, 3, scale=1.5)
    rbm.gibbs_steps = 30
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
    rbm = RBM.from_dataset(train, hidden=12)
    before = pg.log_likelihood(rbm, test)
    result = pg.fit(rbm, train, val_data=test, epochs=4, batch_size=20, lr=0.01, progress=False,
                    strategy_options={"k": 1, "persistent": persistent})  # fmt: skip
    after = pg.log_likelihood(rbm, test)
    assert before.kind == after.kind == "exact"
    assert after.nll < before.nll - 10  # 44.4 nats (uniform, nearly) -> about 25
    assert math.isclose(result.best_loss, after.nll, rel_tol=1e-5)  # the kept epoch is the best one


def test_strategy_rejects_unknown_options_and_names_a_non_finite_parameter():
    train = pg.load_dataset("digits-binary")
    rbm = RBM.from_dataset(train, hidden=4)
    with pytest.raises(ValueError, match=r"unknown contrastive divergence option\(s\) \['kk'\]"):
        pg.fit(rbm, train, epochs=1, progress=False, strategy_options={"kk": 2})
    with torch.no_grad():
        rbm.hidden_bias = torch.full((4,), math.nan)
    with pytest.raises(NonFiniteLossError, match="contrastive divergence loss is nan.*'hidden_bias_unconstrained'"):
        pg.fit(rbm, train, epochs=1, progress=False, init_from_data=False)


def test_checkpoint_and_resume_continue_the_history(tmp_path):
    train = pg.load_dataset("digits-binary")
    path = tmp_path / "rbm.safetensors"
    rbm = RBM.from_dataset(train, hidden=4)
    pg.fit(rbm, train, epochs=2, progress=False, checkpoint=path)
    resumed = pg.load(path)
    result = pg.fit(resumed, train, epochs=3, progress=False, checkpoint=path, resume=True)
    assert [h["epoch"] for h in result.history] == [0, 1, 2]


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="hidden must be a positive integer, got 0"):
        RBM(4, "binary", hidden=0)
    with pytest.raises(ValueError, match="does not model 'real' data"):
        RBM(4, "real")
    with pytest.raises(ValueError, match="enumerates 2\\^21 states"):
        RBM(21, "binary", hidden=21).log_normalizer(method="exact")
    with pytest.raises(ValueError, match="unknown method 'mc'"):
        RBM(4, "binary").log_normalizer(method="mc")
