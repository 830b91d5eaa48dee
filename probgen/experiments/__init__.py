"""Scripted experiments: a TOML config of data, models, budget, seeds and evaluation, checked in
full, expanded into jobs (seeds x parameter grid), and run into a run directory that a re-run
continues, with results tables, plots and ``az.compare`` (``probgen run CONFIG.toml``).

Example:
    >>> from probgen.experiments import validate_config, expand_jobs
    >>> config = validate_config({
    ...     "data": {"name": "digits-binary"}, "seeds": [0, 1],
    ...     "models": [{"name": "vae", "grid": {"beta": [0.5, 1.0]}}],
    ... })
    >>> [job.id for job in expand_jobs(config)]
    ['vae-beta=0.5-seed=0', 'vae-beta=0.5-seed=1', 'vae-beta=1.0-seed=0', 'vae-beta=1.0-seed=1']
"""

from probgen.experiments.config import ConfigError, load_config, validate_config
from probgen.experiments.jobs import Job, expand_jobs, load_splits
from probgen.experiments.report import write_report
from probgen.experiments.runner import run_experiment, run_job
from probgen.experiments.tables import summarize, write_reports

__all__ = [
    "ConfigError",
    "Job",
    "expand_jobs",
    "load_config",
    "load_splits",
    "run_experiment",
    "run_job",
    "summarize",
    "validate_config",
    "write_report",
    "write_reports",
]
