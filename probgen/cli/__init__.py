"""The ``probgen`` command: list, fit, eval, sample, compare, run and report from the shell.

Every user error prints one line ``probgen: error: ...`` on stderr and exits with status 2;
an interruption (Ctrl-C) prints one line and exits with 130, keeping the last checkpoint; an
internal error prints one line asking for a report and exits with 1. No traceback is shown.

A user's data file is split at random (seeded) into train, validation and test parts, unless
separate ``--val``/``--test`` files are given; every number printed or saved names its split,
and ``eval`` of a checkpoint re-creates the same held-out split from what the checkpoint records.

One module per command (:mod:`~probgen.cli.fit`, ``eval``, ``sample``, ``compare``, ``run``,
``report``, ``list``), each a thin layer over library calls; :mod:`~probgen.cli.parser` builds the
parser, :mod:`~probgen.cli.launcher` starts the processes of ``fit --nproc``, and
:mod:`~probgen.cli.app` turns every failure into one line and an exit status.
"""

from probgen.cli.app import main
from probgen.cli.common import UsageError
from probgen.cli.parser import build_parser

__all__ = ["UsageError", "build_parser", "main"]
