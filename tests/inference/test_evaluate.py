import math
import warnings

import numpy as np
import pytest
import torch

import probgen as pg
from probgen.inference import bits_per_dim


def test_log_likelihood_is_the_dirichlet_categorical_predictive_with_its_stderr():
    """Against the closed form computed here: p(x_d = v) = (1 + count_dv) / (17 + N) per pixel."""
    train, test = pg.load_dataset("digits"), pg.load_dataset("digits", "test")
    model = pg.models.IndependentCategorical(64, "discrete(17)").fit_closed_form(train.x)
    result = pg.log_likelihood(model, test, batch_size=100)
    levels = train.x.long().numpy()
    counts = np.stack([(levels == v).sum(0) for v in range(17)], -1)  # [64, 17]
    probs = (1 + counts) / (17 + len(levels))
    per_example = np.log(probs[np.arange(64), test.x.long().numpy()]).sum(-1)
    assert result.nats == pytest.approx(per_example.mean(), rel=1e-6)
    assert result.stderr == pytest.approx(per_example.std(ddof=1) / math.sqrt(447), rel=1e-4)
    assert result.kind == "exact" and result.num_examples == 447
    assert result.bits_per_dim == pytest.approx(-per_example.mean() / 64 / math.log(2))


def test_bits_per_dim_by_hand():
    # 64 fair coins: log p = -64 log 2 nats -> exactly 1 bit per dimension
    assert bits_per_dim(-64 * math.log(2), 64) == pytest.approx(1.0)
    model = pg.models.IndependentBernoulli(64, method="mle")
    result = pg.log_likelihood(model, torch.zeros(3, 64))
    assert result.bits_per_dim == pytest.approx(1.0) and result.stderr == 0.0


def test_binarized_digits_baseline_is_about_25_nats():
    train, test = pg.load_dataset("digits-binary"), pg.load_dataset("digits-binary", "test")
    model = pg.models.IndependentBernoulli(64).fit_closed_form(train.x)
    assert pg.log_likelihood(model, test).nll == pytest.approx(24.9, abs=0.1)


def test_bad_arguments():
    model = pg.models.IndependentBernoulli(4)
    with pytest.raises(ValueError, match="unknown method"):
        pg.log_likelihood(model, torch.zeros(2, 4), method="annealing")
    with pytest.raises(ValueError, match="has an exact density"):
        pg.log_likelihood(model, torch.zeros(2, 4), method="ais")
    with pytest.raises(ValueError, match="num_samples"):
        pg.log_likelihood(model, torch.zeros(2, 4), num_samples=0)
    with pytest.raises(ValueError, match="outside the support"):
        pg.log_likelihood(model, torch.full((2, 4), 2.0))


def test_compare_table_formats(tmp_path):
    train, test = pg.load_dataset("digits-binary"), pg.load_dataset("digits-binary", "test")
    models = {
        "bernoulli": pg.models.IndependentBernoulli(64),
        "categorical": pg.models.IndependentCategorical(64, "binary"),
    }
    table = pg.compare(models, test, train=train, fit_kwargs={n: {"epochs": 2, "progress": False} for n in models})
    assert [r["model"] for r in table.rows] == ["bernoulli", "categorical"]
    assert table.to_markdown().count("\n") == 3
    assert table.to_csv().splitlines()[0].startswith("model,nll_nats,stderr_nats,bits_per_dim,kind")
    assert '"kind": "exact"' in table.to_json()
    png = table.plot(tmp_path / "c.png")
    assert png.read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(ValueError, match="at least one model"):
        pg.compare({}, test)


def test_scoring_a_model_that_was_never_fitted_warns(tmp_path):
    model = pg.models.IndependentBernoulli(4)
    with pytest.warns(UserWarning, match="never fitted"):
        pg.log_likelihood(model, torch.zeros(2, 4))
    pg.fit(model, torch.zeros(2, 4), epochs=1, progress=False)
    loaded = pg.load(pg.save(model, tmp_path / "m.safetensors"))
    assert bool(loaded.fitted)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pg.log_likelihood(loaded, torch.zeros(2, 4))
    old = {k: v for k, v in model.state_dict().items() if k != "fitted"}  # a checkpoint from before the flag
    fresh = pg.models.IndependentBernoulli(4)
    fresh.load_state_dict(old)
    assert bool(fresh.fitted)
