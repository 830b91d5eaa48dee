"""A class-conditional MAF with a learned class prior: ``p(x, y) = p(y) p(x | y)``.

The flow's MADE networks take the one-hot label as context (Pyro's
:class:`~pyro.distributions.transforms.ConditionalAffineAutoregressive`), oriented like
:class:`~probgen.models.flows.MAF` so that ``log p(x | y)`` is one network pass per layer.
``log_prob(x)`` is the exact marginal ``log sum_y p(y) p(x | y)``; ``log_prob_given(x, y)``,
``predict(x)`` and ``sample(n, y=...)`` use the labels.

References:
    Papamakarios, Pavlakou & Murray, "Masked Autoregressive Flow for Density Estimation"
    (2017), arXiv:1705.07057 — conditional MADE/MAF (section 3.4).
"""

from __future__ import annotations

from typing import Any

import pyro
import pyro.distributions as dist
import torch
import torch.nn.functional as F
from pyro.distributions.transforms import ConditionalAffineAutoregressive
from pyro.nn import ConditionalAutoRegressiveNN, PyroParam, pyro_method
from torch import Tensor
from torch.distributions import Transform

from probgen._checks import check_int
from probgen.models.base import data_plate, model_labels
from probgen.models.flows.base import FLOW_BUDGET, Flow
from probgen.models.registry import register

__all__ = ["ConditionalMAF"]


@register(
    "conditional-maf",
    description="class-conditional MAF p(x | y) with a learned p(y) (exact density)",
    fit_defaults=FLOW_BUDGET,
)
class ConditionalMAF(Flow):
    """A MAF of x given a class label, with learned class probabilities.

    Density (``log_prob_given``, training) is one network pass per layer; ``log_prob(x)`` is
    one pass per layer on the batch repeated for each of the ``num_classes`` labels. Sampling
    is slow: ``num_dims`` passes per layer.

    Args:
        event_shape, support, num_layers, hidden_features: see :class:`~probgen.models.flows.Flow`.
        num_classes: number of labels (the context is their one-hot code).

    Example:
        >>> import probgen as pg
        >>> data = pg.load_dataset("iris")
        >>> flow = ConditionalMAF.from_dataset(data, num_layers=1, hidden_features=(16,))
        >>> _ = pg.fit(flow, data, epochs=1, progress=False)
        >>> flow.sample(2, y=1).shape
        torch.Size([2, 4])
    """

    needs_labels = True

    def __init__(self, event_shape, support: str = "real", *, num_classes: int = 10, **kwargs: Any) -> None:
        self.num_classes = check_int("num_classes", num_classes, minimum=2)  # the networks need it
        super().__init__(event_shape, support, **kwargs)
        self.class_logits = PyroParam(torch.zeros(self.num_classes))

    def _layers(self) -> list[Transform]:
        d = self.num_dims

        def layer() -> Transform:
            net = ConditionalAutoRegressiveNN(d, self.num_classes, self.made_hidden, permutation=torch.arange(d))
            return ConditionalAffineAutoregressive(net).inv

        return self._stacked(layer)

    def context(self, y: Tensor, like: Tensor) -> Tensor:
        """The one-hot code of labels ``y``, the flow's context."""
        return F.one_hot(y.long(), self.num_classes).to(like.dtype)

    @pyro_method
    def model(self, x: Tensor, y: Tensor | None = None) -> None:
        if y is None:
            raise ValueError("ConditionalMAF needs labels y: pass (x, y) or a labelled Dataset")
        x = x.reshape(x.shape[0], -1)
        with data_plate(self, x):
            pyro.sample("y", dist.Categorical(logits=self.class_logits), obs=y)
            pyro.sample("x", self.distribution(x, self.context(y, x)), obs=x)

    def log_prob_given(self, x: Tensor, y: Any) -> Tensor:
        """``log p(x | y)``, shape ``[N]``; labels are required and checked."""
        x = self.validate(x).reshape(len(x), -1)
        y = check_labels_or_raise(self, y, len(x))
        return self.distribution(x, self.context(y, x)).log_prob(x)

    def joint_log_prob(self, x: Tensor) -> Tensor:
        """``log p(x, y = c)`` for every class c, shape ``[N, num_classes]``."""
        x = self.validate(x).reshape(len(x), -1)
        labels = torch.arange(self.num_classes, device=x.device).repeat_interleave(len(x))
        repeated = x.repeat(self.num_classes, 1)
        given = self.distribution(repeated, self.context(labels, x)).log_prob(repeated)
        return given.reshape(self.num_classes, len(x)).T + self.class_logits.log_softmax(-1)

    def log_prob(self, x: Tensor) -> Tensor:
        """The exact marginal ``log p(x) = logsumexp_c log p(x, c)``, shape ``[N]``."""
        return torch.logsumexp(self.joint_log_prob(x), -1)

    def predict(self, x: Tensor) -> Tensor:
        """The most probable label of each example under ``p(y | x)``."""
        with torch.no_grad():
            return self.joint_log_prob(x).argmax(-1)

    def sample(self, n: int, y: Tensor | int | None = None) -> Tensor:
        """``n`` draws of x, of label ``y`` (an int or ``n`` labels) or of labels drawn from p(y)."""
        n = self._check_n(n)
        with torch.no_grad():
            if y is None:
                y = dist.Categorical(logits=self.class_logits).sample((n,))
            y = check_labels_or_raise(self, torch.as_tensor(y, device=self.device).expand(n), n)
            like = self._reference_tensor()
            return self.distribution(like, self.context(y, like)).sample((n,)).reshape(n, *self.event_shape)

    def _config_kwargs(self) -> dict[str, Any]:
        return {**super()._config_kwargs(), "num_classes": self.num_classes}


def check_labels_or_raise(model: ConditionalMAF, y: Any, n: int) -> Tensor:
    """``y`` as ``n`` valid labels on the model's device (ValueError naming what is wrong)."""
    labels = model_labels(model, y, n)
    assert labels is not None  # needs_labels: check_labels never returns None
    return labels
