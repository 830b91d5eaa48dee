import math
import re

import pyro
import pytest
import torch

import probgen as pg
from probgen.inference import NonFiniteLossError, make_objective
from probgen.models import IndependentBernoulli, IndependentGaussian
from probgen.models.base import data_plate, scaled_to


def test_minibatch_loss_is_scaled_to_the_full_data(float64):
    x = torch.bernoulli(torch.full((100, 3), 0.3))
    model = IndependentBernoulli(3, method="mle").fit_closed_form(x)
    loss = make_objective("elbo")
    full = loss(model, x, None).item()
    assert full == pytest.approx(-model.log_prob(x).sum().item())
    with scaled_to(model, 100):
        parts = [loss(model, x[i : i + 20], None).item() for i in range(0, 100, 20)]
    # each minibatch of 20 stands for all 100 examples: N/B times its own NLL
    for i, part in enumerate(parts):
        assert part == pytest.approx(-5 * model.log_prob(x[20 * i : 20 * i + 20]).sum().item())
    assert sum(parts) / 5 == pytest.approx(full)


def test_scaling_leaves_the_prior_term_unscaled(float64):
    x = torch.bernoulli(torch.full((40, 2), 0.5))
    model = IndependentBernoulli(2, method="map").fit_closed_form(x)
    loss = make_objective("elbo")
    with scaled_to(model, 400):
        scaled = loss(model, x, None).item()
    unscaled = loss(model, x, None).item()
    nll = -model.log_prob(x).sum().item()
    # MAP loss = -log prior(theta) + scale * NLL: the difference is exactly 9 * NLL
    assert scaled - unscaled == pytest.approx(9 * nll)


def test_history_early_stopping_and_best_epoch():
    train, val = pg.load_dataset("digits-binary"), pg.load_dataset("digits-binary", "val")
    model = IndependentBernoulli(64)
    result = pg.fit(model, train, val_data=val, epochs=200, lr=0.05, patience=5, progress=False)
    assert result.stopped_early and len(result.history) < 200
    assert result.best_epoch == min(range(len(result.val_loss)), key=result.val_loss.__getitem__)
    # the model is left at its best epoch: its held-out NLL is the best validation loss
    assert -model.log_prob(val.x).mean().item() == pytest.approx(result.best_loss, rel=1e-5)


def test_same_seed_same_result():
    data = pg.load_dataset("digits-binary")
    a, b = IndependentBernoulli(64), IndependentBernoulli(64)
    pg.fit(a, data, epochs=3, seed=7, progress=False)
    pg.fit(b, data, epochs=3, seed=7, progress=False)
    assert torch.equal(a.estimate()["a"], b.estimate()["a"])


def test_nan_loss_names_the_site_and_keeps_the_last_good_checkpoint(tmp_path):
    x = torch.randn(64, 2)
    model = IndependentGaussian(2, method="mle")
    ckpt = tmp_path / "best.safetensors"
    pg.fit(model, x, epochs=3, checkpoint=ckpt, progress=False)
    good = ckpt.read_bytes()

    poisoned = torch.tensor([float("nan"), 1.0])

    class Poison(IndependentGaussian):
        def likelihood(self, params):  # a likelihood that goes NaN in epoch 2
            if self._calls >= 4:
                params = {**params, "mu": params["mu"] + poisoned}
            self._calls += 1
            return super().likelihood(params)

    bad = Poison(2, method="mle")
    bad._calls = 0
    bad.load_state_dict(model.state_dict())
    with pytest.raises(
        NonFiniteLossError, match=r"sample site 'x' in the model has log_prob nan.*last good checkpoint"
    ):
        pg.fit(bad, x, epochs=6, batch_size=32, checkpoint=ckpt, resume=True, progress=False)
    # without validation data the checkpoint follows the last epoch: it holds epoch 3, the last
    # one that finished before the NaN in epoch 4, and the model is back at that state
    kept = pg.load_checkpoint(ckpt)
    assert ckpt.read_bytes() != good and kept.extra["epoch"] == 3 and len(kept.extra["history"]) == 4
    assert torch.isfinite(bad.estimate()["mu"]).all() and torch.equal(bad.estimate()["mu"], kept.model.estimate()["mu"])


