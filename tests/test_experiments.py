import csv
import json
import os
import signal
import statistics
import time
from pathlib import Path

import pytest
import torch

import probgen as pg
from probgen.cli import main
from probgen.experiments import ConfigError, expand_jobs, validate_config
from probgen.experiments.jobs import model_seed

CONFIGS = sorted((Path(__file__).parents[1] / "examples" / "configs").glob("*.toml"))


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def write(tmp_path, text, name="exp.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


SMALL = """
seeds = [0, 1]
samples = 4
[data]
name = "digits-binary"
[fit]
epochs = 3
batch_size = 500
[[models]]
name = "independent-bernoulli"
[[models]]
name = "independent-bernoulli"
label = "bern-map"
args = { estimator = "map" }
"""


# ----------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    "text,needles",
    [
        ("colour = 1\n[data]\nname='digits'\n[[models]]\nname='vae'", ["colour: unknown key"]),
        ("[data]\nname='digits'\n[fit]\nepochs='ten'\n[[models]]\nname='vae'", ["fit.epochs = 'ten'", "integer"]),
        ("[data]\nname='digits'\n[fit]\nlr=-1.0\n[[models]]\nname='vae'", ["fit.lr = -1.0", "positive"]),
        ("[data]\nname='digits'\n[[models]]\nname='vae'\nargs={latent_dim=0}", ["models[0].args", "latent_dim"]),
        (
            "[data]\nname='digits'\n[[models]]\nname='independent-bernoulli'",
            ["models[0].name = 'independent-bernoulli'", "does not suit 'digits'", "discrete(17)", "binary"],
        ),
        ("[data]\nname='digits'\n[[models]]\nname='vae'\nargs={width=3}", ["models[0].args.width", "latent_dim"]),
        ("[data]\nname='mnist'\n[[models]]\nname='vae'", ["unknown dataset 'mnist'"]),
        ("[data]\nname='digits'\n[eval]\nmethod='iwae'\n[[models]]\nname='independent-categorical'", ["exact"]),
        ("[data]\nname='digits'\n[[models]]\nname='vae'\ngrid={beta=0.5}", ["models[0].grid.beta = 0.5", "list"]),
        ("seeds = [-1]\n[data]\nname='digits'\n[[models]]\nname='vae'", ["seeds = [-1]"]),
        ("[data\nname='digits'", ["not valid TOML"]),
        ("[data]\nname='digits'\npreprocess='dequantize'\n[[models]]\nname='lda'", ["'lda': cannot be dequantized"]),
    ],
)
def test_a_bad_config_fails_before_fitting_one_line_each(capsys, tmp_path, text, needles):
    path = write(tmp_path, text)
    code, out, err = run(capsys, "run", path, "--out", tmp_path / "run")
    assert code == 2, out
    lines = err.splitlines()
    assert lines and all(line.startswith(f"probgen: error: {path}: ") for line in lines)
    assert all(any(n in line for line in lines) for n in needles), err
    assert not (tmp_path / "run").exists()  # nothing fitted, nothing written


def test_every_problem_is_reported_at_once():
    raw = {"data": {"name": "digits"}, "bogus": 1, "fit": {"epochs": 0}}
    raw["models"] = [{"name": "independent-bernoulli"}, {"name": "vae", "args": {"foo": 1}}, {"name": "nope"}]
    with pytest.raises(ConfigError) as info:
        validate_config(raw)
    errors = info.value.errors
    assert len(errors) == 5, errors
    assert [e.split(":")[0].split(" ")[0] for e in errors] == [
        "bogus",
        "fit.epochs",
        "models[1].args.foo",
        "models[2].name",
        "models[0].name",
    ]


