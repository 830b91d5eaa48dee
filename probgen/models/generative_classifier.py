"""Bayesian generative classifiers: p(x, y) = p(y) p(x | y), classification by Bayes' rule.

The shared machinery of Naive Bayes and Linear/Quadratic Discriminant Analysis. Every
classifier is one Pyro model with priors on the class weights (Dirichlet) and on the
class-conditional parameters, fitted one of four ways, chosen by ``method``:

- ``"conjugate"``: the closed-form posterior; predictions use the exact posterior predictive.
- ``"map"``: SVI with an ``AutoDelta`` guide (the posterior mode); plug-in predictions.
- ``"vi"``: SVI with an ``AutoNormal`` guide; predictions average over posterior draws.
- ``"nuts"``: NUTS (``probgen.inference.mcmc``); predictions average over posterior draws.

Whatever the method, ``joint_log_prob(x)[n, c] = log p(x_n, y=c | training data)`` and
``log_prob(x) = logsumexp_c joint_log_prob(x)``.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import pyro
import pyro.distributions as dist
import torch
from pyro.infer.autoguide import AutoDelta, AutoNormal, init_to_median, init_to_value
from pyro.nn import pyro_method
from torch import Tensor

from probgen._checks import check_int
from probgen.models.base import GenerativeModel

__all__ = ["GenerativeClassifier", "METHODS"]

METHODS = ("conjugate", "map", "vi", "nuts")


class GenerativeClassifier(GenerativeModel):
    """Base of the Bayesian generative classifiers (see the module docstring).

    Subclasses define the global sites (:meth:`_sample_params`), the class-conditional
    log-likelihood for a batch of parameter draws (:meth:`_class_log_lik`), sampling of x
    (:meth:`_draw_x`), and the conjugate posterior (:meth:`_fit_conjugate`,
    :meth:`_conjugate_class_log_pred`, :meth:`_conjugate_draws`).
    """

    supports: ClassVar[tuple[str, ...]] = ("real",)
    vectorizable: ClassVar[bool] = False
    #: the global sites, in the order :meth:`_sample_params` creates them
    sites: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self,
        event_shape,
        support: str,
        num_classes: int,
        *,
        method: str = "conjugate",
        prior_class: float = 1.0,
        num_posterior_samples: int = 100,
    ) -> None:
        super().__init__(event_shape, support)
        check_int("num_classes", num_classes, minimum=2)
        if method not in METHODS:
            raise ValueError(f"unknown method {method!r}; expected one of {METHODS}")
        if prior_class <= 0:
            raise ValueError(f"prior_class (Dirichlet concentration) must be > 0, got {prior_class}")
        if num_posterior_samples < 1:
            raise ValueError(f"num_posterior_samples must be >= 1, got {num_posterior_samples}")
        self.num_classes, self.method = num_classes, method
        self.prior_class, self.num_posterior_samples = float(prior_class), num_posterior_samples
        self.register_buffer("fitted_flag", torch.tensor(False))
        self.register_buffer("class_counts", torch.zeros(num_classes))
        self._posterior: dict[str, Tensor] = {}
        self.autoguide = None  # built on first use, started where init_from_data says

    def _make_guide(self, init_loc_fn=init_to_median) -> None:
        if self.method == "map":
            self.autoguide = AutoDelta(self.model, init_loc_fn=init_loc_fn)
        elif self.method == "vi":
            self.autoguide = AutoNormal(self.model, init_loc_fn=init_loc_fn, init_scale=0.05)
        else:
            raise ValueError(f"method={self.method!r} has no variational guide")

    # ------------------------------------------------------------------ the Pyro program
    @property
    def fit_strategy(self) -> str:
        """How :func:`probgen.fit` fits it: "closed_form", "nuts" or "svi"."""
        return {"conjugate": "closed_form", "nuts": "nuts"}.get(self.method, "svi")

    @property
    def log_prob_is_estimate(self) -> bool:
        return self.method in ("vi", "nuts")

    def _const(self, value: float) -> Tensor:
        return torch.as_tensor(value, dtype=self.class_counts.dtype, device=self.class_counts.device)

    @pyro_method
    def model(self, x: Tensor, y: Tensor | None = None) -> None:
        if y is None:
            raise ValueError(f"{type(self).__name__}.model needs labels y for its data")
        concentration = self._const(self.prior_class).expand(self.num_classes)
        pi = pyro.sample("pi", dist.Dirichlet(concentration))
        params = self._sample_params()
        with self.data_plate(x):
            pyro.sample("y", dist.Categorical(pi), obs=y)
            pyro.sample("x", self._x_given_y(params, y), obs=self._observed(x))

    @pyro_method
    def guide(self, x: Tensor, y: Tensor | None = None) -> Any:
        if self.autoguide is None:
            self._make_guide()
        return self.autoguide(x, y)

    def _observed(self, x: Tensor) -> Tensor:
        return x

    # ------------------------------------------------------------------ fitting hooks
    def check_labels(self, y: Any, n: int) -> Tensor:
        if y is None:
            raise ValueError(f"{type(self).__name__} needs labels: pass (x, y) or a labelled Dataset")
        y = torch.as_tensor(y)
        if y.shape != (n,):
            raise ValueError(f"labels have shape {tuple(y.shape)}; expected ({n},) to match x")
        if y.dtype.is_floating_point and (y != y.round()).any():
            raise ValueError("labels must be integers 0..num_classes-1")
        y = y.long()
        if y.numel() and (y.min() < 0 or y.max() >= self.num_classes):
            bad = y[(y < 0) | (y >= self.num_classes)][0].item()
            raise ValueError(f"label {bad} is outside 0..{self.num_classes - 1}")
        return y.to(self.class_counts.device)

    def fit_closed_form(self, x: Tensor, y: Tensor) -> GenerativeClassifier:
        """The exact conjugate posterior (method "conjugate")."""
        x = self.validate(x)
        y = self.check_labels(y, len(x))
        with torch.no_grad():
            self.init_from_data(x, y)
            self.class_counts = torch.bincount(y, minlength=self.num_classes).to(self.dtype)
            self._fit_conjugate(self._observed(x), y)
        self.fitted_flag = torch.tensor(True)
        return self

    def init_from_data(self, x: Tensor, y: Tensor | None = None) -> None:
        """Set the empirical-Bayes prior hyperparameters; start a guide at data moments."""
        x = self._observed(x)
        with torch.no_grad():
            self._set_prior(x)
            if self.method in ("map", "vi") and y is not None and self.autoguide is None:
                y = self.check_labels(y, len(x))
                onehot = torch.nn.functional.one_hot(y, self.num_classes).to(self.dtype)
                pi = (onehot.sum(0) + 1) / (len(y) + self.num_classes)
                values = {"pi": pi, **self._moment_values(x, onehot)}
                self._make_guide(init_to_value(values=values, fallback=init_to_median))

    def after_fit(self, x: Tensor, y: Tensor | None) -> None:
        """After SVI: keep posterior draws of the guide (one for MAP) for predictions."""
        self.set_posterior_samples(self._guide_draws())

    def _guide_draws(self) -> dict[str, Tensor]:
        draws = 1 if self.method == "map" else self.num_posterior_samples
        dummy_x = torch.zeros(1, *self.event_shape, dtype=self.dtype, device=self.class_counts.device)
        dummy_y = torch.zeros(1, dtype=torch.long, device=self.class_counts.device)
        with torch.no_grad():
            samples = [self.guide(dummy_x, dummy_y) for _ in range(draws)]
        return {k: torch.stack([s[k] for s in samples]) for k in ("pi", *self.sites)}

    def set_posterior_samples(self, samples: dict[str, Tensor]) -> None:
        """Use these posterior draws (leading dimension = draws) for predictions."""
        missing = [s for s in ("pi", *self.sites) if s not in samples]
        if missing:
            raise ValueError(f"posterior samples lack sites {missing}")
        for name in ("pi", *self.sites):
            value = samples[name].detach().to(self.class_counts.device, self.dtype)
            self.register_buffer(f"posterior_{name}", value)
            self._posterior[name] = value
        self.fitted_flag = torch.tensor(True)

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        for key, value in state_dict.items():
            if key.startswith("posterior_"):
                self.register_buffer(key, torch.empty_like(value))
        if any(k.startswith("autoguide.") for k in state_dict):
            self._materialize_guide()
        result = super().load_state_dict(state_dict, strict=strict, assign=assign)
        self._posterior = {
            key[len("posterior_") :]: buf for key, buf in self.named_buffers() if key.startswith("posterior_")
        }
        return result

    def _materialize_guide(self) -> None:
        self._guide_draws()

    # ------------------------------------------------------------------ prediction
    def _check_fitted(self) -> None:
        if not bool(self.fitted_flag):
            raise ValueError(f"this {type(self).__name__} is not fitted yet: call fit first")

    def posterior_draws(self, num_samples: int | None = None) -> dict[str, Tensor]:
        """Posterior draws of every global site: fresh exact ones (conjugate), the stored ones,
        or (while SVI is still running) fresh draws from the guide."""
        if self.method == "conjugate":
            self._check_fitted()
            return self._conjugate_draws(num_samples or self.num_posterior_samples)
        if self._posterior:
            return dict(self._posterior)
        if self.autoguide is not None:
            return self._guide_draws()
        self._check_fitted()
        raise AssertionError("unreachable")

    def joint_log_prob(self, x: Tensor) -> Tensor:
        """``log p(x_n, y = c | training data)``, shape ``[N, C]``."""
        x = self._observed(self.validate(x))
        if self.method == "conjugate":
            self._check_fitted()
            counts = self._class_concentration()
            log_prior = counts.log() - counts.sum().log()
            return log_prior + self._conjugate_class_log_pred(x)
        joint = self._joint_given_params(self.posterior_draws(), x)
        return torch.logsumexp(joint, 0) - math.log(joint.shape[0])

    def _joint_given_params(self, params: dict[str, Tensor], x: Tensor) -> Tensor:
        """``log p(x_n, y=c | theta_s)`` for draws s: ``[S, N, C]``."""
        return params["pi"].log()[:, None, :] + self._class_log_lik(params, x)

    def pointwise_log_likelihood(self, x: Tensor, y: Tensor, params: dict[str, Tensor]) -> Tensor:
        """``log p(x_n, y_n | theta_s)``, ``[S, N]`` (ArviZ's log_likelihood group)."""
        x = self._observed(self.validate(x))
        y = self.check_labels(y, len(x))
        joint = self._joint_given_params(params, x)
        return joint.gather(-1, y.expand(joint.shape[0], -1)[..., None]).squeeze(-1)

    def log_prob(self, x: Tensor) -> Tensor:
        """``log p(x | training data) = logsumexp_c log p(x, c | training data)``, ``[N]``."""
        return torch.logsumexp(self.joint_log_prob(x), -1)

    def predict_log_proba(self, x: Tensor) -> Tensor:
        joint = self.joint_log_prob(x)
        return joint - torch.logsumexp(joint, -1, keepdim=True)

    def predict(self, x: Tensor) -> Tensor:
        return self.joint_log_prob(x).argmax(-1)

    def sample(self, n: int, y: Tensor | int | None = None) -> Tensor:
        """Draws from the posterior predictive ``p(x | data)`` (or ``p(x | y, data)``)."""
        n = self._check_n(n)
        with torch.no_grad():
            draws = self.posterior_draws(n)
            pick = torch.randint(0, draws["pi"].shape[0], (n,), device=self.class_counts.device)
            params = {k: v[pick] for k, v in draws.items()}
            if y is None:
                y = dist.Categorical(params["pi"]).sample()
            else:
                y = self.check_labels(torch.as_tensor(y).expand(n), n)
            return self._draw_x(params, y).reshape(n, *self.event_shape)

    def _config_kwargs(self) -> dict[str, Any]:
        return {
            "num_classes": self.num_classes,
            "method": self.method,
            "prior_class": self.prior_class,
            "num_posterior_samples": self.num_posterior_samples,
        }

    # ------------------------------------------------------------------ subclass hooks
    def _sample_params(self) -> dict[str, Tensor]:
        raise NotImplementedError

    def _x_given_y(self, params: dict[str, Tensor], y: Tensor) -> dist.TorchDistribution:
        raise NotImplementedError

    def _class_log_lik(self, params: dict[str, Tensor], x: Tensor) -> Tensor:
        raise NotImplementedError

    def _draw_x(self, params: dict[str, Tensor], y: Tensor) -> Tensor:
        raise NotImplementedError

    def _fit_conjugate(self, x: Tensor, y: Tensor) -> None:
        raise NotImplementedError

    def _set_prior(self, x: Tensor) -> None:
        """Empirical-Bayes prior hyperparameters from the training features (optional)."""

    def _moment_values(self, x: Tensor, onehot: Tensor) -> dict[str, Tensor]:
        """Per-class moment estimates of every site in ``sites`` (where SVI starts)."""
        raise NotImplementedError

    def _conjugate_class_log_pred(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def _conjugate_draws(self, num_samples: int) -> dict[str, Tensor]:
        raise NotImplementedError

    def _class_concentration(self) -> Tensor:
        """The Dirichlet posterior of the class weights: prior concentration plus counts."""
        return self.class_counts + self.prior_class

    def _class_weight_draws(self, num_samples: int) -> Tensor:
        return dist.Dirichlet(self._class_concentration()).sample((num_samples,))
