"""VAE flow posteriors and priors: log q against autograd Jacobians, priors by hand, bound
ordering, training moves every parameter (by fit and by plain Pyro SVI), checkpoints, the
analytic-KL objective's Monte-Carlo fallback, bad options."""

import math

import pyro
import pyro.poutine as poutine
import pytest
import torch
from torch.autograd.functional import jacobian

import probgen as pg
from probgen.inference import make_objective
from probgen.inference.importance import iwae_bound
from probgen.models import VAE, ConditionalVAE, accepted_kwargs
from probgen.models.base import scaled_to

FLOWS = ["iaf", "planar", "sylvester", "nsf"]
#: every new option once, and one combination
CONFIGS = [{"posterior_flow": f} for f in FLOWS] + [
    {"prior": "vamp"},
    {"prior": "flow"},
    {"posterior_flow": "iaf", "prior": "vamp"},
]
IDS = ["-".join(c.values()) for c in CONFIGS]


def _data(n=200):
    return pg.load_dataset("digits-binary").x[:n].double()


def _vae(**kwargs):
    options = {"latent_dim": 3, "hidden_features": (16,), "flow_num_layers": 2, "num_pseudo_inputs": 7, **kwargs}
    return VAE(64, "binary", **options).double()


def _shake(module, scale=0.3):
    """Move parameters away from their initial values, so no layer is near the identity."""
    with torch.no_grad():
        for p in module.parameters():
            p.add_(scale * torch.randn_like(p))


@pytest.mark.parametrize("kind", FLOWS)
def test_guide_log_q_is_base_density_minus_autograd_log_det(kind, float64):
    vae = _vae(posterior_flow=kind, flow_num_layers=3)
    _shake(vae.flow)
    x = _data(4)
    pyro.set_rng_seed(1)
    site = poutine.trace(vae.guide).get_trace(x).nodes["z"]
    z, log_q = site["value"], site["fn"].log_prob(site["value"])
    pyro.set_rng_seed(1)  # the guide draws only the base sample: the same draw again
    z0 = site["fn"].base_dist.rsample()
    transforms = site["fn"].transforms

    def push(v):
        for t in transforms:
            v = t(v)
        return v

    assert torch.allclose(push(z0.clone()), z, rtol=0, atol=1e-12)
    assert (z - z0).abs().max() > 0.05  # the flow moved the draw
    loc, scale = vae.encode(x)
    for b in range(len(x)):

        def example(v, b=b):
            return push(torch.cat([z0[:b], v[None], z0[b + 1 :]]))[b]

        _, log_det = torch.linalg.slogdet(jacobian(example, z0[b].clone()))
        base = torch.distributions.Normal(loc[b], scale[b]).log_prob(z0[b]).sum()
        assert abs(log_det) > 1e-3  # not volume preserving: the check has something to check
        assert log_q[b].item() == pytest.approx((base - log_det).item(), rel=1e-10, abs=1e-10)


def _prior_log_prob(vae, x, z):
    """log p(z) as the model's "z" site scores it."""
    trace = poutine.trace(poutine.condition(vae.model, {"z": z})).get_trace(x)
    return trace.nodes["z"]["fn"].log_prob(z)


def test_vamp_prior_is_the_mixture_of_encoder_gaussians_at_the_pseudo_inputs(float64):
    x = _data(40)
    vae = _vae(prior="vamp")
    vae.init_from_data(x)
    u = vae.prior_net.pseudo_inputs.detach()
    assert all((row == x).all(-1).any() for row in u)  # initialised at training examples
    assert len(torch.unique(u, dim=0)) == len(u) or len(torch.unique(x, dim=0)) < len(u)
    _shake(vae.prior_net, 0.2)
    z = 2 * torch.randn(len(x), 3)
    loc, scale = vae.encoder(vae.prior_net.pseudo_inputs)  # [K, L]
    components = torch.distributions.Normal(loc, scale).log_prob(z[:, None, :]).sum(-1)  # [N, K]
    by_hand = torch.logsumexp(components, -1) - math.log(7)
    assert torch.allclose(_prior_log_prob(vae, x, z), by_hand, rtol=1e-12, atol=1e-12)


def test_flow_prior_density_against_an_autograd_jacobian(float64):
    x = _data(5)
    vae = _vae(prior="flow", flow_num_layers=3)
    _shake(vae.prior_net)
    z = torch.randn(len(x), 3)
    density = vae.prior_net.distribution()

    def to_base(v):
        for t in reversed(density.transforms):
            v = t.inv(v)
        return v

    standard = torch.distributions.Normal(0.0, 1.0)
    expected = []
    for b in range(len(z)):
        _, log_det = torch.linalg.slogdet(jacobian(to_base, z[b].clone()))
        expected.append(standard.log_prob(to_base(z[b].clone())).sum() + log_det)
    assert torch.allclose(_prior_log_prob(vae, x, z), torch.stack(expected), rtol=1e-10)
    draws = vae.prior_net.distribution().sample((4000,))  # sampling inverts what density computes
    assert draws.shape == (4000, 3) and torch.isfinite(draws).all()


