"""Readers for data files a user supplies: .npy, .npz, .csv and MNIST's IDX format (plain or gzip).

None of them unpickles: ``numpy.load`` is called with ``allow_pickle=False`` and object arrays are
refused. Every problem with a file is a ``ValueError`` whose message names the file, what was found
and what was expected.
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import math
import os
import struct
import zipfile
from pathlib import Path

import numpy as np
import torch

from probgen.data.dataset import Dataset
from probgen.data.support import infer_support, parse_support

__all__ = ["load_file", "read_idx", "write_idx", "read_array"]

# IDX type codes (http://yann.lecun.com/exdb/mnist/): code -> big-endian numpy dtype
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_IDX_CODES = {np.dtype(v).newbyteorder("="): k for k, v in _IDX_DTYPES.items()}
_NPY_MAGIC = b"\x93NUMPY"
_CHUNK = 1 << 20
SUFFIXES = (".npy", ".npz", ".csv", "IDX (*-ubyte, *.idx, optionally .gz)")


def _open(path: Path):
    with open(path, "rb") as fh:
        magic = fh.read(2)
    return gzip.open(path, "rb") if magic == b"\x1f\x8b" else open(path, "rb")


def _read_at_most(fh, limit: int) -> bytes:
    """Read up to ``limit`` bytes in chunks, so a lying header never makes us allocate ``limit`` bytes."""
    parts, total = [], 0
    while total < limit:
        chunk = fh.read(min(_CHUNK, limit - total))
        if not chunk:
            break
        parts.append(chunk)
        total += len(chunk)
    return b"".join(parts)


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (as MNIST ships: ``train-images-idx3-ubyte[.gz]``) into a numpy array.

    The body is read in chunks and checked against the size the header promises before any array
    is built, so a header that claims more data than the file holds is refused without allocating it.

    Raises:
        ValueError: a bad magic number, unknown type code, truncated header or body, or trailing bytes.

    Example:
        >>> import os, tempfile
        >>> path = os.path.join(tempfile.mkdtemp(), "labels-idx1-ubyte")
        >>> with open(path, "wb") as fh:  # header: type 0x08 (uint8), 1 dimension of size 3; body: 3 bytes
        ...     _ = fh.write(bytes([0, 0, 0x08, 1, 0, 0, 0, 3, 7, 2, 1]))
        >>> read_idx(path)
        array([7, 2, 1], dtype=uint8)
        >>> with open(path, "wb") as fh:  # the header promises 5 bytes; 3 follow
        ...     _ = fh.write(bytes([0, 0, 0x08, 1, 0, 0, 0, 5, 7, 2, 1]))
        >>> read_idx(path)
        Traceback (most recent call last):
        ...
        ValueError: ...promises 5 bytes of data but the file holds 3 bytes; the file is truncated or corrupt
    """
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
            if ndim == 0:
                raise ValueError(f"{path}: the IDX header declares 0 dimensions; expected at least 1")
            raw_dims = fh.read(4 * ndim)
            if len(raw_dims) < 4 * ndim:
                raise ValueError(f"{path}: truncated IDX header ({len(raw_dims)} of {4 * ndim} dimension bytes)")
            dims = struct.unpack(f">{ndim}I", raw_dims)
            dtype = np.dtype(_IDX_DTYPES[code])
            expected = math.prod(dims) * dtype.itemsize
            body = _read_at_most(fh, expected + 1)
    except (OSError, EOFError, gzip.BadGzipFile, zipfile.BadZipFile) as err:
        raise ValueError(f"cannot read IDX file {path}: {err}") from err
    if len(body) != expected:
        found = f"{len(body)} bytes" if len(body) < expected else "more bytes than that"
        raise ValueError(
            f"{path}: the IDX header (dimensions {list(dims)}) promises {expected} bytes of data but the file "
            f"holds {found}; the file is truncated or corrupt"
        )
    return np.frombuffer(body, dtype=dtype).reshape(dims).astype(dtype.newbyteorder("="))


def write_idx(path: str | os.PathLike, array: np.ndarray, compress: bool | None = None) -> None:
    """Write an array in IDX format (gzip when ``compress`` or the path ends in .gz).

    Example:
        >>> import os, tempfile
        >>> path = os.path.join(tempfile.mkdtemp(), "images-idx3-ubyte.gz")
        >>> images = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
        >>> write_idx(path, images)
        >>> Path(path).read_bytes()[:2] == b"\\x1f\\x8b"  # gzip, as the name says
        True
        >>> back = read_idx(path)
        >>> back.shape, back.dtype, bool((back == images).all())
        ((2, 3, 4), dtype('uint8'), True)
        >>> write_idx(path, np.zeros(2, dtype=np.int64))
        Traceback (most recent call last):
        ...
        TypeError: IDX cannot store dtype int64; expected uint8/int8/16/32/float32/64
    """
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


