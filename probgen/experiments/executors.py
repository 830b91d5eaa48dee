"""Where the jobs of a run execute: here one after another (the default), on a pool of local
worker processes (``--jobs N``), or on a Dask cluster (``--executor dask``).

The engines are the standard ones: :class:`concurrent.futures.ProcessPoolExecutor` with the
``spawn`` start method (a fresh interpreter per worker, never a fork of a process holding
torch's threads), and ``dask.distributed`` (a ``LocalCluster``, or any scheduler's address,
e.g. one that ``dask-jobqueue`` starts on SLURM). A worker reads the data itself (once per
process), runs :func:`~probgen.experiments.runner.run_job` into the job's folder and sends back
the job's row and messages; the calling process only schedules, shows progress and writes the
tables. Each job is seeded by its ``model_seed``, so its numbers do not depend on the worker
that ran it nor on the order.

Faults. A worker that dies while running a job (SIGKILL, the OOM killer, a segfault) breaks a
``ProcessPoolExecutor``: the pool is then made afresh and every unfinished job resubmitted; the
job whose worker died is charged one attempt, and after ``retries + 1`` attempts it is marked
failed (:class:`WorkerDied`, naming the signal) while the others go on. On Dask the scheduler
reschedules such a task itself, up to its ``distributed.scheduler.allowed-failures`` (set to
``retries`` for a ``LocalCluster``); then the job is marked failed the same way. A job that
raises is failed at once (its row holds the error, as in a serial run; the same command retries
it), since an exception is the job's own, not the worker's.
"""

from __future__ import annotations

import collections
import contextlib
import multiprocessing.context
import os
import signal
import threading
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from probgen.experiments.jobs import Job
from probgen.experiments.worker import Finished, JobTask, execute, start_worker

__all__ = [
    "DASK_INSTALL",
    "DEFAULT_RETRIES",
    "EXECUTOR_KINDS",
    "THREAD_VARIABLES",
    "DaskExecutor",
    "DaskMissing",
    "Finished",
    "JobTask",
    "ProcessExecutor",
    "WorkerDied",
    "execute",
    "make_executor",
    "pinned_threads",
]

#: what ``kind`` may be: ``"local"`` (here, or a process pool with ``jobs`` > 1) or ``"dask"``
EXECUTOR_KINDS = ("local", "dask")
#: times a job whose worker died is run again before it is marked failed
DEFAULT_RETRIES = 1
#: what installs the optional Dask executor
DASK_INSTALL = 'pip install -e ".[dask]"'
#: thread counts of the BLAS and OpenMP libraries, set in a worker's environment before it starts
#: (they are read once, when torch and numpy load their libraries)
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "VECLIB_MAXIMUM_THREADS")


class DaskMissing(ImportError):
    """``--executor dask`` without Dask installed."""


class WorkerDied(RuntimeError):
    """The worker process running a job died (every allowed attempt)."""


