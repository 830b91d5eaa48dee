"""The epoch loop every minibatch strategy shares (SVI, contrastive divergence, adversarial
training): seeds, progress, one torch optimizer whose parameter groups are the model's players,
learning-rate decay, best-epoch state, early stopping, atomic checkpoints, exact resume, and a
NaN guard that names the offending part.

Each parameter group is stepped on its own (the other groups' gradients are dropped before the
step), and Adam keeps its moments and step count per parameter, so one optimizer with one group
per player updates exactly as one optimizer per player would, and checkpoints as one.

After every epoch the checkpoint holds the best epoch's weights (what :func:`probgen.load`
returns), the optimizer, the history and, as its training state, the last epoch's weights and
the states of the random number generators (torch's, and the generator that shuffles the
batches): a fit resumed from it continues exactly as the uninterrupted fit would have.

The fit's callbacks (:mod:`probgen.inference.callbacks`) hear of each validation, epoch and
checkpoint, on rank 0 only.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from probgen.inference.callbacks import notify
from probgen.inference.data import DataSource, Part
from probgen.inference.distributed import SINGLE, Shard, all_sum, current_shard, gather_rng_states
from probgen.inference.strategies.base import FitOptions, FitResult, NonFiniteLossError, model_parts
from probgen.inference.time_limit import check_time_limit
from probgen.models.base import mark_fitted, model_labels
from probgen.progress import progress_bar

__all__ = ["EpochLoop", "first_bad_parameter", "cpu_state", "hook_batch", "HOOK_EXAMPLES", "shard_of"]

#: examples given to the model's data-dependent hooks (init_from_data, after_fit)
HOOK_EXAMPLES = 10_000


def shard_of(options: FitOptions) -> Shard:
    """The process group's rank and size in a distributed fit, else a single process."""
    return current_shard() if options.distributed else SINGLE


def first_bad_parameter(model: Any) -> str | None:
    """The name of the first parameter holding a NaN or inf, or None."""
    for name, value in model.named_parameters():
        if not torch.isfinite(value).all():
            return f"parameter {name!r} is not finite"
    return None


def cpu_state(model: Any) -> dict[str, Tensor]:
    """A copy of the model's state on the CPU (the best-epoch snapshot)."""
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


def hook_batch(model: Any, source: DataSource) -> tuple[Tensor, Tensor | None]:
    """Up to ``HOOK_EXAMPLES`` validated examples for the model's data-dependent hooks."""
    x, y = source.head(HOOK_EXAMPLES)
    x = model.validate(x, name=source.name)
    return x, model_labels(model, y, len(x))


def _fusable(groups: Sequence[dict[str, Any]]) -> bool:
    """Whether torch's fused Adam kernel applies: floating parameters, all on one CPU or CUDA
    device (one kernel per step instead of a loop over parameters: 3-5x faster steps on the
    CPU for the MLPs here)."""
    params = [p for g in groups for p in g["params"]]
    devices = {p.device for p in params}
    return (
        len(devices) == 1 and next(iter(devices)).type in ("cpu", "cuda") and all(p.is_floating_point() for p in params)
    )


def _optimizer(options: FitOptions, groups: Sequence[dict[str, Any]]) -> torch.optim.Optimizer:
    groups = [{"lr": options.lr, **g, "params": list(g["params"])} for g in groups]
    if options.optimizer in ("adam", "clipped_adam"):
        betas = groups[0].get("betas", (0.9, 0.999))
        return torch.optim.Adam(
            groups, lr=options.lr, betas=betas, weight_decay=options.weight_decay, fused=_fusable(groups)
        )
    if options.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=options.lr, momentum=0.9, weight_decay=options.weight_decay)
    raise ValueError(f"unknown optimizer {options.optimizer!r}; expected 'adam', 'clipped_adam' or 'sgd'")


def _rng_state(state: dict[str, Tensor], shard: Shard) -> dict[str, Tensor]:
    """The generators' states this rank resumes from (its own torch stream where it was saved)."""
    own = state.get(f"rng.torch.rank{shard.rank}", state.get("rng.torch"))
    return {"rng.torch": own, "rng.shuffle": state["rng.shuffle"]} if own is not None and "rng.shuffle" in state else {}


