"""Posterior objects: what a Bayesian fit produced, behind one interface.

A Bayesian model holds one of these as its ``posterior`` submodule (so its state is saved with
the model's checkpoint). Whatever produced it — the closed-form conjugate update, a MAP point,
a variational guide or NUTS draws — it answers the same questions:

- ``fit_strategy``: which registered strategy of :func:`probgen.fit` produces it;
- ``draws(model, S)``: S draws of every global site, ``{site: [S, ...]}``;
- ``joint_log_predictive(model, x)``: the predictive ``log p(x_n, y=c | data)``, ``[N, C]``;
- ``predictive`` / ``density``: what that predictive is ("posterior", "variational" or
  "plug-in"; "exact" or a Monte-Carlo "estimate");
- ``to_inference_data(model, x, y)``: an ArviZ ``InferenceData`` that ``az.summary``,
  ``az.loo`` and ``az.compare`` take: several chains of draws (R-hat defined), named dimensions,
  the pointwise log-likelihood ``log p(x_n, y_n | theta_s)``.

A MAP fit exports draws of the Laplace approximation at its mode (``probgen.models.laplace``),
so ``az.loo`` on it is PSIS-LOO of that Gaussian; its predictive stays the plug-in of the point.
:func:`psis_loo` and :func:`loo_compare` call ``az.loo`` / ``az.compare`` and report ArviZ's
Pareto-k warning as one plain note per model.

The model supplies the family-specific pieces it declares in :class:`BayesianModel`; the
InferenceData is laid out by the private helpers of ``arviz_export.py``.

References:
    Vehtari, Gelman & Gabry, "Practical Bayesian model evaluation using leave-one-out
    cross-validation and WAIC", Statistics and Computing 27 (2017).
    Vehtari, Gelman, Simpson, Carpenter & Bürkner, "Rank-normalization, folding, and
    localization: an improved R-hat", Bayesian Analysis 16 (2021).
"""

from __future__ import annotations

import copy
import math
import warnings
from collections.abc import Mapping
from contextlib import nullcontext
from typing import Any, ClassVar, Protocol

import numpy as np
import pyro
import torch
from pyro.infer.autoguide import AutoDelta, AutoGuide, AutoNormal, init_to_median
from pyro.nn import PyroModule
from torch import Tensor

from probgen._checks import check_int
from probgen.models import base
from probgen.models.arviz_export import _arviz_groups, _inference_data
from probgen.models.laplace import LAPLACE_NOTE, Laplace, laplace_approximation, site_layout

__all__ = [
    "POSTERIORS",
    "BayesianModel",
    "ConjugatePosterior",
    "DrawsPosterior",
    "GuidePosterior",
    "MAPPosterior",
    "NormalPosterior",
    "Posterior",
    "loo_compare",
    "pareto_k_note",
    "psis_loo",
]


class BayesianModel(Protocol):
    """What a posterior object asks of its model."""

    sites: tuple[str, ...]
    event_shape: tuple[int, ...]
    dtype: torch.dtype
    device: torch.device

    def model(self, x: Tensor, y: Tensor | None = None) -> None: ...
    def conjugate_draws(self, num_samples: int) -> dict[str, Tensor]: ...
    def conjugate_joint_log_predictive(self, x: Tensor) -> Tensor: ...
    def joint_given_params(self, params: dict[str, Tensor], x: Tensor) -> Tensor: ...
    def pointwise_log_likelihood(self, x: Tensor, y: Tensor, params: dict[str, Tensor]) -> Tensor: ...
    def replicate(self, params: dict[str, Tensor], y: Tensor) -> Tensor: ...
    def arviz_variables(self, draws: dict[str, Tensor]) -> tuple[dict[str, Tensor], dict[str, list[str]]]: ...
    def arviz_coords(self) -> dict[str, Any]: ...


