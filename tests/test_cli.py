import contextlib
import json
import re
import subprocess
import sys
import zlib

import numpy as np
import pytest

import probgen as pg
from probgen.cli import launcher, main


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_list(capsys):
    code, out, _ = run(capsys, "list")
    assert code == 0 and "independent-bernoulli" in out and "digits-binary" in out


def test_fit_eval_sample(capsys, tmp_path):
    out_dir = tmp_path / "run"
    code, out, _ = run(
        capsys,
        "fit",
        "independent-bernoulli",
        "--data",
        "digits-binary",
        "--out",
        str(out_dir),
        "--epochs",
        "30",
        "--lr",
        "0.05",
        "--quiet",
    )
    assert code == 0, out
    assert (out_dir / "model.safetensors").exists() and (out_dir / "loss.png").exists()
    assert len(json.loads((out_dir / "history.json").read_text())) == 30
    code, out, _ = run(capsys, "eval", str(out_dir))
    assert code == 0
    nll = float(out.split("NLL ")[1].split()[0])
    assert 24.5 < nll < 26.0  # the independent-Bernoulli baseline on binarized digits
    assert "bits/dim" in out and "kind=exact" in out
    code, _, _ = run(capsys, "sample", str(out_dir), "-n", "16", "--out", str(tmp_path / "s.png"))
    assert code == 0 and (tmp_path / "s.png").read_bytes()[:4] == b"\x89PNG"
    code, _, _ = run(capsys, "sample", str(out_dir), "-n", "5", "--out", str(tmp_path / "s.npy"))
    samples = np.load(tmp_path / "s.npy")
    assert code == 0 and samples.shape == (5, 64) and set(np.unique(samples)) <= {0.0, 1.0}


def test_fit_on_a_user_file(capsys, tmp_path):
    x = (np.random.default_rng(0).random((50, 6)) < 0.3).astype(np.float32)
    np.save(tmp_path / "mine.npy", x)
    code, out, _ = run(
        capsys,
        "fit",
        "independent-bernoulli",
        "--data",
        str(tmp_path / "mine.npy"),
        "--out",
        str(tmp_path / "r"),
        "--epochs",
        "2",
        "--quiet",
    )
    assert code == 0 and "train: NLL" in out


