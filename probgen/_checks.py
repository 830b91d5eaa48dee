"""Argument checks shared across probgen: one message format for every bad integer or rate."""

from __future__ import annotations

from typing import Any

__all__ = ["check_int", "check_dropout"]


def check_int(name: str, value: Any, minimum: int = 1) -> int:
    """Return ``value`` if it is an int (not a bool) of at least ``minimum``; else a ValueError."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        expected = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise ValueError(f"{name} must be {expected}, got {value!r}")
    return value


def check_dropout(name: str, value: Any) -> float:
    """Return ``value`` as a float if it is a number in [0, 1) (a dropout rate); else a ValueError."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise ValueError(f"{name} must be a number in [0, 1), got {value!r}")
    return float(value)
