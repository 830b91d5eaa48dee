"""Wall time of a 12-job sweep (``probgen run``) serially, on 2 local worker processes
(``--jobs 2``) and on a 2-worker Dask ``LocalCluster``; the speed-up over the serial run and
each executor's overhead per job.

    python benchmarks/sweeps.py [--epochs 60] [--jobs 2]

The jobs are compute-bound: a VAE with two hidden layers of 400 units on binarized digits, 4
seeds x 3 values of beta, 60 epochs (about 4 s per job here), one torch thread per job (the
serial run too, so that the three runs do the same arithmetic and give the same numbers, which
the script checks). The overhead per job is ``(wall x workers - serial wall) / jobs``: the
worker time not spent on the jobs themselves (starting the workers and importing torch there,
reading the data once per worker, idle tails): about 3.5 s per worker here, which a sweep of
shorter jobs pays in a larger share (at 15 epochs the speed-up with ``--jobs 2`` was 1.32x). The
jobs' own fit and evaluation time (summed over jobs) shows whether they ran slower than in the
serial run: on a machine shared with other work, fewer cores are free than the workers need, and
the speed-up falls short of what free cores give.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import warnings
from pathlib import Path

import torch

CONFIG = """
name = "sweep-benchmark"
seeds = [0, 1, 2, 3]
samples = 0
[data]
name = "digits-binary"
[fit]
epochs = {epochs}
batch_size = 100
[eval]
num_samples = 50
[[models]]
name = "vae"
args = {{ hidden_features = [400, 400], latent_dim = 8 }}
grid = {{ beta = [0.5, 1.0, 2.0] }}
"""

TIMES = ("train_seconds", "eval_seconds")


def _run(config: dict, out: Path, executor: dict) -> tuple[float, list]:
    from probgen.experiments import run_experiment

    started = time.perf_counter()
    done = run_experiment(config, out, progress=False, log=lambda _: None, executor=executor)
    wall = time.perf_counter() - started
    busy = sum(sum(row[k] or 0.0 for k in TIMES) for row in done["jobs"])
    return wall, busy, [{k: v for k, v in row.items() if k not in TIMES} for row in done["jobs"]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore", category=UserWarning)  # k-hat of short fits: not the point here
    from probgen.experiments import validate_config
    from probgen.experiments.config import tomllib

    config = validate_config(tomllib.loads(CONFIG.format(epochs=args.epochs)))
    executors = {"serial": {}, f"--jobs {args.jobs}": {"jobs": args.jobs}}
    try:
        import distributed  # noqa: F401

        executors[f"Dask LocalCluster({args.jobs})"] = {"kind": "dask", "jobs": args.jobs}
    except ImportError:
        print('(no Dask: pip install -e ".[dask]" to time its LocalCluster)')
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for i, (label, spec) in enumerate(executors.items()):
            results[label] = _run(config, Path(tmp) / str(i), spec)
    serial, _, reference = results["serial"]
    jobs = len(reference)
    print(f"{jobs} jobs: vae hidden (400, 400), {args.epochs} epochs on digits-binary, 1 thread per job")
    print("| executor | wall (s) | speed-up | overhead per job (s) | jobs' own fit+eval time (s) | same numbers |")
    print("|---|---|---|---|---|---|")
    for label, (wall, busy, rows) in results.items():
        workers = 1 if label == "serial" else args.jobs
        overhead = (wall * workers - serial) / jobs
        same = rows == reference
        print(f"| {label} | {wall:.1f} | {serial / wall:.2f}x | {overhead:+.2f} | {busy:.1f} | {same} |")
    print(json.dumps({label: round(wall, 2) for label, (wall, _, _) in results.items()}))


if __name__ == "__main__":  # spawned workers import this file: run only as a script
    main()