def _parse_cell(text: str, path: Path, line: int, column: int) -> float:
    try:
        return float(text)
    except ValueError:
        raise ValueError(
            f"{path}: cell {text.strip()!r} on line {line}, column {column} is not a number; "
            "expected a numeric CSV (an optional header line, then numbers only)"
        ) from None


def _read_csv(path: Path, label_column: int | str | None) -> tuple[np.ndarray, np.ndarray | None]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            rows = [(n, row) for n, row in enumerate(csv.reader(fh), start=1) if any(c.strip() for c in row)]
    except UnicodeDecodeError as err:
        raise ValueError(
            f"{path} is not a text CSV file ({err.reason} at byte {err.start}); expected a numeric CSV"
        ) from None
    except csv.Error as err:
        raise ValueError(f"{path}: cannot parse as a numeric CSV: {err}") from err
    if not rows:
        raise ValueError(f"{path} holds no rows; expected a numeric CSV with at least one row of numbers")
    first_line, first = rows[0]
    header = None
    try:
        [float(v) for v in first]
    except ValueError:
        header, rows = [c.strip() for c in first], rows[1:]  # a header line
    if not rows:
        raise ValueError(f"{path} holds a header line but no rows of numbers; expected a numeric CSV with data")
    width = len(rows[0][1])
    table = np.empty((len(rows), width), dtype=np.float64)
    for i, (line, row) in enumerate(rows):
        if len(row) != width:
            raise ValueError(
                f"{path}: line {line} has {len(row)} cells but line {rows[0][0]} has {width}; "
                "expected a numeric CSV with the same number of cells on every row"
            )
        table[i] = [_parse_cell(cell, path, line, j + 1) for j, cell in enumerate(row)]
    if label_column is None:
        return table, None
    if isinstance(label_column, str):
        label_column = _column_index(path, header, label_column)
    if isinstance(label_column, bool) or not isinstance(label_column, int):
        raise TypeError(f"label_column must be a column name or an integer column index, got {label_column!r}")
    if not -table.shape[1] <= label_column < table.shape[1]:
        raise ValueError(f"label_column={label_column} is out of range for {path} with {table.shape[1]} columns")
    labels = table[:, label_column]
    return np.delete(table, label_column, axis=1), labels


def _column_index(path: Path, header: list[str] | None, name: str) -> int:
    """The index of the column named ``name`` in the CSV's header line (an integer given as text,
    e.g. from the command line, is an index)."""
    if header is not None and name.strip() in header:
        if header.count(name.strip()) > 1:
            raise ValueError(f"{path}: the header names column {name!r} more than once; give its index instead")
        return header.index(name.strip())
    try:
        return int(name)
    except ValueError:
        pass
    if header is None:
        raise ValueError(f"label column {name!r}: {path} has no header line; expected a column index (0, 1, ..., -1)")
    raise ValueError(f"label column {name!r} is not in the header of {path}; expected one of {header}")


def _np_load(path: Path):
    """``numpy.load`` without pickle; an object array is refused with a message that says so."""
    try:
        return np.load(path, allow_pickle=False)
    except ValueError as err:
        text = str(err).lower()
        if "pickle" in text or "object arrays" in text:
            raise ValueError(
                f"{path} holds a NumPy object array, which only unpickling could load; probgen refuses pickle "
                "data (it could run code): save a numeric array instead"
            ) from err
        raise ValueError(f"{path} is not a readable NumPy file: {str(err).splitlines()[0]}") from err


def _load_npy(path: Path) -> np.ndarray:
    with open(path, "rb") as fh:
        head = fh.read(len(_NPY_MAGIC))
    if head != _NPY_MAGIC:
        raise ValueError(
            f"{path} is not a NumPy .npy file (it does not start with the NumPy magic bytes); "
            "expected a file written by numpy.save"
        )
    _check_npy_header(path)
    return _np_load(path)


