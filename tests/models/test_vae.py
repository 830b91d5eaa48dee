"""VAE family: bounds that must order, a linear-Gaussian VAE with a known marginal, IWAE
gradients against a hand-written loss, decoder likelihoods, bad input."""

import math

import pytest
import torch
import torch.nn.functional as F

import probgen as pg
from probgen.inference import make_objective
from probgen.inference.importance import iwae_bound
from probgen.models import VAE, Autoencoder, ConditionalVAE
from probgen.models.base import scaled_to
from probgen.models.likelihoods import DiscretizedLogistic


@pytest.fixture(scope="module")
def trained_vae():
    torch.manual_seed(0)
    train = pg.load_dataset("digits-binary")
    vae = VAE(64, "binary", latent_dim=4, hidden_features=(64,))
    pg.fit(vae, train, epochs=40, batch_size=100, lr=3e-3, progress=False)
    return vae


def test_bounds_order_on_held_out_data(trained_vae):
    test = pg.load_dataset("digits-binary", "test")
    elbo = pg.log_likelihood(trained_vae, test, method="elbo", num_samples=200)
    iwae = {k: pg.log_likelihood(trained_vae, test, method="iwae", num_samples=k) for k in (1, 10, 100)}
    assert all(r.kind == "lower_bound" for r in (elbo, *iwae.values()))
    # IWAE_1 is a one-sample ELBO: equal in expectation (the 200-sample ELBO is nearly exact)
    mc_error = iwae[1].stderr  # spread over examples bounds the one-sample noise of the mean
    assert abs(iwae[1].nats - elbo.nats) < 3 * mc_error
    assert elbo.nats < iwae[10].nats < iwae[100].nats
    assert iwae[10].nats - elbo.nats > 0.05  # a real gain, not noise


def _linear_gaussian_vae(float_dtype=torch.float64):
    """D=3, L=1: decoder x = w z + b + N(0, sigma^2), encoder a slightly wrong posterior."""
    torch.manual_seed(1)
    vae = VAE(3, "real", latent_dim=1, hidden_features=(), likelihood="gaussian").to(float_dtype)
    w, b = torch.tensor([1.0, -0.5, 2.0], dtype=float_dtype), torch.tensor([0.3, 0.0, -1.0], dtype=float_dtype)
    raw = torch.tensor([0.2, -0.4, 0.1], dtype=float_dtype)
    sigma = F.softplus(raw) + 1e-3
    with torch.no_grad():
        dec = vae.decoder[0]  # Linear(1, 6): [loc(3), raw scale(3)]
        dec.weight.zero_()
        dec.weight[:3, 0] = w
        dec.bias.copy_(torch.cat([b, raw]))
        precision = 1 + (w**2 / sigma**2).sum()
        a = w / sigma**2 / precision
        enc = vae.encoder.head  # Linear(3, 2): [loc, raw scale]
        enc.weight.zero_()
        enc.weight[0] = a
        enc.bias[0] = -(a * b).sum() + 0.4  # shifted mean
        target_sd = 1.6 / precision.sqrt()  # too wide
        enc.bias[1] = torch.log(torch.expm1(target_sd - 1e-4))
    marginal = torch.distributions.MultivariateNormal(b, torch.outer(w, w) + torch.diag(sigma**2))
    return vae, marginal


def test_iwae_approaches_the_exact_marginal_of_a_linear_gaussian_vae():
    vae, marginal = _linear_gaussian_vae()
    x = marginal.sample((200,))
    exact = marginal.log_prob(x).mean().item()
    gaps = {}
    for k in (1, 10, 100, 5000):
        torch.manual_seed(2)
        gaps[k] = exact - pg.log_likelihood(vae, x, method="iwae", num_samples=k).nats
    assert gaps[1] > gaps[10] > gaps[100] > -0.01  # bounds: never above log p beyond MC noise
    assert gaps[1] > 0.1
    assert abs(gaps[5000]) < 0.01  # stated tolerance: 0.01 nats per example


def test_iwae_gradients_match_a_hand_written_loss():
    torch.manual_seed(0)
    data = pg.load_dataset("digits-binary").x[:32].double()
    vae = VAE(64, "binary", latent_dim=3, hidden_features=(16,)).double()
    k = 7
    objective = make_objective("iwae", num_samples=k)
    torch.manual_seed(5)
    with scaled_to(vae, 1000):
        loss = objective(vae, data, None)
    loss.backward()
    ours = {n: p.grad.clone() for n, p in vae.named_parameters()}
    vae.zero_grad()
    torch.manual_seed(5)
    loc, scale = vae.encoder(data)
    q = torch.distributions.Normal(loc, scale)
    z = q.rsample((k,))
    log_lik = torch.distributions.Bernoulli(logits=vae.decoder(z)).log_prob(data).sum(-1)
    prior = torch.distributions.Normal(torch.tensor(0.0, dtype=torch.float64), 1.0)
    log_w = log_lik + prior.log_prob(z).sum(-1) - q.log_prob(z).sum(-1)
    reference = -(torch.logsumexp(log_w, 0) - math.log(k)).sum() * (1000 / 32)
    reference.backward()
    assert loss.item() == pytest.approx(reference.item(), rel=1e-10)
    for name, param in vae.named_parameters():
        assert torch.allclose(ours[name], param.grad, rtol=1e-8, atol=1e-10), name


