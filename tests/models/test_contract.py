"""Every registered model honours the GenerativeModel contract, and is a plain Pyro model/guide pair.

One parametrized suite over the registry (each way a model can be fitted): declared density
kind and support, shapes, training moves every parameter, checkpoints round-trip, bad input is
refused by name, ``pyro.infer.SVI``/``Predictive``/``format_shapes`` work on it, and fit's
objectives equal Pyro's on the same random draws.
"""

import math
import warnings

import pyro
import pyro.poutine as poutine
import pytest
import torch
from pyro.infer import SVI, Predictive, Trace_ELBO, TraceMeanField_ELBO
from pyro.infer.importance import vectorized_importance_weights

import probgen as pg
from probgen.data.support import parse_support
from probgen.inference.objectives import make_objective
from probgen.models import DENSITY_KINDS, MODELS, build_model
from probgen.models.base import parameters_held

DATA_FOR = {"binary": "digits-binary", "discrete": "digits", "real": "iris"}


def _data_for(name, n=63):
    spec = MODELS[name]
    source = DATA_FOR[next(s for s in ("binary", "discrete", "real") if s in spec.cls.supports)]
    data = pg.load_dataset(source)
    # unbalanced classes, so that even the class weights are away from their optimum at start
    return pg.data.Dataset(data.x[:n], data.y[:n], data.support, name=data.name)


def _variants(name):
    """Keyword arguments for every way the model can be fitted (NUTS is tested on its own)."""
    cls = MODELS[name].cls
    if issubclass(cls, pg.models.Factorized):
        return [{"method": e} for e in ("bayes", "map", "mle")]
    if issubclass(cls, pg.models.GenerativeClassifier):
        return [{"method": m} for m in ("conjugate", "map", "vi")]
    if issubclass(cls, pg.models.Stacked):  # components of its data (binary digits), fitted or not
        return [{"models": [pg.models.IndependentBernoulli(64), pg.models.FVBN(64, "binary")]}]
    if issubclass(cls, pg.models.Dequantized):
        return [{"dequantization": m} for m in ("variational", "uniform", "importance")]
    if issubclass(cls, pg.models.VAE):  # the Gaussian posterior, a flow posterior, a richer prior
        flows = [{}, {"posterior_flow": "sylvester", "flow_num_layers": 2}]
        return flows + ([{"prior": "flow", "flow_num_layers": 2}] if cls.conditional else [{"prior": "vamp"}])
    return [{}]


CASES = [(n, kw) for n in sorted(MODELS) for kw in _variants(n)]
#: the stack's components here are unfitted on purpose (the contract holds either way)
pytestmark = pytest.mark.filterwarnings("ignore:.*never fitted:UserWarning")


def _case_id(name, kwargs):
    values = [f"{len(v)}-models" if isinstance(v, list) else str(v) for v in kwargs.values()]
    return f"{name}-{'-'.join(values) or 'default'}"


IDS = [_case_id(n, kw) for n, kw in CASES]
#: strategies that compute a posterior: the model has no parameters to train
COMPUTED = ("closed_form", "nuts")
#: models fitted by these are also Pyro model/guide pairs with a likelihood (an RBM's is the
#: unnormalized p~(x, h)); adversarial models have none, so plain SVI does not apply to them
PYRO_TRAINABLE = ("svi", "contrastive_divergence", "mixture_weights")


def _fit_strategy(name, kwargs):
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", ".*never fitted", UserWarning)
        return build_model(name, _data_for(name), **kwargs).fit_strategy


TRAINABLE = [(n, kw) for n, kw in CASES if _fit_strategy(n, kw) in PYRO_TRAINABLE]
TRAINABLE_IDS = [_case_id(n, kw) for n, kw in TRAINABLE]


def _args(model, data, n=None):
    x = data.x[:n].to(model.dtype)
    return (x, data.y[:n]) if model.needs_labels else (x,)


