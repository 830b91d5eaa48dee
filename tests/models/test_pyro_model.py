"""A plain Pyro program (functions, no probgen class) as a probgen model: ``pg.models.PyroModel``.

The latent-variable program is a linear-Gaussian latent-factor model, z ~ N(0, I_K) per
example and x | z ~ N(W z + b, s^2 I_D), whose marginal N(b, W W^T + s^2 I) is known in
closed form, and whose posterior q(z | x) = N(S W^T (x - b) / s^2, S), S = (I + W^T W / s^2)^-1,
makes every importance weight equal p(x): the IWAE of the exact posterior is log p(x) for any K.
"""

import warnings

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro.infer import Trace_ELBO
from pyro.infer.autoguide import AutoNormal
from scipy import stats
from torch.distributions import constraints

import probgen as pg
from probgen.inference.objectives import make_objective
from probgen.models import PyroModel, accepted_kwargs
from probgen.models.base import scaled_to

D, K = 3, 2
pytestmark = pytest.mark.filterwarnings("ignore:PyroModel was never fitted")


def factor_model(x):
    W = pyro.param("W", 0.3 * torch.ones(x.shape[-1], K, dtype=x.dtype))
    b = pyro.param("b", x.new_zeros(x.shape[-1]))
    s = pyro.param("s", x.new_ones(()), constraint=constraints.positive)
    with pyro.plate("data", x.shape[0]):
        z = pyro.sample("z", dist.Normal(x.new_zeros(K), 1.0).to_event(1))
        pyro.sample("obs", dist.Normal(z @ W.T + b, s).to_event(1), obs=x)


def factor_guide(x):
    A = pyro.param("A", x.new_zeros(K, x.shape[-1]))
    c = pyro.param("c", x.new_zeros(K))
    scale = pyro.param("q_scale", 0.5 * x.new_ones(K), constraint=constraints.positive)
    with pyro.plate("data", x.shape[0]):
        pyro.sample("z", dist.Normal(x @ A.T + c, scale).to_event(1))


def _truth(n=240, seed=0):
    g = torch.Generator().manual_seed(seed)
    W = torch.randn(D, K, generator=g, dtype=torch.float64)
    b = torch.randn(D, generator=g, dtype=torch.float64)
    z = torch.randn(n, K, generator=g, dtype=torch.float64)
    x = z @ W.T + b + 0.5 * torch.randn(n, D, generator=g, dtype=torch.float64)
    return x, W, b, 0.5


def _exact_marginal(x, W, b, s):
    cov = W @ W.T + s**2 * torch.eye(D, dtype=x.dtype)
    return dist.MultivariateNormal(b, covariance_matrix=cov).log_prob(x)


def _set(model, **values):
    """Set the model's pyro.param parameters (in their unconstrained form) to ``values``."""
    with torch.no_grad():
        for name, value in values.items():
            unconstrained = model.pyro_params[name]
            constraint = model._constraints[name]
            unconstrained.copy_(torch.distributions.transform_to(constraint).inv(torch.as_tensor(value)))


def test_inspection_finds_the_sites_and_the_parameters():
    model = PyroModel(factor_model, factor_guide, event_shape=D, support="real")
    assert model.sites.observed == "obs" and model.sites.local == ("z",) and model.sites.global_ == ()
    assert model.density == "lower_bound" and model.vectorizable and model.max_plate_nesting == 1
    assert sorted(n for n, _ in model.named_parameters()) == [
        f"pyro_params.{n}" for n in ("A", "W", "b", "c", "q_scale", "s")
    ]
    # plain Pyro SVI (no probgen fit) trains them too: each pyro.param value carries .unconstrained
    x = _truth(40)[0].float()
    svi = pyro.infer.SVI(model.model, model.guide, pyro.optim.Adam({"lr": 0.05}), Trace_ELBO())
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    svi.step(x)
    assert all(not torch.equal(before[n], p) for n, p in model.named_parameters())


def test_the_exact_posterior_as_guide_gives_iwae_equal_to_the_exact_marginal():
    x, W, b, s = _truth()

    def posterior(x):  # the exact posterior, from the model's own parameters
        W_, b_, s_ = (pyro.param(n) for n in ("W", "b", "s"))
        cov = torch.linalg.inv(torch.eye(K, dtype=x.dtype) + W_.T @ W_ / s_**2)
        with pyro.plate("data", x.shape[0]):
            pyro.sample("z", dist.MultivariateNormal((x - b_) @ W_ / s_**2 @ cov, covariance_matrix=cov))

    model = PyroModel(factor_model, posterior, event_shape=D, support="real").double()
    _set(model, W=W, b=b, s=torch.tensor(s, dtype=torch.float64))
    exact = _exact_marginal(x, W, b, s)
    pyro.set_rng_seed(0)
    for k in (1, 7):
        score = pg.log_likelihood(model, x, method="iwae", num_samples=k, batch_size=100)
        assert score.kind == "lower_bound"
        assert -score.nll == pytest.approx(exact.mean().item(), abs=1e-10)


