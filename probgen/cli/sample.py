"""``probgen sample CHECKPOINT -n N --out FILE``: draws of a fitted model as a PNG grid (or 2-D
scatter) or a ``.npy`` array, refused up front when they would not fit in memory."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from probgen._io import atomic_path
from probgen.cli.common import UsageError, check_device, load_checkpoint

__all__ = ["FALLBACK_AVAILABLE_BYTES", "MAX_PNG_SAMPLES", "available_memory", "format_bytes", "run"]

#: Largest number of samples drawn as one PNG grid.
MAX_PNG_SAMPLES = 10_000
#: Memory assumed available when /proc/meminfo cannot be read.
FALLBACK_AVAILABLE_BYTES = 2 * 1024**3


def format_bytes(n: float) -> str:
    """A size in bytes as "512 B", "3.1 MiB", "2.0 GiB", ...

    Example:
        >>> format_bytes(3 * 1024**2)
        '3.0 MiB'
    """
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} PiB"


def available_memory() -> int:
    """Bytes of memory available to a new allocation (``MemAvailable`` of /proc/meminfo, else a fixed cap)."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return FALLBACK_AVAILABLE_BYTES


def _check_out(args: argparse.Namespace) -> Path:
    out = Path(args.out)
    if out.suffix not in (".png", ".npy"):
        raise UsageError(f"--out must end in .png or .npy, got {out.name!r}")
    if out.is_dir():
        raise UsageError(f"--out {args.out!r} is a directory; expected a file name ending in .png or .npy")
    if out.suffix == ".png" and args.n > MAX_PNG_SAMPLES:
        raise UsageError(f"-n {args.n} is too many for one PNG grid (at most {MAX_PNG_SAMPLES}); use a .npy file")
    return out


def run(args: argparse.Namespace) -> None:
    """The command."""
    out = _check_out(args)
    checkpoint, info, _ = load_checkpoint(args.checkpoint, check_device(args.device))
    model = checkpoint.model
    needed = args.n * math.prod(model.event_shape) * 4
    limit = available_memory() // 2
    if needed > limit:
        raise UsageError(
            f"-n {args.n} samples of shape {tuple(model.event_shape)} would need about {format_bytes(needed)}; "
            f"this machine has {format_bytes(limit * 2)} available (the limit is half of it)"
        )
    shape = info.get("image_shape")
    if out.suffix == ".png" and not shape and model.num_dims != 2:
        raise UsageError(f"cannot draw {model.num_dims}-D non-image samples as PNG; use .npy")
    import numpy as np
    import pyro

    pyro.set_rng_seed(args.seed)
    x = model.sample(args.n).detach().cpu()
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".npy":
        with atomic_path(out) as tmp, open(tmp, "wb") as fh:
            np.save(fh, x.numpy())
    else:
        from probgen.plots import image_grid, scatter_2d

        if shape:
            vmax = model.num_levels - 1 if model.num_levels else None
            image_grid(x, shape, out, vmax=vmax, title=f"{model.name}: {args.n} samples (seed {args.seed})")
        else:
            scatter_2d(x, out, title=model.name)
    print(f"wrote {args.n} samples to {out}")
