"""Every flow's log_prob is finite (and float32 agrees with float64) for every finite input, and
the rational-quadratic spline of the neural spline flows is exact.

The flows are fitted on moons (small networks, full batches) for 0, 3 and 50 epochs, two seeds,
and scored on [-10, 10]^2 — up to about 10 standard units from the data — including the two
points of the bug report where Pyro's spline inverse asserted on a negative discriminant. The
spline is checked in float64 against autograd, Pyro's implementation (where that one runs),
its own inverse, and the normalisation of a 1-D spline flow.
"""

import math

import pytest
import torch
import torch.nn.functional as F
from pyro.distributions.transforms import SplineAutoregressive, SplineCoupling
from pyro.distributions.transforms.spline import _monotonic_rational_spline
from pyro.nn import AutoRegressiveNN, DenseNN

import probgen as pg
from probgen.models import MODELS
from probgen.models.flows.base import reverse
from probgen.models.flows.rational_quadratic import (
    MIN_DERIVATIVE,
    RationalQuadraticSpline,
    rational_quadratic_spline,
)

NAMES = ["nsf", "nsf-ar", "realnvp", "maf", "iaf", "naf"]
SEEDS = (0, 1)
EPOCHS = (0, 3, 50)
SMALL = {"num_layers": 2, "hidden_features": (16,)}
#: the points of the bug report (float32, float64), then a 41 x 41 grid
AXIS = torch.linspace(-10, 10, 41)
POINTS = torch.cat([torch.tensor([[4.64, 4.38], [4.8, 5.18]]), torch.cartesian_prod(AXIS, AXIS)])


def _copy(model, dtype):
    """The same flow (config and weights) in ``dtype``, with fresh transform caches."""
    other = type(model).from_config(model.config)
    other.load_state_dict(model.state_dict())
    return other.to(dtype).eval()


@pytest.fixture(scope="module")
def fitted():
    """``fitted(name, seed, epochs)``: a flow fitted on moons, shared by the cases (seed 0 fitted
    in float32, seed 1 in float64, so both of fit's dtypes are covered)."""
    data, cache = pg.load_dataset("moons"), {}

    def get(name, seed, epochs):
        if (name, seed, epochs) not in cache:
            torch.manual_seed(seed)
            model = MODELS[name].cls.from_dataset(data, **SMALL)
            if epochs:
                dtype = torch.float64 if seed else torch.float32
                pg.fit(model, data, epochs=epochs, batch_size=2000, lr=1e-2, seed=seed, dtype=dtype, progress=False)
            else:
                model.init_from_data(data.x)  # what fit does before its first epoch
            cache[name, seed, epochs] = model
        return cache[name, seed, epochs]

    return get


@pytest.mark.parametrize("epochs", EPOCHS)
@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("name", NAMES)
def test_log_prob_is_finite_far_from_the_data_in_both_dtypes(fitted, name, seed, epochs):
    model = fitted(name, seed, epochs)
    scores = {}
    for dtype in (torch.float32, torch.float64):
        with torch.no_grad():
            scores[dtype] = _copy(model, dtype).log_prob(POINTS.to(dtype)).double()
        bad = ~torch.isfinite(scores[dtype])
        assert not bad.any(), (
            f"{name}, {dtype}: log_prob {scores[dtype][bad][:3].tolist()} at {POINTS[bad][:3].tolist()}"
        )
    # the same parameters: float32 loses digits, not the answer (NAF's saturated sigmoids, scored
    # as D and logit(D), were off by up to 95% here)
    f32, f64 = scores[torch.float32], scores[torch.float64]
    worst = ((f32 - f64).abs() / (1 + f64.abs())).max()
    assert worst < 1e-2, f"{name}: float32 log_prob off from float64 by {worst:.2g} (relative)"


@pytest.mark.parametrize("name", NAMES)
def test_non_finite_input_is_refused_by_name(name):
    model = MODELS[name].cls(2, **SMALL)
    for bad in (math.nan, math.inf, -math.inf):
        x = torch.zeros(3, 2)
        x[1, 0] = bad
        with pytest.raises(ValueError, match=r"x contains NaN or inf values \(first at index \[1, 0\]\)"):
            model.log_prob(x)


# ---------------------------------------------------------------------------------- the spline
BOUND, K = 3.0, 6


def _params(n, scale=2.0, seed=0):
    """Unnormalized widths, heights, derivatives of ``n`` splines; scale 2 gives bins from
    near the minimum width to most of the interval, slopes from 1e-3 to about 1e3."""
    g = torch.Generator().manual_seed(seed)
    return tuple(scale * torch.randn(n, m, generator=g, dtype=torch.float64) for m in (K, K, K - 1))


