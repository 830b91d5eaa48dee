"""One table of the options of ``fit`` and ``log_likelihood`` that every front end reads.

:func:`probgen.fit` checks its options against :data:`FIT_OPTIONS`, the run-config checker
(:mod:`probgen.experiments.config`) reports a bad ``[fit]`` or ``[eval]`` key with the same
``expected`` words, and the command line parses ``--epochs``, ``--lr``, ... with
:func:`argument_type`, so an option means, and is refused, the same everywhere.

Example:
    >>> FIT_OPTIONS["lr_decay"].expected
    'a number in (0, 1]'
    >>> check_option(FIT_OPTIONS, "epochs", 0)
    Traceback (most recent call last):
    ...
    ValueError: epochs must be a positive integer, got 0
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "EVAL_METHODS",
    "EVAL_OPTIONS",
    "FIT_OPTIONS",
    "Option",
    "argument_type",
    "check_option",
    "is_int",
    "is_number",
]

#: the estimators ``log_likelihood(method=...)`` knows
EVAL_METHODS = ("auto", "exact", "iwae", "elbo", "ais")


def is_int(value: Any) -> bool:
    """An integer, not a bool."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    """A finite int or float, not a bool."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _positive_int(value: Any) -> bool:
    return is_int(value) and value >= 1


def _positive(value: Any) -> bool:
    return is_number(value) and value > 0


def _name(value: Any) -> bool:
    return isinstance(value, str) and bool(value)


@dataclass(frozen=True)
class Option:
    """One option: what it expects (in words), the check of a value, and how the command line
    turns text into a value (None: the option takes no command-line value of this table's)."""

    expected: str
    check: Callable[[Any], bool]
    parse: Callable[[str], Any] | None = None


#: the options of :func:`probgen.fit` that front ends set (``time_limit``: per job, by ``probgen run``)
FIT_OPTIONS: dict[str, Option] = {
    "epochs": Option("a positive integer", _positive_int, int),
    "batch_size": Option("a positive integer", _positive_int, int),
    "lr": Option("a positive number (finite)", _positive, float),
    "lr_decay": Option("a number in (0, 1]", lambda v: is_number(v) and 0 < v <= 1, float),
    "patience": Option("a positive integer", _positive_int, int),
    "objective": Option("a string such as 'elbo' or 'analytic_kl'", _name, str),
    "num_samples": Option("a positive integer (particles of the objective)", _positive_int, int),
    "val_objective": Option("a string such as 'iwae' (what scores validation data)", _name, str),
    "val_num_samples": Option("a positive integer (particles of val_objective)", _positive_int, int),
    "time_limit": Option("a positive number of seconds", _positive, float),
    "device": Option("a device name such as 'cpu' or 'cuda'", _name, str),
    "dtype": Option("'float32' or 'float64'", lambda v: v in ("float32", "float64"), str),
    "precision": Option("'fp32' or 'bf16'", lambda v: v in ("fp32", "bf16"), str),
}
#: the options of :func:`probgen.log_likelihood` that a run config's ``[eval]`` sets
EVAL_OPTIONS: dict[str, Option] = {
    "method": Option(f"one of {', '.join(EVAL_METHODS)}", lambda v: v in EVAL_METHODS, str),
    "num_samples": Option("a positive integer (K, importance samples or chains)", _positive_int, int),
    "batch_size": Option("a positive integer", _positive_int, int),
    "split": Option("'test' or 'val'", lambda v: v in ("test", "val"), str),
}


def check_option(table: Mapping[str, Option], name: str, value: Any) -> Any:
    """``value`` if it is a valid ``name`` of ``table``, else a ValueError in the table's words."""
    if not table[name].check(value):
        raise ValueError(f"{name} must be {table[name].expected}, got {value!r}")
    return value


def argument_type(table: Mapping[str, Option], name: str) -> Callable[[str], Any]:
    """An argparse ``type=`` for option ``name``: its text parsed and checked by the table, a bad
    value refused as ``expected <words>, got '<text>'``.

    Example:
        >>> argument_type(FIT_OPTIONS, "lr")("0.01")
        0.01
    """
    import argparse

    option = table[name]

    def parse(text: str) -> Any:
        try:
            value = option.parse(text)
        except (TypeError, ValueError):
            raise argparse.ArgumentTypeError(f"expected {option.expected}, got {text!r}") from None
        if not option.check(value):
            raise argparse.ArgumentTypeError(f"expected {option.expected}, got {text!r}")
        return value

    parse.__name__ = option.expected  # what argparse names in its own messages
    return parse