@pytest.mark.parametrize("name,kwargs", CASES, ids=IDS)
def test_declared_contract(name, kwargs):
    data = _data_for(name)
    model = build_model(name, data, **kwargs)
    assert model.density in DENSITY_KINDS
    assert parse_support(model.support)[0] in model.supports
    assert model.fit_strategy in pg.inference.STRATEGIES
    assert model.event_shape == data.event_shape and model.name == name
    assert model.predictive in (None, "posterior", "variational", "plug-in")
    assert type(model).from_config(model.config).config == model.config


@pytest.mark.parametrize("name,kwargs", CASES, ids=IDS)
def test_fit_changes_every_parameter(name, kwargs):
    """A model/guide method without @pyro_method trains nothing and would fail here."""
    data = _data_for(name)
    model = build_model(name, data, **kwargs)
    fit = dict(epochs=1, batch_size=250, lr=0.05, progress=False)
    pg.fit(model, data, **fit)
    if model.fit_strategy in COMPUTED:  # computed posterior: no parameters to train
        assert not dict(model.named_parameters())
        assert model.log_prob(data.x).isfinite().all()
        return
    if model.fit_strategy == "mixture_weights":  # EM to the maximum: the weights left the uniform start
        assert not torch.allclose(model.weights, torch.full_like(model.weights, 1 / len(model.weights)))
        return
    before = {k: v.detach().clone() for k, v in model.named_parameters() if v.requires_grad}  # not a stack's parts
    assert before, f"{name} has no parameters to train"
    pg.fit(model, data, init_from_data=False, **fit)
    after = dict(model.named_parameters())
    for key, value in before.items():
        assert not torch.equal(after[key], value), f"{name}: parameter {key} did not train"


@pytest.mark.parametrize("name,kwargs", CASES, ids=IDS)
def test_shapes_and_checkpoint_round_trip(name, kwargs, tmp_path):
    data = _data_for(name)
    model = build_model(name, data, **kwargs)
    pg.fit(model, data, epochs=2, batch_size=250, progress=False)
    if model.density in ("exact", "estimate", "unnormalized"):
        lp = model.log_prob(data.x[:7])
        assert lp.shape == (7,) and torch.isfinite(lp).all()
    draws = model.sample(5)
    assert draws.shape == (5, *data.event_shape)
    model.validate(draws)  # samples lie in the data's support
    loaded = pg.load(pg.save(model, tmp_path / "m.safetensors"))
    assert loaded.config == model.config
    if model.density != "implicit":  # the same draws give the same number
        scores = []
        for m in (model, loaded):
            torch.manual_seed(0)
            scores.append(pg.log_likelihood(m, data, num_samples=3).nats)
        assert scores[0] == scores[1]
    for (ka, a), (kb, b) in zip(model.state_dict().items(), loaded.state_dict().items(), strict=True):
        assert ka == kb and torch.equal(a, b)


@pytest.mark.parametrize("name,kwargs", CASES, ids=IDS)
def test_bad_input_is_refused_by_name(name, kwargs):
    data = _data_for(name)
    model = build_model(name, data, **kwargs)
    pg.fit(model, data, epochs=1, batch_size=250, progress=False)
    wrong = torch.zeros(3, model.num_dims + 1)
    with pytest.raises(ValueError, match=rf"shape \(3, {model.num_dims + 1}\).*expected \(N, "):
        pg.fit(model, (wrong, data.y[:3]), epochs=1, progress=False)
    if model.density != "implicit":
        with pytest.raises(ValueError, match=rf"shape \(3, {model.num_dims + 1}\).*expected \(N, "):
            pg.log_likelihood(model, wrong)
    off = data.x[:3].clone()
    off.view(3, -1)[0, 0] = 0.5 if model.support != "real" else math.nan
    expected = "outside the support" if model.support != "real" else "NaN or inf"
    if model.density != "implicit":
        with pytest.raises(ValueError, match=expected):
            pg.log_likelihood(model, off)
    with pytest.raises(ValueError, match=expected):
        pg.fit(model, (off, data.y[:3]), epochs=1, progress=False)