class Posterior(PyroModule):
    """Base of the posterior objects (see the module docstring)."""

    fit_strategy: ClassVar[str] = "svi"
    predictive: ClassVar[str] = "posterior"
    density: ClassVar[str] = "estimate"
    #: what the exported draws are (kept in the posterior group's attributes)
    draws_note: ClassVar[str] = "independent draws from the posterior, split into chains"
    #: chains of independent draws exported by default: several, so that R-hat is defined
    default_chains: ClassVar[int] = 4

    def __init__(self, num_samples: int = 100) -> None:
        super().__init__()
        self.num_samples = num_samples
        self.register_buffer("fitted", torch.tensor(False))

    @property
    def num_chains(self) -> int:
        return 1

    def check_fitted(self) -> None:
        if not bool(self.fitted):
            raise ValueError("this model is not fitted yet: call probgen.fit (or fit_closed_form) first")

    def guide(self, model: BayesianModel, x: Tensor, y: Tensor | None) -> Any:
        """The variational guide of SVI fits; nothing for computed posteriors."""

    def start_at(self, model: BayesianModel, values: dict[str, Tensor]) -> None:  # noqa: B027
        """Where an optimised posterior starts (data moments, say); ignored by the others."""

    def after_fit(self, model: BayesianModel, x: Tensor, y: Tensor | None) -> None:  # noqa: B027
        """What a posterior keeps of the training data (a MAP fit: its Laplace approximation)."""

    def draws(self, model: BayesianModel, num_samples: int | None = None) -> dict[str, Tensor]:
        raise NotImplementedError

    def set_draws(self, draws: dict[str, Tensor], num_chains: int = 1) -> None:
        raise ValueError(f"a {type(self).__name__} does not take posterior draws")

    def joint_log_predictive(self, model: BayesianModel, x: Tensor) -> Tensor:
        """``log (1/S) sum_s p(x_n, y=c | theta_s)``: ``[N, C]``."""
        joint = model.joint_given_params(self.draws(model), x)
        return torch.logsumexp(joint, 0) - math.log(joint.shape[0])

    def to_inference_data(
        self,
        model: BayesianModel,
        x: Tensor,
        y: Tensor,
        *,
        num_samples: int | None = None,
        num_chains: int | None = None,
        num_predictive: int | None = None,
        log_likelihood: bool | None = None,
        coords: dict[str, Any] | None = None,
    ) -> Any:
        """An ``arviz.InferenceData`` of this posterior on ``(x, y)``, ready for ``az.summary``,
        ``az.loo`` and ``az.compare``.

        Groups: ``posterior`` (every global site, named by the model's
        :meth:`arviz_variables`), ``log_likelihood`` (``obs``: the pointwise
        ``log p(x_n, y_n | theta_s)``, dims ``(chain, draw, obs_id)``), ``posterior_predictive``
        (``x``: one replicate of the data per exported draw, for the first draws of each chain) and
        ``observed_data`` (``x``; ``y`` as class indices into the ``class`` coordinate). Dimensions
        are named (``class``, ``feature``, ``obs_id``, ...) with the model's default coordinates
        (``0..n-1``) unless ``coords`` gives others (class labels, feature names).

        Chains: exact and variational posteriors give ``num_chains`` (default 4) chains of
        independent draws, so R-hat is defined and near 1 (a check that the draws are independent
        and identically distributed, not of a sampler's convergence); NUTS keeps the chains it ran
        (``num_samples`` and ``num_chains`` are its own); a MAP fit gives independent draws from
        the Laplace approximation at its mode (:class:`MAPPosterior`), split the same way.
        The posterior group's attribute ``probgen_draws`` says what the draws are.

        Args:
            model: the model this posterior belongs to.
            x, y: the data the pointwise log-likelihood is evaluated on (held-out data for an
                honest elpd), labels as class indices.
            num_samples: draws in all (exact, variational and Laplace posteriors; default
                ``4 x 100``), a multiple of ``num_chains``; ignored by NUTS (its draws).
            num_chains: chains of independent draws (default 4); NUTS: must be the chains it ran.
            num_predictive: draws with a replicate of the data (default ``min(draws, 100)``; 0: no
                posterior_predictive group).
            log_likelihood: include the ``log_likelihood`` group. None (the default here) or
                True: include it; False: leave it out (cheaper, when only ``az.summary`` is wanted).
            coords: coordinate values by dimension name, over the model's defaults.
        """
        log_likelihood = True if log_likelihood is None else log_likelihood
        draws, chains, extra = self.export_draws(model, num_samples, num_chains, x, y)
        groups, dims = _arviz_groups(model, x, y, draws, chains, log_likelihood, num_predictive)
        attrs = {"probgen_posterior": type(self).__name__, "probgen_draws": self.draws_note}
        attrs |= extra
        return _inference_data(model, x, y, groups, dims, coords, attrs)

    def export_draws(
        self, model: BayesianModel, num_samples: int | None, num_chains: int | None, x: Tensor, y: Tensor
    ) -> tuple[dict[str, Tensor], int, dict[str, str]]:
        """The draws ``to_inference_data`` exports, their number of chains (chains one after the
        other along the leading dimension) and any attributes saying more about them; here,
        independent draws split into chains."""
        chains, total = self.chain_counts(num_samples, num_chains)
        return self.draws(model, total), chains, {}

    def chain_counts(self, num_samples: int | None, num_chains: int | None) -> tuple[int, int]:
        """``(chains, draws in all)`` of an export of independent draws (default 4 x 100)."""
        chains = self.default_chains if num_chains is None else check_int("num_chains", num_chains)
        total = chains * 100 if num_samples is None else check_int("num_samples", num_samples)
        if total % chains:
            raise ValueError(
                f"num_samples={total} draws cannot be split into num_chains={chains} chains of equal length; "
                f"pass a multiple of {chains}"
            )
        return chains, total