def test_nan_loss_before_any_checkpoint_says_there_is_none(tmp_path):
    """A loss that fails in the first epoch leaves no checkpoint: the message must not name one."""
    x = torch.randn(64, 2)
    ckpt = tmp_path / "model.safetensors"

    class Poison(IndependentGaussian):
        def likelihood(self, params):
            return super().likelihood({**params, "mu": params["mu"] * float("nan")})

    with pytest.raises(NonFiniteLossError) as caught:
        pg.fit(Poison(2, method="mle"), x, epochs=2, batch_size=32, checkpoint=ckpt, progress=False)
    assert "no checkpoint was written yet" in str(caught.value) and "last good checkpoint" not in str(caught.value)
    assert not ckpt.exists()


def test_non_finite_parameter_is_named():
    model = IndependentGaussian(2, method="mle")
    with torch.no_grad():
        model.posterior.assign({"mu": torch.tensor([0.0, float("inf")])})
    with pytest.raises(NonFiniteLossError, match="parameter 'posterior.mu"):
        pg.fit(model, torch.randn(10, 2), epochs=1, init_from_data=False, progress=False)


def test_resume_continues_from_the_checkpoint(tmp_path):
    data = pg.load_dataset("digits-binary")
    ckpt = tmp_path / "m.safetensors"
    straight = IndependentBernoulli(64)
    pg.fit(straight, data, epochs=4, seed=1, checkpoint=tmp_path / "s.safetensors", progress=False)
    first = IndependentBernoulli(64)
    pg.fit(first, data, epochs=2, seed=1, checkpoint=ckpt, progress=False)
    again = IndependentBernoulli(64)
    result = pg.fit(again, data, epochs=4, seed=1, checkpoint=ckpt, resume=True, progress=False)
    assert [h["epoch"] for h in result.history] == [0, 1, 2, 3]
    a, b, c = (m.estimate()["a"] for m in (again, straight, first))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert pg.load_checkpoint(ckpt).extra["epoch"] == 3


def test_interrupted_then_resumed_fit_equals_the_uninterrupted_one(tmp_path):
    """A stochastic objective, validation, a decaying learning rate and a model whose last epoch
    is not its best: the resumed fit needs the last weights, the optimizer and the generators."""
    from probgen.models import VAE

    data = pg.load_dataset("digits-binary")
    train, val = data.x[:300], data.x[300:400]
    options = dict(val_data=val, batch_size=50, lr=0.05, lr_decay=0.7, seed=3, progress=False)

    def vae():
        pyro.set_rng_seed(0)
        return VAE(64, "binary", latent_dim=2, hidden_features=(16,))

    straight = vae()
    whole = pg.fit(straight, train, epochs=6, checkpoint=tmp_path / "s.safetensors", **options)
    cut = vae()
    pg.fit(cut, train, epochs=3, checkpoint=tmp_path / "c.safetensors", **options)
    resumed = vae()
    torch.manual_seed(456)  # the interruption: other work moved torch's generator
    rest = pg.fit(resumed, train, epochs=6, checkpoint=tmp_path / "c.safetensors", resume=True, **options)
    assert [h["val_loss"] for h in rest.history] == [h["val_loss"] for h in whole.history]
    assert rest.best_epoch == whole.best_epoch
    for (name, a), b in zip(resumed.state_dict().items(), straight.state_dict().values(), strict=True):
        assert torch.equal(a, b), name


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"epochs": 0}, "epochs must be a positive integer"),
        ({"batch_size": -1}, "batch_size"),
        ({"lr": 0}, "lr must be"),
        ({"optimizer": "lbfgs"}, "unknown optimizer"),
        ({"objective": "kl"}, "unknown objective"),
        ({"lr_decay": 1.5}, "lr_decay"),
        ({"device": "gpu0"}, "unknown device 'gpu0'"),
    ],
)
def test_bad_fit_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        pg.fit(IndependentBernoulli(4), torch.zeros(8, 4), progress=False, **kwargs)


