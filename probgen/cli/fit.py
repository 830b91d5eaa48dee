"""``probgen fit MODEL --data ... --out DIR``: fit, score the held-out parts, save the checkpoint.

``--out`` holds the checkpoint, its run record (``run.json``, written before training so that a
killed fit can be resumed and evaluated), ``history.json``, ``scores.json`` and the loss curve.
A directory that holds another fit is never replaced silently (``--overwrite``, ``--resume``).

``--tensorboard DIR`` writes a TensorBoard run directory (a scalar per epoch for each number of
``history.json``, a sample grid at the end); ``--mlflow [URI]`` logs an MLflow run (parameters,
the same metrics, the held-out scores, and the checkpoint, history, scores and loss curve as
artifacts) to URI or MLflow's default local store (:mod:`probgen.inference.tracking`).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from probgen._io import write_text
from probgen.cli.common import (
    RUN_FILE,
    OptimizerState,
    UsageError,
    check_device,
    fit_kwargs,
    load_checkpoint,
    locked,
    output_dir,
    wrote,
)
from probgen.cli.data_options import data_spec, splits
from probgen.cli.launcher import check_nproc, launch, launched_rank
from probgen.cli.model_args import build, check_model_names, parse_model_args
from probgen.cli.scoring import implicit_scores, scorable, score
from probgen.progress import format_seconds

__all__ = ["run"]


def run(args: argparse.Namespace) -> int | None:
    """The command: one process, ``--nproc`` local ranks, or one rank of a distributed fit."""
    rank, world = launched_rank()
    if args.nproc > 1 and world == 1:
        check_device(args.device)
        check_nproc(args.nproc, args.device)
        return launch(args)
    if world == 1:
        return _fit(args, rank=0, distributed=False)
    try:  # a rank of a distributed fit: rank 0 alone prints and writes
        with contextlib.redirect_stdout(open(os.devnull, "w")) if rank else contextlib.nullcontext():
            return _fit(args, rank=rank, distributed=True)
    finally:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()


@contextlib.contextmanager
def _rank_output(path: str, main: bool) -> Iterator[Path]:
    """``--out``, created and locked by rank 0; the other ranks only read from it."""
    if not main:
        yield Path(path)
        return
    with output_dir(path) as out, locked(out):
        yield out


def _refuse_overwrite(out: Path, flag_value: str) -> None:
    """A UsageError if ``out`` holds a fit (its checkpoint or run record): it is never replaced
    silently; ``--overwrite`` replaces it, ``--resume`` continues it."""
    from probgen.checkpoint import CHECKPOINT_NAME

    if not ((out / CHECKPOINT_NAME).exists() or (out / RUN_FILE).exists()):
        return
    what = "a fit"
    with contextlib.suppress(OSError, ValueError, UnicodeDecodeError, KeyError, TypeError):
        record = json.loads((out / RUN_FILE).read_text())
        what = f"a fit of {record['model']} on {record['data']}"
    raise UsageError(
        f"--out {flag_value!r} already holds {what}; pass --overwrite to replace it, --resume to continue it, "
        "or choose another --out"
    )


def _resume(args: argparse.Namespace, out: Path, record: dict[str, Any]) -> bool:
    """Whether to continue the fit in ``out`` (``--resume`` and a checkpoint of the same model
    and data); a UsageError when it is of another model or other data."""
    from probgen.checkpoint import CHECKPOINT_NAME

    ckpt = out / CHECKPOINT_NAME
    if not ckpt.exists():
        print(f"nothing to resume in {out}: starting from epoch 0")
        return False
    previous, info, _ = load_checkpoint(str(out))
    if previous.model.name != args.model:
        raise UsageError(f"--resume: the checkpoint in {args.out!r} is a {previous.model.name}, not {args.model}")
    before = info.get("split")
    if before is not None and before != record["split"]:
        raise UsageError(
            f"--resume: the checkpoint in {args.out!r} was fitted on other data or another split "
            f"({before.get('data')}); resume with the same data options"
        )
    print(f"resuming from {ckpt} (epochs done at its best epoch: {len(info.get('history', []))})")
    return True


def _fit(args: argparse.Namespace, rank: int, distributed: bool) -> None:
    import pyro

    import probgen as pg
    from probgen.data.parts import spec_for_record
    from probgen.models import MODELS

    main_rank = rank == 0
    check_model_names([args.model])
    model_args = parse_model_args(args.model_args, args.model)
    check_device(args.device)
    spec = data_spec(args, args.data)
    options = fit_kwargs(args, MODELS[args.model].fit_defaults)
    options |= {"dtype": args.dtype, "precision": args.precision, "distributed": distributed}
    parts = splits(spec)
    print(parts.describe())
    train = parts.train
    trackers = _trackers(args, train, spec_for_record(parts)) if main_rank else []  # before --out is made
    options["callbacks"] = trackers
    pyro.set_rng_seed(options.get("seed", 0))
    model = build(args.model, train, model_args)  # before the output folder: bad model args leave none
    with _rank_output(args.out, main_rank) as out:
        ckpt = out / pg.checkpoint.CHECKPOINT_NAME
        record = {"model": args.model, "model_args": model_args, "split": spec_for_record(parts)}
        record |= {"data": spec["data"], "image_shape": list(train.image_shape) if train.image_shape else None}
        if main_rank and not (args.resume or args.overwrite):
            _refuse_overwrite(out, args.out)
        resume = args.resume and _resume(args, out, record)
        if main_rank:
            wrote(write_text(out / RUN_FILE, json.dumps(record, indent=1)))
        result = pg.fit(model, train, val_data=parts.val, checkpoint=ckpt, resume=resume, **options)
        stored = pg.load_checkpoint(ckpt) if ckpt.exists() and main_rank else None
        extra = {**(stored.extra if stored is not None else {}), **record}
        extra |= {"best_epoch": result.best_epoch, "epochs_run": len(result.history)}
        extra.setdefault("history", result.history)
        optimizer = OptimizerState(stored.optimizer_state) if stored and stored.optimizer_state else None
        _say_fitted(args.model, model.fit_strategy, train, result, parts.val is not None, options.get("patience"))
        extra["scores"] = _scores(model, parts, args.num_samples, distributed, main_rank)
        if main_rank:
            pg.save(model, ckpt, optimizer=optimizer, extra=extra)
            wrote(ckpt)
            _write_outputs(out, args.model, model.fit_strategy, train.name, result.history, extra["scores"])
            _track_outputs(trackers, out, extra["scores"])


def _trackers(args: argparse.Namespace, train: Any, split: dict[str, Any]) -> list[Any]:
    """The callbacks ``--tensorboard DIR`` and ``--mlflow [URI]`` ask for (read with getattr: a
    parser without the flags asks for none); a missing extra is a UsageError saying what to install."""
    from probgen.inference.tracking import MissingExtraError, MLflow, TensorBoard

    board, store = getattr(args, "tensorboard", None), getattr(args, "mlflow", None)
    trackers: list[Any] = []
    try:
        if board is not None:
            trackers.append(TensorBoard(board, image_shape=train.image_shape))
        if store is not None:  # "" or True: the flag without a URI, MLflow's default store
            uri = store if isinstance(store, str) and store else None
            params = {"data": split, "model_args": args.model_args or "{}", "out": str(args.out)}
            trackers.append(MLflow(uri, experiment="probgen", run_name=Path(args.out).name, params=params))
    except MissingExtraError as err:
        raise UsageError(str(err)) from None
    return trackers


def _track_outputs(trackers: list[Any], out: Path, scores: list[dict]) -> None:
    """Add what is written after the fit to the MLflow run: the held-out scores as metrics
    (``test_nll_nats``, ...), and the checkpoint (now with its scores), history, scores, run record
    and loss curve as artifacts."""
    from probgen.checkpoint import CHECKPOINT_NAME
    from probgen.inference.tracking import MLflow

    for tracker in trackers:
        if not isinstance(tracker, MLflow):
            continue
        numbers = {
            f"{row['split']}_{key}": float(value)
            for row in scores
            for key, value in row.items()
            if isinstance(value, int | float) and not isinstance(value, bool)
        }
        tracker.log_metrics(numbers)
        for name in (CHECKPOINT_NAME, "history.json", "scores.json", RUN_FILE, "loss.png"):
            if (out / name).is_file():
                tracker.log_artifact(out / name)


def _say_fitted(name: str, strategy: str, train: Any, result: Any, has_val: bool, patience: int | None) -> None:
    """One line: what was fitted, on what, how long it took and how it stopped."""
    where = f"fitted {name} on {train.name} [train, {len(train)} examples]"
    if strategy != "svi":
        what = "closed form (exact conjugate posterior, no optimisation)" if strategy == "closed_form" else strategy
        print(f"{where} in {what} in {format_seconds(result.seconds)}")
        return
    on = "val loss" if has_val else "train loss"
    last = result.history[-1]["epoch"] if result.history else 0
    stop = f"; stopped early at epoch {last}: no better {on} for {patience} epochs" if result.stopped_early else ""
    print(
        f"{where} in {format_seconds(result.seconds)}: {len(result.history)} epochs, "
        f"best epoch {result.best_epoch} by {on}{stop}"
    )


def _scores(model: Any, parts: Any, num_samples: int | None, distributed: bool, main_rank: bool) -> list[dict]:
    """The held-out scores (and the training part's, where the likelihood is exact)."""
    if scorable(model):
        held_out = parts.parts() if model.density == "exact" else [p for p in parts.parts() if p[0] != "train"]
        return [score(model, data, name, num_samples, distributed) for name, data in held_out]
    if main_rank:  # no likelihood: the likelihood-free metrics that `probgen run` reports
        return implicit_scores(model, parts, seed=0)  # the draws `probgen eval` makes again
    return []


def _write_outputs(out: Path, name: str, strategy: str, data: str, history: list, scores: list) -> None:
    """``history.json``, ``scores.json`` and the loss curve (removed when a refit has none)."""
    wrote(write_text(out / "history.json", json.dumps(history, indent=1)))
    wrote(write_text(out / "scores.json", json.dumps(scores, indent=1)))
    if len(history) > 1 and all("train_loss" in h for h in history):
        from probgen.plots import fit_curve

        wrote(fit_curve(history, out / "loss.png", strategy=strategy, title=f"{name} on {data}"))
        return
    stale = out / "loss.png"
    if stale.exists():
        stale.unlink()
    how = {"closed_form": "in closed form", "nuts": "by NUTS"}.get(strategy, f"for {len(history)} epoch")
    print(f"no loss curve: {name} was fitted {how}")
