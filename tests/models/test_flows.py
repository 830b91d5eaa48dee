"""Normalizing flows: exact change of variables, normalisation, orientation and dequantization.

Every flow: its log-det equals autograd's slogdet of the Jacobian, it inverts, its density on a
2-D grid integrates to 1 after training, gradients reach every parameter, checkpoints
round-trip, bad input is refused. MAF scores a 64-d batch with one pass of each network; IAF
samples with one. A dequantized flow reports on the discrete scale with the right kind.
"""

import math

import pytest
import torch

import probgen as pg
from probgen.models import IAF, MAF, NAF, NSF, ConditionalMAF, Dequantized, Glow, NSFAutoregressive, RealNVP

FLOWS = [RealNVP, MAF, IAF, NSF, NSFAutoregressive, NAF, Glow]
SMALL = {"num_layers": 2, "hidden_features": (16,)}
IDS = [cls.__name__ for cls in FLOWS]
VECTOR_FLOWS = FLOWS[:-1]  # Glow models images: its tests use a (1, 2, 2) view of 4 values


def _dims(cls):
    return 4 if cls is Glow else 3  # 3: an odd split for the couplings


def _perturbed(cls, d, **kwargs):
    """A flow whose every parameter is moved off its initial value, with a data-set actnorm."""
    flow = cls(d, **{**SMALL, **kwargs})
    flow.init_from_data(torch.randn(50, d) * 2 + 1)
    with torch.no_grad():
        for p in flow.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return flow


def _trained(cls, x, steps=30):
    flow = cls(x.shape[1], **SMALL)
    flow.init_from_data(x)
    optimizer = torch.optim.Adam(flow.parameters(), lr=1e-2)
    for _ in range(steps):
        optimizer.zero_grad()
        (-flow.log_prob(x).mean()).backward()
        optimizer.step()
    return flow


@pytest.mark.parametrize("cls", FLOWS, ids=IDS)
def test_log_det_equals_autograd_slogdet(cls, float64):
    d = _dims(cls)
    flow = _perturbed(cls, d)
    x = torch.randn(4, d) * 2 + 1
    z, log_det = flow.to_base(x)
    for i in range(len(x)):
        jacobian = torch.autograd.functional.jacobian(lambda v: flow.to_base(v[None])[0].reshape(-1), x[i])
        sign, logabsdet = torch.linalg.slogdet(jacobian)
        assert sign != 0 and torch.allclose(log_det[i], logabsdet, atol=1e-8), (i, log_det[i], logabsdet)
    base = torch.distributions.Normal(0.0, 1.0).log_prob(z).reshape(len(x), -1).sum(-1)
    assert torch.allclose(flow.log_prob(x), base + log_det, atol=1e-10)


@pytest.mark.parametrize("cls", FLOWS, ids=IDS)
def test_inverse_of_forward_is_identity(cls, float64):
    d = _dims(cls)
    flow = _perturbed(cls, d)
    x = torch.randn(6, d) * 2 + 1
    assert torch.allclose(flow.from_base(flow.to_base(x)[0]), x, atol=1e-5)
    z = torch.randn(6, *flow.shape)
    assert torch.allclose(flow.to_base(flow.from_base(z))[0], z, atol=1e-5)


@pytest.mark.parametrize("cls", FLOWS, ids=IDS)
def test_gradients_reach_every_parameter_and_shapes(cls):
    flow = _perturbed(cls, 4)
    x = torch.randn(8, 1, 2, 2)
    image_flow = cls((1, 2, 2), **SMALL)
    image_flow.load_state_dict(flow.state_dict())
    assert torch.allclose(image_flow.log_prob(x), flow.log_prob(x.reshape(8, 4)))
    assert image_flow.sample(5).shape == (5, 1, 2, 2)
    (-flow.log_prob(x.reshape(8, 4)).mean()).backward()
    for name, p in flow.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, f"{cls.__name__}: no gradient reaches {name}"


