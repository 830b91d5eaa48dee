"""``probgen eval CHECKPOINT``: the held-out score of a fitted model, on the split it was fitted
with (re-created from what the checkpoint records) or on other data."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from probgen.cli.common import UsageError, check_device, load_checkpoint
from probgen.cli.data_options import load, splits
from probgen.cli.scoring import samples_for, scorable, score_implicit

__all__ = ["run", "same_shape"]


def _given_data(args: argparse.Namespace) -> tuple[Any, str]:
    """``--data`` (a bundled name or a file) and the name of the part scored."""
    from probgen.data import get_data
    from probgen.data.parts import is_file_source

    if is_file_source(args.data):
        if args.split not in (None, "all"):
            raise UsageError(
                f"--split {args.split} picks a part of a bundled dataset or of the checkpoint's own data; "
                f"--data {args.data!r} is scored whole (use --split all or leave it out)"
            )
        return load(args.data, args.labels), "all"
    if args.labels is not None:
        raise UsageError(f"--labels applies to a data file; dataset {args.data!r} has its own labels")
    split = args.split or "test"
    return get_data(args.data, split), split


def _eval_data(args: argparse.Namespace, info: dict[str, Any]) -> tuple[Any, str]:
    """The data ``eval`` scores and the name of its split."""
    from probgen.data import get_data
    from probgen.data.parts import is_file_source

    if args.data is not None:
        return _given_data(args)
    if args.labels is not None:
        raise UsageError("--labels goes with --data FILE")
    split = args.split or "test"
    spec = info.get("split")
    if isinstance(spec, dict) and "data" in spec:
        if split == "all":
            if spec.get("file"):
                return load(spec["data"], spec.get("labels"), label_column=spec.get("label_column")), "all"
            return get_data(spec["data"], "all"), "all"
        data = dict(splits(spec).parts()).get(split)
        if data is None:
            raise UsageError(f"the checkpoint's run held out no {split} split; choose another --split")
        return data, split
    source = info.get("data")
    if source is None:
        raise UsageError("the checkpoint does not name its data; pass --data NAME|FILE")
    if is_file_source(source):
        print("probgen: warning: the checkpoint does not record its split; scoring the whole file", file=sys.stderr)
        return load(source, None), "all"
    return get_data(source, split), split


def same_shape(model: Any, data: Any) -> None:
    """A UsageError when ``data``'s examples are not of the model's shape."""
    if tuple(data.event_shape) != tuple(model.event_shape):
        raise UsageError(
            f"data {data.name!r} has examples of shape {tuple(data.event_shape)}; the checkpoint's "
            f"{model.name} expects {tuple(model.event_shape)}"
        )


def _eval_implicit(args: argparse.Namespace, model: Any, data: Any, split: str, info: dict[str, Any]) -> None:
    """No likelihood: the likelihood-free metrics, tuned on the training part."""
    tune = None
    if args.data is None and isinstance(info.get("split"), dict) and split in ("val", "test"):
        parts = dict(splits(info["split"]).parts())
        tune = parts.get("val") if split == "test" and parts.get("val") is not None else parts["train"]
    print(f"{data.name} [{split}], {len(data)} examples")
    scored = score_implicit(model, data, split, tune, seed=0)
    if args.json:
        print(json.dumps({"data": data.name, **scored}))


def run(args: argparse.Namespace) -> None:
    """The command."""
    checkpoint, info, path = load_checkpoint(args.checkpoint, check_device(args.device))
    model = checkpoint.model
    if not info.get("history"):
        print(
            f"probgen: warning: {path} records no fit (no training history): scoring an untrained model",
            file=sys.stderr,
        )
    data, split = _eval_data(args, info)
    same_shape(model, data)
    if not scorable(model):
        _eval_implicit(args, model, data, split, info)
        return
    import probgen as pg

    score = pg.log_likelihood(model, data, num_samples=samples_for(model, args.num_samples), dtype=args.dtype)
    print(f"{data.name} [{split}], {score.num_examples} examples")
    print(f"{split} NLL {score.nll:.4f} nats/example (± {score.stderr:.4f})")
    print(
        f"{split} {score.bits_per_dim:.4f} bits/dim, kind={score.kind}, method={score.method}, "
        f"samples={score.num_samples}"
    )
    _print_accuracy(model, data, split)
    if args.json:
        print(json.dumps({"split": split, "data": data.name, **score.as_dict()}))


def _print_accuracy(model: Any, data: Any, split: str) -> None:
    """A classifier's accuracy on labelled data."""
    from probgen.models import GenerativeClassifier

    if not isinstance(model, GenerativeClassifier) or data.y is None:
        return
    import torch

    with torch.no_grad():
        predicted = model.predict(data.x.to(model.device, model.dtype))
    accuracy = (predicted.cpu() == data.y).double().mean().item()
    print(f"{split} accuracy {accuracy:.4f} ({int(round(accuracy * len(data)))}/{len(data)})")
