"""PNG plots people would rather look at than numbers: sample grids, loss curves, 2-D samples."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor

__all__ = ["image_grid", "latent_scatter", "likelihood_bars", "loss_curve", "save_figure", "scatter_2d"]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: str | Path) -> Path:
    """Lay out, write as PNG (100 dpi) and close a matplotlib figure; return the path."""
    plt = _pyplot()
    fig.tight_layout()
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        fig.savefig(tmp, dpi=100, format="png")
        os.replace(tmp, path)  # atomic: a reader sees the old picture or the new one
    finally:
        plt.close(fig)
        tmp.unlink(missing_ok=True)
    return path


def likelihood_bars(rows: Sequence[dict], path: str | Path, *, title: str = "") -> Path:
    """Bar chart of bits/dim with standard-error bars, one bar per row of a comparison table,
    each bar that is not exact labelled with its kind."""
    plt = _pyplot()
    names = [r["model"] for r in rows]
    bpd = [r["bits_per_dim"] for r in rows]
    err = [r["stderr_nats"] / (r["num_dims"] * math.log(2)) for r in rows]
    fig, ax = plt.subplots(figsize=(1.2 + 1.1 * len(names), 3.5))
    ax.bar(names, bpd, yerr=err, color="tab:blue", capsize=4)
    for i, row in enumerate(rows):
        if row["kind"] != "exact":
            ax.text(i, bpd[i], row["kind"], ha="center", va="bottom", fontsize=8)
    ax.set_ylabel("NLL (bits/dim, lower is better)")
    ax.set_title(title)
    ax.tick_params(axis="x", rotation=30)
    return save_figure(fig, path)


def image_grid(x: Tensor, image_shape: Sequence[int], path: str | Path, *, vmax: float | None = None) -> Path:
    """Save flattened images ``x`` (N, H*W) as a square grid PNG."""
    plt = _pyplot()
    h, w = image_shape
    x = torch.as_tensor(x).detach().cpu().float()
    if x.shape[-1] != h * w:
        raise ValueError(f"images of {x.shape[-1]} values cannot be shown as {h}x{w}")
    n = x.shape[0]
    cols = math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    canvas = torch.full((rows * (h + 1) + 1, cols * (w + 1) + 1), float("nan"))
    for i in range(n):
        r, c = divmod(i, cols)
        canvas[1 + r * (h + 1) : 1 + r * (h + 1) + h, 1 + c * (w + 1) : 1 + c * (w + 1) + w] = x[i].reshape(h, w)
    fig, ax = plt.subplots(figsize=(max(2.0, cols * 0.6), max(2.0, rows * 0.6)))
    ax.imshow(canvas.numpy(), cmap="gray_r", vmin=0, vmax=vmax if vmax is not None else float(x.max()))
    ax.axis("off")
    return save_figure(fig, path)


def loss_curve(history: Sequence[dict], path: str | Path, *, title: str = "") -> Path:
    """Save training (and validation) loss per epoch as a PNG."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.2))
    epochs = [h["epoch"] for h in history]
    ax.plot(epochs, [h["train_loss"] for h in history], label="train")
    if any("val_loss" in h for h in history):
        ax.plot(epochs, [h.get("val_loss", float("nan")) for h in history], label="validation")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss (nats / example)")
    ax.set_title(title)
    ax.legend()
    return save_figure(fig, path)


def scatter_2d(x: Tensor, path: str | Path, *, title: str = "") -> Path:
    """Save 2-D points as a scatter plot PNG."""
    plt = _pyplot()
    x = torch.as_tensor(x).detach().cpu()
    if x.dim() != 2 or x.shape[1] != 2:
        raise ValueError(f"scatter_2d needs points of shape (N, 2), got {tuple(x.shape)}")
    fig, ax = plt.subplots(figsize=(4, 4))
    ax.scatter(x[:, 0], x[:, 1], s=2, alpha=0.5)
    ax.set_aspect("equal")
    ax.set_title(title)
    return save_figure(fig, path)


def latent_scatter(codes: Tensor, labels: Tensor | None, path: str | Path, *, title: str = "") -> Path:
    """Save the first two latent dimensions of ``codes``, coloured by ``labels``, as a PNG."""
    plt = _pyplot()
    codes = torch.as_tensor(codes).detach().cpu()
    if codes.dim() != 2 or codes.shape[1] < 2:
        raise ValueError(f"latent_scatter needs codes of shape (N, >=2), got {tuple(codes.shape)}")
    fig, ax = plt.subplots(figsize=(4.5, 4))
    points = ax.scatter(codes[:, 0], codes[:, 1], c=None if labels is None else labels.cpu(), s=6, cmap="tab10")
    if labels is not None:
        fig.colorbar(points, ax=ax, label="label")
    ax.set_xlabel("z[0]")
    ax.set_ylabel("z[1]")
    ax.set_title(title)
    return save_figure(fig, path)
