"""Shared plotting for the classifier tutorials: decision regions of a 2-D classifier."""

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

from probgen.plots import legend_outside, save_figure  # noqa: E402

#: the confidence contours drawn: where the most probable class has this posterior probability
CONFIDENCE = (0.6, 0.9)


def decision_boundary(
    est,
    X,
    y,
    path: Path,
    title: str,
    *,
    feature_names: Sequence[str] = ("feature 1", "feature 2"),
    class_names: Sequence[str] | None = None,
) -> Path:
    """Colour the plane by the predicted class (the regions share the colours of the classes'
    points, named in the legend), draw the contours where the predicted class's probability is
    0.6 and 0.9 (thin grey lines, labelled), and overlay the data."""
    pad = 0.5
    xs = np.linspace(X[:, 0].min() - pad, X[:, 0].max() + pad, 200)
    ys = np.linspace(X[:, 1].min() - pad, X[:, 1].max() + pad, 200)
    grid = np.stack(np.meshgrid(xs, ys), -1).reshape(-1, 2)
    proba = est.predict_proba(grid)
    classes = list(est.classes_)
    names = [str(c) for c in classes] if class_names is None else list(class_names)
    colours = [f"C{i % 10}" for i in range(len(classes))]
    fig, ax = plt.subplots(figsize=(6.4, 4))
    levels = np.arange(len(classes) + 1) - 0.5  # one band per class index
    ax.contourf(xs, ys, proba.argmax(1).reshape(200, 200), levels=levels, colors=colours, alpha=0.2)
    lines = ax.contour(
        xs, ys, proba.max(1).reshape(200, 200), levels=list(CONFIDENCE), colors="0.3", linewidths=0.7,
        linestyles=["--", "-"],
    )  # fmt: skip
    ax.clabel(lines, fmt=lambda p: f"{p:.1f}", fontsize=7)
    codes = np.searchsorted(classes, y)
    for i, name in enumerate(names):
        keep = codes == i
        ax.scatter(X[keep, 0], X[keep, 1], s=14, color=colours[i], edgecolors="k", linewidths=0.3, label=name)
    handles, _ = ax.get_legend_handles_labels()
    handles += [
        Line2D([], [], color="0.3", lw=0.7, ls=ls, label=f"P(predicted class) = {p}")
        for p, ls in zip(CONFIDENCE, ("--", "-"), strict=True)
    ]
    legend_outside(ax, handles=handles, title="class (region: predicted)", title_fontsize=8)
    ax.set(xlabel=feature_names[0], ylabel=feature_names[1], title=title)
    return save_figure(fig, path)
