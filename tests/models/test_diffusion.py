"""DDPM: the bound's terms against closed forms (Gaussian KLs, Ho et al.'s eq. 12, the
discretized decoder), the discretized Gaussian normalising over the levels, the bound below the
exact log-likelihood of a linear-Gaussian reverse process and below the quadrature log-likelihood of
a trained 1-D model, and training tightening the bound."""

import math

import pytest
import torch

import probgen as pg
from probgen.models import DDPM
from probgen.models.diffusion import DiscretizedGaussian, ddpm_simple_loss


@pytest.mark.parametrize("levels", [2, 17])
def test_discretized_gaussian_normalises_over_the_levels(levels, float64):
    loc, scale = torch.tensor([-1.3, -0.2, 0.05, 0.9, 2.0]), torch.tensor([0.01, 0.3, 1.0, 0.07, 0.5])
    d = DiscretizedGaussian(loc[:, None], scale[:, None], levels)
    total = torch.logsumexp(d.log_prob(torch.arange(levels, dtype=torch.float64)), -1)
    assert torch.allclose(total, torch.zeros(5), atol=1e-9)


def _normal_cdf(z):
    return 0.5 * (1 + math.erf(z / math.sqrt(2)))


def test_bound_terms_equal_closed_forms_with_two_steps(float64):
    """T = 2: prior KL in closed form, L_1 by Ho et al.'s eq. (12) in the noise, and the
    decoder's probability by the normal CDF over each pixel's bin."""
    torch.manual_seed(0)
    ddpm = DDPM(3, "discrete(5)", steps=2, hidden_features=(8,), beta_range=(0.1, 0.3), reverse_variance="posterior",
                parameterization="noise").double()  # fmt: skip
    x = torch.tensor([[0.0, 2.0, 4.0], [1.0, 3.0, 0.0]])
    torch.manual_seed(1)
    terms = ddpm.variational_bound(x)
    x0 = 2 * x / 4 - 1
    b1, b2 = ddpm.betas[1], ddpm.betas[2]
    ab2 = (1 - b1) * (1 - b2)
    mean, var = ab2.sqrt() * x0, 1 - ab2
    prior = 0.5 * (mean**2 + var - 1 - var.log()).sum(-1)
    assert torch.allclose(terms["prior"], prior, rtol=1e-10)
    torch.manual_seed(1)
    x2 = torch.normal(mean, var.sqrt().expand(mean.shape))
    noise = (x2 - mean) / var.sqrt()
    sigma2 = b2 * b1 / (1 - ab2)  # the posterior variance, beta~_2
    weight = b2**2 / (2 * sigma2 * (1 - b2) * (1 - ab2))
    l1 = weight * ((noise - ddpm.epsilon(x2, 2)) ** 2).sum(-1)
    assert torch.allclose(terms["diffusion"], l1, rtol=1e-9)
    post_mean = ((1 - b1).sqrt() * b2 * x0 + (1 - b2).sqrt() * b1 * x2) / (1 - ab2)
    x1 = torch.normal(post_mean, sigma2.sqrt().expand(mean.shape))
    mu, s = ddpm.reverse_mean(x1, 1).detach(), b1.sqrt().item()
    decoder = torch.zeros(2)
    for i in range(2):
        for j in range(3):
            lo = -math.inf if x[i, j] == 0 else (x0[i, j] - 0.25 - mu[i, j]).item() / s
            hi = math.inf if x[i, j] == 4 else (x0[i, j] + 0.25 - mu[i, j]).item() / s
            decoder[i] -= math.log(_normal_cdf(hi) - _normal_cdf(lo))
    assert torch.allclose(terms["decoder"], decoder, rtol=1e-6)
    assert torch.allclose(terms["total"], prior + l1 + decoder, rtol=1e-6)
    assert torch.allclose(terms["bits_per_dim"], terms["total"] / (3 * math.log(2)))


def _linear_gaussian_ddpm(reverse_variance):
    """eps(x_t, t) = sqrt(1 - alpha_bar_t) x_t, the optimal denoiser of N(0, 1) data: the reverse
    process is linear-Gaussian, x_{t-1} = sqrt(1 - beta_t) x_t + sigma_t z, so p(x_0) is a
    Gaussian whose variance propagates exactly."""
    ddpm = DDPM(1, "real", steps=10, hidden_features=(4,), reverse_variance=reverse_variance).double()
    ddpm.init_from_data(torch.tensor([[1.0], [3.0], [2.0], [4.0]]))  # data loc 2.5, scale 1.29
    slope = (1 - ddpm.alpha_bars).sqrt()
    ddpm.epsilon = lambda x_t, t: slope[t] * x_t
    variance = torch.tensor(1.0)
    for t in range(10, 0, -1):
        variance = (1 - ddpm.betas[t]) * variance + ddpm._reverse_scale(t) ** 2
    return ddpm, torch.distributions.Normal(ddpm.data_loc, ddpm.data_scale * variance.sqrt())


