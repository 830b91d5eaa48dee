"""Experiment tracking in the tools people already use: TensorBoard and MLflow callbacks for
:func:`probgen.fit`, and the ``[tracking]`` table of run configs turned into them.

Both log what the fit's history records, under the history's own names, so a curve in
TensorBoard or MLflow is the column of ``history.json`` of the same name: ``train_loss`` and
``val_loss`` (nats per example: the training objective and the validation score, a loss or a
negative bound), any other loss a strategy records (``discriminator_loss``, ...), ``lr`` (the
learning rate the epoch ran with) and ``seconds`` (its wall time); the step is the epoch. Each
needs its optional extra (``pip install -e ".[tensorboard]"``, ``".[mlflow]"``) and says so in
one line when it is missing.

Example:
    >>> import probgen as pg
    >>> from probgen.inference.tracking import callbacks_from_config
    >>> callbacks_from_config({}, "runs/job")
    []
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from probgen.inference.callbacks import Callback

__all__ = ["TensorBoard", "MLflow", "callbacks_from_config", "TRACKING_KEYS", "MissingExtraError"]


class MissingExtraError(ImportError):
    """An optional extra (tensorboard, mlflow) is not installed; the message says how to install it."""


def _missing(what: str, package: str, extra: str) -> MissingExtraError:
    return MissingExtraError(
        f'{what} needs the {package} package, which is not installed; pip install -e ".[{extra}]" '
        f"(or pip install {package})"
    )


def _numbers(record: dict[str, Any]) -> dict[str, float]:
    """The record's numbers other than the epoch (its step), by name."""
    return {
        k: float(v)
        for k, v in record.items()
        if k != "epoch" and isinstance(v, int | float) and not isinstance(v, bool)
    }


def _image_batch(model: Any, n: int, image_shape: Sequence[int] | None, seed: int) -> torch.Tensor | None:
    """``n`` draws of the model as images in [0, 1], shape ``(n, C, H, W)``, or None where the
    model draws no images (no image shape, 1 or 3 channels only, or it samples given labels only).
    The draws use a fixed seed and leave torch's random state as it was, so the numbers computed
    after the fit (held-out scores) are those of a fit without the callback."""
    shape = tuple(image_shape) if image_shape is not None else tuple(model.event_shape)
    if len(shape) == 2:
        shape = (1, *shape)
    if len(shape) != 3 or shape[0] not in (1, 3) or math.prod(shape) != math.prod(model.event_shape):
        return None
    devices = list(range(torch.cuda.device_count())) if model.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices), torch.no_grad():
        torch.manual_seed(seed)
        try:
            x = model.sample(n)
        except (ValueError, TypeError, NotImplementedError):
            return None  # e.g. a conditional model, which samples given labels
    x = x.detach().to("cpu", torch.float32).reshape(n, *shape)
    levels = model.num_levels
    if levels is not None:  # binary and k-level data: level / (k - 1)
        return (x / max(levels - 1, 1)).clamp(0, 1)
    low, high = x.min(), x.max()  # real data: the batch's range
    return ((x - low) / (high - low)).clamp(0, 1) if high > low else torch.zeros_like(x)


class TensorBoard(Callback):
    """Writes a TensorBoard run directory: one scalar per epoch for each number of the history
    record (losses and bounds, ``lr``, ``seconds``), and at fit end a grid of samples where the
    model draws images. Needs ``pip install -e ".[tensorboard]"``.

    Args:
        log_dir: the run directory (``tensorboard --logdir`` its parent to compare runs).
        images: samples in the grid drawn at fit end (0: none).
        image_shape: ``(C, H, W)`` or ``(H, W)`` of a model whose examples are flat vectors
            (e.g. 8x8 digits as 64 values); None: the model's ``event_shape`` if it is an image's.
        seed: seed of the sample grid's draws (torch's random state is restored after them).

    Raises:
        MissingExtraError: tensorboard is not installed (an ImportError saying how to install it).

    Example:
        >>> import tempfile, probgen as pg
        >>> from probgen.inference.tracking import TensorBoard
        >>> folder = tempfile.mkdtemp()
        >>> data = pg.load_dataset("digits-binary")
        >>> board = TensorBoard(folder, image_shape=(8, 8))
        >>> result = pg.fit(pg.models.IndependentBernoulli(64), data, epochs=2, progress=False, callbacks=[board])
        >>> board.tags[:2]
        ['train_loss', 'lr']
    """

    def __init__(
        self, log_dir: str | Path, *, images: int = 64, image_shape: Sequence[int] | None = None, seed: int = 0
    ) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise _missing("TensorBoard logging", "tensorboard", "tensorboard") from None
        if not isinstance(log_dir, str | Path) or not str(log_dir):
            raise TypeError(f"log_dir must be a folder path, got {log_dir!r}")
        if isinstance(images, bool) or not isinstance(images, int) or images < 0:
            raise ValueError(f"images must be a non-negative integer, got {images!r}")
        self.log_dir, self.images, self.image_shape, self.seed = Path(log_dir), images, image_shape, seed
        self._writer_class = SummaryWriter
        self.writer: Any = None
        #: the scalar tags written, in the order first written
        self.tags: list[str] = []

    def on_fit_start(self, model: Any, options: Any) -> None:
        self.writer = self._writer_class(log_dir=str(self.log_dir))

    def on_epoch_end(self, epoch: int, record: dict[str, float], model: Any) -> None:
        for tag, value in _numbers(record).items():
            self.writer.add_scalar(tag, value, global_step=epoch)
            if tag not in self.tags:
                self.tags.append(tag)
        self.writer.flush()  # a live `tensorboard` sees each epoch as it ends

    def on_fit_end(self, result: Any, model: Any) -> None:
        grid = _image_batch(model, self.images, self.image_shape, self.seed) if self.images else None
        if grid is not None:
            step = result.best_epoch if result.best_epoch >= 0 else 0
            self.writer.add_images("samples", grid, global_step=step, dataformats="NCHW")
        self.writer.close()


