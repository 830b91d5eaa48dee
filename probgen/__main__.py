"""``python -m probgen ...`` (and ``torchrun ... -m probgen fit ...``): the ``probgen`` command."""

from probgen.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
