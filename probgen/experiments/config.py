"""Experiment configs: a TOML file read into plain dicts, checked in full before anything is fitted.

Every problem is one line ``KEY = VALUE: what is expected``, and all of them are reported at
once (a :class:`ConfigError` holds the list), so a config is fixed in one edit, not one error at
a time. Models are checked through the registry and the model contract only (``suits``,
``accepted_kwargs``, building the model on the data), so any registered family can be used. A
``[[models]]`` entry with ``module = "mymodels.py"`` (relative to the config) takes ``name`` from
that file of the user's own — a GenerativeModel subclass or a function ``name(event_shape,
support, **args)`` returning a :class:`~probgen.models.PyroModel` — registered on reading the
config (:func:`probgen.models.plugins.load_file`), so the jobs use it like any registered model.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from probgen.inference.options import EVAL_METHODS  # noqa: F401 - named by the docs' config page
from probgen.inference.options import EVAL_OPTIONS as _EVAL
from probgen.inference.options import FIT_OPTIONS as _FIT
from probgen.inference.options import is_int as _is_int
from probgen.inference.options import is_number as _is_num
from probgen.models.vocabulary import accepted_kwargs, renamed_for

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

__all__ = [
    "ConfigError",
    "load_config",
    "validate_config",
    "FIT_OPTIONS",
    "EVAL_OPTIONS",
    "EXECUTOR_KEYS",
    "DEFAULT_THREADS",
    "PREPROCESS",
]

PREPROCESS = ("none", "binarize", "dequantize")
#: fit and eval options a config may set, in the words and checks of the one options table
#: (:mod:`probgen.inference.options`, which ``probgen.fit`` and the CLI read); ``time_limit`` is per job
FIT_OPTIONS: dict[str, tuple[str, Any]] = {k: (o.expected, o.check) for k, o in _FIT.items()}
EVAL_OPTIONS: dict[str, tuple[str, Any]] = {k: (o.expected, o.check) for k, o in _EVAL.items()}
DATA_KEYS: dict[str, tuple[str, Any]] = {
    "name": ("a bundled dataset name (see `probgen list`)", lambda v: isinstance(v, str) and bool(v)),
    "file": ("a path to a .npy/.npz/.csv/IDX file", lambda v: isinstance(v, str) and bool(v)),
    "labels": ("a path to a labels file", lambda v: isinstance(v, str)),
    "label_column": (
        "the CSV column of the labels: its header name or an integer index",
        lambda v: (isinstance(v, str) and bool(v)) or (isinstance(v, int) and not isinstance(v, bool)),
    ),
    "val": ("a path to a validation file", lambda v: isinstance(v, str)),
    "val_labels": ("a path to a labels file", lambda v: isinstance(v, str)),
    "test": ("a path to a test file", lambda v: isinstance(v, str)),
    "test_labels": ("a path to a labels file", lambda v: isinstance(v, str)),
    "val_frac": ("a fraction in [0, 1)", lambda v: _is_num(v) and 0 <= v < 1),
    "test_frac": ("a fraction in [0, 1)", lambda v: _is_num(v) and 0 <= v < 1),
    "split_seed": ("a non-negative integer", lambda v: _is_int(v) and v >= 0),
    "preprocess": (f"one of {', '.join(map(repr, PREPROCESS))}", lambda v: v in PREPROCESS),
}
MODEL_KEYS = ("name", "module", "label", "args", "grid", "fit", "eval")
TOP_KEYS = ("name", "seeds", "data", "fit", "eval", "models", "samples", "threads", "executor")
#: torch's intra-op threads per job, unless ``threads`` says otherwise: parallel reductions (in
#: convolutions, attention, large matrix products) round in another order with another thread
#: count, so a fixed count, not the machine's cores, gives the same numbers on every machine
DEFAULT_THREADS = 1
#: ``[executor]``: where the jobs run (see :func:`probgen.experiments.executors.make_executor`);
#: the command line's ``--jobs``/``--executor``/``--scheduler``/``--retries`` override it
EXECUTOR_KEYS: dict[str, tuple[str, Any]] = {
    "kind": ("'local' or 'dask'", lambda v: v in ("local", "dask")),
    "jobs": ("a positive integer (worker processes)", lambda v: _is_int(v) and v >= 1),
    "scheduler": ("a Dask scheduler address such as 'tcp://host:8786'", lambda v: isinstance(v, str) and bool(v)),
    "retries": ("a non-negative integer (runs again of a job whose worker died)", lambda v: _is_int(v) and v >= 0),
}


class ConfigError(ValueError):
    """A config that cannot be run: ``errors`` holds one line per problem.

    Example:
        >>> try:
        ...     validate_config({"data": {"name": "digits"}, "seeds": -1, "models": [{"name": "vae", "epochs": 3}]})
        ... except ConfigError as err:  # every problem at once, one line each
        ...     print(*err.errors, sep="\\n")
        seeds = -1: expected a non-negative integer or a non-empty list of them
        models[0].epochs: unknown key; expected one of name, module, label, args, grid, fit, eval
        >>> issubclass(ConfigError, ValueError)
        True
    """

    def __init__(self, errors: list[str], source: str = "config") -> None:
        self.errors, self.source = list(errors), source
        super().__init__(f"{source}: " + "; ".join(self.errors))


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def load_config(path: str | Path) -> dict[str, Any]:
    """Read a TOML config; a syntax error is a :class:`ConfigError` naming the line.

    Example:
        >>> import os, tempfile
        >>> path = os.path.join(tempfile.mkdtemp(), "run.toml")
        >>> with open(path, "w") as fh:
        ...     _ = fh.write('seeds = [0, 1]\\n[data]\\nname = "digits-binary"\\n[[models]]\\nname = "vae"\\n')
        >>> load_config(path)
        {'seeds': [0, 1], 'data': {'name': 'digits-binary'}, 'models': [{'name': 'vae'}]}
        >>> with open(path, "w") as fh:
        ...     _ = fh.write("seeds = [0, 1]\\nname = \\n")
        >>> load_config(path)
        Traceback (most recent call last):
        ...
        probgen.experiments.config.ConfigError: ...run.toml: not valid TOML: Invalid value (at line 2, column 8)
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError([f"{str(path)!r} does not exist or is not a file; expected a TOML config"], str(path))
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as err:
        raise ConfigError([f"not valid TOML: {err}"], str(path)) from None
    except UnicodeDecodeError:
        raise ConfigError(["not a UTF-8 text file; expected a TOML config"], str(path)) from None