def _resume_or_start(model: Any, train: DataSource, options: FitOptions) -> Any:
    """The checkpoint when resuming from one (the model then holds its last epoch's weights),
    else None after the model's data-dependent start."""
    from probgen.checkpoint import load_checkpoint

    if options.resume and options.checkpoint is not None and options.checkpoint.exists():
        resumed = load_checkpoint(options.checkpoint, map_location=str(model.device), model=model)
        model.load_state_dict(resumed.model.state_dict())
        last = {k[len("last.") :]: v for k, v in resumed.training_state.items() if k.startswith("last.")}
        if last:
            model.load_state_dict(last)
        return resumed
    if options.init_from_data:
        model.init_from_data(*hook_batch(model, train))
    return None


@dataclass
class EpochLoop:
    """One run of a strategy: the model, its optimizer (one group per player) and the result."""

    model: Any
    options: FitOptions
    optimizer: torch.optim.Optimizer
    result: FitResult
    best_state: dict[str, Tensor] = field(default_factory=dict)
    start_epoch: int = 0
    #: the random number generators' states saved with the resumed checkpoint
    rng_state: dict[str, Tensor] = field(default_factory=dict)
    #: this process's rank in a distributed fit: rank 0 alone shows progress and checkpoints
    shard: Shard = SINGLE

    @classmethod
    def start(
        cls, model: Any, train: DataSource, options: FitOptions, strategy: str, groups: Callable[[], list[dict]]
    ) -> EpochLoop:
        """Resume from the checkpoint, or run the model's data-dependent start; then build the
        optimizer over ``groups()`` (called after the start, so it sees the final parameters)."""
        resumed = _resume_or_start(model, train, options)
        result = FitResult(checkpoint=options.checkpoint, strategy=strategy)
        loop = cls(model, options, _optimizer(options, groups()), result, cpu_state(model), shard=shard_of(options))
        if resumed is not None and resumed.optimizer_state is not None:
            loop.optimizer.load_state_dict(resumed.optimizer_state)
            loop.best_state = {k: v.detach().cpu() for k, v in resumed.model.state_dict().items()}
            result.history = list(resumed.extra.get("history", []))
            result.best_loss = float(resumed.extra.get("best_loss", math.inf))
            result.best_epoch = int(resumed.extra.get("best_epoch", resumed.extra.get("epoch", -1)))
            loop.start_epoch = int(resumed.extra.get("last_epoch", result.best_epoch)) + 1
            loop.rng_state = _rng_state(resumed.training_state, loop.shard)
        return loop

    def stop(self, message: str, cause: Exception | None = None) -> None:
        """Restore the last good state and raise, naming the offending site and the checkpoint."""
        self.model.load_state_dict(self.best_state)
        checkpoint = self.options.checkpoint
        if checkpoint is not None and Path(checkpoint).exists():
            message += f"; last good checkpoint: {checkpoint}"
        elif checkpoint is not None:
            message += "; no checkpoint was written yet (it is written at the end of each epoch)"
        raise NonFiniteLossError(message) from cause

    def step(self, loss: Tensor, group: int, where: str, part: str, explain: Callable[[], str] | None = None) -> float:
        """Check ``loss`` is finite (else restore the last good state and raise, naming ``part``
        and what ``explain()`` finds), back-propagate it and step parameter group ``group`` only.

        In a distributed fit ``loss`` is this rank's weighted part and the value returned (and
        checked, alike on every rank) is the mean over the ranks: the global batch's loss."""
        check_time_limit()  # a time limit set in a worker thread, where no signal reaches, cuts here
        if self.shard.active:
            value = all_sum(loss.detach().reshape(1), self.shard).item() / self.shard.world_size
        else:
            value = loss.item()
        if not math.isfinite(value):
            bad = explain() if explain is not None else first_bad_parameter(self.model)
            self.stop(f"the {part} loss is {value} at {where}: {bad or 'every parameter is finite; it overflowed'}")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if len(self.optimizer.param_groups) > 1:
            for i, g in enumerate(self.optimizer.param_groups):
                if i != group:
                    for p in g["params"]:
                        p.grad = None
        if self.options.clip_norm is not None:
            torch.nn.utils.clip_grad_norm_(self.optimizer.param_groups[group]["params"], self.options.clip_norm)
        self.optimizer.step()
        return value

    def batches(self, train: DataSource, generator: torch.Generator, labels: bool = False) -> Iterator[Part]:
        """This rank's part of each shuffled training batch (padded, so every rank steps alike)."""
        return model_parts(
            self.model,
            train,
            self.options.batch_size,
            shuffle=True,
            generator=generator,
            labels=labels,
            shard=self.shard,
            pad=True,
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
        bar = progress_bar(epochs, desc=f"fit {model.name}", disable=not options.progress or not self.shard.is_main)
        generator = torch.Generator().manual_seed(0 if options.seed is None else options.seed)
        if self.rng_state:
            torch.set_rng_state(self.rng_state["rng.torch"])
            generator.set_state(self.rng_state["rng.shuffle"])
        t0 = time.perf_counter()
        for epoch in bar:
            started = time.perf_counter()
            model.train()  # dropout on, batch norm on batch statistics: in training epochs only
            record = {"epoch": epoch, **epoch_fn(epoch, generator), "lr": self.optimizer.param_groups[0]["lr"]}
            mark_fitted(model)  # trained an epoch: these weights, and checkpoints of them, are fitted
            model.eval()
            if val is not None and val_fn is not None:
                record["val_loss"] = val_fn(val)
                self.notify("on_validation", epoch, record["val_loss"], model)
            record["seconds"] = time.perf_counter() - started
            if options.lr_decay is not None:
                for group in self.optimizer.param_groups:
                    group["lr"] *= options.lr_decay
            self.result.history.append(record)
            self.notify("on_epoch_end", epoch, dict(record), model)  # a copy: callbacks only watch
            bar.set_postfix({k: f"{v:.3f}" for k, v in record.items() if k.endswith("loss")})
            if not self._keep(record, epoch, generator, bar):
                break
        bar.close()
        self.result.seconds = time.perf_counter() - t0
        model.eval()  # a fitted model is for evaluating and sampling
        model.load_state_dict(self.best_state)
        model.after_fit(*hook_batch(model, train))
        return self.result

    def notify(self, method: str, *args: Any) -> None:
        """Call ``method`` of the fit's callbacks (rank 0 only); a callback that raises leaves
        the model at its last good state and stops the fit with a ValueError naming it."""
        if not self.options.callbacks or not self.shard.is_main:
            return
        try:
            notify(self.options.callbacks, method, *args)
        except ValueError:
            self.model.load_state_dict(self.best_state)
            raise

    def _keep(self, record: dict, epoch: int, generator: torch.Generator, bar: Any) -> bool:
        """Track the best epoch and checkpoint; False when patience has run out.

        With validation data the model ends at (and the checkpoint holds) the epoch of the best
        validation loss. Without it, the training loss is a noisy estimate whose minimum is no
        better an epoch than the last: the model ends at (and the checkpoint holds) the last
        epoch, and patience counts epochs without a new lowest training loss.
        """
        result, options = self.result, self.options
        validated = "val_loss" in record
        score = record["val_loss"] if validated else record["train_loss"]
        improved = score < result.best_loss
        if improved:
            result.best_loss, result.best_epoch = score, epoch
        holds_best = improved or not validated
        if holds_best:
            self.best_state = cpu_state(self.model)
        if options.checkpoint is not None:
            self._checkpoint(epoch, generator, holds_best)
        if improved or options.patience is None or epoch - result.best_epoch < options.patience:
            return True
        result.stopped_early = True
        if options.progress and self.shard.is_main:
            which = "val" if validated else "train"
            bar.write(
                f"early stop at epoch {epoch}: no improvement for {options.patience} epochs; "
                f"best epoch {result.best_epoch} ({which} loss {result.best_loss:.4f})"
            )
        return False

    def _checkpoint(self, epoch: int, generator: torch.Generator, holds_best: bool) -> None:
        """The best weights, the optimizer, the history and the state to resume from (with the
        last epoch's weights where they are not the best ones, and every rank's torch random
        state), atomically, by rank 0 alone."""
        from probgen.checkpoint import save

        result = self.result
        state = {**gather_rng_states(self.shard), "rng.shuffle": generator.get_state()}
        if not self.shard.is_main:
            return
        if not holds_best:
            state |= {f"last.{k}": v for k, v in self.model.state_dict().items()}
        # "epoch": that of the weights stored; "best_epoch": that of the lowest loss, for patience
        stored = epoch if holds_best else result.best_epoch
        extra = {"epoch": stored, "best_epoch": result.best_epoch, "last_epoch": epoch, "best_loss": result.best_loss}
        extra["history"] = result.history
        save(
            self.model,
            self.options.checkpoint,
            optimizer=self.optimizer,
            extra=extra,
            weights=self.best_state,
            training_state=state,
        )
        self.notify("on_checkpoint", Path(self.options.checkpoint), epoch, holds_best)
