"""The train/validation/test parts a fit works on, and the spec that re-creates them.

A *data spec* is a JSON-able dict that ``probgen fit`` records in its checkpoint and that a run
config's ``[data]`` table turns into: a bundled dataset by name (its fixed split), or a user's
file split at random (seeded), optionally with separate validation and test files. ``eval`` of a
checkpoint re-creates the same held-out parts from it. Errors here are ValueErrors in neutral
words ("the validation file"); the CLI and the config checker name their own flags or keys.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from probgen.data import get_data, load_file
from probgen.data.split import split

__all__ = ["PartMismatch", "Splits", "is_file_source", "make_splits", "spec_for_record"]


class PartMismatch(ValueError):
    """A separate validation or test file whose examples differ in shape from the data's.

    Attributes:
        part: "val" or "test", for a caller to name its own option (``--val``, ``[data] val``).
        shape, expected: the file's example shape and the data's.
    """

    def __init__(self, part: str, name: str, shape: tuple[int, ...], expected: tuple[int, ...], data: str) -> None:
        what = {"val": "the validation file", "test": "the test file"}[part]
        super().__init__(f"{what} {name!r} has examples of shape {shape}; expected {expected} like the data {data!r}")
        self.part, self.name, self.shape, self.expected, self.data = part, name, shape, expected, data


@dataclass
class Splits:
    """The parts a command works on, and what re-creates them (kept in a checkpoint's ``extra``)."""

    train: Any
    val: Any
    test: Any
    spec: dict[str, Any] = field(default_factory=dict)

    def parts(self) -> list[tuple[str, Any]]:
        """``(name, dataset)`` of every non-empty part, train first."""
        return [(name, d) for name, d in (("train", self.train), ("val", self.val), ("test", self.test)) if d]

    def describe(self) -> str:
        """One line: the data's name, each part's size and how the parts were made."""
        sizes = " / ".join(f"{name} {len(d)}" for name, d in self.parts())
        source = self.spec.get("how", "")
        return f"{self.train.name}: {sizes} examples{source}"


def is_file_source(source: str) -> bool:
    """Whether ``source`` names a file (it exists, or has a path separator or an extension)
    rather than a bundled dataset."""
    return os.path.exists(source) or os.sep in source or "." in os.path.basename(source)


def _same_shape(reference: Any, other: Any, part: str) -> None:
    if other.event_shape != reference.event_shape:
        raise PartMismatch(part, other.name, other.event_shape, reference.event_shape, reference.name)


def _column_of(spec: dict[str, Any], part: str) -> str | None:
    """The label column of a separate ``val``/``test`` file: the data's, where that file is a CSV
    without a labels file of its own."""
    if spec.get("label_column") is None or spec.get(f"{part}_labels") or not str(spec[part]).endswith(".csv"):
        return None
    return spec["label_column"]


def make_splits(spec: dict[str, Any]) -> Splits:
    """Train/val/test parts from a data spec (see the module docstring).

    Raises:
        ValueError: an unreadable file, data that do not fit together, or a file that no longer
            holds the rows the spec recorded (its held-out split cannot be re-created).
    """
    source = spec["data"]
    if not spec.get("file"):
        train = get_data(source, "train")
        return Splits(train, get_data(source, "val"), get_data(source, "test"), spec | {"how": " (fixed split)"})
    column = spec.get("label_column")
    whole = load_file(source, labels=spec.get("labels"), label_column=column)
    if spec.get("rows") is not None and spec["rows"] != len(whole):
        raise ValueError(
            f"data file {source!r} now holds {len(whole)} examples, but the checkpoint was fitted when it held "
            f"{spec['rows']}: the held-out split cannot be re-created"
        )
    val_frac = 0.0 if spec.get("val") else spec["val_frac"]
    test_frac = 0.0 if spec.get("test") else spec["test_frac"]
    train, val, test = split(whole, val_frac=val_frac, test_frac=test_frac, seed=spec["split_seed"])
    how = []
    for part in ("val", "test"):
        if not spec.get(part):
            continue
        labels = spec.get(f"{part}_labels")
        loaded = load_file(spec[part], labels=labels, support=whole.support, label_column=_column_of(spec, part))
        _same_shape(whole, loaded, part)
        val, test = (loaded, test) if part == "val" else (val, loaded)
        how.append(f"{part} from {Path(spec[part]).name}")
    if val_frac or test_frac:
        how.insert(0, f"random split of {whole.name} ({len(whole)} rows), seed {spec['split_seed']}")
    return Splits(train, val, test, spec | {"how": " (" + "; ".join(how) + ")" if how else ""})


def spec_for_record(splits: Splits) -> dict[str, Any]:
    """The spec to record with a fit: with a file's row count, so that a changed file is noticed."""
    spec = {k: v for k, v in splits.spec.items() if k != "how"}
    if spec.get("file"):
        spec["rows"] = len(splits.train) + sum(
            len(d) for name, d in (("val", splits.val), ("test", splits.test)) if d is not None and not spec.get(name)
        )
    return spec
