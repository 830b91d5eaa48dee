"""Run the jobs of an experiment into a run directory that a re-run continues.

Layout of ``RUN/``::

    config.toml            the config as given (when it came from a file)
    config.resolved.json   the checked config with defaults, and every job
    meta.json              probgen / torch / pyro versions, git hash (if any), start time, command
    jobs/<job>/            checkpoint.safetensors (during the fit, for resuming), model.safetensors
                           (the fitted model), fit.json, history.csv, loss.png, samples.png,
                           inference_data.nc (Bayesian models), result.json (written last), .lock
                           (held by the process running the job, so that no job runs twice at once)
    results.json|csv|md    one row per job and per variant (mean ± sd over seeds)
    report.html            the tables and every figure on one static page (relative image paths)
    plots/                 likelihood.png (bars with error bars, coloured by kind), loss_curves.png
    az_compare.csv         ``arviz.compare`` of the Bayesian models (elpd, standard errors)

A job whose ``result.json`` matches its spec is skipped; a job with a finished fit
(``fit.json``) is only evaluated; a job with a fit checkpoint continues from it
(``probgen.fit(..., resume=True)``). Every file is written atomically (temporary file, then
``os.replace``), so a kill at any moment loses no finished result.

The jobs run one after another in this process, or on a pool of local processes or a Dask
cluster (:mod:`probgen.experiments.executors`): the workers read the data and write their job
folders, this process holds the run directory's lock, schedules and writes the tables.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import logging
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from probgen._checks import first_line
from probgen._io import atomic_path, locked, write_text
from probgen.experiments.jobs import Job, build_job_model, expand_jobs, load_splits
from probgen.experiments.provenance import run_meta
from probgen.experiments.report import write_report
from probgen.experiments.tables import SAMPLE_KEYS, write_reports
from probgen.inference.sample_metrics import METRIC_SAMPLES
from probgen.inference.time_limit import TimeLimit, time_limit
from probgen.models.base import model_labels
from probgen.models.posterior import Posterior
from probgen.progress import progress_bar

__all__ = [
    "run_experiment",
    "run_job",
    "failed_row",
    "TimeLimit",
    "TIME_LIMIT_FIRST",
    "FIT_CHECKPOINT",
    "MODEL_FILE",
]

FIT_CHECKPOINT = "checkpoint.safetensors"
MODEL_FILE = "model.safetensors"
#: where a run's messages go when no ``log`` is given (see :func:`probgen.progress.configure_logging`)
logger = logging.getLogger("probgen.experiments")
#: importance samples (K) for lower-bound models when the config names none (as the CLI)
DEFAULT_K = 1000


#: ``stopped`` of a job whose time limit passed before its first epoch: it has no model to score
TIME_LIMIT_FIRST = "time limit before epoch 1"


def _read_json(path: Path) -> Any:
    with contextlib.suppress(OSError, ValueError):
        return json.loads(path.read_text())
    return None


def _history_csv(history: list[dict[str, Any]]) -> str:
    keys = list(dict.fromkeys(k for h in history for k in h))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=keys)
    writer.writeheader()
    writer.writerows(history)
    return buffer.getvalue()


def _fit(job: Job, model: Any, splits: Any, folder: Path, progress: bool, log: Callable[[str], None]) -> tuple:
    """Fit (or continue fitting) the job's model; return it and what the fit recorded."""
    import probgen as pg

    checkpoint = folder / FIT_CHECKPOINT
    resumed = checkpoint.exists()
    options = {k: v for k, v in job.fit.items() if k != "time_limit"}
    options |= {"seed": job.model_seed, "progress": progress, "val_data": splits.val}
    done_before = len(pg.load_checkpoint(checkpoint).extra.get("history") or []) if resumed else 0
    if resumed:
        log(f"{job.id}: resuming from {checkpoint} ({done_before} epochs done)")
    stopped = None
    try:
        with time_limit(job.fit.get("time_limit")):
            result = pg.fit(model, splits.train, checkpoint=checkpoint, resume=resumed, **options)
        history, best, seconds = result.history, result.best_epoch, result.seconds
        stopped = f"early stop at epoch {len(history)}" if result.stopped_early else None
    except TimeLimit:
        if not checkpoint.exists():  # nothing to score: the row says why, the other jobs go on
            log(f"{job.id}: time limit of {job.fit['time_limit']} s reached before the first epoch finished")
            info = {"history": [], "best_epoch": None, "train_seconds": None, "stopped": TIME_LIMIT_FIRST}
            return None, info | {"resumed_after_epochs": done_before if resumed else None, "strategy": None}
        saved = pg.load_checkpoint(checkpoint)
        model = saved.model
        x, y = splits.train.x[:10_000], None if splits.train.y is None else splits.train.y[:10_000]
        model.after_fit(model.validate(x), model_labels(model, y, len(x)))
        history, best, seconds = list(saved.extra.get("history", [])), int(saved.extra.get("epoch", -1)), math.nan
        stopped = f"time limit at epoch {len(history)}"
        log(f"{job.id}: time limit of {job.fit['time_limit']} s reached: {stopped}; keeping best epoch {best}")
    if history and all("seconds" in h for h in history):
        seconds = sum(h["seconds"] for h in history)  # every epoch's training time, across resumptions
    info = {"history": history, "best_epoch": best, "train_seconds": seconds, "stopped": stopped}
    info |= {"resumed_after_epochs": done_before if resumed else None, "strategy": model.fit_strategy}
    return model, info


