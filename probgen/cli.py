"""The ``probgen`` command: list, fit, eval, sample and compare from the shell.

Every user error prints one line ``probgen: error: ...`` on stderr and exits with status 2;
an interruption (Ctrl-C) prints one line and exits with 130, keeping the last checkpoint; an
internal error prints one line asking for a report and exits with 1. No traceback is shown.

A user's data file is split at random (seeded) into train, validation and test parts, unless
separate ``--val``/``--test`` files are given; every number printed or saved names its split,
and ``eval`` of a checkpoint re-creates the same held-out split from what the checkpoint records.
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import json
import math
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import warnings
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from probgen.progress import format_seconds

__all__ = ["main", "UsageError", "format_seconds", "model_seed"]

FIT_KEYS = ("epochs", "batch_size", "lr", "seed", "objective", "patience", "device", "lr_decay")
#: Sidecar that ``fit`` writes into ``--out`` before training, so a killed fit can be resumed and evaluated.
RUN_FILE = "run.json"
LOCK_FILE = ".lock"
#: Largest number of samples drawn as one PNG grid.
MAX_PNG_SAMPLES = 10_000
#: Memory assumed available when /proc/meminfo cannot be read.
FALLBACK_AVAILABLE_BYTES = 2 * 1024**3
ISSUES_URL = "https://github.com/probgen/probgen/issues"
#: ``run --dry-run`` lists this many jobs, then says how many more there are
DRY_RUN_SHOWN = 50
#: ``compare --budget``: the registered budget presets
BUDGET_PRESETS = ("compare", "full")


class UsageError(ValueError):
    """A bad command line or input: reported as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad command line is one line ``probgen: error: ...`` (exit 2), not usage + error."""

    def error(self, message: str) -> None:  # type: ignore[override]
        sub = self.prog.split(" ", 1)[1] if " " in self.prog else ""
        hint = f" (see `probgen {sub} --help`)" if sub else " (see `probgen --help`)"
        print(f"probgen: error: {message}{hint}", file=sys.stderr)
        raise SystemExit(2)


# ----------------------------------------------------------------------------- small helpers


def format_bytes(n: float) -> str:
    """A size in bytes as "512 B", "3.1 MiB", "2.0 GiB", ..."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024 or unit == "PiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} PiB"  # pragma: no cover


def model_seed(seed: int, name: str) -> int:
    """The seed of model ``name`` in a run seeded ``seed``: independent of which other models run.

    Uses CRC-32 (stable across processes, unlike Python's salted ``hash``).

    Example:
        >>> model_seed(0, "vae") == model_seed(0, "vae") != model_seed(1, "vae")
        True
    """
    return zlib.crc32(f"{seed}:{name}".encode()) & 0x7FFFFFFF


def available_memory() -> int:
    """Bytes of memory available to a new allocation (``MemAvailable`` of /proc/meminfo, else a fixed cap)."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return FALLBACK_AVAILABLE_BYTES


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    if isinstance(err, KeyError) and text.startswith("'"):
        text = f"missing key {text}"
    line = text.splitlines()[0].strip() if text else type(err).__name__
    # no private names in user-facing messages: drop leading underscores of identifiers
    return re.sub(r"(?<![\w/\\.\-])_+(?=[A-Za-z])", "", line)


def _write_text(path: Path, text: str) -> Path:
    """Write ``text`` atomically (temporary file + rename) with the user's umask."""
    from probgen.checkpoint import current_umask

    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~current_umask())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def _wrote(path: Path, file: Any = None) -> None:
    print(f"wrote {path}", file=file or sys.stdout)


# ----------------------------------------------------------------------------- argument types


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


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a positive finite number, got {text!r}")
    return value


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


def _check_device(text: str | None) -> str | None:
    """Refuse a ``--device`` that torch cannot parse or that this machine does not have."""
    if text is None:
        return None
    import torch

    try:
        device = torch.device(text)
    except (RuntimeError, ValueError, TypeError):
        raise UsageError(f"--device {text!r} is not a device name; expected cpu, cuda or cuda:N") from None
    if device.type == "cpu":
        return text
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise UsageError(f"--device {text!r}: this machine has no CUDA device (torch finds none); use --device cpu")
        if device.index is not None and device.index >= count:
            raise UsageError(
                f"--device {text!r}: this machine has {count} CUDA device(s), cuda:0..cuda:{count - 1}; "
                f"there is no cuda:{device.index}"
            )
        return text
    if device.type == "mps":
        if not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
            raise UsageError(f"--device {text!r}: this machine has no MPS device; use --device cpu")
        return text
    raise UsageError(f"--device {text!r}: probgen runs on cpu or cuda (or mps), not on {device.type!r}")


def _add_fit_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--epochs", type=_positive_int, help="passes over the training data")
    p.add_argument("--batch-size", type=_positive_int, help="minibatch size")
    p.add_argument("--lr", type=_positive_float, help="learning rate")
    p.add_argument("--lr-decay", type=_positive_float, help="learning-rate factor per epoch, in (0, 1]")
    p.add_argument("--patience", type=_positive_int, help="early-stopping patience (epochs)")
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


def _fit_kwargs(args: argparse.Namespace, defaults: dict[str, Any]) -> dict[str, Any]:
    kwargs = dict(defaults)
    for key in FIT_KEYS:
        value = getattr(args, key, None)
        if value is not None:
            kwargs[key] = value
    if kwargs.get("lr_decay") is not None and not 0 < kwargs["lr_decay"] <= 1:
        raise UsageError(f"--lr-decay must be in (0, 1], got {kwargs['lr_decay']!r}")
    kwargs["progress"] = not args.quiet
    return kwargs


# ----------------------------------------------------------------------------- data and splits


@dataclass
class Splits:
    """The parts a command works on, and what re-creates them (kept in a checkpoint's ``extra``)."""

    train: Any
    val: Any
    test: Any
    spec: dict[str, Any] = field(default_factory=dict)

    def parts(self) -> list[tuple[str, Any]]:
        return [(name, d) for name, d in (("train", self.train), ("val", self.val), ("test", self.test)) if d]

    def describe(self) -> str:
        sizes = " / ".join(f"{name} {len(d)}" for name, d in self.parts())
        source = self.spec.get("how", "")
        return f"{self.train.name}: {sizes} examples{source}"


def _is_file_source(source: str) -> bool:
    return os.path.exists(source) or os.sep in source or "." in os.path.basename(source)


def _abs(path: str | None) -> str | None:
    return None if path is None else str(Path(path).expanduser().resolve())


