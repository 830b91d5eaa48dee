"""The ``probgen`` command: list, fit, eval, sample and compare from the shell.

Every user error prints one line ``probgen: error: ...`` and exits with status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["main"]

FIT_KEYS = ("epochs", "batch_size", "lr", "seed", "objective", "patience", "device", "lr_decay")


class UsageError(ValueError):
    """A bad command line."""


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def _add_fit_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--epochs", type=_positive_int, help="passes over the training data")
    p.add_argument("--batch-size", type=_positive_int, help="minibatch size")
    p.add_argument("--lr", type=_positive_float, help="learning rate")
    p.add_argument("--lr-decay", type=_positive_float, help="learning-rate factor per epoch")
    p.add_argument("--patience", type=_positive_int, help="early-stopping patience (epochs)")
    p.add_argument("--objective", help="elbo | analytic_kl | ...")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--device", default=None, help="cpu or cuda")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def _fit_kwargs(args: argparse.Namespace, defaults: dict[str, Any]) -> dict[str, Any]:
    kwargs = dict(defaults)
    for key in FIT_KEYS:
        value = getattr(args, key, None)
        if value is not None:
            kwargs[key] = value
    kwargs["progress"] = not args.quiet
    return kwargs


def _splits(source: str) -> tuple[Any, Any, Any]:
    """(train, val, test) for a dataset name; (file, None, file) for a user file."""
    from probgen.data import get_data

    train = get_data(source, "train")
    if train.name != source.replace("_", "-") and Path(source).exists():
        return train, None, train
    return train, get_data(source, "val"), get_data(source, "test")


def _cmd_list(args: argparse.Namespace) -> None:
    from probgen.data import DATASETS
    from probgen.models import MODELS

    print("models:")
    for name, spec in sorted(MODELS.items()):
        print(f"  {name:26s} {'/'.join(spec.cls.supports):22s} {spec.description}")
    print("datasets:")
    for name, text in DATASETS.items():
        print(f"  {name:26s} {text}")


def _cmd_fit(args: argparse.Namespace) -> None:
    import probgen as pg
    from probgen.models import MODELS, build_model
    from probgen.plots import loss_curve

    if args.model not in MODELS:
        raise UsageError(f"unknown model {args.model!r}; expected one of {sorted(MODELS)}")
    train, val, test = _splits(args.data)
    model = build_model(args.model, train, **json.loads(args.model_args or "{}"))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    ckpt = out / pg.checkpoint.CHECKPOINT_NAME
    kwargs = _fit_kwargs(args, MODELS[args.model].fit_defaults)
    result = pg.fit(model, train, val_data=val, checkpoint=ckpt, **kwargs)
    extra = {
        "data": args.data,
        "image_shape": list(train.image_shape) if train.image_shape else None,
        "history": result.history,
        "best_epoch": result.best_epoch,
    }
    pg.save(model, ckpt, extra=extra)
    (out / "history.json").write_text(json.dumps(result.history, indent=1))
    loss_curve(result.history, out / "loss.png", title=f"{args.model} on {train.name}")
    score = None
    if model.density != "implicit":
        score = pg.log_likelihood(model, test, num_samples=1000 if model.density == "lower_bound" else None)
    print(
        f"fitted {args.model} on {train.name} ({len(train)} examples) in {result.seconds:.1f}s, "
        f"best epoch {result.best_epoch}"
    )
    if score is not None:
        print(f"{'test' if val is not None else 'train'}: {score}")
    print(f"saved {ckpt}")


def _cmd_eval(args: argparse.Namespace) -> None:
    import probgen as pg

    checkpoint = pg.load_checkpoint(args.checkpoint)
    source = args.data or checkpoint.extra.get("data")
    if source is None:
        raise UsageError("the checkpoint does not name its data; pass --data NAME|FILE")
    from probgen.data import get_data

    data = get_data(source, args.split)
    model = checkpoint.model
    if model.density == "implicit":
        raise UsageError(f"{model.name} is an implicit model: it has no likelihood to evaluate")
    num_samples = args.num_samples or (1000 if model.density == "lower_bound" else None)
    score = pg.log_likelihood(model, data, num_samples=num_samples)
    print(f"{data.name} [{args.split}], {score.num_examples} examples")
    print(f"NLL {score.nll:.4f} nats/example (± {score.stderr:.4f})")
    print(f"{score.bits_per_dim:.4f} bits/dim, kind={score.kind}, method={score.method}, samples={score.num_samples}")
    if hasattr(checkpoint.model, "predict") and data.y is not None:
        import torch

        with torch.no_grad():
            predicted = checkpoint.model.predict(data.x)
        accuracy = (predicted.cpu() == data.y).double().mean().item()
        print(f"accuracy {accuracy:.4f} ({int(round(accuracy * len(data)))}/{len(data)})")


def _cmd_sample(args: argparse.Namespace) -> None:
    import numpy as np

    import probgen as pg
    from probgen.plots import image_grid, scatter_2d

    checkpoint = pg.load_checkpoint(args.checkpoint)
    model = checkpoint.model
    if args.seed is not None:
        import pyro

        pyro.set_rng_seed(args.seed)
    x = model.sample(args.n)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".npy":
        np.save(out, x.detach().cpu().numpy())
    elif out.suffix == ".png":
        shape = checkpoint.extra.get("image_shape")
        if shape:
            image_grid(x, shape, out, vmax=model.num_levels - 1 if model.num_levels else None)
        elif model.num_dims == 2:
            scatter_2d(x, out, title=model.name)
        else:
            raise UsageError(f"cannot draw {model.num_dims}-D non-image samples as PNG; use .npy")
    else:
        raise UsageError(f"--out must end in .png or .npy, got {out.name!r}")
    print(f"wrote {args.n} samples to {out}")


def _cmd_compare(args: argparse.Namespace) -> None:
    import probgen as pg
    from probgen.models import MODELS, build_model

    names = args.models or sorted(MODELS)
    unknown = [n for n in names if n not in MODELS]
    if unknown:
        raise UsageError(f"unknown model(s) {unknown}; expected some of {sorted(MODELS)}")
    out = Path(args.out) if args.out else None
    for source in args.data or ["digits"]:
        train, val, test = _splits(source)
        import pyro

        built = {}
        for n in names:
            if MODELS[n].suits(train.support, train.y is not None):
                pyro.set_rng_seed(args.seed)  # initial weights do not depend on the other models
                built[n] = build_model(n, train)
        # one table of log p(x): no implicit or unnormalized models, no conditional log p(x | y)
        chosen = {n: m for n, m in built.items() if m.density not in ("implicit", "unnormalized") and not m.conditional}
        if not chosen:
            raise UsageError(f"no registered model suits {train.name!r} ({train.support})")
        rows = []
        for name, model in chosen.items():
            kwargs = _fit_kwargs(args, MODELS[name].fit_defaults)
            table = pg.compare(
                {name: model},
                test,
                train=train,
                fit_kwargs={name: {**kwargs, "val_data": val}},
                dataset=train.name,
                num_samples=args.num_samples,
            )
            rows.extend(table.rows)
        table = pg.inference.ComparisonTable(rows=rows, dataset=train.name)
        text = {"markdown": table.to_markdown, "csv": table.to_csv, "json": table.to_json}[args.format]()
        print(
            f"\n{train.name}: test NLL per example (nats) and bits/dim\n" if args.format == "markdown" else "",
            end="",
        )
        print(text)
        if out is not None:
            out.mkdir(parents=True, exist_ok=True)
            (out / f"compare-{train.name}.json").write_text(table.to_json())
            table.plot(out / f"compare-{train.name}.png")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="probgen", description="Fit, score, sample and compare generative models.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("list", help="registered models and bundled datasets")
    p.set_defaults(func=_cmd_list)

    p = sub.add_parser("fit", help="fit a model and save a checkpoint")
    p.add_argument("model", help="a model name from `probgen list`")
    p.add_argument("--data", required=True, help="dataset name or path to a .npy/.npz/.csv/IDX file")
    p.add_argument("--out", required=True, help="output directory for the checkpoint and plots")
    p.add_argument("--model-args", help='JSON keyword arguments for the model, e.g. \'{"estimator": "map"}\'')
    _add_fit_options(p)
    p.set_defaults(func=_cmd_fit)

    p = sub.add_parser("eval", help="held-out log-likelihood of a checkpoint")
    p.add_argument("checkpoint", help="checkpoint file or the directory `fit --out` wrote")
    p.add_argument("--data", help="dataset name or file (default: the data it was fitted on)")
    p.add_argument("--split", default="test", choices=["train", "val", "test", "all"])
    p.add_argument("--num-samples", type=_positive_int, help="importance samples for lower-bound models (default 1000)")
    p.set_defaults(func=_cmd_eval)

    p = sub.add_parser("sample", help="draw samples from a checkpoint")
    p.add_argument("checkpoint")
    p.add_argument("-n", type=_positive_int, default=64, help="number of samples (default 64)")
    p.add_argument("--out", required=True, help="a .png (image grid or 2-D scatter) or .npy file")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_cmd_sample)

    p = sub.add_parser("compare", help="fit every suitable model and print one table")
    p.add_argument("--data", nargs="+", help="dataset names or files (default: digits)")
    p.add_argument("--models", nargs="+", help="restrict to these models")
    p.add_argument("--format", default="markdown", choices=["markdown", "csv", "json"])
    p.add_argument("--out", help="directory for the JSON table and a bar-chart PNG")
    p.add_argument(
        "--num-samples", type=_positive_int, default=1000, help="importance samples for lower bounds (default 1000)"
    )
    _add_fit_options(p)
    p.set_defaults(func=_cmd_compare)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        args.func(args)
    except (ValueError, TypeError, OSError, json.JSONDecodeError) as err:
        message = str(err).splitlines()[0] if str(err) else type(err).__name__
        print(f"probgen: error: {message}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
