import pytest
import torch

from probgen.models.wishart import (
    LowerCholeskyFromVector,
    WishartCholesky,
    gaussian_log_prob_precision_tril,
)


def _tril(dim=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(dim, dim, generator=g, dtype=torch.float64)
    return torch.linalg.cholesky(a @ a.T + dim * torch.eye(dim, dtype=torch.float64))


def test_log_prob_is_the_wishart_density_times_the_jacobian(float64):
    """Change of variables L -> L L^T, the Jacobian taken by autograd on the free entries."""
    scale = _tril(3, 1)
    d = WishartCholesky(torch.tensor(6.5), scale)
    wishart = torch.distributions.Wishart(torch.tensor(6.5), scale_tril=scale)
    value = _tril(3, 2)
    rows, cols = torch.tril_indices(3, 3)

    def to_matrix(free):
        low = torch.zeros(3, 3, dtype=free.dtype).index_put((rows, cols), free)
        return (low @ low.T)[rows, cols]

    jac = torch.autograd.functional.jacobian(to_matrix, value[rows, cols])
    expected = wishart.log_prob(value @ value.T) + torch.linalg.slogdet(jac).logabsdet
    assert d.log_prob(value).item() == pytest.approx(expected.item(), rel=1e-10)


def test_bartlett_samples_have_the_wishart_mean(float64):
    scale = _tril(3, 4)
    draws = WishartCholesky(torch.tensor(7.0), scale).sample((100000,))
    assert (draws.triu(1) == 0).all() and (draws.diagonal(dim1=-2, dim2=-1) > 0).all()
    mean = (draws @ draws.transpose(-1, -2)).mean(0)
    assert torch.allclose(mean, 7.0 * scale @ scale.T, rtol=0.03, atol=0.05)


def test_vector_bijection_round_trips_with_autograd_log_det(float64):
    t = LowerCholeskyFromVector()
    v = torch.randn(6)
    low = t(v)
    assert low.shape == (3, 3) and torch.allclose(t.inv(low), v)
    jac = torch.autograd.functional.jacobian(lambda u: t(u)[tuple(torch.tril_indices(3, 3))], v)
    assert t.log_abs_det_jacobian(v, low).item() == pytest.approx(torch.linalg.slogdet(jac).logabsdet.item())
    assert t.forward_shape((5, 6)) == (5, 3, 3) and t.inverse_shape((5, 3, 3)) == (5, 6)
    with pytest.raises(ValueError, match="lower triangle"):
        t(torch.randn(5))


def test_gaussian_log_prob_from_precision_cholesky(float64):
    low = _tril(4, 5)
    x, loc = torch.randn(7, 4), torch.randn(4)
    ref = torch.distributions.MultivariateNormal(loc, precision_matrix=low @ low.T).log_prob(x)
    assert torch.allclose(gaussian_log_prob_precision_tril(x, loc, low), ref)
