"""GAN: the three losses against closed forms with a linear discriminator, mode coverage on
eight Gaussians after a short fit, the two-sample tests separating a wrong generator from
held-out data, and the adversarial strategy's options and NaN guard."""

import math

import pytest
import torch
import torch.nn.functional as F

import probgen as pg
from probgen.inference import NonFiniteLossError
from probgen.inference.sample_metrics import mmd_test, mode_coverage, precision_recall, sample_metrics
from probgen.models import GAN

EIGHT = 2 * torch.stack([torch.cos(torch.arange(8) * math.pi / 4), torch.sin(torch.arange(8) * math.pi / 4)], -1)


def _linear_critic_gan(loss):
    """hidden_features=(): the discriminator is one linear map, w.x + b, on standardized x."""
    gan = GAN(2, "real", hidden_features=(), latent_dim=2, loss=loss).double()
    with torch.no_grad():
        gan.discriminator[0].weight.copy_(torch.tensor([[0.6, -1.2]]))
        gan.discriminator[0].bias.fill_(0.3)
    return gan


@pytest.mark.parametrize("loss", ["minimax", "non_saturating", "wasserstein_gp"])
def test_losses_equal_their_closed_forms_with_a_linear_critic(loss, float64):
    gan = _linear_critic_gan(loss)
    x = torch.randn(64, 2)
    w, b = torch.tensor([0.6, -1.2]), 0.3
    torch.manual_seed(1)
    d_loss = gan.discriminator_loss(x)
    torch.manual_seed(1)
    fake = gan.generator(torch.randn(64, 2)).detach()
    real_out, fake_out = x @ w + b, fake @ w + b
    if loss == "wasserstein_gp":  # the gradient of a linear critic is w everywhere
        want = fake_out.mean() - real_out.mean() + 10 * (w.norm() - 1) ** 2
    else:
        want = F.softplus(-real_out).mean() + F.softplus(fake_out).mean()
    assert torch.allclose(d_loss, want, rtol=1e-12)
    torch.manual_seed(2)
    g_loss = gan.generator_loss(64)
    torch.manual_seed(2)
    out = gan.generator(torch.randn(64, 2)) @ w + b
    want = {"minimax": -F.softplus(out), "non_saturating": F.softplus(-out), "wasserstein_gp": -out}[loss].mean()
    assert torch.allclose(g_loss, want, rtol=1e-12)


def test_covers_all_eight_modes_after_a_short_fit():
    """Seed 0, 1000 points, 20 epochs of 20 steps (batch 50), lr 3e-3, non-saturating loss."""
    data = pg.load_dataset("8gaussians", n=1000)
    torch.manual_seed(0)
    gan = GAN(2, "real", hidden_features=(64, 64), latent_dim=2)
    result = pg.fit(gan, data, epochs=20, batch_size=50, lr=3e-3, progress=False)
    assert {"discriminator_loss", "generator_loss"} <= set(result.history[-1])
    torch.manual_seed(0)
    coverage = mode_coverage(gan.sample(2000), EIGHT, radius=0.3, min_count=20)  # 3 sd of each mode
    assert coverage["modes_hit"] == 8, coverage


def test_two_sample_metrics_separate_a_wrong_generator_but_not_held_out_data():
    test, val = pg.load_dataset("8gaussians", "test", n=400), pg.load_dataset("8gaussians", "val", n=400)
    torch.manual_seed(0)
    untrained = GAN(2, "real", hidden_features=(16,))
    untrained.init_from_data(test.x)  # right mean and scale, wrong shape
    wrong = sample_metrics(untrained, test, val=val, num_samples=400)
    assert wrong["mmd_p_value"] < 0.01 and wrong["c2st_p_value"] < 0.01 and wrong["precision"] < 0.5
    assert "weak" in wrong["parzen_kind"]
    held_out = mmd_test(test.x, val.x)
    assert held_out.p_value > 0.05
    assert min(precision_recall(test.x, val.x)) > 0.9


def test_strategy_options_and_nan_guard_name_the_player():
    data = pg.load_dataset("8gaussians", n=100)
    gan = GAN(2, "real", hidden_features=(8,))
    with pytest.raises(ValueError, match=r"unknown adversarial option\(s\) \['k'\]"):
        pg.fit(gan, data, epochs=1, progress=False, strategy_options={"k": 1})
    with torch.no_grad():
        gan.generator[0].weight.fill_(math.nan)
    with pytest.raises(NonFiniteLossError, match="discriminator loss is nan.*'generator.0.weight' is not finite"):
        pg.fit(gan, data, epochs=1, progress=False)


