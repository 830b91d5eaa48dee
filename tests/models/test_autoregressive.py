"""Autoregressive models: normalisation by enumeration, the autoregressive property by autograd,
sampling against log_prob (chi-square), ensembles, completion against the exact conditional."""

import itertools

import pytest
import torch
from scipy.stats import chisquare

import probgen as pg
from probgen.models import FVBN, MADE, NADE, Autoregressive, CausalTransformer, PixelCNN


def _image(d):
    rows = 3 if d % 3 == 0 else 2 if d % 2 == 0 else 1
    return (1, rows, d // rows)


# event shapes are flat (D,), except PixelCNN's (1, H, W) with H * W = D
BUILDERS = {
    "pixelcnn": lambda shape, support: PixelCNN(_image(shape[0]), support, hidden_channels=6, num_layers=3),
    "transformer": lambda shape, support: CausalTransformer(shape, support, embed_dim=8, num_heads=2, num_layers=2),
    "fvbn": lambda shape, support: FVBN(shape, support),
    "nade": lambda shape, support: NADE(shape, support, num_hidden=7),
    "made": lambda shape, support: MADE(shape, support, hidden_features=(13, 11)),
    "made-ensemble": lambda shape, support: MADE(shape, support, hidden_features=(13, 11), num_masks=3, seed=4),
}
NAMES = sorted(BUILDERS)
LEVEL = 0.001  # chi-square tests reject at this level


def _build(name, d, support="binary"):
    torch.manual_seed(1)
    return BUILDERS[name]((d,), support)


def _shaped(model, flat):
    return flat.reshape(len(flat), *model.event_shape)


def _all_configurations(d, k):
    return torch.tensor(list(itertools.product(range(k), repeat=d)), dtype=torch.float64)


def _train_a_little(model, k, steps=3):
    g = torch.Generator().manual_seed(2)
    x = torch.randint(0, k, (64, model.num_dims), generator=g).to(torch.float64)
    x[:, 1:] = torch.where(torch.rand(x[:, 1:].shape, generator=g) < 0.5, x[:, :-1], x[:, 1:])  # correlated
    before = [p.detach().clone() for p in model.parameters()]
    pg.fit(model, x.reshape(len(x), *model.event_shape), epochs=steps, batch_size=32, lr=0.05, progress=False)
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("d,k", [(10, 2), (6, 3)])
def test_probabilities_sum_to_one_before_and_after_training(name, d, k, float64):
    support = "binary" if k == 2 else f"discrete({k})"
    model = _build(name, d, support)
    every = _all_configurations(d, k)
    for _ in ("init", "trained"):
        total = model.log_prob(_shaped(model, every)).logsumexp(0).exp()
        assert abs(total.item() - 1) < 1e-5, total
        _train_a_little(model, k)


@pytest.mark.parametrize("name", NAMES)
def test_discretized_logistic_output_sums_to_one_before_and_after_training(name, float64):
    d, k = 5, 4
    torch.manual_seed(1)
    model = BUILDERS[name]((d,), f"discrete({k})")
    model = type(model).from_config({**model.config, "output": "logistic", "components": 3})
    every = _all_configurations(d, k)
    for _ in ("init", "trained"):
        total = model.log_prob(_shaped(model, every)).logsumexp(0).exp()
        assert abs(total.item() - 1) < 1e-5, total
        _train_a_little(model, k)


def test_discretized_logistic_levels_are_the_mixture_cdf_differences(float64):
    """Level j's probability is sum_c w_c (F_c(c_j + h) - F_c(c_j - h)) with logistic CDFs F_c,
    the end bins open, computed here without logs."""
    from probgen.models.autoregressive import OutputHead

    k, components = 6, 3
    head = OutputHead(f"discrete({k})", components, "logistic")
    params = torch.randn(7, 3 * components, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    logits, loc, raw = params.chunk(3, -1)
    weights, scale = logits.softmax(-1), raw.exp()
    edges = torch.linspace(-1, 1, k, dtype=torch.float64)[:-1] + 1 / (k - 1)  # k - 1 inner edges
    cdf = torch.sigmoid((edges[:, None] - loc[:, None, :]) / scale[:, None, :])  # [7, k-1, C]
    cdf = torch.cat([torch.zeros_like(cdf[:, :1]), cdf, torch.ones_like(cdf[:, :1])], 1)
    expected = ((cdf[:, 1:] - cdf[:, :-1]) * weights[:, None, :]).sum(-1)
    assert torch.allclose(head.dist(params).probs, expected, atol=1e-12)
    with pytest.raises(ValueError, match="unknown output 'softmax'"):
        OutputHead("discrete(3)", 2, "softmax")


@pytest.mark.parametrize("name", NAMES)
def test_real_density_integrates_to_one(name, float64):
    model = _build(name, 2, "real")
    grid = torch.linspace(-10, 10, 301, dtype=torch.float64)
    points = torch.cartesian_prod(grid, grid)
    with torch.no_grad():
        density = model.log_prob(_shaped(model, points)).exp().reshape(301, 301)
    integral = torch.trapezoid(torch.trapezoid(density, grid), grid)
    assert abs(integral.item() - 1) < 1e-3, integral


def _orderings(model):
    if isinstance(model, MADE):
        yield 1, model.connectivity(1)  # a member with a sampled ordering
        yield 2, model.connectivity(torch.randperm(model.num_dims, generator=torch.Generator().manual_seed(5)))
    else:
        from contextlib import nullcontext

        yield 0, nullcontext()


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("support", ["binary", "discrete(3)", "real"])
def test_conditional_i_does_not_depend_on_x_j_for_j_at_or_after_i(name, support, float64):
    _check_autoregressive(_build(name, 9, support), 9)


@pytest.mark.parametrize("name", NAMES)
def test_ordinal_inputs_keep_the_autoregressive_property(name, float64):
    model = _build(name, 9, "discrete(5)")
    _check_autoregressive(type(model).from_config({**model.config, "output": "logistic", "components": 2}), 9)


def _check_autoregressive(model, d):
    x = torch.rand(3, d, dtype=torch.float64)
    for _, context in _orderings(model):
        with context:
            jac = torch.autograd.functional.jacobian(lambda v: model._params(v).sum(0), x)  # [D, P, N, D]
            order = model.order.tolist()
            position = {dim: i for i, dim in enumerate(order)}
            for out_dim, in_dim in itertools.product(range(d), repeat=2):
                block = jac[out_dim, :, :, in_dim]
                if position[in_dim] >= position[out_dim]:
                    assert torch.all(block == 0), (out_dim, in_dim)
            # and the model does use what it may: the last conditional sees some earlier value
            assert jac[order[-1], :, :, order[:-1]].abs().sum() > 0


@pytest.mark.parametrize("name", NAMES)
def test_sample_frequencies_match_exp_log_prob(name, float64):
    d, n = 4, 20_000
    model = _build(name, d)
    _train_a_little(model, 2)
    every = _all_configurations(d, 2)
    expected = model.log_prob(_shaped(model, every)).detach().exp() * n
    draws = model.sample(n)
    model.validate(draws)
    draws = draws.reshape(n, d)
    index = (draws * 2 ** torch.arange(d - 1, -1, -1, dtype=torch.float64)).sum(-1).long()
    observed = torch.bincount(index, minlength=2**d).double()
    assert chisquare(observed.numpy(), expected.numpy()).pvalue > LEVEL


def test_ensemble_is_the_average_of_its_members(float64):
    model = _build("made-ensemble", 5)
    x = _all_configurations(5, 2)
    members = []
    for k in range(model.num_masks):
        with model.connectivity(k):
            members.append(model.log_prob(_shaped(model, x)).exp())
            assert abs(members[-1].sum().item() - 1) < 1e-10
    assert torch.allclose(model.log_prob(_shaped(model, x)).exp(), torch.stack(members).mean(0), rtol=1e-12)
    orders = {tuple(model.member(k)[0].tolist()) for k in range(model.num_masks)}
    assert len(orders) == model.num_masks  # distinct orderings


@pytest.mark.parametrize("name", ["nade", "transformer"])
def test_cached_conditionals_equal_the_full_pass(name, float64):
    """NADE's running pre-activation and the Transformer's key/value cache change nothing."""
    model = _build(name, 8, "discrete(3)")
    x = torch.randint(0, 3, (5, 8)).double()
    full = model._params(x)
    for start in (0, 3, 7):
        steps = list(model._conditionals(x, start))
        assert [d for d, _ in steps] == list(range(start, 8))
        for d, params in steps:
            assert torch.allclose(params, full[:, d], rtol=1e-10, atol=1e-10)
    torch.manual_seed(3)
    cached = model.sample(200)
    model._conditionals = lambda x, start: Autoregressive._conditionals(model, x, start)  # recompute each step
    torch.manual_seed(3)
    assert torch.equal(model.sample(200), cached)


def test_pixelcnn_has_no_blind_spot(float64):
    """Gated vertical/horizontal stacks: the last pixel of a 4x4 image sees all 15 before it
    (stacked 3x3 masked convolutions would miss the upper right)."""
    model = PixelCNN((1, 4, 4), "binary", hidden_channels=4, num_layers=4)
    x = torch.rand(2, 16, dtype=torch.float64)
    jac = torch.autograd.functional.jacobian(lambda v: model._params(v)[:, -1].sum(), x)  # [N, D]
    assert (jac[:, :15].abs().sum(0) > 0).all()
    assert (jac[:, 15] == 0).all()


def _exact_conditional(model, x, mask):
    """p(missing | observed) of one example by enumeration, indexed like the completion codes."""
    d = model.num_dims
    every = _all_configurations(d, 2)
    consistent = (every[:, mask] == x[mask]).all(-1)
    p = model.log_prob(_shaped(model, every)).detach().exp() * consistent
    return every, p / p.sum()


@pytest.mark.parametrize(
    "name,mask",
    [
        ("fvbn", [1, 1, 0, 0, 0]),  # observed first in the ordering: exact draws
        ("nade", [1, 1, 1, 0, 0]),
        ("made", [1, 0, 0, 0, 0]),
        ("made-ensemble", [0, 1, 0, 1, 0]),  # order-agnostic: an ordering with these first
        ("pixelcnn", [1, 1, 0, 0, 0]),
        ("transformer", [1, 1, 1, 1, 0]),
    ],
)
def test_completions_keep_the_observed_values_and_follow_the_exact_conditional(name, mask, float64):
    model = _build(name, 5)
    _train_a_little(model, 2)
    mask = torch.tensor(mask, dtype=torch.bool)
    x = torch.tensor([[1.0, 0.0, 1.0, 1.0, 0.0]])
    n = 20_000
    if isinstance(model, MADE) and model.num_masks > 1:
        order = torch.cat([mask.nonzero()[:, 0], (~mask).nonzero()[:, 0]])
        with model.connectivity(order):  # the completion's model: the same ordering and mask
            every, p = _exact_conditional(model, x[0], mask)
    else:
        every, p = _exact_conditional(model, x[0], mask)
    draws = model.complete(_shaped(model, x), mask.reshape(model.event_shape), n)
    assert draws.shape == (n, 1, *model.event_shape)
    draws = draws.reshape(n, 1, 5)
    assert torch.equal(draws[:, 0, mask], x[:, mask].expand(n, -1))
    index = (draws[:, 0] * 2 ** torch.arange(4, -1, -1, dtype=torch.float64)).sum(-1).long()
    observed = torch.bincount(index, minlength=32).double()
    keep = p > 0
    assert observed[~keep].sum() == 0
    assert chisquare(observed[keep].numpy(), (p[keep] * n).numpy()).pvalue > LEVEL


def test_completion_with_observed_values_late_in_the_ordering_resamples(float64):
    model = _build("nade", 4)
    _train_a_little(model, 2)
    mask = torch.tensor([False, True, False, True])
    x = torch.tensor([[0.0, 1.0, 0.0, 0.0]])
    every, p = _exact_conditional(model, x[0], mask)
    draws = model.complete(x, mask, 4000, num_particles=200)
    assert torch.equal(draws[:, 0, mask], x[:, mask].expand(4000, -1))
    index = (draws[:, 0] * 2 ** torch.arange(3, -1, -1, dtype=torch.float64)).sum(-1).long()
    freq = torch.bincount(index, minlength=16).double() / 4000
    assert (freq - p).abs().sum() / 2 < 0.05  # total variation: resampling is consistent, not exact


@pytest.mark.parametrize("name", NAMES)
def test_bad_input_is_refused(name):
    model = _build(name, 6, "discrete(3)")
    shape = ", ".join(map(str, model.event_shape))
    with pytest.raises(ValueError, match=r"mask has shape \(5,\); expected the event shape \(" + shape):
        model.complete(torch.zeros(2, *model.event_shape), torch.ones(5, dtype=torch.bool), 3)
    with pytest.raises(ValueError, match=r"outside the support 'discrete\(3\)'"):
        model.log_prob(torch.full((2, *model.event_shape), 3.0))  # a fourth level
    with pytest.raises(ValueError, match=r"shape \(2, 7\); expected \(N, " + shape):
        model.log_prob(torch.zeros(2, 7))
    with pytest.raises(ValueError, match="components must be a positive integer"):
        type(model)((6,), "real", components=0)


def test_free_parameter_counts_follow_their_formulas():
    n, h = 12, 5
    assert FVBN(n, "binary").num_free_parameters() == n * (n + 1) // 2
    assert NADE(n, "binary", num_hidden=h).num_free_parameters() == 2 * n * h + n + h
    # one hidden layer: unit k of degree m_k sees m_k inputs and feeds n - m_k outputs, n weights in all
    assert MADE(n, "binary", hidden_features=(h,), num_masks=3).num_free_parameters() == n * h + h + n


@pytest.mark.parametrize("name", NAMES)
def test_the_pyro_program_scores_x_by_log_prob(name, float64):
    """The observed site's log-probability is log p(x) (one random member for a training MADE ensemble)."""
    import pyro.poutine as poutine

    model = _build(name, 6)
    x = _shaped(model, torch.randint(0, 2, (9, 6)).double())
    site = poutine.trace(model.model).get_trace(x).nodes["x"]
    traced = site["fn"].log_prob(site["value"])
    if name == "made-ensemble":
        members = []
        for k in range(model.num_masks):
            with model.connectivity(k):
                members.append(model.log_prob(x))
        assert any(torch.allclose(traced, m, rtol=1e-12) for m in members)
        assert not torch.allclose(traced, model.log_prob(x), rtol=1e-6)  # not the ensemble
    else:
        assert torch.allclose(traced, model.log_prob(x), rtol=1e-12)
        assert torch.allclose(site["fn"].log_prob(x.clone()), traced, rtol=1e-12)  # recomputed for another tensor


@pytest.mark.parametrize("num_masks", [1, 3])
def test_made_dropout_only_in_the_training_program(num_masks, float64):
    """With dropout > 0, log_prob is deterministic and normalised (the whole network, before
    and after training), sample and complete equal those of the same weights without dropout,
    and the training program's log p(x) varies from call to call."""
    import pyro.poutine as poutine

    d = 8
    torch.manual_seed(1)
    model = MADE((d,), "binary", hidden_features=(13, 11), num_masks=num_masks, seed=4, dropout=0.5)
    every = _all_configurations(d, 2)
    for _ in ("init", "trained"):
        first, second = model.log_prob(every), model.log_prob(every)
        assert torch.equal(first, second)
        assert abs(first.logsumexp(0).exp().item() - 1) < 1e-5
        _train_a_little(model, 2)
    plain = MADE.from_config({**model.config, "dropout": 0.0})
    plain.load_state_dict(model.state_dict())
    assert torch.equal(plain.log_prob(every), model.log_prob(every))
    drawn = []
    for m in (model, plain):
        torch.manual_seed(3)
        drawn.append((m.sample(50), m.complete(every[:2], torch.arange(d) < 3, 5)))
    assert all(torch.equal(a, b) for a, b in zip(*drawn, strict=True))
    x = every[::17]
    with model.connectivity(0):  # one member, so only dropout can change the objective
        traced = [poutine.trace(model.model).get_trace(x).nodes["x"] for _ in range(2)]
        scores = [site["fn"].log_prob(site["value"]) for site in traced]
        assert not torch.allclose(scores[0], scores[1])
    with plain.connectivity(0):
        site = poutine.trace(plain.model).get_trace(x).nodes["x"]
        assert torch.allclose(site["fn"].log_prob(site["value"]), plain.log_prob(x), rtol=1e-12)


def test_made_dropout_is_checked_and_saved_in_the_config():
    model = MADE(6, "binary", hidden_features=(5,), dropout=0.25)
    assert model.config["dropout"] == 0.25
    assert MADE.from_config(model.config).dropout == 0.25
    assert MADE(6, "binary").config["dropout"] == 0.0
    for bad in (-0.1, 1.0, 1.5, "0.5", None, True):
        with pytest.raises(ValueError, match=r"dropout must be a number in \[0, 1\)"):
            MADE(6, "binary", dropout=bad)


@pytest.mark.parametrize("support, k", [("binary", 2), ("discrete(3)", 3)])
def test_pixelcnn_dropout_only_in_the_training_program(support, k, float64):
    """PixelCNN's dropout, like MADE's: log_prob is deterministic and normalised over every
    image (before and after training), equals that of the same weights without dropout, and
    the training program's log p(x) varies from call to call."""
    import pyro.poutine as poutine

    torch.manual_seed(0)
    model = PixelCNN((1, 2, 3), support, hidden_channels=6, num_layers=3, dropout=0.5)
    every = _all_configurations(6, k).reshape(-1, 1, 2, 3)
    for _ in ("init", "trained"):
        first, second = model.log_prob(every), model.log_prob(every)
        assert torch.equal(first, second)
        assert abs(first.logsumexp(0).exp().item() - 1) < 1e-5
        _train_a_little(model, k)
    plain = PixelCNN.from_config({**model.config, "dropout": 0.0})
    plain.load_state_dict(model.state_dict())
    assert torch.equal(plain.log_prob(every), model.log_prob(every))
    x = every[:: max(1, len(every) // 9)]
    traced = [poutine.trace(model.model).get_trace(x).nodes["x"] for _ in range(2)]
    scores = [site["fn"].log_prob(site["value"]) for site in traced]
    assert not torch.allclose(scores[0], scores[1])
    site = poutine.trace(plain.model).get_trace(x).nodes["x"]
    assert torch.allclose(site["fn"].log_prob(site["value"]), plain.log_prob(x), rtol=1e-12)
    assert PixelCNN.from_config(model.config).dropout == 0.5
    with pytest.raises(ValueError, match=r"dropout must be a number in \[0, 1\)"):
        PixelCNN((1, 2, 3), support, dropout=1.0)
