"""An optional wall-clock cap on a fit: :class:`TimeLimit` raised once ``seconds`` have passed.

A time limit is a cap, never a budget (budgets count epochs and steps, so results do not depend
on the machine's speed); what it cut is labelled by whoever set it (``probgen run`` writes
"time limit at epoch N" in the job's row).

In the main thread the cap is a ``SIGALRM`` timer, which cuts any work, a NUTS chain or an
evaluation included. Other threads (a Dask worker runs its tasks in threads) cannot receive a
signal, so there the cap is a deadline that every optimizer step of an epoch-loop fit checks
(``svi``, ``contrastive_divergence``, ``adversarial``): it cuts at the next step, never inside
one. An asynchronous exception (``PyThreadState_SetAsyncExc``) would cut sooner, but it
deadlocks a thread that a tracer (coverage, a debugger) is watching.

Example:
    >>> import time
    >>> try:
    ...     with time_limit(0.05):
    ...         time.sleep(1)
    ... except TimeLimit:
    ...     print("cut")
    cut
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

__all__ = ["TimeLimit", "time_limit", "check_time_limit"]

_local = threading.local()


class TimeLimit(Exception):  # noqa: N818 - a signal, not an error
    """Raised inside a fit when its time limit has passed."""


@contextlib.contextmanager
def time_limit(seconds: float | None) -> Iterator[None]:
    """Raise :class:`TimeLimit` in the calling thread after ``seconds`` (None: no limit)."""
    if seconds is None:
        yield
        return
    if threading.current_thread() is not threading.main_thread():
        previous_deadline = getattr(_local, "deadline", None)
        _local.deadline = time.monotonic() + seconds
        try:
            yield
        finally:
            _local.deadline = previous_deadline
        return

    def alarm(signum: int, frame: Any) -> None:
        raise TimeLimit

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def check_time_limit() -> None:
    """Raise :class:`TimeLimit` if this thread's deadline (set by :func:`time_limit`) has passed.

    Example:
        >>> check_time_limit()  # no limit set: nothing happens
    """
    deadline = getattr(_local, "deadline", None)
    if deadline is not None and time.monotonic() > deadline:
        raise TimeLimit