def _load(path: str, labels: str | None, support: str | None = None, label_column: str | None = None) -> Any:
    from probgen.data import load_file

    return load_file(path, labels=labels, support=support, label_column=label_column)


def _same_shape(reference: Any, other: Any, flag: str) -> None:
    if other.event_shape != reference.event_shape:
        raise UsageError(
            f"{flag} {other.name!r} has examples of shape {other.event_shape}; "
            f"expected {reference.event_shape} like --data {reference.name!r}"
        )


def _column_of(spec: dict[str, Any], part: str) -> str | None:
    """The label column of a separate ``val``/``test`` file: the data's, where that file is a CSV
    without a labels file of its own."""
    if spec.get("label_column") is None or spec.get(f"{part}_labels") or not str(spec[part]).endswith(".csv"):
        return None
    return spec["label_column"]


def make_splits(spec: dict[str, Any]) -> Splits:
    """Train/val/test parts from a data spec (what ``fit`` records; see :func:`_data_spec`).

    Raises:
        UsageError: a bad combination of options, or data that do not fit together.
        ValueError: an unreadable file.
    """
    from probgen.data import get_data
    from probgen.data.split import split

    source = spec["data"]
    if not spec.get("file"):
        train = get_data(source, "train")
        return Splits(train, get_data(source, "val"), get_data(source, "test"), spec | {"how": " (fixed split)"})
    column = spec.get("label_column")
    whole = _load(source, spec.get("labels"), label_column=column)
    if spec.get("rows") is not None and spec["rows"] != len(whole):
        raise UsageError(
            f"data file {source!r} now holds {len(whole)} examples, but the checkpoint was fitted when it held "
            f"{spec['rows']}: the held-out split cannot be re-created"
        )
    val_frac = 0.0 if spec.get("val") else spec["val_frac"]
    test_frac = 0.0 if spec.get("test") else spec["test_frac"]
    train, val, test = split(whole, val_frac=val_frac, test_frac=test_frac, seed=spec["split_seed"])
    how = []
    if spec.get("val"):
        val = _load(spec["val"], spec.get("val_labels"), support=whole.support, label_column=_column_of(spec, "val"))
        _same_shape(whole, val, "--val")
        how.append(f"val from {Path(spec['val']).name}")
    if spec.get("test"):
        test = _load(spec["test"], spec.get("test_labels"), whole.support, _column_of(spec, "test"))
        _same_shape(whole, test, "--test")
        how.append(f"test from {Path(spec['test']).name}")
    if val_frac or test_frac:
        how.insert(0, f"random split of {whole.name} ({len(whole)} rows), seed {spec['split_seed']}")
    return Splits(train, val, test, spec | {"how": " (" + "; ".join(how) + ")" if how else ""})


def _data_spec(args: argparse.Namespace, source: str) -> dict[str, Any]:
    """What identifies the data and its split: the name, or the absolute paths, fractions and seed."""
    file_options = ("labels", "label_column", "val", "val_labels", "test", "test_labels", "val_frac", "test_frac")
    given = [o for o in file_options if getattr(args, o, None) is not None]
    if not _is_file_source(source):
        if given:
            flag = "--" + given[0].replace("_", "-")
            raise UsageError(f"{flag} applies to a data file; dataset {source!r} comes with its own fixed split")
        return {"data": source, "file": False}
    for labels, of in (("val_labels", "val"), ("test_labels", "test")):
        if getattr(args, labels, None) is not None and getattr(args, of, None) is None:
            raise UsageError(f"--{labels.replace('_', '-')} needs --{of} FILE")
    if args.labels is not None and args.label_column is not None:
        raise UsageError("give either --labels FILE or --label-column COLUMN, not both")
    if args.val is not None and args.val_frac is not None:
        raise UsageError("give either --val FILE or --val-frac, not both")
    if args.test is not None and args.test_frac is not None:
        raise UsageError("give either --test FILE or --test-frac, not both")
    from probgen.data.split import DEFAULT_TEST_FRAC, DEFAULT_VAL_FRAC

    val_frac = DEFAULT_VAL_FRAC if args.val_frac is None else args.val_frac
    test_frac = DEFAULT_TEST_FRAC if args.test_frac is None else args.test_frac
    if (0 if args.val else val_frac) + (0 if args.test else test_frac) >= 1:
        raise UsageError(
            f"--val-frac {val_frac} and --test-frac {test_frac} leave nothing to train on; expected a sum below 1"
        )
    return {
        "data": _abs(source),
        "file": True,
        "labels": _abs(args.labels),
        "label_column": args.label_column,
        "val": _abs(args.val),
        "val_labels": _abs(args.val_labels),
        "test": _abs(args.test),
        "test_labels": _abs(args.test_labels),
        "val_frac": val_frac,
        "test_frac": test_frac,
        "split_seed": args.split_seed,
    }


def _spec_for_record(splits: Splits) -> dict[str, Any]:
    spec = {k: v for k, v in splits.spec.items() if k != "how"}
    if spec.get("file"):
        spec["rows"] = len(splits.train) + sum(
            len(d) for name, d in (("val", splits.val), ("test", splits.test)) if d is not None and not spec.get(name)
        )
    return spec


# ----------------------------------------------------------------------------- models and their arguments


def _expected_type(param: inspect.Parameter) -> tuple[str, tuple[type, ...]] | None:
    annotation = param.annotation if isinstance(param.annotation, str) else getattr(param.annotation, "__name__", "")
    annotation = str(annotation).replace(" ", "")
    default = param.default
    if "None" in annotation.split("|") or annotation.startswith("Optional") or annotation == "Any":
        base = [a for a in annotation.split("|") if a != "None"]
        annotation = base[0] if len(base) == 1 else ""
        nullable = True
    else:
        nullable = default is None
    table = {"int": ("an integer", (int,)), "float": ("a number", (int, float)), "str": ("a string", (str,))}
    table["bool"] = ("true or false", (bool,))
    if annotation in table:
        found = table[annotation]
    elif annotation.startswith(("tuple", "list", "Sequence", "Tuple", "List")):
        found = ("a list", (list,))
    elif default is not None and default is not inspect.Parameter.empty:
        found = next(
            (table[t.__name__] for t in (bool, int, float, str) if type(default) is t),
            ("a list", (list,)) if isinstance(default, (tuple, list)) else None,
        )
    else:
        found = None
    if found is None:
        return None
    return (found[0] + " or null", (*found[1], type(None))) if nullable else found