@contextlib.contextmanager
def pinned_threads(threads: int) -> Iterator[None]:
    """Torch's intra-op thread count set to ``threads`` inside, put back after: a job run here
    computes with the same count as on a worker, whatever this machine's cores.

    Example:
        >>> import torch
        >>> before = torch.get_num_threads()
        >>> with pinned_threads(1):
        ...     torch.get_num_threads()
        1
        >>> torch.get_num_threads() == before
        True
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


# ----------------------------------------------------------------------------- local processes

_ENVIRON_LOCK = threading.Lock()


class _PinnedProcess(multiprocessing.context.SpawnProcess):
    """A spawned process whose BLAS/OpenMP thread counts are in its environment from the start."""

    threads = 1

    def start(self) -> None:
        with _ENVIRON_LOCK:  # the child copies os.environ when it is exec'd
            saved = {k: os.environ.get(k) for k in THREAD_VARIABLES}
            os.environ.update(dict.fromkeys(THREAD_VARIABLES, str(self.threads)))
            try:
                super().start()
            finally:
                for key, value in saved.items():
                    if value is None:
                        os.environ.pop(key, None)
                    else:
                        os.environ[key] = value


class _PinnedContext(multiprocessing.context.SpawnContext):
    """The spawn context, making :class:`_PinnedProcess` es and remembering them (for exit codes)."""

    def __init__(self, threads: int) -> None:
        super().__init__()
        self.threads, self.started = threads, []

    def Process(self, *args: Any, **kwargs: Any) -> _PinnedProcess:  # noqa: N802 - multiprocessing's name
        process = _PinnedProcess(*args, **kwargs)
        process.threads = self.threads
        self.started.append(process)
        return process


def _death(code: int | str | None) -> str:
    if isinstance(code, str):
        return code
    if code is not None and code < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-code).name}"
    return f"exit status {code}"


class ProcessExecutor:
    """``jobs`` local worker processes, at most one job per worker at a time, each with the
    task's torch/BLAS thread count (the config's ``threads``; ``jobs x threads`` at most the
    usable cores keeps them from contending).

    Args:
        jobs: worker processes.
        retries: times a job whose worker died is run again before it is marked failed.
    """

    def __init__(self, jobs: int, retries: int = DEFAULT_RETRIES) -> None:
        self.jobs, self.retries = jobs, retries
        self.running = 0

    def describe(self) -> dict[str, Any]:
        where = f"{self.jobs} local worker processes"
        return {"kind": "local", "jobs": self.jobs, "retries": self.retries, "where": where}

    def results(self, jobs: list[Job], task: JobTask) -> Iterator[Finished]:
        """Run ``jobs``, yielding each as it finishes; a broken pool is made afresh."""
        waiting, attempts = collections.deque(jobs), collections.Counter()
        while waiting:
            yield from self._pool(waiting, attempts, task)

    def _pool(self, waiting: collections.deque, attempts: collections.Counter, task: JobTask) -> Iterator[Finished]:
        """One pool's life: until every job is done or a worker dies; then the jobs it left are
        put back at the head of ``waiting`` (or failed, past their retries)."""
        context = _PinnedContext(task.threads)
        reports = context.SimpleQueue()  # a new queue per pool: a killed writer leaves its lock dirty
        pool = ProcessPoolExecutor(self.jobs, mp_context=context, initializer=start_worker,
                                   initargs=(reports, os.getpid()))  # fmt: skip
        inflight, broken = {}, []
        try:
            while (waiting and not broken) or inflight:
                # no more jobs than workers: a submitted job is a running one, none queued behind
                while waiting and not broken and len(inflight) < self.jobs:
                    try:
                        inflight[pool.submit(execute, task, waiting[0])] = waiting[0]
                    except BrokenProcessPool:  # a worker died since the last wait: this one never left
                        break
                    waiting.popleft()
                if not inflight:
                    break
                self.running = len(inflight)
                done, _ = wait(inflight, return_when=FIRST_COMPLETED)
                for future in done:
                    job = inflight.pop(future)
                    try:
                        row, lines = future.result()
                    except BrokenProcessPool:
                        broken.append(job)
                        continue
                    except Exception as err:  # noqa: BLE001 - e.g. the data could not be read there
                        yield Finished(job, None, [], err)
                        continue
                    yield Finished(job, row, lines)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)  # every worker gone before a job is resubmitted
        self.running = 0
        if broken:
            yield from self._after_break(broken, waiting, attempts, context, reports)

    def _after_break(self, broken: list[Job], waiting: collections.deque, attempts: collections.Counter,
                     context: _PinnedContext, reports: Any) -> Iterator[Finished]:  # fmt: skip
        """Charge the jobs whose worker died (the pool's own SIGTERM of the others is no fault of
        theirs); requeue the rest and those with retries left, fail the others."""
        ran = {}
        while not reports.empty():
            job_id, pid = reports.get()
            ran[job_id] = pid
        codes = {p.pid: p.exitcode for p in context.started}
        death = {job.id: codes.get(ran.get(job.id)) for job in broken}
        culprits = {i for i, code in death.items() if code is not None and code != -signal.SIGTERM}
        if not culprits:  # none identified (a worker that died before its job began): charge all, so that it ends
            culprits = {job.id for job in broken}
            dead = sorted({code for code in codes.values() if code not in (None, 0, -signal.SIGTERM)})
            how = ", ".join(_death(code) for code in dead) or "unknown cause"
            for job_id in culprits - set(ran):
                death[job_id] = f"before starting the job: {how}; a script must guard its top level with "
                death[job_id] += "`if __name__ == '__main__':`, since spawned workers import it"
        for job in reversed(broken):
            if job.id not in culprits:
                waiting.appendleft(job)
                continue
            attempts[job.id] += 1
            how = _death(death[job.id])
            if attempts[job.id] <= self.retries:
                line = f"{job.id}: its worker process died ({how}); retrying ({attempts[job.id]} of {self.retries})"
                waiting.appendleft(job)
                yield Finished(job, None, [line], final=False)
                continue
            error = WorkerDied(
                f"the worker process running the job died ({how}) on each of {attempts[job.id]} attempt(s) "
                f"(retries = {self.retries})"
            )
            yield Finished(job, None, [], error)


# ----------------------------------------------------------------------------- Dask


#: unsets what a Dask nanny puts in its workers' environment by default: with any glibc malloc
#: tunable set (Dask sets MALLOC_TRIM_THRESHOLD_), glibc's dynamic mmap threshold is off, so every
#: tensor above 128 KiB is a fresh mmap whose pages fault in again: a VAE fit ran 1.6x as long in
#: such a worker (a sweep's jobs: 52 s of fitting vs 33 s serially). None unsets it (Dask's rule).
NO_MALLOC_TRIM = {"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}


def _distributed() -> Any:
    try:
        import distributed
    except ImportError:
        raise DaskMissing(f"the Dask executor needs dask.distributed, which is not installed: {DASK_INSTALL}") from None
    return distributed


class DaskExecutor:
    """Jobs as tasks of a Dask cluster: the scheduler at ``scheduler``, or (None) a
    ``LocalCluster`` of ``jobs`` single-threaded worker processes started for the run.

    Args:
        scheduler: a scheduler address such as ``"tcp://10.0.0.1:8786"`` (None: a LocalCluster).
        jobs: the LocalCluster's workers.
        retries: a LocalCluster's ``allowed-failures`` (a task whose worker died runs again this
            many times); a scheduler of your own keeps its own setting.

    Each task sets torch's thread count to the task's (the config's ``threads``); Dask's nanny
    sets the BLAS/OpenMP ones of its workers to 1.
    """

    def __init__(self, scheduler: str | None = None, jobs: int = 2, retries: int = DEFAULT_RETRIES) -> None:
        _distributed()
        self.scheduler, self.jobs, self.retries = scheduler, jobs, retries
        self.running = 0

    def describe(self) -> dict[str, Any]:
        where = f"a Dask LocalCluster of {self.jobs} workers"
        where = f"the Dask scheduler at {self.scheduler}" if self.scheduler else where
        spec = {"kind": "dask", "scheduler": self.scheduler, "jobs": None if self.scheduler else self.jobs}
        return spec | {"retries": self.retries, "where": where}

    @contextlib.contextmanager
    def _client(self) -> Iterator[Any]:
        import dask

        distributed = _distributed()
        if self.scheduler is not None:
            with distributed.Client(self.scheduler) as client:
                yield client
            return
        # the scheduler of a LocalCluster runs here: it reads allowed-failures when it starts
        with dask.config.set({"distributed.scheduler.allowed-failures": self.retries, **NO_MALLOC_TRIM}):
            cluster = distributed.LocalCluster(n_workers=self.jobs, threads_per_worker=1, processes=True,
                                               dashboard_address=None)  # fmt: skip
        with cluster, distributed.Client(cluster) as client:
            yield client

    def results(self, jobs: list[Job], task: JobTask) -> Iterator[Finished]:
        """Submit every job (the scheduler places them), yield each as it finishes."""
        import uuid

        distributed = _distributed()
        run = uuid.uuid4().hex[:8]
        with self._client() as client:
            slots = sum(client.nthreads().values()) or 1
            futures = {
                client.submit(execute, task, job, key=f"probgen-{job.id}-{run}", pure=False): job for job in jobs
            }
            left = len(futures)
            self.running = min(slots, left)
            for future in distributed.as_completed(futures):
                job, left = futures[future], left - 1
                self.running = min(slots, left)
                try:
                    row, lines = future.result()
                except distributed.KilledWorker as err:
                    yield Finished(job, None, [], WorkerDied(f"every worker running the job died: {err}"))
                except Exception as err:  # noqa: BLE001 - e.g. the data could not be read there
                    yield Finished(job, None, [], err)
                else:
                    yield Finished(job, row, lines)
        self.running = 0


# ----------------------------------------------------------------------------- choosing


def _spec_error(spec: Any, key: str, expected: str) -> ValueError:
    return ValueError(f"executor {key} = {spec.get(key)!r}: expected {expected}")


def make_executor(spec: dict[str, Any] | None) -> ProcessExecutor | DaskExecutor | None:
    """The executor a spec names: ``kind`` ("local" or "dask"), ``jobs`` (worker processes),
    ``scheduler`` (a Dask address), ``retries``; None for a serial run here (no spec, or
    ``jobs`` 1 without Dask). Torch's threads per job are the config's ``threads``, not the
    executor's: the numbers depend on them.

    Raises:
        ValueError: a key or value it does not know.
        DaskMissing: ``kind = "dask"`` without dask.distributed installed.

    Example:
        >>> make_executor({"jobs": 1}) is None
        True
        >>> make_executor({"jobs": 2, "retries": 0}).describe()["retries"]
        0
    """
    spec = dict(spec or {})
    if "threads" in spec:
        raise ValueError(f"executor threads = {spec['threads']!r}: expected it in the config's top level (threads = N)")
    unknown = sorted(set(spec) - {"kind", "jobs", "scheduler", "retries"})
    if unknown:
        raise ValueError(f"executor: unknown key {unknown[0]!r}; expected kind, jobs, scheduler, retries")
    kind = spec.get("kind") or "local"
    if kind not in EXECUTOR_KINDS:
        raise _spec_error(spec, "kind", "'local' or 'dask'")
    for key, low in (("jobs", 1), ("retries", 0)):
        value = spec.get(key)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < low):
            raise _spec_error(spec, key, f"an integer >= {low}")
    retries = DEFAULT_RETRIES if spec.get("retries") is None else spec["retries"]
    scheduler = spec.get("scheduler")
    if kind == "dask":
        if scheduler is not None and (not isinstance(scheduler, str) or not scheduler):
            raise _spec_error(spec, "scheduler", "a Dask scheduler address such as 'tcp://host:8786'")
        if scheduler is not None and spec.get("jobs") is not None:
            raise ValueError(
                f"executor jobs = {spec['jobs']} with scheduler = {scheduler!r}: expected one of them "
                "(jobs sizes a LocalCluster; a scheduler's cluster has its own workers)"
            )
        return DaskExecutor(scheduler, spec.get("jobs") or 2, retries)
    if scheduler is not None:
        raise ValueError(f"executor scheduler = {scheduler!r} with kind 'local': expected kind = 'dask' with it")
    jobs = spec.get("jobs") or 1
    return None if jobs == 1 else ProcessExecutor(jobs, retries)
