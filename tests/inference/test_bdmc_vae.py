"""BDMC on a small VAE (2-d latent, 16 binary pixels) whose true log p(x) is known by quadrature.

The decoder's random weights are scaled up (x8) so that the posterior is far from the prior
(posterior standard deviations 0.1-0.26 against the prior's 1, measured): AIS then needs
hundreds of steps, and the gap of a short schedule is large.
"""

import math
import warnings

import pyro.poutine as poutine
import pytest
import torch

import probgen as pg
from probgen.inference.diagnostics import BDMC_GAP_BAD, bdmc

torch.set_num_threads(1)
D64 = torch.float64
EVENT, SCALE = 16, 8.0


def small_vae(seed: int = 0) -> pg.models.VAE:
    """A VAE with 2 latent dims on 16 binary dims, its decoder's weights scaled by ``SCALE``."""
    torch.manual_seed(seed)
    vae = pg.models.VAE(EVENT, "binary", latent_dim=2, hidden_features=(16,)).double()
    with torch.no_grad():
        for parameter in vae.decoder.parameters():
            parameter.mul_(SCALE)
    return vae


def quadrature_log_p(vae: pg.models.VAE, x: torch.Tensor, half: float = 6.0, points: int = 201) -> torch.Tensor:
    """log p(x_n) = log of the integral of p(x_n | z) p(z) over z in R^2, ``[N]``, by a Riemann sum
    on a ``points`` x ``points`` grid over ``[-half, half]^2``.

    The integrand is smooth and negligible at the box's edge (the prior's mass outside
    ``[-6, 6]^2`` is ~4e-9), where the Riemann sum is spectrally accurate; the densities are the
    VAE's own Pyro program conditioned on each grid point (sites "z" and "x").
    """
    axis = torch.linspace(-half, half, points, dtype=D64)
    grid = torch.cartesian_prod(axis, axis)
    n, parts = x.shape[0], []
    with torch.no_grad():
        for chunk in grid.split(10_000):
            z = chunk.repeat_interleave(n, 0)  # every example at every grid point of the chunk
            trace = poutine.trace(poutine.condition(vae.model, data={"z": z})).get_trace(x.repeat(len(chunk), 1))
            joint = trace.nodes["z"]["fn"].log_prob(z) + trace.nodes["x"]["fn"].log_prob(trace.nodes["x"]["value"])
            parts.append(joint.reshape(len(chunk), n))
    return torch.logsumexp(torch.cat(parts), 0) + 2 * math.log(axis[1] - axis[0])


def test_the_quadrature_is_converged_to_a_thousandth_of_a_nat():
    vae = small_vae()
    torch.manual_seed(1)
    x = vae.sample(10)
    coarse = quadrature_log_p(vae, x).sum().item()
    fine = quadrature_log_p(vae, x, half=7.0, points=301).sum().item()
    assert abs(coarse - fine) < 1e-3
    # and the integral is no constant: a far worse fit than the model's own data would be
    flipped = quadrature_log_p(vae, 1 - x).sum().item()
    assert flipped < coarse - 10


def test_bdmc_gap_shrinks_with_steps_and_sandwiches_the_quadrature_log_p():
    vae = small_vae()
    like = torch.zeros(10, EVENT, dtype=D64)
    results = []
    for steps in (10, 100, 500):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the short schedules' gap warning
            results.append(bdmc(vae, like, num_chains=16, num_steps=steps, seed=3))
    data = results[0].data
    assert all(torch.equal(r.data, data) for r in results)  # one simulated data set: one truth
    truth = quadrature_log_p(vae, data).sum().item()
    for r in results:  # each sandwich holds (both bounds are stochastic: 3 standard errors)
        assert r.lower - 3 * r.lower_stderr <= truth <= r.upper + 3 * r.upper_stderr, (r.as_dict(), truth)
    gaps = [r.gap for r in results]
    for shorter, longer in zip(results, results[1:], strict=False):
        noise = math.hypot(shorter.lower_stderr, shorter.upper_stderr, longer.lower_stderr, longer.upper_stderr)
        assert longer.gap < shorter.gap + 2 * noise, gaps
    assert gaps[0] > 10 * BDMC_GAP_BAD and gaps[-1] < gaps[0] / 10, gaps
    assert not results[0].diagnostics.ok and results[0].diagnostics.bdmc_gap == pytest.approx(gaps[0])
    assert all(r.lower_stderr >= 0 and r.upper_stderr >= 0 for r in results)


def test_bdmc_refuses_a_like_that_is_no_data_set():
    with pytest.raises(ValueError, match="like must be a tensor"):
        bdmc(small_vae(), torch.zeros((), dtype=D64))
    with pytest.raises(ValueError, match="like must be a tensor"):
        bdmc(small_vae(), [[0.0] * EVENT])