def _check_npy_header(path: Path, member: str | None = None) -> None:
    """Refuse an object array, or a header promising more bytes than the file holds, before allocating.

    Args:
        path: the ``.npy`` file, or the ``.npz`` archive holding ``member``.
        member: the archive member (``"x.npy"``) to check, for ``.npz`` files.
    """
    fmt = np.lib.format
    try:
        with contextlib.ExitStack() as stack:
            if member is None:
                fh = stack.enter_context(open(path, "rb"))
                size = path.stat().st_size
            else:
                archive = stack.enter_context(zipfile.ZipFile(path))
                size = archive.getinfo(member).file_size
                fh = stack.enter_context(archive.open(member))
            version = fmt.read_magic(fh)
            reader = {(1, 0): fmt.read_array_header_1_0, (2, 0): fmt.read_array_header_2_0}.get(version)
            if reader is None:
                return  # a newer format: numpy.load checks it
            shape, _, dtype = reader(fh)
            offset = fh.tell()
    except (ValueError, OSError, SyntaxError, TypeError, KeyError, zipfile.BadZipFile) as err:
        where = f"{path} ({member})" if member else str(path)
        raise ValueError(f"{where} has a malformed NumPy header: {str(err).splitlines()[0]}") from None
    present = size - offset
    if dtype.hasobject:
        raise ValueError(
            f"{path} holds a NumPy object array, which only unpickling could load; probgen refuses pickle "
            "data (it could run code): save a numeric array instead"
        )
    expected = math.prod(shape) * dtype.itemsize
    if present < expected:
        raise ValueError(
            f"{path}: the NumPy header promises shape {shape} ({expected} bytes) but the file holds {present} bytes; "
            "the file is truncated or corrupt"
        )


