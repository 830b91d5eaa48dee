"""``split``: a seeded random train/validation/test split of one dataset, labels travelling with their rows."""

from __future__ import annotations

import math
from typing import Any

import torch

from probgen.data.dataset import Dataset

__all__ = ["split", "split_sizes", "DEFAULT_VAL_FRAC", "DEFAULT_TEST_FRAC"]

#: Default fractions of a user's file held out for validation and for testing.
DEFAULT_VAL_FRAC = 0.1
DEFAULT_TEST_FRAC = 0.2


def _check_frac(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name} must be a number in [0, 1), got {value!r}")
    if not 0 <= value < 1:
        raise ValueError(f"{name} must be in [0, 1), got {value!r}")
    return float(value)


def split_sizes(n: int, val_frac: float, test_frac: float) -> tuple[int, int, int]:
    """Sizes ``(train, val, test)`` of a split of ``n`` examples; a positive fraction gets at least one.

    Raises:
        ValueError: for fractions outside [0, 1), fractions adding up to 1 or more, or too few
            examples to leave at least one for training.
    """
    val_frac = _check_frac("val_frac", val_frac)
    test_frac = _check_frac("test_frac", test_frac)
    if val_frac + test_frac >= 1:
        raise ValueError(f"val_frac + test_frac must be below 1, got {val_frac} + {test_frac}")
    n_val = max(1, round(n * val_frac)) if val_frac > 0 else 0
    n_test = max(1, round(n * test_frac)) if test_frac > 0 else 0
    n_train = n - n_val - n_test
    if n_train < 1:
        raise ValueError(
            f"{n} examples are too few to hold out val_frac={val_frac} and test_frac={test_frac} "
            "and keep at least one for training"
        )
    return n_train, n_val, n_test


def _subset(data: Dataset, index: torch.Tensor) -> Dataset:
    return Dataset(
        data.x[index],
        None if data.y is None else data.y[index],
        data.support,
        name=data.name,
        image_shape=data.image_shape,
        classes=data.classes,
    )


def split(
    dataset: Dataset,
    *,
    val_frac: float = DEFAULT_VAL_FRAC,
    test_frac: float = DEFAULT_TEST_FRAC,
    seed: int = 0,
) -> tuple[Dataset, Dataset | None, Dataset | None]:
    """Split ``dataset`` at random (seeded) into train, validation and test sets.

    Rows are drawn by a seeded permutation and keep their original order within each part; labels
    travel with their rows. The support, image shape and class names are kept, so every part is
    scored on the same footing.

    Args:
        dataset: the :class:`Dataset` to split.
        val_frac: fraction held out for validation, in [0, 1); 0 gives no validation set (None).
        test_frac: fraction held out for testing, in [0, 1); 0 gives no test set (None).
        seed: seed of the permutation (the same seed gives the same split).

    Returns:
        ``(train, val, test)``; ``val``/``test`` are None when their fraction is 0.

    Raises:
        ValueError: bad fractions, a bad seed, or too few examples.

    Example:
        >>> import probgen as pg
        >>> train, val, test = pg.data.split(pg.load_dataset("iris", "all"), val_frac=0.1, test_frac=0.2)
        >>> len(train), len(val), len(test)
        (105, 15, 30)
    """
    if not isinstance(dataset, Dataset):
        raise TypeError(f"dataset must be a probgen Dataset, got {type(dataset).__name__}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    n_train, n_val, n_test = split_sizes(len(dataset), val_frac, test_frac)
    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed))
    test_idx = order[:n_test].sort().values
    val_idx = order[n_test : n_test + n_val].sort().values
    train_idx = order[n_test + n_val :].sort().values
    return (
        _subset(dataset, train_idx),
        _subset(dataset, val_idx) if n_val else None,
        _subset(dataset, test_idx) if n_test else None,
    )
