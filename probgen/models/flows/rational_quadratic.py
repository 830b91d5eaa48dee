"""Monotone rational-quadratic splines and the coupling and autoregressive transforms built on them.

Each coordinate goes through a monotone piecewise rational-quadratic function of ``K`` bins on
``[-bound, bound]``, the identity outside (Gregory & Delbourgo 1982; Durkan et al. 2019). The
``K + 1`` knots and the derivatives at the ``K - 1`` interior knots come from unconstrained
parameters: bin widths and heights are ``min + (1 - K min) softmax(.)`` of ``2 bound``, interior
derivatives ``min_derivative + softplus(.)``, and the derivatives at the two end knots are 1,
so the spline meets the identity with a continuous derivative. The inverse solves one quadratic
per coordinate in closed form, by the root ``2c / (-b - sqrt(b^2 - 4ac))`` (no cancellation:
``b > 0`` wherever ``a <= 0``, so the denominator is bounded away from zero) with the
discriminant clamped at zero, where rounding makes it slightly negative.

:func:`rational_quadratic_spline` is the function; :class:`RationalQuadraticSpline` an
element-wise transform with learned knots; :class:`RationalQuadraticCoupling` and
:class:`RationalQuadraticAutoregressive` take the knots from a network (a
:class:`pyro.nn.DenseNN` of one half of the coordinates, or a :class:`pyro.nn.AutoRegressiveNN`)
through a :class:`SplineConditioner`.

References:
    Durkan, Bekasov, Murray & Papamakarios, "Neural Spline Flows" (2019), arXiv:1906.04032.
    Gregory & Delbourgo, "Piecewise Rational Quadratic Interpolation to Monotonic Data" (1982),
    IMA Journal of Numerical Analysis 2(2), 123-130.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from pyro.distributions.torch_transform import TransformModule
from torch import Tensor, nn
from torch.distributions import constraints

__all__ = [
    "MIN_BIN_HEIGHT",
    "MIN_BIN_WIDTH",
    "MIN_DERIVATIVE",
    "RationalQuadraticAutoregressive",
    "RationalQuadraticCoupling",
    "RationalQuadraticSpline",
    "SplineConditioner",
    "rational_quadratic_spline",
]

#: the smallest bin width, as a fraction of ``2 bound`` (Durkan et al.'s code: 1e-3)
MIN_BIN_WIDTH = 1e-3
#: the smallest bin height, as a fraction of ``2 bound``
MIN_BIN_HEIGHT = 1e-3
#: the smallest derivative at an interior knot
MIN_DERIVATIVE = 1e-3


def _knots(unnormalized: Tensor, minimum: float, bound: float) -> tuple[Tensor, Tensor]:
    """Bin lengths ``(..., K)`` and knot positions ``(..., K + 1)`` on ``[-bound, bound]``."""
    k = unnormalized.shape[-1]
    lengths = minimum + (1 - minimum * k) * torch.softmax(unnormalized, dim=-1)
    inner = 2 * bound * torch.cumsum(lengths, dim=-1)[..., :-1] - bound
    # the end knots are exactly -bound and bound, so that the spline meets the identity with no
    # gap from the rounding of the cumulative sum
    ends = inner.new_full((*inner.shape[:-1], 1), bound)
    knots = torch.cat([-ends, inner, ends], dim=-1)
    return knots[..., 1:] - knots[..., :-1], knots


def _unit(xi: Tensor) -> Tensor:
    """``xi`` clamped to [0, 1] (where rounding leaves it just outside its bin) with the gradient
    of the unclamped value, which is the spline's there: a plain clamp would zero the slope at
    the bound."""
    return xi + (xi.clamp(0, 1) - xi).detach()


def _log_slope(xi: Tensor, slope: Tensor, d_left: Tensor, d_right: Tensor) -> Tensor:
    """``log dy/dx`` of a bin at relative position ``xi`` (Durkan et al., section 3.1), every term
    written as a sum of non-negative parts so that rounding cannot make it non-positive."""
    mix = xi * (1 - xi)
    numerator = d_right * xi**2 + 2 * slope * mix + d_left * (1 - xi) ** 2
    denominator = slope * (xi**2 + (1 - xi) ** 2) + (d_left + d_right) * mix  # = s + (d_l + d_r - 2s) xi (1 - xi)
    return 2 * torch.log(slope) + torch.log(numerator) - 2 * torch.log(denominator)


def rational_quadratic_spline(
    inputs: Tensor,
    unnormalized_widths: Tensor,
    unnormalized_heights: Tensor,
    unnormalized_derivatives: Tensor,
    *,
    bound: float = 3.0,
    inverse: bool = False,
    min_bin_width: float = MIN_BIN_WIDTH,
    min_bin_height: float = MIN_BIN_HEIGHT,
    min_derivative: float = MIN_DERIVATIVE,
) -> tuple[Tensor, Tensor]:
    """The monotone rational-quadratic spline (or its inverse), element-wise, and its log-slope.

    Args:
        inputs: values of shape ``(...)``; ``x`` (``y`` with ``inverse=True``).
        unnormalized_widths: shape ``(..., K)`` broadcasting with ``inputs``: bin widths before
            the softmax.
        unnormalized_heights: shape ``(..., K)``: bin heights before the softmax.
        unnormalized_derivatives: shape ``(..., K - 1)``: interior-knot derivatives before the
            softplus.
        bound: the spline maps ``[-bound, bound]`` onto itself; the identity outside.
        inverse: compute ``x`` from ``y``.
        min_bin_width, min_bin_height: the smallest bin width and height, as fractions of
            ``2 bound`` (``K`` times each at most 1).
        min_derivative: the smallest interior derivative.

    Returns:
        ``(outputs, log_abs_det)``, both of the broadcast shape: ``y`` and ``log |dy/dx|`` (with
        ``inverse=True``: ``x`` and ``log |dx/dy| = -log |dy/dx|``); the log-slope is 0 outside
        the bound.

    Example:
        >>> w, h, d = torch.zeros(4), torch.zeros(4), torch.zeros(3)
        >>> y, log_det = rational_quadratic_spline(torch.tensor([-5.0, 0.5, 5.0]), w, h, d)
        >>> x, inv_log_det = rational_quadratic_spline(y, w, h, d, inverse=True)
        >>> x, bool((log_det + inv_log_det).abs().max() < 1e-5), log_det[[0, 2]]
        (tensor([-5.0000,  0.5000,  5.0000]), True, tensor([0., 0.]))
    """
    _check_spline(
        unnormalized_widths, unnormalized_heights, unnormalized_derivatives, bound, min_bin_width, min_bin_height
    )
    widths, x_knots = _knots(unnormalized_widths, min_bin_width, bound)
    heights, y_knots = _knots(unnormalized_heights, min_bin_height, bound)
    derivatives = F.pad(min_derivative + F.softplus(unnormalized_derivatives), (1, 1), value=1.0)

    inside = (inputs >= -bound) & (inputs <= bound)
    # the spline is evaluated everywhere and the identity selected outside: clamping keeps that
    # discarded branch (and so its gradient, which torch.where multiplies by 0) finite
    v = inputs.clamp(-bound, bound)
    bin_ = _bin_of(v, inverse, x_knots, widths, y_knots, heights, derivatives)
    outputs, log_det = _spline_inverse(v, bin_) if inverse else _spline_forward(v, bin_)
    return torch.where(inside, outputs, inputs), torch.where(inside, log_det, torch.zeros_like(log_det))


def _check_spline(
    widths: Tensor, heights: Tensor, derivatives: Tensor, bound: float, min_bin_width: float, min_bin_height: float
) -> None:
    """ValueError unless the unnormalized parameters, the bound and the minima make a spline."""
    k = widths.shape[-1]
    if heights.shape[-1] != k or derivatives.shape[-1] != k - 1:
        raise ValueError(
            f"a spline of {k} bins needs {k} heights and {k - 1} derivatives; got widths "
            f"{tuple(widths.shape)}, heights {tuple(heights.shape)}, "
            f"derivatives {tuple(derivatives.shape)}"
        )
    if not bound > 0:
        raise ValueError(f"bound must be > 0, got {bound}")
    if min_bin_width * k > 1 or min_bin_height * k > 1:
        raise ValueError(f"{k} bins of at least {min_bin_width} x {min_bin_height} do not fit in the interval")


class _Bin(NamedTuple):
    """The bin each value falls in: its left knot, width and height, the derivatives at its two
    knots, and its slope ``height / width``."""

    x_left: Tensor
    width: Tensor
    y_left: Tensor
    height: Tensor
    d_left: Tensor
    d_right: Tensor
    slope: Tensor


def _bin_of(
    v: Tensor,
    inverse: bool,
    x_knots: Tensor,
    widths: Tensor,
    y_knots: Tensor,
    heights: Tensor,
    derivatives: Tensor,
) -> _Bin:
    """The bin of each value ``v``: among the x knots, or the y knots for the inverse."""
    knots = y_knots if inverse else x_knots
    # the bin holds the value: exact comparisons against the interior knots (an eps here, as in
    # Pyro's, sends values just above a knot into the bin below, outside the quadratic's range)
    index = (v.unsqueeze(-1) >= knots[..., 1:-1]).sum(-1, keepdim=True)
    shape = torch.broadcast_shapes(index.shape[:-1], widths.shape[:-1])

    def pick(table: Tensor) -> Tensor:
        return table.expand(*shape, table.shape[-1]).gather(-1, index.expand(*shape, 1)).squeeze(-1)

    x_left, width, y_left, height = pick(x_knots), pick(widths), pick(y_knots), pick(heights)
    d_left, d_right = pick(derivatives[..., :-1]), pick(derivatives[..., 1:])
    return _Bin(x_left, width, y_left, height, d_left, d_right, height / width)


def _spline_forward(v: Tensor, bin_: _Bin) -> tuple[Tensor, Tensor]:
    """``y`` and ``log dy/dx`` of the values ``v`` in their bins."""
    xi = _unit((v - bin_.x_left) / bin_.width)
    mix = xi * (1 - xi)
    denominator = bin_.slope * (xi**2 + (1 - xi) ** 2) + (bin_.d_left + bin_.d_right) * mix
    outputs = bin_.y_left + bin_.height * (bin_.slope * xi**2 + bin_.d_left * mix) / denominator
    return outputs, _log_slope(xi, bin_.slope, bin_.d_left, bin_.d_right)


def _spline_inverse(v: Tensor, bin_: _Bin) -> tuple[Tensor, Tensor]:
    """``x`` and ``log dx/dy`` of the values ``v`` (outputs ``y``) in their bins."""
    # a xi^2 + b xi + c = 0 for the relative position xi in [0, 1] (Durkan et al., appendix A)
    offset = v - bin_.y_left  # >= 0: the bin was chosen by v >= y_left
    curvature = bin_.d_left + bin_.d_right - 2 * bin_.slope
    a = bin_.height * (bin_.slope - bin_.d_left) + offset * curvature
    b = bin_.height * bin_.d_left - offset * curvature
    c = -bin_.slope * offset
    # clamped at 0 for rounding only; floored at the smallest normal number rather than at 0
    # so that the square root's gradient stays finite
    discriminant = (b * b - 4 * a * c).clamp(min=torch.finfo(v.dtype).tiny)
    # a + b = height * slope > 0, so b > 0 where a <= 0 and the denominator is < 0 everywhere
    xi = _unit(2 * c / (-b - torch.sqrt(discriminant)))
    return bin_.x_left + xi * bin_.width, -_log_slope(xi, bin_.slope, bin_.d_left, bin_.d_right)


class _SplineTransform(TransformModule):
    """A vector transform whose forward and inverse also give the element-wise log-slopes; the
    log-det of the last evaluation is kept with Pyro's cache (and so cleared with it)."""

    domain = constraints.real_vector
    codomain = constraints.real_vector
    bijective = True

    def __init__(self) -> None:
        super().__init__(cache_size=1)
        self._cached_log_det: Tensor | None = None

    def _forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    def _backward(self, y: Tensor) -> tuple[Tensor, Tensor]:
        """``x`` and the element-wise ``log |dx/dy|``."""
        raise NotImplementedError

    def _call(self, x: Tensor) -> Tensor:
        y, log_det = self._forward(x)
        self._cached_log_det = log_det.sum(-1)
        return y

    def _inverse(self, y: Tensor) -> Tensor:
        x, log_det = self._backward(y)
        self._cached_log_det = -log_det.sum(-1)
        return x

    def log_abs_det_jacobian(self, x: Tensor, y: Tensor) -> Tensor:
        x_old, y_old = self._cached_x_y
        if x is x_old and y is y_old and self._cached_log_det is not None:
            return self._cached_log_det
        return self._forward(x)[1].sum(-1)


