"""The epoch loop shared by strategies that make their own updates (contrastive divergence,
adversarial training): seeds, progress, one torch optimizer whose parameter groups are the
model's players, best-epoch state, atomic checkpoints with optimizer state, resume, and a
NaN guard that names the offending part.

Each parameter group is stepped on its own (the other groups' gradients are dropped before the
step), and Adam keeps its moments and step count per parameter, so one optimizer with one group
per player updates exactly as one optimizer per player would, and checkpoints as one.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from probgen.inference.data import DataSource
from probgen.inference.strategies.base import FitOptions, FitResult, NonFiniteLossError, model_batches
from probgen.inference.strategies.svi import cpu_state, hook_batch, restore_progress, resume_or_start
from probgen.progress import progress_bar

__all__ = ["EpochLoop", "first_bad_parameter"]


def first_bad_parameter(model: Any) -> str | None:
    """The name of the first parameter holding a NaN or inf, or None."""
    for name, value in model.named_parameters():
        if not torch.isfinite(value).all():
            return f"parameter {name!r} is not finite"
    return None


def _optimizer(options: FitOptions, groups: Sequence[dict[str, Any]]) -> torch.optim.Optimizer:
    groups = [{"lr": options.lr, **g, "params": list(g["params"])} for g in groups]
    if options.optimizer in ("adam", "clipped_adam"):
        betas = groups[0].get("betas", (0.9, 0.999))
        return torch.optim.Adam(groups, lr=options.lr, betas=betas, weight_decay=options.weight_decay)
    if options.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=options.lr, momentum=0.9, weight_decay=options.weight_decay)
    raise ValueError(f"unknown optimizer {options.optimizer!r}; expected 'adam', 'clipped_adam' or 'sgd'")


@dataclass
class EpochLoop:
    """One run of a strategy: the model, its optimizer (one group per player) and the result."""

    model: Any
    options: FitOptions
    optimizer: torch.optim.Optimizer
    result: FitResult
    best_state: dict[str, Tensor] = field(default_factory=dict)
    start_epoch: int = 0

    @classmethod
    def start(
        cls, model: Any, train: DataSource, options: FitOptions, strategy: str, groups: Callable[[], list[dict]]
    ) -> EpochLoop:
        """Resume from the checkpoint, or run the model's data-dependent start; then build the
        optimizer over ``groups()`` (called after the start, so it sees the final parameters)."""
        resumed = resume_or_start(model, train, options)
        result = FitResult(checkpoint=options.checkpoint, strategy=strategy)
        loop = cls(model, options, _optimizer(options, groups()), result, cpu_state(model))
        loop.start_epoch = restore_progress(result, loop.optimizer, resumed)
        return loop

    def step(self, loss: Tensor, group: int, where: str, part: str) -> float:
        """Check ``loss`` is finite (else restore the last good state and raise, naming ``part``),
        back-propagate it and step parameter group ``group`` only."""
        value = loss.item()
        if not math.isfinite(value):
            bad = first_bad_parameter(self.model) or "every parameter is finite; the loss overflowed"
            self.model.load_state_dict(self.best_state)
            message = f"the {part} loss is {value} at {where}: {bad}"
            if self.options.checkpoint is not None:
                message += f"; last good checkpoint: {self.options.checkpoint}"
            raise NonFiniteLossError(message)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        for i, g in enumerate(self.optimizer.param_groups):
            if i != group:
                for p in g["params"]:
                    p.grad = None
        if self.options.clip_norm is not None:
            torch.nn.utils.clip_grad_norm_(self.optimizer.param_groups[group]["params"], self.options.clip_norm)
        self.optimizer.step()
        return value

    def batches(self, train: DataSource, generator: torch.Generator):
        return model_batches(
            self.model, train, self.options.batch_size, shuffle=True, generator=generator, labels=False
        )

    def run(
        self,
        train: DataSource,
        val: DataSource | None,
        epoch_fn: Callable[[int, torch.Generator], dict[str, float]],
        val_fn: Callable[[DataSource], float] | None = None,
    ) -> FitResult:
        """Epochs of ``epoch_fn`` (returning its record, with ``train_loss``); with ``val`` and
        ``val_fn`` the model ends at its best validation epoch, else at its last."""
        options, model = self.options, self.model
        epochs = range(self.start_epoch, options.epochs)
        bar = progress_bar(epochs, desc=f"fit {model.name}", disable=not options.progress)
        generator = torch.Generator().manual_seed(0 if options.seed is None else options.seed)
        t0 = time.perf_counter()
        for epoch in bar:
            started = time.perf_counter()
            record = {"epoch": epoch, **epoch_fn(epoch, generator), "lr": self.optimizer.param_groups[0]["lr"]}
            if val is not None and val_fn is not None:
                record["val_loss"] = val_fn(val)
            record["seconds"] = time.perf_counter() - started
            self.result.history.append(record)
            bar.set_postfix({k: f"{v:.3f}" for k, v in record.items() if k.endswith("loss")})
            if not self._keep(record, epoch):
                break
        bar.close()
        self.result.seconds = time.perf_counter() - t0
        model.load_state_dict(self.best_state)
        model.after_fit(*hook_batch(model, train))
        return self.result

    def _keep(self, record: dict, epoch: int) -> bool:
        """Track the best epoch (on validation loss; without it the last epoch) and checkpoint it;
        False when ``patience`` epochs passed without a better validation loss."""
        from probgen.checkpoint import save

        result, options = self.result, self.options
        validated = "val_loss" in record
        score = record["val_loss"] if validated else record["train_loss"]
        improved = validated and score < result.best_loss
        if improved or not validated:
            result.best_loss, result.best_epoch = score, epoch
            self.best_state = cpu_state(self.model)
            if options.checkpoint is not None:
                extra = {"epoch": epoch, "best_loss": result.best_loss, "history": result.history}
                save(self.model, options.checkpoint, optimizer=self.optimizer, extra=extra)
        if validated and options.patience is not None and epoch - result.best_epoch >= options.patience:
            result.stopped_early = True
            return False
        return True