@pytest.mark.parametrize("objective", ["elbo", "analytic_kl"])
def test_fast_elbo_paths_equal_pyros(objective):
    """The one-pass ELBO equals Trace_ELBO / TraceMeanField_ELBO (same draws, same scale)."""
    import pyro

    data = pg.load_dataset("digits-binary").x[:50]
    vae = VAE(64, "binary", latent_dim=3, hidden_features=(16,))
    reference = pyro.infer.Trace_ELBO() if objective == "elbo" else pyro.infer.TraceMeanField_ELBO()
    fast = make_objective(objective)
    with scaled_to(vae, 500):
        torch.manual_seed(3)
        ours = fast(vae, data, None)
        torch.manual_seed(3)
        theirs = reference.differentiable_loss(vae.model, vae.guide, data)
    assert ours.item() == pytest.approx(theirs.item(), rel=1e-6)


def test_iwae_is_chunked_without_changing_the_bound(trained_vae):
    x = pg.load_dataset("digits-binary", "test").x[:20]
    torch.manual_seed(0)
    one_pass = iwae_bound(trained_vae, x, None, 300, max_particles_per_pass=300)
    torch.manual_seed(0)
    chunked = iwae_bound(trained_vae, x, None, 300, max_particles_per_pass=64)
    assert (one_pass - chunked).abs().max() < 0.05  # different draws, same estimand


@pytest.mark.parametrize("likelihood", ["categorical", "discretized_logistic"])
def test_discrete_decoders_are_normalised(likelihood):
    vae = VAE(4, "discrete(5)", likelihood=likelihood, latent_dim=2, hidden_features=(8,))
    out = torch.randn(3, 4 * vae.likelihood.params_per_dim)
    d = vae.likelihood(out).base_dist
    levels = torch.arange(5.0)[:, None, None].expand(5, 3, 4)
    if likelihood == "categorical":
        levels = levels.long()
    total = d.log_prob(levels).exp().sum(0)
    assert torch.allclose(total, torch.ones(3, 4), atol=1e-5)


def test_discretized_logistic_matches_its_cdf():
    d = DiscretizedLogistic(torch.tensor(3.2), torch.tensor(0.1), 8)
    logistic = torch.distributions.TransformedDistribution(
        torch.distributions.Uniform(0.0, 1.0),
        [
            torch.distributions.transforms.SigmoidTransform().inv,
            torch.distributions.transforms.AffineTransform(3.2, math.exp(0.1)),
        ],
    )
    p3 = logistic.cdf(torch.tensor(3.5)) - logistic.cdf(torch.tensor(2.5))
    assert d.log_prob(torch.tensor(3.0)).exp().item() == pytest.approx(p3.item(), rel=1e-5)
    assert d.log_prob(torch.tensor(0.0)).exp().item() == pytest.approx(logistic.cdf(torch.tensor(0.5)).item(), rel=1e-5)


@pytest.mark.parametrize("architecture", ["mlp", "conv"])
def test_vae_api(architecture):
    digits = pg.load_dataset("digits")  # images: event_shape (C, H, W)
    train = pg.data.Dataset(digits.x.reshape(-1, 1, 8, 8), digits.y, digits.support, name="digits")
    vae = VAE.from_dataset(train, architecture=architecture, latent_dim=2)
    assert vae.event_shape == (1, 8, 8)
    pg.fit(vae, train, epochs=2, batch_size=100, lr=1e-3, progress=False)
    loc, scale = vae.encode(train.x[:5])
    assert loc.shape == scale.shape == (5, 2) and (scale > 0).all()
    assert vae.reconstruct(train.x[:5]).shape == (5, 1, 8, 8)
    samples = vae.sample(6)
    assert samples.shape == (6, 1, 8, 8)
    vae.validate(samples)  # draws lie on the 17 levels
    assert vae.interpolate(train.x[0], train.x[1], steps=5).shape == (5, 1, 8, 8)


def test_conditional_vae_and_autoencoder():
    train = pg.load_dataset("digits-binary")
    cvae = ConditionalVAE(64, "binary", num_classes=10, latent_dim=2)
    pg.fit(cvae, train, epochs=2, batch_size=100, lr=1e-3, progress=False)
    assert cvae.sample(4, y=3).shape == (4, 64)
    bound = pg.log_likelihood(cvae, train, method="iwae", num_samples=5)
    assert bound.kind == "lower_bound" and math.isfinite(bound.nats)
    with pytest.raises(ValueError, match="needs labels"):
        pg.fit(cvae, train.x, epochs=1, progress=False)
    ae = Autoencoder(64, "binary", latent_dim=2)
    pg.fit(ae, train, epochs=2, batch_size=100, lr=1e-3, progress=False)
    assert ae.reconstruct(train.x[:3]).shape == (3, 64) and ae.sample(2).shape == (2, 64)
    with pytest.raises(ValueError, match="implicit"):
        pg.log_likelihood(ae, train)
    with pytest.raises(ValueError, match="implicit"):
        ae.log_prob(train.x)