def parse_model_args(text: str | None, name: str) -> dict[str, Any]:
    """``--model-args``: a JSON object whose keys the model's constructor accepts, with values of the right type.

    Raises:
        UsageError: not JSON, not an object, an unknown key (the accepted ones are listed), or a wrong type.
    """
    from probgen.models import model_class

    if text is None:
        return {}
    try:
        value = json.loads(text, parse_constant=lambda c: float(c))
    except json.JSONDecodeError as err:
        raise UsageError(
            f"--model-args {text!r} is not valid JSON ({err.msg} at character {err.pos}); "
            "expected a JSON object such as '{\"latent_dim\": 4}'"
        ) from None
    if not isinstance(value, dict):
        raise UsageError(
            f"--model-args must be a JSON object of keyword arguments, got a JSON {type(value).__name__}: {text!r}"
        )
    accepted = model_class(name).accepted_parameters()
    for key, item in value.items():
        if key not in accepted:
            raise UsageError(
                f"--model-args: {name} has no argument {key!r}; it accepts {', '.join(sorted(accepted)) or 'none'}"
            )
        expected = _expected_type(accepted[key])
        if expected is None:
            continue
        words, types = expected
        ok = isinstance(item, types) and not (isinstance(item, bool) and bool not in types)
        if not ok:
            raise UsageError(f"--model-args: {key} must be {words}, got {json.dumps(item)} ({type(item).__name__})")
        if isinstance(item, float) and not math.isfinite(item):
            raise UsageError(f"--model-args: {key} must be a finite number, got {item}")
        default = accepted[key].default
        if (
            isinstance(item, int)
            and not isinstance(item, bool)
            and isinstance(default, int)
            and not isinstance(default, bool)
            and default >= 1
            and item < 1
        ):
            raise UsageError(f"--model-args: {key} must be a positive integer, got {item}")
        if isinstance(item, list) and any(isinstance(v, int) and not isinstance(v, bool) and v < 1 for v in item):
            if isinstance(default, (tuple, list)) and all(isinstance(v, int) and v >= 1 for v in default):
                raise UsageError(f"--model-args: {key} must hold positive integers, got {json.dumps(item)}")
    return {k: tuple(v) if isinstance(v, list) else v for k, v in value.items()}


def _build(name: str, data: Any, model_args: dict[str, Any]) -> Any:
    """``build_model`` with every refusal as a one-line user error naming the model and arguments."""
    from probgen.models import build_model

    try:
        return build_model(name, data, **model_args)
    except (ValueError, TypeError, RuntimeError, AssertionError) as err:
        given = f" with --model-args {json.dumps(model_args)}" if model_args else ""
        raise UsageError(f"cannot build {name}{given}: {_first_line(err)}") from err


def _check_model_name(names: Sequence[str]) -> None:
    from probgen.models import MODELS

    unknown = [n for n in names if n not in MODELS]
    if unknown:
        shown = repr(unknown[0]) if len(unknown) == 1 else str(unknown)
        raise UsageError(f"unknown model {shown}; expected one of {', '.join(sorted(MODELS))}")


def _scorable(model: Any) -> bool:
    return model.density != "implicit"  # unnormalized models are scored with their estimated log Z


def _num_samples(model: Any, requested: int | None) -> int | None:
    return requested or (1000 if model.density == "lower_bound" else None)


def _score(model: Any, data: Any, split: str, num_samples: int | None, distributed: bool = False) -> dict[str, Any]:
    import probgen as pg

    result = pg.log_likelihood(model, data, num_samples=_num_samples(model, num_samples), distributed=distributed)
    print(f"{split}: {result} ({result.num_examples} examples)")
    return {"split": split, **result.as_dict()}


def _score_implicit(model: Any, data: Any, split: str, tune: Any, seed: int) -> dict[str, Any]:
    """An implicit model's likelihood-free metrics on (at most ``METRIC_SAMPLES`` examples of)
    ``data``, from as many samples drawn with ``seed``, as ``probgen run`` computes them; the
    Parzen bandwidth is chosen on ``tune`` (another split) when there is one."""
    from probgen.experiments.runner import METRIC_SAMPLES, implicit_metrics

    x = data.x[:METRIC_SAMPLES]
    metrics = implicit_metrics(model, data, tune, seed)  # what `probgen run` reports for a job
    print(
        f"{split}: MMD² {metrics['mmd2']:.4g} (permutation p {metrics['mmd_p_value']:.3g}), "
        f"C2ST accuracy {metrics['c2st_accuracy']:.4f} (p {metrics['c2st_p_value']:.3g}), "
        f"precision {metrics['precision']:.4f}, recall {metrics['recall']:.4f} "
        f"[{METRIC_SAMPLES} samples against {len(x)} {split} examples; implicit: no likelihood]"
    )
    if "parzen_nats" in metrics:
        print(f"{split}: Parzen log p {metrics['parzen_nats']:.4f} nats/example (a weak estimate, not a likelihood)")
    shape = {"num_examples": len(x), "num_dims": model.num_dims, "num_samples": METRIC_SAMPLES}
    return {"split": split, "kind": "implicit", "method": "sample_metrics", **shape, **metrics}


def _implicit_scores(model: Any, splits: Any, seed: int) -> list[dict[str, Any]]:
    """Metrics on the held-out parts (each tuned on another: test on val, val on train)."""
    tunes = {"val": splits.train, "test": splits.val if splits.val is not None else splits.train}
    return [_score_implicit(model, data, name, tunes[name], seed) for name, data in splits.parts() if name != "train"]


# ----------------------------------------------------------------------------- output directories


