"""From a checked config to jobs: the data with its split and preprocessing, one job per model
variant (a point of its parameter grid) and seed, and each job's model built on the data."""

from __future__ import annotations

import collections
import itertools
import json
import math
import zlib
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from probgen._checks import first_line

__all__ = [
    "Job",
    "expand_jobs",
    "count_jobs",
    "load_splits",
    "build_job_model",
    "check_jobs",
    "variant_label",
    "MAX_JOBS",
    "model_seed",
]


@dataclass(frozen=True)
class Job:
    """One fit and evaluation: a model variant under one seed.

    Attributes:
        id: the job's folder name, e.g. ``vae-beta=0.5-seed=1``.
        variant: the model's label with its grid point, e.g. ``vae[beta=0.5]`` (seeds aggregate over it).
        name: the registered model name.
        args: the model's keyword arguments (``dequantize`` taken out).
        seed: the config's seed; ``model_seed`` is the one used, derived from it and ``variant``.

    Example:
        >>> from probgen.experiments import validate_config
        >>> config = validate_config({
        ...     "data": {"name": "digits-binary"}, "seeds": [3],
        ...     "models": [{"name": "independent-bernoulli", "args": {"method": "map"}}],
        ... })
        >>> (job,) = expand_jobs(config)
        >>> job.id, job.name, job.args, job.seed
        ('independent-bernoulli-seed=3', 'independent-bernoulli', {'method': 'map'}, 3)
        >>> job.model_seed == model_seed(3, job.variant), job.spec() == expand_jobs(config)[0].spec()
        (True, True)
    """

    id: str
    variant: str
    label: str
    name: str
    args: dict[str, Any]
    dequantize: bool
    seed: int
    model_seed: int
    fit: dict[str, Any] = field(default_factory=dict)
    eval: dict[str, Any] = field(default_factory=dict)
    grid: dict[str, Any] = field(default_factory=dict)

    def spec(self) -> dict[str, Any]:
        """What identifies the job's result (JSON-able): a finished job is reused only if it matches."""
        return json.loads(json.dumps(asdict(self)))


def variant_label(label: str, point: dict[str, Any]) -> str:
    """``label`` with a grid point: ``vae[beta=0.5,latent_dim=4]`` (``label`` alone without one)."""
    if not point:
        return label
    return f"{label}[{','.join(f'{k}={json.dumps(v)}' for k, v in point.items())}]"


def _safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_.=," else "-" for c in text).strip("-")


#: the most jobs a config may expand to: more is a grid written by mistake (each job is a fit)
MAX_JOBS = 100_000


def count_jobs(config: dict[str, Any]) -> int:
    """How many jobs a checked config expands to, without expanding it: per model entry the
    product of its grid's lengths, times the number of seeds."""
    return len(config["seeds"]) * sum(math.prod(len(v) for v in entry["grid"].values()) for entry in config["models"])


def model_seed(seed: int, name: str) -> int:
    """The seed of model ``name`` in a run seeded ``seed``: independent of which other models run.

    Uses CRC-32 (stable across processes, unlike Python's salted ``hash``).

    Example:
        >>> model_seed(0, "vae") == model_seed(0, "vae") != model_seed(1, "vae")
        True
    """
    return zlib.crc32(f"{seed}:{name}".encode()) & 0x7FFFFFFF


def _job(config: dict[str, Any], entry: dict[str, Any], point: dict[str, Any], seed: int) -> Job:
    """The job of one model entry at one grid point and seed."""
    from probgen.models import MODELS

    args = {**entry["args"], **point}
    dequantize = bool(args.pop("dequantize", config["data"].get("preprocess") == "dequantize"))
    variant = variant_label(entry["label"], point)
    fit = {**MODELS[entry["name"]].fit_defaults, **config["fit"], **entry["fit"]}
    evaluation = {"method": "auto", "split": "test", **config["eval"], **entry["eval"]}
    job_id = _safe(f"{entry['label']}-{'-'.join(f'{k}={v}' for k, v in point.items())}-seed={seed}")
    job_id = job_id.replace("--", "-")
    return Job(job_id, variant, entry["label"], entry["name"], args, dequantize, seed, model_seed(seed, variant),
               fit, evaluation, point)  # fmt: skip


