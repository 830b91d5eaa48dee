"""fit(..., callbacks=[...]): the order and arguments of the calls, errors, and the TensorBoard and
MLflow callbacks read back with their own readers (EventAccumulator, MlflowClient)."""

import argparse
import io
import json
import sys

import numpy as np
import pytest
import torch
from PIL import Image

import probgen as pg
from probgen.inference.callbacks import Callback
from probgen.inference.distributed import Shard
from probgen.inference.strategies.loop import EpochLoop
from probgen.inference.tracking import MissingExtraError, MLflow, TensorBoard, callbacks_from_config

torch.set_num_threads(1)
EPOCHS = 3


@pytest.fixture(scope="module")
def digits():
    data = pg.load_dataset("digits-binary")
    return data, pg.load_dataset("digits-binary", "val")


class Recorder(Callback):
    """Every call, in order, with its arguments."""

    def __init__(self):
        self.calls = []

    def on_fit_start(self, model, options):
        self.calls.append(("on_fit_start", options.epochs))

    def on_validation(self, epoch, val_loss, model):
        self.calls.append(("on_validation", epoch, val_loss))

    def on_epoch_end(self, epoch, record, model):
        self.calls.append(("on_epoch_end", epoch, dict(record)))

    def on_checkpoint(self, path, epoch, best):
        self.calls.append(("on_checkpoint", path, epoch, best))

    def on_fit_end(self, result, model):
        self.calls.append(("on_fit_end", result))


@pytest.fixture
def board():
    """The tensorboard extra (``pip install -e ".[tensorboard]"``; CI installs it)."""
    return pytest.importorskip("tensorboard")


def _model():
    return pg.models.IndependentBernoulli(64)


def _fit(data, **options):
    options = {"epochs": EPOCHS, "lr": 0.05, "batch_size": 250, "progress": False, "dtype": "float64", **options}
    return pg.fit(_model(), data, **options)


# ----------------------------------------------------------------------------- the interface


def test_three_epochs_call_each_method_in_order_with_the_history(digits, tmp_path):
    train, val = digits
    ckpt = tmp_path / "model.safetensors"
    recorder = Recorder()
    result = _fit(train, val_data=val, checkpoint=ckpt, callbacks=[recorder])
    names = [c[0] for c in recorder.calls]
    per_epoch = ["on_validation", "on_epoch_end", "on_checkpoint"]
    assert names == ["on_fit_start", *per_epoch * EPOCHS, "on_fit_end"]
    assert recorder.calls[0] == ("on_fit_start", EPOCHS)
    assert recorder.calls[-1][1] is result
    validations = [c for c in recorder.calls if c[0] == "on_validation"]
    assert [(c[1], c[2]) for c in validations] == [(h["epoch"], h["val_loss"]) for h in result.history]
    records = [c[2] for c in recorder.calls if c[0] == "on_epoch_end"]
    assert records == result.history and [r["epoch"] for r in records] == list(range(EPOCHS))
    checkpoints = [c[1:] for c in recorder.calls if c[0] == "on_checkpoint"]
    best_so_far = [
        h["val_loss"] == min(g["val_loss"] for g in result.history[: i + 1]) for i, h in enumerate(result.history)
    ]
    assert checkpoints == [(ckpt, e, best) for e, best in zip(range(EPOCHS), best_so_far, strict=True)]
    assert best_so_far[0]  # the first epoch is always the best so far


def test_a_closed_form_fit_calls_start_and_end_only(digits):
    recorder = Recorder()
    result = pg.fit(_model(), digits[0], strategy="closed_form", progress=False, callbacks=[recorder])
    assert [c[0] for c in recorder.calls] == ["on_fit_start", "on_fit_end"] and recorder.calls[1][1] is result


