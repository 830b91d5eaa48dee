"""Where a model runs: the device and dtype ``fit`` and ``log_likelihood`` move it to.

Example:
    >>> import probgen as pg
    >>> model = pg.models.IndependentBernoulli(4)
    >>> place_model(model, "cpu", "float64", distributed=False), model.dtype
    (device(type='cpu'), torch.float64)
"""

from __future__ import annotations

import os
from typing import Any

import torch

from probgen._checks import DTYPES, check_device, check_dtype

__all__ = ["DTYPES", "check_device", "check_dtype", "place_model"]


def place_model(
    model: Any, device: str | torch.device | None, dtype: str | torch.dtype | None, distributed: bool
) -> torch.device:
    """Move ``model`` to ``dtype`` and ``device`` (each None: where it is) and return the device;
    in a distributed run a CUDA device without an index is ``cuda:LOCAL_RANK``, one GPU per
    process, and becomes the current CUDA device."""
    if dtype is not None:
        model.to(check_dtype(dtype))
    target = check_device(device) if device is not None else model.device
    if distributed and target.type == "cuda" and target.index is None:
        target = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    if target.type == "cuda":
        torch.cuda.set_device(target)
    if device is not None or target != model.device:
        model.to(target)
    return target
