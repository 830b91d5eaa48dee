"""Progress of a run: an overall bar over its jobs, a bar per job, nothing with --quiet, clean lines
off a terminal, and the "probgen" logger's levels."""

import io
import logging

import pytest

import probgen.experiments.runner as runner
from probgen.cli import main
from probgen.experiments import expand_jobs, run_experiment, validate_config
from probgen.progress import LineProgress, configure_logging, progress_bar

TINY = {
    "name": "tiny",
    "seeds": [0, 1],
    "samples": 0,
    "data": {"name": "iris"},
    "fit": {"epochs": 3, "batch_size": 45},
    "models": [{"name": "independent-gaussian"}],
}
TOML = """
name = "tiny"
seeds = [0, 1]
samples = 0
[data]
name = "iris"
[fit]
epochs = 3
batch_size = 45
[[models]]
name = "independent-gaussian"
"""


class Terminal(io.StringIO):
    """A stream that says it is a terminal."""

    def isatty(self):
        return True


@pytest.fixture
def probgen_logger():
    """The "probgen" logger, restored after the test."""
    logger = logging.getLogger("probgen")
    handlers, level = list(logger.handlers), logger.level
    yield logger
    logger.handlers[:] = handlers
    logger.setLevel(level)


def test_quiet_run_writes_nothing_to_stderr(capfd, tmp_path):
    config = tmp_path / "tiny.toml"
    config.write_text(TOML)
    assert main(["run", str(config), "--out", str(tmp_path / "run"), "--quiet"]) == 0
    out, err = capfd.readouterr()
    assert err == "" and "| model |" in out


def test_no_progress_and_warning_level_write_nothing_to_stderr(capfd, tmp_path, probgen_logger):
    configure_logging(logging.WARNING)
    run_experiment(validate_config(TINY), tmp_path / "run", progress=False)
    assert capfd.readouterr().err == ""


def test_overall_bar_counts_every_job_and_lines_stay_clean(monkeypatch, capfd, tmp_path, probgen_logger):
    bars = []

    def recording(*args, **kwargs):
        bars.append(progress_bar(*args, **kwargs))
        return bars[-1]

    monkeypatch.setattr(runner, "progress_bar", recording)
    configure_logging(logging.INFO)
    config = validate_config(TINY)
    jobs = expand_jobs(config)
    for attempt in range(2):  # the second run skips the finished jobs, and still counts them
        run_experiment(config, tmp_path / "run", progress=True)
        overall = bars[-1]
        assert len(bars) == attempt + 1 and isinstance(overall, LineProgress)  # stderr is no terminal here
        assert overall.total == overall.n == len(jobs) == 2 and overall.closed and not overall.disable
        err = capfd.readouterr().err
        assert "\r" not in err
        lines = err.splitlines()
        assert any(line.startswith("run tiny: 2/2 (100%)") for line in lines)
        assert any(line.startswith("run tiny: 1/2 (50%)") and "ETA" in line for line in lines)
        assert ("finished before, skipped" in err) == (attempt == 1)


def test_each_job_has_a_bar_with_its_loss_and_eta(capfd, tmp_path, probgen_logger):
    configure_logging(logging.WARNING)
    run_experiment(validate_config(TINY | {"seeds": [0]}), tmp_path / "run", progress=True)
    lines = capfd.readouterr().err.splitlines()
    job = [line for line in lines if line.startswith("fit independent-gaussian: ")]
    assert [line.split(": ")[1].split(" ")[0] for line in job] == ["0/3", "1/3", "2/3", "3/3"]  # one at once
    assert all("train_loss=" in line for line in job[1:]) and "ETA" in job[1] and "ETA" not in job[-1]