def _knot_values(params, which):
    """The interior knots of each spline, ``which`` = 0 (x) or 1 (y), shape (n, K - 1)."""
    lengths = 1e-3 + (1 - 1e-3 * K) * torch.softmax(params[which], -1)
    return (2 * BOUND * torch.cumsum(lengths, -1) - BOUND)[..., :-1]


def _inputs(params, which):
    """Per spline: a grid over twice the bound, each interior knot, and values 1e-7 .. 9e-7
    above and below it (Pyro's eps = 1e-6 bins a value just above a knot into the bin below)."""
    n = len(params[0])
    knots = _knot_values(params, which)
    offsets = torch.tensor([0.0, 1e-7, 3e-7, 9e-7, -1e-7, -9e-7], dtype=torch.float64)
    near = (knots[..., None] + offsets).reshape(n, -1)
    grid = torch.linspace(-2 * BOUND, 2 * BOUND, 241, dtype=torch.float64).expand(n, -1)
    return torch.cat([grid, near, torch.tensor([-BOUND, BOUND], dtype=torch.float64).expand(n, -1)], -1)


def _spline(v, params, inverse=False):
    return rational_quadratic_spline(v, *(p[:, None] for p in params), bound=BOUND, inverse=inverse)


def test_spline_inverts_and_its_log_dets_are_opposite():
    params = _params(50)
    x = _inputs(params, 0)
    y, log_det = _spline(x, params)
    x_back, inverse_log_det = _spline(y, params, inverse=True)
    assert torch.allclose(x_back, x, atol=1e-9, rtol=0)
    assert torch.allclose(inverse_log_det, -log_det, atol=1e-7, rtol=0)
    y = _inputs(params, 1)  # values at and just above the knots of y, where Pyro's inverse asserted
    x, inverse_log_det = _spline(y, params, inverse=True)
    assert torch.isfinite(x).all() and torch.isfinite(inverse_log_det).all()
    y_back, log_det = _spline(x, params)
    assert torch.allclose(y_back, y, atol=1e-12, rtol=0)
    assert torch.allclose(log_det, -inverse_log_det, atol=1e-7, rtol=0)


def test_spline_log_det_equals_autograd_in_both_directions():
    params = _params(20)
    for inverse in (False, True):
        v = _inputs(params, int(inverse)).requires_grad_()
        out, log_det = _spline(v, params, inverse=inverse)
        (slope,) = torch.autograd.grad(out.sum(), v)  # element-wise, so the Jacobian is diagonal
        assert (slope > 0).all()
        assert torch.allclose(log_det, slope.log(), atol=1e-7, rtol=0), inverse


def test_spline_is_monotone_continuous_and_the_identity_outside_the_bound():
    params = _params(20)
    x = torch.linspace(-2 * BOUND, 2 * BOUND, 20001, dtype=torch.float64).expand(20, -1)
    y, log_det = _spline(x, params)
    assert (y.diff(dim=-1) > 0).all()
    outside = x.abs() > BOUND
    assert torch.equal(y[outside], x[outside]) and torch.equal(log_det[outside], torch.zeros_like(log_det[outside]))
    # at the bound the spline meets the identity: value and (boundary derivative 1) slope
    edges = torch.tensor([-BOUND, BOUND], dtype=torch.float64).expand(20, -1)
    y_edge, log_det_edge = _spline(edges, params)
    assert torch.allclose(y_edge, edges, atol=1e-12) and torch.allclose(
        log_det_edge, torch.zeros_like(edges), atol=1e-12
    )
    assert y.diff(dim=-1).max() < 1e3 * (x[0, 1] - x[0, 0])  # no jump (the steepest slope is about 1e3)


def test_spline_matches_pyro_where_pyro_runs():
    """Pyro's function with min_derivative 0 and our interior derivatives (1e-3 + softplus)
    is the same spline: our end-knot derivatives are 1, Pyro's are 1 - min_derivative."""
    params = _params(30)
    x = torch.linspace(-1.5 * BOUND, 1.5 * BOUND, 301, dtype=torch.float64).expand(30, -1)
    widths, heights = (torch.softmax(p, -1)[:, None].expand(30, 301, -1) for p in params[:2])
    derivatives = (MIN_DERIVATIVE + F.softplus(params[2]))[:, None].expand(30, 301, -1)
    for inverse in (False, True):
        expected = _monotonic_rational_spline(
            x, widths, heights, derivatives, inverse=inverse, bound=BOUND, min_derivative=0.0
        )
        for ours, theirs in zip(_spline(x, params, inverse=inverse), expected, strict=True):
            assert torch.allclose(ours, theirs, atol=1e-9, rtol=0), inverse