def _samples(job: Job, model: Any, train: Any, folder: Path, n: int) -> str | None:
    import pyro

    from probgen.plots import image_grid, scatter_2d

    if n == 0:
        return None
    pyro.set_rng_seed(job.model_seed)
    try:
        x = model.sample(n)
    except (ValueError, TypeError, NotImplementedError):
        return None  # e.g. a conditional model that samples given labels only
    x = x.reshape(n, -1)
    if train.image_shape:
        vmax = model.num_levels - 1 if model.num_levels else None
        title = f"{job.variant}: {n} samples"
        return image_grid(x, train.image_shape, folder / "samples.png", vmax=vmax, title=title).name
    if x.shape[1] == 2:
        return scatter_2d(x, folder / "samples.png", title=job.variant).name
    return None


def _inference_data(model: Any, data: Any, folder: Path) -> str | None:
    """ArviZ InferenceData (netCDF) with pointwise held-out log-likelihoods, for Bayesian models."""
    if model.posterior is None or not model.needs_labels or data.y is None:
        return None
    x = model.validate(data.x)
    idata = model.posterior.to_inference_data(model, x, model_labels(model, data.y, len(x)), num_samples=200)
    path = folder / "inference_data.nc"
    with atomic_path(path) as tmp:
        idata.to_netcdf(str(tmp))
    return path.name


def implicit_metrics(model: Any, data: Any, tune: Any, seed: int) -> dict[str, Any]:
    """The likelihood-free metrics of :func:`~probgen.inference.sample_metrics.sample_metrics`:
    ``METRIC_SAMPLES`` draws (with ``seed``) against the first ``METRIC_SAMPLES`` examples of
    ``data``; the Parzen bandwidth is chosen on ``tune`` (another split; None: no Parzen)."""
    from probgen.inference.sample_metrics import sample_metrics

    val = None if tune is None else tune.x[:METRIC_SAMPLES]
    return sample_metrics(model, data.x[:METRIC_SAMPLES], val=val, num_samples=METRIC_SAMPLES, seed=seed)


def _sample_metrics(job: Job, model: Any, data: Any, splits: Any) -> dict[str, Any]:
    """:func:`implicit_metrics` of a job: tuned on the validation split (on the training split
    when the validation split is the one evaluated, or absent), drawn with the job's seed."""
    tune = splits.val if job.eval["split"] == "test" and splits.val is not None else splits.train
    metrics = implicit_metrics(model, data, tune, job.model_seed)
    return dict.fromkeys(SAMPLE_KEYS) | metrics | {"metric_samples": METRIC_SAMPLES}


