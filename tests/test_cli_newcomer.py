"""What a new user meets between the README and real use: a fit never replaced silently, every
model kind scored by ``fit`` and ``eval`` with what it has, label columns by name or index."""

from __future__ import annotations

import json

import numpy as np
import pytest

import probgen as pg
from probgen.cli import main
from probgen.inference.sample_metrics import sample_metrics


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_fit_into_an_out_holding_another_fit_is_refused_unless_overwrite(capsys, tmp_path):
    out = tmp_path / "bern"
    fit = ["fit", "independent-bernoulli", "--data", "digits-binary", "--out", out, "--epochs", "2", "--quiet"]
    assert run(capsys, *fit)[0] == 0
    before = (out / "model.safetensors").read_bytes()
    other = ["fit", "fvbn", "--data", "digits-binary", "--out", out, "--epochs", "1", "--quiet"]
    code, stdout, err = run(capsys, *other)
    assert code == 2 and "Traceback" not in err
    assert err.strip().splitlines()[-1] == (
        f"probgen: error: --out {str(out)!r} already holds a fit of independent-bernoulli on digits-binary; "
        "pass --overwrite to replace it, --resume to continue it, or choose another --out"
    )
    assert (out / "model.safetensors").read_bytes() == before  # untouched
    assert json.loads((out / "run.json").read_text())["model"] == "independent-bernoulli"
    code, _, err = run(capsys, *other, "--overwrite")
    assert code == 0, err
    assert pg.load(out / "model.safetensors").name == "fvbn"
    assert json.loads((out / "run.json").read_text())["model"] == "fvbn"


def test_a_gan_is_scored_by_fit_and_eval_with_its_likelihood_free_metrics(capsys, tmp_path):
    out = tmp_path / "gan"
    argv = ["fit", "gan", "--data", "digits-binary", "--out", out, "--epochs", "2", "--quiet"]
    argv += ["--model-args", '{"architecture": "mlp", "hidden_features": [32]}']
    code, stdout, err = run(capsys, *argv)
    assert code == 0, err
    scores = json.loads((out / "scores.json").read_text())
    assert [s["split"] for s in scores] == ["val", "test"]
    model = pg.load(out / "model.safetensors")
    val, test = pg.load_dataset("digits-binary", "val"), pg.load_dataset("digits-binary", "test")
    expected = sample_metrics(model, test.x, val=val.x, num_samples=1000, seed=0)
    test_score = scores[1]
    assert test_score["kind"] == "implicit" and test_score["num_samples"] == 1000
    assert test_score["num_examples"] == len(test)
    for key in ("mmd2", "mmd_p_value", "c2st_accuracy", "c2st_p_value", "precision", "recall"):
        assert test_score[key] == pytest.approx(expected[key], rel=1e-9), key
    assert "no likelihood to report" not in stdout and (out / "loss.png").is_file()
    code, stdout, err = run(capsys, "eval", out, "--json")
    assert code == 0, err
    assert "MMD²" in stdout and "C2ST accuracy" in stdout and "precision" in stdout and "recall" in stdout
    assert "1000 samples against 447 test examples" in stdout
    printed = json.loads(stdout.strip().splitlines()[-1])
    assert printed["mmd2"] == pytest.approx(test_score["mmd2"], rel=1e-12)  # the same draws as fit's


@pytest.fixture
def labelled_csv(tmp_path):
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(size=(60, 4)), rng.normal(size=(60, 4)) + 3])
    y = np.repeat([0, 1], 60)
    path = tmp_path / "gmm_labeled.csv"
    lines = ["a,b,label,c,d"] + [
        ",".join([f"{r[0]:.5f}", f"{r[1]:.5f}", str(c), f"{r[2]:.5f}", f"{r[3]:.5f}"])
        for r, c in zip(x, y, strict=True)
    ]
    path.write_text("\n".join(lines) + "\n")
    return path, x, y