def test_bad_data_types():
    with pytest.raises(TypeError, match="got str"):
        pg.fit(IndependentBernoulli(4), "digits", progress=False)
    with pytest.raises(ValueError, match="training data is empty"):
        pg.fit(IndependentBernoulli(4), torch.zeros(0, 4), progress=False)
    with pytest.raises(ValueError, match="3 examples but 2 labels"):
        pg.fit(IndependentBernoulli(4), (torch.zeros(3, 4), torch.zeros(2)), progress=False)


def test_pyro_svi_gives_the_same_first_step(float64):
    """fit's step equals pyro.infer.SVI's with the same ELBO and Adam."""
    x = torch.bernoulli(torch.full((50, 3), 0.3))
    a, b = IndependentBernoulli(3, method="mle"), IndependentBernoulli(3, method="mle")
    pg.fit(a, x, epochs=1, batch_size=50, lr=0.1, seed=0, init_from_data=False, progress=False)
    svi = pyro.infer.SVI(b.model, b.guide, pyro.optim.Adam({"lr": 0.1}), pyro.infer.Trace_ELBO())
    svi.step(x)
    assert torch.allclose(a.estimate()["theta"], b.estimate()["theta"])
    assert not math.isclose(a.estimate()["theta"][0].item(), 0.5)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without CUDA")
def test_cuda_without_a_gpu_is_a_clear_error():
    with pytest.raises(ValueError, match="no CUDA device"):
        pg.fit(IndependentBernoulli(4), torch.zeros(8, 4), device="cuda", progress=False)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_fit_on_cuda_matches_cpu():
    data = pg.load_dataset("digits-binary")
    cpu, gpu = IndependentBernoulli(64, method="mle"), IndependentBernoulli(64, method="mle")
    pg.fit(cpu, data, epochs=3, progress=False)
    pg.fit(gpu, data, epochs=3, device="cuda", progress=False)
    assert torch.allclose(cpu.estimate()["theta"], gpu.estimate()["theta"].cpu(), atol=1e-5)


def test_the_one_pass_elbo_falls_back_to_pyros_draws_for_a_discrete_latent(float64):
    """The first call finds the guide's Bernoulli latent has no rsample and hands over to
    Trace_ELBO from the random state it started at: the loss equals Pyro's on the same seed."""

    class Switch(IndependentGaussian):
        def model(self, x, y=None):
            one = torch.tensor(1.0, dtype=torch.float64)
            shift = pyro.sample("shift", pyro.distributions.Normal(0.0 * one, one))
            on = pyro.sample("on", pyro.distributions.Bernoulli(0.3 * one))
            with data_plate(self, x):
                pyro.sample("x", pyro.distributions.Normal(on * 2.0 + shift, one).expand([2]).to_event(1), obs=x)

        def guide(self, x, y=None):
            one = torch.tensor(1.0, dtype=torch.float64)
            pyro.sample("shift", pyro.distributions.Normal(0.5 * one, one))
            pyro.sample("on", pyro.distributions.Bernoulli(0.6 * one))

    model, x = Switch(2, method="mle").double(), torch.randn(5, 2, dtype=torch.float64)
    ours, reference = make_objective("elbo"), pyro.infer.Trace_ELBO()
    for seed in range(4):  # the first call (the check) and the later ones (fallback only)
        torch.manual_seed(seed)
        loss = ours(model, x, None)
        torch.manual_seed(seed)
        assert loss.item() == pytest.approx(reference.differentiable_loss(model.model, model.guide, x, None).item())


def test_a_checkpoint_written_during_a_fit_holds_a_fitted_model(tmp_path):
    """A fit cut short (a time limit, a kill) leaves its per-epoch checkpoint: the weights in it
    were trained, so the loaded model scores without the never-fitted warning."""
    import warnings

    x = pg.load_dataset("digits-binary").x[:200]
    ckpt = tmp_path / "c.safetensors"
    pg.fit(IndependentBernoulli(64, method="map"), x, epochs=1, checkpoint=ckpt, progress=False)
    model = pg.load_checkpoint(ckpt).model
    assert bool(model.fitted)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pg.log_likelihood(model, x)