def run_job(
    job: Job,
    splits: Any,
    folder: Path,
    *,
    samples: int = 64,
    progress: bool = False,
    log: Callable[[str], None] | None = None,
) -> dict:
    """Fit and evaluate one job in ``folder`` (continuing what a killed run left); return its row.
    Messages go to ``log`` (default: the ``probgen.experiments`` logger at INFO level).

    The job holds ``folder/.lock`` while it runs: a second process given the same job (an
    orphaned worker of a killed run, a Dask task rescheduled from a worker thought dead) is
    refused with :class:`~probgen._io.DirectoryLocked` instead of writing beside it.

    Example:
        >>> import tempfile
        >>> import probgen as pg
        >>> from probgen.experiments import validate_config
        >>> config = validate_config({
        ...     "data": {"name": "digits-binary"}, "fit": {"epochs": 1},
        ...     "models": [{"name": "independent-bernoulli"}],
        ... })
        >>> (job,) = expand_jobs(config)
        >>> splits, folder = load_splits(config["data"]), Path(tempfile.mkdtemp())
        >>> row = run_job(job, splits, folder, samples=0, log=lambda message: None)
        >>> row["kind"], row["split"], row["num_examples"], row["epochs_run"]
        ('exact', 'test', 447, 1)
        >>> -pg.log_likelihood(pg.load(folder / MODEL_FILE), splits.test).nats == row["nll_nats"]  # the saved model
        True
        >>> run_job(job, splits, folder, samples=0, log=print) == row  # finished: read back, not fitted again
        independent-bernoulli-seed=0: finished before, skipped
        True
    """
    log = log or logger.info
    folder.mkdir(parents=True, exist_ok=True)
    with locked(folder):
        spec = job.spec()
        finished = _read_json(folder / "result.json")
        if isinstance(finished, dict) and finished.get("job") == spec:
            log(f"{job.id}: finished before, skipped")
            return finished["row"]
        known = _read_json(folder / "job.json")
        if known is not None and known != spec:
            for stale in (FIT_CHECKPOINT, MODEL_FILE, "fit.json", "result.json"):
                (folder / stale).unlink(missing_ok=True)  # another spec under this name: start it afresh
        write_text(folder / "job.json", json.dumps(spec, indent=1))
        model, info = _fitted(job, splits, folder, progress, log)
        if model is None:  # cut by its time limit before one epoch: a row without numbers, saying so
            row = _row(job, splits, None, info) | _empty_scores()
        else:
            row = _scored(job, splits, folder, model, info, samples)
        write_text(folder / "result.json", json.dumps({"job": spec, "row": row}, indent=1))
        return row


def _fitted(job: Job, splits: Any, folder: Path, progress: bool, log: Callable[[str], None]) -> tuple:
    """The job's model and fit record: loaded when its fit finished before, else fitted (and
    saved with its history and loss curve); the model is None when a time limit left nothing."""
    import pyro

    import probgen as pg
    from probgen.plots import fit_curve

    fitted = _read_json(folder / "fit.json")
    if isinstance(fitted, dict) and (folder / MODEL_FILE).exists():
        log(f"{job.id}: fitted before, evaluating")
        return pg.load(folder / MODEL_FILE), fitted
    pyro.set_rng_seed(job.model_seed)
    model, info = _fit(job, build_job_model(job, splits.train), splits, folder, progress, log)
    if model is None:
        return None, info
    pg.save(model, folder / MODEL_FILE, extra={"job": job.spec()})
    write_text(folder / "history.csv", _history_csv(info["history"]))
    if len(info["history"]) > 1:
        fit_curve(info["history"], folder / "loss.png", strategy=info["strategy"], title=job.variant)
    write_text(folder / "fit.json", json.dumps(info, indent=1))
    return model, info


def _scored(job: Job, splits: Any, folder: Path, model: Any, info: dict[str, Any], samples: int) -> dict[str, Any]:
    """The row of a fitted job: its held-out score (or likelihood-free metrics), samples and
    ArviZ data, each drawn with the job's seed."""
    import pyro

    import probgen as pg

    data = getattr(splits, job.eval["split"])
    row = _row(job, splits, model, info)
    started = time.perf_counter()
    if model.density != "implicit":
        pyro.set_rng_seed(job.model_seed)
        k = job.eval.get("num_samples") or (DEFAULT_K if model.density == "lower_bound" else None)
        score = pg.log_likelihood(model, data, method=job.eval["method"], num_samples=k,
                                  batch_size=job.eval.get("batch_size", 1000))  # fmt: skip
        row |= score.as_dict() | dict.fromkeys(SAMPLE_KEYS) | {"metric_samples": None}
    else:  # no density: likelihood-free metrics in their own columns, the nats column left empty
        row |= {"nll_nats": None, "stderr_nats": None, "bits_per_dim": None, "kind": "implicit"}
        row |= {"method": "sample_metrics", "num_samples": METRIC_SAMPLES} | _sample_metrics(job, model, data, splits)
    row["eval_seconds"] = time.perf_counter() - started
    row["samples_png"] = _samples(job, model, splits.train, folder, samples)
    row["inference_data"] = _inference_data(model, data, folder)
    return row