def _read_npz(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    if not zipfile.is_zipfile(path):
        raise ValueError(f"{path} is not a NumPy .npz archive (not a zip file); expected a file written by numpy.savez")
    with _np_load(path) as archive:
        keys = list(archive.keys())
        if not keys:
            raise ValueError(f"{path} holds no arrays; expected arrays named x (and optionally y)")
        xkey = next((k for k in ("x", "X", "data", "images") if k in keys), keys[0])
        ykey = next((k for k in ("y", "Y", "labels", "targets") if k in keys), None)
        for key in (xkey, ykey):
            if key is not None:
                _check_npy_header(path, f"{key}.npy")
        try:
            return archive[xkey], (archive[ykey] if ykey else None)
        except ValueError as err:
            if "pickle" in str(err).lower() or "object arrays" in str(err).lower():
                raise ValueError(
                    f"{path} holds a NumPy object array, which only unpickling could load; probgen refuses "
                    "pickle data (it could run code): save a numeric array instead"
                ) from err
            raise ValueError(f"{path} is not a readable NumPy archive: {str(err).splitlines()[0]}") from err


def _kind(path: Path) -> str:
    name = path.name.lower().removesuffix(".gz")
    if name.endswith(".npy"):
        return "npy"
    if name.endswith(".npz"):
        return "npz"
    if name.endswith(".csv"):
        return "csv"
    if "idx" in name or name.endswith("-ubyte"):
        return "idx"
    raise ValueError(f"unsupported data file {path.name!r}; expected .npy, .npz, .csv or an IDX file")


def _check_path(path: Path, what: str) -> None:
    if path.is_dir():
        raise ValueError(f"{what} {str(path)!r} is a directory; expected a .npy, .npz, .csv or IDX file")
    if not path.exists():
        raise ValueError(f"{what} {str(path)!r} does not exist")
    if not path.is_file():
        raise ValueError(f"{what} {str(path)!r} is not a regular file; expected a .npy, .npz, .csv or IDX file")
    if path.stat().st_size == 0:
        raise ValueError(f"{what} {str(path)!r} is empty (0 bytes); expected a .npy, .npz, .csv or IDX file")


def read_array(
    path: str | os.PathLike, *, label_column: int | str | None = None, what: str = "data file"
) -> tuple[np.ndarray, np.ndarray | None]:
    """Read the array(s) in a user's file, refusing anything that needs unpickling.

    Args:
        path: a ``.npy``, ``.npz``, ``.csv`` or IDX file.
        label_column: for CSV files, the column holding labels (its header name or index).
        what: how messages name the file ("data file", "labels file", ...).

    Returns:
        ``(x, y)``: the array of numbers and the labels the file itself holds (or None).

    Raises:
        ValueError: a missing, empty or unreadable file, a file that is not what its name says,
            an object/pickled array, or an array that does not hold numbers.

    Example:
        >>> import os, tempfile
        >>> path = os.path.join(tempfile.mkdtemp(), "points.csv")
        >>> with open(path, "w") as fh:
        ...     _ = fh.write("a,b,label\\n0.5,1.5,0\\n2.0,3.0,1\\n")
        >>> x, y = read_array(path, label_column="label")
        >>> x.tolist(), y.tolist()
        ([[0.5, 1.5], [2.0, 3.0]], [0.0, 1.0])
    """
    path = Path(path)
    _check_path(path, what)
    kind = _kind(path)
    y = None
    if label_column is not None and kind != "csv":
        raise ValueError(
            f"label_column={label_column!r} names a column of a CSV file; {path} is a .{kind} file "
            "(give its labels as a separate file, or as y in a .npz)"
        )
    try:
        if kind == "npy":
            x = _load_npy(path)
        elif kind == "npz":
            x, y = _read_npz(path)
        elif kind == "csv":
            x, y = _read_csv(path, label_column)
        else:
            x = read_idx(path)
    except (OSError, EOFError, zipfile.BadZipFile) as err:
        raise ValueError(f"cannot read {what} {path}: {err}") from err
    for name, array in (("data", x), ("labels", y)):
        if array is not None and array.dtype.kind not in "biuf":
            raise ValueError(f"{path} holds {name} of dtype {array.dtype}; expected numbers (bool, int or float)")
    return x, y


def _check_finite(x: np.ndarray, path: Path) -> None:
    if x.dtype.kind == "f":
        bad = ~np.isfinite(x)
        if bad.any():
            where = np.argwhere(bad)[0].tolist()
            value = x[tuple(where)]
            shown = "NaN" if np.isnan(value) else ("inf" if value > 0 else "-inf")
            raise ValueError(f"{path} contains {shown} at index {where}; expected finite numbers (no NaN or inf)")


def _labels(y: np.ndarray, n: int, path: Path, source: Path) -> torch.Tensor:
    y = np.asarray(y)
    if y.ndim == 2 and 1 in y.shape:
        y = y.reshape(-1)
    if y.ndim != 1:
        raise ValueError(f"labels in {source} have shape {y.shape}; expected one label per example, shape ({n},)")
    if len(y) != n:
        raise ValueError(f"{len(y)} labels in {source} for {n} examples in {path}; expected one label per example")
    _check_finite(y, source)
    if not np.all(np.equal(np.mod(y, 1), 0)) or (len(y) and y.min() < 0):
        raise ValueError(f"labels in {source} must be non-negative integers (class indices)")
    return torch.as_tensor(y.astype(np.int64))


def load_file(
    path: str | os.PathLike,
    *,
    support: str | None = None,
    labels: str | os.PathLike | None = None,
    label_column: int | str | None = None,
    flatten: bool = True,
) -> Dataset:
    """Load a user's data file into a :class:`Dataset`.

    Args:
        path: a ``.npy``, ``.npz`` (arrays ``x``/``X``/``data`` and ``y``/``labels``), ``.csv``
            (numeric, optional header) or IDX file (``*-idx3-ubyte``, ``.idx``, optionally ``.gz``).
            Data must be at least 2-D, ``(N, D)`` or ``(N, H, W)``: a 1-D array looks like labels
            and is refused.
        support: "binary", "discrete(k)" or "real"; inferred from the values when None.
        labels: optional separate file of labels (e.g. MNIST's ``*-idx1-ubyte``, or a 1-D ``.npy``).
        label_column: for CSV files, the column holding labels: its name in the header line or
            its index (negative counts from the end).
        flatten: flatten each example to one dimension, keeping ``image_shape`` for 2-D examples.

    Raises:
        ValueError: for any file that cannot be used as data (the message says why).

    Example:
        >>> ds = load_file("train-images-idx3-ubyte.gz", labels="train-labels-idx1-ubyte.gz")
        ... # doctest: +SKIP
    """
    path = Path(path)
    x, y = read_array(path, label_column=label_column)
    if x.ndim == 1:
        raise ValueError(
            f"{path} holds a 1-D array of shape {x.shape}, which looks like labels; expected data of shape "
            "(N, D) or (N, H, W) (give labels with labels= or --labels)"
        )
    if x.ndim == 0:
        raise ValueError(f"{path} holds a single number (a 0-D array); expected data of shape (N, D) or (N, H, W)")
    if x.shape[0] == 0 or math.prod(x.shape[1:]) == 0:
        raise ValueError(f"{path} holds an array of shape {x.shape} with no values; expected (N, D) with N, D > 0")
    _check_finite(x, path)
    label_source = path
    if labels is not None:
        label_source = Path(labels)
        y, inner = read_array(label_source, what="labels file")
        if inner is not None and y.ndim > 1:
            y = inner
    image_shape = tuple(x.shape[1:]) if x.ndim == 3 else None
    if flatten:
        x = x.reshape(x.shape[0], -1)
    tensor = torch.as_tensor(np.asarray(x, dtype=np.float32))
    if not torch.isfinite(tensor).all():
        raise ValueError(f"{path} holds values too large for float32; expected finite numbers")
    if support is None:
        support = infer_support(tensor)
        if x.dtype == np.uint8 and support != "binary":
            support = "discrete(256)"  # bytes: all 256 levels, whichever occur in this file
    parse_support(support)
    y_t = None if y is None else _labels(y, len(tensor), path, label_source)
    return Dataset(tensor, y_t, support, name=path.name, image_shape=image_shape)
