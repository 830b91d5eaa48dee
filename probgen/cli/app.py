"""``main``: run the command line, every failure one line on stderr and an exit status."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import warnings
from collections.abc import Sequence

from probgen._checks import first_line
from probgen.cli.common import ISSUES_URL
from probgen.cli.parser import build_parser

__all__ = ["main"]

_OUT_OF_MEMORY = ("out of memory", "can't allocate", "not enough memory")


def _one_line_warnings(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ANN001
    print(f"probgen: warning: {first_line(Warning(str(message)))}", file=sys.stderr)


def _run(argv: list[str]) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else 2
    args.argv = argv
    return args.func(args) or 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``probgen`` command line; return the exit status (0, 1 internal error, 2 user error, 130)."""
    from probgen.experiments.config import ConfigError

    with warnings.catch_warnings():
        warnings.showwarning = _one_line_warnings
        try:
            return _run(list(sys.argv[1:] if argv is None else argv))
        except BrokenPipeError:  # the reader of our output went away (e.g. `| head`): stop quietly
            with contextlib.suppress(OSError, ValueError):
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 141
        except KeyboardInterrupt:
            print("probgen: interrupted (the last complete checkpoint stays; continue with --resume)", file=sys.stderr)
            return 130
        except MemoryError:
            print("probgen: error: out of memory; try a smaller --batch-size, -n or data file", file=sys.stderr)
            return 2
        except ConfigError as err:  # every problem of a config, one line each
            for line in err.errors:
                print(f"probgen: error: {err.source}: {line}", file=sys.stderr)
            return 2
        except (ValueError, TypeError, OSError, KeyError, UnicodeError, json.JSONDecodeError) as err:
            if isinstance(err, OSError) and err.filename is not None and err.strerror:
                message = f"{err.strerror}: {err.filename}"
            else:
                message = first_line(err)
            print(f"probgen: error: {message}", file=sys.stderr)
            return 2
        except RuntimeError as err:
            if any(words in str(err).lower() for words in _OUT_OF_MEMORY):
                print(f"probgen: error: out of memory ({first_line(err)})", file=sys.stderr)
                return 2
            print(f"probgen: internal error: {first_line(err)}; please report it at {ISSUES_URL}", file=sys.stderr)
            return 1
        except Exception as err:  # noqa: BLE001 - the last line of defence: one line, never a traceback
            print(
                f"probgen: internal error: {type(err).__name__.lstrip('_')}: {first_line(err)}; "
                f"please report it at {ISSUES_URL}",
                file=sys.stderr,
            )
            return 1
