"""Turn what users pass as data into tensors (shared by fit, log_likelihood and compare)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

__all__ = ["as_xy", "batches"]


def as_xy(data: Any, name: str = "data") -> tuple[Tensor, Tensor | None]:
    """Accept a Dataset, a tensor/array, or an ``(x, y)`` pair."""
    if hasattr(data, "x") and hasattr(data, "y"):
        return data.x, data.y
    if isinstance(data, tuple | list) and len(data) == 2:
        x, y = data
        x = torch.as_tensor(x)
        y = None if y is None else torch.as_tensor(y)
        if y is not None and y.shape[0] != x.shape[0]:
            raise ValueError(f"{name}: {x.shape[0]} examples but {y.shape[0]} labels")
        return x, y
    if isinstance(data, Tensor):
        return data, None
    try:
        import numpy as np

        if isinstance(data, np.ndarray):
            return torch.from_numpy(data), None
    except ImportError:  # pragma: no cover
        pass
    raise TypeError(
        f"{name} must be a probgen Dataset, a tensor, an array or an (x, y) pair; got {type(data).__name__}"
    )


def batches(n: int, batch_size: int, *, generator: torch.Generator | None = None, shuffle=False):
    """Index tensors covering ``range(n)`` in chunks of ``batch_size``."""
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    return order.split(batch_size)