@contextlib.contextmanager
def _output_dir(path: str, flag: str = "--out", keep: Callable[[Path], bool] | None = None) -> Iterator[Path]:
    """Create the directory ``path`` if needed; if the command fails, remove what this command
    created, unless it holds a checkpoint worth keeping or ``keep(path)`` says it holds results."""
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise UsageError(f"{flag} {path!r} is an existing file; expected a directory (it is created if missing)")
    created = None
    probe = out
    while not probe.exists():
        created, probe = probe, probe.parent
    if not probe.is_dir():
        raise UsageError(f"{flag} {path!r} cannot be created: {str(probe)!r} is a file, not a directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UsageError(f"{flag} {path!r} cannot be created: {err.strerror or err}") from None
    try:
        yield out
    except BaseException:
        from probgen.checkpoint import CHECKPOINT_NAME

        # remove what this command created, unless it holds a checkpoint worth keeping (an
        # interrupted or diverged fit leaves its last good checkpoint for --resume)
        if created is not None and not (out / CHECKPOINT_NAME).exists() and not (keep and keep(out)):
            shutil.rmtree(created, ignore_errors=True)
        raise


@contextlib.contextmanager
def _locked(out: Path) -> Iterator[None]:
    """An exclusive lock on ``OUT/.lock``: a second command writing into ``out`` is refused at once."""
    import fcntl

    fh = open(out / LOCK_FILE, "a")
    try:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise UsageError(
                f"another probgen command is writing into {str(out)!r} (it holds {out / LOCK_FILE}); "
                "wait for it to finish or choose another --out"
            ) from None
        # we hold the lock: temporary files left by a killed writer are stale
        for stale in out.glob(".*.tmp"):
            with contextlib.suppress(OSError):
                stale.unlink()
        yield
    finally:
        fh.close()


# ----------------------------------------------------------------------------- checkpoints


def _load_checkpoint(path: str, device: str | None = None) -> tuple[Any, dict[str, Any], Path]:
    """A checkpoint, its model on ``device`` (default cpu), and what its run recorded (``extra``,
    completed by the run's sidecar file)."""
    import probgen as pg
    from probgen.checkpoint import CHECKPOINT_NAME

    target = Path(path)
    if target.is_dir():
        if not (target / CHECKPOINT_NAME).exists():
            raise UsageError(
                f"directory {path!r} holds no checkpoint ({CHECKPOINT_NAME}); expected the --out directory "
                "of a `probgen fit` or a .safetensors file"
            )
        target = target / CHECKPOINT_NAME
    elif not target.exists():
        raise UsageError(f"checkpoint {path!r} does not exist; expected a `probgen fit` --out directory or its file")
    checkpoint = pg.load_checkpoint(target, map_location=device or "cpu")
    info: dict[str, Any] = {}
    sidecar = target.parent / RUN_FILE
    if sidecar.is_file():
        with contextlib.suppress(OSError, json.JSONDecodeError, UnicodeDecodeError):
            loaded = json.loads(sidecar.read_text())
            if isinstance(loaded, dict) and loaded.get("model") == checkpoint.model.name:
                info.update(loaded)
    info.update(checkpoint.extra)
    return checkpoint, info, target


class _OptimizerState:
    """Stands in for an optimizer when re-saving a checkpoint with its stored optimizer state."""

    def __init__(self, state: dict[str, Any]) -> None:
        self._state = state

    def state_dict(self) -> dict[str, Any]:
        return self._state


# ----------------------------------------------------------------------------- commands


def _cmd_list(args: argparse.Namespace) -> None:
    from probgen.data import DATASETS
    from probgen.models import MODELS

    print("models (name, data it models, Python class, what it is):")
    for name, spec in sorted(MODELS.items()):
        where = f"pg.models.{spec.cls.__name__}"
        print(f"  {name:26s} {'/'.join(spec.cls.supports):22s} {where:34s} {spec.description}")
    from probgen import classifiers

    estimators = ", ".join(f"probgen.classifiers.{n}" for n in classifiers.__all__ if n[0].isupper())
    print(f"scikit-learn estimators of the Bayesian classifiers: {estimators}")
    print("datasets:")
    for name, text in DATASETS.items():
        print(f"  {name:26s} {text}")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _without_nproc(argv: Sequence[str]) -> list[str]:
    out, skip = [], False
    for item in argv:
        if skip:
            skip = False
        elif item == "--nproc":
            skip = True
        elif not item.startswith("--nproc="):
            out.append(item)
    return out


def _launch(args: argparse.Namespace) -> int:
    """``fit --nproc N``: run the same command in N local processes (ranks 0..N-1, as torchrun
    would start them); return the first non-zero exit status, stopping the other ranks then.

    Rank 0 writes to this terminal; the others' error output is kept aside and shown only when
    one of them failed and rank 0 did not say why, so that an error every rank meets (a bad
    file, Ctrl-C) reads as one line."""
    n, port = args.nproc, _free_port()
    code = "import sys; from probgen.cli import main; sys.exit(main(sys.argv[1:]))"
    env = {**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "WORLD_SIZE": str(n)}
    env |= {
        "LOCAL_WORLD_SIZE": str(n),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", str(max(1, _usable_cpus() // n))),
    }
    argv = [sys.executable, "-c", code, *_without_nproc(args.argv)]
    with contextlib.ExitStack() as stack:
        logs = [None] + [stack.enter_context(tempfile.TemporaryFile("w+")) for _ in range(1, n)]
        procs = [
            subprocess.Popen(argv, env=env | {"RANK": str(r), "LOCAL_RANK": str(r)}, stderr=logs[r]) for r in range(n)
        ]
        try:
            status = _wait_for_ranks(procs)
        except KeyboardInterrupt:
            _stop_ranks(procs, interrupt=True)
            if procs[0].returncode == 130:  # rank 0 was interrupted too and has said so
                return 130
            raise
        finally:
            _stop_ranks(procs)  # the others meet the failure too, or a closed peer
        _show_other_failure(procs, logs)
    return status


def _show_other_failure(procs: list[subprocess.Popen], logs: list[Any]) -> None:
    """The error output of the first rank after 0 that failed, unless rank 0 has told the same:
    a usage error (exit 2) or an interruption (130) meets every rank alike, so it is shown only
    when rank 0 ended well or was stopped (SIGTERM) before it could say anything."""
    silent = (0, _STOPPED)
    failed = [r for r, p in enumerate(procs) if r and p.returncode not in silent]
    if not failed:
        return
    rank, rank0_spoke = failed[0], procs[0].returncode not in silent
    if rank0_spoke and procs[rank].returncode in (2, 130):
        return
    logs[rank].seek(0)
    print(logs[rank].read().rstrip("\n"), file=sys.stderr)


def _wait_for_ranks(procs: list[subprocess.Popen]) -> int:
    """Wait until every rank has ended, or one has failed; the first non-zero exit status."""
    status = 0
    while any(p.poll() is None for p in procs) and not status:
        status = next((p.returncode for p in procs if p.returncode), 0)
        with contextlib.suppress(subprocess.TimeoutExpired):
            procs[0].wait(0.2)
    return status or next((p.returncode for p in procs if p.returncode), 0)


#: how long the other ranks may take to end by themselves once one has failed or been interrupted
_GRACE_SECONDS = 30.0
#: the exit status of a rank the launcher stopped (by SIGTERM)
_STOPPED = -15


def _stop_ranks(procs: list[subprocess.Popen], interrupt: bool = False, grace: float = _GRACE_SECONDS) -> None:
    """End the ranks still running: with ``interrupt``, by SIGINT as Ctrl-C would (each keeps
    its last complete checkpoint). Each has up to ``grace`` seconds in all to end by itself
    (to report an error every rank meets, or the closed connection of a failed peer, and
    tidy up its files); then SIGTERM."""
    import signal
    import time

    if interrupt:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
    deadline = time.monotonic() + grace
    for p in procs:
        with contextlib.suppress(subprocess.TimeoutExpired):
            p.wait(max(0.0, deadline - time.monotonic()))
    for p in procs:
        if p.poll() is None:
            p.terminate()
            p.wait()


def _usable_cpus() -> int:
    """CPU cores this process may run on (its affinity mask, where the OS has one)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _check_nproc(n: int, device: str | None) -> None:
    """Refuse an ``--nproc`` this machine cannot serve: more ranks than CPU cores on the CPU, or
    than GPUs on CUDA (nccl needs one GPU per rank), or several ranks pinned to one GPU."""
    import torch

    where = torch.device(device) if device is not None else torch.device("cpu")
    if where.type == "cuda" and where.index is not None:
        raise UsageError(
            f"--nproc {n} --device {device}: every rank would use {device}, and nccl needs one GPU per rank; "
            "expected --device cuda (rank r runs on cuda:r)"
        )
    if where.type == "cuda":
        count = torch.cuda.device_count()
        if n > count:
            raise UsageError(f"--nproc {n}: this machine has {count} CUDA device(s); expected at most {count}")
    elif n > (cores := _usable_cpus()):
        raise UsageError(
            f"--nproc {n}: this machine has {cores} usable CPU core(s); expected at most {cores} "
            "(one rank per core; torchrun starts more if you must)"
        )


def _launched_rank() -> tuple[int, int]:
    """(rank, world size) of a process started by torchrun or ``fit --nproc``; (0, 1) otherwise."""
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))


def _cmd_fit(args: argparse.Namespace) -> int | None:
    rank, world = _launched_rank()
    if args.nproc > 1 and world == 1:
        _check_device(args.device)
        _check_nproc(args.nproc, args.device)
        return _launch(args)
    if world == 1:
        return _fit_command(args, rank=0, distributed=False)
    try:  # a rank of a distributed fit: rank 0 alone prints and writes
        with contextlib.redirect_stdout(open(os.devnull, "w")) if rank else contextlib.nullcontext():
            return _fit_command(args, rank=rank, distributed=True)
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
    with _output_dir(path) as out, _locked(out):
        yield out


def _refuse_overwrite(out: Path, flag_value: str) -> None:
    """A UsageError if ``out`` holds a fit (its checkpoint or run record): it is never replaced
    silently; ``--overwrite`` replaces it, ``--resume`` continues it."""
    from probgen.checkpoint import CHECKPOINT_NAME

    if not ((out / CHECKPOINT_NAME).exists() or (out / RUN_FILE).exists()):
        return
    what = "a fit"
    with contextlib.suppress(OSError, ValueError, UnicodeDecodeError):
        record = json.loads((out / RUN_FILE).read_text())
        what = f"a fit of {record['model']} on {record['data']}"
    raise UsageError(
        f"--out {flag_value!r} already holds {what}; pass --overwrite to replace it, --resume to continue it, "
        "or choose another --out"
    )


def _fit_command(args: argparse.Namespace, rank: int, distributed: bool) -> None:
    import probgen as pg
    from probgen.models import MODELS

    main_rank = rank == 0
    _check_model_name([args.model])
    model_args = parse_model_args(args.model_args, args.model)
    _check_device(args.device)
    spec = _data_spec(args, args.data)
    fit_kwargs = _fit_kwargs(args, MODELS[args.model].fit_defaults)
    fit_kwargs |= {"dtype": args.dtype, "precision": args.precision, "distributed": distributed}
    splits = make_splits(spec)
    print(splits.describe())
    train, val = splits.train, splits.val
    import pyro

    pyro.set_rng_seed(fit_kwargs.get("seed", 0))
    model = _build(args.model, train, model_args)  # before the output folder: bad model args leave none
    with _rank_output(args.out, main_rank) as out:
        ckpt = out / pg.checkpoint.CHECKPOINT_NAME
        record = {"model": args.model, "model_args": model_args, "split": _spec_for_record(splits)}
        record["data"] = spec["data"]
        record["image_shape"] = list(train.image_shape) if train.image_shape else None
        resume = False
        if main_rank and not (args.resume or args.overwrite):
            _refuse_overwrite(out, args.out)
        if args.resume:
            if ckpt.exists():
                previous, info, _ = _load_checkpoint(str(out))
                if previous.model.name != args.model:
                    raise UsageError(
                        f"--resume: the checkpoint in {args.out!r} is a {previous.model.name}, not {args.model}"
                    )
                before = info.get("split")
                if before is not None and before != record["split"]:
                    raise UsageError(
                        f"--resume: the checkpoint in {args.out!r} was fitted on other data or another split "
                        f"({before.get('data')}); resume with the same data options"
                    )
                resume = True
                done = len(info.get("history", []))
                print(f"resuming from {ckpt} (epochs done at its best epoch: {done})")
            else:
                print(f"nothing to resume in {out}: starting from epoch 0")
        if main_rank:
            _write_text(out / RUN_FILE, json.dumps(record, indent=1))
            _wrote(out / RUN_FILE)
        result = pg.fit(model, train, val_data=val, checkpoint=ckpt, resume=resume, **fit_kwargs)
        strategy = model.fit_strategy
        stored = pg.load_checkpoint(ckpt) if ckpt.exists() and main_rank else None
        extra = dict(stored.extra) if stored is not None else {}
        extra.update(record)
        extra.update({"best_epoch": result.best_epoch, "epochs_run": len(result.history)})
        extra.setdefault("history", result.history)
        optimizer = _OptimizerState(stored.optimizer_state) if stored and stored.optimizer_state else None
        if strategy == "svi":
            on = "val loss" if val is not None else "train loss"
            last = result.history[-1]["epoch"] if result.history else 0
            stop = (
                f"; stopped early at epoch {last}: no better {on} for {fit_kwargs.get('patience')} epochs"
                if result.stopped_early
                else ""
            )
            print(
                f"fitted {args.model} on {train.name} [train, {len(train)} examples] in "
                f"{format_seconds(result.seconds)}: {len(result.history)} epochs, best epoch {result.best_epoch} "
                f"by {on}{stop}"
            )
        else:
            what = "closed form (exact conjugate posterior, no optimisation)" if strategy == "closed_form" else strategy
            print(
                f"fitted {args.model} on {train.name} [train, {len(train)} examples] in {what} "
                f"in {format_seconds(result.seconds)}"
            )
        scores = []
        if _scorable(model):
            parts = splits.parts() if model.density == "exact" else [p for p in splits.parts() if p[0] != "train"]
            for name, data in parts:
                scores.append(_score(model, data, name, args.num_samples, distributed))
        elif main_rank:  # no likelihood: the likelihood-free metrics that `probgen run` reports
            scores = _implicit_scores(model, splits, seed=0)  # the draws `probgen eval` makes again
        extra["scores"] = scores
        if not main_rank:
            return
        pg.save(model, ckpt, optimizer=optimizer, extra=extra)
        _wrote(ckpt)
        _wrote(_write_text(out / "history.json", json.dumps(result.history, indent=1)))
        _wrote(_write_text(out / "scores.json", json.dumps(scores, indent=1)))
        if len(result.history) > 1 and all("train_loss" in h for h in result.history):
            from probgen.plots import fit_curve

            title = f"{args.model} on {train.name}"
            _wrote(fit_curve(result.history, out / "loss.png", strategy=strategy, title=title))
        else:
            stale = out / "loss.png"
            if stale.exists():
                stale.unlink()
            how = {"closed_form": "in closed form", "nuts": "by NUTS"}.get(strategy, f"for {len(result.history)} epoch")
            print(f"no loss curve: {args.model} was fitted {how}")


def _eval_data(args: argparse.Namespace, info: dict[str, Any]) -> tuple[Any, str]:
    """The data ``eval`` scores and the name of its split."""
    from probgen.data import get_data

    if args.data is not None:
        if _is_file_source(args.data):
            if args.split not in (None, "all"):
                raise UsageError(
                    f"--split {args.split} picks a part of a bundled dataset or of the checkpoint's own data; "
                    f"--data {args.data!r} is scored whole (use --split all or leave it out)"
                )
            return _load(args.data, args.labels), "all"
        if args.labels is not None:
            raise UsageError(f"--labels applies to a data file; dataset {args.data!r} has its own labels")
        split = args.split or "test"
        return get_data(args.data, split), split
    if args.labels is not None:
        raise UsageError("--labels goes with --data FILE")
    split = args.split or "test"
    spec = info.get("split")
    if isinstance(spec, dict) and "data" in spec:
        if split == "all":
            if spec.get("file"):
                return _load(spec["data"], spec.get("labels"), label_column=spec.get("label_column")), "all"
            return get_data(spec["data"], "all"), "all"
        data = dict(make_splits(spec).parts()).get(split)
        if data is None:
            raise UsageError(f"the checkpoint's run held out no {split} split; choose another --split")
        return data, split
    source = info.get("data")
    if source is None:
        raise UsageError("the checkpoint does not name its data; pass --data NAME|FILE")
    if _is_file_source(source):
        print("probgen: warning: the checkpoint does not record its split; scoring the whole file", file=sys.stderr)
        return _load(source, None), "all"
    return get_data(source, split), split


def _cmd_eval(args: argparse.Namespace) -> None:
    checkpoint, info, path = _load_checkpoint(args.checkpoint, _check_device(args.device))
    model = checkpoint.model
    if not info.get("history"):
        print(
            f"probgen: warning: {path} records no fit (no training history): scoring an untrained model",
            file=sys.stderr,
        )
    data, split = _eval_data(args, info)
    _same_shape_model(model, data)
    import probgen as pg
    from probgen.models import GenerativeClassifier

    if not _scorable(model):  # no likelihood: the likelihood-free metrics, tuned on the training part
        tune = None
        if args.data is None and isinstance(info.get("split"), dict) and split in ("val", "test"):
            parts = dict(make_splits(info["split"]).parts())
            tune = parts.get("val") if split == "test" and parts.get("val") is not None else parts["train"]
        print(f"{data.name} [{split}], {len(data)} examples")
        scored = _score_implicit(model, data, split, tune, seed=0)
        if args.json:
            print(json.dumps({"data": data.name, **scored}))
        return

    score = pg.log_likelihood(model, data, num_samples=_num_samples(model, args.num_samples), dtype=args.dtype)
    print(f"{data.name} [{split}], {score.num_examples} examples")
    print(f"{split} NLL {score.nll:.4f} nats/example (± {score.stderr:.4f})")
    print(
        f"{split} {score.bits_per_dim:.4f} bits/dim, kind={score.kind}, method={score.method}, "
        f"samples={score.num_samples}"
    )
    if isinstance(model, GenerativeClassifier) and data.y is not None:
        import torch

        with torch.no_grad():
            predicted = model.predict(data.x.to(model.device, model.dtype))
        accuracy = (predicted.cpu() == data.y).double().mean().item()
        print(f"{split} accuracy {accuracy:.4f} ({int(round(accuracy * len(data)))}/{len(data)})")
    if args.json:
        print(json.dumps({"split": split, "data": data.name, **score.as_dict()}))


def _same_shape_model(model: Any, data: Any) -> None:
    if tuple(data.event_shape) != tuple(model.event_shape):
        raise UsageError(
            f"data {data.name!r} has examples of shape {tuple(data.event_shape)}; the checkpoint's "
            f"{model.name} expects {tuple(model.event_shape)}"
        )


def _cmd_sample(args: argparse.Namespace) -> None:
    out = Path(args.out)
    if out.suffix not in (".png", ".npy"):
        raise UsageError(f"--out must end in .png or .npy, got {out.name!r}")
    if out.is_dir():
        raise UsageError(f"--out {args.out!r} is a directory; expected a file name ending in .png or .npy")
    if out.suffix == ".png" and args.n > MAX_PNG_SAMPLES:
        raise UsageError(f"-n {args.n} is too many for one PNG grid (at most {MAX_PNG_SAMPLES}); use a .npy file")
    checkpoint, info, _ = _load_checkpoint(args.checkpoint, _check_device(args.device))
    model = checkpoint.model
    needed = args.n * math.prod(model.event_shape) * 4
    limit = available_memory() // 2
    if needed > limit:
        raise UsageError(
            f"-n {args.n} samples of shape {tuple(model.event_shape)} would need about {format_bytes(needed)}; "
            f"this machine has {format_bytes(limit * 2)} available (the limit is half of it)"
        )
    shape = info.get("image_shape")
    if out.suffix == ".png" and not shape and model.num_dims != 2:
        raise UsageError(f"cannot draw {model.num_dims}-D non-image samples as PNG; use .npy")
    import numpy as np
    import pyro

    pyro.set_rng_seed(args.seed)
    x = model.sample(args.n).cpu()
    if not out.parent.exists():
        out.parent.mkdir(parents=True)
    if out.suffix == ".npy":
        from probgen.checkpoint import current_umask

        fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                np.save(fh, x.detach().cpu().numpy())
            os.chmod(tmp, 0o666 & ~current_umask())
            os.replace(tmp, out)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    else:
        from probgen.plots import image_grid, scatter_2d

        if shape:
            vmax = model.num_levels - 1 if model.num_levels else None
            image_grid(x, shape, out, vmax=vmax, title=f"{model.name}: {args.n} samples (seed {args.seed})")
        else:
            scatter_2d(x, out, title=model.name)
    print(f"wrote {args.n} samples to {out}")


def _compare_config(args: argparse.Namespace, spec: dict[str, Any], names: Sequence[str]) -> tuple[dict, list]:
    """The experiment ``compare`` runs on one dataset: every named model that suits it and has a
    comparable log p(x), one seed, each model's registered budget preset (``--budget``: its compare
    budget or its full defaults, in epochs), optionally capped by ``--time-limit`` seconds."""
    from probgen.experiments import validate_config
    from probgen.models import MODELS

    if spec.get("file"):
        data = {"file": spec["data"], "val_frac": spec["val_frac"], "test_frac": spec["test_frac"]}
        data |= {"split_seed": spec["split_seed"]}
        data |= {
            k: spec[k] for k in ("labels", "label_column", "val", "val_labels", "test", "test_labels") if spec.get(k)
        }
    else:
        data = {"name": spec["data"]}
    train = make_splits(spec).train
    models, skipped = [], []
    for name in names:
        if not MODELS[name].suits(train.support, train.y is not None):
            continue
        import pyro

        pyro.set_rng_seed(model_seed(args.seed, name))
        model = _build(name, train, {})
        # one table of log p(x) (implicit models: likelihood-free columns), no conditional log p(x | y)
        if model.conditional:
            skipped.append(name)
        else:
            # the preset's epochs, counted (never seconds), unless the command line sets them for all
            budget = {k: v for k, v in MODELS[name].budget(args.budget).items() if getattr(args, k, None) is None}
            models.append({"name": name, "fit": budget})
    if not models:
        raise UsageError(f"no registered model suits {train.name!r} ({train.support})")
    fit = {k: getattr(args, k) for k in FIT_KEYS if k not in ("seed", "device") and getattr(args, k) is not None}
    fit |= {k: getattr(args, k) for k in ("device", "dtype") if getattr(args, k) is not None}
    if args.time_limit is not None:  # an optional cap: a row it cut says so
        fit["time_limit"] = float(args.time_limit)
    raw = {"name": f"compare-{train.name}", "seeds": [args.seed], "data": data, "fit": fit, "models": models}
    raw |= {"eval": {"num_samples": args.num_samples}, "samples": 64 if args.out else 0}
    return validate_config(raw, base=Path.cwd(), source="compare"), skipped


def _has_results(out: Path) -> bool:
    return any(out.glob("*/jobs/*/result.json"))


def _cmd_compare(args: argparse.Namespace) -> int:
    """``compare``: a preset of ``run`` (the same jobs, run directory and tables) printing one table per dataset."""
    import probgen as pg
    from probgen.experiments import run_experiment
    from probgen.experiments.tables import job_note
    from probgen.models import MODELS

    names = args.models or sorted(MODELS)
    _check_model_name(names)
    _check_device(args.device)
    if args.lr_decay is not None and not 0 < args.lr_decay <= 1:
        raise UsageError(f"--lr-decay must be in (0, 1], got {args.lr_decay!r}")
    sources = args.data or ["digits", "digits-binary"]
    specs = [_data_spec(args, source) for source in sources]
    # a failed or interrupted compare keeps the jobs it finished (the same command continues them)
    out_cm = _output_dir(args.out, keep=_has_results) if args.out else tempfile.TemporaryDirectory(prefix="probgen-")
    failed: list[str] = []
    # CSV and JSON tables stay machine-readable on stdout; what happened goes to stderr
    info = sys.stdout if args.format == "markdown" else sys.stderr
    with out_cm as out_path:
        out = Path(out_path)
        for spec in specs:
            config, skipped = _compare_config(args, spec, names)
            splits = make_splits(spec)
            print(splits.describe(), file=info)
            train = splits.train
            run_dir = out / train.name
            log = (lambda line: None) if args.quiet else (lambda line: print(line, file=sys.stderr))
            try:
                done = run_experiment(config, run_dir, progress=not args.quiet, log=log)
            except ValueError as err:
                raise UsageError(f"{train.name}: {_first_line(err)}") from err
            rows = [{**r, "seconds": _job_seconds(r), "note": job_note(r)} for r in done["jobs"]]
            failed += [f"{train.name}: {r['job']}: {r['error']}" for r in rows if r.get("error")]
            split = rows[0]["split"]
            table = pg.inference.ComparisonTable(rows=rows, dataset=train.name)
            shown = pg.inference.ComparisonTable(
                rows=[{**r, "seconds": None if r["seconds"] is None else format_seconds(r["seconds"])} for r in rows],
                dataset=train.name,
            )
            if args.format == "markdown":  # a terminal: the likelihoods, then the likelihood-free metrics apart
                _print_markdown_tables(shown, train.name, split, rows[0]["num_examples"])
            else:
                print({"csv": shown.to_csv, "json": table.to_json}[args.format]())
            if skipped:
                print(f"not in the table (conditional: log p(x | y)): {', '.join(skipped)}", file=info)
            if args.out:
                _wrote(_write_text(out / f"compare-{train.name}.json", table.to_json()), info)
                if any(r.get("bits_per_dim") is not None for r in rows):
                    _wrote(table.plot(out / f"compare-{train.name}.png"), info)
                _wrote(run_dir, info)
    if failed:  # every table is printed and saved; the same command retries what failed
        for line in failed:
            print(f"probgen: error: {line}", file=sys.stderr)
        return 1
    return 0


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


def _cmd_report(args: argparse.Namespace) -> None:
    """``report RUN_DIR``: (re)write RUN_DIR/report.html from its results.json and figures."""
    from probgen.experiments.report import write_report

    _wrote(write_report(Path(args.run_dir)))


def _cmd_run(args: argparse.Namespace) -> int:
    """``run CONFIG.toml``: check the whole config, then run (or continue) its jobs into --out."""
    from probgen.experiments import expand_jobs, load_config, run_experiment, validate_config
    from probgen.experiments.jobs import count_jobs

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
    log = (lambda line: None) if args.quiet else print
    done = run_experiment(config, out, config_text=path.read_text(encoding="utf-8"), progress=not args.quiet, log=log)
    from probgen.experiments.tables import summary_markdown

    print(summary_markdown(done["summary"]))
    for file in done["files"]:
        _wrote(file)
    failed = [r for r in done["jobs"] if r.get("error")]
    for row in failed:  # the tables hold every other job; the same command retries these
        print(f"probgen: error: {row['job']}: {row['error']}", file=sys.stderr)
    return 1 if failed else 0


# ----------------------------------------------------------------------------- the parser


def _fit_examples() -> str:
    """``fit --help`` examples, one per model kind, built from each kind's real constructor arguments."""
    from probgen.models import MODELS

    lines = ["examples (one per kind of model):"]
    picks = (
        ("method", '{"method": "map"}', "iris", "classifiers (Naive Bayes, LDA, QDA)"),
        ("estimator", '{"estimator": "map"}', "digits-binary", "factorized models"),
        ("latent_dim", '{"latent_dim": 4}', "digits-binary", "VAEs"),
    )
    for key, example, data, kind in picks:
        support = "real" if data == "iris" else "binary"
        for name, spec in sorted(MODELS.items()):
            cls = spec.cls
            if key not in cls.accepted_parameters() or cls.conditional:
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


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("probgen")
    except Exception:  # noqa: BLE001 - not installed: read the package
        import probgen

        return getattr(probgen, "__version__", "unknown")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="probgen", description="Fit, score, sample and compare generative models.")
    parser.add_argument("--version", action="version", version=f"probgen {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)

    p = sub.add_parser("list", help="registered models and bundled datasets")
    p.set_defaults(func=_cmd_list)

    p = sub.add_parser(
        "fit",
        help="fit a model and save a checkpoint",
        epilog=_fit_examples(),
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
        "--nproc", type=_positive_int, default=1,
        help="processes on this machine, each fitting its part of every batch (gloo on cpu, nccl on cuda); "
        "across nodes use torchrun (docs/scale.md)",
    )  # fmt: skip
    p.set_defaults(func=_cmd_fit)

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
    p.set_defaults(func=_cmd_eval)

    p = sub.add_parser("sample", help="draw samples from a checkpoint")
    p.add_argument("checkpoint")
    p.add_argument("-n", type=_positive_int, default=64, help="number of samples (default 64)")
    p.add_argument("--out", required=True, help="a .png (image grid or 2-D scatter) or .npy file")
    p.add_argument("--seed", type=_seed_int, default=0)
    p.add_argument("--device", default=None, help="sample on cpu, cuda or cuda:N (default cpu)")
    p.set_defaults(func=_cmd_sample)

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
        "--time-limit", type=_positive_float,
        help="optional cap on each model's training seconds; a row it cut says so (such numbers depend on the machine)",
    )  # fmt: skip
    _add_fit_options(p)
    _add_dtype_option(p, "fit and score in this dtype (default float32)")
    p.set_defaults(func=_cmd_compare)

    p = sub.add_parser(
        "run",
        help="run an experiment config (TOML): data, models, budget, seeds; continues where it stopped",
        description="Check CONFIG.toml in full, then fit and score every job (models x grid x seeds) into a run "
        "directory; re-running the same command skips finished jobs and resumes interrupted ones.",
    )
    p.add_argument("config", help="a TOML experiment config (see examples/configs/)")
    p.add_argument("--out", help="run directory (default runs/<config name>)")
    p.add_argument("--epochs", type=_positive_int, help="override every model's epochs (e.g. a quick smoke run)")
    p.add_argument("--time-limit", type=_positive_float, help="override every job's training seconds at most")
    p.add_argument("--num-samples", type=_positive_int, help="override the evaluation's K")
    p.add_argument("--seeds", type=_seed_int, nargs="+", help="override the config's seeds")
    p.add_argument("--dry-run", action="store_true", help="check the config and list the jobs; fit nothing")
    p.add_argument("--quiet", action="store_true", help="no progress bars or job lines")
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser(
        "report",
        help="write report.html (tables and every figure) into a run directory",
        description="Write RUN_DIR/report.html: the results tables and every figure of a run directory made by "
        "`probgen run` or `probgen compare --out`, one static page that loads images by relative paths.",
    )
    p.add_argument("run_dir", help="a run directory (it holds results.json)")
    p.set_defaults(func=_cmd_report)
    return parser


