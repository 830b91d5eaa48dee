"""The Laplace approximation of a Pyro program's posterior at a point (a MAP fit's mode).

``laplace_approximation(program, point, *args)`` is a Gaussian in the unconstrained space whose
precision is the Hessian of the negative log joint at the point; :class:`Laplace` holds it and maps
its draws back to each site's support. A MAP fit's ArviZ export draws from it
(:class:`probgen.models.posterior.MAPPosterior`), so PSIS-LOO is defined for a MAP fit too.

References:
    Tierney & Kadane, "Accurate approximations for posterior moments and marginal densities",
    JASA 81 (1986).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyro.distributions as dist
import pyro.poutine as poutine
import torch
from pyro.poutine.util import site_is_subsample
from torch import Tensor
from torch.distributions import Transform, biject_to

from probgen._checks import check_int

__all__ = ["LAPLACE_NOTE", "MAX_LAPLACE_DIMS", "Laplace", "laplace_approximation", "site_layout"]

#: what the draws of a MAP fit's export are (the posterior group's ``probgen_draws``)
LAPLACE_NOTE = (
    "Laplace approximation at the posterior mode: independent draws from N(mode, H^-1) in the unconstrained "
    "space (H: the Hessian of the negative log joint at the MAP point), mapped to each site's support and split "
    "into chains (R-hat ~ 1 by construction); LOO on them is PSIS-LOO of the Laplace posterior"
)
#: unconstrained dimensions up to which the dense Hessian is computed (its memory grows as the square)
MAX_LAPLACE_DIMS = 4096


@dataclass(frozen=True)
class Laplace:
    """A Gaussian ``N(loc, precision^-1)`` over the unconstrained values of a program's global
    sites, flattened into one vector, and the way back to each site's support.

    Attributes:
        loc: the unconstrained mode, ``[K]``.
        precision: the Hessian of the negative log joint at ``loc``, ``[K, K]`` (positive definite).
        sites: site name -> (its slice of the vector, its unconstrained shape, the bijection
            ``biject_to(support)`` from unconstrained to constrained values).

    Example:
        >>> import torch
        >>> from torch.distributions import biject_to, constraints
        >>> scale = (slice(0, 1), torch.Size([]), biject_to(constraints.positive))  # a scalar site "s" > 0
        >>> one = Laplace(torch.zeros(1), torch.eye(1), {"s": scale})  # log s ~ N(0, 1)
        >>> one.constrain(torch.zeros(1)), one.sample(3)["s"].shape
        ({'s': tensor(1.)}, torch.Size([3]))
    """

    loc: Tensor
    precision: Tensor
    sites: dict[str, tuple[slice, torch.Size, Transform]]

    @property
    def covariance(self) -> Tensor:
        """``precision^-1``, ``[K, K]``."""
        return torch.cholesky_inverse(torch.linalg.cholesky(self.precision))

    def site_covariance(self, name: str) -> Tensor:
        """The block of :attr:`covariance` of one site's (flattened) unconstrained values."""
        if name not in self.sites:
            raise ValueError(f"no site {name!r} in this Laplace approximation; expected one of {list(self.sites)}")
        where = self.sites[name][0]
        return self.covariance[where, where]

    def constrain(self, flat: Tensor) -> dict[str, Tensor]:
        """Unconstrained vectors ``[..., K]`` -> ``{site: [..., *shape]}`` on each site's support."""
        return {
            name: transform(flat[..., where].reshape(flat.shape[:-1] + shape))
            for name, (where, shape, transform) in self.sites.items()
        }

    def sample(self, num_samples: int) -> dict[str, Tensor]:
        """``num_samples`` independent draws of every site, ``{site: [S, ...]}`` (torch's generator,
        so ``pyro.set_rng_seed`` fixes them)."""
        return self.sample_with_log_density(num_samples)[0]

    def sample_with_log_density(self, num_samples: int) -> tuple[dict[str, Tensor], Tensor]:
        """:meth:`sample`'s draws and the log-density of each, ``[S]``: the Gaussian's in the
        unconstrained space minus the log-Jacobian of the map to each site's support (the density
        of the constrained draw, as a guide's log q is).

        Example:
            >>> from torch.distributions import biject_to, constraints
            >>> one = Laplace(torch.zeros(1), torch.eye(1), {"s": (slice(0, 1), torch.Size([]),
            ...                                                    biject_to(constraints.positive))})
            >>> draws, log_q = one.sample_with_log_density(2)  # log s ~ N(0, 1): s is log-normal
            >>> torch.allclose(log_q, dist.LogNormal(0.0, 1.0).log_prob(draws["s"]))
            True
        """
        check_int("num_samples", num_samples)
        gaussian = dist.MultivariateNormal(self.loc, precision_matrix=self.precision)
        with torch.no_grad():
            free = gaussian.sample((num_samples,))
            values = self.constrain(free)
            log_density = gaussian.log_prob(free)
            for name, (where, shape, transform) in self.sites.items():
                jacobian = transform.log_abs_det_jacobian(free[:, where].reshape(num_samples, *shape), values[name])
                log_density = log_density - jacobian.reshape(num_samples, -1).sum(1)
        return values, log_density