def test_seeds_and_grid_expand_to_one_job_each():
    config = validate_config(
        {
            "seeds": [3, 5],
            "data": {"name": "digits-binary"},
            "fit": {"epochs": 7},
            "models": [
                {"name": "vae", "grid": {"beta": [0.5, 2.0], "latent_dim": [2, 4, 8]}, "fit": {"lr": 0.01}},
                {"name": "independent-bernoulli"},
            ],
        }
    )
    jobs = expand_jobs(config)
    assert len(jobs) == 2 * 3 * 2 + 2
    vae = [j for j in jobs if j.name == "vae"]
    assert {(j.args["beta"], j.args["latent_dim"], j.seed) for j in vae} == {
        (b, d, s) for b in (0.5, 2.0) for d in (2, 4, 8) for s in (3, 5)
    }
    assert all(j.fit["epochs"] == 7 and j.fit["lr"] == 0.01 and j.fit["patience"] == 40 for j in vae)
    assert len({j.id for j in jobs}) == len(jobs)
    assert all(j.model_seed == model_seed(j.seed, j.variant) for j in jobs)


# ----------------------------------------------------------------------------- runs


def test_run_writes_tables_and_a_rerun_skips_finished_jobs(capsys, tmp_path):
    path = write(tmp_path, SMALL)
    out = tmp_path / "run"
    code, stdout, err = run(capsys, "run", path, "--out", out, "--quiet")
    assert code == 0, err
    results = json.loads((out / "results.json").read_text())
    jobs, summary = results["jobs"], results["summary"]
    assert [j["job"] for j in jobs] == [
        "independent-bernoulli-seed=0",
        "independent-bernoulli-seed=1",
        "bern-map-seed=0",
        "bern-map-seed=1",
    ]
    for row in jobs:
        per_dim = 1 if row["model"] == "bern-map" else 2  # a Beta posterior per pixel, or its mode
        assert row["kind"] == "exact" and row["num_params"] == per_dim * 64 and row["split"] == "test"
        assert row["bits_per_dim"] == pytest.approx(row["nll_nats"] / (64 * 0.6931471805599453))
    by_model = {s["model"]: s for s in summary}
    for name, s in by_model.items():
        values = [j["nll_nats"] for j in jobs if j["model"] == name]
        assert s["seeds"] == 2
        assert s["nll_nats"] == pytest.approx(statistics.fmean(values))
        assert s["nll_sd"] == pytest.approx(statistics.stdev(values))
    with open(out / "results.csv") as fh:
        table = list(csv.DictReader(fh))
    assert [float(r["nll_nats"]) for r in table] == [j["nll_nats"] for j in jobs]
    assert "± " in (out / "results.md").read_text()
    for name in ("config.toml", "config.resolved.json", "meta.json", "plots/likelihood.png", "plots/loss_curves.png"):
        assert (out / name).is_file(), name
    assert json.loads((out / "meta.json").read_text())["probgen"]
    assert (out / "jobs" / "bern-map-seed=1" / "samples.png").is_file()
    written = [line.split(" ", 1)[1] for line in stdout.splitlines() if line.startswith("wrote ")]
    assert all(Path(p).exists() for p in written) and str(out / "results.json") in written

    stamps = {p: p.stat().st_mtime_ns for p in (out / "jobs").rglob("*") if p.is_file() and p.name != "job.json"}
    code, stdout, _ = run(capsys, "run", path, "--out", out)
    assert code == 0 and stdout.count("finished before, skipped") == 4
    assert stamps == {p: p.stat().st_mtime_ns for p in stamps}
    assert json.loads((out / "results.json").read_text())["jobs"] == jobs


KILL = """
seeds = [0]
samples = 0
[data]
name = "digits-binary"
[fit]
batch_size = 50
lr = 0.01
[[models]]
name = "independent-bernoulli"
label = "first"
fit = { epochs = 2 }
[[models]]
name = "independent-bernoulli"
label = "second"
fit = { epochs = 30 }
"""


