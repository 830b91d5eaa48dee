"""``fit --nproc N``: the same command in N local processes (ranks 0..N-1, as torchrun would start
them), and what each rank reads of its place (``RANK``/``WORLD_SIZE``)."""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from typing import Any

from probgen.cli.common import UsageError

__all__ = ["check_nproc", "launch", "launched_rank", "show_other_failure", "usable_cpus"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _without_nproc(argv: Sequence[str]) -> list[str]:
    out, skip = [], False
    for item in argv:
        if skip:
            skip = False
        elif item == "--nproc":
            skip = True
        elif not item.startswith("--nproc="):
            out.append(item)
    return out


def launch(args: argparse.Namespace) -> int:
    """``fit --nproc N``: run the same command in N local processes (ranks 0..N-1, as torchrun
    would start them); return the first non-zero exit status, stopping the other ranks then.

    Rank 0 writes to this terminal; the others' error output is kept aside and shown only when
    one of them failed and rank 0 did not say why, so that an error every rank meets (a bad
    file, Ctrl-C) reads as one line."""
    n, port = args.nproc, _free_port()
    code = "import sys; from probgen.cli import main; sys.exit(main(sys.argv[1:]))"
    env = {**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "WORLD_SIZE": str(n)}
    env |= {
        "LOCAL_WORLD_SIZE": str(n),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", str(max(1, usable_cpus() // n))),
    }
    argv = [sys.executable, "-c", code, *_without_nproc(args.argv)]
    with contextlib.ExitStack() as stack:
        logs = [None] + [stack.enter_context(tempfile.TemporaryFile("w+")) for _ in range(1, n)]
        procs = [
            subprocess.Popen(argv, env=env | {"RANK": str(r), "LOCAL_RANK": str(r)}, stderr=logs[r]) for r in range(n)
        ]
        try:
            status = _wait_for_ranks(procs)
        except KeyboardInterrupt:
            _stop_ranks(procs, interrupt=True)
            if procs[0].returncode == 130:  # rank 0 was interrupted too and has said so
                return 130
            raise
        finally:
            _stop_ranks(procs)  # the others meet the failure too, or a closed peer
        show_other_failure(procs, logs)
    return status


def show_other_failure(procs: list[subprocess.Popen], logs: list[Any]) -> None:
    """The error output of the first rank after 0 that failed, unless rank 0 has told the same:
    a usage error (exit 2) or an interruption (130) meets every rank alike, so it is shown only
    when rank 0 ended well or was stopped (SIGTERM) before it could say anything."""
    silent = (0, _STOPPED)
    failed = [r for r, p in enumerate(procs) if r and p.returncode not in silent]
    if not failed:
        return
    rank, rank0_spoke = failed[0], procs[0].returncode not in silent
    if rank0_spoke and procs[rank].returncode in (2, 130):
        return
    logs[rank].seek(0)
    print(logs[rank].read().rstrip("\n"), file=sys.stderr)


def _wait_for_ranks(procs: list[subprocess.Popen]) -> int:
    """Wait until every rank has ended, or one has failed; the first non-zero exit status."""
    status = 0
    while any(p.poll() is None for p in procs) and not status:
        status = next((p.returncode for p in procs if p.returncode), 0)
        with contextlib.suppress(subprocess.TimeoutExpired):
            procs[0].wait(0.2)
    return status or next((p.returncode for p in procs if p.returncode), 0)


#: how long the other ranks may take to end by themselves once one has failed or been interrupted
_GRACE_SECONDS = 30.0
#: the exit status of a rank the launcher stopped (by SIGTERM)
_STOPPED = -15


def _stop_ranks(procs: list[subprocess.Popen], interrupt: bool = False, grace: float = _GRACE_SECONDS) -> None:
    """End the ranks still running: with ``interrupt``, by SIGINT as Ctrl-C would (each keeps
    its last complete checkpoint). Each has up to ``grace`` seconds in all to end by itself
    (to report an error every rank meets, or the closed connection of a failed peer, and
    tidy up its files); then SIGTERM."""
    import signal
    import time

    if interrupt:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
    deadline = time.monotonic() + grace
    for p in procs:
        with contextlib.suppress(subprocess.TimeoutExpired):
            p.wait(max(0.0, deadline - time.monotonic()))
    for p in procs:
        if p.poll() is None:
            p.terminate()
            p.wait()


def usable_cpus() -> int:
    """CPU cores this process may run on (its affinity mask, where the OS has one)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def check_nproc(n: int, device: str | None) -> None:
    """Refuse an ``--nproc`` this machine cannot serve: more ranks than CPU cores on the CPU, or
    than GPUs on CUDA (nccl needs one GPU per rank), or several ranks pinned to one GPU."""
    import torch

    where = torch.device(device) if device is not None else torch.device("cpu")
    if where.type == "cuda" and where.index is not None:
        raise UsageError(
            f"--nproc {n} --device {device}: every rank would use {device}, and nccl needs one GPU per rank; "
            "expected --device cuda (rank r runs on cuda:r)"
        )
    if where.type == "cuda":
        count = torch.cuda.device_count()
        if n > count:
            raise UsageError(f"--nproc {n}: this machine has {count} CUDA device(s); expected at most {count}")
    elif n > (cores := usable_cpus()):
        raise UsageError(
            f"--nproc {n}: this machine has {cores} usable CPU core(s); expected at most {cores} "
            "(one rank per core; torchrun starts more if you must)"
        )


def launched_rank() -> tuple[int, int]:
    """(rank, world size) of a process started by torchrun or ``fit --nproc``; (0, 1) otherwise."""
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