def _flat(prefix: str, value: Any) -> dict[str, str]:
    """Nested dicts as ``prefix.key`` parameters, values as short strings (MLflow's limit is 500+)."""
    if isinstance(value, dict):
        out: dict[str, str] = {}
        for key, inner in value.items():
            out |= _flat(f"{prefix}.{key}" if prefix else str(key), inner)
        return out
    if isinstance(value, Path):
        value = str(value)
    text = value if isinstance(value, str) else repr(value)
    return {prefix: text[:500]}


def _fit_params(model: Any, options: Any) -> dict[str, str]:
    """The fit's options (less the callbacks) and the model's config, as MLflow parameters."""
    fields = {k: v for k, v in vars(options).items() if k != "callbacks"}
    objective = fields.get("objective")
    if objective is not None and not isinstance(objective, str):  # an ELBO object or a function: its type
        fields["objective"] = type(objective).__name__
    return _flat("fit", fields) | _flat("model", model.config)


class MLflow(Callback):
    """Logs a fit as an MLflow run: parameters (the fit options as ``fit.*`` and the model's
    config as ``model.*``), one metric per number of the history record at each epoch (step:
    the epoch), ``best_epoch`` and ``best_loss`` at the end, and the checkpoint (and ``report``,
    when given and written) as artifacts. Needs ``pip install -e ".[mlflow]"``.

    Args:
        tracking_uri: where runs are stored; None: MLflow's own default (``MLFLOW_TRACKING_URI``
            if set; else the local ``./mlruns`` file store of MLflow 2, or ``sqlite:///mlflow.db``
            with artifacts in ``./mlruns`` in MLflow 3, whose file store is in maintenance mode),
            so that ``mlflow ui`` started in the same folder shows the runs.
        experiment: the experiment's name (created if missing).
        run_name: the run's name (None: the model's registry name).
        params: more parameters to log (e.g. the data and split), nested dicts flattened.
        report: a file logged as an artifact at fit end if it exists then (see also
            :meth:`log_artifact` for files written after the fit).

    Raises:
        MissingExtraError: mlflow is not installed (an ImportError saying how to install it).

    Example:
        >>> from probgen.inference.tracking import MLflow
        >>> MLflow("file:///tmp/mlruns", experiment="digits").experiment
        'digits'
    """

    def __init__(
        self,
        tracking_uri: str | None = None,
        experiment: str = "probgen",
        *,
        run_name: str | None = None,
        params: dict[str, Any] | None = None,
        report: str | Path | None = None,
    ) -> None:
        try:
            from mlflow.tracking import MlflowClient
        except ImportError:
            raise _missing("MLflow tracking", "mlflow", "mlflow") from None
        if tracking_uri is not None and (not isinstance(tracking_uri, str) or not tracking_uri):
            raise TypeError(f"tracking_uri must be a non-empty string or None, got {tracking_uri!r}")
        if not isinstance(experiment, str) or not experiment:
            raise TypeError(f"experiment must be a non-empty string, got {experiment!r}")
        self.tracking_uri, self.experiment, self.run_name = tracking_uri, experiment, run_name
        self.params, self.report = dict(params or {}), None if report is None else Path(report)
        self._client_class = MlflowClient
        self.client: Any = None
        #: the MLflow run of the last fit (None before one started)
        self.run_id: str | None = None
        self.checkpoint: Path | None = None

    def on_fit_start(self, model: Any, options: Any) -> None:
        from mlflow.entities import Param

        self.client = self._client_class(tracking_uri=self.tracking_uri)
        found = self.client.get_experiment_by_name(self.experiment)
        experiment_id = found.experiment_id if found is not None else self.client.create_experiment(self.experiment)
        run = self.client.create_run(experiment_id, run_name=self.run_name or model.name)
        self.run_id, self.checkpoint = run.info.run_id, options.checkpoint
        params = [Param(k, v) for k, v in (_fit_params(model, options) | _flat("", self.params)).items()]
        for start in range(0, len(params), 100):  # MLflow takes at most 100 parameters per batch
            self.client.log_batch(self.run_id, params=params[start : start + 100])

    def on_epoch_end(self, epoch: int, record: dict[str, float], model: Any) -> None:
        self.log_metrics(_numbers(record), step=epoch)

    def on_checkpoint(self, path: Path, epoch: int, best: bool) -> None:
        self.checkpoint = Path(path)

    def on_fit_end(self, result: Any, model: Any) -> None:
        self.log_metrics({"best_epoch": float(result.best_epoch), "best_loss": float(result.best_loss)})
        for path in (self.checkpoint, self.report):
            if path is not None and Path(path).is_file():
                self.client.log_artifact(self.run_id, str(path))
        self.client.set_terminated(self.run_id)

    def log_artifact(self, path: str | Path) -> None:
        """Add a file written after the fit (a report, scores) to the last fit's run; a file of
        the same name replaces the one logged before (the checkpoint re-saved with scores)."""
        if self.run_id is None:
            raise ValueError("MLflow.log_artifact: no run yet; expected it after a fit with this callback")
        self.client.log_artifact(self.run_id, str(path))

    def log_metrics(self, values: dict[str, float], step: int = 0) -> None:
        """Log ``values`` by name at ``step`` to the last fit's run (e.g. held-out scores after it)."""
        from mlflow.entities import Metric

        if self.run_id is None:
            raise ValueError("MLflow.log_metrics: no run yet; expected it after a fit with this callback")
        stamp = int(time.time() * 1000)
        metrics = [Metric(k, float(v), stamp, step) for k, v in values.items()]
        for start in range(0, len(metrics), 1000):  # MLflow takes at most 1000 metrics per batch
            self.client.log_batch(self.run_id, metrics=metrics[start : start + 1000])