def test_validation_scored_by_its_own_objective():
    """``val_objective="iwae"`` scores the validation data by the IWAE-K bound (the number
    log_likelihood gives), not by the one-sample ELBO the model trains on."""
    train, val = pg.load_dataset("digits-binary").x[:300], pg.load_dataset("digits-binary", "val").x[:200]
    torch.manual_seed(0)
    model = pg.models.VAE(64, "binary", latent_dim=2, hidden_features=(32,))
    options = {"epochs": 4, "batch_size": 100, "lr": 1e-2, "progress": False}
    result = pg.fit(model, train, val_data=val, val_objective="iwae", val_num_samples=50, **options)
    best = result.history[result.best_epoch]["val_loss"]
    assert best == result.best_loss
    iwae = pg.log_likelihood(model, val, method="iwae", num_samples=50)
    elbo = pg.log_likelihood(model, val, method="elbo", num_samples=50)
    assert abs(best - iwae.nll) < 0.05  # the same bound, a different draw
    assert elbo.nll - best > 0.15  # and not the ELBO, looser by about 0.26 nats here
    with pytest.raises(ValueError, match="val_num_samples"):
        pg.fit(model, train, val_data=val, val_num_samples=0, **options)
    with pytest.raises(ValueError, match="unknown objective 'iwea'"):
        pg.fit(model, train, val_data=val, val_objective="iwea", **options)


def test_training_epochs_run_in_train_mode_validation_and_evaluation_in_eval_mode(tmp_path):
    from probgen.models import VAE

    train, val = pg.load_dataset("digits-binary").x[:200], pg.load_dataset("digits-binary", "val").x[:100]
    vae = VAE(64, "binary", latent_dim=2, hidden_features=(8,))
    seen: list[bool] = []  # the encoder's mode at each call
    vae.encoder.register_forward_pre_hook(lambda module, args: seen.append(module.training))
    vae.eval()  # fit switches it to train mode for its epochs whatever the mode it was given in
    pg.fit(vae, train, val_data=val, epochs=2, batch_size=100, progress=False, checkpoint=tmp_path / "vae.safetensors")
    # the probe pass that collects the parameters, then per epoch: two training steps, one validation batch
    assert seen == [False, True, True, False, True, True, False]
    assert not vae.training  # a fitted model is in eval mode
    assert not pg.load(tmp_path / "vae.safetensors").training  # and so is a loaded one

    vae.train()
    seen.clear()
    pg.log_likelihood(vae, val, method="iwae", num_samples=3)
    assert seen == [False]  # evaluation in eval mode ...
    assert vae.training and vae.encoder.training  # ... and each module's own mode back after it


def test_fit_the_config_checker_and_the_cli_refuse_an_option_in_the_same_words(tmp_path, capsys):
    """One options table (probgen.inference.options) behind pg.fit, [fit] of a run config and argparse."""
    from probgen.cli import main
    from probgen.experiments import ConfigError, validate_config
    from probgen.inference.options import FIT_OPTIONS

    expected = FIT_OPTIONS["lr_decay"].expected
    with pytest.raises(ValueError, match=re.escape(f"lr_decay must be {expected}, got 2")):
        pg.fit(pg.models.IndependentBernoulli(2), torch.ones(4, 2), lr_decay=2, epochs=1, progress=False)
    raw = {"name": "x", "data": {"name": "iris"}, "fit": {"lr_decay": 2}, "models": [{"name": "gaussian-nb"}]}
    with pytest.raises(ConfigError) as caught:
        validate_config(raw)
    assert any(f"fit.lr_decay = 2: expected {expected}" in e for e in caught.value.errors)
    assert main(["fit", "gaussian-nb", "--data", "iris", "--out", str(tmp_path), "--lr-decay", "2"]) == 2
    assert f"expected {expected}, got '2'" in capsys.readouterr().err
