"""Shared plotting for the classifier tutorials: decision regions of a 2-D classifier."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def decision_boundary(est, X, y, path: Path, title: str) -> Path:
    """Colour the plane by the predicted class, shade by confidence, overlay the data."""
    pad = 0.5
    xs = np.linspace(X[:, 0].min() - pad, X[:, 0].max() + pad, 200)
    ys = np.linspace(X[:, 1].min() - pad, X[:, 1].max() + pad, 200)
    grid = np.stack(np.meshgrid(xs, ys), -1).reshape(-1, 2)
    proba = est.predict_proba(grid)
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.contourf(xs, ys, proba.argmax(1).reshape(200, 200), alpha=0.25, cmap="viridis")
    ax.contour(xs, ys, proba.max(1).reshape(200, 200), levels=[0.6, 0.9], colors="k", linewidths=0.5)
    codes = np.searchsorted(est.classes_, y)
    ax.scatter(X[:, 0], X[:, 1], c=codes, s=12, cmap="viridis", edgecolors="k", linewidths=0.3)
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