def _flag_or_text(v: Any) -> bool:
    return isinstance(v, bool) or _text(v)


def _text(v: Any) -> bool:
    return isinstance(v, str) and bool(v)


def _count(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


#: keys of a run config's ``[tracking]`` table, with their checks, as ``probgen.experiments.config``
#: checks its other tables: (what is expected, check)
TRACKING_KEYS: dict[str, tuple[str, Any]] = {
    "tensorboard": (
        "true (each job's jobs/<job>/tensorboard), false, or a folder that gets one run directory per job",
        _flag_or_text,
    ),
    "mlflow": ("true (MLflow's default store), false, or a tracking URI such as 'file:///.../mlruns'", _flag_or_text),
    "experiment": ("a non-empty string (the MLflow experiment; default: the config's name)", _text),
    "images": ("a non-negative integer (samples in the TensorBoard grid)", _count),
}


def callbacks_from_config(
    table: dict[str, Any] | None,
    job_dir: str | Path,
    *,
    experiment: str = "probgen",
    run_name: str | None = None,
    image_shape: Sequence[int] | None = None,
) -> list[Callback]:
    """The callbacks a run config's ``[tracking]`` table asks for, for the job in ``job_dir``.

    Args:
        table: ``tensorboard`` (true: ``job_dir/tensorboard``; a folder: ``FOLDER/<job_dir's
            name>``, so one ``tensorboard --logdir FOLDER`` compares the jobs), ``mlflow`` (true:
            MLflow's default store; a string: a tracking URI), ``experiment`` (the MLflow
            experiment, else ``experiment``) and ``images`` (TensorBoard's sample grid size).
        job_dir: the job's folder (its name names the TensorBoard run and, by default, the MLflow run).
        experiment: the MLflow experiment when the table names none (the runner: the config's name).
        run_name: the MLflow run's name (None: ``job_dir``'s name).
        image_shape: the data's image shape, for models of flattened images.

    Returns:
        TensorBoard first, then MLflow, each where asked for.

    Raises:
        ValueError: a key or value the table does not accept, named with what is expected.
        MissingExtraError: a tracker whose package is not installed.

    Example:
        >>> from probgen.inference.tracking import callbacks_from_config
        >>> [type(c).__name__ for c in callbacks_from_config({"tensorboard": True}, "runs/x/jobs/gauss-s0")]
        ['TensorBoard']
    """
    table = {} if table is None else table
    if not isinstance(table, dict):
        raise ValueError(f"[tracking] must be a table of {', '.join(TRACKING_KEYS)}, got {table!r}")
    for key, value in table.items():
        if key not in TRACKING_KEYS:
            raise ValueError(f"tracking.{key}: unknown key; expected one of {', '.join(TRACKING_KEYS)}")
        if not TRACKING_KEYS[key][1](value):
            raise ValueError(f"tracking.{key} = {value!r}: expected {TRACKING_KEYS[key][0]}")
    job_dir = Path(job_dir)
    callbacks: list[Callback] = []
    board = table.get("tensorboard", False)
    if board is not False:
        log_dir = job_dir / "tensorboard" if board is True else Path(board) / job_dir.name
        callbacks.append(TensorBoard(log_dir, images=table.get("images", 64), image_shape=image_shape))
    store = table.get("mlflow", False)
    if store is not False:
        name = table.get("experiment", experiment)
        uri = None if store is True else store
        callbacks.append(MLflow(uri, experiment=name, run_name=run_name or job_dir.name))
    return callbacks