class ConjugatePosterior(Posterior):
    """The exact posterior, computed in closed form; its predictive is exact."""

    fit_strategy = "closed_form"
    density = "exact"
    draws_note = "independent exact draws from the conjugate posterior, split into chains (R-hat ~ 1 by construction)"

    def draws(self, model: BayesianModel, num_samples: int | None = None) -> dict[str, Tensor]:
        self.check_fitted()
        return model.conjugate_draws(num_samples or self.num_samples)

    def joint_log_predictive(self, model: BayesianModel, x: Tensor) -> Tensor:
        self.check_fitted()
        return model.conjugate_joint_log_predictive(x)


class DrawsPosterior(Posterior):
    """Draws from a sampler (NUTS); the predictive averages over them (an estimate)."""

    fit_strategy = "nuts"
    draws_note = "NUTS draws, one chain per sampler run"

    def __init__(self, num_samples: int = 100) -> None:
        super().__init__(num_samples)
        self.register_buffer("chains", torch.tensor(1))
        self.site_names: list[str] = []

    @property
    def num_chains(self) -> int:
        return int(self.chains)

    def export_draws(
        self, model: BayesianModel, num_samples: int | None, num_chains: int | None, x: Tensor, y: Tensor
    ) -> tuple[dict[str, Tensor], int, dict[str, str]]:
        """Every kept draw, in the chains NUTS ran (``num_samples`` is ignored: the draws are fixed)."""
        if num_chains is not None and num_chains != self.num_chains:
            raise ValueError(
                f"num_chains={num_chains}, but NUTS ran {self.num_chains} chains; fit with num_chains={num_chains}"
            )
        return self.draws(model), self.num_chains, {}

    def set_draws(self, draws: dict[str, Tensor], num_chains: int = 1) -> None:
        """Keep these draws (leading dimension: draws, chains one after the other)."""
        for name, value in draws.items():
            self.register_buffer(f"draw_{name}", value.detach().clone())
        self.site_names = list(draws)
        self.chains.fill_(int(num_chains))
        self.fitted.fill_(True)

    def draws(self, model: BayesianModel, num_samples: int | None = None) -> dict[str, Tensor]:
        self.check_fitted()
        return {name: getattr(self, f"draw_{name}") for name in self.site_names}

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        for key, value in state_dict.items():
            if key.startswith(prefix + "draw_"):
                name = key[len(prefix) + len("draw_") :]
                self.register_buffer(f"draw_{name}", torch.empty_like(value))
                if name not in self.site_names:
                    self.site_names.append(name)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


class GuidePosterior(Posterior):
    """A Pyro AutoGuide fitted by SVI; fresh draws follow the guide as it trains."""

    guide_class: ClassVar[type[AutoGuide]] = AutoNormal
    guide_options: ClassVar[dict[str, Any]] = {}

    def __init__(self, num_samples: int = 100) -> None:
        super().__init__(num_samples)
        self.autoguide: AutoGuide | None = None

    def start_at(self, model: BayesianModel, values: dict[str, Tensor]) -> None:
        from pyro.infer.autoguide import init_to_value

        if self.autoguide is None:
            self.autoguide = self.guide_class(
                model.model, init_loc_fn=init_to_value(values=values, fallback=init_to_median), **self.guide_options
            )

    def guide(self, model: BayesianModel, x: Tensor, y: Tensor | None) -> Any:
        if self.autoguide is None:
            self.autoguide = self.guide_class(model.model, init_loc_fn=init_to_median, **self.guide_options)
        self.fitted.fill_(True)
        return self.autoguide(x, y)

    def draws(self, model: BayesianModel, num_samples: int | None = None) -> dict[str, Tensor]:
        if self.autoguide is None:
            self.check_fitted()
        x = torch.zeros(1, *model.event_shape, dtype=model.dtype, device=model.device)
        y = torch.zeros(1, dtype=torch.long, device=model.device)
        count = self.num_draws(num_samples)
        with torch.no_grad(), pyro.poutine.block():
            samples = [self.autoguide(x, y) for _ in range(count)]
        return {k: torch.stack([s[k] for s in samples]) for k in samples[0]}

    def num_draws(self, num_samples: int | None) -> int:
        return num_samples or self.num_samples


