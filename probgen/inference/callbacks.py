"""Callbacks: code of one's own called by :func:`probgen.fit` as a fit goes on.

A callback is a :class:`Callback` whose methods (each a no-op here) a subclass overrides:
``on_fit_start`` once before training, then per epoch ``on_validation`` (when validation data
scored the epoch), ``on_epoch_end`` (its history record, complete) and ``on_checkpoint`` (after
the epoch's checkpoint was written atomically), and ``on_fit_end`` once the model is at its best
epoch. The per-epoch methods are called by the epoch loop of every strategy that runs epochs
(``svi``, ``contrastive_divergence``, ``adversarial``); the others (closed form, NUTS) call only
``on_fit_start`` and ``on_fit_end``. In a distributed fit only rank 0 calls them.

A callback only watches: it is given the record and the model, and a fit's numbers are the same
with or without it. An exception a callback raises stops the fit with a ValueError that names
the callback and the method (the model is left at its last good state).

Ready ones for TensorBoard and MLflow are in :mod:`probgen.inference.tracking`.

Example:
    >>> import probgen as pg
    >>> from probgen.inference.callbacks import Callback
    >>> class Losses(Callback):
    ...     def __init__(self):
    ...         self.seen = []
    ...     def on_epoch_end(self, epoch, record, model):
    ...         self.seen.append(round(record["train_loss"], 3))
    >>> losses = Losses()
    >>> data = pg.load_dataset("digits-binary")
    >>> result = pg.fit(pg.models.IndependentBernoulli(64), data, epochs=3, progress=False, callbacks=[losses])
    >>> losses.seen == [round(h["train_loss"], 3) for h in result.history]
    True
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["Callback", "check_callbacks", "notify"]


class Callback:
    """Watches a fit; every method is a no-op that a subclass may override.

    Example:
        >>> import probgen as pg
        >>> class Epochs(Callback):
        ...     def __init__(self):
        ...         self.ended, self.finished = [], False
        ...     def on_epoch_end(self, epoch, record, model):
        ...         self.ended.append(epoch)
        ...     def on_fit_end(self, result, model):
        ...         self.finished = True
        >>> watcher = Epochs()
        >>> data = pg.load_dataset("digits-binary")
        >>> _ = pg.fit(pg.models.IndependentBernoulli(64), data, epochs=2, progress=False, callbacks=[watcher])
        >>> watcher.ended, watcher.finished
        ([0, 1], True)
    """

    def on_fit_start(self, model: Any, options: Any) -> None:
        """Before the first epoch: the model and the checked :class:`~probgen.inference.strategies.FitOptions`."""

    def on_validation(self, epoch: int, val_loss: float, model: Any) -> None:
        """Validation data scored epoch ``epoch``: ``val_loss`` in nats per example (lower is better)."""

    def on_epoch_end(self, epoch: int, record: dict[str, float], model: Any) -> None:
        """Epoch ``epoch`` finished; ``record`` is its entry of ``FitResult.history``."""

    def on_checkpoint(self, path: Path, epoch: int, best: bool) -> None:
        """The checkpoint at ``path`` was written after epoch ``epoch`` (``best``: it now holds
        that epoch's weights, else still an earlier best epoch's)."""

    def on_fit_end(self, result: Any, model: Any) -> None:
        """The fit finished: its :class:`~probgen.inference.strategies.FitResult`; the model is at its best epoch."""


def check_callbacks(callbacks: Any) -> list[Callback]:
    """``callbacks`` as a list, or a TypeError naming what was received instead of Callbacks.

    Example:
        >>> check_callbacks(None)
        []
    """
    if callbacks is None:
        return []
    if isinstance(callbacks, Callback) or not isinstance(callbacks, Sequence) or isinstance(callbacks, str):
        raise TypeError(f"callbacks must be a list of Callback objects, got {type(callbacks).__name__}")
    wrong = [type(c).__name__ for c in callbacks if not isinstance(c, Callback)]
    if wrong:
        raise TypeError(
            f"callbacks must be probgen.inference.callbacks.Callback objects, got {', '.join(wrong)}; "
            "subclass Callback and override its on_* methods"
        )
    return list(callbacks)


def notify(callbacks: Sequence[Callback], method: str, *args: Any) -> None:
    """Call ``method`` of every callback in order; an exception is re-raised as a ValueError
    naming the callback and the method (the original chained as its cause).

    Example:
        >>> class Bad(Callback):
        ...     def on_fit_end(self, result, model):
        ...         raise OSError("disk full")
        >>> notify([Bad()], "on_fit_end", None, None)
        Traceback (most recent call last):
        ...
        ValueError: callback Bad.on_fit_end failed: OSError: disk full
    """
    for callback in callbacks:
        try:
            getattr(callback, method)(*args)
        except Exception as err:
            raise ValueError(
                f"callback {type(callback).__name__}.{method} failed: {type(err).__name__}: {err}"
            ) from err
