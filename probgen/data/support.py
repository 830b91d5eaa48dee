"""Supports of data and the checks that every model runs on its input."""

from __future__ import annotations

import re

import torch
from torch import Tensor

__all__ = ["parse_support", "num_levels", "check_data", "infer_support"]

_DISCRETE = re.compile(r"^discrete\((\d+)\)$")


def parse_support(support: str) -> tuple[str, int | None]:
    """Split a support string into its kind and, for ``discrete(k)``, the number of levels.

    Example:
        >>> parse_support("discrete(17)")
        ('discrete', 17)
    """
    if not isinstance(support, str):
        raise TypeError(f"support must be a string, got {type(support).__name__}")
    if support in ("binary", "real"):
        return support, (2 if support == "binary" else None)
    match = _DISCRETE.match(support)
    if match and int(match.group(1)) >= 2:
        return "discrete", int(match.group(1))
    raise ValueError(f"unknown support {support!r}; expected 'binary', 'real' or 'discrete(k)', k >= 2")


def num_levels(support: str) -> int | None:
    """The number of values a discrete support admits (2 for binary), None for real.

    Example:
        >>> num_levels("discrete(17)"), num_levels("binary"), num_levels("real")
        (17, 2, None)
    """
    return parse_support(support)[1]


def infer_support(x: Tensor, max_levels: int = 256) -> str:
    """Guess the support: binary, discrete(max+1) for small non-negative integers, else real.

    Example:
        >>> import torch
        >>> infer_support(torch.tensor([[0.0, 1.0], [1.0, 0.0]]))
        'binary'
        >>> infer_support(torch.tensor([[0.0, 16.0], [3.0, 8.0]]))
        'discrete(17)'
        >>> infer_support(torch.tensor([[0.5, -1.0]]))
        'real'
    """
    x = torch.as_tensor(x)
    if x.numel() == 0:
        raise ValueError("cannot infer the support of empty data")
    if not torch.isfinite(x.double()).all():
        raise ValueError("data contains NaN or inf values")
    is_int = bool((x == x.round()).all()) and float(x.min()) >= 0
    if is_int:
        top = int(x.max())
        if top <= 1:
            return "binary"
        if top < max_levels:
            return f"discrete({top + 1})"
    return "real"


def check_data(x: object, support: str, event_shape: tuple[int, ...], name: str = "x") -> Tensor:
    """Validate data against a model's support and event shape; return it as a floating tensor.

    Raises:
        TypeError: if ``x`` is not a tensor or array of numbers.
        ValueError: for NaN/inf, a wrong shape, or values outside the support.

    Example:
        >>> import torch
        >>> check_data(torch.tensor([[0, 1], [1, 1]]), "binary", (2,)).is_floating_point()  # integers: floats
        True
        >>> check_data(torch.tensor([[0.0, 2.0]]), "binary", (2,))
        Traceback (most recent call last):
        ...
        ValueError: x has value 2.0 at index [0, 1], outside the support 'binary' (expected integers 0..1)
        >>> check_data(torch.zeros(3, 4), "real", (2, 2))
        Traceback (most recent call last):
        ...
        ValueError: x has shape (3, 4); expected (N, 2, 2)
    """
    if not isinstance(x, Tensor):
        try:
            import numpy as np

            if isinstance(x, np.ndarray) and x.dtype.kind in "biuf":
                x = torch.from_numpy(x)
            else:
                raise TypeError
        except TypeError:
            raise TypeError(f"{name} must be a torch.Tensor or numeric numpy array, got {type(x).__name__}") from None
    if x.dtype.is_complex:
        raise TypeError(f"{name} must hold real numbers, got dtype {x.dtype}")
    if not x.dtype.is_floating_point:
        x = x.to(torch.get_default_dtype())
    event_shape = tuple(event_shape)
    if x.dim() != len(event_shape) + 1 or tuple(x.shape[1:]) != event_shape:
        raise ValueError(f"{name} has shape {tuple(x.shape)}; expected (N, {', '.join(map(str, event_shape))})")
    if not torch.isfinite(x).all():
        bad = (~torch.isfinite(x)).nonzero()[0].tolist()
        raise ValueError(f"{name} contains NaN or inf values (first at index {bad})")
    kind, k = parse_support(support)
    if kind != "real":
        outside = (x != x.round()) | (x < 0) | (x > k - 1)
        if outside.any():
            idx = outside.nonzero()[0].tolist()
            raise ValueError(
                f"{name} has value {x[tuple(idx)].item()!r} at index {idx}, outside the support "
                f"{support!r} (expected integers 0..{k - 1})"
            )
    return x