@pytest.mark.parametrize("cls", VECTOR_FLOWS, ids=IDS[:-1])
def test_density_on_a_grid_integrates_to_one(cls):
    """After training on moons (so it is no Gaussian), exp(log_prob) sums to 1 over a fine grid."""
    x = pg.load_dataset("moons").x[:200]
    flow = _trained(cls, x)
    lo, hi, n = -8.0, 8.0, 400
    axis = torch.linspace(lo + (hi - lo) / (2 * n), hi - (hi - lo) / (2 * n), n)  # cell midpoints
    grid = torch.cartesian_prod(axis, axis)
    with torch.no_grad():
        density = flow.log_prob(grid).exp()
        mass = density.sum() * ((hi - lo) / n) ** 2
        gaussian = torch.distributions.MultivariateNormal(x.mean(0), torch.cov(x.T))
        moved = (flow.log_prob(x) - gaussian.log_prob(x)).mean()
    assert abs(mass.item() - 1) < 0.01, mass
    assert moved > 0.05, "the trained flow should beat the Gaussian fit on its training data"


@pytest.mark.parametrize("cls", FLOWS, ids=IDS)
def test_checkpoint_round_trip_and_bad_input(cls, tmp_path):
    d = _dims(cls)
    flow = _perturbed(cls, d)
    loaded = pg.load(pg.save(flow, tmp_path / "flow.safetensors"))
    x = torch.randn(5, d)
    assert type(loaded) is cls and torch.equal(loaded.log_prob(x), flow.log_prob(x))
    with pytest.raises(ValueError, match=rf"shape \(5, {d + 1}\).*expected \(N, {d}\)"):
        flow.log_prob(torch.randn(5, d + 1))
    x[2, 1] = math.nan
    with pytest.raises(ValueError, match="NaN or inf"):
        flow.log_prob(x)
    with pytest.raises(ValueError, match="needs an image_shape" if cls is Glow else "needs at least 2 dimensions"):
        cls(3 if cls is Glow else 1)


def _count_calls(module):
    calls = []
    return calls, module.register_forward_hook(lambda *_: calls.append(1))


def test_maf_scores_a_64d_batch_with_one_pass_per_network_and_iaf_samples_with_one():
    d = 64
    maf, iaf = MAF(d, num_layers=2, hidden_features=(64,)), IAF(d, num_layers=2, hidden_features=(64,))
    x = torch.randn(32, d)
    counts = {}
    for label, flow, call in (
        ("maf density", maf, lambda: maf.log_prob(x)),
        ("maf sampling", maf, lambda: maf.sample(3)),
        ("iaf density", iaf, lambda: iaf.log_prob(x)),
        ("iaf sampling", iaf, lambda: iaf.sample(3)),
    ):
        hooks = [_count_calls(t.arn) for t in flow.transforms[:-1]]
        call()
        counts[label] = [len(calls) for calls, _ in hooks]
        for _, handle in hooks:
            handle.remove()
    assert counts["maf density"] == [1, 1] and counts["iaf sampling"] == [1, 1]
    assert counts["maf sampling"] == [d, d] and counts["iaf density"] == [d, d]  # the slow directions


def test_dequantized_flow_reports_on_the_discrete_scale():
    """Uniform dequantization is a lower bound on log P(x); the 32-draw importance estimate lies
    above it; both are log-probabilities of 17-level digits (<= 0, so NLL >= 0)."""
    data = pg.load_dataset("digits")
    x = pg.data.Dataset(data.x[:200], None, data.support, name="digits")
    flow = MAF(64, num_layers=1, hidden_features=(64,))
    model = Dequantized.from_dataset(x, base=flow, dequantization="uniform", logit_alpha=0.05)
    pg.fit(model, x, epochs=30, batch_size=100, lr=3e-3, progress=False)
    bound = pg.log_likelihood(model, x, method="elbo", num_samples=4)
    importance = Dequantized.from_dataset(
        x, base=model.base, dequantization="importance", num_samples=32, logit_alpha=model.logit_alpha
    )
    torch.manual_seed(0)
    estimate = pg.log_likelihood(importance, x)
    assert (bound.kind, estimate.kind) == ("lower_bound", "estimate")
    assert bound.nats <= estimate.nats + 3 * estimate.stderr
    assert estimate.nats < 0 and bound.nats < 0
    assert math.isclose(estimate.bits_per_dim, -estimate.nats / (64 * math.log(2)), rel_tol=1e-9)
    gaussian = pg.models.IndependentGaussian(64, "real", method="mle")
    baseline = Dequantized.from_dataset(x, base=gaussian, dequantization="uniform", logit_alpha=0.05)
    pg.fit(baseline, x, epochs=30, batch_size=100, lr=3e-3, progress=False)
    assert bound.nats > pg.log_likelihood(baseline, x, method="elbo", num_samples=4).nats


