"""Progress bars that suit their stream: tqdm on a terminal, a short line per step or per 10% elsewhere,
and the ``"probgen"`` logger's messages printed so that they do not break the bars.

Logs, CI and pipes get a few readable lines (with elapsed time and an ETA from the first step)
instead of hundreds of carriage-return updates. On a terminal, nested bars (a run's overall bar,
then each job's fit bar) stack: a nested bar disappears when it closes, the outermost one stays.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any, TextIO

__all__ = ["progress_bar", "LineProgress", "format_seconds", "configure_logging", "LOGGER_NAME"]

#: the logger of every probgen message (its children: ``probgen.experiments``, ...)
LOGGER_NAME = "probgen"
#: off a terminal, long work prints a line at least this often (seconds)
INTERVAL = 30.0


def format_seconds(seconds: float) -> str:
    """A duration in sensible units: "3.2 ms", "0.21 s", "12.4 s", "3 min 2 s", "1 h 5 min".

    Example:
        >>> format_seconds(182.4)
        '3 min 2 s'
    """
    if not math.isfinite(seconds) or seconds < 0:
        return "unknown time"
    if seconds < 0.01:
        return f"{seconds * 1000:.1f} ms"
    if seconds < 10:
        return f"{seconds:.2f} s"
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        minutes, rest = divmod(int(round(seconds)), 60)
        return f"{minutes} min {rest} s"
    hours, rest = divmod(int(round(seconds)), 3600)
    return f"{hours} h {rest // 60} min"


class LineProgress:
    """A tqdm-like progress reporter that prints plain lines: one at once, then one per step, or
    for a long run the first step (with its ETA), every 10% and at least every 30 s.

    Supports what probgen's loops use of tqdm: iteration, ``update``, ``set_postfix``,
    ``set_description``, ``write``, ``close`` and use as a context manager.

    Args:
        iterable: what to iterate over (may be None when only ``update`` is used).
        total: the number of steps (``len(iterable)`` when it has one).
        desc: a label at the start of each line.
        disable: print nothing.
        file: the stream (default ``sys.stderr``).
    """

    def __init__(
        self,
        iterable: Iterable[Any] | None = None,
        total: int | None = None,
        desc: str = "",
        disable: bool = False,
        file: TextIO | None = None,
    ) -> None:
        self.iterable = iterable
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)  # type: ignore[arg-type]
        self.total = total
        self.desc = desc
        self.disable = disable
        self.file = file if file is not None else sys.stderr
        self.n = 0
        self.postfix = ""
        self.start = time.perf_counter()
        self.last_printed = -1
        self.last_time = self.start
        self.closed = False
        if not self.disable:  # at once: what runs (the first step's line then gives an ETA)
            self._print()

    # ---------------------------------------------------------------- tqdm's interface
    def __iter__(self) -> Iterator[Any]:
        if self.iterable is None:
            raise TypeError("LineProgress made without an iterable cannot be iterated")
        try:
            for item in self.iterable:
                yield item
                self.update(1)
        finally:
            self.close()

    def __len__(self) -> int:
        return self.total or 0

    def __enter__(self) -> LineProgress:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def set_postfix(self, ordered_dict: dict[str, Any] | None = None, refresh: bool = True, **kwargs: Any) -> None:
        items = {**(ordered_dict or {}), **kwargs}
        self.postfix = ", ".join(f"{k}={v}" for k, v in items.items())

    def set_description(self, desc: str | None = None, refresh: bool = True) -> None:
        self.desc = desc or ""

    def write(self, text: str) -> None:
        if not self.disable:
            print(text, file=self.file, flush=True)

    def update(self, n: int = 1) -> None:
        self.n += n
        if self._due():
            self._print()

    def close(self) -> None:
        if not self.closed and not self.disable and self.n != self.last_printed and self.n > 0:
            self._print()
        self.closed = True

    # ---------------------------------------------------------------- lines
    def _due(self) -> bool:
        """Print the first step (its ETA), every 10%, the last step, and at least every
        :data:`INTERVAL` seconds of long work."""
        if self.disable:
            return False
        if not self.total or self.total <= 10 or self.n == 1 or self.n == self.total:
            return True
        if time.perf_counter() - self.last_time >= INTERVAL:
            return True
        step = self.total / 10
        return int(self.n / step) > int(max(self.last_printed, 0) / step)

    def line(self) -> str:
        """The text of the line printed for the current state."""
        elapsed = time.perf_counter() - self.start
        head = f"{self.desc}: " if self.desc else ""
        if self.total:
            percent = 100 * self.n / self.total
            text = f"{head}{self.n}/{self.total} ({percent:.0f}%), {format_seconds(elapsed)}"
            if 0 < self.n < self.total:
                text += f", ETA {format_seconds(elapsed / self.n * (self.total - self.n))}"
        else:
            text = f"{head}{self.n}, {format_seconds(elapsed)}"
        return f"{text}, {self.postfix}" if self.postfix else text

    def _print(self) -> None:
        self.last_printed, self.last_time = self.n, time.perf_counter()
        print(self.line(), file=self.file, flush=True)


def progress_bar(
    iterable: Iterable[Any] | None = None,
    total: int | None = None,
    desc: str = "",
    disable: bool = False,
    file: TextIO | None = None,
    leave: bool | None = None,
) -> Any:
    """A progress bar over ``iterable``: a tqdm bar on a terminal, :class:`LineProgress` otherwise.

    Args:
        iterable: what to iterate over.
        total: the number of steps, when ``iterable`` has no length.
        desc: a label.
        disable: show nothing.
        file: the stream (default ``sys.stderr``).
        leave: on a terminal, keep the bar when it closes; None (default): only if it is the
            outermost bar, so a job's bar inside a run's bar makes room for the next job's.

    ``TQDM_DISABLE=1`` in the environment (tqdm's own switch) silences every bar, terminal or not:
    e.g. for executed notebooks, whose pages should show the numbers, not the bars.

    Example:
        >>> import io, os
        >>> from unittest import mock
        >>> stream = io.StringIO()
        >>> with mock.patch.dict(os.environ, {"TQDM_DISABLE": ""}):  # bars on, whatever the shell says
        ...     for _ in progress_bar(range(3), desc="fit", file=stream):
        ...         pass
        >>> stream.getvalue().count("\\n")  # one at the start, then one per step
        4
    """
    stream = file if file is not None else sys.stderr
    disable = disable or os.environ.get("TQDM_DISABLE", "").lower() in ("1", "true", "yes")
    if _is_terminal(stream):
        from tqdm.auto import tqdm

        return tqdm(iterable, total=total, desc=desc, disable=disable, file=stream, leave=leave)
    return LineProgress(iterable, total=total, desc=desc, disable=disable, file=stream)


def _is_terminal(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(callable(isatty) and isatty())


class _BarSafeHandler(logging.StreamHandler):
    """Writes each record on its own line; on a terminal through ``tqdm.write``, which moves the
    open bars below the message instead of overwriting them."""

    def emit(self, record: logging.LogRecord) -> None:
        if not _is_terminal(self.stream):
            super().emit(record)
            return
        try:
            from tqdm.auto import tqdm

            tqdm.write(self.format(record), file=self.stream)
        except Exception:  # noqa: BLE001 - logging must never raise
            self.handleError(record)


def configure_logging(level: int | str = logging.INFO, stream: TextIO | None = None) -> logging.Handler:
    """Print the ``"probgen"`` logger's messages of ``level`` and above to ``stream`` (default
    ``sys.stderr``), one plain line each, without breaking progress bars on a terminal.

    Calling it again replaces the handler it installed before (no doubled lines). A quiet
    command line sets ``logging.WARNING``: job lines go, warnings stay.

    Args:
        level: a logging level (``logging.INFO``, ``"WARNING"``, ...).
        stream: where the messages go.

    Returns:
        The handler installed on the ``"probgen"`` logger.

    Example:
        >>> import io, logging
        >>> stream = io.StringIO()
        >>> _ = configure_logging(logging.INFO, stream)
        >>> logging.getLogger("probgen.experiments").info("job 1 of 2")
        >>> stream.getvalue()
        'job 1 of 2\\n'
    """
    logger = logging.getLogger(LOGGER_NAME)
    for old in [h for h in logger.handlers if isinstance(h, _BarSafeHandler)]:
        logger.removeHandler(old)
    handler = _BarSafeHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(handler)
    logger.setLevel(level)
    return handler