def test_callbacks_change_no_number_of_the_fit(digits, tmp_path, board):
    train, val = digits
    plain = _fit(train, val_data=val)
    after_plain = torch.rand(4)  # what is drawn after the fit (held-out scores) is drawn alike
    watched = _fit(train, val_data=val, callbacks=[Recorder(), TensorBoard(tmp_path / "tb", image_shape=(8, 8))])
    assert torch.equal(torch.rand(4), after_plain)  # the sample grid's draws left torch's state as it was
    drop = lambda history: [{k: v for k, v in h.items() if k != "seconds"} for h in history]  # noqa: E731
    assert drop(watched.history) == drop(plain.history)
    assert watched.best_epoch == plain.best_epoch and watched.best_loss == plain.best_loss


def test_a_raising_callback_stops_the_fit_naming_it_at_the_last_good_state(digits, tmp_path):
    class Boom(Callback):
        def on_epoch_end(self, epoch, record, model):
            if epoch == 1:
                raise RuntimeError("tracking server down")

    ckpt = tmp_path / "model.safetensors"
    model = _model()
    with pytest.raises(ValueError, match=r"^callback Boom.on_epoch_end failed: RuntimeError: tracking server down$"):
        pg.fit(model, digits[0], epochs=EPOCHS, lr=0.05, progress=False, checkpoint=ckpt, callbacks=[Boom()])
    saved = pg.load_checkpoint(ckpt)  # written after epoch 0, the last epoch that finished
    assert saved.extra["last_epoch"] == 0
    for name, value in saved.model.state_dict().items():
        assert torch.equal(model.state_dict()[name], value), name


@pytest.mark.parametrize("bad", [[object()], Recorder(), "tb"])
def test_callbacks_that_are_not_callbacks_are_a_type_error(digits, bad):
    with pytest.raises(TypeError, match="callbacks must be"):
        pg.fit(_model(), digits[0], epochs=1, progress=False, callbacks=bad)


def test_only_rank_zero_calls_the_callbacks():
    recorder = Recorder()
    options = pg.inference.strategies.FitOptions(callbacks=[recorder])
    for rank in (1, 0):
        loop = EpochLoop(_model(), options, torch.optim.SGD([torch.zeros(1)], lr=1), None, shard=Shard(rank, 2))
        loop.notify("on_checkpoint", "path", rank, True)
    assert recorder.calls == [("on_checkpoint", "path", 0, True)]


# ----------------------------------------------------------------------------- TensorBoard


def _scalars(log_dir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(log_dir), size_guidance={"scalars": 0, "images": 0})
    events.Reload()
    return events


def test_tensorboard_holds_one_scalar_per_epoch_and_the_sample_grid(digits, tmp_path, board):
    log_dir = tmp_path / "tb"
    tracker = TensorBoard(log_dir, image_shape=(8, 8), images=16)
    model = _model()
    result = pg.fit(model, digits[0], val_data=digits[1], epochs=EPOCHS, lr=0.05, progress=False, callbacks=[tracker])
    events = _scalars(log_dir)
    assert set(events.Tags()["scalars"]) == {"train_loss", "val_loss", "lr", "seconds"}
    for tag in ("train_loss", "val_loss", "lr", "seconds"):
        points = events.Scalars(tag)
        assert [p.step for p in points] == list(range(EPOCHS)), tag
        # TensorBoard keeps float32
        assert [p.value for p in points] == pytest.approx([h[tag] for h in result.history], rel=1e-6), tag
    (image,) = events.Images("samples")
    assert image.step == result.best_epoch
    grid = torch.tensor(np.array(Image.open(io.BytesIO(image.encoded_image_string)).convert("L")), dtype=torch.long)
    torch.manual_seed(tracker.seed)  # the draws the callback made, laid out as TensorBoard's 8-column grid
    x = model.sample(16).reshape(2, 8, 8, 8).permute(0, 2, 1, 3).reshape(16, 64)
    assert grid.shape == (16, 64) and 0 < x.mean() < 1
    assert torch.equal(grid, (x * 255).round().long())


