"""What a run records of where it ran: probgen, Python, torch and Pyro versions, the git commit
of a source checkout, the start time and the command (``meta.json`` of a run directory)."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

__all__ = ["run_meta"]


def _git_hash() -> str | None:
    root = Path(__file__).resolve().parents[2]
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        done = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=False
        )
        if done.returncode == 0:
            return done.stdout.strip()
    return None


def run_meta() -> dict[str, Any]:
    import pyro
    import torch

    import probgen

    return {
        "probgen": probgen.__version__,
        "git": _git_hash(),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "pyro": pyro.__version__,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": sys.argv,
    }
