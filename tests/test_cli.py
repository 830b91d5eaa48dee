import json
import subprocess
import sys

import numpy as np
import pytest

from probgen.cli import main


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
        "5",
        "--quiet",
        "--out",
        str(tmp_path),
        "--format",
        "csv",
    )
    assert code == 0
    models = [line.split(",")[0] for line in out.strip().splitlines()[1:]]
    flows = ["conditional-maf", "glow", "iaf", "maf", "naf", "nsf", "nsf-ar", "realnvp"]
    assert models == sorted(["gaussian-nb", "independent-gaussian", "lda", "qda", "vae", *flows])
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


def test_argparse_errors_exit_2_without_traceback(tmp_path):
    for argv in (["fit"], ["fit", "m", "--data", "d", "--out", "o", "--epochs", "-3"], []):
        proc = subprocess.run([sys.executable, "-m", "probgen.cli", *argv], capture_output=True, text=True)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr
    proc = subprocess.run(
        [sys.executable, "-m", "probgen.cli", "eval", str(tmp_path / "x")],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr


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
