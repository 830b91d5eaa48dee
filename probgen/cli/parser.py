"""The ``probgen`` argument parser: one sub-parser per command, argument types that refuse a bad
value in one line, and ``fit --help`` examples built from the registered models."""

from __future__ import annotations

import argparse
import math
import sys

from probgen.cli import compare, fit, report, run, sample
from probgen.cli import eval as eval_command
from probgen.cli import list as list_command
from probgen.inference.options import EVAL_OPTIONS, FIT_OPTIONS, argument_type

__all__ = ["BUDGET_PRESETS", "build_parser", "fit_examples"]


def _fit(name: str):
    """The argparse type of fit option ``name``, from the one options table."""
    return argument_type(FIT_OPTIONS, name)


def _eval(name: str):
    """The argparse type of evaluation option ``name``, from the one options table."""
    return argument_type(EVAL_OPTIONS, name)


#: ``compare --budget``: the registered budget presets
BUDGET_PRESETS = ("compare", "full")


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad command line is one line ``probgen: error: ...`` (exit 2), not usage + error."""

    def error(self, message: str) -> None:  # type: ignore[override]
        sub = self.prog.split(" ", 1)[1] if " " in self.prog else ""
        hint = f" (see `probgen {sub} --help`)" if sub else " (see `probgen --help`)"
        print(f"probgen: error: {message}{hint}", file=sys.stderr)
        raise SystemExit(2)


def _int_type(minimum: int, what: str):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return value

    parse.__name__ = what
    return parse


_positive_int = _int_type(1, "a positive integer")
_seed_int = _int_type(0, "a non-negative integer")


def _budget_preset(text: str) -> str:
    if text in BUDGET_PRESETS:
        return text
    hint = "; for a wall-clock cap use --time-limit SECONDS" if _is_number(text) else ""
    raise argparse.ArgumentTypeError(f"expected one of {', '.join(BUDGET_PRESETS)}, got {text!r}{hint}")


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a fraction in [0, 1), got {text!r}") from None
    if not (math.isfinite(value) and 0 <= value < 1):
        raise argparse.ArgumentTypeError(f"expected a fraction in [0, 1), got {text!r}")
    return value


def _add_fit_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--epochs", type=_fit("epochs"), help="passes over the training data")
    p.add_argument("--batch-size", type=_fit("batch_size"), help="minibatch size")
    p.add_argument("--lr", type=_fit("lr"), help="learning rate")
    p.add_argument("--lr-decay", type=_fit("lr_decay"), help="learning-rate factor per epoch, in (0, 1]")
    p.add_argument("--patience", type=_fit("patience"), help="early-stopping patience (epochs)")
    p.add_argument("--objective", help="elbo | analytic_kl | ...")
    p.add_argument("--seed", type=_seed_int, default=0, help="random seed (default 0)")
    p.add_argument("--device", default=None, help="cpu, cuda or cuda:N")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def _add_dtype_option(p: argparse.ArgumentParser, help: str) -> None:
    p.add_argument("--dtype", choices=["float32", "float64"], help=help)


def _add_data_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--labels", help="labels of --data, a file (IDX *-idx1-ubyte or a 1-D .npy)")
    p.add_argument(
        "--label-column", help="CSV files: the column that holds the labels, by header name or index (-1: the last)"
    )
    p.add_argument("--val", help="a separate validation file (default: a random part of --data)")
    p.add_argument("--val-labels", help="labels of --val")
    p.add_argument("--test", help="a separate test file (default: a random part of --data)")
    p.add_argument("--test-labels", help="labels of --test")
    p.add_argument("--val-frac", type=_fraction, help="fraction of a user's file held out for validation (default 0.1)")
    p.add_argument("--test-frac", type=_fraction, help="fraction of a user's file held out for testing (default 0.2)")
    p.add_argument("--split-seed", type=_seed_int, default=0, help="seed of the random split of a file (default 0)")


def fit_examples() -> str:
    """``fit --help`` examples, one per model kind, built from each kind's real constructor arguments."""
    from probgen.models import MODELS, accepted_parameters

    lines = ["examples (one per kind of model):"]
    # (argument, example, data, kind, whether the kind needs labels): classifiers and factorized
    # models both take `method` (how the posterior is computed), so the labels tell them apart
    picks = (
        ("method", '{"method": "map"}', "iris", "classifiers (Naive Bayes, LDA, QDA)", True),
        ("method", '{"method": "map"}', "digits-binary", "factorized models", False),
        ("latent_dim", '{"latent_dim": 4, "hidden_features": [128]}', "digits-binary", "VAEs", False),
    )
    for key, example, data, kind, labelled in picks:
        support = "real" if data == "iris" else "binary"
        for name, spec in sorted(MODELS.items()):
            cls = spec.cls
            if key not in accepted_parameters(cls) or cls.conditional or cls.needs_labels != labelled:
                continue
            if cls.density == "implicit" or not spec.suits(support, True):  # implicit: a class attribute
                continue
            lines.append(f"  # {kind}")
            lines.append(f"  probgen fit {name} --data {data} --out runs/{name} --model-args '{example}'")
            break
    lines.append("  # your own file: a seeded 70/10/20 split, or separate files")
    lines.append("  probgen fit independent-bernoulli --data mine.npy --out runs/mine --val-frac 0.1 --test-frac 0.2")
    lines.append(
        "  probgen fit independent-categorical --data train-images-idx3-ubyte.gz "
        "--labels train-labels-idx1-ubyte.gz --test t10k-images-idx3-ubyte.gz --out runs/mnist"
    )
    lines.append("  # continue an interrupted fit")
    lines.append("  probgen fit independent-bernoulli --data digits-binary --out runs/bern --resume")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    """The parser of the ``probgen`` command line; each sub-command's ``func`` runs it."""
    import probgen

    parser = _Parser(prog="probgen", description="Fit, score, sample and compare generative models.")
    parser.add_argument("--version", action="version", version=f"probgen {probgen.__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)
    p = sub.add_parser("list", help="registered models and bundled datasets")
    p.add_argument(
        "--map", action="store_true",
        help="the map of model families: place, family, density kind and what log_likelihood reports of each",
    )  # fmt: skip
    p.set_defaults(func=list_command.run)
    for add in (_add_fit, _add_eval, _add_sample, _add_compare, _add_run, _add_report):
        add(sub)
    return parser


def _add_fit(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "fit",
        help="fit a model and save a checkpoint",
        epilog=fit_examples(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("model", help="a model name from `probgen list`")
    p.add_argument("--data", required=True, help="dataset name or path to a .npy/.npz/.csv/IDX file")
    _add_data_options(p)
    p.add_argument("--out", required=True, help="output directory for the checkpoint and plots")
    p.add_argument(
        "--model-args",
        help="JSON keyword arguments for the model, e.g. '{\"latent_dim\": 4}' (see the examples below)",
    )
    p.add_argument("--resume", action="store_true", help="continue from the checkpoint in --out")
    p.add_argument("--overwrite", action="store_true", help="replace the fit that --out holds (else refused)")
    p.add_argument("--num-samples", type=_positive_int, help="importance samples for lower-bound scores (default 1000)")
    _add_fit_options(p)
    _add_dtype_option(p, "the model's and the data's dtype (default float32)")
    p.add_argument("--precision", choices=["bf16"], help="bf16: the training objective under torch.autocast")
    p.add_argument(
        "--tensorboard", metavar="DIR",
        help='write a TensorBoard run directory: losses, lr and epoch time per epoch, a sample grid '
        '(pip install -e ".[tensorboard]")',
    )  # fmt: skip
    p.add_argument(
        "--mlflow", nargs="?", const="", default=None, metavar="URI",
        help="log an MLflow run (params, metrics, checkpoint) to URI, default MLflow's local store "
        '(pip install -e ".[mlflow]")',
    )  # fmt: skip
    p.add_argument(
        "--nproc", type=_positive_int, default=1,
        help="processes on this machine, each fitting its part of every batch (gloo on cpu, nccl on cuda); "
        "across nodes use torchrun (docs/scale.md)",
    )  # fmt: skip
    p.set_defaults(func=fit.run)


def _add_eval(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="held-out log-likelihood of a checkpoint")
    p.add_argument("checkpoint", help="checkpoint file or the directory `fit --out` wrote")
    p.add_argument("--data", help="dataset name or file (default: the data and split it was fitted on)")
    p.add_argument("--labels", help="labels of --data FILE")
    p.add_argument(
        "--split", default=None, choices=["train", "val", "test", "all"], help="which part to score (default test)"
    )
    p.add_argument("--num-samples", type=_positive_int, help="importance samples for lower-bound models (default 1000)")
    p.add_argument("--json", action="store_true", help="also print the result as one JSON line")
    p.add_argument("--device", default=None, help="score on cpu, cuda or cuda:N (default cpu)")
    _add_dtype_option(p, "score in this dtype (default: the checkpoint's)")
    p.set_defaults(func=eval_command.run)


def _add_sample(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sample", help="draw samples from a checkpoint")
    p.add_argument("checkpoint")
    p.add_argument("-n", type=_positive_int, default=64, help="number of samples (default 64)")
    p.add_argument("--out", required=True, help="a .png (image grid or 2-D scatter) or .npy file")
    p.add_argument("--seed", type=_seed_int, default=0)
    p.add_argument("--device", default=None, help="sample on cpu, cuda or cuda:N (default cpu)")
    p.set_defaults(func=sample.run)


def _add_compare(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("compare", help="fit every suitable model and print one table")
    p.add_argument("--data", nargs="+", help="dataset names or files (default: digits digits-binary)")
    _add_data_options(p)
    p.add_argument("--models", nargs="+", help="restrict to these models")
    p.add_argument("--format", default="markdown", choices=["markdown", "csv", "json"])
    p.add_argument("--out", help="directory for the JSON table and a bar-chart PNG")
    p.add_argument(
        "--num-samples", type=_positive_int, default=100, help="importance samples for lower bounds (default 100)"
    )
    p.add_argument(
        "--budget", default="compare", type=_budget_preset, metavar="{compare,full}",
        help="each model's registered epochs: its short compare budget (default; minutes for the whole job) or "
        "its full defaults; counted in epochs, so the numbers do not depend on the machine's speed or load",
    )  # fmt: skip
    p.add_argument(
        "--time-limit", type=_fit("time_limit"),
        help="optional cap on each model's training seconds; a row it cut says so (such numbers depend on the machine)",
    )  # fmt: skip
    p.add_argument(
        "--threads", type=_positive_int,
        help="torch threads per job (default 1: the same numbers on every machine; models with convolutions, "
        "attention or large products round differently at another count)",
    )  # fmt: skip
    _add_fit_options(p)
    _add_dtype_option(p, "fit and score in this dtype (default float32)")
    p.set_defaults(func=compare.run)


def _add_run(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "run",
        help="run an experiment config (TOML): data, models, budget, seeds; continues where it stopped",
        description="Check CONFIG.toml in full, then fit and score every job (models x grid x seeds) into a run "
        "directory; re-running the same command skips finished jobs and resumes interrupted ones.",
    )
    p.add_argument("config", help="a TOML experiment config (see examples/configs/)")
    p.add_argument("--out", help="run directory (default runs/<config name>)")
    p.add_argument("--epochs", type=_fit("epochs"), help="override every model's epochs (e.g. a quick smoke run)")
    p.add_argument("--time-limit", type=_fit("time_limit"), help="override every job's training seconds at most")
    p.add_argument("--num-samples", type=_eval("num_samples"), help="override the evaluation's K")
    p.add_argument("--seeds", type=_seed_int, nargs="+", help="override the config's seeds")
    p.add_argument("--dry-run", action="store_true", help="check the config and list the jobs; fit nothing")
    p.add_argument("--quiet", action="store_true", help="no progress bars or job lines")
    p.add_argument(
        "--jobs", type=_positive_int,
        help="run N jobs at once: N local worker processes (default 1: one after another), or the workers of a "
        "Dask LocalCluster with --executor dask",
    )  # fmt: skip
    p.add_argument(
        "--executor", choices=["local", "dask"],
        help="local (default): this machine; dask: a Dask cluster (--scheduler, else a LocalCluster of --jobs)",
    )  # fmt: skip
    p.add_argument("--scheduler", help="a Dask scheduler address, e.g. tcp://10.0.0.1:8786 (implies --executor dask)")
    p.add_argument(
        "--retries", type=_seed_int,  # a non-negative integer
        help="times a job whose worker process died is run again before it is marked failed (default 1)",
    )  # fmt: skip
    p.add_argument(
        "--threads", type=_positive_int,
        help="torch threads per job (default: the config's threads, else 1: the same numbers on every machine; "
        "models with convolutions, attention or large products round differently at another count)",
    )  # fmt: skip
    p.set_defaults(func=run.run)


def _add_report(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report",
        help="write report.html (tables and every figure) into a run directory",
        description="Write RUN_DIR/report.html: the results tables and every figure of a run directory made by "
        "`probgen run` or `probgen compare --out`, one static page that loads images by relative paths.",
    )
    p.add_argument("run_dir", help="a run directory (it holds results.json)")
    p.set_defaults(func=report.run)
