"""GANs on discrete data (the bundled digits, 17 levels, and binarized digits): samples on the
levels, the level <-> generator-range map against its closed form, a short fit moving the samples
towards held-out data, support checks, checkpoints, likelihood-free metrics and the CLI path."""

import math

import pytest
import torch
import torch.nn.functional as F

import probgen as pg
from probgen.cli import main
from probgen.inference.sample_metrics import mmd_test, sample_metrics
from probgen.models import GAN


@pytest.fixture(scope="module")
def digits():
    return pg.load_dataset("digits")


def _on_levels(x, k):
    return bool((x == x.round()).all()) and x.min().item() >= 0 and x.max().item() <= k - 1


@pytest.mark.parametrize("architecture", ["mlp", "dcgan"])
def test_samples_lie_on_the_levels(digits, architecture):
    binary = pg.load_dataset("digits-binary")
    torch.manual_seed(0)
    gan = GAN.from_dataset(digits, architecture=architecture, hidden_channels=4, hidden_features=(16,))
    with torch.no_grad():  # a wide generator output: tanh reaches both ends, rounding must still land on levels
        for p in gan.generator.parameters():
            p.mul_(5)
    draws = gan.sample(500)
    assert draws.shape == (500, 64) and draws.dtype == pg.models.MADE.from_dataset(digits).sample(2).dtype
    assert _on_levels(draws, 17) and {0.0, 16.0} <= set(draws.unique().tolist())
    gan.validate(draws)  # the model's own support check agrees
    torch.manual_seed(0)
    bits = GAN.from_dataset(binary, architecture=architecture, hidden_channels=4, hidden_features=(16,)).sample(300)
    assert bits.shape == (300, 64) and set(bits.unique().tolist()) == {0.0, 1.0}
    traced = pyro_trace(gan, digits.x[:5])  # the Pyro program's x is on the levels too
    assert traced.shape == (5, 64) and _on_levels(traced, 17)


def pyro_trace(gan, x):
    import pyro.poutine as poutine

    return poutine.trace(gan.model).get_trace(x).nodes["x"]["value"]


@pytest.mark.parametrize("k", [2, 17])
def test_level_map_round_trips_and_matches_its_closed_form(k, float64):
    gan = GAN(4, "binary" if k == 2 else f"discrete({k})")
    levels = torch.arange(k, dtype=torch.float64).repeat(4, 1).T  # [k, 4]
    g = gan.to_generator_range(levels)
    want = ((2 * levels + 1) / k - 1).reshape(k, 4)  # the centre of bin j of k equal bins of [-1, 1]
    assert torch.allclose(g, want, rtol=0, atol=1e-15) and g.abs().max() < 1
    assert torch.equal(gan.from_generator_range(g), levels)
    # every point of bin j (not only its centre) goes back to j, so any tanh output lands on a level
    width = 2 / k
    for offset in (-0.49 * width, 0.49 * width):
        assert torch.equal(gan.from_generator_range((g + offset).clamp(-1 + 1e-12, 1 - 1e-12)), levels)
    gan.init_from_data(levels * 0 + 1)  # data statistics never move the fixed map
    assert torch.equal(gan.to_generator_range(levels), g)


def test_real_data_keep_their_standardization(float64):
    x = torch.randn(50, 3) * torch.tensor([1.0, 5.0, 0.1]) + 2
    gan = GAN(3, "real")
    gan.init_from_data(x)
    g = gan.to_generator_range(x)
    assert torch.allclose(g, (x - x.mean(0)) / x.std(0), atol=1e-12)
    assert torch.allclose(gan.from_generator_range(g), x, atol=1e-12)


@pytest.mark.parametrize("dequantize", [False, True])
def test_discriminator_sees_bin_centres_or_dequantized_levels(dequantize, float64):
    """A linear critic w.x + b, so the loss has a closed form in the scaled real data."""
    gan = GAN(3, "discrete(5)", hidden_features=(8,), latent_dim=2, dequantize=dequantize).double()
    gan.discriminator = torch.nn.Linear(3, 1).double()
    w, b = torch.tensor([0.6, -1.2, 0.4]), 0.3
    with torch.no_grad():
        gan.discriminator.weight.copy_(w[None])
        gan.discriminator.bias.fill_(b)
    x = torch.randint(0, 5, (64, 3)).double()
    torch.manual_seed(1)
    loss = gan.discriminator_loss(x)
    torch.manual_seed(1)
    noise = torch.rand(64, 3) - 0.5 if dequantize else 0
    real = 2 * (x + noise + 0.5) / 5 - 1  # level j -> bin j of [-1, 1]; with noise uniform over the bin
    fake = torch.tanh(gan.generator(torch.randn(64, 2))).detach()
    want = F.softplus(-(real @ w + b)).mean() + F.softplus(fake @ w + b).mean()
    assert torch.allclose(loss, want, rtol=1e-12)
    assert real.min() >= -1 and real.max() <= 1