def test_discriminator_steps_leave_the_generator_alone():
    data = pg.load_dataset("8gaussians", n=100)
    gan = GAN(2, "real", hidden_features=(8,))
    before = {k: v.detach().clone() for k, v in gan.named_parameters()}
    pg.fit(gan, data, epochs=1, batch_size=100, progress=False, strategy_options={"generator_lr": 1e-12, "d_steps": 3})
    moved = {k for k, v in gan.named_parameters() if (v - before[k]).abs().max() > 1e-9}
    assert moved == {k for k in before if k.startswith("discriminator")}


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="unknown GAN loss 'hinge'"):
        GAN(2, "real", loss="hinge")
    with pytest.raises(ValueError, match="unknown support 'counts'"):
        GAN(2, "counts")
    with pytest.raises(ValueError, match=r"image_shape must be \(C, H, W\) with C\*H\*W = 64 values.*got \(1, 4, 8\)"):
        GAN(64, "binary", architecture="dcgan", image_shape=(1, 4, 8))
    with pytest.raises(ValueError, match="image_shape is for architecture='dcgan'"):
        GAN(64, "binary", image_shape=(1, 8, 8))
    with pytest.raises(TypeError, match="dequantize must be True or False, got 'yes'"):
        GAN(64, "binary", dequantize="yes")


def _digit_images(n=300):
    digits = pg.load_dataset("digits")
    return pg.data.Dataset(digits.x[:n].reshape(-1, 1, 8, 8), None, "real", name="digit images")


def test_dcgan_networks_have_the_image_shapes():
    torch.manual_seed(0)
    gan = GAN((1, 8, 8), "real", architecture="dcgan", latent_dim=5, hidden_channels=4)
    z = torch.randn(7, 5)
    assert gan.generator.project(z).shape == (7, 8 * 2 * 2)  # 2c maps of H/4 x W/4
    assert gan.generator(z).shape == (7, 64)  # flat 1 x 8 x 8 images
    assert gan.discriminator(torch.randn(7, 64)).shape == (7, 1)
    assert gan.sample(7).shape == (7, 1, 8, 8)
    convs = [m for m in gan.generator.modules() if isinstance(m, torch.nn.ConvTranspose2d)]
    assert [m.out_channels for m in convs] == [4, 1]
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in gan.discriminator.body[:2])  # none on layer 1
    critic = GAN((1, 8, 8), "real", architecture="dcgan", loss="wasserstein_gp")
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in critic.discriminator.modules())


def test_dcgan_sampling_uses_running_statistics():
    """Eval-mode batch norm: a draw does not depend on the rest of its batch; training mode is kept."""
    gan = GAN((1, 8, 8), "real", architecture="dcgan", hidden_channels=4)
    torch.manual_seed(0)
    eight = gan.sample(8)
    torch.manual_seed(0)
    four = gan.sample(4)
    assert torch.allclose(eight[:4], four, atol=1e-6) and gan.generator.training
    with torch.no_grad():  # in training mode the batch statistics would couple the draws
        z = torch.randn(8, gan.latent_dim)
        assert not torch.allclose(gan.generator(z)[:4], gan.generator(z[:4]), atol=1e-3)


def test_dcgan_trains_on_digit_images():
    """300 digits as 1 x 8 x 8 real images, 2 epochs of batch 50: every parameter moves, both
    losses stay finite, and the data are standardized by one mean and scale over all pixels."""
    images = _digit_images()
    torch.manual_seed(0)
    gan = GAN.from_dataset(images, architecture="dcgan", hidden_channels=8, latent_dim=8)
    before = {k: v.detach().clone() for k, v in gan.named_parameters()}
    result = pg.fit(gan, images, epochs=2, batch_size=50, lr=2e-4, progress=False)
    for h in result.history:
        assert math.isfinite(h["discriminator_loss"]) and math.isfinite(h["generator_loss"])
    for key, value in gan.named_parameters():
        assert not torch.equal(value, before[key]), f"{key} did not train"
    assert torch.allclose(gan.data_loc, images.x.mean().expand(64)) and gan.data_scale.unique().numel() == 1
    draws = gan.sample(10)
    assert draws.shape == (10, 1, 8, 8) and torch.isfinite(draws).all()


def test_dcgan_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="unknown GAN architecture 'resnet'; expected one of"):
        GAN((1, 8, 8), "real", architecture="resnet")
    with pytest.raises(ValueError, match=r"needs an image event_shape \(C, H, W\).*got \(64,\)"):
        GAN(64, "real", architecture="dcgan")
    with pytest.raises(ValueError, match=r"multiples of 4, got \(1, 6, 8\)"):
        GAN((1, 6, 8), "real", architecture="dcgan")
    with pytest.raises(ValueError, match="channels must be a positive integer, got 0"):
        GAN((1, 8, 8), "real", architecture="dcgan", hidden_channels=0)