class RationalQuadraticSpline(_SplineTransform):
    """An element-wise rational-quadratic spline with learned knots, one spline per coordinate of
    a ``dim``-vector (parameters initialised from a standard normal, as in Pyro's ``Spline``).

    Args:
        dim: length of the vectors.
        count_bins: bins per spline.
        bound: the splines act on ``[-bound, bound]``; the identity outside.

    Example:
        >>> spline = RationalQuadraticSpline(2, count_bins=4)
        >>> x = torch.tensor([[0.3, -4.0]])
        >>> y = spline(x)
        >>> bool(torch.allclose(spline.inv(y), x, atol=1e-5)), spline.log_abs_det_jacobian(x, y).shape
        (True, torch.Size([1]))
    """

    def __init__(self, dim: int, count_bins: int = 8, bound: float = 3.0) -> None:
        super().__init__()
        self.count_bins, self.bound = count_bins, float(bound)
        self.unnormalized_widths = nn.Parameter(torch.randn(dim, count_bins))
        self.unnormalized_heights = nn.Parameter(torch.randn(dim, count_bins))
        self.unnormalized_derivatives = nn.Parameter(torch.randn(dim, count_bins - 1))

    def spline(self, inputs: Tensor, inverse: bool = False) -> tuple[Tensor, Tensor]:
        """The spline (``inverse``: its inverse) of ``inputs`` and the element-wise log-slope."""
        params = self.unnormalized_widths, self.unnormalized_heights, self.unnormalized_derivatives
        return rational_quadratic_spline(inputs, *params, bound=self.bound, inverse=inverse)

    def _forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return self.spline(x)

    def _backward(self, y: Tensor) -> tuple[Tensor, Tensor]:
        return self.spline(y, inverse=True)


