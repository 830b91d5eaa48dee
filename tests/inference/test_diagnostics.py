"""Importance-sampling diagnostics: k-hat (ArviZ's PSIS fit), ESS, and their use in log_likelihood."""

import math
import warnings

import numpy as np
import pytest
import torch

from probgen.inference.diagnostics import (
    KHAT_BAD,
    Diagnostics,
    importance_diagnostics,
    importance_ess,
    pareto_khat,
    run_diagnostics,
)

torch.set_num_threads(1)


def _gaussian_log_weights(q_scale: float, k: int = 2000, columns: int = 4, seed: int = 0) -> torch.Tensor:
    """log N(z; 0, 1) - log N(z; 0, q_scale) for z ~ N(0, q_scale): a proposal q_scale times the target's width.
    Its weights have finite variance iff q_scale^2 > 1/2: too narrow a proposal gives infinite variance."""
    g = torch.Generator().manual_seed(seed)
    z = q_scale * torch.randn(k, columns, generator=g, dtype=torch.float64)
    return -0.5 * z**2 + 0.5 * (z / q_scale) ** 2 + math.log(q_scale)


def test_khat_is_large_for_a_proposal_five_times_too_narrow_and_small_for_the_target_itself():
    narrow = pareto_khat(_gaussian_log_weights(0.2))
    exact = pareto_khat(_gaussian_log_weights(1.0))  # constant weights
    wide = pareto_khat(_gaussian_log_weights(1.5))
    assert narrow.shape == (4,) and narrow.mean() > KHAT_BAD  # true k = 1 - 0.2^2 ~ 0.96; K=2000 estimates low
    assert (wide < 0.5).all() and (exact == 0).all()  # equal weights: no tail at all


def test_importance_ess_is_the_textbook_formula():
    log_w = torch.randn(500, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    w = log_w.exp()
    assert torch.allclose(importance_ess(log_w), w.sum(0) ** 2 / (w**2).sum(0))
    assert importance_ess(torch.zeros(7)).item() == pytest.approx(7.0)


def test_summary_per_example_and_the_warning():
    log_w = torch.cat([_gaussian_log_weights(0.2, columns=1), _gaussian_log_weights(1.5, columns=3)], 1)
    d = importance_diagnostics(log_w)
    khat = pareto_khat(log_w)
    assert d.khat_max == pytest.approx(khat.max()) and d.khat_mean == pytest.approx(khat.mean())
    assert d.khat_above == pytest.approx(0.25) and not d.ok
    assert "better guide" in d.warning and "[FAILED]" in d.summary
    assert d.as_dict()["khat_above"] == pytest.approx(0.25)
    good = importance_diagnostics(_gaussian_log_weights(1.5))
    assert good.ok and good.warning is None and good.ess > 1000


def test_run_spread_fails_above_a_nat():
    d = run_diagnostics("ais", torch.tensor([0.0, 3.0, -2.0], dtype=torch.float64))
    assert d.run_spread == pytest.approx(float(np.std([0.0, 3.0, -2.0], ddof=1)))
    assert not d.ok and "num_steps" in d.warning
    assert run_diagnostics("smc", torch.tensor([0.0, 0.1], dtype=torch.float64)).ok


def test_diagnostics_are_frozen_and_json_able():
    import dataclasses
    import json

    d = Diagnostics(method="importance", num_samples=10, khat_max=0.3)
    with pytest.raises(dataclasses.FrozenInstanceError):
        d.khat_max = 1.0
    assert json.loads(json.dumps(d.as_dict()))["khat_max"] == 0.3


def test_log_likelihood_reports_khat_per_example_for_iwae_and_ais():
    import probgen as pg

    torch.manual_seed(0)
    train = pg.load_dataset("digits-binary")
    model = pg.models.VAE(64, latent_dim=2, hidden_features=(16,), support="binary")
    x = train.x[:20].to(model.dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        iwae = pg.log_likelihood(model, x, method="iwae", num_samples=200)
        ais = pg.log_likelihood(model, x, method="ais", num_samples=8, ais_steps=20)
    assert iwae.diagnostics is not None and iwae.diagnostics.method == "iwae"
    assert iwae.diagnostics.num_samples == 200 and iwae.diagnostics.khat_max >= iwae.diagnostics.khat_mean
    assert "k̂ max" in str(iwae) and iwae.as_dict()["diagnostic"] == iwae.diagnostics.summary
    assert ais.diagnostics.method == "ais" and ais.diagnostics.num_samples == 8
    exact = pg.log_likelihood(pg.models.IndependentBernoulli(64).fit_closed_form(train.x), x)
    assert exact.diagnostics is None and exact.as_dict()["diagnostic"] is None