def test_a_short_fit_brings_the_samples_closer_to_held_out_digits(digits):
    """A tiny DCGAN (8 channels), 3 epochs of batch 50: MMD² to the test digits falls from about
    0.52 (untrained) to about 0.16."""
    test = pg.load_dataset("digits", "test")
    torch.manual_seed(0)
    gan = GAN.from_dataset(digits, hidden_channels=8)
    torch.manual_seed(1)
    before = mmd_test(test.x, gan.sample(300), num_permutations=1).mmd2
    pg.fit(gan, digits, epochs=3, batch_size=50, lr=2e-3, progress=False)
    torch.manual_seed(1)
    after = mmd_test(test.x, gan.sample(300), num_permutations=1).mmd2
    assert after < 0.5 * before, (before, after)


def test_values_off_the_levels_are_refused(digits):
    gan = GAN.from_dataset(digits, hidden_channels=4)
    for bad in (0.5, 17.0, -1.0):
        x = digits.x[:3].clone()
        x[1, 5] = bad
        with pytest.raises(ValueError, match=rf"value {bad!r} at index \[1, 5\], outside the support 'discrete\(17\)'"):
            gan.validate(x)
    with pytest.raises(ValueError, match="outside the support 'binary'"):
        GAN(64, "binary").validate(torch.full((2, 64), 2.0))
    with pytest.raises(ValueError, match="outside the support"):
        pg.fit(gan, x, epochs=1, progress=False)


def test_from_dataset_picks_the_architecture(digits):
    gan = GAN.from_dataset(digits)
    assert gan.architecture == "dcgan" and gan.image_shape == (1, 8, 8) and gan.event_shape == (64,)
    assert GAN.from_dataset(digits, architecture="mlp").architecture == "mlp"
    assert GAN.from_dataset(pg.load_dataset("8gaussians", n=10)).architecture == "mlp"  # not images
    images = pg.data.Dataset(digits.x[:10].reshape(-1, 1, 8, 8), None, digits.support, name="images")
    assert GAN.from_dataset(images).architecture == "dcgan"
    odd = pg.data.Dataset(torch.zeros(10, 36), None, "binary", name="6x6", image_shape=(6, 6))
    assert GAN.from_dataset(odd).architecture == "mlp"  # 6 is not a multiple of 4


def test_checkpoint_keeps_the_support_and_the_samples(digits, tmp_path):
    gan = GAN.from_dataset(digits, hidden_channels=4, latent_dim=4)
    pg.fit(gan, digits, epochs=1, batch_size=100, progress=False)
    loaded = pg.load(pg.save(gan, tmp_path / "gan.safetensors"))
    assert loaded.support == "discrete(17)" and loaded.config == gan.config and loaded.image_shape == (1, 8, 8)
    torch.manual_seed(3)
    want = gan.sample(20)
    torch.manual_seed(3)
    assert torch.equal(loaded.sample(20), want) and _on_levels(want, 17)


@pytest.mark.parametrize("name", ["digits", "digits-binary"])
def test_likelihood_free_metrics_are_finite(name):
    train, val, test = (pg.load_dataset(name, split) for split in ("train", "val", "test"))
    torch.manual_seed(0)
    gan = GAN.from_dataset(train, hidden_channels=4)
    pg.fit(gan, train, epochs=1, batch_size=100, progress=False)
    metrics = sample_metrics(gan, test.x, val=val.x, num_samples=200, classifier="logistic", seed=0)
    for key in ("mmd2", "mmd_p_value", "c2st_accuracy", "c2st_p_value", "precision", "recall", "parzen_nats"):
        assert math.isfinite(metrics[key]), (key, metrics)
    (row,) = pg.compare({"gan": gan}, test, val=val, metric_kwargs={"num_samples": 200, "classifier": "logistic"}).rows
    assert row["kind"] == "implicit" and row["nll_nats"] is None
    assert all(math.isfinite(row[k]) for k in ("mmd2", "c2st_accuracy", "precision", "recall"))


def test_cli_fits_and_samples_a_gan_on_digits(tmp_path, capsys):
    out = tmp_path / "g"
    args = ["fit", "gan", "--data", "digits", "--out", str(out), "--epochs", "1", "--quiet"]
    assert main([*args, "--model-args", '{"hidden_channels": 4}']) == 0
    assert main(["sample", str(out), "-n", "16", "--out", str(out / "s.npy")]) == 0
    import numpy as np

    draws = torch.from_numpy(np.load(out / "s.npy"))
    assert draws.shape == (16, 64) and _on_levels(draws, 17)
    assert main(["sample", str(out), "-n", "16", "--out", str(out / "s.png")]) == 0 and (out / "s.png").stat().st_size