X = torch.tensor([[2.5], [0.0], [5.0]], dtype=torch.float64)


def test_bound_is_exact_when_the_reverse_process_is_the_exact_reversal(float64):
    """With sigma_t^2 = beta_t the chain above is the time reversal of the forward process on
    N(0, 1) data: p(x_0:T) = q(x_0:T), so every draw of log p(x_0:T) - log q(x_1:T | x_0) (the
    Pyro program's ELBO) equals log p(x) = log N(x; loc, scale); the analytic-KL terms of
    variational_bound average to it."""
    ddpm, marginal = _linear_gaussian_ddpm("beta")
    exact = marginal.log_prob(X).squeeze(-1)
    assert torch.allclose(marginal.scale, ddpm.data_scale, rtol=1e-12)
    for seed in range(3):
        torch.manual_seed(seed)
        elbo = pg.log_likelihood(ddpm, X, method="elbo", num_samples=4)
        assert math.isclose(elbo.nats, exact.mean().item(), rel_tol=1e-9) and elbo.kind == "lower_bound"
    torch.manual_seed(0)
    draws = -ddpm.variational_bound(X.repeat(2000, 1))["total"].reshape(2000, 3)
    assert ((draws.mean(0) - exact).abs() < 4 * draws.std(0) / math.sqrt(2000)).all()


def test_bound_is_below_the_exact_log_likelihood_of_a_mismatched_reverse_process(float64):
    """With sigma_t^2 = beta~_t (smaller than the reversal's beta_t) the bound is strictly below."""
    ddpm, marginal = _linear_gaussian_ddpm("posterior")
    torch.manual_seed(0)
    draws = -ddpm.variational_bound(X.repeat(1000, 1))["total"].reshape(1000, 3)
    gap = marginal.log_prob(X).squeeze(-1) - draws.mean(0)
    assert (gap > 10 * draws.std(0) / math.sqrt(1000)).all(), gap


def _log_marginal_by_quadrature(ddpm, x, grid):
    """log p(x_0) of a 1-D DDPM's reverse process, exactly up to quadrature error: the density of
    x_t on ``grid`` is pushed through each Gaussian reverse step (a Riemann sum over x_t), from
    p(x_T) = N(0, 1) down to the decoder p(x_0 | x_1)."""
    step = grid[1] - grid[0]
    with torch.no_grad():
        density = torch.distributions.Normal(0.0, 1.0).log_prob(grid).exp()
        for t in range(ddpm.steps, 1, -1):
            mean, scale = (v.squeeze(-1) for v in ddpm.reverse(grid[:, None], t))  # scale: per x_t if learned
            kernel = torch.exp(-0.5 * ((grid[:, None] - mean) / scale) ** 2) / (scale * math.sqrt(2 * math.pi))
            density = kernel @ density * step  # kernel[i, j] = p(x_{t-1} = grid_i | x_t = grid_j)
        decoder = ddpm._decoder(grid[:, None]).log_prob(x[:, None, :])  # [x_0, x_1]
        return torch.logsumexp(decoder + density.log() + step.log(), -1), density.sum() * step


@pytest.mark.parametrize(
    "options",
    [{"reverse_variance": "beta"}, {"reverse_variance": "learned"}],
    ids=["fixed", "learned"],
)
def test_bound_is_below_the_quadrature_log_likelihood_and_tightens_with_training(options, float64):
    """A 1-D two-Gaussian mixture: the reported bound stays below the model's own log p(x) (by
    quadrature over the reverse chain, which integrates to 1) before and after training (by
    L_simple, or the hybrid loss for learned variances), and training raises it towards the
    data's true log-likelihood, with a smaller gap."""
    torch.manual_seed(0)
    mixture = torch.distributions.MixtureSameFamily(
        torch.distributions.Categorical(torch.tensor([0.5, 0.5])),
        torch.distributions.Normal(torch.tensor([-2.0, 2.0]), torch.tensor([0.5, 0.5])),
    )
    train, test = mixture.sample((1000, 1)), mixture.sample((300, 1))
    true = mixture.log_prob(test).squeeze(-1).mean().item()
    ddpm = DDPM(1, "real", steps=10, hidden_features=(32, 32), beta_range=(0.01, 0.3), **options).double()
    ddpm.init_from_data(train)
    grid, gaps, bounds = torch.linspace(-16, 16, 1601), [], []
    for epochs in (0, 40):
        pg.fit(ddpm, train, epochs=epochs, lr=1e-2, batch_size=100, progress=False) if epochs else None
        exact, mass = _log_marginal_by_quadrature(ddpm, test, grid)
        assert abs(mass.item() - 1) < 1e-5, mass  # the marginal of x_1 on the grid is a density
        draws = -ddpm.variational_bound(test.repeat(50, 1))["total"].reshape(50, -1).mean(0)
        gap = exact - draws  # log p(x) - bound, per test point: positive in expectation
        assert gap.mean() > -3 * gap.std() / math.sqrt(len(gap)), gap.mean()
        bounds.append(draws.mean().item())
        gaps.append(true - bounds[-1])
        assert bounds[-1] < true
    assert bounds[1] > bounds[0] + 0.2 and gaps[1] < 0.5 * gaps[0], (bounds, true)