def _one_line_warnings(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ANN001
    print(f"probgen: warning: {_first_line(Warning(str(message)))}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``probgen`` command line; return the exit status (0, 1 internal error, 2 user error, 130)."""
    from probgen.experiments.config import ConfigError

    with warnings.catch_warnings():
        warnings.showwarning = _one_line_warnings
        try:
            argv = list(sys.argv[1:] if argv is None else argv)
            try:
                args = _parser().parse_args(argv)
            except SystemExit as exit_:
                return exit_.code if isinstance(exit_.code, int) else 2
            args.argv = argv
            status = args.func(args)
            if status:
                return status
        except BrokenPipeError:  # the reader of our output went away (e.g. `| head`): stop quietly
            with contextlib.suppress(OSError, ValueError):
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 141
        except KeyboardInterrupt:
            print("probgen: interrupted (the last complete checkpoint stays; continue with --resume)", file=sys.stderr)
            return 130
        except MemoryError:
            print(
                "probgen: error: out of memory; try a smaller --batch-size, -n or data file",
                file=sys.stderr,
            )
            return 2
        except ConfigError as err:  # every problem of a config, one line each
            for line in err.errors:
                print(f"probgen: error: {err.source}: {line}", file=sys.stderr)
            return 2
        except (ValueError, TypeError, OSError, KeyError, UnicodeError, json.JSONDecodeError) as err:
            if isinstance(err, OSError) and err.filename is not None and err.strerror:
                message = f"{err.strerror}: {err.filename}"
            else:
                message = _first_line(err)
            print(f"probgen: error: {message}", file=sys.stderr)
            return 2
        except RuntimeError as err:
            text = str(err).lower()
            if "out of memory" in text or "can't allocate" in text or "not enough memory" in text:
                print(f"probgen: error: out of memory ({_first_line(err)})", file=sys.stderr)
                return 2
            print(f"probgen: internal error: {_first_line(err)}; please report it at {ISSUES_URL}", file=sys.stderr)
            return 1
        except Exception as err:  # noqa: BLE001 - the last line of defence: one line, never a traceback
            print(
                f"probgen: internal error: {type(err).__name__.lstrip('_')}: {_first_line(err)}; "
                f"please report it at {ISSUES_URL}",
                file=sys.stderr,
            )
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
