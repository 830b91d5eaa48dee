"""Large grids: a config says how many jobs it expands to at once, and checking it costs a model
build per grid value, never one per job."""

from __future__ import annotations

import pytest

import probgen.experiments.jobs as jobs_module
from probgen.cli import main
from probgen.experiments import ConfigError, expand_jobs, validate_config
from probgen.experiments.jobs import MAX_JOBS, count_jobs


def _config(grid, seeds=(0,), extra=None):
    raw = {"name": "g", "seeds": list(seeds), "data": {"name": "digits-binary"}}
    raw["models"] = [{"name": "vae", "grid": grid}, {"name": "independent-bernoulli"}, *(extra or [])]
    return raw


def test_count_matches_the_expansion():
    grid = {"latent_dim": [2, 3, 4], "beta": [0.5, 1.0], "hidden_features": [[8], [16, 16]]}
    config = validate_config(_config(grid, seeds=(0, 1, 5)))
    jobs = expand_jobs(config)
    assert count_jobs(config) == len(jobs) == 3 * (3 * 2 * 2 + 1)
    assert len({j.id for j in jobs}) == len(jobs)


def test_validation_builds_a_model_per_grid_value_not_per_job(monkeypatch):
    built = []
    real = jobs_module.build_job_model
    monkeypatch.setattr(jobs_module, "build_job_model", lambda job, train: built.append(job.args) or real(job, train))
    grid = {"latent_dim": list(range(1, 21)), "beta": [0.1 * i for i in range(1, 21)], "hidden_features": [[4], [8]]}
    config = validate_config(_config(grid, seeds=range(10)))
    assert count_jobs(config) == 10 * (20 * 20 * 2 + 1)
    # the first point, then each other value of one key: 1 + 19 + 19 + 1 for the grid, 1 for the other model
    assert len(built) == 1 + 19 + 19 + 1 + 1


def test_a_bad_value_anywhere_in_the_grid_is_found():
    grid = {"latent_dim": [2, 3, -4], "beta": [0.5, 1.0]}
    with pytest.raises(ConfigError) as caught:
        validate_config(_config(grid))
    (line,) = caught.value.errors
    assert '"latent_dim": -4' in line and "latent_dim must be a positive integer, got -4" in line


def test_a_million_jobs_are_refused_at_once(capsys, tmp_path, monkeypatch):
    built = []
    monkeypatch.setattr(jobs_module, "build_job_model", lambda job, train: built.append(1))
    grid = {"latent_dim": list(range(1, 101)), "beta": [i / 100 for i in range(1, 101)], "hidden_features": [[8]] * 10}
    with pytest.raises(ConfigError) as caught:
        validate_config(_config(grid, seeds=range(10)))
    assert caught.value.errors == [
        f"models: the grids and seeds expand to 1,000,010 jobs; expected at most {MAX_JOBS:,}"
    ]
    assert built == []


def test_dry_run_says_how_many_jobs_and_lists_the_first(capsys, tmp_path):
    seeds = ", ".join(str(s) for s in range(40))
    config = tmp_path / "c.toml"
    config.write_text(
        f'name = "g"\nseeds = [{seeds}]\n[data]\nname = "digits-binary"\n'
        '[[models]]\nname = "vae"\ngrid = { latent_dim = [2, 3, 4] }\n'
    )
    code = main(["run", str(config), "--dry-run"])
    out = capsys.readouterr().out.splitlines()
    assert code == 0
    assert out[0] == f"{config}: 120 job(s) -> runs/g"
    assert len(out) == 1 + 50 + 1 and out[-1] == "  ... and 70 more"