def test_label_column_by_name_or_index_in_python(labelled_csv):
    path, x, y = labelled_csv
    by_name = pg.load_file(path, label_column="label")
    by_index = pg.load_file(path, label_column=2)
    by_end = pg.load_file(path, label_column=-3)
    for data in (by_name, by_index, by_end):
        assert data.x.shape == (120, 4) and data.y.tolist() == y.tolist()
        assert np.allclose(data.x.numpy(), x, atol=1e-5)
    with pytest.raises(ValueError, match=r"label column 'kind' is not in the header .*\['a', 'b', 'label', 'c', 'd'\]"):
        pg.load_file(path, label_column="kind")
    with pytest.raises(TypeError, match="a column name or an integer column index"):
        pg.load_file(path, label_column=2.0)
    npy = path.with_suffix(".npy")
    np.save(npy, x)
    with pytest.raises(ValueError, match="names a column of a CSV file"):
        pg.load_file(npy, label_column="label")


def test_label_column_on_the_command_line(capsys, tmp_path, labelled_csv):
    path, _, y = labelled_csv
    out = tmp_path / "qda"
    code, stdout, err = run(capsys, "fit", "qda", "--data", path, "--label-column", "label", "--out", out, "--quiet")
    assert code == 0, err
    model = pg.load(out / "model.safetensors")
    assert model.event_shape == (4,) and model.num_classes == 2
    code, stdout, err = run(capsys, "eval", out)
    assert code == 0, err
    accuracy = float(next(line for line in stdout.splitlines() if "accuracy" in line).split()[2])
    assert accuracy > 0.9  # two well-separated classes: the label column was read as labels
    code, _, err = run(capsys, "fit", "qda", "--data", path, "--label-column", "nope", "--out", tmp_path / "q2")
    assert code == 2 and "label column 'nope' is not in the header" in err and not (tmp_path / "q2").exists()
    code, _, err = run(capsys, "fit", "qda", "--data", path, "--labels", path, "--label-column", "2", "--out", out)
    assert code == 2 and "either --labels FILE or --label-column COLUMN" in err


def test_label_column_in_a_config(capsys, tmp_path, labelled_csv):
    path, _, _ = labelled_csv
    config = tmp_path / "c.toml"
    config.write_text(
        f'name = "c"\nsamples = 0\n[data]\nfile = "{path.name}"\nlabel_column = "label"\n'
        '[[models]]\nname = "gaussian-nb"\n'
    )
    code, stdout, err = run(capsys, "run", config, "--out", tmp_path / "run", "--quiet")
    assert code == 0, err
    (job,) = json.loads((tmp_path / "run" / "results.json").read_text())["jobs"]
    assert job["nll_nats"] is not None and job["conditional"] is False


def test_list_names_the_python_class_behind_every_model(capsys):
    from probgen.models import MODELS

    code, out, _ = run(capsys, "list")
    assert code == 0
    for name, spec in MODELS.items():
        line = next(line for line in out.splitlines() if line.split() and line.split()[0] == name)
        dotted = next(word for word in line.split() if word.startswith("pg.models."))
        assert getattr(pg.models, dotted.removeprefix("pg.models.")) is spec.cls, name
    assert "probgen.classifiers.BernoulliNB" in out


def test_project_files_people_look_for():
    import pathlib

    import probgen

    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    root = pathlib.Path(__file__).resolve().parents[1]
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    assert project["license"] == "MIT" and (root / "LICENSE").read_text().startswith("MIT License")
    citation = (root / "CITATION.cff").read_text()
    # the version is kept once, in probgen/__init__.py, and pyproject reads it from there
    assert "version" in project["dynamic"] and "version" not in project
    version = probgen.__version__
    assert "cff-version:" in citation and f'version: "{version}"' in citation
    assert f"## {version}" in (root / "CHANGELOG.md").read_text()


def test_list_map_prints_every_registered_model_with_its_place(capsys):
    from probgen.models import MODELS

    assert main(["list", "--map"]) == 0
    out = capsys.readouterr().out
    names = {line.split()[0] for line in out.splitlines()[1:] if line.strip()}
    assert set(MODELS) <= names
    rbm = next(line for line in out.splitlines() if line.startswith("rbm "))
    assert "energy-based" in rbm and "log_normalizer" in rbm
