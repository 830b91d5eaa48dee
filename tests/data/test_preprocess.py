import math

import pytest
import torch

from probgen.data import binarize, dequantize, discrete_log_prob_offset, logit_transform


def test_logit_log_det_matches_autograd(float64):
    x = torch.rand(3, 4)
    y, log_det = logit_transform(x, alpha=0.05)
    for i in range(3):
        jac = torch.autograd.functional.jacobian(lambda v: logit_transform(v[None], 0.05)[0][0], x[i])
        assert torch.allclose(log_det[i], torch.linalg.slogdet(jac).logabsdet)
    assert torch.allclose(torch.sigmoid(y), 0.05 + 0.9 * x)


def test_dequantize_stays_in_its_cell():
    x = torch.randint(0, 17, (200, 5)).double()
    u = dequantize(x, 17)
    assert torch.equal(torch.floor(u * 17), x)
    with pytest.raises(ValueError, match="0..16"):
        dequantize(x + 1, 17)


def test_binarize_threshold_and_stochastic():
    x = torch.tensor([0.0, 0.49, 0.5, 1.0])
    assert torch.equal(binarize(x), torch.tensor([0.0, 0.0, 1.0, 1.0]))
    draws = binarize(torch.full((20000,), 0.3), None, generator=torch.Generator().manual_seed(0))
    assert draws.mean().item() == pytest.approx(0.3, abs=0.015)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        binarize(torch.tensor([2.0]))


def test_offset_turns_a_cube_density_into_a_bound_on_level_probabilities(float64):
    """E_u[log p((x + u)/k)] - D log k <= log P(x), with P(x) the density's mass on x's cell:
    exact here for a Beta(2, 2) density per dimension (scipy's CDF); equal for a flat density."""
    from scipy import stats

    k, d = 17, 3
    x = torch.randint(0, k, (40, d), generator=torch.Generator().manual_seed(0)).double()
    cells = stats.beta.cdf(((x + 1) / k).numpy(), 2, 2) - stats.beta.cdf((x / k).numpy(), 2, 2)
    exact = torch.as_tensor(cells).log().sum(-1)
    draws = torch.stack([dequantize(x, k, generator=torch.Generator().manual_seed(s)) for s in range(400)])
    log_density = torch.as_tensor(stats.beta.logpdf(draws.numpy(), 2, 2)).sum(-1).mean(0)
    bound = log_density + discrete_log_prob_offset(d, k)
    # (400 draws: a Monte-Carlo spread of ~0.005; the gap is largest in the edge cells)
    assert (bound <= exact + 0.01).all() and (exact - bound).max() < 1.0 and (exact - bound).mean() > 0
    flat_bound = 0.0 + discrete_log_prob_offset(d, k)  # the uniform density: P(x) = k^-D exactly
    assert flat_bound == pytest.approx(math.log(1 / k**d))