def site_layout(
    program: Callable[..., Any], point: Mapping[str, Tensor], args: tuple, kwargs: dict
) -> tuple[dict[str, tuple[slice, torch.Size, Transform]], Tensor]:
    """Each point site's slice, unconstrained shape and bijection, and the unconstrained point."""
    with poutine.block(), torch.no_grad():
        trace = poutine.trace(poutine.condition(program, data=dict(point))).get_trace(*args, **kwargs)
    samples = {n: site for n, site in trace.nodes.items() if site["type"] == "sample" and not site_is_subsample(site)}
    missing = [name for name in point if name not in samples]
    if missing:
        raise ValueError(
            f"point has value(s) for {missing}, which the program does not sample; it samples {list(samples)}"
        )
    free = [name for name, site in samples.items() if not site["is_observed"]]
    if free:  # the Laplace approximation is of the globals given a value of every latent
        raise ValueError(f"the program has latent site(s) {free} with no value in point; expected a value for each")
    sites, pieces, start = {}, [], 0
    for name, value in point.items():
        transform = biject_to(samples[name]["fn"].support)
        free_value = transform.inv(value)
        sites[name] = (slice(start, start + free_value.numel()), free_value.shape, transform)
        pieces.append(free_value.reshape(-1))
        start += free_value.numel()
    return sites, torch.cat(pieces)


def _check_positive_definite(hessian: Tensor, sites: dict[str, tuple[slice, torch.Size, Transform]]) -> None:
    """A ValueError naming the site (and its unconstrained element) where the Hessian fails."""

    def where(index: int) -> str:
        for name, (part, shape, _) in sites.items():
            if part.start <= index < part.stop:
                element = tuple(int(i) for i in np.unravel_index(index - part.start, tuple(shape) or (1,)))
                return f"site {name!r} (unconstrained element {element})"
        return f"index {index}"

    finite = torch.isfinite(hessian).all(1)
    if not bool(finite.all()):
        index = int((~finite).nonzero()[0])
        raise ValueError(f"the Hessian of the negative log joint at the MAP point is not finite at {where(index)}")
    _, info = torch.linalg.cholesky_ex(hessian)
    if int(info):  # info = the order of the first leading minor that is not positive definite
        raise ValueError(
            "the Hessian of the negative log joint at the MAP point is not positive definite at "
            f"{where(int(info) - 1)}: "
            "the point is not a strict local mode there (not yet converged, a flat direction, or a mode on the "
            "boundary of the support), so it has no Laplace approximation; fit longer, or use method='conjugate', "
            "'vi' or 'nuts'"
        )