def test_iwae_of_an_approximate_guide_rises_to_the_exact_marginal_as_k_grows():
    x, W, b, s = _truth(60)
    model = PyroModel(factor_model, factor_guide, event_shape=D, support="real").double()
    # the posterior's mean, but independent coordinates 1.5 times too wide: a bound, not exact
    cov = torch.linalg.inv(torch.eye(K, dtype=x.dtype) + W.T @ W / s**2)
    A = cov @ W.T / s**2
    _set(model, W=W, b=b, s=torch.tensor(s, dtype=x.dtype), A=A, c=-A @ b, q_scale=1.5 * cov.diagonal().sqrt())
    exact = _exact_marginal(x, W, b, s).mean().item()
    pyro.set_rng_seed(1)
    bounds = [-pg.log_likelihood(model, x, method="iwae", num_samples=k, batch_size=60).nll for k in (1, 30, 3000)]
    assert bounds[0] < bounds[1] < bounds[2] < exact + 0.005
    assert exact - bounds[2] < 0.01 < 0.1 < exact - bounds[0]


def test_minibatch_elbo_scales_the_data_plate_and_not_the_globals():
    """A global latent g and local latents z with point-mass (Delta) guides make the ELBO
    deterministic: the minibatch loss is -(log p(g) + N/B sum_b [log p(z_b) + log p(x_b | z_b, g)])."""
    x = _truth(12)[0][:, :1]

    def model_fn(x):
        g = pyro.sample("g", dist.Normal(x.new_zeros(()), 2.0))
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", dist.Normal(x.new_zeros(1), 1.0).to_event(1))
            pyro.sample("x", dist.Normal(z + g[..., None], 0.7).to_event(1), obs=x)

    def guide_fn(x):
        pyro.sample("g", dist.Delta(pyro.param("g_loc", x.new_tensor(0.3))))
        w = pyro.param("w", x.new_tensor(0.4))
        with pyro.plate("data", x.shape[0]):
            pyro.sample("z", dist.Delta(w * x, event_dim=1))

    model = PyroModel(model_fn, guide_fn, event_shape=1, support="real").double()
    model.init_from_data(x)  # initial values evaluated again, now in float64 (built in float32)
    assert model.sites.global_ == ("g",) and model.sites.local == ("z",)
    n, batch = len(x), 4

    def hand(xb, scale):
        g, w = torch.tensor(0.3, dtype=x.dtype), torch.tensor(0.4, dtype=x.dtype)
        z = w * xb[:, 0]
        local = stats.norm.logpdf(z.numpy(), 0, 1) + stats.norm.logpdf(xb[:, 0].numpy(), (z + g).numpy(), 0.7)
        return -(stats.norm.logpdf(0.3, 0, 2.0) + scale * local.sum())

    for objective in (make_objective("elbo"), lambda m, xb, y: Trace_ELBO().differentiable_loss(m.model, m.guide, xb)):
        full = objective(model, x, None)
        assert full.item() == pytest.approx(hand(x, 1.0), abs=1e-10)
        losses, grads = [], []
        with scaled_to(model, n):
            for start in range(0, n, batch):
                xb = x[start : start + batch]
                loss = objective(model, xb, None)
                assert loss.item() == pytest.approx(hand(xb, n / batch), abs=1e-10)
                losses.append(loss)
                grads.append(torch.autograd.grad(loss, list(model.parameters())))
        # the minibatch loss is unbiased: its mean over the batches of a partition is the full loss
        assert torch.stack(losses).mean().item() == pytest.approx(full.item(), abs=1e-10)
        full_grads = torch.autograd.grad(full, list(model.parameters()))
        for i, g in enumerate(full_grads):
            torch.testing.assert_close(torch.stack([gr[i] for gr in grads]).mean(0), g, atol=1e-10, rtol=0)