def test_progress_bar_suits_its_stream():
    pytest.importorskip("tqdm")
    terminal, log = Terminal(), io.StringIO()
    for _ in progress_bar(range(25), desc="fit", file=terminal):
        pass
    assert "\r" in terminal.getvalue() and "25/25" in terminal.getvalue()
    for _ in progress_bar(range(25), desc="fit", file=log):
        pass
    lines = log.getvalue().splitlines()
    assert "\r" not in log.getvalue() and len(lines) == 12  # at once, the first step, then one per 10%
    assert lines[0].startswith("fit: 0/25 (0%)") and lines[1].startswith("fit: 1/25 (4%)") and "ETA" in lines[1]
    assert lines[-1].startswith("fit: 25/25 (100%)")
    quiet = io.StringIO()
    for _ in progress_bar(range(25), file=quiet, disable=True):
        pass
    assert quiet.getvalue() == ""


@pytest.mark.parametrize("value, silent", [("1", True), ("true", True), ("0", False), ("", False)])
def test_tqdm_disable_in_the_environment_silences_every_bar(monkeypatch, value, silent):
    pytest.importorskip("tqdm")
    monkeypatch.setenv("TQDM_DISABLE", value)
    terminal, log = Terminal(), io.StringIO()
    for stream in (terminal, log):
        for _ in progress_bar(range(5), desc="fit", file=stream):
            pass
    assert (terminal.getvalue() == "" and log.getvalue() == "") == silent


def test_logging_levels_and_one_handler(probgen_logger):
    stream = io.StringIO()
    configure_logging(logging.INFO, stream)
    configure_logging(logging.INFO, stream)  # replaces its handler: no doubled lines
    log = logging.getLogger("probgen.experiments")
    log.info("job 1")
    log.debug("hidden")
    configure_logging("WARNING", stream)
    log.info("quiet now")
    log.warning("a warning")
    assert stream.getvalue() == "job 1\na warning\n"


def test_log_lines_on_a_terminal_go_above_an_open_bar(probgen_logger):
    terminal = Terminal()
    configure_logging(logging.INFO, terminal)
    with progress_bar(total=3, desc="run", file=terminal) as bar:
        bar.update(1)
        logging.getLogger("probgen.experiments").info("[2/3] next job")
        bar.update(2)
    text = terminal.getvalue()
    assert "[2/3] next job\n" in text and text.index("[2/3] next job") < text.rindex("3/3")


def test_long_work_prints_at_least_every_interval(monkeypatch):
    import probgen.progress as progress

    now = [0.0]
    monkeypatch.setattr(progress.time, "perf_counter", lambda: now[0])
    log = io.StringIO()
    bar = LineProgress(total=1000, desc="nuts", file=log)
    for _ in range(40):  # 40 steps of 20 s: 4% of the run, no 10% mark reached
        now[0] += 20.0
        bar.update(1)
    lines = log.getvalue().splitlines()
    # at once, the first step, then a line whenever 30 s have passed since the last (every 2nd step)
    assert lines[0].startswith("nuts: 0/1000") and lines[1].startswith("nuts: 1/1000")
    assert [int(line.split()[1].split("/")[0]) for line in lines[2:]] == list(range(3, 41, 2))


def test_nuts_chains_report_progress_off_a_terminal(capfd):
    import torch

    import probgen as pg

    x = torch.randn(30, 2, dtype=torch.float64)
    y = torch.arange(30) % 2
    model = pg.models.GaussianNaiveBayes((2,), "real", num_classes=2, method="nuts").double()
    nuts = {"num_samples": 5, "warmup_steps": 5, "num_chains": 2, "max_tree_depth": 3}
    pg.fit(model, (x, y), progress=True, strategy_options=nuts)
    lines = capfd.readouterr().err.splitlines()
    for chain in (1, 2):
        mine = [line for line in lines if line.startswith(f"nuts chain {chain}/2: ")]
        assert mine[0].startswith(f"nuts chain {chain}/2: 0/10 (0%)") and mine[-1].startswith(
            f"nuts chain {chain}/2: 10/10"
        )
    assert "\r" not in "".join(lines)
