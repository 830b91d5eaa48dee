"""Several processes, one fit: the process group, each rank's share of the data, and reductions.

``fit(..., distributed=True)`` and ``log_likelihood(..., distributed=True)`` run in every
process of a ``torch.distributed`` process group (started by ``torchrun``, by ``probgen fit
--nproc N``, or by the caller). Every rank draws the same permutation of the data each epoch
(one seeded generator), cuts it into global batches of ``batch_size`` examples and keeps its
part of each (:meth:`probgen.inference.DataSource.parts`), so the ranks together see exactly
the batches a single process would. The loss of a rank's part is weighted so that the mean of
the ranks' gradients, which :class:`~torch.nn.parallel.DistributedDataParallel` computes, is
the gradient of the global batch's loss (scaled to the global data size N).

References:
    Li et al., "PyTorch Distributed: Experiences on Accelerating Data Parallel Training"
    (2020), arXiv:2006.15704.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor

__all__ = [
    "Shard",
    "SINGLE",
    "PRECISIONS",
    "CUDA_BACKENDS",
    "ObjectiveModule",
    "all_sum",
    "broadcast_value",
    "collective_device",
    "current_shard",
    "gather_rng_states",
    "join_process_group",
    "keeps_running_statistics",
    "precision_context",
    "widened",
    "reduce_statistics",
    "wrap_data_parallel",
]

#: ``fit(precision=...)``: None or "fp32" is full precision, "bf16" runs the networks under
#: ``torch.autocast`` in bfloat16 (log-densities are still summed in float32 or wider)
PRECISIONS = (None, "fp32", "bf16")

#: the process group of CUDA ranks: nccl for tensors on the GPUs, gloo for those on the CPU
CUDA_BACKENDS = "cpu:gloo,cuda:nccl"


@dataclass(frozen=True)
class Shard:
    """This process's place in the process group: ``rank`` of ``world_size``.

    Example:
        >>> Shard(1, 2).active, Shard().is_main
        (True, True)
    """

    rank: int = 0
    world_size: int = 1

    @property
    def active(self) -> bool:
        """Whether the work is shared with other processes."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the one that logs, shows progress and writes checkpoints."""
        return self.rank == 0


SINGLE = Shard()


def current_shard() -> Shard:
    """The default process group's rank and size (rank 0 of 1 when there is none)."""
    if dist.is_available() and dist.is_initialized():
        return Shard(dist.get_rank(), dist.get_world_size())
    return SINGLE