def _row(job: Job, splits: Any, model: Any, info: dict[str, Any] | None) -> dict[str, Any]:
    """What a job's row says of the job and its fit (``model``, ``info`` None: nothing fitted)."""
    info = info or {"history": [], "best_epoch": None, "train_seconds": None, "stopped": None}
    row: dict[str, Any] = {"job": job.id, "model": job.variant, "name": job.name, "seed": job.seed}
    row |= {"model_seed": job.model_seed, "split": job.eval["split"]}
    row |= {"num_examples": len(getattr(splits, job.eval["split"]) or ())}
    row |= {"num_params": None if model is None else num_params(model)}
    row |= {"epochs_run": len(info["history"]), "best_epoch": info["best_epoch"], "stopped": info["stopped"]}
    return row | {"train_seconds": info["train_seconds"], "error": None}


def num_params(model: Any) -> int:
    """The values a fit learned: a Bayesian model's global parameters theta (one draw of its
    posterior: a closed-form or NUTS posterior holds no torch parameters, a variational one two
    per value), else the model's torch parameters."""
    if isinstance(model.posterior, Posterior):
        return sum(value[0].numel() for value in model.posterior.draws(model, 1).values())
    return sum(p.numel() for p in model.parameters())


def _empty_scores() -> dict[str, Any]:
    row = {"nll_nats": None, "stderr_nats": None, "bits_per_dim": None, "kind": None, "method": None}
    row |= {"diagnostic": None, "num_samples": None, "metric_samples": None, "eval_seconds": None, "samples_png": None}
    return row | dict.fromkeys(SAMPLE_KEYS) | {"inference_data": None}


def failed_row(job: Job, splits: Any, err: BaseException) -> dict[str, Any]:
    """The row of a job that raised: no numbers, its error in one line (the run goes on, and the
    same command retries the job, since no ``result.json`` is written)."""

    return _row(job, splits, None, None) | _empty_scores() | {"error": f"{type(err).__name__}: {first_line(err)}"}


def _check_run_dir(out: Path, config: dict[str, Any]) -> None:
    previous = _read_json(out / "config.resolved.json")
    if isinstance(previous, dict) and previous.get("data") != json.loads(json.dumps(config["data"])):
        raise ValueError(
            f"run directory {str(out)!r} was made for other data ({json.dumps(previous.get('data'))}); "
            "expected the same [data] to continue it, or another --out"
        )


