"""The ``"adversarial"`` strategy: a two-player game, discriminator and generator in turn.

Each step asks the model for ``discriminator_loss(x)`` (real batch against fresh fakes) and
steps the parameter group ``discriminator_parameters()`` on it ``d_steps`` times, then for
``generator_loss(len(x))`` and steps ``generator_parameters()``. Each player has its own Adam
moments, learning rate and betas (default (0.5, 0.999), as in DCGAN). The history records both
losses; ``train_loss`` is the discriminator's (there is no likelihood to track), so without a
better criterion the model ends at its last epoch.

Strategy options: ``d_steps`` (default 1; 5 for a Wasserstein critic), ``generator_lr`` and
``discriminator_lr`` (default: ``lr``), ``betas``.

References:
    Goodfellow et al., "Generative Adversarial Nets" (2014), arXiv:1406.2661.
    Radford, Metz & Chintala, "Unsupervised Representation Learning with Deep Convolutional
    Generative Adversarial Networks" (2016), arXiv:1511.06434.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor

from probgen._checks import check_int
from probgen.inference.data import DataSource
from probgen.inference.distributed import precision_context, widened
from probgen.inference.strategies.base import (
    FitOptions,
    FitResult,
    FitStrategy,
    register_strategy,
    require_hooks,
    strategy_settings,
)
from probgen.inference.strategies.loop import EpochLoop

__all__ = ["AdversarialStrategy", "ADVERSARIAL_OPTIONS"]

ADVERSARIAL_OPTIONS = {"d_steps": 1, "generator_lr": None, "discriminator_lr": None, "betas": (0.5, 0.999)}
DISCRIMINATOR, GENERATOR = 0, 1


def _options(given: dict[str, Any], lr: float) -> dict[str, Any]:
    options = strategy_settings(given, ADVERSARIAL_OPTIONS, "adversarial")
    check_int("d_steps", options["d_steps"])
    for key in ("generator_lr", "discriminator_lr"):
        options[key] = lr if options[key] is None else options[key]
        if not options[key] > 0:
            raise ValueError(f"{key} must be a positive number, got {options[key]!r}")
    return options


@runtime_checkable
class Adversarial(Protocol):
    """What a model trained by the ``"adversarial"`` strategy implements (a GAN)."""

    def generator_parameters(self) -> Iterator[torch.nn.Parameter]:
        """The parameters of the generator."""
        ...

    def discriminator_parameters(self) -> Iterator[torch.nn.Parameter]:
        """The parameters of the discriminator (critic)."""
        ...

    def discriminator_loss(self, x: Tensor) -> Tensor:
        """The discriminator's loss on real data ``x`` and as many generated samples."""
        ...

    def generator_loss(self, n: int) -> Tensor:
        """The generator's loss on ``n`` generated samples."""
        ...


@register_strategy("adversarial")
class AdversarialStrategy(FitStrategy):
    """Alternating discriminator and generator steps by minibatches."""

    mixed_precision = True

    def fit(self, model: Any, train: DataSource, val: DataSource | None, options: FitOptions) -> FitResult:
        require_hooks(model, "adversarial", Adversarial)
        game = _options(options.strategy_options, options.lr)
        betas = tuple(game["betas"])

        def groups() -> list[dict]:
            return [
                {"params": model.discriminator_parameters(), "lr": game["discriminator_lr"], "betas": betas},
                {"params": model.generator_parameters(), "lr": game["generator_lr"], "betas": betas},
            ]

        loop = EpochLoop.start(model, train, options, "adversarial", groups)

        def epoch_fn(epoch: int, generator: torch.Generator) -> dict[str, float]:
            d_total, g_total = 0.0, 0.0
            for step, (x, _, _) in enumerate(loop.batches(train, generator)):
                where, autocast = f"epoch {epoch}, step {step}", precision_context(options.precision, x.device.type)
                for _ in range(game["d_steps"]):
                    with autocast:
                        d_value = widened(model.discriminator_loss(x))
                    d_loss = loop.step(d_value, DISCRIMINATOR, where, "discriminator")
                with autocast:
                    g_value = widened(model.generator_loss(len(x)))
                g_loss = loop.step(g_value, GENERATOR, where, "generator")
                d_total, g_total = d_total + d_loss * len(x), g_total + g_loss * len(x)
            return {"train_loss": d_total / len(train), "discriminator_loss": d_total / len(train),
                    "generator_loss": g_total / len(train)}  # fmt: skip

        return loop.run(train, val, epoch_fn)