def test_spline_gradients_are_finite_outside_the_bound_and_at_the_knots():
    params = _params(10)
    v = _inputs(params, 1).requires_grad_()
    params = tuple(p.clone().requires_grad_() for p in params)
    for inverse in (False, True):
        out, log_det = _spline(v, params, inverse=inverse)
        grads = torch.autograd.grad((out + log_det).sum(), (v, *params))
        assert all(torch.isfinite(g).all() for g in grads), inverse


def test_a_one_dimensional_spline_flow_integrates_to_one(float64):
    """Its density sums to 1 over a fine grid, and to the closed-form CDF Phi(f^-1(t)) below t."""
    torch.manual_seed(1)
    spline = RationalQuadraticSpline(1, count_bins=K, bound=BOUND)  # Pyro's N(0, 1) initial knots
    base = torch.distributions.Normal(torch.zeros(1), torch.ones(1))
    flow = torch.distributions.TransformedDistribution(torch.distributions.Independent(base, 1), [spline])
    lo, hi, n = -9.0, 9.0, 100_000
    x = torch.linspace(lo + (hi - lo) / (2 * n), hi - (hi - lo) / (2 * n), n)[:, None]  # cell midpoints
    t = torch.tensor([[lo + (hi - lo) * 53_000 / n]])  # 0.54, a cell edge
    with torch.no_grad():
        density = flow.log_prob(x).exp()
        mass, below = density.sum() * (hi - lo) / n, density[x[:, 0] < t[0, 0]].sum() * (hi - lo) / n
        cdf = base.cdf(spline.inv(t))[0, 0]  # x = f(z): P(x < t) = Phi(f^-1(t))
    assert abs(mass.item() - 1) < 5e-6, mass
    assert abs(below.item() - cdf.item()) < 5e-6, (below, cdf)
    assert abs(cdf.item() - base.cdf(t)[0, 0].item()) > 0.01  # the spline moved mass across t


# --------------------------------------------------------------------- Pyro-era checkpoints
@pytest.mark.parametrize("name", ["nsf", "nsf-ar"])
def test_weights_of_pyros_spline_layers_load_and_give_pyros_density(name, float64):
    """Checkpoints saved when NSF used Pyro's SplineCoupling / SplineAutoregressive have the
    same keys; the density differs only by the end-knot derivative (1 against 0.999)."""
    d, k = 3, 8
    config = {"name": name, "event_shape": [d], "support": "real", **SMALL, "count_bins": k}
    model = MODELS[name].cls.from_config(config)  # a config of then: NSF's coupling halves
    model.init_from_data(torch.randn(100, d) * 2 + 1)
    layers = []
    for _ in range(2):
        if name == "nsf":
            layer = SplineCoupling(d, 1, DenseNN(1, [16], [2 * k, 2 * k, 2 * (k - 1)]), k, 3.0, order="quadratic")
            with torch.no_grad():  # away from Pyro's near-uniform initial bins
                layer.upper_spline.nn.layers[-1].weight.mul_(20)
        else:
            arn = AutoRegressiveNN(d, [16], param_dims=[k, k, k - 1], permutation=torch.arange(d))
            layer = SplineAutoregressive(d, arn, k, 3.0, order="quadratic")
            del layer.arn  # held once, as probgen's checkpoints held it
        layers.append(layer)
    state = {f"transforms.{i}.{key}": v for i, layer in enumerate(layers) for key, v in layer.state_dict().items()}
    state.update(
        {key: v for key, v in model.state_dict().items() if key.startswith("transforms.2.") or key == "fitted"}
    )
    model.load_state_dict(state)  # strict: the same keys and shapes
    pyro_chain = [layers[0] if name == "nsf" else layers[0].inv, reverse(d)]
    pyro_chain += [layers[1] if name == "nsf" else layers[1].inv, model.actnorm]
    base = torch.distributions.Independent(torch.distributions.Normal(torch.zeros(d), torch.ones(d)), 1)
    x = torch.randn(200, d) * 2 + 1
    with torch.no_grad():
        expected = torch.distributions.TransformedDistribution(base, pyro_chain).log_prob(x)
        ours = model.log_prob(x)
    gap = (ours - expected).abs()
    assert gap.median() < 1e-3 and gap.max() < 0.05, gap.max()  # a wrong layout is off by nats
    assert (expected - base.log_prob(model.actnorm.inv(x))).abs().max() > 0.1  # the splines do something