def test_compare_table(capsys, tmp_path):
    code, out, _ = run(
        capsys,
        "compare",
        "--data",
        "iris",
        "--epochs",
        "1",  # the table's rows and kinds, not the fits' quality, are checked here
        "--num-samples",
        "10",
        "--quiet",
        "--out",
        str(tmp_path),
        "--format",
        "csv",
    )
    assert code == 0
    rows = {line.split(",")[0]: line.split(",") for line in out.strip().splitlines()[1:]}
    # every registered model that can score log p(x) of unlabelled-or-labelled real data is in
    # the table, under the kind of number its density gives
    iris = pg.load_dataset("iris")
    expected = {}
    for name, spec in pg.models.MODELS.items():
        if spec.suits("real", has_labels=True) and spec.in_compare:
            model = spec.cls.from_dataset(iris)
            if not model.conditional:  # implicit models have their likelihood-free columns
                expected[name] = model.density if model.density != "unnormalized" else rows[name][4]
    assert sorted(rows) == sorted(expected)
    assert {name: row[4] for name, row in rows.items()} == expected
    assert (tmp_path / "compare-iris.png").exists()


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["fit", "nope", "--data", "digits", "--out", "x"], "unknown model 'nope'"),
        (["fit", "independent-bernoulli", "--data", "mnist", "--out", "x"], "unknown dataset"),
        (["fit", "independent-gaussian", "--data", "digits", "--out", "x"], "does not suit"),
        (["eval", "no/such/ckpt"], "does not exist"),
        (["compare", "--models", "nope"], "unknown model"),
    ],
)
def test_bad_arguments_are_one_line_and_exit_2(capsys, argv, needle, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = run(capsys, *argv)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("probgen: error:") and needle in err
    assert not (tmp_path / "x" / "model.safetensors").exists()


def test_argparse_errors_exit_2_without_traceback(tmp_path, capsys):
    # one real `python -m probgen.cli` (the installed entry path); the other cases in-process
    proc = subprocess.run([sys.executable, "-m", "probgen.cli", "fit"], capture_output=True, text=True)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and "probgen: error:" in proc.stderr
    for argv in (["fit", "m", "--data", "d", "--out", "o", "--epochs", "-3"], [], ["eval", str(tmp_path / "x")]):
        with contextlib.suppress(SystemExit):
            assert main(argv) == 2
        err = capsys.readouterr().err
        assert "Traceback" not in err and err.startswith("probgen: error:"), (argv, err)


def test_pickle_checkpoint_via_cli(capsys, tmp_path):
    import pickle

    (tmp_path / "model.safetensors").write_bytes(pickle.dumps({"a": 1}))
    code, _, err = run(capsys, "eval", str(tmp_path))
    assert code == 2 and "never unpickles" in err


def test_classifier_fit_and_eval_report_accuracy(capsys, tmp_path):
    code, out, _ = run(capsys, "fit", "gaussian-nb", "--data", "iris", "--out", str(tmp_path), "--quiet")
    assert code == 0, out
    code, out, _ = run(capsys, "eval", str(tmp_path))
    assert code == 0 and "kind=exact" in out
    accuracy = float(out.split("accuracy ")[1].split()[0])
    assert accuracy > 0.85
    code, out, _ = run(
        capsys,
        "fit",
        "qda",
        "--data",
        "iris",
        "--out",
        str(tmp_path / "q"),
        "--model-args",
        '{"method": "map"}',
        "--epochs",
        "50",
        "--quiet",
    )
    assert code == 0 and "test: NLL" in out


# ----------------------------------------------------------------------------- honest splits


def _nll(out, split):
    return float(out.split(f"{split}: NLL ")[1].split()[0])


def test_a_user_file_is_split_and_every_number_names_its_split(capsys, tmp_path):
    rng = np.random.default_rng(0)
    np.save(tmp_path / "train.npy", (rng.random((200, 8)) < 0.1).astype(np.float32))
    np.save(tmp_path / "test.npy", (rng.random((60, 8)) < 0.9).astype(np.float32))  # a different distribution
    out_dir = tmp_path / "r"
    argv = ["fit", "independent-bernoulli", "--data", str(tmp_path / "train.npy"), "--out", str(out_dir)]
    code, out, _ = run(capsys, *argv, "--test", str(tmp_path / "test.npy"), "--epochs", "20", "--quiet")
    assert code == 0, out
    assert "train 180 / val 20 / test 60" in out  # 10% of the file held out for validation, the test file whole
    train_nll, test_nll = _nll(out, "train"), _nll(out, "test")
    assert train_nll < 4 and test_nll > 2 * train_nll  # the test file is scored, not the training data again
    scores = json.loads((out_dir / "scores.json").read_text())
    assert [s["split"] for s in scores] == ["train", "val", "test"]
    assert [s["num_examples"] for s in scores] == [180, 20, 60]
    # eval re-creates the same parts from what the checkpoint records
    for split, expected in (("test", test_nll), ("train", train_nll)):
        code, out, _ = run(capsys, "eval", str(out_dir), "--split", split)
        assert code == 0 and f"[{split}]" in out
        assert float(out.split(f"{split} NLL ")[1].split()[0]) == pytest.approx(expected, abs=1e-3)


def test_random_split_sizes_add_up_and_eval_uses_the_held_out_rows(capsys, tmp_path, monkeypatch):
    x = np.zeros((50, 4), dtype=np.float32)
    x[:25] = 1.0  # first half all ones, second half all zeros: the parts' NLLs depend on which rows they hold
    np.save(tmp_path / "mine.npy", x)
    monkeypatch.chdir(tmp_path)  # a relative path: eval must still find it from elsewhere
    argv = ["fit", "independent-bernoulli", "--data", "mine.npy", "--out", "r", "--epochs", "2", "--quiet"]
    code, out, _ = run(capsys, *argv, "--val-frac", "0.2", "--test-frac", "0.3", "--split-seed", "3")
    assert code == 0 and "train 25 / val 10 / test 15" in out and "seed 3" in out
    record = json.loads((tmp_path / "r" / "run.json").read_text())["split"]
    assert record["data"] == str(tmp_path / "mine.npy") and record["rows"] == 50
    import probgen as pg

    train, val, test = pg.data.split(pg.load_file(tmp_path / "mine.npy"), val_frac=0.2, test_frac=0.3, seed=3)
    model = pg.load(tmp_path / "r")
    expected = -model.log_prob(test.x).mean().item()
    monkeypatch.chdir("/")
    code, out, _ = run(capsys, "eval", str(tmp_path / "r"), "--json")
    assert code == 0
    result = json.loads(out.strip().splitlines()[-1])
    assert result["split"] == "test" and result["num_examples"] == 15
    assert result.get("nll_nats", result.get("nll")) == pytest.approx(expected, rel=1e-5)


def test_split_keeps_labels_with_their_rows():
    import torch

    import probgen as pg

    x = torch.arange(60, dtype=torch.float32).reshape(30, 2)  # row i holds (2i, 2i + 1)
    data = pg.data.Dataset(x, torch.arange(30) % 7, "real", name="rows")
    train, val, test = pg.data.split(data, val_frac=0.1, test_frac=0.2, seed=1)
    assert (len(train), len(val), len(test)) == (21, 3, 6)
    seen = torch.cat([train.x[:, 0], val.x[:, 0], test.x[:, 0]]) / 2
    assert sorted(seen.long().tolist()) == list(range(30))  # a partition: no row lost or repeated
    for part in (train, val, test):
        assert torch.equal(part.y, (part.x[:, 0] / 2).long() % 7)
    again = pg.data.split(data, val_frac=0.1, test_frac=0.2, seed=1)[2]
    other = pg.data.split(data, val_frac=0.1, test_frac=0.2, seed=2)[2]
    assert torch.equal(again.x, test.x) and not torch.equal(other.x, test.x)
    assert pg.data.split(data, val_frac=0.0, test_frac=0.5)[1] is None
    with pytest.raises(ValueError, match="below 1"):
        pg.data.split(data, val_frac=0.5, test_frac=0.5)


def test_separate_labels_files_travel_with_an_idx_file(capsys, tmp_path):
    from probgen.data import write_idx

    rng = np.random.default_rng(2)
    labels = np.arange(60, dtype=np.uint8) % 3
    images = (rng.random((60, 4, 4)) < 0.2 + 0.3 * labels[:, None, None]).astype(np.uint8)
    write_idx(tmp_path / "train-images-idx3-ubyte", images)
    write_idx(tmp_path / "train-labels-idx1-ubyte", labels)
    argv = ["fit", "bernoulli-nb", "--data", str(tmp_path / "train-images-idx3-ubyte"), "--out", str(tmp_path / "r")]
    code, out, _ = run(capsys, *argv, "--labels", str(tmp_path / "train-labels-idx1-ubyte"), "--quiet")
    assert code == 0, out
    code, out, _ = run(capsys, "eval", str(tmp_path / "r"))
    assert code == 0 and "test accuracy" in out and "[test], 12 examples" in out


# ----------------------------------------------------------------------------- compare, resume, output


def _compare_nll(capsys, models):
    code, out, _ = run(
        capsys,
        "compare",
        "--data",
        "iris",
        "--models",
        *models,
        "--epochs",
        "2",
        "--num-samples",
        "20",
        "--format",
        "json",
        "--quiet",
    )
    assert code == 0
    rows = json.loads(out)["rows"]
    assert all(r["split"] == "test" for r in rows)
    return {r["model"]: r.get("nll_nats", r.get("nll")) for r in rows}


def test_a_models_compare_number_does_not_depend_on_company(capsys):
    alone = _compare_nll(capsys, ["vae"])
    together = _compare_nll(capsys, ["gaussian-nb", "independent-gaussian", "vae"])
    assert set(together) == {"gaussian-nb", "independent-gaussian", "vae"}
    assert together["vae"] == alone["vae"]
    from probgen.experiments.jobs import model_seed

    assert model_seed(0, "vae") == model_seed(0, "vae") != model_seed(0, "qda")
    assert model_seed(0, "vae") == zlib.crc32(b"0:vae") & 0x7FFFFFFF  # stable across processes


def test_compare_prints_every_file_it_writes(capsys, tmp_path):
    code, out, _ = run(
        capsys, "compare", "--data", "iris", "--models", "gaussian-nb", "--out", str(tmp_path / "c"), "--quiet"
    )
    assert code == 0
    written = [line.split(" ", 1)[1] for line in out.splitlines() if line.startswith("wrote ")]
    assert sorted(written) == sorted(str(p) for p in (tmp_path / "c").iterdir() if not p.name.startswith("."))
    row = next(line for line in out.splitlines() if line.startswith("| gaussian-nb |"))
    seconds = row.strip().rstrip("|").split("|")[-1].strip()
    assert re.fullmatch(r"\d+(\.\d+)? (ms|s)", seconds) and not seconds.startswith("0.0 ")


def test_kill_9_leaves_a_loadable_checkpoint_and_resume_finishes(capsys, tmp_path):
    import os
    import signal
    import time
    from pathlib import Path

    import probgen as pg

    out_dir = tmp_path / "run"
    argv = ["fit", "independent-bernoulli", "--data", "digits-binary", "--out", str(out_dir)]
    argv += ["--epochs", "8", "--batch-size", "50", "--lr", "0.01", "--quiet"]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.Popen(
        [sys.executable, "-m", "probgen.cli", *argv], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    ckpt = out_dir / "model.safetensors"
    deadline = time.monotonic() + 120
    while not ckpt.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the fit finished before it could be killed"
    killed = pg.load_checkpoint(ckpt)  # the last complete checkpoint, never a torn one
    epoch = killed.extra["epoch"]
    assert epoch < 7 and len(killed.extra["history"]) == epoch + 1
    code, out, _ = run(capsys, *argv, "--resume")
    assert code == 0 and "resuming from" in out, out
    history = json.loads((out_dir / "history.json").read_text())
    assert [h["epoch"] for h in history] == list(range(8))
    assert pg.load_checkpoint(ckpt).extra["epochs_run"] == 8
    assert not list(out_dir.glob(".*.tmp"))


def test_closed_form_fit_says_so_and_draws_no_loss_curve(capsys, tmp_path):
    code, out, _ = run(capsys, "fit", "lda", "--data", "iris", "--out", str(tmp_path), "--quiet")
    assert code == 0 and "closed form" in out
    assert not (tmp_path / "loss.png").exists() and "no loss curve" in out
    written = {line.split(" ", 1)[1] for line in out.splitlines() if line.startswith("wrote ")}
    assert written == {str(tmp_path / n) for n in ("run.json", "model.safetensors", "history.json", "scores.json")}
    assert "0.0000 s" not in out and re.search(r"in \d+(\.\d+)? (ms|s)\b", out)


def test_output_files_keep_the_users_umask(capsys, tmp_path):
    import os

    previous = os.umask(0o022)
    try:
        code, _, _ = run(capsys, "fit", "lda", "--data", "iris", "--out", str(tmp_path / "r"), "--quiet")
        code2, _, _ = run(capsys, "sample", str(tmp_path / "r"), "-n", "3", "--out", str(tmp_path / "s.npy"))
    finally:
        os.umask(previous)
    assert code == code2 == 0
    for name in ("r/model.safetensors", "r/history.json", "r/run.json", "s.npy"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o644, name


def test_format_seconds():
    from probgen.progress import format_seconds

    assert format_seconds(0.0004) == "0.4 ms"
    assert format_seconds(0.213) == "0.21 s"
    assert format_seconds(12.34) == "12.3 s"
    assert format_seconds(182.4) == "3 min 2 s"
    assert format_seconds(3900) == "1 h 5 min"


def test_version(capsys):
    assert main(["--version"]) == 0
    assert re.fullmatch(r"probgen \d+\.\d+\.\S+\n", capsys.readouterr().out)


def test_every_fit_help_example_with_model_args_works(capsys, tmp_path, monkeypatch):
    import shlex

    from probgen.cli.parser import fit_examples as _fit_examples

    monkeypatch.chdir(tmp_path)
    examples = [line.strip() for line in _fit_examples().splitlines() if "--model-args" in line]
    assert len(examples) == 3
    assert sum('"method"' in e for e in examples) == 2  # a classifier's and a factorized model's posterior
    assert any("fit gaussian-nb " in e for e in examples) and any("fit independent-bernoulli " in e for e in examples)
    assert any('"latent_dim"' in e and '"hidden_features"' in e for e in examples)
    for example in examples:
        argv = shlex.split(example)[1:] + ["--epochs", "2", "--num-samples", "5", "--quiet"]
        code, out, err = run(capsys, *argv)
        assert code == 0, (example, err)


def test_progress_lines_off_a_terminal():
    import io

    from probgen.progress import LineProgress, progress_bar

    stream = io.StringIO()
    bar = progress_bar(range(100), desc="fit vae", file=stream)
    assert isinstance(bar, LineProgress)
    for _ in bar:
        bar.set_postfix(loss="1.234")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 12 and "\r" not in stream.getvalue()  # at once, the first step, then each 10%
    assert lines[0].startswith("fit vae: 0/100 (0%)") and lines[1].startswith("fit vae: 1/100 (1%)")
    assert lines[2].startswith("fit vae: 10/100 (10%)") and "ETA" in lines[2] and "loss=1.234" in lines[2]
    assert lines[-1].startswith("fit vae: 100/100 (100%)")
    short = io.StringIO()
    list(progress_bar(range(3), file=short))
    assert short.getvalue().count("\n") == 4
    quiet = io.StringIO()
    list(progress_bar(range(3), file=quiet, disable=True))
    assert quiet.getvalue() == ""

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    from tqdm.auto import tqdm

    assert isinstance(progress_bar(range(3), file=Terminal()), tqdm)


def test_early_stopping_is_one_line_naming_the_epochs(capsys, tmp_path):
    argv = ["fit", "independent-bernoulli", "--data", "digits-binary", "--out", str(tmp_path), "--quiet"]
    code, out, _ = run(capsys, *argv, "--epochs", "200", "--lr", "0.5", "--patience", "2", "--batch-size", "1000")
    assert code == 0
    line = next(line for line in out.splitlines() if line.startswith("fitted"))
    epochs = len(json.loads((tmp_path / "history.json").read_text()))
    assert epochs < 200 and f"stopped early at epoch {epochs - 1}" in line and "for 2 epochs" in line
    best = int(line.split("best epoch ")[1].split()[0])
    assert best == epochs - 3  # two epochs without improvement after the best


# ----------------------------------------------------------------------------- --dtype, --precision, --nproc


def _fit_args(out, *extra):
    # Gaussian Naive Bayes in closed form: deterministic, its statistics summed over the ranks
    return ["fit", "gaussian-nb", "--data", "iris", "--out", str(out), "--quiet", *extra]


def test_fit_dtype_float64_checkpoint(capsys, tmp_path):
    code, _, err = run(capsys, *_fit_args(tmp_path / "f64", "--dtype", "float64"))
    assert code == 0, err
    model = pg.load(tmp_path / "f64")
    floating = {v.dtype for v in model.state_dict().values() if v.is_floating_point()}
    assert floating == {__import__("torch").float64}


def test_fit_nproc_2_scores_as_one_process(capsys, tmp_path, monkeypatch):
    """Two local ranks (gloo) of a closed-form fit give the scores of one process."""
    monkeypatch.setattr(launcher, "usable_cpus", lambda: 2)  # runs on a 1-core machine too
    code, _, err = run(capsys, *_fit_args(tmp_path / "one", "--dtype", "float64"))
    assert code == 0, err
    code, _, err = run(capsys, *_fit_args(tmp_path / "two", "--dtype", "float64", "--nproc", "2"))
    assert code == 0, err
    one = json.loads((tmp_path / "one" / "scores.json").read_text())
    two = json.loads((tmp_path / "two" / "scores.json").read_text())
    assert [s["split"] for s in two] == [s["split"] for s in one] == ["train", "val", "test"]
    for a, b in zip(one, two, strict=True):
        assert b["num_examples"] == a["num_examples"]
        assert b["nll_nats"] == pytest.approx(a["nll_nats"], rel=1e-9)


def test_fit_bad_nproc_and_dtype_are_usage_errors(capsys, tmp_path):
    code, _, err = run(capsys, *_fit_args(tmp_path / "x", "--nproc", "0"))
    assert code == 2 and "--nproc" in err
    code, _, err = run(capsys, *_fit_args(tmp_path / "x", "--dtype", "float16"))
    assert code == 2 and "float16" in err


def test_fit_nproc_beyond_the_machine_is_a_usage_error(capsys, tmp_path, monkeypatch):
    """More ranks than cores (CPU) or GPUs (CUDA), or ranks sharing one GPU: one line, exit 2,
    before any process starts."""
    import torch

    monkeypatch.setattr(launcher, "usable_cpus", lambda: 2)
    monkeypatch.setattr("probgen.cli.fit.launch", lambda args: pytest.fail("launched"))
    code, _, err = run(capsys, *_fit_args(tmp_path / "x", "--nproc", "3"))
    assert code == 2 and "--nproc 3: this machine has 2 usable CPU core(s); expected at most 2" in err
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    code, _, err = run(capsys, *_fit_args(tmp_path / "x", "--nproc", "2", "--device", "cuda"))
    assert code == 2 and "1 CUDA device(s); expected at most 1" in err
    code, _, err = run(capsys, *_fit_args(tmp_path / "x", "--nproc", "2", "--device", "cuda:0"))
    assert code == 2 and "nccl needs one GPU per rank" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x").exists()


def test_fit_nproc_an_error_every_rank_meets_is_one_line(capfd, tmp_path, monkeypatch):
    """A bad file fails every rank alike: rank 0 says so, the other ranks' copies are dropped."""
    monkeypatch.setattr(launcher, "usable_cpus", lambda: 2)
    code = main(["fit", "vae", "--data", str(tmp_path / "no.npy"), "--out", str(tmp_path / "x"), "--nproc", "2"])
    err = capfd.readouterr().err
    assert code == 2 and err.count("does not exist") == 1 and err.count("\n") == 1, err


class _Ended:
    def __init__(self, returncode):
        self.returncode = returncode


@pytest.mark.parametrize(
    "codes,shown",
    [
        ((0, 1), "rank 1 broke"),  # rank 0 ended well: rank 1's failure is news
        ((-15, 2), "rank 1 broke"),  # rank 0 was stopped before it could say anything
        ((1, 1), "rank 1 broke"),  # an internal error of rank 1 may be the cause of rank 0's
        ((2, 2), ""),  # a usage error: rank 0 has said it
        ((130, 130), ""),  # Ctrl-C: rank 0 has said it
        ((0, 0, -15), ""),  # stopped by the launcher: nothing to tell
    ],
)
def test_fit_nproc_shows_another_rank_failure_once(capsys, codes, shown):
    import io

    logs = [None] + [io.StringIO(f"rank {r} broke\n") for r in range(1, len(codes))]
    launcher.show_other_failure([_Ended(c) for c in codes], logs)
    assert capsys.readouterr().err.strip() == shown


def test_eval_sample_and_compare_take_device_and_dtype(capsys, tmp_path):
    """eval scores in the dtype asked for (float64 equals float32 to float32 round-off), sample
    and eval load onto --device, compare fits in --dtype; a device this machine lacks is a
    one-line usage error."""
    import torch

    fitted = tmp_path / "nb"
    assert (
        run(capsys, "fit", "independent-bernoulli", "--data", "digits-binary", "--out", str(fitted), "--quiet")[0] == 0
    )
    code, out32, _ = run(capsys, "eval", str(fitted), "--json")
    code64, out64, _ = run(capsys, "eval", str(fitted), "--json", "--dtype", "float64", "--device", "cpu")
    single, double = (json.loads(o.strip().splitlines()[-1])["nll_nats"] for o in (out32, out64))
    assert code == code64 == 0 and single != double and double == pytest.approx(single, rel=1e-5)
    assert run(capsys, "sample", str(fitted), "--device", "cpu", "-n", "5", "--out", str(tmp_path / "s.npy"))[0] == 0
    assert np.load(tmp_path / "s.npy").shape == (5, 64)
    for command in (["eval", str(fitted)], ["sample", str(fitted), "--out", str(tmp_path / "t.npy")]):
        code, _, err = run(capsys, *command, "--device", "cuda:7")
        assert code == 2 and err.count("\n") == 1 and "cuda:7" in err
    compared = tmp_path / "cmp"
    argv = ["compare", "--models", "independent-bernoulli", "--data", "digits-binary", "--dtype", "float64"]
    assert run(capsys, *argv, "--epochs", "3", "--quiet", "--out", str(compared))[0] == 0
    model = pg.load(next(compared.glob("digits-binary/jobs/*/model.safetensors")))
    assert {v.dtype for v in model.state_dict().values() if v.is_floating_point()} == {torch.float64}
