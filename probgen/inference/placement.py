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

__all__ = ["DTYPES", "check_device", "check_dtype", "place_model"]

#: the dtypes a model may be fitted and scored in, by name
DTYPES = {"float32": torch.float32, "float64": torch.float64}


def check_dtype(dtype: str | torch.dtype) -> torch.dtype:
    """``dtype`` ("float32", "float64" or the torch dtype) as a torch dtype, or a ValueError."""
    if isinstance(dtype, torch.dtype) and dtype in DTYPES.values():
        return dtype
    if isinstance(dtype, str) and dtype in DTYPES:
        return DTYPES[dtype]
    raise ValueError(f"unknown dtype {dtype!r}; expected one of {sorted(DTYPES)} (or torch.float32/float64)")


def check_device(device: str | torch.device) -> torch.device:
    """``device`` as a torch device that exists here, or a ValueError saying what is missing."""
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"unknown device {str(device)!r}; expected e.g. 'cpu' or 'cuda'") from err
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ValueError(f"device {str(device)!r} was requested but torch finds no CUDA device")
        if device.index is not None and device.index >= count:
            raise ValueError(f"device {str(device)!r} does not exist; this machine has cuda:0..cuda:{count - 1}")
    elif device.type != "cpu" and device.type != "mps":
        raise ValueError(f"device {str(device)!r} is not supported; expected 'cpu' or 'cuda[:N]'")
    return device


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
