"""Argument checks shared across probgen: one message format for every bad integer or rate.

:data:`SIZE_ARGUMENTS` is the table of size-like constructor arguments (layer counts, widths,
channels, ...) and :func:`check_constructor_sizes` applies it to the arguments of any model
constructor. :class:`probgen.models.GenerativeModel` calls it once for each construction, before
any ``__init__`` body runs, so a bad size is always refused with a ValueError that names the
argument. It never reaches torch as a negative dimension.
"""

from __future__ import annotations

import inspect
import numbers
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

__all__ = [
    "DTYPES",
    "SIZE_ARGUMENTS",
    "WIDTH_SEQUENCES",
    "check_constructor_sizes",
    "check_device",
    "check_dropout",
    "check_dtype",
    "check_int",
    "check_positive",
    "check_real",
    "check_size",
    "first_line",
]

#: Size-like constructor arguments, by name, each with its least allowed value. Whether an
#: argument takes one size or a sequence of sizes (``hidden_features`` is a tuple of widths,
#: ``num_hidden`` one unit count) comes from the constructor's annotation (``int`` /
#: ``Sequence[int]``) or else from the type of its default. ``None`` is allowed where the
#: annotation or the default allows it. The names are those of the one vocabulary
#: (:mod:`probgen.models.vocabulary`); the names of before it stay in the table (the models'
#: constructors rename them first, but a class of one's own may still use them).
SIZE_ARGUMENTS: dict[str, int] = {
    "event_shape": 1,
    "image_shape": 1,
    "hidden_features": 1,
    "flow_hidden_features": 1,
    "num_hidden": 1,
    "hidden_channels": 1,
    "embed_dim": 1,
    "num_heads": 1,
    "num_scales": 1,
    "latent_dim": 1,
    "num_layers": 1,
    "flow_num_layers": 1,
    "dequantizer_num_layers": 1,
    "dequantizer_hidden_features": 1,
    "kernel": 1,
    "components": 1,
    "count_bins": 2,
    "num_classes": 2,
    "num_masks": 1,
    "num_samples": 1,
    "num_pseudo_inputs": 1,
    "steps": 1,
    "num_gibbs_steps": 0,
    "num_ais_steps": 1,
    # deprecated names (before the one vocabulary)
    "hidden": 1,
    "flow_hidden": 1,
    "layers": 1,
    "levels": 1,
    "blocks": 1,
    "channels": 1,
    "width": 1,
    "heads": 1,
    "num_posterior_samples": 1,
    "flow_length": 1,
    "gibbs_steps": 0,
    "ais_steps": 1,
}

#: Sequences of hidden-layer widths: empty is a network without a hidden layer (a linear map,
#: as in the GAN's linear critic or a linear-Gaussian VAE), unless the model class lists the
#: name in ``_nonempty_sizes`` (the flows: Pyro's DenseNN and AutoRegressiveNN need a layer).
WIDTH_SEQUENCES: frozenset[str] = frozenset({"hidden_features", "flow_hidden_features", "hidden", "flow_hidden"})


def _is_int(value: Any, integral: bool = False) -> bool:
    """A Python int (or, with ``integral``, any ``numbers.Integral`` such as numpy's), never a bool."""
    if isinstance(value, bool):
        return False
    return isinstance(value, numbers.Integral if integral else int)


def _expected(minimum: int) -> str:
    return "a positive integer" if minimum == 1 else f"an integer >= {minimum}"


def check_int(name: str, value: Any, minimum: int = 1) -> int:
    """Return ``value`` if it is an int (not a bool) of at least ``minimum``; else a ValueError."""
    if not _is_int(value) or value < minimum:
        raise ValueError(f"{name} must be {_expected(minimum)}, got {value!r}")
    return value


#: the largest hyperparameter a float32 buffer holds (a larger one would overflow in torch)
_FLOAT32_MAX = torch.finfo(torch.float32).max


def check_positive(name: str, value: Any) -> float:
    """Return ``value`` as a float if it is a real number > 0 that a float32 tensor holds (not
    NaN, not infinite, below 3.4e38: a prior's pseudo-count or a smoothing term); else a ValueError.

    Example:
        >>> check_positive("prior_a", 2)
        2.0
        >>> check_positive("prior_a", float("nan"))
        Traceback (most recent call last):
        ...
        ValueError: prior_a must be a finite number > 0 (below 3.4e38), got nan
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 < value < _FLOAT32_MAX:
        raise ValueError(f"{name} must be a finite number > 0 (below 3.4e38), got {value!r}")
    return float(value)


def check_real(name: str, value: Any) -> float:
    """Return ``value`` as a float if it is a real number a float32 tensor holds (a prior's
    location: not NaN, |value| below 3.4e38); else a ValueError."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not abs(value) < _FLOAT32_MAX:
        raise ValueError(f"{name} must be a finite number (|value| below 3.4e38), got {value!r}")
    return float(value)


