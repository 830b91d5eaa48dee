"""The key numbers of a tutorial on one line, for scripts (and the smoke tests) to read."""

import json
import math
from collections.abc import Mapping

__all__ = ["print_summary", "read_summary"]

PREFIX = "key numbers (JSON): "


def print_summary(numbers: Mapping) -> None:
    """Print ``numbers`` (nested dicts of floats and ints) as one JSON line after ``PREFIX``.

    Likelihoods are given as the tables print them: negative log-likelihoods in nats per example
    (``nll``, lower is better), each with its standard error where there is one."""
    print(PREFIX + json.dumps(numbers, sort_keys=True, default=float))


def read_summary(printed: str) -> dict:
    """The numbers of the last summary line in ``printed``; every float finite."""
    lines = [line for line in printed.splitlines() if line.startswith(PREFIX)]
    if not lines:
        raise ValueError(f"no line starting with {PREFIX!r} in the output")
    numbers = json.loads(lines[-1][len(PREFIX) :])

    def finite(value):
        if isinstance(value, dict):
            return all(finite(v) for v in value.values())
        return not isinstance(value, float) or math.isfinite(value)

    if not finite(numbers):
        raise ValueError(f"a key number is not finite: {numbers}")
    return numbers
