"""Every registered model honours the GenerativeModel contract (DESIGN.md)."""

import copy

import pytest
import torch

import probgen as pg
from probgen.models import MODELS, build_model

DATA_FOR = {"binary": "digits-binary", "discrete": "digits", "real": "iris"}


def _data_for(name):
    spec = MODELS[name]
    source = DATA_FOR[next(s for s in ("binary", "discrete", "real") if s in spec.cls.supports)]
    return pg.load_dataset(source)


def _variants(name):
    cls = MODELS[name].cls
    estimators = cls.__init__.__kwdefaults__ or {}
    return ["bayes", "map", "mle"] if "estimator" in estimators else [None]


CASES = [(n, e) for n in sorted(MODELS) for e in _variants(n)]


@pytest.mark.parametrize("name,estimator", CASES)
def test_fit_changes_every_parameter(name, estimator):
    """A model/guide method without @pyro_method trains nothing and would fail here."""
    data = _data_for(name)
    kwargs = {} if estimator is None else {"estimator": estimator}
    model = build_model(name, data, **kwargs)
    pg.fit(model, data, epochs=1, batch_size=250, lr=0.05, init_from_data=False, progress=False)
    before = copy.deepcopy(model.state_dict())
    pg.fit(model, data, epochs=1, batch_size=250, lr=0.05, init_from_data=False, progress=False)
    for key, value in model.state_dict().items():
        assert not torch.equal(value, before[key]), f"{name}: parameter {key} did not train"


@pytest.mark.parametrize("name,estimator", CASES)
def test_shapes_config_and_checkpoint_round_trip(name, estimator, tmp_path):
    data = _data_for(name)
    kwargs = {} if estimator is None else {"estimator": estimator}
    model = build_model(name, data, **kwargs)
    pg.fit(model, data, epochs=2, batch_size=250, progress=False)
    assert model.density in pg.models.DENSITY_KINDS
    lp = model.log_prob(data.x[:7])
    assert lp.shape == (7,) and torch.isfinite(lp).all()
    draws = model.sample(5)
    assert draws.shape == (5, *data.event_shape)
    model.validate(draws)  # samples lie in the data's support
    twin = type(model).from_config(model.config)
    assert twin.config == model.config
    assert {k: v.shape for k, v in twin.state_dict().items()} == {
        k: v.shape for k, v in model.state_dict().items()
    }
    loaded = pg.load(pg.save(model, tmp_path / "m.safetensors"))
    assert torch.equal(loaded.log_prob(data.x), model.log_prob(data.x))


def test_two_models_never_share_parameters():
    data = pg.load_dataset("digits-binary")
    first = pg.models.IndependentBernoulli(64)
    pg.fit(first, data, epochs=2, progress=False)
    second = pg.models.IndependentBernoulli(64)
    assert torch.equal(second.q_a, torch.ones(64))  # not the first model's values
    pg.fit(second, data, epochs=1, progress=False)
    assert not torch.equal(first.q_a, second.q_a)