def test_without_latents_the_exact_log_likelihood_equals_probgens_own_classes():
    g = torch.Generator().manual_seed(3)
    bits = (torch.rand(300, 5, generator=g) < torch.linspace(0.1, 0.8, 5)).double()

    def bernoulli(x):
        logits = pyro.param("logits", x.new_zeros(x.shape[-1]))
        with pyro.plate("data", x.shape[0]):
            pyro.sample("x", dist.Bernoulli(logits=logits).to_event(1), obs=x)

    mine = PyroModel(bernoulli, event_shape=5, support="binary").double()
    theirs = pg.models.IndependentBernoulli(5, method="mle").double().fit_closed_form(bits)
    theta = theirs.estimate()["theta"]
    _set(mine, logits=torch.logit(theta))
    a, b = pg.log_likelihood(mine, bits), pg.log_likelihood(theirs, bits)
    assert a.kind == b.kind == "exact" and a.nll == pytest.approx(b.nll, abs=1e-10)
    assert mine.log_prob(bits).detach() == pytest.approx(theirs.log_prob(bits).detach(), abs=1e-10)

    real = torch.randn(200, 4, generator=g, dtype=torch.float64) * 2 + 1

    def gaussian(x):
        loc = pyro.param("loc", x.new_zeros(x.shape[-1]))
        scale = pyro.param("scale", x.new_ones(x.shape[-1]), constraint=constraints.positive)
        with pyro.plate("data", x.shape[0]):
            pyro.sample("x", dist.Normal(loc, scale).to_event(1), obs=x)

    mine = PyroModel(gaussian, event_shape=4, support="real").double()
    theirs = pg.models.IndependentGaussian(4, method="mle").double().fit_closed_form(real)
    est = theirs.estimate()
    _set(mine, loc=est["mu"], scale=est["tau"].rsqrt())
    assert pg.log_likelihood(mine, real).nll == pytest.approx(pg.log_likelihood(theirs, real).nll, abs=1e-10)
    # and fitting it by probgen's SVI (maximum likelihood) approaches the closed-form MLE
    fresh = PyroModel(gaussian, event_shape=4, support="real").double()
    pg.fit(fresh, real, epochs=150, batch_size=200, lr=0.05, progress=False)
    assert pg.log_likelihood(fresh, real).nll == pytest.approx(pg.log_likelihood(theirs, real).nll, abs=2e-3)


def test_fit_log_likelihood_save_load_compare_and_sample(tmp_path):
    x, *_ = _truth(240)
    train, test = x[:180], x[180:]
    model = PyroModel(factor_model, factor_guide, event_shape=D, support="real", name="factor").double()
    untrained = -pg.log_likelihood(model, test, num_samples=50).nll
    result = pg.fit(model, train, epochs=40, batch_size=60, lr=0.05, progress=False)
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]
    pyro.set_rng_seed(0)
    score = pg.log_likelihood(model, test, method="iwae", num_samples=50)
    assert score.kind == "lower_bound" and -score.nll > untrained

    path = pg.save(model, tmp_path / "factor.safetensors")
    template = PyroModel(factor_model, factor_guide, event_shape=D, support="real", name="factor")
    loaded = pg.load(path, model=template)
    assert loaded is not template and not torch.equal(template.pyro_params["W"], model.pyro_params["W"].float())
    pyro.set_rng_seed(0)
    assert pg.log_likelihood(loaded, test, method="iwae", num_samples=50).nll == score.nll
    with pytest.raises(ValueError, match=r"PyroModel 'factor'.*model=<a PyroModel of the same program>"):
        pg.load(path)
    other = PyroModel(factor_model, factor_guide, event_shape=D, support="real", name="other")
    with pytest.raises(ValueError, match=r"another model than 'other'.*name: stored 'factor'"):
        pg.load(path, model=other)

    def wider_guide(x):  # same sites, one more parameter: the weights do not fit
        factor_guide(x)
        pyro.param("extra", x.new_zeros(2))

    mismatched = PyroModel(factor_model, wider_guide, event_shape=D, support="real", name="factor")
    with pytest.raises(ValueError, match=r"weights do not fit the template model.*pyro_params\.extra"):
        pg.load(path, model=mismatched)

    table = pg.compare({"factor": loaded, "gauss": pg.models.IndependentGaussian(D).double()}, test, train=train,
                       fit_kwargs={"gauss": {"strategy": "closed_form", "progress": False},
                                   "factor": {"epochs": 2, "progress": False}})  # fmt: skip
    kinds = {row["model"]: row["kind"] for row in table.rows}
    assert kinds == {"factor": "lower_bound", "gauss": "exact"}
    draws = loaded.sample(5000)
    assert draws.shape == (5000, D)
    W, b = loaded.pyro_params["W"].detach(), loaded.pyro_params["b"].detach()
    s = loaded.pyro_params["s"].detach().exp()  # stored unconstrained (positive: exp)
    cov = W @ W.T + s**2 * torch.eye(D, dtype=W.dtype)
    assert draws.mean(0) == pytest.approx(b, abs=0.1)
    assert torch.cov(draws.T) == pytest.approx(cov, abs=0.2)