def _check_table(table: Any, key: str, spec: dict[str, tuple[str, Any]], errors: list[str]) -> dict[str, Any]:
    if not isinstance(table, dict):
        errors.append(f"{key} = {_show(table)}: expected a table of {', '.join(spec)}")
        return {}
    for name, value in table.items():
        if name not in spec:
            errors.append(f"{key}.{name}: unknown key; expected one of {', '.join(spec)}")
        elif not spec[name][1](value):
            errors.append(f"{key}.{name} = {_show(value)}: expected {spec[name][0]}")
    return {k: v for k, v in table.items() if k in spec and spec[k][1](v)}


def _check_seeds(value: Any, errors: list[str]) -> list[int]:
    seeds = [value] if _is_int(value) else value
    if not isinstance(seeds, list) or not seeds or not all(_is_int(s) and s >= 0 for s in seeds):
        errors.append(f"seeds = {_show(value)}: expected a non-negative integer or a non-empty list of them")
        return [0]
    if len(set(seeds)) != len(seeds):
        errors.append(f"seeds = {_show(value)}: expected distinct seeds")
    return list(dict.fromkeys(seeds))


def _check_data(data: Any, base: Path, errors: list[str]) -> dict[str, Any]:
    if data is None:
        errors.append("data: missing table; expected [data] with name = 'digits' (or file = 'path')")
        return {}
    table = _check_table(data, "data", DATA_KEYS, errors)
    if isinstance(data, dict) and ("name" in data) == ("file" in data):
        errors.append("data: expected exactly one of name (a bundled dataset) or file (a path)")
    if "name" in table:
        extra = [k for k in table if k not in ("name", "preprocess")]
        if extra:
            errors.append(f"data.{extra[0]}: applies to data.file; bundled dataset {table['name']!r} has its own split")
    for key in ("file", "labels", "val", "val_labels", "test", "test_labels"):
        if key in table:
            path = Path(table[key]).expanduser()
            table[key] = str(path if path.is_absolute() else (base / path).resolve())
            if not Path(table[key]).is_file():
                errors.append(f"data.{key} = {_show(data[key])}: expected an existing file (looked at {table[key]})")
    if "labels" in table and "label_column" in table:
        errors.append("data.label_column: also data.labels; expected the labels in one place (a file or a column)")
    if table.get("val_frac", 0) + table.get("test_frac", 0) >= 1:
        errors.append(f"data.val_frac + data.test_frac = {table['val_frac'] + table['test_frac']}: expected < 1")
    return table