def join_process_group(device: torch.device) -> Shard:
    """The default process group, initialised from ``torchrun``'s environment (``RANK``,
    ``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``) if the caller has not done it: nccl for a
    CUDA model's tensors with gloo beside it for the CPU-side reductions (losses, statistics,
    RNG states), gloo alone otherwise. Raises ValueError when there is neither."""
    if not dist.is_available():
        raise ValueError("distributed=True needs torch.distributed, which this torch build lacks")
    if not dist.is_initialized():
        missing = [k for k in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT") if k not in os.environ]
        if missing:
            raise ValueError(
                f"distributed=True found no process group and no {', '.join(missing)} in the environment; "
                "expected a launch by `torchrun --nproc-per-node N ...` or `probgen fit --nproc N`, "
                "or torch.distributed.init_process_group() called first"
            )
        dist.init_process_group(CUDA_BACKENDS if device.type == "cuda" else "gloo")
    return current_shard()


def collective_device(value: Tensor) -> torch.device:
    """Where ``value`` can take part in a collective: its own device, except a CPU tensor in a
    group whose only backend is nccl (initialised by a caller with ``"nccl"``), which goes to
    this rank's current GPU."""
    if value.device.type == "cpu" and dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return value.device


def all_sum(values: Tensor, shard: Shard) -> Tensor:
    """``values`` summed over the ranks (returned as is by a single process)."""
    if not shard.active:
        return values
    summed = values.detach().to(collective_device(values), copy=True)
    dist.all_reduce(summed, op=dist.ReduceOp.SUM)
    return summed.to(values.device)


def broadcast_value(value: Tensor, shard: Shard) -> Tensor:
    """Rank 0's ``value`` on every rank (e.g. one estimate of log Z for every shard)."""
    if not shard.active:
        return value
    shared = value.detach().to(collective_device(value), copy=True).contiguous()
    dist.broadcast(shared, src=0)
    return shared.to(value.device)


def precision_context(precision: str | None, device_type: str) -> AbstractContextManager:
    """``torch.autocast`` in bfloat16 for ``precision="bf16"`` (networks' matmuls and
    convolutions run in bfloat16, parameters stay in their dtype), else nothing."""
    if precision == "bf16":
        return torch.autocast(device_type, dtype=torch.bfloat16)
    return nullcontext()


def widened(loss: Tensor) -> Tensor:
    """A loss computed under bfloat16 autocast, in float32 (float32 and float64 pass unchanged)."""
    return loss if loss.dtype in (torch.float32, torch.float64) else loss.float()


def _moved(value: Any, device: torch.device | str) -> Any:
    """``value`` with every tensor inside (dicts, lists, tuples, dataclasses) moved to ``device``."""
    if isinstance(value, Tensor):
        return value.to(device)
    if isinstance(value, dict):
        return {k: _moved(v, device) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_moved(v, device) for v in value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {f.name: _moved(getattr(value, f.name), device) for f in dataclasses.fields(value)}
        return dataclasses.replace(value, **fields)
    return value


def reduce_statistics(total: dict[str, Any] | None, shard: Shard, device: torch.device) -> dict[str, Any] | None:
    """Closed-form sufficient statistics summed over the ranks, in rank order, with ``+`` (so
    values that merge rather than add, such as ``Moments``, reduce as they do over batches).
    A rank that saw no data contributes ``None``."""
    if not shard.active:
        return total
    gathered: list[Any] = [None] * shard.world_size
    dist.all_gather_object(gathered, _moved(total, "cpu"))
    result = None
    for part in gathered:
        if part is not None:
            result = part if result is None else {k: result[k] + v for k, v in part.items()}
    return _moved(result, device)


def gather_rng_states(shard: Shard) -> dict[str, Tensor]:
    """Every rank's torch RNG state for a checkpoint: ``rng.torch`` (rank 0's) and
    ``rng.torch.rank<r>`` for the others, so a resumed run continues each rank's stream."""
    state = torch.get_rng_state()
    if not shard.active:
        return {"rng.torch": state}
    gathered: list[Any] = [None] * shard.world_size
    dist.all_gather_object(gathered, state)
    return {"rng.torch" if r == 0 else f"rng.torch.rank{r}": s for r, s in enumerate(gathered)}


class ObjectiveModule(torch.nn.Module):
    """``forward(x, y, weight)``: ``weight`` times the objective ``loss_fn(model, x, y)`` of one
    batch, the model being a submodule (in the spirit of Pyro's ``ELBOModule``), so that
    ``DistributedDataParallel`` can wrap it and all-reduce the gradients of the model's
    parameters. With ``precision="bf16"`` the objective runs under ``torch.autocast``.

    Example:
        >>> import probgen as pg
        >>> from probgen.inference.objectives import make_objective
        >>> model = pg.models.IndependentBernoulli(4)
        >>> module = ObjectiveModule(model, make_objective("elbo"))
        >>> module(torch.ones(3, 4), None, 1.0).shape
        torch.Size([])
    """

    def __init__(
        self, model: Any, loss_fn: Callable[[Any, Tensor, Tensor | None], Tensor], precision: str | None = None
    ) -> None:
        super().__init__()
        self.model = model
        self.loss_fn = loss_fn
        self.precision = precision

    def forward(self, x: Tensor, y: Tensor | None, weight: float) -> Tensor:
        with precision_context(self.precision, x.device.type):
            loss = widened(self.loss_fn(self.model, x, y))
        return loss if weight == 1.0 else loss * weight


def keeps_running_statistics(module: torch.nn.Module) -> bool:
    """Whether some submodule updates buffers as it trains: batch or instance norms that track
    running statistics, or Pyro's ``BatchNorm`` transform (moving mean and variance)."""
    from pyro.distributions.transforms import BatchNorm

    norms = (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d, torch.nn.BatchNorm3d, torch.nn.SyncBatchNorm)
    instance_norms = (torch.nn.InstanceNorm1d, torch.nn.InstanceNorm2d, torch.nn.InstanceNorm3d)
    for m in module.modules():
        if isinstance(m, norms + instance_norms) and m.track_running_stats or isinstance(m, BatchNorm):
            return True
    return False


def wrap_data_parallel(module: ObjectiveModule, device: torch.device, find_unused: bool) -> torch.nn.Module:
    """``module`` in ``DistributedDataParallel``: rank 0's parameters and buffers are broadcast
    to the others now; gradients are averaged over the ranks in each backward pass; and rank 0's
    buffers are broadcast again before each forward pass only where training changes them
    (:func:`keeps_running_statistics`): the others (masks, data scales, flags) are constant or
    set alike on every rank, and broadcasting them costs a collective per step."""
    from torch.nn.parallel import DistributedDataParallel

    ids = [device] if device.type == "cuda" else None
    wrapped = DistributedDataParallel(module, device_ids=ids, find_unused_parameters=find_unused)
    wrapped.broadcast_buffers = keeps_running_statistics(module)
    return wrapped