def test_training_lowers_the_bound_on_17_level_digits():
    train, test = pg.load_dataset("digits"), pg.load_dataset("digits", "test")
    torch.manual_seed(0)
    ddpm = DDPM.from_dataset(train, steps=20, hidden_features=(128,))
    before = pg.log_likelihood(ddpm, test.x[:200], method="elbo", num_samples=1)
    pg.fit(ddpm, train, epochs=5, lr=2e-3, batch_size=100, objective=ddpm_simple_loss, progress=False)
    after = pg.log_likelihood(ddpm, test.x[:200], method="elbo", num_samples=1)
    assert before.kind == after.kind == "lower_bound" and math.isfinite(after.nats)
    assert after.nll < before.nll - 20 * (before.stderr + after.stderr)
    with pytest.raises(ValueError, match="no exact log_prob"):
        ddpm.log_prob(test.x)


def test_chains_and_samples_have_the_expected_shapes():
    ddpm = DDPM((1, 2, 2), "binary", steps=6, hidden_features=(8,))
    reverse = ddpm.reverse_chain(3, every=2)
    assert [r.shape for r in reverse[:-1]] == [(3, 4)] * 3 and reverse[-1].shape == (3, 1, 2, 2)
    assert set(reverse[-1].unique().tolist()) <= {0.0, 1.0}
    forward = ddpm.forward_chain(torch.ones(5, 1, 2, 2), every=3)
    assert len(forward) == 3 and torch.equal(forward[0], torch.ones(5, 4))


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="steps must be a positive integer, got 0"):
        DDPM(2, "real", steps=0)
    with pytest.raises(ValueError, match=r"beta_range must be two numbers in \(0, 1\) .*, got \(0.0001, 1.2\)"):
        DDPM(2, "real", steps=10, beta_range=(1e-4, 1.2))


def test_cosine_schedule_follows_its_alpha_bar():
    """Nichol & Dhariwal's eq. 17: alpha_bar_t = f(t) / f(0) with f(t) = cos^2(...), betas clipped at 0.999."""
    ddpm = DDPM(2, "real", steps=40, schedule="cosine").double()
    t = torch.arange(41, dtype=torch.float64)
    f = torch.cos((t / 40 + 0.008) / 1.008 * math.pi / 2) ** 2
    unclipped = (f / f[0])[:-1]  # the last beta is clipped, so compare the steps before it
    assert torch.allclose(ddpm.alpha_bars[:-1], unclipped, rtol=1e-6)
    assert ddpm.betas[-1].item() == pytest.approx(0.999)


def _learned(steps=3, v=None, parameterization="noise"):
    """Betas large enough that every term, the decoder's too, weighs in the bound."""
    ddpm = DDPM(3, "discrete(5)", steps=steps, hidden_features=(8,), beta_range=(0.2, 0.4), reverse_variance="learned",
                parameterization=parameterization).double()  # fmt: skip
    if v is not None:  # the v half of the output fixed at v, the noise half left as it is
        last = ddpm.denoiser[-1]
        with torch.no_grad():
            last.weight[3:] = 0
            last.bias[3:] = v
    return ddpm