def _user_model(entry: dict[str, Any], key: str, base: Path, errors: list[str]) -> str | None:
    """The registered name of the model an entry takes from a file of the user's own
    (``module = "mymodels.py"``, relative to the config, with ``name`` its attribute), or None
    after reporting why it cannot be used."""
    from probgen.models.plugins import load_file

    module, name = entry["module"], entry.get("name")
    if not isinstance(module, str) or not module.endswith(".py"):
        errors.append(f"{key}.module = {_show(module)}: expected the path of a Python file (.py) defining the model")
        return None
    if not isinstance(name, str) or not name.isidentifier():
        errors.append(f"{key}.name = {_show(name)}: expected the name of a model class or factory in {module}")
        return None
    path = Path(module).expanduser()
    path = path if path.is_absolute() else (base / path).resolve()
    try:
        return load_file(path, name)
    except (ValueError, TypeError) as err:
        errors.append(f"{key}.module = {_show(module)}: {err}")
        return None


def _check_models(models: Any, errors: list[str], base: Path = Path(".")) -> list[dict[str, Any]]:
    from probgen.models import MODELS

    if not isinstance(models, list) or not models or not all(isinstance(m, dict) for m in models):
        errors.append(f"models = {_show(models)}: expected one or more [[models]] tables with name = '...'")
        return []
    checked = []
    for i, entry in enumerate(models):
        key, before = f"models[{i}]", len(errors)
        for name in entry:
            if name not in MODEL_KEYS:
                errors.append(f"{key}.{name}: unknown key; expected one of {', '.join(MODEL_KEYS)}")
        name = entry.get("name")
        label_default = name
        if "module" in entry:  # the user's own file: its model is registered, then used by that name
            name = _user_model(entry, key, base, errors)
            if name is None:
                continue
        if name not in MODELS:
            known = ", ".join(sorted(MODELS))
            errors.append(f"{key}.name = {_show(name)}: expected a registered model, one of {known}")
            continue
        label = entry.get("label", label_default)
        if not isinstance(label, str) or not label or "/" in label or label.startswith("."):
            errors.append(f"{key}.label = {_show(label)}: expected a non-empty name without '/'")
            label = name
        args, grid = entry.get("args", {}), entry.get("grid", {})
        for part, value in (("args", args), ("grid", grid)):
            if not isinstance(value, dict):
                errors.append(f"{key}.{part} = {_show(value)}: expected a table of the model's arguments")
        args, grid = (args if isinstance(args, dict) else {}), (grid if isinstance(grid, dict) else {})
        for arg, values in grid.items():
            if not isinstance(values, list) or not values:
                errors.append(f"{key}.grid.{arg} = {_show(values)}: expected a non-empty list of values to sweep")
        # deprecated names (before the one vocabulary) still accepted; building the model warns
        accepted = set(accepted_kwargs(MODELS[name].cls)) | set(renamed_for(MODELS[name].cls)) | {"dequantize"}
        for arg in [*args, *grid]:
            if arg not in accepted:
                where = "grid" if arg in grid else "args"
                errors.append(
                    f"{key}.{where}.{arg}: {name} has no argument {arg!r}; it accepts {', '.join(sorted(accepted))}"
                )
        both = sorted(set(args) & set(grid))
        if both:
            errors.append(f"{key}.grid.{both[0]}: also set in {key}.args; expected it in one of them")
        fit = _check_table(entry.get("fit", {}), f"{key}.fit", FIT_OPTIONS, errors)
        evaluation = _check_table(entry.get("eval", {}), f"{key}.eval", EVAL_OPTIONS, errors)
        if len(errors) == before:  # an entry with errors is not built (its errors are reported once)
            checked.append(
                {"index": i, "name": name, "label": label, "args": args, "grid": grid}
                | {"fit": fit, "eval": evaluation}
            )
    labels = [m["label"] for m in checked]
    for label in sorted({x for x in labels if labels.count(x) > 1}):
        errors.append(f"models: label {label!r} is used by several entries; give each a distinct label = '...'")
    return checked


