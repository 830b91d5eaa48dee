"""The map of model families as data: where each registered model sits, and what its number is.

Goodfellow's taxonomy (NIPS 2016 tutorial on GANs, figure 9) sorts maximum-likelihood generative
models by how they treat the density p(x):

- **tractable explicit**: log p(x) is computed exactly: the chain rule of probability
  (fully visible belief nets, NADE, MADE, PixelCNN, Transformers), a change of variables (flows),
  or a small enough model to sum out (factorized models, Bayesian classifiers, whose log p(x)
  sums the classes out of the joint);
- **approximate explicit**: a density is written down but only bounded or estimated: the
  variational bound (VAE, diffusion's bound, uniform dequantization) or a Markov-chain/annealing
  estimate of the normalizer (Boltzmann machines, log p~(x) - log Z);
- **implicit**: only samples (GAN) or only reconstructions (a plain autoencoder): no density.

The place and family are declared here, per family base class, once; every model registered
with :func:`~probgen.models.register` falls under one of them through its class, so a new flow
or autoregressive model is on the map the moment it subclasses :class:`~probgen.models.Flow` or
:class:`~probgen.models.Autoregressive`. The density kind and what
:func:`probgen.log_likelihood` reports are *read from an instance* (built for a bundled dataset
of a support the class accepts, with its default arguments), never declared a second time, so
the map cannot drift from the code. A registered class outside every family (a plug-in, a
:class:`~probgen.models.PyroModel`) gets the family "unlisted" and the place its density kind
implies.

What :func:`probgen.log_likelihood` reports (``method="auto"``), by density kind: "exact" for an
exact density, "estimate" for a Monte-Carlo ``log_prob``, "lower_bound" by IWAE for a bound,
log p~(x) minus the model's own log Z for an unnormalized density ("exact" where log Z is
enumerated, else "estimate"), and a refusal for an implicit model. ``tests/models/test_families.py``
checks this column against :func:`probgen.log_likelihood` itself for every registered model.

Example:
    >>> from probgen.models import MAF
    >>> family_of(MAF)
    ('tractable explicit', 'flow')
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from probgen.models.autoencoder import Autoencoder
from probgen.models.autoregressive import Autoregressive
from probgen.models.base import GenerativeModel
from probgen.models.dequantized import Dequantized
from probgen.models.diffusion import DDPM
from probgen.models.energy import RBMBase
from probgen.models.factorized import Factorized
from probgen.models.flows import Flow
from probgen.models.gan import GAN
from probgen.models.generative_classifier import GenerativeClassifier
from probgen.models.registry import MODELS, ModelSpec
from probgen.models.stacked import Stacked
from probgen.models.vae import VAE

__all__ = [
    "PLACES",
    "FAMILIES",
    "DENSITIES_OF_PLACE",
    "FamilyRow",
    "family_of",
    "family_map",
    "format_family_map",
]

TRACTABLE, APPROXIMATE, IMPLICIT = "tractable explicit", "approximate explicit", "implicit"
#: the three places of the map, in reading order
PLACES: tuple[str, ...] = (TRACTABLE, APPROXIMATE, IMPLICIT)

#: (family base class, family, place, how its number is had), most specific first: the first
#: base class a model's class derives from names its family
FAMILIES: tuple[tuple[type[GenerativeModel], str, str, str], ...] = (
    (Factorized, "factorized", TRACTABLE, "a product of independent one-dimensional densities"),
    (GenerativeClassifier, "Bayesian classifier", TRACTABLE, "p(x) = the joint p(x, y) summed over the classes"),
    (Autoregressive, "autoregressive", TRACTABLE, "the chain rule: a product of exact conditionals"),
    (Flow, "flow", TRACTABLE, "a change of variables with an exact log-determinant"),
    (Stacked, "stacked", TRACTABLE, "a mixture of fitted densities, its weights fitted on held-out data"),
    (VAE, "VAE", APPROXIMATE, "latent variables: the ELBO / IWAE lower bound"),
    (DDPM, "diffusion", APPROXIMATE, "a chain of latents: the variational bound"),
    (Dequantized, "dequantized", APPROXIMATE, "a continuous density of noisy levels: a bound or an estimate"),
    (RBMBase, "energy-based", APPROXIMATE, "log p~(x) known, the normalizer log Z enumerated or by AIS"),
    (GAN, "GAN", IMPLICIT, "a sampler trained by a discriminator: no density"),
    (Autoencoder, "autoencoder", IMPLICIT, "reconstructions only: no density"),
)

#: the density kinds each place admits (a Bayesian classifier fitted by VI or NUTS reports a
#: Monte-Carlo "estimate" of an otherwise tractable predictive; importance-weighted
#: dequantization an "estimate" of a bounded one)
DENSITIES_OF_PLACE: dict[str, frozenset[str]] = {
    TRACTABLE: frozenset({"exact", "estimate"}),
    APPROXIMATE: frozenset({"lower_bound", "unnormalized", "estimate"}),
    IMPLICIT: frozenset({"implicit"}),
}

#: the place of a class outside every family, from its density kind
_PLACE_OF_DENSITY = {
    "exact": TRACTABLE,
    "estimate": APPROXIMATE,
    "lower_bound": APPROXIMATE,
    "unnormalized": APPROXIMATE,
    "implicit": IMPLICIT,
}

#: the bundled dataset an instance is built for, by the first support kind the class accepts
_DATA_FOR = {"binary": "digits-binary", "discrete": "digits", "real": "iris"}


@dataclass(frozen=True)
class FamilyRow:
    """One registered model on the map.

    Attributes:
        name: its registered name.
        class_name: its Python class (``pg.models.<class_name>`` for the built-in ones).
        place: "tractable explicit", "approximate explicit" or "implicit" (:data:`PLACES`).
        family: e.g. "flow", "VAE", "energy-based"; "unlisted" for a class outside :data:`FAMILIES`.
        density: the density kind of an instance with default arguments (``model.density``).
        reports: the ``kind`` :func:`probgen.log_likelihood` reports for it with ``method="auto"``,
            or "refused" (implicit models: a ValueError).
        method: the ``method`` it reports: "exact", "monte_carlo", "iwae", "log_normalizer", or
            "-" where it refuses.
        how: in words, how the family's number is had.
    """

    name: str
    class_name: str
    place: str
    family: str
    density: str
    reports: str
    method: str
    how: str


def family_of(cls: type[GenerativeModel]) -> tuple[str | None, str]:
    """(place, family) of a model class, or ``(None, "unlisted")`` outside every family.

    Args:
        cls: a :class:`~probgen.models.GenerativeModel` subclass.

    Example:
        >>> from probgen.models import RBM, VAE
        >>> family_of(VAE), family_of(RBM)
        (('approximate explicit', 'VAE'), ('approximate explicit', 'energy-based'))
    """
    if not (isinstance(cls, type) and issubclass(cls, GenerativeModel)):
        raise TypeError(f"family_of needs a GenerativeModel subclass, got {cls!r}")
    for base, family, place, _ in FAMILIES:
        if issubclass(cls, base):
            return place, family
    return None, "unlisted"


def _instance(spec: ModelSpec) -> GenerativeModel:
    """An untrained instance with default arguments, built for a bundled dataset it accepts."""
    from probgen.data import load_dataset

    support = next(s for s in ("binary", "discrete", "real") if s in spec.cls.supports)
    return spec.cls.from_dataset(load_dataset(_DATA_FOR[support]))


def _reported(model: GenerativeModel) -> tuple[str, str]:
    """(kind, method) that :func:`probgen.log_likelihood` reports with ``method="auto"``.

    The same rule as ``probgen.inference.evaluate`` (models do not import inference): the test of
    this module compares the two for every registered model.
    """
    density = model.density
    if density == "implicit":
        return "refused", "-"
    if density == "lower_bound":
        return "lower_bound", "iwae"
    if density == "unnormalized":  # log p~(x) - log Z: exact only where log Z is
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _, z_kind = model.log_normalizer(2)
        return ("exact" if z_kind == "exact" else "estimate"), "log_normalizer"
    return density, ("monte_carlo" if density == "estimate" else "exact")


def family_map(names: Iterable[str] | None = None) -> list[FamilyRow]:
    """The map's rows, one per registered model (sorted by place, family and name).

    Each model is built once, untrained, with its default arguments for a bundled dataset of a
    support it accepts (digits-binary, digits or iris), and its density kind and the kind that
    :func:`probgen.log_likelihood` reports are read from that instance.

    Args:
        names: registered model names (default: every one in :data:`~probgen.models.MODELS`).

    Example:
        >>> for row in family_map(["vae", "gan"]):
        ...     print(row.name, "|", row.place, "|", row.family, "|", row.density, "|", row.reports)
        vae | approximate explicit | VAE | lower_bound | lower_bound
        gan | implicit | GAN | implicit | refused
    """
    names = sorted(MODELS) if names is None else list(names)
    unknown = [n for n in names if n not in MODELS]
    if unknown:
        raise ValueError(f"unknown model names {unknown}; expected names from {sorted(MODELS)}")
    hows = {family: how for _, family, _, how in FAMILIES}
    rows = []
    for name in names:
        spec = MODELS[name]
        model = _instance(spec)
        place, family = family_of(spec.cls)
        density = model.density
        reports, method = _reported(model)
        how = hows.get(family, "a model outside the declared families: placed by its density kind")
        rows.append(
            FamilyRow(
                name=name,
                class_name=spec.cls.__name__,
                place=place or _PLACE_OF_DENSITY[density],
                family=family,
                density=density,
                reports=reports,
                method=method,
                how=how,
            )
        )
    order = {place: i for i, place in enumerate(PLACES)}
    families = [f for _, f, _, _ in FAMILIES]
    return sorted(
        rows,
        key=lambda r: (
            order[r.place],
            families.index(r.family) if r.family in families else len(families),
            r.name,
        ),
    )


def format_family_map(rows: Sequence[FamilyRow] | None = None) -> str:
    """The map as a plain-text table (what ``probgen list --map`` prints).

    Args:
        rows: rows of :func:`family_map` (default: every registered model).

    Example:
        >>> print(format_family_map(family_map(["maf"])))
        name  class  place               family  density  log_likelihood reports
        maf   MAF    tractable explicit  flow    exact    exact (exact)
    """
    rows = family_map() if rows is None else rows
    header = ("name", "class", "place", "family", "density", "log_likelihood reports")
    table = [header] + [(r.name, r.class_name, r.place, r.family, r.density, f"{r.reports} ({r.method})") for r in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(header) - 1)]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=False)) + "  " + line[-1] for line in table
    )