def _points(grid: dict[str, list[Any]]) -> Iterator[dict[str, Any]]:
    keys = sorted(grid)
    for values in itertools.product(*(grid[k] for k in keys)):
        yield dict(zip(keys, values, strict=True))


def expand_jobs(config: dict[str, Any]) -> list[Job]:
    """One job per model entry, grid point (the Cartesian product of its ``grid`` lists, keys in
    sorted order) and seed; fit and eval options are the model's defaults, then the config's
    ``[fit]``/``[eval]``, then the entry's own.

    Example:
        >>> from probgen.experiments import validate_config
        >>> config = validate_config({
        ...     "data": {"name": "digits-binary"}, "seeds": [0, 1], "fit": {"epochs": 5},
        ...     "models": [{"name": "independent-bernoulli", "label": "bern", "grid": {"method": ["map", "mle"]},
        ...                 "fit": {"epochs": 2}}],
        ... })
        >>> jobs = expand_jobs(config)
        >>> [job.id for job in jobs]  # 2 grid points x 2 seeds
        ['bern-method=map-seed=0', 'bern-method=map-seed=1', 'bern-method=mle-seed=0', 'bern-method=mle-seed=1']
        >>> jobs[0].variant, jobs[0].fit["epochs"]  # the entry's epochs win over the config's
        ('bern[method="map"]', 2)
    """
    total = count_jobs(config)
    if total > MAX_JOBS:
        raise ValueError(f"the config expands to {total:,} jobs; expected at most {MAX_JOBS:,} (narrow the grid)")
    jobs = [
        _job(config, entry, point, seed)
        for entry in config["models"]
        for point in _points(entry["grid"])
        for seed in config["seeds"]
    ]
    clashes = sorted(i for i, n in collections.Counter(j.id for j in jobs).items() if n > 1)
    if clashes:
        raise ValueError(f"jobs {clashes} would share a folder; give the model entries distinct labels")
    return jobs


def _probe_points(grid: dict[str, list[Any]]) -> Iterator[dict[str, Any]]:
    """The grid points that validation builds: the first value of every key, then each other
    value of one key with the rest at their first (as many builds as grid values, not points)."""
    keys = sorted(grid)
    first = {k: grid[k][0] for k in keys}
    yield first
    for k in keys:
        for value in grid[k][1:]:
            yield first | {k: value}


def load_splits(data: dict[str, Any]) -> Any:
    """Train/val/test :class:`~probgen.data.parts.Splits` of the config's ``[data]``, preprocessed.

    Example:
        >>> import probgen as pg
        >>> splits = load_splits({"name": "digits-binary"})
        >>> len(splits.train), len(splits.val), len(splits.test)  # the digits protocol
        (1000, 350, 447)
        >>> binarized = load_splits({"name": "digits", "preprocess": "binarize"})
        >>> binarized.train.support, bool((binarized.train.x == pg.load_dataset("digits-binary").x).all())
        ('binary', True)
    """
    from probgen.data.parts import make_splits

    if "name" in data:
        spec = {"data": data["name"], "file": False}
    else:
        spec = {"data": data["file"], "file": True, "val_frac": data.get("val_frac", 0.1)}
        spec |= {"test_frac": data.get("test_frac", 0.2), "split_seed": data.get("split_seed", 0)}
        spec |= {
            k: data[k] for k in ("labels", "label_column", "val", "val_labels", "test", "test_labels") if k in data
        }
    splits = make_splits(spec)
    if data.get("preprocess") == "binarize":
        for part in ("train", "val", "test"):
            if getattr(splits, part) is not None:
                setattr(splits, part, binarized(getattr(splits, part)))
    return splits


def binarized(data: Any) -> Any:
    """k-level data as binary: level ``>= (k - 1) / 2`` is 1 (digits' 0..16 become pixel >= 8)."""
    from probgen.data import Dataset, binarize, parse_support

    kind, levels = parse_support(data.support)
    if kind != "discrete":
        raise ValueError(
            f"data.preprocess = 'binarize': {data.name!r} has support {data.support!r}; expected k-level data"
        )
    x = binarize(data.x / (levels - 1), 0.5)
    return Dataset(x, data.y, "binary", f"{data.name}-binarized", data.image_shape, data.classes)