def test_missing_extras_are_one_line_import_errors(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    with pytest.raises(MissingExtraError, match=r'pip install -e "\.\[tensorboard\]"') as info:
        TensorBoard(tmp_path)
    assert "\n" not in str(info.value) and isinstance(info.value, ImportError)
    monkeypatch.setitem(sys.modules, "mlflow", None)
    monkeypatch.setitem(sys.modules, "mlflow.tracking", None)
    with pytest.raises(MissingExtraError, match=r'MLflow tracking needs the mlflow package.*"\.\[mlflow\]"') as info:
        MLflow()
    assert "\n" not in str(info.value)
    from probgen.cli import UsageError
    from probgen.cli.fit import _trackers

    args = argparse.Namespace(tensorboard=None, mlflow="", model_args=None, out=str(tmp_path))
    with pytest.raises(UsageError, match=r"^MLflow tracking needs the mlflow package"):
        _trackers(args, pg.load_dataset("digits-binary"), {})


# ----------------------------------------------------------------------------- MLflow


@pytest.fixture
def store(tmp_path, monkeypatch):
    """A local MLflow file store (MLflow 3 refuses one unless asked, keeping it in maintenance mode)."""
    pytest.importorskip("mlflow")
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    return (tmp_path / "mlruns").as_uri()


def _run(uri, run_id):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    return client, client.get_run(run_id)


def _history(client, run_id, key):
    return [m.value for m in sorted(client.get_metric_history(run_id, key), key=lambda m: m.step)]


def test_mlflow_run_holds_params_metrics_and_the_checkpoint(digits, tmp_path, store):
    ckpt = tmp_path / "model.safetensors"
    tracker = MLflow(store, experiment="tests", run_name="bern")
    model = _model()
    result = pg.fit(model, digits[0], val_data=digits[1], epochs=EPOCHS, lr=0.05, batch_size=250, progress=False,
                    checkpoint=ckpt, dtype="float64", callbacks=[tracker])  # fmt: skip
    client, run = _run(store, tracker.run_id)
    assert run.info.status == "FINISHED" and run.info.run_name == "bern"
    assert client.get_experiment(run.info.experiment_id).name == "tests"
    params = run.data.params
    assert params["fit.epochs"] == str(EPOCHS) and params["fit.lr"] == "0.05" and params["fit.batch_size"] == "250"
    assert params["model.name"] == "independent-bernoulli" and params["model.event_shape"] == "[64]"
    for key in ("train_loss", "val_loss", "lr", "seconds"):
        assert _history(client, tracker.run_id, key) == [h[key] for h in result.history], key
    assert run.data.metrics["best_epoch"] == result.best_epoch and run.data.metrics["best_loss"] == result.best_loss
    assert [a.path for a in client.list_artifacts(tracker.run_id)] == ["model.safetensors"]
    stored = client.download_artifacts(tracker.run_id, "model.safetensors", str(tmp_path / "down"))
    assert open(stored, "rb").read() == ckpt.read_bytes()


# ----------------------------------------------------------------------------- the command line


def _cli_args(out, *extra):
    from probgen.cli.parser import build_parser

    argv = ["fit", "independent-bernoulli", "--data", "digits-binary", "--out", str(out), "--epochs", str(EPOCHS)]
    return build_parser().parse_args([*argv, "--lr", "0.05", "--quiet", "--num-samples", "2", *extra])


def test_probgen_fit_tensorboard_and_mlflow_equal_history_json(tmp_path, store, board):
    from probgen.cli import fit as fit_command

    out, log_dir = tmp_path / "out", tmp_path / "tb"
    args = _cli_args(out)
    args.tensorboard, args.mlflow = str(log_dir), store  # what `--tensorboard DIR --mlflow URI` parse to
    fit_command.run(args)
    history = json.loads((out / "history.json").read_text())
    events = _scalars(log_dir)
    assert [p.value for p in events.Scalars("train_loss")] == pytest.approx(
        [h["train_loss"] for h in history], rel=1e-6
    )
    assert [p.step for p in events.Scalars("train_loss")] == [h["epoch"] for h in history] == list(range(EPOCHS))
    assert "samples" in events.Tags()["images"]
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=store)
    (run,) = client.search_runs([client.get_experiment_by_name("probgen").experiment_id])
    assert run.info.run_name == "out"
    for key in ("train_loss", "val_loss"):
        assert _history(client, run.info.run_id, key) == [h[key] for h in history], key
    scores = {s["split"]: s for s in json.loads((out / "scores.json").read_text())}
    assert run.data.metrics["test_nll_nats"] == scores["test"]["nll_nats"]
    names = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"model.safetensors", "history.json", "scores.json", "run.json", "loss.png"} <= names
    stored = client.download_artifacts(run.info.run_id, "model.safetensors", str(tmp_path / "down"))
    assert open(stored, "rb").read() == (out / "model.safetensors").read_bytes()  # the final one, with scores


