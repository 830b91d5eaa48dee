"""Sweeps past one process: the same results serially, on a local pool and on Dask; faults."""

import json
import os
import signal
import sys
import threading
import time
from pathlib import Path

import pytest

from probgen.cli import main
from probgen.experiments import load_config, run_experiment, validate_config
from probgen.experiments.executors import make_executor

#: six jobs (two models x three seeds), a second or so each: a gradient-trained (SVI)
#: conjugate model and a fully visible sigmoid belief net, one epoch each (no loss plot to draw)
SIX = """
seeds = [0, 1, 2]
samples = 0
[data]
name = "digits-binary"
[fit]
epochs = 1
batch_size = 200
[[models]]
name = "independent-bernoulli"
[[models]]
name = "fvbn"
"""

#: timings are the only columns that may differ between two runs of one job
TIMES = ("train_seconds", "eval_seconds")


def _config(tmp_path, text, **executor):
    path = tmp_path / "exp.toml"
    path.write_text(text + ("[executor]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in executor.items())))
    return path, validate_config(load_config(path), base=tmp_path, source=str(path))


def _rows(out):
    return json.loads((Path(out) / "results.json").read_text())["jobs"]


def _numbers(rows):
    return [{k: v for k, v in row.items() if k not in TIMES} for row in rows]


def test_serial_jobs_2_and_a_local_cluster_give_the_same_numbers(tmp_path):
    pytest.importorskip("distributed")
    _, config = _config(tmp_path, SIX)
    lines = []
    serial = run_experiment(config, tmp_path / "serial", progress=False, log=lambda _: None)
    pooled = run_experiment(config, tmp_path / "pool", progress=False, log=lines.append, executor={"jobs": 2})
    dask_lines = []
    dask = run_experiment(config, tmp_path / "dask", progress=False, log=dask_lines.append,
                          executor={"kind": "dask", "jobs": 2})  # fmt: skip
    assert "running 6 job(s) on 2 local worker processes, 1 torch thread(s) per job" in lines
    # the LocalCluster's workers run without Dask's MALLOC_TRIM_THRESHOLD_ (a worker with it says so)
    assert not [line for line in dask_lines if "MALLOC_TRIM_THRESHOLD_" in line], dask_lines
    assert "MALLOC_TRIM_THRESHOLD_" not in os.environ  # nor does the nanny leave it in this process
    reference = _numbers(_rows(tmp_path / "serial"))
    assert len(reference) == 6 and all(r["error"] is None and r["nll_nats"] > 0 for r in reference)
    assert len({r["nll_nats"] for r in reference}) == 6  # seeds and models differ: a mix-up would show
    # job for job (the rows in config order whatever the order they finished in), every column
    assert _numbers(_rows(tmp_path / "pool")) == reference
    assert _numbers(_rows(tmp_path / "dask")) == reference
    assert _numbers(pooled["jobs"]) == _numbers(dask["jobs"]) == _numbers(serial["jobs"])
    meta = json.loads((tmp_path / "dask" / "meta.json").read_text())
    assert meta["executor"]["kind"] == "dask" and "executor" not in json.loads(
        (tmp_path / "serial" / "meta.json").read_text()
    )
    # what is computed does not record where: a run may go on with another executor
    resolved = [(tmp_path / d / "config.resolved.json").read_text() for d in ("serial", "pool", "dask")]
    assert resolved[0] == resolved[1] == resolved[2]


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
label = "quick"
fit = { epochs = 1 }
[[models]]
name = "independent-bernoulli"
label = "slow"
fit = { epochs = 12 }
[[models]]
name = "fvbn"
fit = { epochs = 1 }
"""


def _holder(lock):
    """The process (a child of this one) that has ``lock`` open: the worker running its job."""
    import psutil

    for child in psutil.Process().children(recursive=True):
        try:
            if any(f.path == str(lock) for f in child.open_files()):
                return child.pid
        except psutil.Error:
            continue
    return None


def _kill_worker_of(folder, times, killed, stop):
    """SIGKILL the worker fitting the job in ``folder`` ``times`` times, each once it has a checkpoint."""
    lock = folder.resolve() / ".lock"
    while len(killed) < times and not stop.is_set():
        pid = _holder(lock) if (folder / "checkpoint.safetensors").exists() else None
        if pid is not None and pid not in killed:
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
        time.sleep(0.02)


def test_a_killed_worker_is_retried_then_failed_with_its_reason_while_the_others_finish(tmp_path):
    pytest.importorskip("psutil")
    path, config = _config(tmp_path, KILL)
    out, lines, killed, stop = tmp_path / "run", [], [], threading.Event()
    slow = out / "jobs" / "slow-seed=0"
    killer = threading.Thread(target=_kill_worker_of, args=(slow, 2, killed, stop), daemon=True)
    killer.start()
    try:
        done = run_experiment(config, out, progress=False, log=lines.append, executor={"jobs": 2, "retries": 1})
    finally:
        stop.set()
        killer.join()
    assert len(killed) == 2, "the slow job finished before its worker could be killed twice"
    rows = {r["job"]: r for r in done["jobs"]}
    assert rows["slow-seed=0"]["error"] == (
        "WorkerDied: the worker process running the job died (killed by SIGKILL) on each of 2 attempt(s) (retries = 1)"
    )
    assert "slow-seed=0: its worker process died (killed by SIGKILL); retrying (1 of 1)" in lines
    for job in ("quick-seed=0", "fvbn-seed=0"):  # the others finished, scored
        assert rows[job]["error"] is None and rows[job]["nll_nats"] > 0
    assert _rows(out)[1]["error"].startswith("WorkerDied")  # the tables say it too
    # the second attempt continued from the first one's checkpoint; the same command finishes the job
    code = main(["run", str(path), "--out", str(out), "--quiet"])
    assert code == 0
    fit = json.loads((slow / "fit.json").read_text())
    assert fit["resumed_after_epochs"] >= 1 and len(fit["history"]) == 12


def test_a_killed_run_goes_on_with_another_jobs_count_finished_jobs_untouched(tmp_path):
    path, _ = _config(tmp_path, KILL)
    out = tmp_path / "run"
    quick, slow = out / "jobs" / "quick-seed=0", out / "jobs" / "slow-seed=0"
    pid = os.fork()
    if pid == 0:  # the child runs the experiment on 2 workers until killed
        try:
            sys.stdout = sys.stderr = open(os.devnull, "w")
            main(["run", str(path), "--out", str(out), "--quiet", "--jobs", "2"])
        finally:
            os._exit(0)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (
        (quick / "result.json").exists() and (slow / "checkpoint.safetensors").exists()
    ):
        assert os.waitpid(pid, os.WNOHANG) == (0, 0), "the run ended before it could be killed midway"
        time.sleep(0.02)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    assert not (slow / "result.json").exists()
    stamps = {p: p.stat().st_mtime_ns for p in quick.iterdir()}
    code = main(["run", str(path), "--out", str(out), "--quiet", "--jobs", "1"])  # the serial run continues it
    assert code == 0
    assert stamps == {p: p.stat().st_mtime_ns for p in quick.iterdir()}  # not refitted, not rewritten
    fit = json.loads((slow / "fit.json").read_text())
    assert fit["resumed_after_epochs"] >= 1 and len(fit["history"]) == 12
    assert [r["error"] for r in _rows(out)] == [None, None, None]


def test_dask_missing_says_how_to_install_it_exit_2(tmp_path, capsys, monkeypatch):
    path, _ = _config(tmp_path, SIX)
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed: ImportError
    code = main(["run", str(path), "--out", str(tmp_path / "run"), "--executor", "dask"])
    err = capsys.readouterr().err
    assert code == 2 and 'pip install -e ".[dask]"' in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "spec,needle",
    [
        ({"jobs": 0}, "executor jobs = 0: expected an integer >= 1"),
        ({"kind": "ray"}, "executor kind = 'ray': expected 'local' or 'dask'"),
        ({"scheduler": "tcp://h:1"}, "with kind 'local': expected kind = 'dask'"),
        ({"workers": 2}, "unknown key 'workers'"),
    ],
)
def test_a_bad_executor_spec_is_one_clear_line(spec, needle):
    with pytest.raises(ValueError, match=needle.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
        make_executor(spec)


def test_the_config_executor_table_is_checked_and_the_command_line_overrides_it(tmp_path, capsys):
    with pytest.raises(ValueError, match="executor.jobs = 0: expected a positive integer"):
        _config(tmp_path, SIX, jobs=0)
    with pytest.raises(ValueError, match="executor.scheduler = 'tcp://h:1': expected it with kind = 'dask'"):
        _config(tmp_path, SIX, scheduler="tcp://h:1")
    path, config = _config(tmp_path, SIX, kind="dask", scheduler="tcp://h:1")
    code = main(["run", str(path), "--out", str(tmp_path / "run"), "--jobs", "2"])
    assert code == 2 and "--jobs 2 with the Dask scheduler 'tcp://h:1'" in capsys.readouterr().err


def test_a_worker_with_dask_s_malloc_trim_threshold_says_so_once(monkeypatch):
    from probgen.experiments import worker

    monkeypatch.setattr(worker, "_NOTED", [])
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_", raising=False)
    assert worker._environment_notes() == []
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "65536")
    (note,) = worker._environment_notes()
    assert "MALLOC_TRIM_THRESHOLD_=65536" in note and "pre-spawn-environ" in note
    assert worker._environment_notes() == []  # once per worker process