def _wait_for(paths, pid, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(p.exists() for p in paths):
            return True
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done:
            return False
        time.sleep(0.02)
    return False


def test_sigkill_midway_then_rerun_resumes(capsys, tmp_path):
    path = write(tmp_path, KILL)
    out = tmp_path / "run"
    pid = os.fork()
    if pid == 0:  # the child runs the experiment until killed
        try:
            main(["run", str(path), "--out", str(out), "--quiet"])
        finally:
            os._exit(0)
    first, second = out / "jobs" / "first-seed=0", out / "jobs" / "second-seed=0"
    reached = _wait_for([first / "result.json", second / "checkpoint.safetensors"], pid)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    assert reached, "the run finished or stalled before it could be killed midway"
    assert not (second / "result.json").exists()
    stamps = {p: p.stat().st_mtime_ns for p in first.iterdir() if p.name != "job.json"}
    code, stdout, err = run(capsys, "run", path, "--out", out)
    assert code == 0, err
    assert "first-seed=0: finished before, skipped" in stdout
    assert "second-seed=0: resuming from" in stdout
    assert stamps == {p: p.stat().st_mtime_ns for p in stamps}  # not refitted
    fit = json.loads((second / "fit.json").read_text())
    assert fit["resumed_after_epochs"] >= 1 and len(fit["history"]) == 30
    resumed = json.loads((out / "results.json").read_text())["jobs"]

    clean = tmp_path / "clean"
    assert run(capsys, "run", path, "--out", clean, "--quiet")[0] == 0
    uninterrupted = json.loads((clean / "results.json").read_text())["jobs"]
    # the resumed fit continues exactly: every epoch's loss and the final results are the
    # uninterrupted fit's, number for number (only the timings differ)
    for a, b in zip(resumed, uninterrupted, strict=True):
        assert a == b | {"train_seconds": a["train_seconds"], "eval_seconds": a["eval_seconds"]}
    history = json.loads((clean / "jobs" / "second-seed=0" / "fit.json").read_text())["history"]
    assert [h["train_loss"] for h in fit["history"]] == [h["train_loss"] for h in history]


def test_time_limit_keeps_the_best_epoch_so_far(capsys, tmp_path):
    assert "epochs = 30" in KILL
    path = write(tmp_path, KILL.replace("epochs = 30", "epochs = 100000"))
    code, stdout, err = run(capsys, "run", path, "--out", tmp_path / "run", "--time-limit", "1.5")
    assert code == 0, err
    fit = json.loads((tmp_path / "run" / "jobs" / "second-seed=0" / "fit.json").read_text())
    assert 1 <= len(fit["history"]) < 100000 and fit["stopped"] == f"time limit at epoch {len(fit['history'])}"
    result = json.loads((tmp_path / "run" / "results.json").read_text())
    # every table says the number came from a cut fit (it depends on the machine's speed and load)
    assert result["summary"][-1]["note"] == f"stopped: {fit['stopped']}"
    assert f"stopped: {fit['stopped']}" in (tmp_path / "run" / "results.md").read_text()
    assert f"stopped: {fit['stopped']}" in (tmp_path / "run" / "report.html").read_text()
    assert "time limit of 1.5 s reached" in stdout


def test_classifiers_export_inference_data_and_az_compare(capsys, tmp_path):
    import arviz as az

    config = CONFIGS[[c.name for c in CONFIGS].index("classifiers.toml")]
    out = tmp_path / "run"
    code, _, err = run(capsys, "run", config, "--out", out, "--quiet", "--epochs", "2")
    assert code == 0, err
    rows = json.loads((out / "results.json").read_text())["jobs"]
    table = list(csv.DictReader(open(out / "az_compare.csv")))
    bayesian = rows  # MAP too: draws from its Laplace approximation
    assert {r[""] for r in table} == {r["job"] for r in bayesian}
    assert (out / "jobs" / "gaussian-nb-map-seed=0" / "inference_data.nc").is_file()
    for row in bayesian:
        idata = az.from_netcdf(str(out / "jobs" / row["job"] / "inference_data.nc"))
        pointwise = idata.log_likelihood["obs"]
        assert pointwise.shape[-1] == row["num_examples"] == 30
        elpd = next(float(r["elpd_loo"]) for r in table if r[""] == row["job"])
        assert elpd == pytest.approx(float(az.loo(idata).elpd_loo), rel=1e-9)


# ----------------------------------------------------------------------------- example configs


@pytest.mark.parametrize("config", CONFIGS, ids=[c.stem for c in CONFIGS])
def test_example_config_smoke(capsys, tmp_path, config):
    out = tmp_path / "run"
    argv = ["run", config, "--out", out, "--quiet", "--epochs", "1", "--num-samples", "5", "--seeds", "0"]
    code, stdout, err = run(capsys, *argv)
    assert code == 0, err
    rows = json.loads((out / "results.json").read_text())["jobs"]
    assert rows and all(r["seed"] == 0 and r["epochs_run"] == 1 for r in rows)
    assert (out / "plots" / "likelihood.png").is_file() and "| model |" in stdout


def test_every_example_config_has_a_smoke_test():
    assert {c.name for c in CONFIGS} == {"digits-comparison.toml", "vae-beta-sweep.toml", "classifiers.toml"}


def test_compare_is_a_run_preset_and_each_row_carries_its_models_kind(capsys, tmp_path):
    import probgen as pg

    out = tmp_path / "c"
    # one model of each density kind (exact, exact classifier, lower bound, unnormalized, implicit):
    # every registered model takes ~10 times as long and goes through the same code per kind
    models = ["independent-bernoulli", "bernoulli-nb", "vae", "rbm", "gan"]
    argv = ["compare", "--data", "digits-binary", "--models", *models, "--epochs", "1", "--num-samples", "5"]
    code, stdout, err = run(capsys, *argv, "--format", "json", "--quiet", "--out", out)
    assert code == 0, err
    rows = json.loads(stdout)["rows"]
    train = pg.load_dataset("digits-binary")
    # an unnormalized model's number is exact or an estimate as its log Z is
    expected = {"exact": {"exact"}, "lower_bound": {"lower_bound"}, "estimate": {"estimate"}}
    expected["unnormalized"] = {"exact", "estimate"}
    expected["implicit"] = {"implicit"}
    assert [r["model"] for r in rows] == models
    assert {pg.models.build_model(m, train).density for m in models} == {"exact", "lower_bound", "unnormalized",
                                                                          "implicit"}  # fmt: skip
    for row in rows:
        model = pg.models.build_model(row["model"], train)
        assert row["kind"] in expected[model.density], row["model"]
        # implicit models: likelihood-free numbers in their own columns, never in the nats column
        assert (row["nll_nats"] is None) == (model.density == "implicit"), row["model"]
        assert (row["mmd2"] is not None) == (model.density == "implicit"), row["model"]
    stored = json.loads((out / "digits-binary" / "results.json").read_text())["jobs"]
    assert [r["nll_nats"] for r in stored] == [r["nll_nats"] for r in rows]
    assert all(r["seed"] == 0 and r["model_seed"] == model_seed(0, r["model"]) for r in rows)


def test_a_closed_form_posterior_counts_its_parameters():
    """A conjugate fit holds no torch parameters but has a theta: the table counts its values
    (GaussianNB on 4 features, 3 classes: pi 3, mean and precision 3 x 4 each), as a MAP fit's."""
    from sklearn.datasets import load_iris

    from probgen.experiments.runner import num_params

    X, y = load_iris(return_X_y=True)
    x, labels = torch.tensor(X, dtype=torch.float32), torch.tensor(y)
    counts = {}
    for method in ("conjugate", "map"):
        model = pg.models.GaussianNaiveBayes(4, num_classes=3, method=method)
        pg.fit(model, (x, labels), epochs=2, progress=False)
        counts[method] = num_params(model)
    assert sum(p.numel() for p in model.parameters()) == 27  # the MAP point's own parameters
    assert counts == {"conjugate": 3 + 2 * 3 * 4, "map": 27}
    assert num_params(pg.models.IndependentBernoulli(64)) == 2 * 64  # no posterior: its parameters
