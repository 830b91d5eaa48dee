"""``probgen report RUN_DIR``: (re)write RUN_DIR/report.html from its results.json and figures."""

from __future__ import annotations

import argparse
from pathlib import Path

from probgen.cli.common import wrote

__all__ = ["run"]


def run(args: argparse.Namespace) -> None:
    """The command."""
    from probgen.experiments.report import write_report

    wrote(write_report(Path(args.run_dir)))
