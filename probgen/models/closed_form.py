"""``fit_closed_form`` for the models the ``"closed_form"`` strategy fits (the factorized
baselines and the Bayesian classifiers): the exact update on data held in memory, in one call."""

from __future__ import annotations

from typing import Any

import torch

from probgen.models.base import model_labels

__all__ = ["ClosedFormFit"]


class ClosedFormFit:
    """Mixin of a :class:`~probgen.models.GenerativeModel` that implements
    ``closed_form_statistics`` and ``set_closed_form`` (the interface
    :class:`probgen.inference.strategies.closed_form.ClosedForm`)."""

    def fit_closed_form(self, x: Any, y: Any = None) -> Any:
        """Fit in closed form on data held in memory; returns ``self``.

        Example:
            >>> import torch, probgen as pg
            >>> m = pg.models.IndependentBernoulli(2).fit_closed_form(torch.tensor([[1.0, 0.0], [1.0, 1.0]]))
            >>> bool(m.fitted)
            True
        """
        x = self.validate(x)
        with torch.no_grad():
            self.set_closed_form(self.closed_form_statistics(x, model_labels(self, y, len(x))))
        self.fitted.fill_(True)
        return self
