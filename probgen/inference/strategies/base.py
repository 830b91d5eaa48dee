"""What every fit strategy shares: its options, its result, and the strategy registry."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import Tensor

from probgen.inference.data import DataSource, Part
from probgen.inference.distributed import SINGLE, Shard
from probgen.models.base import model_labels

__all__ = [
    "STRATEGIES",
    "FitOptions",
    "FitResult",
    "FitStrategy",
    "NonFiniteLossError",
    "model_batches",
    "model_parts",
    "register_strategy",
    "require_hooks",
    "strategy_settings",
]


def require_hooks(model: Any, strategy: str, protocol: type) -> None:
    """A TypeError unless ``model`` implements ``protocol``, the interface ``strategy`` needs
    (a runtime-checkable ``typing.Protocol`` beside each strategy), checked once before fitting."""
    if not isinstance(model, protocol):
        names = [n for n in vars(protocol) if not n.startswith("_") and callable(vars(protocol)[n])]
        raise TypeError(
            f"{type(model).__name__} cannot be fitted by the {strategy!r} strategy: it does not implement "
            f"{protocol.__name__} ({', '.join(names)})"
        )


class NonFiniteLossError(ValueError):
    """Training produced a NaN or inf loss; the message names the offending site.

    Example:
        >>> import probgen as pg
        >>> def nan_loss(model, x, y):
        ...     return model.log_prob(x).sum() * float("nan")
        >>> model, data = pg.models.IndependentBernoulli(64), pg.load_dataset("digits-binary")
        >>> pg.fit(model, data, objective=nan_loss, epochs=1, progress=False)
        Traceback (most recent call last):
        ...
        probgen.inference.strategies.base.NonFiniteLossError: the training loss is nan at epoch 0, step 0: ...
        >>> issubclass(NonFiniteLossError, ValueError)
        True
    """


@dataclass
class FitOptions:
    """The options of :func:`probgen.fit`, checked, as every strategy receives them.

    Example:
        >>> import probgen as pg
        >>> from probgen.inference import Callback
        >>> class Options(Callback):
        ...     def on_fit_start(self, model, options):
        ...         self.seen = options
        >>> watcher = Options()
        >>> data = pg.load_dataset("digits-binary")
        >>> _ = pg.fit(pg.models.IndependentBernoulli(64), data, epochs=2, batch_size=250, progress=False,
        ...            callbacks=[watcher])
        >>> type(watcher.seen).__name__, watcher.seen.epochs, watcher.seen.batch_size, watcher.seen.lr
        ('FitOptions', 2, 250, 0.01)
    """

    #: None: the model's suggestion (``default_fit_options``), else the ELBO
    objective: Any = None
    epochs: int = 100
    batch_size: int = 128
    lr: float = 1e-2
    optimizer: str = "adam"
    clip_norm: float | None = None
    lr_decay: float | None = None
    weight_decay: float = 0.0
    num_samples: int = 1
    #: what scores validation data for early stopping (None: ``objective``), e.g. "iwae"
    val_objective: Any = None
    #: its Monte-Carlo samples (None: ``num_samples``)
    val_num_samples: int | None = None
    patience: int | None = None
    seed: int | None = 0
    #: run in every process of a torch.distributed group, each on its share of every batch
    distributed: bool = False
    #: None/"fp32", or "bf16": the objective under torch.autocast (networks in bfloat16)
    precision: str | None = None
    checkpoint: Path | None = None
    resume: bool = False
    init_from_data: bool = True
    validate: bool = False
    progress: bool = True
    #: strategy-specific options (e.g. NUTS: num_samples, warmup_steps, num_chains)
    strategy_options: dict[str, Any] = field(default_factory=dict)
    #: :class:`~probgen.inference.callbacks.Callback` objects watching the fit (rank 0 only)
    callbacks: list[Any] = field(default_factory=list)


@dataclass
class FitResult:
    """What :func:`probgen.fit` returns: per-epoch history (nats per example) and the best epoch.

    Example:
        >>> import probgen as pg
        >>> data = pg.load_dataset("digits-binary")
        >>> result = pg.fit(pg.models.IndependentBernoulli(64), data, epochs=3, progress=False)
        >>> len(result.history), result.strategy, result.best_epoch  # no validation data: the last epoch
        (3, 'svi', 2)
        >>> result.train_loss == [record["train_loss"] for record in result.history], result.val_loss
        (True, [])
    """

    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = -1
    best_loss: float = math.inf
    stopped_early: bool = False
    seconds: float = 0.0
    checkpoint: Path | None = None
    strategy: str = "svi"
    #: strategy-specific results (e.g. NUTS diagnostics)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def train_loss(self) -> list[float]:
        return [h["train_loss"] for h in self.history]

    @property
    def val_loss(self) -> list[float]:
        return [h["val_loss"] for h in self.history if "val_loss" in h]


class FitStrategy(ABC):
    """One way of fitting a model: SVI, a closed-form update, NUTS, ...

    A strategy is registered under a name with :func:`register_strategy`; a model names the
    one that fits it in its ``fit_strategy``. Adding a strategy is adding a file.

    Example:
        >>> import probgen as pg
        >>> @register_strategy("one-batch")
        ... class OneBatch(FitStrategy):
        ...     # the closed form from all the data in one batch
        ...     def fit(self, model, train, val, options):
        ...         ((x, y),) = model_batches(model, train, batch_size=len(train))
        ...         model.set_closed_form(model.closed_form_statistics(x, y))
        ...         return FitResult(strategy="one-batch")
        >>> data = pg.load_dataset("digits-binary")
        >>> mine, batched = pg.models.IndependentBernoulli(64), pg.models.IndependentBernoulli(64)
        >>> pg.fit(mine, data, strategy="one-batch", progress=False).strategy
        'one-batch'
        >>> _ = pg.fit(batched, data, strategy="closed_form", batch_size=100, progress=False)
        >>> torch.allclose(mine.log_prob(data.x), batched.log_prob(data.x))  # sums of batch statistics agree
        True
    """

    #: whether it can run in several processes (``fit(..., distributed=True)``)
    distributed: bool = False
    #: whether it honours ``precision="bf16"`` (networks trained by gradient under autocast)
    mixed_precision: bool = False

    @abstractmethod
    def fit(self, model: Any, train: DataSource, val: DataSource | None, options: FitOptions) -> FitResult:
        """Fit ``model`` on ``train`` (choosing the best state on ``val`` where it applies)."""


#: the registered fit strategies by name (:func:`register_strategy` adds one)
STRATEGIES: dict[str, FitStrategy] = {}
S = TypeVar("S", bound=type[FitStrategy])


def register_strategy(name: str) -> Callable[[S], S]:
    """Class decorator: register a :class:`FitStrategy` under ``name``.

    Example:
        >>> import probgen as pg
        >>> @register_strategy("untrained")
        ... class Untrained(FitStrategy):
        ...     # leaves the model as it is (a baseline of initial parameters)
        ...     def fit(self, model, train, val, options):
        ...         return FitResult(strategy="untrained")
        >>> "untrained" in STRATEGIES, isinstance(STRATEGIES["untrained"], Untrained)
        (True, True)
        >>> model = pg.models.IndependentBernoulli(4)
        >>> before = [p.clone() for p in model.parameters()]
        >>> _ = pg.fit(model, torch.ones(8, 4), strategy="untrained", progress=False)
        >>> all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
        True
    """

    def decorate(cls: S) -> S:
        STRATEGIES[name] = cls()
        return cls

    return decorate


def strategy_settings(given: dict[str, Any], defaults: dict[str, Any], strategy: str) -> dict[str, Any]:
    """``defaults`` updated with the user's ``strategy_options``; a ValueError names unknown keys."""
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        raise ValueError(f"unknown {strategy} option(s) {unknown}; expected some of {sorted(defaults)}")
    return {**defaults, **given}