def _repeated_bound(vae, x, k, repeats):
    """IWAE_k averaged over ``x``, independently ``repeats`` times (one batch of repeated rows):
    the mean of the repeats and its standard error."""
    values = iwae_bound(vae, x.repeat(repeats, 1), None, k).reshape(repeats, len(x)).mean(1)
    return values.mean().item(), values.std().item() / math.sqrt(repeats)


@pytest.mark.parametrize("config", CONFIGS, ids=IDS)
def test_fit_trains_everything_bounds_order_and_checkpoint(config, float64, tmp_path):
    x = _data()
    vae = _vae(**config)
    vae.init_from_data(x)
    before = {k: v.detach().clone() for k, v in vae.named_parameters()}
    pg.fit(vae, x, epochs=3, batch_size=50, lr=1e-2, init_from_data=False, progress=False)
    for key, value in vae.named_parameters():
        assert not torch.equal(value, before[key]), f"{key} did not train"

    test = pg.load_dataset("digits-binary", "test").x[:60].double()
    torch.manual_seed(2)
    elbo = _repeated_bound(vae, test, 1, 400)
    iwae5 = _repeated_bound(vae, test, 5, 200)
    iwae100 = _repeated_bound(vae, test, 100, 10)
    assert all(math.isfinite(v) for pair in (elbo, iwae5, iwae100) for v in pair)
    # each gap beyond four standard errors of the two averages
    assert iwae5[0] - elbo[0] > 4 * math.hypot(iwae5[1], elbo[1]), (elbo, iwae5)
    assert iwae100[0] - iwae5[0] > 4 * math.hypot(iwae100[1], iwae5[1]), (iwae5, iwae100)

    loaded = pg.load(pg.save(vae, tmp_path / "vae.safetensors"))
    assert loaded.config == vae.config
    scores = []
    for model in (vae, loaded):
        torch.manual_seed(0)
        scores.append(pg.log_likelihood(model, test, method="iwae", num_samples=10).nats)
    assert scores[0] == scores[1]


@pytest.mark.parametrize("config", CONFIGS, ids=IDS)
def test_plain_pyro_svi_trains_every_parameter(config):
    x = _data(32).float()
    vae = VAE(64, "binary", latent_dim=3, hidden_features=(16,), flow_num_layers=2, num_pseudo_inputs=5, **config)
    before = {k: v.detach().clone() for k, v in vae.named_parameters()}
    svi = pyro.infer.SVI(vae.model, vae.guide, pyro.optim.Adam({"lr": 1e-2}), pyro.infer.Trace_ELBO())
    for _ in range(3):
        assert math.isfinite(svi.step(x))
    for key, value in vae.named_parameters():
        assert not torch.equal(value, before[key]), f"{key} did not train"


@pytest.mark.parametrize("config", [{}, *CONFIGS], ids=["gaussian-standard", *IDS])
def test_analytic_kl_objective_falls_back_to_monte_carlo(config, float64):
    """With a flow posterior or a non-standard prior the analytic-KL ELBO is Trace_ELBO's
    (same draws); with the Gaussian pair it is the closed-form KL, a different number."""
    x = _data(20)
    vae = _vae(**config)
    with scaled_to(vae, 100):
        pyro.set_rng_seed(4)
        ours = make_objective("analytic_kl")(vae, x, None)
        pyro.set_rng_seed(4)
        monte_carlo = pyro.infer.Trace_ELBO().differentiable_loss(vae.model, vae.guide, x)
    if config:
        assert ours.item() == pytest.approx(monte_carlo.item(), rel=1e-12)
    else:
        assert abs(ours.item() - monte_carlo.item()) > 1e-3


def test_conditional_vae_takes_a_flow_posterior_and_a_flow_prior():
    data = pg.load_dataset("digits-binary")
    cvae = ConditionalVAE(
        64, "binary", latent_dim=3, hidden_features=(16,), posterior_flow="iaf", prior="flow", flow_num_layers=2
    )
    pg.fit(cvae, data, epochs=2, batch_size=100, lr=1e-2, progress=False)
    bound = pg.log_likelihood(cvae, data, method="iwae", num_samples=5)
    assert bound.conditional and math.isfinite(bound.nats)
    assert cvae.sample(4, y=3).shape == (4, 64) and cvae.reconstruct(data.x[:2], data.y[:2]).shape == (2, 64)