def check_dropout(name: str, value: Any) -> float:
    """Return ``value`` as a float if it is a number in [0, 1) (a dropout rate); else a ValueError."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise ValueError(f"{name} must be a number in [0, 1), got {value!r}")
    return float(value)


def check_size(
    name: str,
    value: Any,
    minimum: int = 1,
    *,
    sequence: bool = False,
    allow_empty: bool = False,
    allow_none: bool = False,
    integral: bool = False,
) -> Any:
    """Return ``value`` if it is one size (an int >= ``minimum``, not a bool) or, with
    ``sequence``, a list or tuple of such sizes (non-empty unless ``allow_empty``); else a
    ValueError naming the argument, what it got and what it expects. ``integral`` also takes
    numpy's integers (for values that are converted with ``int`` after the check).

    Example:
        >>> check_size("hidden_features", (64, 64), sequence=True)
        (64, 64)
        >>> check_size("hidden_features", (-5,), sequence=True)
        Traceback (most recent call last):
        ...
        ValueError: hidden_features must be a non-empty sequence of positive integers, got (-5,)
    """
    if value is None and allow_none:
        return value
    if not sequence:
        if not _is_int(value, integral) or value < minimum:
            raise ValueError(f"{name} must be {_expected(minimum)}, got {value!r}")
        return value
    ok = isinstance(value, Sequence) and not isinstance(value, (str, bytes))
    ok = ok and (allow_empty or len(value) > 0) and all(_is_int(v, integral) and v >= minimum for v in value)
    if not ok:
        each = "positive integers" if minimum == 1 else f"integers >= {minimum}"
        expected = f"a sequence of {each}" if allow_empty else f"a non-empty sequence of {each}"
        raise ValueError(f"{name} must be {expected}{' or None' if allow_none else ''}, got {value!r}")
    return value


def check_constructor_sizes(
    init: Callable[..., Any],
    accepted: Mapping[str, inspect.Parameter],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    nonempty: Sequence[str] = (),
) -> None:
    """Check the size-like arguments (:data:`SIZE_ARGUMENTS`) of a call ``init(self, *args,
    **kwargs)`` of a model constructor. ``accepted`` holds the keyword parameters the constructor
    declares, its base classes' included (:func:`probgen.models.accepted_parameters`). A value that
    is the parameter's default passes unchecked. Arguments that do not bind are left for the
    constructor's own TypeError. ``event_shape`` is one size or a non-empty sequence of sizes.
    A sequence may be empty only if it is in :data:`WIDTH_SEQUENCES` and not in ``nonempty``, or
    if its default is empty."""
    signature = inspect.signature(init)
    try:
        bound = signature.bind_partial(None, *args, **kwargs).arguments
    except TypeError:
        return
    given = dict(bound)
    for name, value in bound.items():  # what the constructor passes on through **kwargs
        if signature.parameters[name].kind is inspect.Parameter.VAR_KEYWORD:
            given.update(value)
    if "event_shape" in given:  # the base converts each size with int(), so numpy's integers pass
        shape = given["event_shape"]
        if not (_is_int(shape, integral=True) and shape >= 1):
            try:
                check_size("event_shape", shape, sequence=True, integral=True)
            except ValueError:
                expected = "a positive integer or a non-empty sequence of positive integers"
                raise ValueError(f"event_shape must be {expected}, got {shape!r}") from None
    for name, param in accepted.items():
        if name not in SIZE_ARGUMENTS or name not in given or given[name] is param.default:
            continue
        annotation = param.annotation if isinstance(param.annotation, str) else repr(param.annotation)
        default = param.default
        sequence = "Sequence" in annotation or isinstance(default, (tuple, list))
        allow_none = "None" in annotation or default is None
        empty_default = isinstance(default, (tuple, list)) and len(default) == 0
        allow_empty = (name in WIDTH_SEQUENCES and name not in nonempty) or empty_default
        check_size(
            name,
            given[name],
            SIZE_ARGUMENTS[name],
            sequence=sequence,
            allow_empty=allow_empty,
            allow_none=allow_none,
        )


#: the dtypes a model may be fitted and scored in, by name
DTYPES = {"float32": torch.float32, "float64": torch.float64}


def check_dtype(dtype: str | torch.dtype) -> torch.dtype:
    """``dtype`` ("float32", "float64" or the torch dtype) as a torch dtype, or a ValueError."""
    if isinstance(dtype, torch.dtype) and dtype in DTYPES.values():
        return dtype
    if isinstance(dtype, str) and dtype in DTYPES:
        return DTYPES[dtype]
    raise ValueError(f"unknown dtype {dtype!r}; expected one of {sorted(DTYPES)} (or torch.float32/float64)")


def check_device(device: str | torch.device) -> torch.device:
    """``device`` as a torch device that this machine has, or a ValueError saying what is missing.

    Example:
        >>> check_device("cpu")
        device(type='cpu')
    """
    try:
        parsed = torch.device(device)
    except (RuntimeError, ValueError, TypeError):
        raise ValueError(f"unknown device {str(device)!r}; expected cpu, cuda or cuda:N") from None
    name = repr(str(device))
    if parsed.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ValueError(f"device {name}: this machine has no CUDA device (torch finds none); use cpu")
        if parsed.index is not None and parsed.index >= count:
            raise ValueError(
                f"device {name}: this machine has {count} CUDA device(s), cuda:0..cuda:{count - 1}; "
                f"there is no cuda:{parsed.index}"
            )
    elif parsed.type == "mps":
        if not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
            raise ValueError(f"device {name}: this machine has no MPS device; use cpu")
    elif parsed.type != "cpu":
        raise ValueError(f"device {name}: probgen runs on cpu or cuda (or mps), not on {parsed.type!r}")
    return parsed


def first_line(err: BaseException) -> str:
    """The first line of an error's message, as a user should read it: no traceback, no private
    names (leading underscores of identifiers dropped), a missing key said as such.

    Example:
        >>> first_line(KeyError("epochs"))
        "missing key 'epochs'"
    """
    text = str(err).strip()
    if isinstance(err, KeyError) and text.startswith("'"):
        text = f"missing key {text}"
    line = text.splitlines()[0].strip() if text else type(err).__name__
    return re.sub(r"(?<![\w/\\.\-])_+(?=[A-Za-z])", "", line)