def test_glow_on_8x8_images_squeezes_twice_and_matches_its_flat_view():
    glow = Glow((1, 8, 8), num_layers=1, hidden_features=(32,))
    flat = Glow(64, num_layers=1, hidden_features=(32,))
    flat.load_state_dict(glow.state_dict())
    x = torch.randn(3, 1, 8, 8)
    assert glow.levels == 2 and glow.to_base(x)[0].shape == (3, 1, 8, 8)
    assert torch.allclose(glow.log_prob(x), flat.log_prob(x.reshape(3, 64)))
    assert glow.sample(4).shape == (4, 1, 8, 8) and flat.sample(4).shape == (4, 64)
    with pytest.raises(ValueError, match="even image height and width"):
        Glow((1, 3, 5))


def _two_classes(n=200):
    y = torch.arange(n) % 2
    x = torch.randn(n, 2) * 0.5 + torch.stack([2.0 * y - 1, (2.0 * y - 1) ** 2 + y], -1)
    return x, y


def test_conditional_maf_is_normalised_per_class_and_its_marginal_is_the_mixture(float64):
    x, y = _two_classes()
    flow = ConditionalMAF(2, num_classes=2, **SMALL)
    flow.init_from_data(x)
    with torch.no_grad():
        for p in flow.parameters():
            p.add_(0.1 * torch.randn_like(p))
    lo, hi, n = -8.0, 8.0, 300
    axis = torch.linspace(lo + (hi - lo) / (2 * n), hi - (hi - lo) / (2 * n), n)
    grid = torch.cartesian_prod(axis, axis)
    with torch.no_grad():
        for label in (0, 1):
            mass = flow.log_prob_given(grid, torch.full((len(grid),), label)).exp().sum() * ((hi - lo) / n) ** 2
            assert abs(mass.item() - 1) < 0.01, (label, mass)
        given = torch.stack([flow.log_prob_given(x, torch.full((len(x),), c)) for c in (0, 1)], -1)
        mixture = torch.logsumexp(given + flow.class_logits.log_softmax(-1), -1)
        assert torch.allclose(flow.log_prob(x), mixture, atol=1e-10)
    z, log_det = flow.to_base(x[:3], flow.context(y[:3], x))
    for i in range(3):
        context = flow.context(y[i : i + 1], x)
        jacobian = torch.autograd.functional.jacobian(lambda v, c=context: flow.to_base(v[None], c)[0][0], x[i])
        assert torch.allclose(log_det[i], torch.linalg.slogdet(jacobian)[1], atol=1e-8)


def test_conditional_maf_learns_the_classes_and_refuses_a_missing_or_wrong_context():
    x, y = _two_classes()
    flow = ConditionalMAF(2, num_classes=2, **SMALL)
    pg.fit(flow, (x, y), epochs=8, lr=1e-2, batch_size=100, progress=False)
    assert (flow.predict(x) == y).float().mean() > 0.9
    assert flow.sample(5, y=1).shape == (5, 2) and flow.sample(5).shape == (5, 2)
    assert flow.sample(500, y=1)[:, 0].mean() > 0.5 > flow.sample(500, y=0)[:, 0].mean()
    with pytest.raises(ValueError, match="needs labels"):
        flow.log_prob_given(x, None)
    with pytest.raises(ValueError, match=r"labels have shape \(3,\); expected \(200,\)"):
        flow.log_prob_given(x, y[:3])
    with pytest.raises(ValueError, match="outside 0..1"):
        flow.sample(2, y=2)
    with pytest.raises(ValueError, match="needs a context"):
        flow.to_base(x)
    with pytest.raises(ValueError, match="needs labels"):
        pg.fit(flow, x, epochs=1, progress=False)
