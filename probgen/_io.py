"""Files that are never half-written, and run directories that one command writes at a time.

Every file probgen writes goes through :func:`atomic_path` (directly, or through
:func:`write_text` / :func:`write_bytes`): the data go to a temporary file beside the target,
are flushed to disk (``fsync``), get the permissions the user's umask gives a new file (a
temporary file is created 0600), and replace the target in one ``os.replace``. A crash or
Ctrl-C leaves either the old file or the new one, never a mixture, and no temporary behind
(a killed process may leave one; :func:`locked` removes those of the directory it locks).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

__all__ = ["LOCK_FILE", "DirectoryLocked", "atomic_path", "current_umask", "locked", "write_bytes", "write_text"]

#: the lock file of a directory that a command writes into
LOCK_FILE = ".lock"


class DirectoryLocked(ValueError):
    """Another process holds the lock of a directory this one was to write into."""


def current_umask() -> int:
    """The process's umask (read by setting and restoring it)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary path to write in full; on leaving the block it replaces ``path`` atomically.

    The caller writes the whole file to the yielded path (by any library: ``savefig``,
    ``to_netcdf``, safetensors' ``save_file``). On success the file is synced to disk, given the
    user's umask and renamed onto ``path``; on an error the temporary is removed and ``path`` is
    untouched.

    Example:
        >>> import tempfile, pathlib
        >>> target = pathlib.Path(tempfile.mkdtemp()) / "numbers.txt"
        >>> with atomic_path(target) as tmp:
        ...     _ = tmp.write_text("1 2 3")
        >>> target.read_text()
        '1 2 3'
    """
    path = Path(path)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~current_umask())  # mkstemp makes 0600; keep the user's umask
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; return the path."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; return the path."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


@contextlib.contextmanager
def locked(directory: str | os.PathLike) -> Iterator[None]:
    """Hold an exclusive lock on ``directory/.lock`` for the block.

    Raises:
        DirectoryLocked: another process holds it (refused at once, never waited for).
    """
    import fcntl

    directory = Path(directory)
    with open(directory / LOCK_FILE, "a") as fh:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise DirectoryLocked(
                f"another probgen command is writing into {str(directory)!r} (it holds {directory / LOCK_FILE}); "
                "wait for it to finish"
            ) from None
        # we hold the lock: temporary files left by a killed writer are stale
        for stale in directory.glob(".*.tmp"):
            with contextlib.suppress(OSError):
                stale.unlink()
        yield
