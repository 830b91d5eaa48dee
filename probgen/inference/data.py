"""The data path of ``fit`` and ``log_likelihood``: batches from whatever the user holds.

A :class:`DataSource` takes a probgen ``Dataset``, a tensor, a numpy array (a
``numpy.memmap`` too: rows are read batch by batch, so data larger than memory stay on disk),
an ``(x, y)`` pair, or a ``torch.utils.data.DataLoader`` (whose own batch size and order are
kept). Batches come out on the CPU as they are stored; the model validates each one and moves
it to its device, one batch at a time.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Iterator
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader

from probgen.data.dataset import Dataset
from probgen.inference.distributed import SINGLE, Shard

__all__ = ["DataSource", "Batch", "Part"]

Batch = tuple[Tensor, "Tensor | None"]


class Part(NamedTuple):
    """One rank's part of a global batch: its rows, labels, and the weight of its loss
    (``world_size * len(part) / len(global batch)``; 1 for a single process, 0 for padding)."""

    x: Tensor
    y: Tensor | None
    weight: float


def _bound_heap_growth() -> None:
    """Have glibc serve allocations of 1 MiB and more by fresh mappings, returned on free.

    Streaming batches of tens of MB through torch otherwise raises glibc's dynamic mmap
    threshold, after which freed batches stay in the heap as fragments and resident memory
    grows with the number of batches (measured: 1.9 GB after one pass over a 1M x 784 memmap,
    190 MB with this setting). Process-wide, once; a no-op where the C library is not glibc.
    """
    global _HEAP_BOUNDED
    if _HEAP_BOUNDED:
        return
    _HEAP_BOUNDED = True
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt(-3, 1 << 20)  # M_MMAP_THRESHOLD
    except (OSError, AttributeError):
        pass


_HEAP_BOUNDED = False


def _rows(array: Tensor | np.ndarray, index: Tensor) -> Tensor:
    if isinstance(array, Tensor):
        return array[index]
    return torch.from_numpy(np.ascontiguousarray(array[np.sort(index.numpy())]))


class DataSource:
    """Examples (and optional labels) to iterate over in batches.

    Args:
        data: a Dataset, a tensor or array (memmap included), an ``(x, y)`` pair or a DataLoader
            yielding ``x`` or ``(x, y)`` batches.
        name: how error messages call it ("training data", ...).

    Example:
        >>> source = DataSource(torch.zeros(5, 2))
        >>> [tuple(x.shape) for x, _ in source.batches(2)]
        [(2, 2), (2, 2), (1, 2)]
    """

    def __init__(self, data: Any, name: str = "data") -> None:
        self.name = name
        #: (support, event_shape) of the models a full pass of these data was validated for
        self.checked_for: tuple[str, tuple[int, ...]] | None = None
        self.loader: DataLoader | None = None
        self.x: Tensor | np.ndarray | None = None
        self.y: Tensor | np.ndarray | None = None
        if isinstance(data, DataLoader):
            self.loader = data
            self.num_examples = len(data.dataset)  # type: ignore[arg-type]
        else:
            self.x, self.y = self._arrays(data)
            if self.y is not None and len(self.y) != len(self.x):
                raise ValueError(f"{name}: {len(self.x)} examples but {len(self.y)} labels")
            self.num_examples = len(self.x)
        if self.num_examples == 0:
            raise ValueError(f"{name} is empty: expected at least one example")

    def _arrays(self, data: Any) -> tuple[Any, Any]:
        if isinstance(data, Dataset):
            return data.x, data.y
        if isinstance(data, tuple | list) and len(data) == 2:
            return self._array(data[0]), None if data[1] is None else torch.as_tensor(np.asarray(data[1]))
        return self._array(data), None

    def _array(self, x: Any) -> Tensor | np.ndarray:
        if isinstance(x, np.memmap):  # out of core: keep resident memory bounded
            _bound_heap_growth()
        if isinstance(x, Tensor | np.ndarray):
            if x.ndim < 2:
                raise ValueError(
                    f"{self.name} has shape {tuple(x.shape)}; expected (N, *event_shape) with one example per row"
                )
            return x
        raise TypeError(
            f"{self.name} must be a probgen Dataset, a tensor, a numpy array, an (x, y) pair or a DataLoader; "
            f"got {type(x).__name__}"
        )

    def __len__(self) -> int:
        return self.num_examples

    def batches(
        self, batch_size: int, *, shuffle: bool = False, generator: torch.Generator | None = None
    ) -> Iterator[Batch]:
        """``(x, y)`` batches covering the data once (a DataLoader keeps its own size and order)."""
        if self.loader is not None:
            for item in self.loader:
                if isinstance(item, tuple | list):
                    yield item[0], item[1] if len(item) > 1 else None
                else:
                    yield item, None
            return
        for index in self._order(shuffle, generator).split(batch_size):
            yield self._take(index)

    def _order(self, shuffle: bool, generator: torch.Generator | None) -> Tensor:
        n = self.num_examples
        return torch.randperm(n, generator=generator) if shuffle else torch.arange(n)

    def _take(self, index: Tensor) -> Batch:
        return _rows(self.x, index), None if self.y is None else _rows(self.y, index)

    def parts(
        self,
        batch_size: int,
        shard: Shard = SINGLE,
        *,
        shuffle: bool = False,
        generator: torch.Generator | None = None,
        pad: bool = False,
    ) -> Iterator[Part]:
        """This rank's part of each global batch of ``batch_size`` examples.

        Every rank draws the same order (``generator`` is seeded alike on all of them), cuts it
        into the batches a single process would use, and keeps the ``shard.rank``-th of
        ``shard.world_size`` near-equal slices of each: the ranks together see each batch once.
        A rank whose slice is empty (a last batch smaller than the world) skips it, or with
        ``pad=True`` gets the batch's first row with weight 0, so that every rank takes part in
        every gradient all-reduce. A single process gets the batches themselves, weight 1.

        Example:
            >>> source = DataSource(torch.arange(10.0)[:, None])
            >>> [p.x.flatten().tolist() for p in source.parts(4, Shard(1, 2))]
            [[2.0, 3.0], [6.0, 7.0], [9.0]]
        """
        if not shard.active:
            yield from (Part(x, y, 1.0) for x, y in self.batches(batch_size, shuffle=shuffle, generator=generator))
            return
        if self.loader is not None:
            raise ValueError(
                f"{self.name} is a DataLoader; a distributed fit or evaluation shards stored data itself: "
                "expected a Dataset, a tensor, an array or an (x, y) pair"
            )
        for index in self._order(shuffle, generator).split(batch_size):
            mine = index.tensor_split(shard.world_size)[shard.rank]
            if len(mine):
                yield Part(*self._take(mine), shard.world_size * len(mine) / len(index))
            elif pad:
                yield Part(*self._take(index[:1]), 0.0)

    def head(self, n: int) -> Batch:
        """Up to ``n`` examples from the start, in one batch (for data-dependent starts)."""
        xs, ys, count = [], [], 0
        for x, y in self.batches(n):
            take = min(len(x), n - count)
            xs.append(x[:take])
            ys.append(None if y is None else y[:take])
            count += take
            if count >= n:
                break
        return torch.cat(xs), None if ys[0] is None else torch.cat(ys)

    def all(self) -> Batch:
        """Every example in one batch (for samplers that need the whole data set in memory)."""
        return self.head(self.num_examples)
