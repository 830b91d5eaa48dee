"""``fit``: check the options, wrap the data, seed, and hand over to the model's fit strategy."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import pyro
import torch

from probgen.inference.callbacks import check_callbacks, notify
from probgen.inference.data import DataSource
from probgen.inference.distributed import PRECISIONS, SINGLE, join_process_group
from probgen.inference.options import FIT_OPTIONS, check_option
from probgen.inference.placement import DTYPES, check_device, check_dtype, place_model
from probgen.inference.strategies import STRATEGIES, FitOptions, FitResult
from probgen.models.base import mark_fitted

__all__ = ["fit", "check_device", "check_dtype", "DTYPES"]


def _settings(options: dict[str, Any], checkpoint: str | Path | None) -> FitOptions:
    known = set(FitOptions.__dataclass_fields__) - {"checkpoint"}
    unknown = sorted(set(options) - known)
    if unknown:
        raise TypeError(f"fit() got unknown option(s) {unknown}; expected some of {sorted(known)}")
    settings = FitOptions(checkpoint=None if checkpoint is None else Path(checkpoint), **options)
    settings.callbacks = check_callbacks(settings.callbacks)
    _check(settings)
    return settings


def _check(options: FitOptions) -> None:
    """Every option against the one table of :mod:`probgen.inference.options` (None: unset)."""
    for name in ("epochs", "batch_size", "num_samples", "val_num_samples", "lr", "patience", "lr_decay"):
        value = getattr(options, name)
        if value is not None:
            check_option(FIT_OPTIONS, name, value)
    if options.precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {options.precision!r}")
    if not isinstance(options.distributed, bool):
        raise ValueError(f"distributed must be True or False, got {options.distributed!r}")


def _strategy(name: str, options: FitOptions) -> str:
    if name not in STRATEGIES:
        raise ValueError(f"unknown fit strategy {name!r}; expected one of {sorted(STRATEGIES)}")
    if options.distributed and not STRATEGIES[name].distributed:
        able = sorted(k for k, v in STRATEGIES.items() if v.distributed)
        raise ValueError(f"the {name!r} strategy cannot run distributed; expected one of {able}")
    if options.precision == "bf16" and not STRATEGIES[name].mixed_precision:
        able = sorted(k for k, v in STRATEGIES.items() if v.mixed_precision)
        warnings.warn(
            f"precision='bf16' applies to the {able} strategies; {name!r} runs in full precision", stacklevel=3
        )
    return name


def fit(
    model: Any,
    data: Any,
    *,
    val_data: Any = None,
    strategy: str | None = None,
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
    checkpoint: str | Path | None = None,
    **options: Any,
) -> FitResult:
    """Fit ``model`` on ``data`` with its fit strategy (``model.fit_strategy``, or ``strategy``).

    Minibatch losses are scaled by N / B through the model's ``data`` plate, so they estimate
    the full-data objective; the history records them per example (nats).

    Args:
        model: a :class:`~probgen.models.GenerativeModel`.
        data: a Dataset, a tensor or numpy array (a ``numpy.memmap`` stays on disk), an ``(x, y)``
            pair, or a ``torch.utils.data.DataLoader`` (its batches kept; ``batch_size`` ignored).
        val_data: held-out data, scored by ``val_objective``, to choose the best epoch (else: the training loss).
        strategy: a name in ``probgen.inference.STRATEGIES`` instead of the model's own.
        device: move the model there ("cpu", "cuda", "cuda:1"; distributed, "cuda" is
            ``cuda:LOCAL_RANK``); batches follow one at a time.
        dtype: "float32" or "float64": that of the parameters (lazy ones too) and batches.
        checkpoint: path where the best model (with optimizer state) is saved atomically; a
            non-finite loss leaves the last good checkpoint in place.
        **options: the fields of :class:`~probgen.inference.strategies.FitOptions`:
            ``objective`` ("elbo", "analytic_kl", "iwae", a ``pyro.infer.ELBO`` or a callable
            ``loss(model, x, y)``), ``epochs``, ``batch_size``, ``lr``, ``optimizer`` ("adam",
            "clipped_adam", "sgd"), ``clip_norm``, ``lr_decay``, ``weight_decay``, ``num_samples``,
            ``val_objective``, ``val_num_samples``, ``patience``, ``seed``, ``resume``,
            ``init_from_data``, ``validate``, ``progress``, ``strategy_options`` (NUTS'
            ``num_samples``, ``warmup_steps``, ``num_chains``), ``distributed`` (run in every process
            of a ``torch.distributed`` group, each rank on its part of every batch; docs/scale.md)
            ``precision`` ("bf16": the objective under ``torch.autocast`` in bfloat16) and ``callbacks``
            (:class:`~probgen.inference.callbacks.Callback` objects; :mod:`probgen.inference.tracking`).

    Returns:
        A :class:`~probgen.inference.strategies.FitResult`; the model is left at its best epoch.

    Raises:
        NonFiniteLossError: a loss or gradient became NaN/inf; the message names the site.
        ValueError: a callback raised; the message names it (the model is at its last good state).

    Example:
        >>> import probgen as pg
        >>> data = pg.load_dataset("digits-binary")
        >>> model = pg.models.IndependentBernoulli(64)
        >>> result = pg.fit(model, data, epochs=5, lr=0.05, progress=False)
    """
    settings = _settings(options, checkpoint)
    name = _strategy(strategy or model.fit_strategy, settings)
    target = place_model(model, device, dtype, settings.distributed)
    shard = join_process_group(target) if settings.distributed else SINGLE
    train = DataSource(data, "training data")
    val = None if val_data is None else DataSource(val_data, "validation data")
    if settings.seed is not None:  # each rank its own stream of draws (its own noise)
        pyro.set_rng_seed(settings.seed + shard.rank)
    return _watched(name, model, train, val, settings, shard.rank)


def _watched(name: str, model: Any, train: DataSource, val: DataSource | None, settings: FitOptions, rank: int) -> Any:
    """The strategy's fit between the callbacks' ``on_fit_start`` and ``on_fit_end`` (rank 0 alone reports)."""
    watchers = settings.callbacks if rank == 0 else []
    notify(watchers, "on_fit_start", model, settings)
    result = STRATEGIES[name].fit(model, train, val, settings)
    mark_fitted(model)
    notify(watchers, "on_fit_end", result, model)
    return result
