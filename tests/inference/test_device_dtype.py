"""``device=`` and ``dtype=`` are honoured by fit, log_likelihood and checkpoints, for every family.

CUDA cases run where torch finds a GPU and are skipped otherwise.
"""

import math

import pytest
import torch

import probgen as pg
from probgen.inference.importance import log_importance_weights
from probgen.models import MODELS, build_model
from probgen.models.base import model_labels

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU"))]
DATA_FOR = {"binary": "digits-binary", "discrete": "digits", "real": "iris"}


def _data(name, n=48):
    spec = MODELS[name]
    source = DATA_FOR[next(s for s in ("binary", "discrete", "real") if s in spec.cls.supports)]
    data = pg.load_dataset(source)
    return pg.data.Dataset(data.x[:n], data.y[:n], data.support, name=data.name)


def _cases():
    cases = [(name, {}) for name in sorted(MODELS)]
    # a variational classifier creates its AutoGuide's parameters lazily, during the fit
    classifiers = [n for n in sorted(MODELS) if issubclass(MODELS[n].cls, pg.models.GenerativeClassifier)]
    return cases + [(name, {"method": "vi"}) for name in classifiers]


CASES = _cases()
IDS = [f"{n}-{'-'.join(kw.values()) or 'default'}" for n, kw in _cases()]


def _floating(model):
    return {k: v for k, v in [*model.named_parameters(), *model.named_buffers()] if v.is_floating_point()}


def _output(model, data):
    """A log-density of the model on a few examples (what log_likelihood is made of)."""
    x = model.validate(data.x[:5])
    y = model_labels(model, data.y[:5], 5)
    if model.density == "lower_bound":
        return log_importance_weights(model, x, y, 2)
    if model.density == "implicit":
        return model.sample(2)
    return model.log_prob(x, y) if model.conditional else model.log_prob(x)


def _briefly_fitted(name, data, kwargs, **placement):
    """The model fitted for one epoch (NUTS: 20 draws after 20 warm-up steps) on ``placement``."""
    model = build_model(name, data, **kwargs)
    options = {"strategy_options": {"num_samples": 20, "warmup_steps": 20, "num_chains": 1}}
    options = options if model.fit_strategy == "nuts" else {"epochs": 1}
    pg.fit(model, data, batch_size=16, progress=False, **placement, **options)
    return model


@pytest.mark.parametrize("name,kwargs", CASES, ids=IDS)
def test_a_float64_fit_stays_float64(name, kwargs):
    data = _data(name)
    model = _briefly_fitted(name, data, kwargs, dtype="float64")
    wrong = {k: v.dtype for k, v in _floating(model).items() if v.dtype != torch.float64}
    assert wrong == {}
    with torch.no_grad():
        out = _output(model, data)
    assert out.dtype == torch.float64 if out.is_floating_point() else True


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU")
@pytest.mark.parametrize("name,kwargs", CASES, ids=IDS)
def test_every_family_fits_scores_and_samples_on_cuda(name, kwargs):
    data = _data(name)
    model = _briefly_fitted(name, data, kwargs, device="cuda")
    assert {v.device.type for v in _floating(model).values()} == {"cuda"}
    with torch.no_grad():
        assert _output(model, data).device.type == "cuda"
        draws = model.sample(3, data.y[:3]) if model.conditional else model.sample(3)
    assert draws.device.type == "cuda"
    if model.density != "implicit":
        score = pg.log_likelihood(model, data, num_samples=2, ais_steps=5)
        assert math.isfinite(score.nats)


@pytest.mark.parametrize("device", DEVICES)
def test_fit_and_score_on_a_device(device, tmp_path):
    data = _data("vae")
    model = build_model("vae", data, latent_dim=2, hidden_features=(16,))
    pg.fit(model, data, device=device, dtype="float64", epochs=1, batch_size=16, progress=False)
    assert {p.device.type for p in model.parameters()} == {device}
    score = pg.log_likelihood(model, data, num_samples=4)
    assert score.num_examples == len(data) and score.kind == "lower_bound"
    path = pg.save(model, tmp_path / "vae.safetensors")
    for target in ("cpu", device):
        loaded = pg.load(path, map_location=target)
        assert {(p.device.type, p.dtype) for p in loaded.parameters()} == {(target, torch.float64)}
        for k, v in loaded.state_dict().items():
            torch.testing.assert_close(v.cpu(), model.state_dict()[k].cpu(), rtol=0, atol=0)


