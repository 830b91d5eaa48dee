"""Readers for data files a user supplies: .npy, .npz, .csv and MNIST's IDX format (plain or gzip).

None of them unpickles: ``numpy.load`` is called with ``allow_pickle=False``.
"""

from __future__ import annotations

import gzip
import math
import os
import struct
from pathlib import Path

import numpy as np
import torch

from probgen.data.dataset import Dataset
from probgen.data.support import infer_support, parse_support

__all__ = ["load_file", "read_idx", "write_idx"]

# IDX type codes (http://yann.lecun.com/exdb/mnist/): code -> big-endian numpy dtype
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_IDX_CODES = {np.dtype(v).newbyteorder("="): k for k, v in _IDX_DTYPES.items()}


def _open(path: Path):
    with open(path, "rb") as fh:
        magic = fh.read(2)
    return gzip.open(path, "rb") if magic == b"\x1f\x8b" else open(path, "rb")


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (as MNIST ships: ``train-images-idx3-ubyte[.gz]``) into a numpy array."""
    path = Path(path)
    try:
        with _open(path) as fh:
            header = fh.read(4)
            if len(header) < 4 or header[0] != 0 or header[1] != 0:
                raise ValueError(f"{path} is not an IDX file (bad magic number {header!r})")
            code, ndim = header[2], header[3]
            if code not in _IDX_DTYPES:
                raise ValueError(
                    f"{path}: unknown IDX type code {code:#04x}; expected one of {[hex(c) for c in _IDX_DTYPES]}"
                )
            raw_dims = fh.read(4 * ndim)
            if len(raw_dims) < 4 * ndim:
                raise ValueError(f"{path}: truncated IDX header")
            dims = struct.unpack(f">{ndim}I", raw_dims)
            dtype = np.dtype(_IDX_DTYPES[code])
            expected = math.prod(dims) * dtype.itemsize
            body = fh.read(expected + 1)
    except (OSError, EOFError, gzip.BadGzipFile) as err:
        raise ValueError(f"cannot read IDX file {path}: {err}") from err
    if len(body) != expected:
        raise ValueError(f"{path}: IDX body has {len(body)} bytes; the header {dims} promises {expected}")
    return np.frombuffer(body, dtype=dtype).reshape(dims).astype(dtype.newbyteorder("="))


def write_idx(path: str | os.PathLike, array: np.ndarray, compress: bool | None = None) -> None:
    """Write an array in IDX format (gzip when ``compress`` or the path ends in .gz)."""
    array = np.asarray(array)
    code = _IDX_CODES.get(array.dtype.newbyteorder("="))
    if code is None:
        raise TypeError(f"IDX cannot store dtype {array.dtype}; expected uint8/int8/16/32/float32/64")
    data = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    data += array.astype(_IDX_DTYPES[code]).tobytes()
    path = Path(path)
    compress = path.suffix == ".gz" if compress is None else compress
    with (gzip.open if compress else open)(path, "wb") as fh:
        fh.write(data)


def _read_csv(path: Path, label_column: int | None) -> tuple[np.ndarray, np.ndarray | None]:
    try:
        with open(path) as fh:
            first = fh.readline()
        try:
            [float(v) for v in first.strip().split(",") if v.strip()]
            skip = 0
        except ValueError:
            skip = 1  # a header line
        table = np.loadtxt(path, delimiter=",", skiprows=skip, ndmin=2, dtype=np.float64)
    except ValueError as err:
        raise ValueError(f"{path}: cannot parse as a numeric CSV: {err}") from err
    if label_column is None:
        return table, None
    if not -table.shape[1] <= label_column < table.shape[1]:
        raise ValueError(f"label_column={label_column} is out of range for {path} with {table.shape[1]} columns")
    labels = table[:, label_column]
    return np.delete(table, label_column, axis=1), labels


def _read_npz(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    with np.load(path, allow_pickle=False) as archive:
        keys = list(archive.keys())
        if not keys:
            raise ValueError(f"{path} holds no arrays")
        xkey = next((k for k in ("x", "X", "data", "images") if k in keys), keys[0])
        ykey = next((k for k in ("y", "Y", "labels", "targets") if k in keys), None)
        return archive[xkey], (archive[ykey] if ykey else None)


def load_file(
    path: str | os.PathLike,
    *,
    support: str | None = None,
    labels: str | os.PathLike | None = None,
    label_column: int | None = None,
    flatten: bool = True,
) -> Dataset:
    """Load a user's data file into a :class:`Dataset`.

    Args:
        path: a ``.npy``, ``.npz`` (arrays ``x``/``X``/``data`` and ``y``/``labels``), ``.csv``
            (numeric, optional header) or IDX file (``*-idx3-ubyte``, ``.idx``, optionally ``.gz``).
        support: "binary", "discrete(k)" or "real"; inferred from the values when None.
        labels: optional separate file of labels (e.g. MNIST's ``*-idx1-ubyte``).
        label_column: for CSV files, the column holding labels.
        flatten: flatten each example to one dimension, keeping ``image_shape`` for 2-D examples.

    Example:
        >>> ds = load_file("train-images-idx3-ubyte.gz", labels="train-labels-idx1-ubyte.gz")
        ... # doctest: +SKIP
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"data file {str(path)!r} does not exist")
    name = path.name.lower().removesuffix(".gz")
    y = None
    try:
        if name.endswith(".npy"):
            x = np.load(path, allow_pickle=False)
        elif name.endswith(".npz"):
            x, y = _read_npz(path)
        elif name.endswith(".csv"):
            x, y = _read_csv(path, label_column)
        elif "idx" in name or name.endswith("-ubyte"):
            x = read_idx(path)
        else:
            raise ValueError(f"unsupported data file {path.name!r}; expected .npy, .npz, .csv or an IDX file")
    except (OSError, EOFError) as err:
        raise ValueError(f"cannot read {path}: {err}") from err
    except ValueError as err:
        if "pickle" in str(err).lower():
            raise ValueError(f"{path} holds pickled objects, which probgen refuses to load") from err
        raise
    if labels is not None:
        y = load_file(labels, support="real", flatten=False).x.numpy()
    if x.dtype.kind not in "biuf":
        raise TypeError(f"{path} holds dtype {x.dtype}; expected numbers")
    if x.ndim < 1 or x.shape[0] == 0:
        raise ValueError(f"{path} holds an array of shape {x.shape}; expected (N, ...) with N > 0")
    if x.ndim == 1:
        x = x[:, None]
    image_shape = tuple(x.shape[1:]) if x.ndim == 3 else None
    if flatten:
        x = x.reshape(x.shape[0], -1)
    tensor = torch.as_tensor(np.asarray(x, dtype=np.float32))
    if support is None:
        support = infer_support(tensor)
        if x.dtype == np.uint8 and support != "binary":
            support = "discrete(256)"  # bytes: all 256 levels, whichever occur in this file
    parse_support(support)
    if y is not None:
        y = np.asarray(y).reshape(-1)
        if len(y) != len(tensor):
            raise ValueError(f"{len(y)} labels for {len(tensor)} examples in {path}")
        if not np.all(np.equal(np.mod(y, 1), 0)):
            raise ValueError(f"labels in {path} must be integers")
        y = torch.as_tensor(y.astype(np.int64))
    return Dataset(tensor, y, support, name=path.name, image_shape=image_shape)
