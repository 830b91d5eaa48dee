"""``probgen compare``: the README's main job, a preset of ``probgen run``.

Every registered model that suits each dataset (default: both bundled digits datasets) is fitted
on its registered compare budget, counted in epochs, and scored on the test split; one table per
dataset is printed (likelihoods, then implicit models' sample metrics apart) and, with ``--out``,
saved with its chart and run directory. A failed job is a row of its own; the others go on.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from probgen._checks import first_line
from probgen._io import write_text
from probgen.cli.common import FIT_KEYS, UsageError, check_device, output_dir, wrote
from probgen.cli.data_options import data_spec, splits
from probgen.cli.model_args import build, check_model_names
from probgen.progress import format_seconds

__all__ = ["run"]


def _data_table(spec: dict[str, Any]) -> dict[str, Any]:
    """A data spec as a run config's ``[data]`` table."""
    if not spec.get("file"):
        return {"name": spec["data"]}
    data = {"file": spec["data"], "val_frac": spec["val_frac"], "test_frac": spec["test_frac"]}
    data |= {"split_seed": spec["split_seed"]}
    keys = ("labels", "label_column", "val", "val_labels", "test", "test_labels")
    return data | {k: spec[k] for k in keys if spec.get(k)}


def _compare_config(args: argparse.Namespace, spec: dict[str, Any], names: Sequence[str]) -> tuple[dict, list]:
    """The experiment ``compare`` runs on one dataset: every named model that suits it and has a
    comparable log p(x), one seed, each model's registered budget preset (``--budget``: its compare
    budget or its full defaults, in epochs), optionally capped by ``--time-limit`` seconds."""
    import pyro

    from probgen.experiments import validate_config
    from probgen.experiments.jobs import model_seed
    from probgen.models import MODELS

    train = splits(spec).train
    models, skipped = [], []
    for name in names:
        if not MODELS[name].suits(train.support, train.y is not None):
            continue
        pyro.set_rng_seed(model_seed(args.seed, name))
        # one table of log p(x) (implicit models: likelihood-free columns), no conditional log p(x | y)
        if build(name, train, {}).conditional:
            skipped.append(name)
            continue
        # the preset's epochs, counted (never seconds), unless the command line sets them for all
        budget = {k: v for k, v in MODELS[name].budget(args.budget).items() if getattr(args, k, None) is None}
        models.append({"name": name, "fit": budget})
    if not models:
        raise UsageError(f"no registered model suits {train.name!r} ({train.support})")
    fit = {k: getattr(args, k) for k in FIT_KEYS if k not in ("seed", "device") and getattr(args, k) is not None}
    fit |= {k: getattr(args, k) for k in ("device", "dtype") if getattr(args, k) is not None}
    if args.time_limit is not None:  # an optional cap: a row it cut says so
        fit["time_limit"] = float(args.time_limit)
    raw = {"name": f"compare-{train.name}", "seeds": [args.seed], "data": _data_table(spec), "fit": fit}
    raw |= {"models": models, "eval": {"num_samples": args.num_samples}, "samples": 64 if args.out else 0}
    raw |= {} if args.threads is None else {"threads": args.threads}
    return validate_config(raw, base=Path.cwd(), source="compare"), skipped


def _has_results(out: Path) -> bool:
    return any(out.glob("*/jobs/*/result.json"))


def run(args: argparse.Namespace) -> int:
    """The command; exit status 1 when a job failed (every table is still printed and saved)."""
    from probgen.models import MODELS

    names = args.models or [name for name in sorted(MODELS) if MODELS[name].in_compare]
    check_model_names(names)
    check_device(args.device)
    specs = [data_spec(args, source) for source in args.data or ["digits", "digits-binary"]]
    # a failed or interrupted compare keeps the jobs it finished (the same command continues them)
    out_cm = output_dir(args.out, keep=_has_results) if args.out else tempfile.TemporaryDirectory(prefix="probgen-")
    failed: list[str] = []
    with out_cm as out_path:
        for spec in specs:
            failed += _compare_one(args, spec, names, Path(out_path))
    for line in failed:  # the same command retries what failed
        print(f"probgen: error: {line}", file=sys.stderr)
    return 1 if failed else 0


def _compare_one(args: argparse.Namespace, spec: dict[str, Any], names: Sequence[str], out: Path) -> list[str]:
    """Run, print and save one dataset's comparison; the lines of its failed jobs."""
    import probgen as pg
    from probgen.experiments import run_experiment
    from probgen.experiments.tables import job_note

    # CSV and JSON tables stay machine-readable on stdout; what happened goes to stderr
    info = sys.stdout if args.format == "markdown" else sys.stderr
    config, skipped = _compare_config(args, spec, names)
    parts = splits(spec)
    print(parts.describe(), file=info)
    train, run_dir = parts.train, out / parts.train.name
    log = (lambda line: None) if args.quiet else (lambda line: print(line, file=sys.stderr))
    try:
        done = run_experiment(config, run_dir, progress=not args.quiet, log=log)
    except ValueError as err:
        raise UsageError(f"{train.name}: {first_line(err)}") from err
    rows = [{**r, "seconds": _job_seconds(r), "note": job_note(r)} for r in done["jobs"]]
    table = pg.inference.ComparisonTable(rows=rows, dataset=train.name)
    shown_rows = [{**r, "seconds": None if r["seconds"] is None else format_seconds(r["seconds"])} for r in rows]
    shown = pg.inference.ComparisonTable(rows=shown_rows, dataset=train.name)
    if args.format == "markdown":  # a terminal: the likelihoods, then the likelihood-free metrics apart
        _print_markdown_tables(shown, train.name, rows[0]["split"], rows[0]["num_examples"])
    else:
        print({"csv": shown.to_csv, "json": table.to_json}[args.format]())
    if skipped:
        print(f"not in the table (conditional: log p(x | y)): {', '.join(skipped)}", file=info)
    if args.out:
        wrote(write_text(out / f"compare-{train.name}.json", table.to_json()), info)
        if any(r.get("bits_per_dim") is not None for r in rows):
            wrote(table.plot(out / f"compare-{train.name}.png"), info)
        wrote(run_dir, info)
    return [f"{train.name}: {r['job']}: {r['error']}" for r in rows if r.get("error")]


def _print_markdown_tables(table: Any, dataset: str, split: str, num_examples: int) -> None:
    """The rows with a likelihood in one table; implicit models' metrics in a narrower one."""
    from probgen.inference import ComparisonTable
    from probgen.inference.compare import METRIC_COLUMNS

    density = [r for r in table.rows if r.get("kind") != "implicit"]
    implicit = [r for r in table.rows if r.get("kind") == "implicit"]
    if density:
        print(f"\n{dataset}: {split} NLL per example (nats) and bits/dim, {num_examples} {split} examples\n")
        print(ComparisonTable(rows=density, dataset=dataset).to_markdown())
    if implicit:
        print(f"\n{dataset}: implicit models (no likelihood): sample metrics against the {split} examples\n")
        keep = ("model", *METRIC_COLUMNS[:-1], "num_samples", "seconds")
        keep += ("note",) if any(r.get("note") for r in implicit) else ()
        print(ComparisonTable(rows=implicit, dataset=dataset, shown=keep).to_markdown())


def _job_seconds(row: dict[str, Any]) -> float | None:
    """A row's training plus evaluation seconds (None when nothing ran; a cut fit counts as 0)."""
    if row.get("eval_seconds") is None:
        return None
    train = row.get("train_seconds")
    return (train if train is not None and math.isfinite(train) else 0.0) + row["eval_seconds"]
