"""A run's numbers depend on its config's ``threads`` (torch's threads per job, default 1), not on
the thread count of the process that runs it: a machine with other cores gets the same numbers."""

from __future__ import annotations

import pytest
import torch

from probgen.experiments import run_experiment, validate_config


def _nll(tmp_path, name: str, threads: int | None, process_threads: int) -> float:
    raw = {"data": {"name": "digits"}, "fit": {"epochs": 1}, "samples": 0, "models": [{"name": "pixelcnn"}]}
    config = validate_config(raw | ({} if threads is None else {"threads": threads}))
    before = torch.get_num_threads()
    torch.set_num_threads(process_threads)
    try:
        done = run_experiment(config, tmp_path / name, progress=False, log=lambda _: None)
        assert torch.get_num_threads() == process_threads  # the job's count is put back after it
    finally:
        torch.set_num_threads(before)
    return done["jobs"][0]["nll_nats"]


def test_a_job_computes_with_the_configs_threads_whatever_the_process_has(tmp_path):
    one = _nll(tmp_path, "one", 1, process_threads=1)
    if _nll(tmp_path, "two", 2, process_threads=2) == one:  # convolutions that round alike: nothing to see
        pytest.skip("this torch build's convolutions give the same sums at 1 and 2 threads")
    # the default (1) in a process with 2 threads, and an explicit 1 in one with 4: as at 1 thread
    assert _nll(tmp_path, "default", None, process_threads=2) == one
    assert _nll(tmp_path, "pinned", 1, process_threads=4) == one


def test_threads_is_checked_and_belongs_to_the_top_level():
    base = {"data": {"name": "digits-binary"}, "models": [{"name": "independent-bernoulli"}]}
    assert validate_config(base)["threads"] == 1
    with pytest.raises(ValueError, match=r"threads = 0: expected an integer 1\.\.1024"):
        validate_config(base | {"threads": 0})
    with pytest.raises(ValueError, match=r"executor\.threads = 2: expected it at the top level"):
        validate_config(base | {"executor": {"threads": 2}})
