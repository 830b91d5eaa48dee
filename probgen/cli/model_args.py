"""``--model-args``: a JSON object checked against the model's constructor, and the model built from it."""

from __future__ import annotations

import inspect
import json
import math
from collections.abc import Sequence
from typing import Any

from probgen._checks import first_line
from probgen.cli.common import UsageError

__all__ = ["build", "check_model_names", "parse_model_args"]


def _expected_type(param: inspect.Parameter) -> tuple[str, tuple[type, ...]] | None:
    annotation = param.annotation if isinstance(param.annotation, str) else getattr(param.annotation, "__name__", "")
    annotation = str(annotation).replace(" ", "")
    default = param.default
    if "None" in annotation.split("|") or annotation.startswith("Optional") or annotation == "Any":
        base = [a for a in annotation.split("|") if a != "None"]
        annotation = base[0] if len(base) == 1 else ""
        nullable = True
    else:
        nullable = default is None
    table = {"int": ("an integer", (int,)), "float": ("a number", (int, float)), "str": ("a string", (str,))}
    table["bool"] = ("true or false", (bool,))
    if annotation in table:
        found = table[annotation]
    elif annotation.startswith(("tuple", "list", "Sequence", "Tuple", "List")):
        found = ("a list", (list,))
    elif default is not None and default is not inspect.Parameter.empty:
        found = next(
            (table[t.__name__] for t in (bool, int, float, str) if type(default) is t),
            ("a list", (list,)) if isinstance(default, (tuple, list)) else None,
        )
    else:
        found = None
    if found is None:
        return None
    return (found[0] + " or null", (*found[1], type(None))) if nullable else found


def parse_model_args(text: str | None, name: str) -> dict[str, Any]:
    """``--model-args``: a JSON object whose keys the model's constructor accepts, with values of the right type.

    Raises:
        UsageError: not JSON, not an object, an unknown key (the accepted ones are listed), or a wrong type.
    """
    from probgen.models import model_class

    if text is None:
        return {}
    try:
        value = json.loads(text, parse_constant=lambda c: float(c))
    except json.JSONDecodeError as err:
        raise UsageError(
            f"--model-args {text!r} is not valid JSON ({err.msg} at character {err.pos}); "
            "expected a JSON object such as '{\"latent_dim\": 4}'"
        ) from None
    if not isinstance(value, dict):
        raise UsageError(
            f"--model-args must be a JSON object of keyword arguments, got a JSON {type(value).__name__}: {text!r}"
        )
    from probgen.models.vocabulary import accepted_parameters, rename_arguments

    value = rename_arguments(model_class(name), value, stacklevel=3)  # deprecated names: a warning
    accepted = accepted_parameters(model_class(name))
    for key, item in value.items():
        if key not in accepted:
            raise UsageError(
                f"--model-args: {name} has no argument {key!r}; it accepts {', '.join(sorted(accepted)) or 'none'}"
            )
        expected = _expected_type(accepted[key])
        if expected is None:
            continue
        words, types = expected
        ok = isinstance(item, types) and not (isinstance(item, bool) and bool not in types)
        if not ok:
            raise UsageError(f"--model-args: {key} must be {words}, got {json.dumps(item)} ({type(item).__name__})")
        if isinstance(item, float) and not math.isfinite(item):
            raise UsageError(f"--model-args: {key} must be a finite number, got {item}")
        default = accepted[key].default
        if (
            isinstance(item, int)
            and not isinstance(item, bool)
            and isinstance(default, int)
            and not isinstance(default, bool)
            and default >= 1
            and item < 1
        ):
            raise UsageError(f"--model-args: {key} must be a positive integer, got {item}")
        if isinstance(item, list) and any(isinstance(v, int) and not isinstance(v, bool) and v < 1 for v in item):
            if isinstance(default, (tuple, list)) and all(isinstance(v, int) and v >= 1 for v in default):
                raise UsageError(f"--model-args: {key} must hold positive integers, got {json.dumps(item)}")
    return {k: tuple(v) if isinstance(v, list) else v for k, v in value.items()}


def build(name: str, data: Any, model_args: dict[str, Any]) -> Any:
    """``build_model`` with every refusal as a one-line user error naming the model and arguments."""
    from probgen.models import build_model

    try:
        return build_model(name, data, **model_args)
    except (ValueError, TypeError, RuntimeError, AssertionError) as err:
        given = f" with --model-args {json.dumps(model_args)}" if model_args else ""
        raise UsageError(f"cannot build {name}{given}: {first_line(err)}") from err


def check_model_names(names: Sequence[str]) -> None:
    from probgen.models import MODELS

    unknown = [n for n in names if n not in MODELS]
    if unknown:
        shown = repr(unknown[0]) if len(unknown) == 1 else str(unknown)
        raise UsageError(f"unknown model {shown}; expected one of {', '.join(sorted(MODELS))}")