def test_bad_input():
    vae = VAE(64, "binary")
    with pytest.raises(ValueError, match="outside the support 'binary'"):
        pg.fit(vae, torch.full((10, 64), 0.5), epochs=1, progress=False)
    with pytest.raises(ValueError, match=r"expected \(N, 64\)"):
        pg.log_likelihood(vae, torch.zeros(3, 10), method="iwae")
    with pytest.raises(ValueError, match="positive integer"):
        pg.log_likelihood(vae, torch.zeros(3, 64), method="iwae", num_samples=0)
    with pytest.raises(ValueError, match="num_samples must be a positive integer"):
        pg.fit(vae, torch.zeros(3, 64), objective="iwae", num_samples=0, progress=False)
    with pytest.raises(ValueError, match="no exact log_prob"):
        vae.log_prob(torch.zeros(2, 64))
    with pytest.raises(ValueError, match="no exact density"):
        pg.log_likelihood(vae, torch.zeros(2, 64), method="exact")
    with pytest.raises(ValueError, match="cannot model 'real'"):
        VAE(4, "real", likelihood="bernoulli")
    with pytest.raises(ValueError, match=r"needs event_shape=\(1, H, W\), got \(64,\)"):
        VAE(64, "binary", architecture="conv")
    with pytest.raises(ValueError, match="unknown argument.*'image_shape'.*accepts.*latent_dim"):
        VAE.from_dataset(pg.load_dataset("digits-binary"), image_shape=(8, 8))


def test_ais_is_tighter_than_iwae_and_near_the_exact_marginal():
    vae, marginal = _linear_gaussian_vae()
    torch.manual_seed(3)
    x = marginal.sample((100,))
    exact = marginal.log_prob(x).mean().item()
    ais = pg.log_likelihood(vae, x, method="ais", num_samples=8, ais_steps=100)
    iwae = pg.log_likelihood(vae, x, method="iwae", num_samples=8)
    assert ais.kind == "estimate" and ais.method == "ais" and ais.num_samples == 8
    assert exact - ais.nats < exact - iwae.nats  # same number of chains: AIS is tighter
    assert abs(exact - ais.nats) < 0.03  # stated tolerance: 0.03 nats per example


def test_encoder_dropout_drops_inputs_in_train_mode_only_and_keeps_a_lower_bound(float64, tmp_path):
    from probgen.inference.importance import log_importance_weights

    torch.manual_seed(3)
    x = torch.bernoulli(torch.full((6, 5), 0.4))
    vae = VAE(5, "binary", latent_dim=1, hidden_features=(8,), encoder_dropout=0.5)
    plain = VAE(5, "binary", latent_dim=1, hidden_features=(8,))
    plain.load_state_dict(vae.state_dict())
    vae.train()
    torch.manual_seed(7)
    loc, scale = vae.encode(x)
    torch.manual_seed(7)
    dropped = F.dropout(x, 0.5, training=True)  # inverted dropout: kept inputs scaled by 2
    assert torch.equal(dropped.unique(), torch.tensor([0.0, 2.0]))
    by_hand = plain.encoder(plain.likelihood.encoder_input(dropped))
    assert torch.allclose(loc, by_hand[0]) and torch.allclose(scale, by_hand[1])
    vae.eval()
    assert torch.allclose(vae.encode(x)[0], plain.encode(x)[0])  # eval mode: the clean encoder

    # log p(x) by quadrature over the 1-d latent; the train-mode bound (a corrupted encoder)
    # stays below it: dropout touches the proposal, never the model or the observed x
    z = torch.linspace(-12, 12, 24001)[:, None]
    log_joint = torch.distributions.Normal(0.0, 1.0).log_prob(z[:, 0]) + vae.likelihood(vae.decoder(z)).log_prob(
        x[:, None]
    )
    log_p = torch.logsumexp(log_joint, -1) + math.log(24 / 24000)
    with torch.no_grad():
        vae.eval()
        clean = log_importance_weights(vae, x, None, 4000)
        vae.train()
        corrupted = log_importance_weights(vae, x, None, 4000)
    assert ((log_p - (torch.logsumexp(clean, 0) - math.log(4000))).abs() < 0.02).all()  # the quadrature is right
    assert (clean.mean(0) < log_p).all() and (corrupted.mean(0) < log_p).all()  # ELBOs, each below log p(x)

    loaded = pg.load(pg.save(vae, tmp_path / "vae.safetensors"))
    assert loaded.encoder_dropout == 0.5 and loaded.config["encoder_dropout"] == 0.5
    for bad in (1.0, -0.1, "0.1", True):
        with pytest.raises(ValueError, match=r"encoder_dropout must be a number in \[0, 1\), got"):
            VAE(5, "binary", encoder_dropout=bad)