class NormalPosterior(GuidePosterior):
    """Mean-field Normal in the unconstrained space (``AutoNormal``): a variational posterior
    whose predictive is a Monte-Carlo estimate."""

    guide_options = {"init_scale": 0.05}
    predictive = "variational"
    draws_note = "independent draws from the variational (AutoNormal) posterior, split into chains"


#: unconstrained dimensions up to which a MAP fit keeps its Laplace approximation at the end of the fit
KEPT_LAPLACE_DIMS = 1024


class MAPPosterior(GuidePosterior):
    """The posterior mode (``AutoDelta``); its predictive plugs the point in (exact for it).

    Its ArviZ export is of the Laplace approximation at the mode (:func:`laplace_approximation`):
    the point's curvature comes from the training data when the fit handed them to
    :meth:`after_fit` (kept in the state, hence in checkpoints), otherwise from the data
    exported (pass the training data then, as LOO wants). The point itself is unchanged:
    ``draws`` (hence ``log_prob`` and ``sample``) gives it alone.
    """

    guide_class = AutoDelta
    predictive = "plug-in"
    density = "exact"
    draws_note = LAPLACE_NOTE

    def __init__(self, num_samples: int = 100) -> None:
        super().__init__(num_samples)
        self._num_data: int | None = None  # the data size the fit's minibatches stood for

    def guide(self, model: BayesianModel, x: Tensor, y: Tensor | None) -> Any:
        if base.num_data(model) is not None:  # inside a fit: the data size its batches stand for
            self._num_data = base.num_data(model)
        return super().guide(model, x, y)

    def num_draws(self, num_samples: int | None) -> int:
        return 1

    def point(self, model: BayesianModel) -> dict[str, Tensor]:
        """The MAP value of every global site (constrained), ``{site: [...]}``."""
        return {name: value[0] for name, value in self.draws(model).items()}

    def laplace(self, model: BayesianModel, x: Tensor, y: Tensor, num_data: int | None = None) -> Laplace:
        """The Laplace approximation at the point of the posterior given ``(x, y)`` (standing for
        ``num_data`` examples, scaled by ``num_data / len(x)``, when given), in float64."""
        point = self.point(model)
        if model.dtype != torch.float64:  # the curvature of a float32 model in float64, on a copy
            model = copy.deepcopy(model).double()
            point = {name: value.double() for name, value in point.items()}
            x = x.double() if x.is_floating_point() else x
        scale = base.scaled_to(model, num_data) if num_data is not None and num_data > len(x) else nullcontext()
        with scale:
            return laplace_approximation(model.model, point, x, y)

    def after_fit(self, model: BayesianModel, x: Tensor, y: Tensor | None) -> None:
        """Keep the Laplace approximation given the training examples ``(x, y)`` (scaled to the
        fit's data size) where it is cheap (up to ``KEPT_LAPLACE_DIMS`` unconstrained dimensions:
        one backward pass each) and defined; else an export computes it from its own data."""
        point = self.point(model)
        _, loc = site_layout(model.model, point, (x, y), {})
        if loc.numel() > KEPT_LAPLACE_DIMS:
            return
        try:
            laplace = self.laplace(model, x, y, self._num_data)
        except ValueError:  # not positive definite at the point: the export says so, with the site
            return
        for name, value in (("laplace_loc", laplace.loc), ("laplace_precision", laplace.precision)):
            self.register_buffer(name, value.to(model.dtype))

    def export_draws(
        self, model: BayesianModel, num_samples: int | None, num_chains: int | None, x: Tensor, y: Tensor
    ) -> tuple[dict[str, Tensor], int, dict[str, str]]:
        """Independent draws of the Laplace approximation, split into chains."""
        chains, total = self.chain_counts(num_samples, num_chains)
        laplace = self._kept_laplace(model, x, y)
        if laplace is None:
            laplace, source = self.laplace(model, x, y), f"the exported data ({len(x)} examples)"
        else:
            source = "the training data (kept after the fit)"
        draws = {name: value.to(model.dtype) for name, value in laplace.sample(total).items()}
        return draws, chains, {"laplace_curvature": f"the Hessian of the negative log joint given {source}"}

    def _kept_laplace(self, model: BayesianModel, x: Tensor, y: Tensor) -> Laplace | None:
        """The Laplace approximation kept by :meth:`after_fit`, if it is of the current point."""
        loc, precision = getattr(self, "laplace_loc", None), getattr(self, "laplace_precision", None)
        if loc is None or precision is None:
            return None
        point = {name: value.to(loc.dtype) for name, value in self.point(model).items()}
        sites, current = site_layout(model.model, point, (x, y), {})
        if current.shape != loc.shape or not torch.allclose(current, loc, rtol=1e-12, atol=1e-12):
            return None  # the point moved since (trained further): the kept curvature is not its
        return Laplace(loc.double(), precision.double(), sites)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        for name in ("laplace_loc", "laplace_precision"):  # kept by after_fit, if it was
            if prefix + name in state_dict:
                self.register_buffer(name, torch.empty_like(state_dict[prefix + name]))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