def test_auto_guides_by_name_for_global_latents():
    x = torch.randn(50, 1, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) + 2.0

    def mean_model(x):
        mu = pyro.sample("mu", dist.Normal(x.new_zeros(()), 3.0))
        with pyro.plate("data", x.shape[0]):
            pyro.sample("x", dist.Normal(mu[..., None], 1.0).to_event(1), obs=x)

    for guide in ("auto_normal", "auto_delta", "auto_diagonal_normal", AutoNormal(mean_model), None):
        model = PyroModel(mean_model, guide, event_shape=1, support="real").double()
        assert model.sites.global_ == ("mu",) and model.predictive == "variational"
        names = [n for n, _ in model.named_parameters()]
        assert names and all(n.startswith("guide_module.") for n in names), names
        pyro.set_rng_seed(0)
        pg.fit(model, x, epochs=300, batch_size=50, lr=0.1, progress=False)
        mu = pyro.poutine.trace(model.guide).get_trace(x).nodes["mu"]["value"]
        assert mu.item() == pytest.approx(x.mean().item(), abs=0.5)
    with pytest.raises(ValueError, match="guide='auto_nromal'.*'auto_normal'"):
        PyroModel(mean_model, "auto_nromal", event_shape=1, support="real")


def _observe(x):
    with pyro.plate("data", x.shape[0]):
        pyro.sample("x", dist.Normal(x.new_zeros(2), 1.0).to_event(1), obs=x)


@pytest.mark.parametrize(
    "program, guide, match",
    [
        (lambda x: pyro.sample("z", dist.Normal(0.0, 1.0)), None, r"0 observed sites.*'z' \(latent\)"),
        (
            lambda x: (_observe(x), pyro.sample("y", dist.Normal(0.0, 1.0), obs=torch.tensor(0.0))),
            None,
            r"2 observed sites.*'x' \(observed\), 'y' \(observed\)",
        ),
        (
            lambda x: pyro.sample("x", dist.Normal(x.new_zeros(2), 1.0).expand([x.shape[0], 2]).to_event(2), obs=x),
            None,
            "observed site 'x' is outside the data plate 'data'",
        ),
        (
            lambda x: (pyro.sample("c", dist.Categorical(logits=torch.zeros(3))), _observe(x)),
            lambda x: pyro.sample("c", dist.Categorical(logits=torch.zeros(3))),
            r"latent site 'c' is discrete \(Categorical\).*enumeration",
        ),
        (
            lambda x: (pyro.sample("u", dist.Normal(0.0, 1.0)), pyro.sample("v", dist.Normal(0.0, 1.0)), _observe(x)),
            lambda x: pyro.sample("u", dist.Normal(0.0, 1.0)),
            r"no value for latent site\(s\) 'v'",
        ),
    ],
    ids=["no-observed-site", "two-observed-sites", "outside-the-plate", "discrete-latent", "guide-misses-v"],
)
def test_bad_programs_are_refused_naming_the_site(program, guide, match):
    with pytest.raises(ValueError, match=match):
        PyroModel(program, guide, event_shape=2, support="real")


def test_a_local_latent_needs_an_amortized_guide_drawn_inside_the_plate():
    with pytest.raises(ValueError, match=r"local latent site\(s\) 'z'.*no guide"):
        PyroModel(factor_model, event_shape=D, support="real")
    with pytest.raises(ValueError, match=r"density='exact' for a program with latent sites \['z'\]"):
        PyroModel(factor_model, factor_guide, event_shape=D, support="real", density="exact")
    with pytest.raises(ValueError, match=r"AutoGuide cannot guide the local latent site\(s\) 'z'"):
        PyroModel(factor_model, "auto_normal", event_shape=D, support="real")

    def outside(x):
        pyro.sample("z", dist.Normal(x.new_zeros(x.shape[0], K), 1.0).to_event(2))

    with pytest.raises(ValueError, match=r"draws local latent site\(s\) 'z' outside the data plate"):
        PyroModel(factor_model, outside, event_shape=D, support="real")

    def three(x):
        with pyro.plate("data", x.shape[0]):
            pyro.sample("x", dist.Normal(x.new_zeros(3), 1.0).to_event(1), obs=x)

    with pytest.raises(ValueError, match=r"'x' has event_shape \(3,\).*expected event_shape \(4,\)"):
        PyroModel(three, event_shape=4, support="real")

    def per_coordinate(x):  # forgot .to_event(1): one log-density per coordinate, not per example
        with pyro.plate("data", x.shape[0], dim=-2):
            pyro.sample("x", dist.Normal(x.new_zeros(4), 1.0), obs=x)

    with pytest.raises(ValueError, match=r"'x' has event_shape \(\).*expected event_shape \(4,\) \(one example"):
        PyroModel(per_coordinate, event_shape=4, support="real")


