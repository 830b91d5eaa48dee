"""Bundled datasets, readers for user files, and preprocessing."""

from probgen.data.bundled import DATASETS, DIGITS_SPLIT, load_dataset
from probgen.data.dataset import Dataset
from probgen.data.preprocess import binarize, dequantize, discrete_log_prob_offset, logit_transform
from probgen.data.readers import load_file, read_idx, write_idx
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
    "read_idx",
    "write_idx",
]


def get_data(source: str, split: str = "train", **kwargs) -> Dataset:
    """A dataset by name, or a user file by path (the CLI's ``--data``)."""
    import os

    if isinstance(source, str) and (os.sep in source or "." in os.path.basename(source)):
        if os.path.exists(source):
            return load_file(source, **kwargs)
        raise ValueError(f"data file {source!r} does not exist")
    return load_dataset(source, split, **kwargs)
