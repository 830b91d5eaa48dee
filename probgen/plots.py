"""PNG plots people would rather look at than numbers: sample grids, loss curves, 2-D samples.

Every figure follows the same rules, which ``tests/test_figures.py`` checks on every PNG the
examples and the CLI write: axes that show data have both axis labels (image grids have a title
instead), several series have a legend, legends sit outside the axes so they never cover data,
a colour that encodes a value has a colour bar, and epoch axes have integer ticks.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from probgen._io import atomic_path

__all__ = [
    "KIND_COLOURS",
    "fit_curve",
    "image_grid",
    "image_rows",
    "latent_scatter",
    "family_map",
    "legend_outside",
    "likelihood_bars",
    "loss_curve",
    "loss_curves",
    "save_figure",
    "scatter_2d",
]

#: one colour per density kind, the same in every chart (``compare`` and ``run`` alike)
KIND_COLOURS = {
    "exact": "tab:blue",
    "lower_bound": "tab:orange",
    "estimate": "tab:green",
    "unnormalized": "tab:red",
    "implicit": "tab:gray",
}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _integer_ticks(axis: Any) -> None:
    """Epochs are counts: never a tick at epoch 0.5."""
    from matplotlib.ticker import MaxNLocator

    axis.set_major_locator(MaxNLocator(integer=True))


def legend_outside(ax: Any, **kwargs: Any) -> Any:
    """A legend to the right of ``ax``, outside it, so it never covers the data; returns it.

    Example:
        >>> plt = _pyplot()
        >>> fig, ax = plt.subplots()
        >>> _ = ax.plot([0, 1], label="a"), ax.plot([1, 0], label="b")
        >>> legend_outside(ax).get_texts()[1].get_text()
        'b'
        >>> plt.close(fig)
    """
    options = {"loc": "upper left", "bbox_to_anchor": (1.02, 1.0), "borderaxespad": 0.0, "fontsize": 8}
    return ax.legend(**(options | kwargs))


def save_figure(fig: Any, path: str | Path) -> Path:
    """Lay out, write as PNG (100 dpi) and close a matplotlib figure; return the path.

    The saved area is the figure's tight bounding box, so legends and colour bars placed outside
    the axes are never cut off.
    """
    plt = _pyplot()
    fig.tight_layout()
    path = Path(path)
    try:
        with atomic_path(path) as tmp:  # a reader sees the old picture or the new one
            fig.savefig(tmp, dpi=100, format="png", bbox_inches="tight")
    finally:
        plt.close(fig)
    return path


def likelihood_bars(
    rows: Sequence[Mapping[str, Any]],
    path: str | Path,
    *,
    title: str = "",
    xlabel: str = "model",
    ylabel: str = "NLL (bits/dim, lower is better)",
) -> Path:
    """Bar chart of bits/dim, one bar per row, coloured by density kind with one legend.

    Error bars are the row's ``bpd_sd`` (sd over seeds, in a run's summary) where it has one, else
    its standard error of the mean over test examples (``stderr_nats`` over ``num_dims`` dims).
    Used by ``ComparisonTable.plot`` and by a run's ``plots/likelihood.png`` alike.

    Example:
        >>> import tempfile
        >>> rows = [{"model": "a", "bits_per_dim": 0.5, "stderr_nats": 0.2, "num_dims": 64, "kind": "exact"}]
        >>> likelihood_bars(rows, Path(tempfile.mkdtemp()) / "bars.png").name
        'bars.png'
    """
    plt = _pyplot()
    rows = list(rows)
    if not rows:
        raise ValueError("likelihood_bars needs at least one row with bits_per_dim, got none")
    err = [
        r["bpd_sd"] if r.get("bpd_sd") is not None else r["stderr_nats"] / (r["num_dims"] * math.log(2)) for r in rows
    ]
    colours = [KIND_COLOURS.get(r["kind"], "tab:gray") for r in rows]
    fig, ax = plt.subplots(figsize=(2.8 + 0.8 * len(rows), 3.8))
    ax.bar(range(len(rows)), [r["bits_per_dim"] for r in rows], yerr=err, capsize=4, color=colours)
    ax.set_xticks(range(len(rows)), [str(r["model"]) for r in rows], rotation=30, ha="right")
    kinds = list(dict.fromkeys(r["kind"] for r in rows))  # in order of first appearance
    from matplotlib.patches import Patch

    handles = [Patch(color=KIND_COLOURS.get(k, "tab:gray"), label=str(k).replace("_", " ")) for k in kinds]
    legend_outside(ax, handles=handles, title="density kind", title_fontsize=8)
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    return save_figure(fig, path)


def _canvas(x: Tensor, h: int, w: int, cols: int) -> Tensor:
    """Images ``x`` (N, h*w) tiled ``cols`` to a row, one NaN pixel (background) between them."""
    n = x.shape[0]
    rows = math.ceil(n / cols)
    canvas = torch.full((rows * (h + 1) + 1, cols * (w + 1) + 1), float("nan"))
    for i in range(n):
        r, c = divmod(i, cols)
        canvas[1 + r * (h + 1) : 1 + r * (h + 1) + h, 1 + c * (w + 1) : 1 + c * (w + 1) + w] = x[i].reshape(h, w)
    return canvas


def _images(x: Tensor, image_shape: Sequence[int]) -> tuple[Tensor, int, int]:
    if len(image_shape) != 2:
        raise ValueError(f"image_shape must be (height, width), got {tuple(image_shape)}")
    h, w = (int(s) for s in image_shape)
    x = torch.as_tensor(x).detach().cpu().float()
    x = x.reshape(1, -1) if x.dim() == 1 else x.reshape(x.shape[0], -1)
    if x.shape[-1] != h * w:
        raise ValueError(f"images of {x.shape[-1]} values cannot be shown as {h}x{w}")
    return x, h, w


def image_grid(
    x: Tensor,
    image_shape: Sequence[int],
    path: str | Path,
    *,
    vmax: float | None = None,
    title: str | None = None,
    cols: int | None = None,
    colorbar: str | None = None,
    cmap: str = "gray_r",
) -> Path:
    """Save flattened images ``x`` (N, H*W) as a grid PNG (square unless ``cols`` is given).

    ``title`` defaults to the file's name ("nade-samples.png": "nade samples (36)"). Pixels are
    grey levels from 0 to ``vmax``; for images whose value is a quantity (probabilities, say),
    ``colorbar`` names it and a colour bar shows the scale.

    Example:
        >>> import tempfile
        >>> image_grid(torch.rand(4, 6), (2, 3), Path(tempfile.mkdtemp()) / "grid.png", vmax=1).name
        'grid.png'
    """
    plt = _pyplot()
    x, h, w = _images(x, image_shape)
    n = x.shape[0]
    cols = min(n, cols) if cols else math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    canvas = _canvas(x, h, w, cols)
    fig, ax = plt.subplots(figsize=(max(2.4, cols * 0.6) + (1.0 if colorbar else 0.0), max(2.0, rows * 0.6) + 0.4))
    vmax = vmax if vmax is not None else float(x.max())
    image = ax.imshow(canvas.numpy(), cmap=cmap, vmin=0, vmax=vmax)
    ax.axis("off")
    if colorbar:
        fig.colorbar(image, ax=ax, label=colorbar, fraction=0.046, pad=0.04)
    if title is None:
        title = f"{Path(path).stem.replace('-', ' ').replace('_', ' ')} ({n})"
    ax.set_title(title, fontsize=9)
    return save_figure(fig, path)


def image_rows(
    rows: Sequence[Tensor],
    labels: Sequence[str],
    image_shape: Sequence[int],
    path: str | Path,
    *,
    title: str,
    vmax: float | None = None,
    cmap: str = "gray_r",
) -> Path:
    """Save rows of images, each row titled by its label (originals above their
    reconstructions, the steps of a chain, completions of the same digits...).

    Example:
        >>> import tempfile
        >>> x = torch.rand(3, 4)
        >>> image_rows([x, 1 - x], ["x", "1 - x"], (2, 2), Path(tempfile.mkdtemp()) / "r.png", title="t").name
        'r.png'
    """
    plt = _pyplot()
    if len(rows) != len(labels) or not rows:
        raise ValueError(f"image_rows needs one label per row, got {len(rows)} rows and {len(labels)} labels")
    images = [_images(r, image_shape)[0] for r in rows]
    h, w = (int(s) for s in image_shape)
    cols = max(len(r) for r in images)
    vmax = vmax if vmax is not None else max(float(r.max()) for r in images)
    fig, axes = plt.subplots(len(rows), 1, figsize=(max(3.0, cols * 0.6), 0.9 * len(rows) + 0.5), squeeze=False)
    for ax, row, label in zip(axes[:, 0], images, labels, strict=True):
        ax.imshow(_canvas(row, h, w, cols).numpy(), cmap=cmap, vmin=0, vmax=vmax)
        ax.axis("off")
        ax.set_title(label, fontsize=8, loc="left")
    fig.suptitle(title, fontsize=10)
    return save_figure(fig, path)


def loss_curve(
    history: Sequence[Mapping[str, Any]],
    path: str | Path,
    *,
    title: str = "",
    series: Mapping[str, str] | None = None,
    ylabel: str = "loss (nats / example)",
    second: Mapping[str, str] | None = None,
    second_ylabel: str = "",
) -> Path:
    """Save loss per epoch as a PNG: the history keys of ``series`` (key: legend label; default
    the training and, if recorded, validation loss) on one panel, and those of ``second`` on a
    second panel beside it with its own y label, for quantities of another unit (a CD surrogate
    and a held-out NLL, say).

    Example:
        >>> import tempfile
        >>> history = [{"epoch": e, "train_loss": 3.0 - e, "val_loss": 3.5 - e} for e in range(3)]
        >>> loss_curve(history, Path(tempfile.mkdtemp()) / "loss.png").name
        'loss.png'
    """
    plt = _pyplot()
    history = list(history)
    if series is None:
        series = {"train_loss": "train", "val_loss": "validation"}
    panels = [(dict(series), ylabel)] + ([(dict(second), second_ylabel)] if second else [])
    for keys, _ in panels:
        missing = [k for k in keys if k not in ("val_loss",) and not any(k in h for h in history)]
        if missing:
            raise ValueError(f"loss_curve: history has no {missing}; its keys are {sorted(set().union(*history))}")
    fig, axes = plt.subplots(1, len(panels), figsize=(5.6 * len(panels), 3.2), squeeze=False)
    epochs = [h["epoch"] for h in history]
    for ax, (keys, label) in zip(axes[0], panels, strict=True):
        drawn = 0
        for key, name in keys.items():
            if any(key in h for h in history):
                ax.plot(epochs, [h.get(key, float("nan")) for h in history], marker="." if len(epochs) < 30 else None,
                        label=name)  # fmt: skip
                drawn += 1
        ax.set(xlabel="epoch", ylabel=label)
        _integer_ticks(ax.xaxis)
        if drawn:
            legend_outside(ax)
    if len(panels) == 1:
        axes[0, 0].set_title(title)
    else:
        fig.suptitle(title)
    return save_figure(fig, path)


def fit_curve(history: Sequence[Mapping[str, Any]], path: str | Path, *, strategy: str, title: str = "") -> Path:
    """:func:`loss_curve` of a fit with the series and units its strategy records: both players
    of an adversarial fit; the CD surrogate (a free-energy gap) and the validation NLL on panels
    of their own for contrastive divergence; training and validation loss otherwise."""
    if strategy == "adversarial":
        players = {"discriminator_loss": "discriminator", "generator_loss": "generator"}
        return loss_curve(history, path, title=title, series=players, ylabel="loss (nats / example)")
    if strategy == "contrastive_divergence":
        second = {"val_loss": "validation NLL"} if any("val_loss" in h for h in history) else None
        return loss_curve(history, path, title=title, series={"train_loss": "CD surrogate (training data)"},
                          ylabel="free energy: data - negative samples", second=second,
                          second_ylabel="NLL (nats / example)")  # fmt: skip
    return loss_curve(history, path, title=title)


def loss_curves(
    curves: Sequence[tuple[str, Sequence[Mapping[str, Any]]]], path: str | Path, *, title: str = ""
) -> Path:
    """Training (solid) and validation (dashed) loss of several fits in one figure, one colour
    per fit, named in a legend outside the axes (a run's ``plots/loss_curves.png``).

    Example:
        >>> import tempfile
        >>> h = [{"epoch": e, "train_loss": 30.0 - e, "val_loss": 31.0 - e} for e in range(3)]
        >>> loss_curves([("a", h), ("b", h)], Path(tempfile.mkdtemp()) / "losses.png").name
        'losses.png'
    """
    plt = _pyplot()
    from matplotlib.lines import Line2D

    fig, ax = plt.subplots(figsize=(7.5, 4))
    dashed = False
    for i, (name, history) in enumerate(curves):
        colour = f"C{i % 10}"
        epochs = [h["epoch"] for h in history]
        ax.plot(epochs, [h["train_loss"] for h in history], color=colour, label=name)
        if any("val_loss" in h for h in history):
            ax.plot(epochs, [h.get("val_loss", math.nan) for h in history], color=colour, linestyle="--")
            dashed = True
    handles, _ = ax.get_legend_handles_labels()
    if dashed:
        handles += [Line2D([], [], color="k", label="train"), Line2D([], [], color="k", ls="--", label="validation")]
    legend_outside(ax, handles=handles, fontsize=7)
    ax.set(xlabel="epoch", ylabel="loss (nats / example)", title=title)
    _integer_ticks(ax.xaxis)
    values = [
        v for _, h in curves for r in h for v in (r["train_loss"], r.get("val_loss", math.nan)) if math.isfinite(v)
    ]
    if values and min(values) > 0 and max(values) > 20 * min(values):
        ax.set_yscale("log")  # losses of different models can differ by orders of magnitude; else linear, so
        # that the axis keeps its tick labels (a symlog axis between two decades has none)
    return save_figure(fig, path)


def scatter_2d(x: Tensor, path: str | Path, *, title: str = "", xlabel: str = "x[0]", ylabel: str = "x[1]") -> Path:
    """Save 2-D points as a scatter plot PNG.

    Example:
        >>> import tempfile
        >>> scatter_2d(torch.randn(50, 2), Path(tempfile.mkdtemp()) / "points.png", title="noise").name
        'points.png'
    """
    plt = _pyplot()
    x = torch.as_tensor(x).detach().cpu()
    if x.dim() != 2 or x.shape[1] != 2:
        raise ValueError(f"scatter_2d needs points of shape (N, 2), got {tuple(x.shape)}")
    x = x.double().numpy()
    fig, ax = plt.subplots(figsize=(4, 4))
    ax.scatter(x[:, 0], x[:, 1], s=2, alpha=0.5)
    ax.set_aspect("equal")
    ax.set(title=title or f"{len(x)} points", xlabel=xlabel, ylabel=ylabel)
    return save_figure(fig, path)


def latent_scatter(codes: Tensor, labels: Tensor | None, path: str | Path, *, title: str = "") -> Path:
    """Save the first two latent dimensions of ``codes``, one colour per label (named in a
    legend), as a PNG.

    Example:
        >>> import tempfile
        >>> codes, labels = torch.randn(30, 2), torch.arange(30) % 3
        >>> latent_scatter(codes, labels, Path(tempfile.mkdtemp()) / "z.png").name
        'z.png'
    """
    plt = _pyplot()
    codes = torch.as_tensor(codes).detach().cpu()
    if codes.dim() != 2 or codes.shape[1] < 2:
        raise ValueError(f"latent_scatter needs codes of shape (N, >=2), got {tuple(codes.shape)}")
    codes = codes.double().numpy()
    fig, ax = plt.subplots(figsize=(5.2, 4))
    if labels is None:
        ax.scatter(codes[:, 0], codes[:, 1], s=6)
    else:
        labels = torch.as_tensor(labels).detach().cpu().reshape(-1)
        if len(labels) != len(codes):
            raise ValueError(f"latent_scatter needs one label per code, got {len(labels)} labels for {len(codes)}")
        for i, value in enumerate(labels.unique().tolist()):  # a label is a class: a colour each, not a scale
            keep = (labels == value).numpy()
            ax.scatter(codes[keep, 0], codes[keep, 1], s=6, color=f"C{i % 10}", label=str(value))
        legend_outside(ax, title="label", title_fontsize=8, markerscale=2)
    ax.set(xlabel="z[0]", ylabel="z[1]", title=title)
    return save_figure(fig, path)


def _family_bands(rows: Sequence[Any], columns: int) -> tuple[list[str], dict, dict, float]:
    """Each family a band as tall as its lines of names, top to bottom, a gap between bands."""
    families = list(dict.fromkeys(r.family for r in rows))  # in the rows' order: by place
    top, centres, bands = 0.0, {}, {}
    for f in families:
        lines = math.ceil(sum(r.family == f for r in rows) / columns)
        bands[f] = (top - lines, top)
        centres[f] = top - lines / 2
        top -= lines + 0.6
    return families, bands, centres, top


def family_map(rows: Sequence[Any], path: str | Path, places: Sequence[str], *, columns: int = 2) -> Path:
    """The map of model families as a PNG: places across, families down, one labelled point per
    model coloured by its density kind (one legend, outside the axes).

    Args:
        rows: objects with ``name``, ``place`` (one of ``places``), ``family`` and ``density``,
            e.g. the rows of :func:`probgen.models.families.family_map`.
        path: where to write the PNG.
        places: the places, left to right.
        columns: model names per line inside a cell.

    Example:
        >>> import tempfile, pathlib
        >>> from types import SimpleNamespace as Row
        >>> rows = [Row(name="maf", place="tractable", family="flow", density="exact")]
        >>> family_map(rows, pathlib.Path(tempfile.mkdtemp()) / "map.png", ["tractable"]).suffix
        '.png'
    """
    if not rows:
        raise ValueError("family_map needs at least one row; got none")
    if columns < 1:
        raise ValueError(f"columns must be >= 1, got {columns}")
    plt = _pyplot()
    families, bands, centres, top = _family_bands(rows, columns)
    fig, ax = plt.subplots(figsize=(13, 0.4 * -top + 1.6))
    used: set[str] = set()
    for f in families:
        (low, high), members = bands[f], [r for r in rows if r.family == f]
        place = list(places).index(members[0].place)
        ax.add_patch(plt.Rectangle((place - 0.48, low - 0.2), 0.96, high - low + 0.4, color="#f0f0f0", zorder=0))
        for i, r in enumerate(members):
            x, y = place - 0.44 + (i % columns) * 0.94 / columns, high - 0.5 - i // columns
            label = r.density if r.density not in used else None
            used.add(r.density)
            ax.scatter([x], [y], s=30, color=KIND_COLOURS.get(r.density, "black"), label=label, zorder=2)
            ax.annotate(r.name, (x, y), xytext=(6, 0), textcoords="offset points", va="center", fontsize=8)
    ax.set_xticks(range(len(places)), list(places))
    ax.set_yticks([centres[f] for f in families], families)
    ax.set_xlim(-0.55, len(places) - 0.45)
    ax.set_ylim(top + 0.3, 0.5)
    ax.tick_params(axis="both", length=0)
    ax.set(xlabel="place on the map (how the density is treated)", ylabel="family")
    ax.set_title("probgen's registered models: tractable, approximate and implicit densities")
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    legend_outside(ax, title="density kind", title_fontsize=8)
    return save_figure(fig, path)