def test_new_options_are_keyword_arguments_in_the_config():
    accepted = accepted_kwargs(VAE)
    assert {"posterior_flow", "flow_num_layers", "prior", "num_pseudo_inputs"} <= set(accepted)
    vae = VAE(64, "binary", posterior_flow="nsf", prior="vamp", flow_num_layers=2, num_pseudo_inputs=9)
    assert VAE.from_config(vae.config).config == vae.config
    assert vae.config["posterior_flow"] == "nsf" and vae.config["num_pseudo_inputs"] == 9


def test_bad_options_raise_value_errors():
    with pytest.raises(ValueError, match=r"unknown posterior_flow 'realnvp'; expected None or one of \('iaf'"):
        VAE(64, "binary", posterior_flow="realnvp")
    with pytest.raises(ValueError, match=r"unknown prior 'gaussian'; expected one of \('standard', 'vamp', 'flow'\)"):
        VAE(64, "binary", prior="gaussian")
    with pytest.raises(ValueError, match="flow_num_layers must be a positive integer"):
        VAE(64, "binary", posterior_flow="iaf", flow_num_layers=0)
    with pytest.raises(ValueError, match="num_pseudo_inputs must be a positive integer"):
        VAE(64, "binary", prior="vamp", num_pseudo_inputs=0)
    with pytest.raises(ValueError, match="posterior_flow='iaf' needs latent_dim >= 2, got 1"):
        VAE(64, "binary", latent_dim=1, posterior_flow="iaf")
    with pytest.raises(ValueError, match="prior='flow' needs latent_dim >= 2, got 1"):
        VAE(64, "binary", latent_dim=1, prior="flow")
    with pytest.raises(ValueError, match="prior='vamp' needs an unconditional encoder; ConditionalVAE"):
        ConditionalVAE(64, "binary", prior="vamp")


def test_bounded_vamp_pseudo_inputs_stay_in_the_unit_interval_after_training(float64):
    x = _data(40)
    vae = _vae(prior="vamp", bounded_pseudo_inputs=True)
    vae.init_from_data(x)
    u = vae.prior_net.inputs().detach()
    assert u.min() == 0.01 and u.max() == 0.99  # binary rows pulled inside, where hardtanh has a gradient
    assert all(((row - x.clamp(0.01, 0.99)).abs() < 1e-12).all(-1).any() for row in u)
    pg.fit(vae, x, epochs=2, batch_size=20, lr=0.5, init_from_data=False, progress=False)
    raw = vae.prior_net.pseudo_inputs.detach()
    assert (raw < 0).any() and (raw > 1).any()  # the large steps left [0, 1]: the bound binds
    u = vae.prior_net.inputs().detach()
    assert u.min() == 0.0 and u.max() == 1.0 and torch.equal(u, raw.clamp(0, 1))
    z = torch.randn(len(x), 3)
    loc, scale = vae.encoder(u)
    components = torch.distributions.Normal(loc, scale).log_prob(z[:, None, :]).sum(-1)
    by_hand = torch.logsumexp(components, -1) - math.log(7)
    assert torch.allclose(_prior_log_prob(vae, x, z), by_hand, rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="bounded_pseudo_inputs=True needs prior='vamp', got prior='standard'"):
        VAE(64, "binary", bounded_pseudo_inputs=True)
    with pytest.raises(ValueError, match="needs binary or discrete data"):
        VAE(64, "real", prior="vamp", bounded_pseudo_inputs=True)
    with pytest.raises(ValueError, match="bounded_pseudo_inputs must be True or False, got 1"):
        VAE(64, "binary", prior="vamp", bounded_pseudo_inputs=1)


def test_flow_hidden_sets_the_conditioner_widths_and_reloads(tmp_path):
    vae = VAE(
        64,
        "binary",
        latent_dim=3,
        hidden_features=(16,),
        posterior_flow="iaf",
        flow_num_layers=2,
        flow_hidden_features=(24, 12),
    )
    widths = [m.out_features for m in vae.flow.layers[0].nn.modules() if isinstance(m, torch.nn.Linear)]
    assert widths == [24, 12, 6]  # two hidden layers, then loc and scale logits of 3 variables
    assert vae.config["flow_hidden_features"] == [24, 12]
    loaded = pg.load(pg.save(vae, tmp_path / "vae.safetensors"))
    assert loaded.config == vae.config and loaded.flow.layers[1].nn.layers[1].out_features == 12
    default = VAE(64, "binary", latent_dim=3, posterior_flow="iaf", flow_num_layers=1)
    assert [m.out_features for m in default.flow.layers[0].nn.modules() if isinstance(m, torch.nn.Linear)] == [30, 6]
    for bad in [(0,), (8, -1), 16, (2.5,)]:
        with pytest.raises(ValueError, match="flow_hidden_features must be a sequence of positive integers"):
            VAE(64, "binary", posterior_flow="iaf", flow_hidden_features=bad)
