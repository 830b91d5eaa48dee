"""What every command shares: the user-error type, output directories, checkpoints by path.

Imports of probgen's heavier modules (torch, Pyro, the models) sit inside the functions here and
in every command module, so that ``probgen --help`` and a mistyped command answer at once.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from probgen._io import DirectoryLocked
from probgen._io import locked as _io_locked

__all__ = [
    "FIT_KEYS",
    "ISSUES_URL",
    "RUN_FILE",
    "OptimizerState",
    "UsageError",
    "check_device",
    "fit_kwargs",
    "load_checkpoint",
    "locked",
    "output_dir",
    "wrote",
]

#: options of ``probgen.fit`` that ``fit`` and ``compare`` take from the command line
FIT_KEYS = ("epochs", "batch_size", "lr", "seed", "objective", "patience", "device", "lr_decay")
#: Sidecar that ``fit`` writes into ``--out`` before training, so a killed fit can be resumed and evaluated.
RUN_FILE = "run.json"
ISSUES_URL = "https://github.com/probgen/probgen/issues"


class UsageError(ValueError):
    """A bad command line or input: reported as one line, exit status 2."""


def wrote(path: Path, file: Any = None) -> None:
    """Say that ``path`` was written."""
    print(f"wrote {path}", file=file or sys.stdout)


def check_device(text: str | None) -> str | None:
    """Refuse a ``--device`` that torch cannot parse or that this machine does not have."""
    if text is None:
        return None
    from probgen._checks import check_device as check

    try:
        check(text)
    except ValueError as err:
        raise UsageError(f"--{err}") from None
    return text


def fit_kwargs(args: Any, defaults: dict[str, Any]) -> dict[str, Any]:
    """``probgen.fit`` options: the model's registered defaults, overridden by the command line."""
    kwargs = dict(defaults)
    for key in FIT_KEYS:
        value = getattr(args, key, None)
        if value is not None:
            kwargs[key] = value
    kwargs["progress"] = not args.quiet
    return kwargs


@contextlib.contextmanager
def output_dir(path: str, flag: str = "--out", keep: Callable[[Path], bool] | None = None) -> Iterator[Path]:
    """Create the directory ``path`` if needed; if the command fails, remove what this command
    created, unless it holds a checkpoint worth keeping or ``keep(path)`` says it holds results."""
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise UsageError(f"{flag} {path!r} is an existing file; expected a directory (it is created if missing)")
    created = None
    probe = out
    while not probe.exists():
        created, probe = probe, probe.parent
    if not probe.is_dir():
        raise UsageError(f"{flag} {path!r} cannot be created: {str(probe)!r} is a file, not a directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UsageError(f"{flag} {path!r} cannot be created: {err.strerror or err}") from None
    try:
        yield out
    except BaseException:
        from probgen.checkpoint import CHECKPOINT_NAME

        # remove what this command created, unless it holds a checkpoint worth keeping (an
        # interrupted or diverged fit leaves its last good checkpoint for --resume)
        if created is not None and not (out / CHECKPOINT_NAME).exists() and not (keep and keep(out)):
            shutil.rmtree(created, ignore_errors=True)
        raise


@contextlib.contextmanager
def locked(out: Path) -> Iterator[None]:
    """An exclusive lock on ``OUT/.lock``: a second command writing into ``out`` is refused at once."""
    try:
        with _io_locked(out):
            yield
    except DirectoryLocked as err:  # this one, or a library call's lock of a directory inside it
        raise UsageError(f"{err} or choose another --out") from None


def load_checkpoint(path: str, device: str | None = None) -> tuple[Any, dict[str, Any], Path]:
    """A checkpoint, its model on ``device`` (default cpu), and what its run recorded (``extra``,
    completed by the run's sidecar file)."""
    import probgen as pg
    from probgen.checkpoint import CHECKPOINT_NAME

    target = Path(path)
    if target.is_dir():
        if not (target / CHECKPOINT_NAME).exists():
            raise UsageError(
                f"directory {path!r} holds no checkpoint ({CHECKPOINT_NAME}); expected the --out directory "
                "of a `probgen fit` or a .safetensors file"
            )
        target = target / CHECKPOINT_NAME
    elif not target.exists():
        raise UsageError(f"checkpoint {path!r} does not exist; expected a `probgen fit` --out directory or its file")
    checkpoint = pg.load_checkpoint(target, map_location=device or "cpu")
    info: dict[str, Any] = {}
    sidecar = target.parent / RUN_FILE
    if sidecar.is_file():
        with contextlib.suppress(OSError, json.JSONDecodeError, UnicodeDecodeError):
            loaded = json.loads(sidecar.read_text())
            if isinstance(loaded, dict) and loaded.get("model") == checkpoint.model.name:
                info.update(loaded)
    info.update(checkpoint.extra)
    return checkpoint, info, target


class OptimizerState:
    """Stands in for an optimizer when re-saving a checkpoint with its stored optimizer state."""

    def __init__(self, state: dict[str, Any]) -> None:
        self._state = state

    def state_dict(self) -> dict[str, Any]:
        return self._state