def _parses(flag):
    from probgen.cli.parser import build_parser

    try:
        build_parser().parse_args(["fit", "m", "--data", "d", "--out", "o", flag, "x"])
    except SystemExit:
        return False
    return True


@pytest.mark.skipif(not _parses("--tensorboard"), reason="the parser has no --tensorboard flag yet")
def test_probgen_main_with_the_tensorboard_flag(tmp_path, board):
    from probgen.cli import main

    out, log_dir = tmp_path / "out", tmp_path / "tb"
    argv = ["fit", "independent-bernoulli", "--data", "digits-binary", "--out", str(out), "--epochs", str(EPOCHS)]
    assert main([*argv, "--quiet", "--num-samples", "2", "--tensorboard", str(log_dir)]) in (0, None)
    history = json.loads((out / "history.json").read_text())
    points = _scalars(log_dir).Scalars("train_loss")
    assert [p.value for p in points] == pytest.approx([h["train_loss"] for h in history], rel=1e-6)


# ----------------------------------------------------------------------------- [tracking] tables


def test_callbacks_from_config(tmp_path, board):
    job = tmp_path / "jobs" / "gauss-s0"
    pytest.importorskip("mlflow")
    tb, tracker = callbacks_from_config({"tensorboard": True, "mlflow": "file:///m", "images": 4}, job)
    assert tb.log_dir == job / "tensorboard" and tb.images == 4
    assert (tracker.tracking_uri, tracker.experiment, tracker.run_name) == ("file:///m", "probgen", "gauss-s0")
    (tb,) = callbacks_from_config({"tensorboard": str(tmp_path / "tb"), "mlflow": False}, job)
    assert tb.log_dir == tmp_path / "tb" / "gauss-s0"
    (tracker,) = callbacks_from_config({"mlflow": True, "experiment": "digits"}, job, experiment="run", run_name="r")
    assert (tracker.tracking_uri, tracker.experiment, tracker.run_name) == (None, "digits", "r")
    assert callbacks_from_config({"tensorboard": False}, job) == [] == callbacks_from_config(None, job)
    from probgen.cli.fit import _trackers  # `--tensorboard DIR --mlflow` (no URI: MLflow's default store)

    args = argparse.Namespace(tensorboard=str(tmp_path / "tb"), mlflow="", model_args=None, out="runs/bern")
    tb, tracker = _trackers(args, pg.load_dataset("digits-binary"), {"data": "digits-binary"})
    assert (tb.log_dir, tuple(tb.image_shape)) == (tmp_path / "tb", (8, 8))
    assert (tracker.tracking_uri, tracker.run_name, tracker.params["data"]) == (None, "bern", {"data": "digits-binary"})
    with pytest.raises(ValueError, match=r"^tracking.board: unknown key; expected one of tensorboard, mlflow"):
        callbacks_from_config({"board": True}, job)
    with pytest.raises(ValueError, match=r"^tracking.images = -1: expected a non-negative integer"):
        callbacks_from_config({"tensorboard": True, "images": -1}, job)
    with pytest.raises(ValueError, match=r"^tracking.experiment = True: expected a non-empty string"):
        callbacks_from_config({"experiment": True}, job)
    with pytest.raises(ValueError, match=r"^\[tracking\] must be a table"):
        callbacks_from_config(["tensorboard"], job)
