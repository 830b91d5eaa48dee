"""What runs in a worker process (or a Dask task): one job of a run, with the data read once per
process, the task's torch thread count, and its row and messages sent back.

:func:`execute` is what an executor of :mod:`probgen.experiments.executors` submits: a module
level function and a frozen :class:`JobTask`, both picklable by name, so a fresh interpreter (a
spawned pool worker, a Dask worker on another node) can run it.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from probgen.experiments.jobs import Job

__all__ = ["Finished", "JobTask", "execute", "start_worker"]

#: the prefix of the modules :func:`probgen.models.plugins.load_file` imports a user's file as
_USER_MODULES = "probgen_user_models."


@dataclass(frozen=True)
class JobTask:
    """What a worker needs besides the job: the data spec, the run directory, the samples per
    job, the user model files to register, and torch's thread count per job (the config's
    ``threads``: the numbers depend on it)."""

    data: dict[str, Any]
    out: str
    samples: int
    #: ``run_job(job, splits, folder, samples=, log=)`` and ``failed_row(job, splits, err)`` of
    #: the runner, handed in (module-level functions pickle by name), so that this module, which
    #: the runner imports, never imports the runner back
    run_job: Callable[..., dict[str, Any]]
    failed_row: Callable[..., dict[str, Any]]
    plugins: tuple[tuple[str, str], ...] = ()
    threads: int = 1

    @classmethod
    def of(
        cls,
        config: dict[str, Any],
        out: str | Path,
        jobs: list[Job],
        run_job: Callable[..., dict[str, Any]],
        failed_row: Callable[..., dict[str, Any]],
    ) -> JobTask:
        """The task of a checked config's jobs run into ``out``."""
        return cls(json.loads(json.dumps(config["data"])), str(Path(out).resolve()), config["samples"], run_job,
                   failed_row, _plugins(jobs), config["threads"])  # fmt: skip


def _plugins(jobs: list[Job]) -> tuple[tuple[str, str], ...]:
    """``(file, name)`` of each user model file (``module = "..."`` in the config) the jobs use:
    a worker is a fresh interpreter, so it registers them again before building a model."""
    found = []
    for name in dict.fromkeys(job.name for job in jobs):
        for key, module in list(sys.modules.items()):
            if key.startswith(_USER_MODULES) and getattr(module, "__file__", None) and hasattr(module, name):
                found.append((module.__file__, name))
                break
    return tuple(found)


@dataclass
class Finished:
    """A job back from a worker: its row and messages, or the error that stopped the worker
    (``final`` False: only messages, e.g. that the job is to be retried)."""

    job: Job
    row: dict[str, Any] | None
    lines: list[str] = field(default_factory=list)
    error: BaseException | None = None
    final: bool = True


_SPLITS: dict[str, Any] = {}
_SPLITS_LOCK = threading.Lock()
#: where a pool worker says which job it starts (set by :func:`start_worker`)
_REPORTS: Any = None
#: the slow environment already reported by this worker process (:func:`_environment_notes`)
_NOTED: list[str] = []


def _splits(task: JobTask) -> Any:
    """The task's data, read once per worker process (Dask runs several tasks per process)."""
    from probgen.experiments.jobs import load_splits
    from probgen.models.plugins import load_file

    key = json.dumps([task.data, task.plugins], sort_keys=True)
    with _SPLITS_LOCK:
        if key not in _SPLITS:
            for path, name in task.plugins:
                load_file(path, name)
            _SPLITS[key] = load_splits(task.data)
        return _SPLITS[key]


def execute(task: JobTask, job: Job) -> tuple[dict[str, Any], list[str]]:
    """Run one job in this (worker) process: its row and its messages. A job that raises gets a
    failed row (as in a serial run); only a dying worker is the executor's to retry."""
    if _REPORTS is not None:
        _REPORTS.put((job.id, os.getpid()))
    import torch

    torch.set_num_threads(task.threads)  # a worker runs only jobs: no need to put it back
    lines = _environment_notes()
    splits = _splits(task)
    try:
        row = task.run_job(job, splits, Path(task.out) / "jobs" / job.id, samples=task.samples, log=lines.append)
    except Exception as err:  # noqa: BLE001 - the job's own error goes in its row
        row = task.failed_row(job, splits, err)
    return row, lines


def _environment_notes() -> list[str]:
    """Once per worker process, what in its environment slows the jobs (see
    :data:`probgen.experiments.executors.NO_MALLOC_TRIM`)."""
    value = os.environ.get("MALLOC_TRIM_THRESHOLD_")
    if value is None or _NOTED:
        return []
    _NOTED.append(value)
    return [
        f"worker {os.getpid()} runs with MALLOC_TRIM_THRESHOLD_={value} (a Dask nanny sets it by default), which "
        "makes torch fits up to 1.6x slower: start the workers with the Dask config "
        "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_ set to null (docs/scale.md)"
    ]


def start_worker(reports: Any, parent: int) -> None:
    """A pool worker's start (the initializer of
    :class:`~probgen.experiments.executors.ProcessExecutor`'s pool): die with the parent, one
    report queue (:func:`execute` sets torch's thread count per job, as on Dask)."""
    global _REPORTS
    if sys.platform.startswith("linux"):  # a killed run leaves no worker behind, still fitting
        import ctypes

        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)
    _REPORTS = reports
