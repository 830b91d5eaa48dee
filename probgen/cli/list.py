"""``probgen list``: the registered models (with their Python classes) and the bundled datasets."""

from __future__ import annotations

import argparse

__all__ = ["run"]


def run(args: argparse.Namespace) -> None:
    """The command: the models and datasets, or with ``--map`` the map of model families."""
    if args.map:
        from probgen.models.families import format_family_map

        print(format_family_map())
        return
    from probgen import classifiers
    from probgen.data import DATASETS
    from probgen.models import MODELS

    print("models (name, data it models, Python class, what it is):")
    for name, spec in sorted(MODELS.items()):
        where = f"pg.models.{spec.cls.__name__}"
        print(f"  {name:26s} {'/'.join(spec.cls.supports):22s} {where:34s} {spec.description}")
    estimators = ", ".join(f"probgen.classifiers.{n}" for n in classifiers.__all__ if n[0].isupper())
    print(f"scikit-learn estimators of the Bayesian classifiers: {estimators}")
    print("datasets:")
    for name, text in DATASETS.items():
        print(f"  {name:26s} {text}")