def test_a_registered_factory_loads_by_name(tmp_path):
    @pg.models.register("test-factor", description="latent-factor model")
    def factor(event_shape, support, *, latent=K):
        return PyroModel(factor_model, factor_guide, event_shape=event_shape, support=support)

    try:
        model = factor((D,), "real").double()
        assert pg.models.MODELS["test-factor"].cls is factor and accepted_kwargs(factor) == ["latent"]
        pg.fit(model, _truth(60)[0], epochs=2, batch_size=30, progress=False)
        loaded = pg.load(pg.save(model, tmp_path))
        assert type(loaded) is factor and loaded.config == model.config
        stored, kept = loaded.state_dict(), model.state_dict()
        assert stored.keys() == kept.keys() and all(torch.equal(stored[k], v) for k, v in kept.items())
    finally:
        del pg.models.MODELS["test-factor"]


def test_a_vae_written_as_plain_pyro_functions_scores_as_probgens_vae():
    """The same decoder and encoder, once in probgen's VAE and once in two plain functions with
    local latents: every bound, drawn from the same seed, is the same number."""
    x = pg.load_dataset("digits-binary").x[:300]
    vae = pg.models.VAE(64, "binary", latent_dim=4, hidden_features=(32,))
    pg.fit(vae, x, epochs=5, batch_size=100, progress=False, seed=0)
    decoder, encoder = vae.decoder, vae.encoder

    def model(x):
        pyro.module("decoder", decoder)
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", dist.Normal(x.new_zeros(4), 1.0).to_event(1))
            pyro.sample("x", dist.Bernoulli(logits=decoder(z)).to_event(1), obs=x)

    def guide(x):
        pyro.module("encoder", encoder)
        with pyro.plate("data", x.shape[0]):
            loc, scale = encoder(x)
            pyro.sample("z", dist.Normal(loc, scale).to_event(1))

    mine = PyroModel(model, guide, event_shape=64, support="binary", name="plain-vae")
    assert mine.sites.local == ("z",) and mine.density == "lower_bound"
    for method, options in (("elbo", {}), ("iwae", {"num_samples": 32}), ("ais", {"num_samples": 4, "ais_steps": 20})):
        scores = []
        for m in (mine, vae):
            pyro.set_rng_seed(1)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # "never fitted" (its weights are the VAE's), k-hat
                scores.append(pg.log_likelihood(m, x[:60], method=method, **options))
        assert scores[0].method == scores[1].method and scores[0].kind == scores[1].kind
        assert scores[0].nll == pytest.approx(scores[1].nll, rel=1e-6), method
        assert scores[0].stderr == pytest.approx(scores[1].stderr, rel=1e-4, abs=1e-9), method


def test_a_program_with_float64_networks_is_a_float64_model_and_a_broken_one_a_value_error():
    torch.manual_seed(0)
    net = torch.nn.Linear(3, 3).double()  # the user's own float64 network, captured by the program

    def model(x):
        pyro.module("net", net)
        with pyro.plate("data", x.shape[0]):
            pyro.sample("x", dist.Normal(net(torch.zeros_like(x)), 1.0).to_event(1), obs=x)

    m = PyroModel(model, event_shape=3, support="real")
    assert m.dtype == torch.float64 and m.density == "exact"
    x = torch.randn(5, 3, dtype=torch.float64)
    expected = dist.Normal(net.bias.detach(), 1.0).log_prob(x).sum(-1)
    torch.testing.assert_close(m.log_prob(x).detach(), expected)

    def broken(x):
        with pyro.plate("data", x.shape[0]):
            pyro.sample("x", dist.Normal(x @ torch.ones(4, 4), 1.0).to_event(1), obs=x)

    with pytest.raises(
        ValueError, match=r"failed on a placeholder data set of shape \(2, 3\) in float32 and in float64"
    ):
        PyroModel(broken, event_shape=3, support="real")