def build_job_model(job: Job, train: Any) -> Any:
    """The job's untrained model on ``train`` (a Dataset); a dequantized job wraps a model of real
    data in :class:`~probgen.models.Dequantized`, so its likelihood stays one of the k-level data."""
    from probgen.models import MODELS, Dequantized, check_kwargs

    cls = MODELS[job.name].cls
    args = {k: tuple(v) if isinstance(v, list) else v for k, v in job.args.items()}  # TOML arrays: tuples
    if not job.dequantize:
        return cls.from_dataset(train, **args)
    check_kwargs(cls, args)
    if "real" not in cls.supports or cls.needs_labels:
        raise ValueError(f"{job.name} cannot be dequantized: expected an unlabelled model of real data")
    return Dequantized(train.event_shape, train.support, base=cls(train.event_shape, "real", **args))


def _density_allows(density: str, method: str) -> bool:
    if method == "auto":
        return True
    if density in ("exact", "estimate"):
        return method == "exact"
    return density == "lower_bound" and method in ("iwae", "elbo", "ais")


def check_jobs(config: dict[str, Any]) -> list[str]:
    """One line per job that cannot run: a model unsuited to the data, arguments it refuses, an
    evaluation method its density kind does not allow, a held-out split the data lack.

    Models are built for each grid value (:func:`_probe_points`), not for each point of the
    grid's product, so checking costs as many builds as the grids have values; a combination
    that only fails together fails its own job when it runs (its row says why)."""
    from probgen.models import MODELS

    try:
        splits = load_splits(config["data"])
    except (ValueError, TypeError, OSError) as err:
        return [f"data = {json.dumps(config['data'])}: {first_line(err)}"]
    total = count_jobs(config)
    if total > MAX_JOBS:
        return [f"models: the grids and seeds expand to {total:,} jobs; expected at most {MAX_JOBS:,}"]
    train, errors = splits.train, []
    labelled = train.y is not None
    probes = [(entry, point) for entry in config["models"] for point in _probe_points(entry["grid"])]
    for entry, point in probes:
        job = _job(config, entry, point, config["seeds"][0])
        key = f"models[{entry['index']}]"
        spec = MODELS[job.name]
        if job.dequantize and ("real" not in spec.cls.supports or spec.cls.needs_labels):
            errors.append(
                f"{key}.name = {job.name!r}: cannot be dequantized (data.preprocess or args.dequantize); "
                "expected an unlabelled model of real data"
            )
            continue
        if not job.dequantize and not spec.suits(train.support, labelled):
            needs = "/".join(spec.cls.supports) + (" data with labels" if spec.cls.needs_labels else " data")
            errors.append(
                f"{key}.name = {job.name!r}: does not suit {train.name!r} (support {train.support!r}"
                f"{', no labels' if not labelled else ''}); it needs {needs}"
            )
            continue
        try:
            model = build_job_model(job, train)
        except (ValueError, TypeError, RuntimeError, AssertionError) as err:
            given = f"{key}.args = {json.dumps(job.args)}{_grid(job)}"
            errors.append(f"{given}: cannot build {job.name}: {first_line(err)}")
            continue
        method = job.eval.get("method", "auto")
        if model.density != "implicit" and not _density_allows(model.density, method):
            errors.append(
                f"{key} eval.method = {method!r}: {job.variant} has a density of kind {model.density!r}; expected "
                f"{'exact or auto' if model.density in ('exact', 'estimate') else 'iwae, elbo, ais or auto'}"
            )
        if getattr(splits, job.eval.get("split", "test")) is None:
            errors.append(f"{key} eval.split = {job.eval['split']!r}: the data hold out no such split")
        time_limit = job.fit.get("time_limit")
        if time_limit is not None and not math.isfinite(time_limit):
            errors.append(f"{key} fit.time_limit = {time_limit}: expected a finite number of seconds")
    return errors


def _grid(job: Job) -> str:
    return f" (grid point {json.dumps(job.grid)})" if job.grid else ""