class SplineConditioner(nn.Module):
    """A network giving the unnormalized widths, heights and derivatives of ``dim`` splines of
    ``count_bins`` bins, as three tensors ``(..., dim, K)``, ``(..., dim, K)``, ``(..., dim, K - 1)``.

    Args:
        net: a network with three outputs: a :class:`pyro.nn.DenseNN` with ``param_dims``
            ``[dim K, dim K, dim (K - 1)]`` (each reshaped to ``(dim, K)``, coordinate-major), or
            with ``masked=True`` a :class:`pyro.nn.AutoRegressiveNN` with ``param_dims``
            ``[K, K, K - 1]`` (outputs ``(..., K, dim)``, transposed) — the layout of Pyro's
            ``ConditionalSpline``.
        dim: number of splines.
        count_bins: bins per spline.
        masked: the network is autoregressive.

    Example:
        >>> from pyro.nn import DenseNN
        >>> conditioner = SplineConditioner(DenseNN(1, [8], [2 * 4, 2 * 4, 2 * 3]), dim=2, count_bins=4)
        >>> [tuple(t.shape) for t in conditioner(torch.zeros(5, 1))]
        [(5, 2, 4), (5, 2, 4), (5, 2, 3)]
    """

    def __init__(self, net: nn.Module, dim: int, count_bins: int, *, masked: bool = False) -> None:
        super().__init__()
        self.nn = net
        self.dim, self.count_bins, self.masked = dim, count_bins, masked

    def forward(self, context: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        widths, heights, derivatives = self.nn(context)
        if self.masked:
            return widths.transpose(-1, -2), heights.transpose(-1, -2), derivatives.transpose(-1, -2)
        k = self.count_bins
        return (
            widths.reshape(*widths.shape[:-1], self.dim, k),
            heights.reshape(*heights.shape[:-1], self.dim, k),
            derivatives.reshape(*derivatives.shape[:-1], self.dim, k - 1),
        )


class RationalQuadraticCoupling(_SplineTransform):
    """Spline coupling: ``y_1 = g(x_1)`` with learned element-wise splines ``g``, and
    ``y_2 = h(x_2; net(x_1))`` with splines whose knots a network computes from ``x_1``, the
    first ``split_dim`` coordinates (Pyro's ``SplineCoupling`` layout: ``lower_spline`` and
    ``upper_spline.nn``). Both directions are one network pass.

    Args:
        input_dim: length of the vectors.
        split_dim: coordinates in the first half.
        hypernet: a :class:`pyro.nn.DenseNN` from ``split_dim`` inputs to ``param_dims``
            ``[n K, n K, n (K - 1)]``, ``n = input_dim - split_dim``.
        count_bins: bins per spline (``K``).
        bound: the splines act on ``[-bound, bound]``; the identity outside.

    Example:
        >>> from pyro.nn import DenseNN
        >>> t = RationalQuadraticCoupling(3, 1, DenseNN(1, [8], [2 * 4, 2 * 4, 2 * 3]), count_bins=4)
        >>> x = torch.randn(5, 3)
        >>> y = t(x)
        >>> bool(torch.allclose(t.inv(y), x, atol=1e-5)), t.log_abs_det_jacobian(x, y).shape
        (True, torch.Size([5]))
    """

    def __init__(
        self, input_dim: int, split_dim: int, hypernet: nn.Module, count_bins: int = 8, bound: float = 3.0
    ) -> None:
        super().__init__()
        self.split_dim, self.bound = split_dim, float(bound)
        self.lower_spline = RationalQuadraticSpline(split_dim, count_bins, bound)
        self.upper_spline = SplineConditioner(hypernet, input_dim - split_dim, count_bins)

    def _upper(self, x1: Tensor, values: Tensor, inverse: bool) -> tuple[Tensor, Tensor]:
        return rational_quadratic_spline(values, *self.upper_spline(x1), bound=self.bound, inverse=inverse)

    def _forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        x1, x2 = x[..., : self.split_dim], x[..., self.split_dim :]
        y1, log_det1 = self.lower_spline.spline(x1)
        y2, log_det2 = self._upper(x1, x2, inverse=False)
        return torch.cat([y1, y2], -1), torch.cat([log_det1, log_det2], -1)

    def _backward(self, y: Tensor) -> tuple[Tensor, Tensor]:
        y1, y2 = y[..., : self.split_dim], y[..., self.split_dim :]
        x1, log_det1 = self.lower_spline.spline(y1, inverse=True)
        x2, log_det2 = self._upper(x1, y2, inverse=True)  # the network reads x_1, as in the forward
        return torch.cat([x1, x2], -1), torch.cat([log_det1, log_det2], -1)


class RationalQuadraticAutoregressive(_SplineTransform):
    """Autoregressive splines: ``y_i = h(x_i; net(x_<i))``, the knots of coordinate ``i`` from
    a masked network of the coordinates before it in the network's order (Pyro's
    ``SplineAutoregressive`` layout: ``spline.nn``, held once). The forward is one network pass;
    the inverse is sequential, ``input_dim`` passes.

    Args:
        input_dim: length of the vectors.
        autoregressive_nn: a :class:`pyro.nn.AutoRegressiveNN` with ``param_dims``
            ``[K, K, K - 1]``.
        count_bins: bins per spline (``K``).
        bound: the splines act on ``[-bound, bound]``; the identity outside.

    Example:
        >>> from pyro.nn import AutoRegressiveNN
        >>> t = RationalQuadraticAutoregressive(3, AutoRegressiveNN(3, [8], param_dims=[4, 4, 3]), count_bins=4)
        >>> x = torch.randn(5, 3)
        >>> bool(torch.allclose(t.inv(t(x)), x, atol=1e-5))
        True
    """

    def __init__(self, input_dim: int, autoregressive_nn: nn.Module, count_bins: int = 8, bound: float = 3.0) -> None:
        super().__init__()
        self.input_dim, self.bound = input_dim, float(bound)
        self.spline = SplineConditioner(autoregressive_nn, input_dim, count_bins, masked=True)

    @property
    def arn(self) -> nn.Module:
        """The masked network (a property, so that its tensors are held, and saved, once)."""
        return self.spline.nn

    def _forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return rational_quadratic_spline(x, *self.spline(x), bound=self.bound)

    def _backward(self, y: Tensor) -> tuple[Tensor, Tensor]:
        # pass j fixes the j-th coordinate in the network's order (its knots read only those
        # before it, already fixed), so input_dim passes invert exactly
        x = torch.zeros_like(y)
        for _ in range(self.input_dim):
            x, log_det = rational_quadratic_spline(y, *self.spline(x), bound=self.bound, inverse=True)
        return x, log_det