@pytest.mark.parametrize("v", [30.0, -30.0, 0.0])
def test_learned_variance_interpolates_between_beta_and_the_posterior_variance(v, float64):
    ddpm = _learned(v=v)
    b, ab = ddpm.betas, ddpm.alpha_bars
    tilde = [None, b[2] * b[1] / (1 - ab[2]), b[2] * (1 - ab[1]) / (1 - ab[2]), b[3] * (1 - ab[2]) / (1 - ab[3])]
    x = torch.randn(4, 3)
    for t in (1, 2, 3):  # beta~_1 = 0 is clipped to beta~_2
        low = tilde[t] if t > 1 else tilde[2]
        expected = {30.0: b[t], -30.0: low, 0.0: (b[t] * low).sqrt()}[v]  # tanh(30) = 1 in float64
        torch.testing.assert_close(ddpm.reverse(x, t)[1] ** 2, expected.expand(4, 3), rtol=1e-12, atol=0)


@pytest.mark.parametrize("parameterization", ["noise", "levels"])
def test_the_hybrid_loss_bound_term_is_an_unbiased_estimate_of_the_bound(parameterization, float64):
    """Over uniform t and x_t ~ q(x_t | x_0), T times the hybrid loss's bound term plus the prior KL
    averages to the variational bound (Ho et al.'s L = L_T + sum_t L_{t-1} + L_0)."""
    torch.manual_seed(0)
    ddpm = _learned(steps=4, parameterization=parameterization)
    x = torch.tensor([[0.0, 2.0, 4.0], [1.0, 3.0, 0.0]]).repeat(4000, 1)
    x0, flat = ddpm._to_diffusion(x), ddpm._observed(x)
    with torch.no_grad():
        t = torch.randint(1, 5, (len(x),))
        ab = ddpm.alpha_bars[t][:, None]
        x_t = ab.sqrt() * x0 + (1 - ab).sqrt() * torch.randn_like(x0)
        eps, v, logits = ddpm._denoise(x_t, t)
        estimate = 4 * ddpm._bound_term(flat, x0, x_t, t, ddpm._mean(x_t, t, eps), logits, v)
        exact = ddpm.variational_bound(x)
    assert estimate[t == 1].mean() > 1  # the decoder's term is no rounding error here
    estimate = estimate + exact["prior"]
    for row in range(2):
        a, b = estimate[row::2], exact["total"][row::2]
        se = (a.var() / len(a) + b.var() / len(b)).sqrt()
        assert abs(a.mean() - b.mean()) < 4 * se, (a.mean(), b.mean(), se)


def test_the_hybrid_loss_trains_the_variances_and_only_they_feel_the_bound(float64):
    """The bound term's gradient reaches the v outputs, not the noise prediction (stop-gradient)."""
    torch.manual_seed(0)
    ddpm = _learned()
    x = torch.tensor([[0.0, 2.0, 4.0], [1.0, 3.0, 0.0]]).repeat(50, 1)
    grads = {}
    for weight in (0.0, 1.0):
        ddpm.zero_grad()
        torch.manual_seed(1)
        ddpm.simple_loss(x, vlb_weight=weight).backward()
        grads[weight] = ddpm.denoiser[-1].bias.grad.clone()
    torch.testing.assert_close(grads[1.0][:3], grads[0.0][:3])  # the noise half: L_simple's only
    assert (grads[0.0][3:] == 0).all() and (grads[1.0][3:] != 0).all()


def test_options_round_trip_and_bad_ones_are_refused(tmp_path):
    options = {"schedule": "cosine", "reverse_variance": "learned", "vlb_weight": 0.01, "parameterization": "levels"}
    ddpm = DDPM(4, "binary", steps=5, hidden_features=(8,), **options)
    loaded = pg.load(pg.save(ddpm, tmp_path / "ddpm.safetensors"))
    assert {k: getattr(loaded, k) for k in options} == options
    torch.testing.assert_close(loaded.betas, ddpm.betas)
    old = {
        "name": "ddpm",
        "event_shape": [4],
        "support": "binary",
        "steps": 5,
        "hidden_features": [8],
    }  # before the options
    old |= {"beta_range": [0.001, 0.2], "reverse_variance": "beta"}
    assert DDPM.from_config(old).parameterization == "noise"
    assert DDPM(4, "binary").config["parameterization"] == "levels"  # the default for discrete data
    assert DDPM(4, "real").config["parameterization"] == "noise"
    assert DDPM(4, "discrete(256)").config["parameterization"] == "noise"  # a 4 x 256-unit output otherwise
    with pytest.raises(ValueError, match="unknown schedule 'cos'"):
        DDPM(2, "real", schedule="cos")
    with pytest.raises(ValueError, match=r"vlb_weight must be a non-negative number \(finite\), got -1"):
        DDPM(2, "real", vlb_weight=-1)
    for bad in [(float("nan"), 0.2), (0.1, 1.0), (0.1,), "0.1, 0.2", (True, 0.2)]:
        with pytest.raises(ValueError, match=r"beta_range must be two numbers in \(0, 1\)"):
            DDPM(2, "real", beta_range=bad)
    with pytest.raises(ValueError, match="parameterization 'levels' needs discrete data .* got 'real'"):
        DDPM(2, "real", parameterization="levels")
    with pytest.raises(ValueError, match="unknown parameterization 'x0'"):
        DDPM(2, "binary", parameterization="x0")