@pytest.mark.parametrize("device", DEVICES)
def test_log_likelihood_moves_the_model_to_its_device_and_dtype(device):
    """log_likelihood(device=, dtype=) scores there: float64 agrees with float32 to float32
    round-off and is not identical to it; the model stays where it was moved."""
    data = _data("independent-bernoulli")
    model = build_model("independent-bernoulli", data)
    pg.fit(model, data, strategy="closed_form", progress=False)
    single = pg.log_likelihood(model, data)
    double = pg.log_likelihood(model, data, device=device, dtype="float64")
    assert {(p.device.type, p.dtype) for p in _floating(model).values()} == {(device, torch.float64)}
    assert double.nats == pytest.approx(single.nats, rel=1e-6) and double.nats != single.nats
    with pytest.raises(ValueError, match="unknown dtype 'bfloat16'"):
        pg.log_likelihood(model, data, dtype="bfloat16")
    with pytest.raises(ValueError, match="unknown device 'gpu'"):
        pg.log_likelihood(model, data, device="gpu")


@pytest.mark.parametrize("device", DEVICES)
def test_closed_form_on_a_device_matches_cpu(device):
    data = _data("independent-gaussian")
    here = build_model("independent-gaussian", data)
    there = build_model("independent-gaussian", data)
    pg.fit(here, data, strategy="closed_form", dtype="float64", progress=False)
    pg.fit(there, data, strategy="closed_form", device=device, dtype="float64", progress=False)
    for k, v in there.estimate().items():
        assert v.device.type == device
        torch.testing.assert_close(v.cpu(), here.estimate()[k], rtol=1e-12, atol=1e-12)


def test_bf16_autocast_trains_close_to_full_precision():
    data = _data("vae", n=200)
    losses = {}
    for precision in (None, "bf16"):
        torch.manual_seed(0)
        model = build_model("vae", data, latent_dim=2, hidden_features=(32,))
        result = pg.fit(model, data, precision=precision, epochs=3, batch_size=50, lr=0.01, progress=False)
        assert {p.dtype for p in model.parameters()} == {torch.float32}  # master weights stay float32
        losses[precision] = result.train_loss
    assert all(torch.isfinite(torch.tensor(losses["bf16"])))
    assert losses["bf16"][-1] < losses["bf16"][0]  # it trains
    # bfloat16 keeps 8 bits of mantissa: the per-example loss agrees to about 1%
    assert losses["bf16"][-1] == pytest.approx(losses[None][-1], rel=0.02)


def test_bad_dtype_and_precision_are_refused():
    data = _data("vae")
    model = build_model("vae", data)
    with pytest.raises(ValueError, match="unknown dtype 'float16'"):
        pg.fit(model, data, dtype="float16", progress=False)
    with pytest.raises(ValueError, match="precision must be one of"):
        pg.fit(model, data, precision="fp8", progress=False)


def test_bf16_autocast_reaches_the_gan_players():
    data = _data("gan", n=64)
    model = build_model("gan", data, hidden_features=(16,))
    seen = set()
    hooks = [m.register_forward_hook(lambda m, i, out: seen.add(out.dtype)) for m in model.modules()
             if isinstance(m, torch.nn.Linear)]  # fmt: skip
    result = pg.fit(model, data, precision="bf16", epochs=2, batch_size=32, progress=False)
    for hook in hooks:
        hook.remove()
    assert seen == {torch.bfloat16}  # both players' layers ran in bfloat16
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    assert all(math.isfinite(v) for v in result.train_loss)


@pytest.mark.parametrize("name,strategy", [("independent-gaussian", "closed_form"), ("rbm", None)])
def test_bf16_on_a_strategy_without_networks_is_named(name, strategy):
    data = _data(name)
    model = build_model(name, data)
    with pytest.warns(UserWarning, match=r"precision='bf16' applies to the \['adversarial', 'svi'\] strategies"):
        pg.fit(model, data, strategy=strategy, precision="bf16", epochs=1, progress=False)
    assert model.fitted