def run_experiment(
    config: dict[str, Any],
    out: str | Path,
    *,
    config_text: str | None = None,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
    executor: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Run every job of a checked config (see :func:`~probgen.experiments.validate_config`) in
    ``out``, skipping finished jobs and continuing interrupted ones; write the tables, plots and
    ``report.html``.

    ``executor`` (default: the config's ``[executor]`` table, else one job after another here)
    says where the jobs run, e.g. ``{"jobs": 4}`` (four local worker processes) or ``{"kind":
    "dask", "scheduler": "tcp://host:8786"}``; see
    :func:`~probgen.experiments.executors.make_executor`. Each job's numbers depend only on its
    config (``threads`` included: torch's threads per job, default 1, whatever this machine's
    cores) and seed, so every executor and every machine writes the same ``results.json`` numbers.

    With ``progress``, an overall bar counts the jobs (with an ETA; with workers, also how many
    run and how many failed) above each job's fit bar when they run here; without, no bar at
    all. Messages go to ``log`` (default: the ``probgen.experiments`` logger at INFO level, see
    :func:`probgen.progress.configure_logging`).

    Returns:
        ``{"jobs": rows, "summary": rows per variant, "files": paths written at the top level}``.

    Example:
        >>> import tempfile
        >>> from probgen.experiments import validate_config
        >>> config = validate_config({
        ...     "data": {"name": "digits-binary"}, "fit": {"epochs": 1}, "samples": 0,
        ...     "models": [{"name": "independent-bernoulli"}],
        ... })
        >>> out = Path(tempfile.mkdtemp())
        >>> result = run_experiment(config, out, progress=False, log=lambda message: None)
        >>> [row["job"] for row in result["jobs"]], result["summary"][0]["kind"]
        (['independent-bernoulli-seed=0'], 'exact')
        >>> sorted(path.name for path in out.iterdir() if not path.name.startswith("."))
        ['config.resolved.json', 'jobs', 'meta.json', 'plots', 'report.html',
         'results.csv', 'results.json', 'results.md']
        >>> json.loads((out / "results.json").read_text())["jobs"] == result["jobs"]
        True
    """
    from probgen.experiments.executors import make_executor

    log, out = log or logger.info, Path(out)
    out.mkdir(parents=True, exist_ok=True)
    jobs = expand_jobs(config)
    pool = make_executor(config.get("executor") if executor is None else executor)  # refuses bad specs first
    with locked(out):
        return _run_locked(out, config, jobs, pool, config_text, progress, log)


def _run_locked(
    out: Path, config: dict, jobs: list[Job], pool: Any, config_text: str | None, progress: bool, log: Any
) -> dict[str, Any]:
    """The run itself, holding the run directory's lock: the header files, every job, the tables."""
    _check_run_dir(out, config)
    files = _write_header(out, config, jobs, config_text, pool)
    splits = load_splits(config["data"])
    log(splits.describe())
    with progress_bar(total=len(jobs), desc=f"run {config['name']}", disable=not progress) as overall:
        if pool is None:
            rows = _run_here(jobs, config, splits, out, overall, progress, log)
        else:
            rows = _run_on(pool, jobs, config, splits, out, overall, log)
    summary, written = write_reports(out, rows, final=True)
    files += [out / "jobs", *written, write_report(out)]
    return {"jobs": rows, "summary": summary, "files": files}


def _write_header(out: Path, config: dict, jobs: list[Job], config_text: str | None, pool: Any) -> list[Path]:
    """The run's config as given, the resolved config with every job, and meta.json."""
    files = []
    if config_text is not None:
        files.append(write_text(out / "config.toml", config_text))
    # what is computed, not where: a run continued on another executor has the same file
    what = {k: v for k, v in config.items() if k != "executor"}
    resolved = json.loads(json.dumps(what)) | {"jobs": [j.spec() for j in jobs]}
    files.append(write_text(out / "config.resolved.json", json.dumps(resolved, indent=1)))
    meta = run_meta() | {"threads": config["threads"]}
    meta |= {} if pool is None else {"executor": pool.describe()}
    files.append(write_text(out / "meta.json", json.dumps(meta, indent=1)))
    return files


def _run_here(jobs: list[Job], config: dict, splits: Any, out: Path, overall: Any, progress: bool, log: Any) -> list:
    """The serial run: one job after another in this process, each with its fit's bar."""
    from probgen.experiments.executors import pinned_threads

    rows = []
    for i, job in enumerate(jobs):
        log(f"[{i + 1}/{len(jobs)}] {job.id}")
        try:
            with pinned_threads(config["threads"]):
                row = run_job(job, splits, out / "jobs" / job.id, samples=config["samples"], progress=progress, log=log)
        except Exception as err:  # noqa: BLE001 - one job's failure never loses the others
            row = failed_row(job, splits, err)
            log(f"{job.id}: failed: {row['error']}")
        rows.append(row)
        write_reports(out, rows, final=False)
        overall.set_postfix(done=job.id)
        overall.update(1)
    return rows


def _run_on(pool: Any, jobs: list[Job], config: dict, splits: Any, out: Path, overall: Any, log: Any) -> list:
    """Jobs on workers: rows arrive as jobs finish, each job's messages with it; the tables are
    rewritten after each, rows in the config's job order (as a serial run orders them)."""
    from probgen.experiments.executors import JobTask

    task = JobTask.of(config, out, jobs, run_job, failed_row)
    by_id, failed = {}, 0
    log(f"running {len(jobs)} job(s) on {pool.describe()['where']}, {task.threads} torch thread(s) per job")
    for done in pool.results(jobs, task):
        for line in done.lines:
            log(line)
        if not done.final:
            continue
        row = done.row if done.error is None else failed_row(done.job, splits, done.error)
        if done.error is not None:
            log(f"{done.job.id}: failed: {row['error']}")
        failed += bool(row.get("error"))
        by_id[done.job.id] = row
        log(f"[{len(by_id)}/{len(jobs)}] {done.job.id} done")
        write_reports(out, [by_id[j.id] for j in jobs if j.id in by_id], final=False)
        overall.set_postfix(running=pool.running, failed=failed)
        overall.update(1)
    return [by_id[j.id] for j in jobs]
