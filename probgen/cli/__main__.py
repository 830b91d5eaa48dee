"""``python -m probgen.cli``: the ``probgen`` command."""

import sys

from probgen.cli import main

if __name__ == "__main__":
    sys.exit(main())
