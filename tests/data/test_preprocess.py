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
    assert discrete_log_prob_offset(64, 17) == pytest.approx(-64 * math.log(17))
    with pytest.raises(ValueError, match="0..16"):
        dequantize(x + 1, 17)


def test_binarize_threshold_and_stochastic():
    x = torch.tensor([0.0, 0.49, 0.5, 1.0])
    assert torch.equal(binarize(x), torch.tensor([0.0, 0.0, 1.0, 1.0]))
    draws = binarize(torch.full((20000,), 0.3), None, generator=torch.Generator().manual_seed(0))
    assert draws.mean().item() == pytest.approx(0.3, abs=0.015)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        binarize(torch.tensor([2.0]))
