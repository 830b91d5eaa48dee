"""``probgen run CONFIG.toml``: check the whole config, then run (or continue) its jobs into ``--out``,
one after another here, on ``--jobs N`` local worker processes, or on a Dask cluster."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from probgen.cli.common import UsageError, wrote

__all__ = ["DRY_RUN_SHOWN", "executor_spec", "run"]

#: ``run --dry-run`` lists this many jobs, then says how many more there are
DRY_RUN_SHOWN = 50


def executor_spec(args: argparse.Namespace, config: dict[str, Any]) -> dict[str, Any]:
    """Where the jobs run: the config's ``[executor]`` with the command line's flags over it
    (``--scheduler`` implies ``--executor dask``; ``--executor local`` drops the config's scheduler)."""
    spec = dict(config.get("executor") or {})
    if args.executor is not None and args.executor != spec.get("kind", "local"):
        spec = {k: v for k, v in spec.items() if k == "retries"} | {"kind": args.executor}
    if args.scheduler is not None:
        if args.executor == "local":
            raise UsageError(f"--scheduler {args.scheduler!r} with --executor local: expected --executor dask with it")
        spec |= {"kind": "dask", "scheduler": args.scheduler}
        spec.pop("jobs", None)
    if args.jobs is not None:
        if spec.get("scheduler") is not None:
            raise UsageError(
                f"--jobs {args.jobs} with the Dask scheduler {spec['scheduler']!r}: expected one of them "
                "(--jobs sizes a local pool or LocalCluster; a scheduler's cluster has its own workers)"
            )
        spec["jobs"] = args.jobs
    if args.retries is not None:
        spec["retries"] = args.retries
    return spec


def run(args: argparse.Namespace) -> int:
    """The command; exit status 1 when a job failed (the tables hold every other job)."""
    from probgen.experiments import expand_jobs, load_config, run_experiment, validate_config
    from probgen.experiments.jobs import count_jobs
    from probgen.experiments.tables import summary_markdown

    path = Path(args.config)
    config = validate_config(load_config(path), base=path.resolve().parent, source=str(path))
    for table, key in (("fit", "epochs"), ("fit", "time_limit"), ("eval", "num_samples")):
        value = getattr(args, key)
        if value is not None:  # a budget for this invocation (smoke tests, quick looks)
            config[table][key] = value
            for entry in config["models"]:
                entry[table].pop(key, None)
    if args.seeds is not None:
        config["seeds"] = list(dict.fromkeys(args.seeds))
    if args.threads is not None:
        config["threads"] = args.threads
    out = Path(args.out or Path("runs") / config["name"])
    print(f"{path}: {count_jobs(config)} job(s) -> {out}", flush=True)
    jobs = expand_jobs(config)
    if args.dry_run:
        for job in jobs[:DRY_RUN_SHOWN]:
            print(f"  {job.id}: {job.name} {json.dumps(job.args)} seed {job.seed} (model seed {job.model_seed})")
        if len(jobs) > DRY_RUN_SHOWN:
            print(f"  ... and {len(jobs) - DRY_RUN_SHOWN} more")
        return 0
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {str(out)!r} is an existing file; expected a directory (it is created if missing)")
    from probgen.experiments.executors import DASK_INSTALL, DaskMissing, make_executor

    spec = executor_spec(args, config)
    try:
        make_executor(spec)  # refuses a bad spec, or Dask missing, before the run directory is touched
    except DaskMissing:
        raise UsageError(f"--executor dask needs Dask, which is not installed: {DASK_INSTALL}") from None
    except ValueError as err:
        raise UsageError(str(err)) from None
    log = (lambda line: None) if args.quiet else print
    text = path.read_text(encoding="utf-8")
    done = run_experiment(config, out, config_text=text, progress=not args.quiet, log=log, executor=spec)
    print(summary_markdown(done["summary"]))
    for file in done["files"]:
        wrote(file)
    failed = [r for r in done["jobs"] if r.get("error")]
    for row in failed:  # the same command retries these
        print(f"probgen: error: {row['job']}: {row['error']}", file=sys.stderr)
    return 1 if failed else 0
