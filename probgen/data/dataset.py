"""The Dataset container every loader returns."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from probgen.data.support import check_data

__all__ = ["Dataset"]


@dataclass
class Dataset:
    """Data with the metadata models need.

    Attributes:
        x: features, shape ``(N, *event_shape)``, floating point.
        y: integer labels ``(N,)`` or None.
        support: "binary", "discrete(k)" or "real".
        name: where the data came from.
        image_shape: ``(H, W)`` when each example is a flattened image, else None.
        classes: label names, index ``i`` names label ``i``.

    Example:
        >>> import torch
        >>> ds = Dataset(torch.tensor([[0, 1], [1, 1], [0, 0]]), torch.tensor([0, 1, 0]), "binary", name="toy")
        >>> ds
        Dataset('toy', n=3, event_shape=(2,), support='binary', labels=2 classes)
        >>> len(ds), ds.num_dims, ds.x.is_floating_point()
        (3, 2, True)
        >>> Dataset(torch.tensor([[0.5]]), None, "binary", name="toy")
        Traceback (most recent call last):
        ...
        ValueError: toy.x has value 0.5 at index [0, 0], outside the support 'binary' (expected integers 0..1)
    """

    x: Tensor
    y: Tensor | None
    support: str
    name: str = "data"
    image_shape: tuple[int, int] | None = None
    classes: list[str] | None = field(default=None)

    def __post_init__(self) -> None:
        self.x = check_data(self.x, self.support, tuple(self.x.shape[1:]), name=f"{self.name}.x")
        if self.y is not None:
            self.y = torch.as_tensor(self.y).long()
            if self.y.shape != (self.x.shape[0],):
                raise ValueError(
                    f"{self.name}: labels have shape {tuple(self.y.shape)}; expected ({self.x.shape[0]},) to match x"
                )

    @property
    def event_shape(self) -> tuple[int, ...]:
        return tuple(self.x.shape[1:])

    @property
    def num_dims(self) -> int:
        """Number of scalar dimensions per example (the D of bits/dim)."""
        return int(torch.tensor(self.event_shape).prod().item()) if self.event_shape else 1

    def __len__(self) -> int:
        return self.x.shape[0]

    def __repr__(self) -> str:
        labels = "none" if self.y is None else f"{int(self.y.max()) + 1} classes"
        return (
            f"Dataset({self.name!r}, n={len(self)}, event_shape={self.event_shape}, "
            f"support={self.support!r}, labels={labels})"
        )
