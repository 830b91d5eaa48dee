"""Bundled datasets, readers for user files, and preprocessing."""

from probgen.data.bundled import DATASETS, DIGITS_SPLIT, load_dataset
from probgen.data.dataset import Dataset
from probgen.data.preprocess import binarize, dequantize, discrete_log_prob_offset, logit_transform
from probgen.data.readers import load_file, read_array, read_idx, write_idx
from probgen.data.split import split
from probgen.data.support import check_data, infer_support, num_levels, parse_support

__all__ = [
    "DATASETS",
    "DIGITS_SPLIT",
    "Dataset",
    "binarize",
    "check_data",
    "dequantize",
    "discrete_log_prob_offset",
    "get_data",
    "infer_support",
    "load_dataset",
    "load_file",
    "logit_transform",
    "num_levels",
    "parse_support",
    "read_array",
    "read_idx",
    "split",
    "write_idx",
]


def get_data(source: str, split: str = "train", **kwargs) -> Dataset:
    """A bundled dataset by name, or a user's file by path (the CLI's ``--data``).

    An existing path, or a string that looks like one (it has a path separator or a file
    extension), is read with :func:`load_file` whole (``split`` does not apply: use
    :func:`probgen.data.split` to hold part of it out); anything else names a bundled dataset.

    Raises:
        ValueError: a missing file, an unreadable file, or an unknown dataset name.

    Example:
        >>> import os, tempfile
        >>> import numpy as np
        >>> get_data("iris", "test").x.shape  # a name: a bundled dataset's split
        torch.Size([30, 4])
        >>> path = os.path.join(tempfile.mkdtemp(), "x.npy")
        >>> np.save(path, np.eye(3))
        >>> get_data(path)  # a path: the whole file, its support inferred from the values
        Dataset('x.npy', n=3, event_shape=(3,), support='binary', labels=none)
    """
    import os

    if not isinstance(source, str):
        raise TypeError(f"source must be a dataset name or a file path, got {type(source).__name__}")
    if os.path.exists(source) or os.sep in source or "." in os.path.basename(source):
        return load_file(source, **kwargs)
    return load_dataset(source, split, **kwargs)