def _check_size(loc: Tensor) -> None:
    if loc.numel() > MAX_LAPLACE_DIMS:
        raise ValueError(
            f"the Laplace approximation has {loc.numel()} unconstrained dimensions; its dense Hessian is computed "
            f"up to MAX_LAPLACE_DIMS={MAX_LAPLACE_DIMS}: use method='vi' or 'conjugate' for a model this large"
        )


def laplace_approximation(
    program: Callable[..., Any], point: Mapping[str, Tensor], *args: Any, **kwargs: Any
) -> Laplace:
    """The Laplace approximation of the posterior of a Pyro program's latent sites at ``point``,
    in the unconstrained space: ``N(u*, H^-1)`` with ``u* = biject_to(support)^-1(point)`` and
    ``H`` the Hessian (``torch.autograd.functional.hessian``) at ``u*`` of the negative log joint
    of the unconstrained values, ``-log p(theta(u), data) - log |d theta / d u|`` (the program's
    log joint by ``poutine.condition`` and ``trace.log_prob_sum()``, plus the log-Jacobian).

    That is the Hessian Pyro's ``AutoLaplaceApproximation.laplace_approximation`` computes at its
    ``loc``; here it is taken at a given ``point``, the posterior mode of the constrained values
    (a MAP fit's ``AutoDelta``), so the fitted point is kept rather than refitted in the
    unconstrained space (where the log-Jacobian moves the mode). For sites without a constraint
    both are the classical Laplace approximation. The log-Jacobian also gives curvature where
    the data give none (a category never seen under a flat Dirichlet prior). Compute in float64.

    Args:
        program: the Pyro model, ``program(*args, **kwargs)``, observing its data.
        point: a value of every latent sample site of the program.
        args, kwargs: the program's arguments (the data).

    Returns:
        The :class:`Laplace` Gaussian.

    Raises:
        ValueError: a latent site without a value, a value for a site the program lacks, more
            than ``MAX_LAPLACE_DIMS`` unconstrained dimensions, or a Hessian that is not finite
            or not positive definite (the message names the site).

    Example:
        >>> import torch, pyro, pyro.distributions as dist
        >>> def mean(x):  # known noise scale 1, prior N(0, 2^2): the posterior is Gaussian
        ...     mu = pyro.sample("mu", dist.Normal(torch.tensor(0.0, dtype=x.dtype), 2.0))
        ...     with pyro.plate("data", len(x)):
        ...         pyro.sample("x", dist.Normal(mu, 1.0), obs=x)
        >>> x = torch.tensor([0.5, 1.0, 1.1], dtype=torch.float64)
        >>> laplace = laplace_approximation(mean, {"mu": x.sum() / 3.25}, x)
        >>> round(float(laplace.covariance[0, 0]), 6), round(1 / 3.25, 6)  # exact: 1 / (1/4 + 3)
        (0.307692, 0.307692)
    """
    sites, loc = site_layout(program, point, args, kwargs)
    _check_size(loc)

    def negative_log_joint(flat: Tensor) -> Tensor:
        free = {name: flat[where].reshape(shape) for name, (where, shape, _) in sites.items()}
        values = {name: sites[name][2](value) for name, value in free.items()}
        with poutine.block():
            trace = poutine.trace(poutine.condition(program, data=values)).get_trace(*args, **kwargs)
        # the density of u = biject_to(support)^-1(theta): log p(theta(u), data) + log |d theta / d u|
        log_jacobian = sum(sites[name][2].log_abs_det_jacobian(free[name], values[name]).sum() for name in free)
        return -(trace.log_prob_sum() + log_jacobian)

    with torch.enable_grad():  # the caller may be inside no_grad (an export)
        hessian = torch.autograd.functional.hessian(negative_log_joint, loc.detach())
    hessian = (hessian + hessian.T) / 2  # exact symmetry for the Cholesky factorisation
    _check_positive_definite(hessian, sites)
    return Laplace(loc.detach(), hessian.detach(), sites)