def _check_executor(table: Any, errors: list[str]) -> dict[str, Any]:
    """The ``[executor]`` table: its keys, and a scheduler only with ``kind = "dask"``."""
    if isinstance(table, dict) and "threads" in table:  # what a job computes depends on it: not the executor's
        errors.append(f"executor.threads = {_show(table['threads'])}: expected it at the top level (threads = N)")
        table = {k: v for k, v in table.items() if k != "threads"}
    checked = _check_table(table, "executor", EXECUTOR_KEYS, errors)
    if "scheduler" in checked and checked.get("kind") != "dask":
        errors.append(f"executor.scheduler = {_show(checked['scheduler'])}: expected it with kind = 'dask'")
    if "scheduler" in checked and "jobs" in checked:
        errors.append("executor.jobs: also executor.scheduler; expected one (jobs sizes a LocalCluster)")
    return checked


def validate_config(raw: dict[str, Any], base: str | Path = ".", source: str = "config") -> dict[str, Any]:
    """The config with its keys checked and defaults filled in, or a :class:`ConfigError` listing
    every problem (one line each). Paths are resolved against ``base`` (the config's folder).

    The data are loaded and every job's model is built on them (cheap: no fitting) so that a
    model unsuited to the data, an impossible argument or an evaluation method the model's
    density kind does not allow is reported here.

    Example:
        >>> config = validate_config({"data": {"name": "digits-binary"}, "models": [{"name": "independent-bernoulli"}]})
        >>> config["seeds"], config["samples"], config["models"][0]["label"]  # defaults filled in
        ([0], 64, 'independent-bernoulli')
        >>> validate_config({"data": {"name": "digits-binary"}, "models": [{"name": "independent-gaussian"}]})
        Traceback (most recent call last):
        ...
        probgen.experiments.config.ConfigError: config: models[0].name = 'independent-gaussian': does not suit
        'digits-binary' (support 'binary'); it needs real data
    """
    errors: list[str] = []
    if not isinstance(raw, dict):
        raise ConfigError([f"expected a TOML table, got {type(raw).__name__}"], source)
    for key in raw:
        if key not in TOP_KEYS:
            errors.append(f"{key}: unknown key; expected one of {', '.join(TOP_KEYS)}")
    name = raw.get("name", Path(source).stem if source != "config" else "experiment")
    if not isinstance(name, str) or not name:
        errors.append(f"name = {_show(name)}: expected a non-empty string")
    samples = raw.get("samples", 64)
    if not (_is_int(samples) and 0 <= samples <= 1024):
        errors.append(f"samples = {_show(samples)}: expected an integer 0..1024 (samples drawn per model)")
    threads = raw.get("threads", DEFAULT_THREADS)
    if not (_is_int(threads) and 1 <= threads <= 1024):
        errors.append(f"threads = {_show(threads)}: expected an integer 1..1024 (torch threads per job)")
    seeds = _check_seeds(raw.get("seeds", [0]), errors)
    before = len(errors)
    data = _check_data(raw.get("data"), Path(base), errors)
    data_ok = len(errors) == before
    config = {
        "name": name,
        "seeds": seeds,
        "data": data,
        "fit": _check_table(raw.get("fit", {}), "fit", FIT_OPTIONS, errors),
        "eval": _check_table(raw.get("eval", {}), "eval", EVAL_OPTIONS, errors),
        "models": _check_models(raw.get("models"), errors, Path(base)),
        "samples": samples,
        "threads": threads,
        "executor": _check_executor(raw.get("executor", {}), errors),
    }
    if data_ok and config["models"]:  # build the valid entries' models on the data
        from probgen.experiments.jobs import check_jobs

        errors += check_jobs(config)
    if errors:
        raise ConfigError(errors, source)
    return config