def _levels_ddpm(**options):
    return DDPM(1, "discrete(5)", steps=10, hidden_features=(32, 32), parameterization="levels", **options).double()


def test_levels_posterior_is_bayes_rule_over_the_levels(float64):
    """With the network's output at zero the prediction of x_0 is the posterior mean of the levels
    under a uniform prior, Gaussian likelihood q(x_t | x_0 = c_k); at low noise, the level itself."""
    ddpm = _levels_ddpm(beta_range=(1e-4, 0.3))
    with torch.no_grad():
        ddpm.denoiser[-1].weight.zero_()
        ddpm.denoiser[-1].bias.zero_()
    levels = torch.linspace(-1, 1, 5)
    for t in (1, 4, 10):
        ab = ddpm.alpha_bars[t]
        x_t = torch.tensor([[-0.9], [0.1], [0.7]])
        weights = torch.distributions.Normal(ab.sqrt() * levels, (1 - ab).sqrt()).log_prob(x_t).softmax(-1)
        eps = (x_t - ab.sqrt() * (weights * levels).sum(-1, keepdim=True)) / (1 - ab).sqrt()
        torch.testing.assert_close(ddpm.epsilon(x_t, t), eps, rtol=1e-10, atol=1e-12)
    ab = ddpm.alpha_bars[1]  # noise 0.01 against levels 0.5 apart: x_0 is certain
    x_t = ab.sqrt() * levels[:, None] + 0.02
    x0 = (x_t - (1 - ab).sqrt() * ddpm.epsilon(x_t, 1)) / ab.sqrt()
    torch.testing.assert_close(x0, levels[:, None], rtol=0, atol=1e-9)


def test_levels_ddpm_is_normalised_and_its_bound_is_below_it(float64):
    """1-D data on 5 levels: P(x_0 = k) by quadrature over the reverse chain sums to 1 over the
    levels (the categorical decoder is a distribution), the bound is below log P(k) at every level,
    and training by the hybrid loss brings P close to the data's frequencies."""
    torch.manual_seed(0)
    freqs = torch.tensor([0.1, 0.4, 0.05, 0.3, 0.15])
    train = torch.distributions.Categorical(freqs).sample((2000, 1)).double()
    ddpm = _levels_ddpm(beta_range=(0.03, 0.3), reverse_variance="learned")
    pg.fit(ddpm, train, epochs=30, lr=3e-3, batch_size=100, progress=False)
    levels = torch.arange(5.0)[:, None]
    exact, mass = _log_marginal_by_quadrature(ddpm, levels, torch.linspace(-12, 12, 2401))
    assert abs(mass.item() - 1) < 1e-5 and abs(exact.exp().sum().item() - 1) < 1e-4, (mass, exact.exp())
    bound = -ddpm.variational_bound(levels.repeat(400, 1))["total"].reshape(400, 5)
    assert (bound.mean(0) < exact + 3 * bound.std(0) / 20).all(), (bound.mean(0), exact)
    kl = (freqs * (freqs.log() - exact)).sum()
    assert kl < 0.05, (exact.exp(), kl)  # 0.21 for the uniform start


def test_validation_scores_the_bound_not_the_training_loss():
    """The best epoch is chosen by the bound (analytic KLs): its validation loss per example is the
    mean negative bound of the validation data, which the hybrid training loss is not."""
    torch.manual_seed(0)
    train, val = pg.load_dataset("digits-binary"), pg.load_dataset("digits-binary", "val")
    ddpm = DDPM.from_dataset(train, steps=10, hidden_features=(32,))
    result = pg.fit(ddpm, train, val_data=val, epochs=2, lr=2e-3, batch_size=100, progress=False)
    bound = ddpm.variational_bound(val.x)["total"]  # of the best epoch's weights, where fit leaves the model
    best = min(range(2), key=lambda e: result.history[e]["val_loss"])
    assert result.history[best]["val_loss"] == pytest.approx(bound.mean().item(), abs=4 * bound.std().item() / 18)
    assert abs(result.history[best]["train_loss"] - bound.mean().item()) > 5  # a different quantity
