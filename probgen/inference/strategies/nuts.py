"""The ``"nuts"`` strategy: the No-U-Turn sampler on the model's global sites.

Chains run one after the other (each with its own progress bar for warm-up and sampling, and
its own seed), so R-hat is defined from two chains on without worker processes; the draws go to
the model's posterior object (``model.posterior.set_draws``).

References:
    Hoffman & Gelman, "The No-U-Turn Sampler" (2014), arXiv:1111.4246.
"""

from __future__ import annotations

import time
from typing import Any

import pyro
import torch
from pyro.infer import MCMC, NUTS

from probgen._checks import check_int
from probgen.inference.data import DataSource
from probgen.inference.strategies.base import (
    FitOptions,
    FitResult,
    FitStrategy,
    register_strategy,
    strategy_settings,
)
from probgen.inference.strategies.closed_form import computed_result
from probgen.models.base import model_labels, scaled_to
from probgen.progress import progress_bar

__all__ = ["NUTSStrategy", "NUTS_OPTIONS"]

NUTS_OPTIONS = {
    "num_samples": 500,
    "warmup_steps": 300,
    "num_chains": 2,
    "target_accept_prob": 0.8,
    "max_tree_depth": 8,
}


def _options(given: dict[str, Any]) -> dict[str, Any]:
    options = strategy_settings(given, NUTS_OPTIONS, "NUTS")
    check_int("num_samples", options["num_samples"])
    check_int("warmup_steps", options["warmup_steps"], minimum=0)
    check_int("num_chains", options["num_chains"])
    return options


@register_strategy("nuts")
class NUTSStrategy(FitStrategy):
    """NUTS on the whole training set (held in memory); R-hat and effective sizes in ``extra``."""

    def fit(self, model: Any, train: DataSource, val: DataSource | None, options: FitOptions) -> FitResult:
        if model.posterior is None:  # NUTS keeps its draws in the model's posterior object
            raise ValueError(
                f"{type(model).__name__} has no posterior object to hold NUTS draws; run pyro.infer.MCMC on "
                "model.model yourself and pass its samples to pg.to_inference_data(model, x, draws=...)"
            )
        nuts = _options(options.strategy_options)
        x, y = train.all()
        x = model.validate(x, name=train.name)
        y = model_labels(model, y, len(x))
        if options.init_from_data:  # e.g. an empirical-Bayes prior
            model.init_from_data(x, y)
        t0 = time.perf_counter()
        chains = []
        for chain in range(nuts["num_chains"]):
            if options.seed is not None:
                pyro.set_rng_seed(options.seed + chain)
            kernel = NUTS(
                model.model,
                target_accept_prob=nuts["target_accept_prob"],
                max_tree_depth=nuts["max_tree_depth"],
                jit_compile=False,
            )
            steps = nuts["warmup_steps"] + nuts["num_samples"]
            desc = f"nuts chain {chain + 1}/{nuts['num_chains']}"
            # probgen's bar, not Pyro's: off a terminal it prints plain lines (at least every 30 s)
            with progress_bar(total=steps, desc=desc, disable=not options.progress) as bar:
                mcmc = MCMC(
                    kernel,
                    num_samples=nuts["num_samples"],
                    warmup_steps=nuts["warmup_steps"],
                    disable_progbar=True,
                    hook_fn=lambda kernel, params, stage, i, bar=bar: bar.update(1),
                )
                with scaled_to(model, len(x)), pyro.validation_enabled(options.validate):
                    mcmc.run(x, y)
            chains.append(mcmc.get_samples(group_by_chain=True))
        draws = {k: torch.cat([c[k] for c in chains], 0) for k in chains[0]}  # [chains, draws, ...]
        model.posterior.set_draws({k: v.flatten(0, 1) for k, v in draws.items()}, num_chains=nuts["num_chains"])
        result = computed_result(model, train, val, options, "nuts", time.perf_counter() - t0)
        result.extra["r_hat"] = {k: pyro.ops.stats.split_gelman_rubin(v).max().item() for k, v in draws.items()}
        return result
