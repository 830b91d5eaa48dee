"""Datasets shipped inside installed packages (scikit-learn) and seeded synthetic 2-D data."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

from probgen.data.dataset import Dataset

__all__ = ["load_dataset", "DATASETS", "DIGITS_SPLIT", "SPLITS"]

SPLITS = ("train", "val", "test", "all")
#: Tomczak's "Deep Generative Modeling" split of sklearn's 1797 digits.
DIGITS_SPLIT = {"train": slice(0, 1000), "val": slice(1000, 1350), "test": slice(1350, None)}
#: Fractions for the tabular datasets' seeded stratified split.
TABULAR_FRACTIONS = {"train": 0.6, "val": 0.2, "test": 0.2}


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")


def _digits(split: str, binary: bool) -> Dataset:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x, y = bunch.data, bunch.target
    if split != "all":
        x, y = x[DIGITS_SPLIT[split]], y[DIGITS_SPLIT[split]]
    x = torch.tensor(x, dtype=torch.float32)
    if binary:
        x = (x >= 8).float()
    return Dataset(
        x,
        torch.tensor(y),
        "binary" if binary else "discrete(17)",
        name="digits-binary" if binary else "digits",
        image_shape=(8, 8),
        classes=[str(c) for c in bunch.target_names],
    )


def _tabular(loader: str) -> Callable[[str, int], Dataset]:
    def load(split: str, seed: int = 0) -> Dataset:
        import sklearn.datasets
        from sklearn.model_selection import train_test_split

        bunch = getattr(sklearn.datasets, f"load_{loader}")()
        x, y = bunch.data.astype(np.float32), bunch.target
        if split != "all":
            idx = np.arange(len(y))
            train, rest = train_test_split(idx, train_size=TABULAR_FRACTIONS["train"], stratify=y, random_state=seed)
            val, test = train_test_split(rest, train_size=0.5, stratify=y[rest], random_state=seed)
            pick = {"train": train, "val": val, "test": test}[split]
            x, y = x[np.sort(pick)], y[np.sort(pick)]
        return Dataset(
            torch.tensor(x),
            torch.tensor(y),
            "real",
            name=loader.replace("_", "-"),
            classes=[str(c) for c in bunch.target_names],
        )

    return load


# ----------------------------------------------------------------------------- synthetic 2-D


def _moons(n: int, g: torch.Generator) -> torch.Tensor:
    t = torch.rand(n, generator=g) * math.pi
    upper = torch.rand(n, generator=g) < 0.5
    x = torch.where(upper, torch.cos(t), 1 - torch.cos(t))
    y = torch.where(upper, torch.sin(t), 0.5 - torch.sin(t))
    pts = torch.stack([x, y], -1) + 0.05 * torch.randn(n, 2, generator=g)
    return (pts - torch.tensor([0.5, 0.25])) * 2


def _eight_gaussians(n: int, g: torch.Generator) -> torch.Tensor:
    angle = torch.randint(0, 8, (n,), generator=g) * (math.pi / 4)
    centres = 2 * torch.stack([torch.cos(angle), torch.sin(angle)], -1)
    return centres + 0.1 * torch.randn(n, 2, generator=g)


def _checkerboard(n: int, g: torch.Generator) -> torch.Tensor:
    x1 = torch.rand(n, generator=g) * 4 - 2
    x2 = torch.rand(n, generator=g) - torch.randint(0, 2, (n,), generator=g) * 2.0
    x2 = x2 + (torch.floor(x1) % 2)
    return torch.stack([x1, x2], -1)


def _rings(n: int, g: torch.Generator) -> torch.Tensor:
    radius = (torch.randint(1, 5, (n,), generator=g).float()) * 0.5
    theta = torch.rand(n, generator=g) * 2 * math.pi
    pts = radius[:, None] * torch.stack([torch.cos(theta), torch.sin(theta)], -1)
    return pts + 0.04 * torch.randn(n, 2, generator=g)


_SYNTHETIC = {
    "moons": _moons,
    "8gaussians": _eight_gaussians,
    "checkerboard": _checkerboard,
    "rings": _rings,
}
_SPLIT_OFFSET = {"train": 0, "val": 1, "test": 2, "all": 3}


def _synthetic(name: str, split: str, n: int, seed: int) -> Dataset:
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    g = torch.Generator().manual_seed(seed * 4 + _SPLIT_OFFSET[split])
    return Dataset(_SYNTHETIC[name](n, g), None, "real", name=name)


#: the bundled datasets by name, each with a one-line description (``probgen list`` shows them)
DATASETS: dict[str, str] = {
    "digits": "sklearn 8x8 digits, 17 grey levels (0..16); train 1000 / val 350 / test 447",
    "digits-binary": "sklearn 8x8 digits binarized at pixel >= 8; same split",
    "iris": "sklearn iris, 4 real features, 3 classes; seeded stratified 60/20/20 split",
    "wine": "sklearn wine, 13 real features, 3 classes; seeded stratified 60/20/20 split",
    "breast-cancer": "sklearn breast cancer, 30 real features, 2 classes; seeded 60/20/20 split",
    "moons": "synthetic 2-D two moons (any n, seeded)",
    "8gaussians": "synthetic 2-D mixture of eight Gaussians on a circle (any n, seeded)",
    "checkerboard": "synthetic 2-D checkerboard (any n, seeded)",
    "rings": "synthetic 2-D concentric rings (any n, seeded)",
}


def load_dataset(name: str, split: str = "train", *, n: int = 2000, seed: int = 0) -> Dataset:
    """Load a bundled or synthetic dataset.

    Args:
        name: one of :data:`DATASETS` ("breast_cancer" is accepted for "breast-cancer").
        split: "train", "val", "test" or "all". Digits use the fixed split DIGITS_SPLIT (1000 / 350 / 447);
            iris, wine and breast-cancer a stratified 60/20/20 split seeded by ``seed``;
            synthetic data draws each split from its own seeded stream.
        n: number of points for the synthetic datasets (ignored otherwise).
        seed: seed of the tabular split and of the synthetic draws.

    Example:
        >>> train = load_dataset("digits-binary")
        >>> train.x.shape, train.support
        (torch.Size([1000, 64]), 'binary')
    """
    if not isinstance(name, str):
        raise TypeError(f"dataset name must be a string, got {type(name).__name__}")
    key = name.replace("_", "-")
    _check_split(split)
    if key == "digits":
        return _digits(split, binary=False)
    if key == "digits-binary":
        return _digits(split, binary=True)
    if key in ("iris", "wine", "breast-cancer"):
        return _tabular(key.replace("-", "_"))(split, seed)
    if key in _SYNTHETIC:
        return _synthetic(key, split, n, seed)
    raise ValueError(f"unknown dataset {name!r}; expected one of {sorted(DATASETS)} or a file path")