@pytest.mark.parametrize("name,kwargs", TRAINABLE, ids=TRAINABLE_IDS)
def test_plain_pyro_svi_trains_every_parameter(name, kwargs):
    """``pyro.infer.SVI`` with ``pyro.optim`` on ``model.model``/``model.guide`` and on the module."""
    data = _data_for(name)
    for program in ("model.model", "model"):
        model = build_model(name, data, **kwargs)
        model.init_from_data(*_args(model, data))
        args = _args(model, data, 32)
        model.guide(*args)  # lazily built parameters (AutoGuides) exist from here on
        before = {k: v.detach().clone() for k, v in model.named_parameters() if v.requires_grad}
        svi = SVI(
            model.model if program == "model.model" else model, model.guide, pyro.optim.Adam({"lr": 0.05}), Trace_ELBO()
        )
        for _ in range(3):
            assert math.isfinite(svi.step(*args))
        after = dict(model.named_parameters())
        for key, value in before.items():
            assert not torch.equal(after[key], value), f"{name} via {program}: {key} did not train"
        predictive = Predictive(model.model, guide=model.guide, num_samples=2)(*args)
        assert predictive and all(torch.isfinite(v.double()).all() for v in predictive.values())
        assert "Trace Shapes" in poutine.trace(model.model).get_trace(*args).format_shapes()


def _two_args(args):
    return args if len(args) == 2 else (args[0], None)


def _loss_and_grads(loss_fn, model, args):
    pyro.set_rng_seed(7)
    loss = loss_fn(*args)
    params = [p for p in model.parameters() if p.requires_grad]
    return loss.detach(), torch.autograd.grad(loss, params, allow_unused=True)


@pytest.mark.parametrize("name,kwargs", TRAINABLE, ids=TRAINABLE_IDS)
def test_objectives_equal_pyros_on_the_same_draws(name, kwargs, float64):
    data = _data_for(name)
    model = build_model(name, data, **kwargs).double()
    model.init_from_data(*_args(model, data))
    args = _args(model, data, 16)
    model.guide(*args)
    references = {
        "elbo": lambda *a: Trace_ELBO().differentiable_loss(model.model, model.guide, *a),
        "analytic_kl": lambda *a: TraceMeanField_ELBO().differentiable_loss(model.model, model.guide, *a),
    }
    with parameters_held(model):
        for objective, reference in references.items():
            ours = make_objective(objective)
            want, want_grads = _loss_and_grads(reference, model, args)
            got, got_grads = _loss_and_grads(lambda *a, f=ours: f(model, *_two_args(a)), model, args)
            assert torch.allclose(got, want, rtol=1e-10), (objective, got, want)
            for g, w in zip(got_grads, want_grads, strict=True):
                assert (g is None and w is None) or torch.allclose(g, w, rtol=1e-8, atol=1e-10), objective


@pytest.mark.parametrize("name", ["vae", "conditional-vae"])
def test_iwae_objective_equals_pyros_importance_weights(name, float64):
    """For one example, IWAE_K = logsumexp of K importance weights - log K (Pyro's vectorized weights)."""
    data = _data_for(name)
    model = build_model(name, data).double()
    x, y = data.x[:1].double(), data.y[:1]
    args = (x, y) if model.needs_labels else (x,)
    k = 50
    pyro.set_rng_seed(3)
    ours = make_objective("iwae", num_samples=k)(model, x, y if model.needs_labels else None)
    pyro.set_rng_seed(3)
    weights, _, _ = vectorized_importance_weights(model.model, model.guide, *args, num_samples=k, max_plate_nesting=1)
    reference = -(torch.logsumexp(weights, 0) - math.log(k))
    assert torch.allclose(ours, reference, rtol=1e-10), (ours, reference)
