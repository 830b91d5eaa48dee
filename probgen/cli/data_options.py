"""The data options of ``fit`` and ``compare`` (``--data``, ``--labels``, ``--val``, ...) as a data
spec (:mod:`probgen.data.parts`), and the parts it makes, with errors naming the flags."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from probgen.cli.common import UsageError

__all__ = ["data_spec", "load", "splits"]


def _abs(path: str | None) -> str | None:
    return None if path is None else str(Path(path).expanduser().resolve())


def load(path: str, labels: str | None, support: str | None = None, label_column: str | None = None) -> Any:
    """A user's file (``--data FILE``) as a Dataset."""
    from probgen.data import load_file

    return load_file(path, labels=labels, support=support, label_column=label_column)


def splits(spec: dict[str, Any]) -> Any:
    """:func:`probgen.data.parts.make_splits`, a mismatched separate file named by its flag."""
    from probgen.data.parts import PartMismatch, make_splits

    try:
        return make_splits(spec)
    except PartMismatch as err:
        raise UsageError(
            f"--{err.part} {err.name!r} has examples of shape {err.shape}; expected {err.expected} "
            f"like --data {err.data!r}"
        ) from None


def data_spec(args: argparse.Namespace, source: str) -> dict[str, Any]:
    """What identifies the data and its split: the name, or the absolute paths, fractions and seed."""
    from probgen.data.parts import is_file_source

    file_options = ("labels", "label_column", "val", "val_labels", "test", "test_labels", "val_frac", "test_frac")
    given = [o for o in file_options if getattr(args, o, None) is not None]
    if not is_file_source(source):
        if given:
            flag = "--" + given[0].replace("_", "-")
            raise UsageError(f"{flag} applies to a data file; dataset {source!r} comes with its own fixed split")
        return {"data": source, "file": False}
    _check_file_options(args)
    from probgen.data.split import DEFAULT_TEST_FRAC, DEFAULT_VAL_FRAC

    val_frac = DEFAULT_VAL_FRAC if args.val_frac is None else args.val_frac
    test_frac = DEFAULT_TEST_FRAC if args.test_frac is None else args.test_frac
    if (0 if args.val else val_frac) + (0 if args.test else test_frac) >= 1:
        raise UsageError(
            f"--val-frac {val_frac} and --test-frac {test_frac} leave nothing to train on; expected a sum below 1"
        )
    paths = {k: _abs(getattr(args, k)) for k in ("labels", "val", "val_labels", "test", "test_labels")}
    return {
        "data": _abs(source),
        "file": True,
        **paths,
        "label_column": args.label_column,
        "val_frac": val_frac,
        "test_frac": test_frac,
        "split_seed": args.split_seed,
    }


def _check_file_options(args: argparse.Namespace) -> None:
    """Options of a data file that contradict each other."""
    for labels, of in (("val_labels", "val"), ("test_labels", "test")):
        if getattr(args, labels, None) is not None and getattr(args, of, None) is None:
            raise UsageError(f"--{labels.replace('_', '-')} needs --{of} FILE")
    if args.labels is not None and args.label_column is not None:
        raise UsageError("give either --labels FILE or --label-column COLUMN, not both")
    if args.val is not None and args.val_frac is not None:
        raise UsageError("give either --val FILE or --val-frac, not both")
    if args.test is not None and args.test_frac is not None:
        raise UsageError("give either --test FILE or --test-frac, not both")