def model_batches(
    model: Any,
    source: DataSource,
    batch_size: int,
    *,
    shuffle: bool = False,
    generator: torch.Generator | None = None,
    labels: bool = True,
    shard: Shard = SINGLE,
) -> Iterator[tuple[Tensor, Tensor | None]]:
    """The source's batches (this rank's parts of them), each validated by the model and moved
    to its device and dtype; labels checked by the model (``labels=False``: not used)."""
    parts = model_parts(model, source, batch_size, shuffle=shuffle, generator=generator, labels=labels, shard=shard)
    for x, y, _ in parts:
        yield x, y


def model_parts(
    model: Any,
    source: DataSource,
    batch_size: int,
    *,
    shuffle: bool = False,
    generator: torch.Generator | None = None,
    labels: bool = True,
    shard: Shard = SINGLE,
    pad: bool = False,
) -> Iterator[Part]:
    """:meth:`DataSource.parts` validated by the model and moved to its device and dtype, labels
    checked by the model (``labels=False``: not used, so not required).

    Stored data (not a DataLoader) that passed one complete validated pass for a model of the
    same support and event shape are only moved on later passes: the check is per data set,
    not per epoch (per rank's share in a distributed run).
    """
    key = (model.support, model.event_shape)
    checked = source.loader is None and source.checked_for == key
    device, dtype = model.device, model.dtype
    for x, y, weight in source.parts(batch_size, shard, shuffle=shuffle, generator=generator, pad=pad):
        x = x.to(device=device, dtype=dtype) if checked else model.validate(x, name=source.name)
        yield Part(x, model_labels(model, y, len(x)) if labels else None, weight)
    if not shard.active:  # a rank validated its share only
        source.checked_for = key