#: method name -> posterior class, as the models' ``method=`` argument takes them
POSTERIORS: dict[str, type[Posterior]] = {
    "conjugate": ConjugatePosterior,
    "map": MAPPosterior,
    "vi": NormalPosterior,
    "nuts": DrawsPosterior,
}


# ---------------------------------------------------------------------------------------- LOO, said plainly
#: the start of ArviZ's warning when some Pareto k exceeds its threshold (``az.loo``)
_PARETO_WARNING = "Estimated shape parameter of Pareto distribution"


def pareto_k_note(elpd: Any, name: str | None = None) -> str | None:
    """One plain sentence on the Pareto k-hat of a pointwise ``az.loo`` result, or None when
    every k is below ArviZ's threshold ``min(1 - 1 / log10(S), 0.7)`` for S draws.

    Example:
        >>> import arviz as az
        >>> pareto_k_note(az.loo(az.load_arviz_data("centered_eight"), pointwise=True)) is None
        True
    """
    k = np.asarray(elpd.pareto_k).ravel()
    threshold = float(getattr(elpd, "good_k", 0.7))  # ArviZ < 0.17 has no sample-size-aware threshold
    bad = int((k > threshold).sum())
    if not bad:
        return None
    who = f"{name}: " if name else ""
    return (
        f"{who}Pareto k > {threshold:.2f} for {bad} of {k.size} held-out points (largest {k.max():.2f}): the "
        "PSIS-LOO estimate is unreliable there (more draws, or refitting without those points, would settle it)"
    )


def psis_loo(idata: Any, name: str | None = None) -> tuple[Any, str | None]:
    """``az.loo(idata, pointwise=True)`` and, instead of ArviZ's Pareto-k warning, the
    :func:`pareto_k_note` on it (None when every k is fine).

    Raises:
        ValueError: ``idata`` has no ``log_likelihood`` group (exported with ``log_likelihood=False``).

    Example:
        >>> from sklearn.datasets import load_iris
        >>> from probgen.classifiers import QDA
        >>> X, y = load_iris(return_X_y=True)
        >>> elpd, note = psis_loo(QDA().fit(X, y).to_inference_data(X, y, num_samples=400), "qda")
        >>> print(note)
        qda: Pareto k > 0.62 for ... of 150 held-out points (largest ...): the PSIS-LOO estimate is unreliable there ...
    """
    import arviz as az

    if "log_likelihood" not in idata.groups():
        raise ValueError(
            f"{name or 'this InferenceData'} has no log_likelihood group, so PSIS-LOO is not defined for it "
            "(it was exported with log_likelihood=False: export it again without that option)"
        )
    with warnings.catch_warnings():  # reported below, once, as a count
        warnings.filterwarnings("ignore", message=_PARETO_WARNING, category=UserWarning)
        elpd = az.loo(idata, pointwise=True)
    return elpd, pareto_k_note(elpd, name)


def loo_compare(idatas: Mapping[str, Any], **kwargs: Any) -> tuple[Any, list[str]]:
    """``az.compare`` of these models by PSIS-LOO, with the Pareto-k notes of those that have
    unreliable points (one per model, see :func:`pareto_k_note`) in place of ArviZ's warnings.

    Args:
        idatas: model name -> InferenceData with a ``log_likelihood`` group.
        kwargs: passed to ``az.compare`` (``method``, ``scale``, ...).

    Returns:
        ArviZ's comparison table and the notes.
    """
    import arviz as az

    notes = [note for name, idata in idatas.items() for note in [psis_loo(idata, name)[1]] if note]
    with warnings.catch_warnings():  # the notes above say it once per model, in words
        warnings.filterwarnings("ignore", message=_PARETO_WARNING, category=UserWarning)
        table = az.compare(dict(idatas), ic="loo", **kwargs)  # InferenceData: what every ArviZ release takes
    return table, notes
