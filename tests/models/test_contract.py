"""Every registered model honours the GenerativeModel contract (DESIGN.md)."""

import pytest
import torch

import probgen as pg
from probgen.models import MODELS, build_model

DATA_FOR = {"binary": "digits-binary", "discrete": "digits", "real": "iris"}


def _data_for(name):
    spec = MODELS[name]
    source = DATA_FOR[next(s for s in ("binary", "discrete", "real") if s in spec.cls.supports)]
    data = pg.load_dataset(source)
    # unbalanced classes, so that even the class weights are away from their optimum at start
    return pg.data.Dataset(data.x[:63], data.y[:63], data.support, name=data.name)


def _variants(name):
    """Keyword arguments for every way the model can be fitted (NUTS is tested on its own)."""
    params = MODELS[name].cls.__init__.__kwdefaults__ or {}
    if "estimator" in params:
        return [{"estimator": e} for e in ("bayes", "map", "mle")]
    if issubclass(MODELS[name].cls, pg.models.GenerativeClassifier):
        return [{"method": m} for m in ("conjugate", "map", "vi")]
    return [{}]


CASES = [(n, kw) for n in sorted(MODELS) for kw in _variants(n)]
IDS = [f"{n}-{'-'.join(map(str, kw.values())) or 'default'}" for n, kw in CASES]


@pytest.mark.parametrize("name,kwargs", CASES, ids=IDS)
def test_fit_changes_every_parameter(name, kwargs):
    """A model/guide method without @pyro_method trains nothing and would fail here."""
    data = _data_for(name)
    model = build_model(name, data, **kwargs)
    fit = dict(epochs=1, batch_size=250, lr=0.05, progress=False)
    pg.fit(model, data, **fit)
    if getattr(model, "fit_strategy", "svi") != "svi":  # computed posterior: no parameters
        assert not dict(model.named_parameters())
        assert bool(model.fitted_flag)
        return
    before = {k: v.detach().clone() for k, v in model.named_parameters()}
    assert before, f"{name} has no parameters to train"
    pg.fit(model, data, init_from_data=False, **fit)
    for key, value in model.named_parameters():
        assert not torch.equal(value, before[key]), f"{name}: parameter {key} did not train"


@pytest.mark.parametrize("name,kwargs", CASES, ids=IDS)
def test_shapes_config_and_checkpoint_round_trip(name, kwargs, tmp_path):
    data = _data_for(name)
    model = build_model(name, data, **kwargs)
    pg.fit(model, data, epochs=2, batch_size=250, progress=False)
    assert model.density in pg.models.DENSITY_KINDS
    if model.density == "exact":
        lp = model.log_prob(data.x[:7])
        assert lp.shape == (7,) and torch.isfinite(lp).all()
    draws = model.sample(5)
    assert draws.shape == (5, *data.event_shape)
    model.validate(draws)  # samples lie in the data's support
    twin = type(model).from_config(model.config)
    assert twin.config == model.config
    shapes = {k: v.shape for k, v in model.state_dict().items()}
    # lazily built parts (AutoGuides, posterior draws) appear once fitted, the rest matches
    assert all(shapes[k] == v.shape for k, v in twin.state_dict().items())
    loaded = pg.load(pg.save(model, tmp_path / "m.safetensors"))
    if model.density == "exact":
        assert torch.equal(loaded.log_prob(data.x), model.log_prob(data.x))
    elif model.density == "lower_bound":  # the same draws give the same bound
        scores = []
        for m in (model, loaded):
            torch.manual_seed(0)
            scores.append(pg.log_likelihood(m, data, method="iwae", num_samples=3).nats)
        assert scores[0] == scores[1]
    else:
        for a, b in zip(model.state_dict().values(), loaded.state_dict().values(), strict=True):
            assert torch.equal(a, b)


def test_two_models_never_share_parameters():
    data = pg.load_dataset("digits-binary")
    first = pg.models.IndependentBernoulli(64)
    pg.fit(first, data, epochs=2, progress=False)
    second = pg.models.IndependentBernoulli(64)
    assert torch.equal(second.q_a, torch.ones(64))  # not the first model's values
    pg.fit(second, data, epochs=1, progress=False)
    assert not torch.equal(first.q_a, second.q_a)
