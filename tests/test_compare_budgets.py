"""The main job's budgets are counted, not timed: the same ``probgen compare`` gives the same
table on an idle and on a busy machine; a wall-clock cap is optional and labelled; one failed
job never loses the others."""

from __future__ import annotations

import json
import multiprocessing
import os
import time

import pytest

from probgen.cli import main
from probgen.models import MODELS

#: models whose compare budgets run in about a second here (counted epochs, early stopping)
QUICK = ["independent-bernoulli", "fvbn"]
TIMINGS = ("seconds", "train_seconds", "eval_seconds")


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _compare(capsys, out, *extra):
    argv = ["compare", "--data", "digits-binary", "--models", *QUICK, "--format", "json", "--quiet"]
    code, stdout, err = run(capsys, *argv, "--out", out, *extra)
    return code, json.loads(stdout)["rows"], err


def _without_timings(rows):
    return [{k: v for k, v in r.items() if k not in TIMINGS} for r in rows]


def _spin(stop_at: float) -> None:
    while time.monotonic() < stop_at:
        pass


def test_compare_gives_the_same_table_on_a_busy_machine(capsys, tmp_path):
    code, idle, err = _compare(capsys, tmp_path / "idle")
    assert code == 0, err
    cores = len(os.sched_getaffinity(0))
    spinners = [multiprocessing.Process(target=_spin, args=(time.monotonic() + 120,)) for _ in range(cores)]
    for p in spinners:
        p.start()
    try:
        code, busy, err = _compare(capsys, tmp_path / "busy")
    finally:
        for p in spinners:
            p.terminate()
            p.join()
    assert code == 0, err
    assert _without_timings(busy) == _without_timings(idle)
    assert all(r["nll_nats"] is not None and r["note"] is None for r in busy)
    # each model ran its registered compare budget in epochs (or stopped early on validation)
    for name in QUICK:
        fit = json.loads((tmp_path / "busy" / "digits-binary" / "jobs" / f"{name}-seed=0" / "fit.json").read_text())
        budget = MODELS[name].budget("compare")
        assert len(fit["history"]) == budget["epochs"] or fit["stopped"] == f"early stop at epoch {len(fit['history'])}"


def test_a_time_limit_before_the_first_epoch_gives_a_row_with_the_reason(capsys, tmp_path):
    code, rows, err = _compare(capsys, tmp_path / "c", "--time-limit", "1e-6")
    assert code == 0, err  # not a failed command
    assert [r["model"] for r in rows] == QUICK
    for row in rows:
        assert row["nll_nats"] is None and row["kind"] is None and row["error"] is None
        assert row["stopped"] == "time limit before epoch 1"
        assert row["note"] == "stopped: time limit before epoch 1"
    results = json.loads((tmp_path / "c" / "digits-binary" / "results.json").read_text())
    assert all(s["note"] == "stopped: time limit before epoch 1" for s in results["summary"])
    assert "stopped: time limit before epoch 1" in (tmp_path / "c" / "digits-binary" / "report.html").read_text()


def test_a_failed_job_keeps_the_others_and_the_same_command_retries_it(capsys, tmp_path, monkeypatch):
    fvbn = MODELS["fvbn"].cls

    def broken(self, x, y=None):
        raise RuntimeError("a fault in the model")

    monkeypatch.setattr(fvbn, "init_from_data", broken)
    out = tmp_path / "c"
    code, rows, err = _compare(capsys, out)
    assert code == 1
    assert "probgen: error: digits-binary: fvbn-seed=0: RuntimeError: a fault in the model" in err
    good, bad = rows
    assert good["model"] == "independent-bernoulli" and good["nll_nats"] > 0 and good["error"] is None
    assert bad["nll_nats"] is None and bad["note"] == "failed: RuntimeError: a fault in the model"
    # the finished job's results stay on disk, with the table
    assert (out / "digits-binary" / "jobs" / "independent-bernoulli-seed=0" / "result.json").is_file()
    assert (out / "compare-digits-binary.json").is_file()
    monkeypatch.undo()
    code, again, err = _compare(capsys, out)
    assert code == 0, err
    assert _without_timings([again[0]]) == _without_timings([good])  # finished before: skipped
    assert again[1]["nll_nats"] > 0 and again[1]["error"] is None


def test_budget_takes_a_preset_and_points_seconds_to_the_time_limit(capsys):
    code, _, err = run(capsys, "compare", "--budget", "12")
    assert code == 2
    assert "expected one of compare, full, got '12'; for a wall-clock cap use --time-limit SECONDS" in err
    assert "Traceback" not in err


def test_every_registered_budget_counts_epochs():
    for name, spec in MODELS.items():
        for preset in ("compare", "full"):
            budget = spec.budget(preset)
            assert "time_limit" not in budget, name
            if "epochs" in spec.fit_defaults:
                assert isinstance(budget.get("epochs"), int) and budget["epochs"] > 0, (name, preset)
        assert spec.budget("compare")["epochs"] <= spec.budget("full")["epochs"], name
    with pytest.raises(ValueError, match="budget preset 'fast'"):
        MODELS["vae"].budget("fast")
