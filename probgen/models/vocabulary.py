"""One vocabulary of constructor arguments across every model family.

Every registered model names its constructor arguments from :data:`VOCABULARY` (a test checks
it), so that a width, a depth, a posterior method or a Monte-Carlo count is spelt the same in a
VAE, a flow, an RBM and a classifier: ``hidden_features`` is always a tuple of hidden-layer
widths, ``num_hidden`` the unit count of a single hidden layer, ``num_layers`` a depth,
``method`` only how a posterior is computed, ``num_samples`` a Monte-Carlo count and
``num_classes`` keyword-only.

The names used before (:data:`RENAMED`) are accepted for one release: constructing a model with
one gives a single :class:`DeprecationWarning` per call naming the old and the new names, and a
config saved with old names (an old checkpoint) loads silently through ``from_config``, since a
checkpoint is data the user cannot edit and a re-save writes the new names. Both go through
:func:`rename_arguments`, which ``GenerativeModel``'s metaclass and ``from_config`` call once,
for every class.

The same old name may have become different new names in different families (``hidden`` is a
tuple of widths in a flow, ``hidden_features``, but one unit count in NADE, ``num_hidden``), so
:data:`RENAMED` is kept per class, and a class's mapping (:func:`renamed_for`) gathers those of
its MRO: a class accepts exactly the old names it (or a base) had, nothing more.

This module imports nothing from the model families: :func:`argument_table` is given the
registry (``probgen.models.MODELS``) by its caller.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Mapping
from typing import Any

__all__ = [
    "VOCABULARY",
    "RENAMED",
    "WERE_POSITIONAL",
    "SHAPE_ARGUMENTS",
    "accepted_parameters",
    "accepted_kwargs",
    "check_kwargs",
    "renamed_for",
    "rename_arguments",
    "positional_to_keywords",
    "vocabulary_table",
    "argument_table",
]

#: constructor arguments that come from the data, not from the user
SHAPE_ARGUMENTS = ("self", "event_shape", "support")

#: every allowed constructor argument name (besides ``event_shape`` and ``support``) and its meaning
VOCABULARY: dict[str, str] = {
    # widths and depths
    "hidden_features": "widths of the hidden layers of a network, always a tuple (() is no hidden layer)",
    "num_hidden": "unit count of a single hidden layer (NADE, the RBMs, a NAF's sigmoidal flow)",
    "hidden_channels": "channels of the hidden convolutions (PixelCNN, DCGAN)",
    "embed_dim": "width of a transformer's residual stream",
    "num_layers": "depth: layers, residual blocks or flow steps",
    "num_heads": "attention heads per transformer layer",
    "num_scales": "multi-scale levels of a Glow (each one a squeeze and a flow)",
    "kernel": "side of a convolution kernel",
    "latent_dim": "dimension of the latent code",
    "image_shape": "(C, H, W) a flattened event is seen as by a convolutional network",
    "architecture": "the network family: 'mlp', or 'conv' (VAE) / 'dcgan' (GAN) for images",
    "dropout": "dropout rate of the hidden layers",
    "encoder_dropout": "dropout rate of a VAE's encoder",
    # posteriors, priors and Monte-Carlo counts
    "method": "how a posterior is computed: 'conjugate', 'map', 'vi', 'nuts' (classifiers); 'bayes', 'map', 'mle'",
    "num_samples": "a Monte-Carlo count: posterior draws of a predictive, importance draws",
    "num_gibbs_steps": "Gibbs sweeps of an RBM's sampler (a step count, not a sample count)",
    "num_ais_steps": "annealing temperatures of an RBM's AIS estimate of log Z (a step count)",
    "num_classes": "label count; keyword-only everywhere",
    "prior_a": "shape a of a Beta or Gamma prior",
    "prior_b": "b of a Beta prior, or the rate of a Gamma prior",
    "prior_alpha": "concentration of a Dirichlet prior",
    "prior_loc": "mean of a Normal prior",
    "prior_kappa": "pseudo-count of a Normal prior's mean",
    "prior_df": "degrees of freedom of a Wishart prior (None: D + 2)",
    "prior_class": "concentration of the Dirichlet prior of the class weights",
    "reg_param": "shrinkage of each class covariance toward reg_param * I (scikit-learn's; None: the model's)",
    "var_smoothing": "Gaussian NB's prior scale as a fraction of the largest feature variance (scikit-learn's)",
    # likelihoods and outputs
    "likelihood": "the observation distribution p(x | z) (None: from the support)",
    "output": "an autoregressive model's conditional for k-level data: 'categorical' or 'logistic'",
    "components": "mixture components of an autoregressive conditional (real data, or 'logistic')",
    "learn_scale": "a Gaussian RBM learns its visible scales",
    # VAE options
    "beta": "weight of the KL term of a beta-VAE",
    "prior": "a VAE's prior: 'standard', 'vamp' or 'flow'",
    "num_pseudo_inputs": "pseudo-inputs of a VampPrior",
    "bounded_pseudo_inputs": "pseudo-inputs kept in the data's range",
    "posterior_flow": "flow on a VAE's posterior: None, 'iaf', 'planar', 'sylvester' or 'nsf'",
    "flow_num_layers": "depth of a VAE's posterior or prior flow (its num_layers)",
    "flow_hidden_features": "widths of a VAE's flow networks (its hidden_features; () the VAE's own)",
    # MADE, flows, GANs, diffusion, dequantization
    "num_masks": "MADE's connectivity orderings, cycled through training",
    "seed": "seed of MADE's orderings and masks",
    "count_bins": "bins of a rational-quadratic spline",
    "bound": "the spline's interval [-bound, bound]",
    "coupling": "how a coupling flow splits the coordinates: 'checkerboard' (its two colours) or 'halves'",
    "loss": "a GAN's game: 'non_saturating', 'minimax' or 'wasserstein_gp'",
    "dequantize": "a GAN on k-level data adds uniform noise to the real data",
    "steps": "diffusion steps T of a DDPM",
    "beta_range": "a DDPM's noise schedule endpoints (beta_1, beta_T)",
    "schedule": "a DDPM's noise schedule: 'linear' or 'cosine'",
    "reverse_variance": "a DDPM's reverse-step variance: 'learned', 'beta' or 'posterior'",
    "vlb_weight": "weight of the bound in a DDPM's hybrid loss",
    "parameterization": "what a DDPM's network predicts: 'noise' or 'levels' (None: from the support)",
    "base": "the continuous model a Dequantized wraps (a model or its config)",
    "models": "the fitted components of a Stacked mixture (models or their configs)",
    "dequantization": (
        "how Dequantized integrates the noise: 'uniform' (a bound), 'importance' or 'variational' (a learned q, "
        "a bound)"
    ),
    "logit_alpha": "Dequantized models logit(alpha + (1 - 2 alpha) v), Jacobian counted",
    "dequantizer_num_layers": "depth of a variational Dequantized's learned noise flow (its num_layers)",
    "dequantizer_hidden_features": "widths of a variational Dequantized's noise-flow networks (its hidden_features)",
}

#: the names used before the one vocabulary, old -> new, by the class that declared them (its
#: ``__name__``; subclasses inherit the mapping through their MRO). The same old name maps
#: differently by family: ``hidden`` is a tuple of widths in a flow (``hidden_features``) but one
#: unit count in NADE and the RBMs (``num_hidden``); ``method`` is renamed only in
#: ``Dequantized`` (``dequantization``), while the factorized models' ``estimator`` becomes
#: ``method``, which keeps its meaning in the classifiers.
RENAMED: dict[str, dict[str, str]] = {
    "Autoencoder": {"hidden": "hidden_features"},
    "VAE": {"hidden": "hidden_features", "flow_length": "flow_num_layers", "flow_hidden": "flow_hidden_features"},
    "DDPM": {"hidden": "hidden_features"},
    "GAN": {"hidden": "hidden_features", "channels": "hidden_channels"},
    "Flow": {"hidden": "hidden_features"},
    "Glow": {"levels": "num_scales"},
    "NAF": {"width": "num_hidden"},
    "MADE": {"hidden": "hidden_features"},
    "NADE": {"hidden": "num_hidden"},
    "PixelCNN": {"channels": "hidden_channels", "blocks": "num_layers"},
    "CausalTransformer": {"width": "embed_dim", "layers": "num_layers", "heads": "num_heads"},
    "RBMBase": {"hidden": "num_hidden", "gibbs_steps": "num_gibbs_steps", "ais_steps": "num_ais_steps"},
    "Factorized": {"estimator": "method"},
    "GenerativeClassifier": {"num_posterior_samples": "num_samples"},
    "Dequantized": {"method": "dequantization"},
}


#: arguments that were positional (after ``event_shape`` and ``support``) before they became
#: keyword-only, by the class that declared them: passed positionally, they still work for one
#: release, with a DeprecationWarning (``GaussianNaiveBayes(4, "real", 3)``)
WERE_POSITIONAL: dict[str, tuple[str, ...]] = {"GenerativeClassifier": ("num_classes",)}


def positional_to_keywords(cls: type, args: tuple[Any, ...], kwargs: Mapping[str, Any], *, stacklevel: int = 2):
    """``(args, kwargs)`` of a constructor call of ``cls`` with the arguments that were once
    positional (:data:`WERE_POSITIONAL`) moved from ``args`` (after event shape and support) into
    ``kwargs``, with one DeprecationWarning; unchanged when the call passes none of them.

    Example:
        >>> import warnings
        >>> from probgen.models import GaussianNaiveBayes
        >>> with warnings.catch_warnings():
        ...     warnings.simplefilter("ignore")
        ...     positional_to_keywords(GaussianNaiveBayes, (4, "real", 3), {})
        ((4, 'real'), {'num_classes': 3})
    """
    names = next((WERE_POSITIONAL[k.__name__] for k in cls.__mro__ if k.__name__ in WERE_POSITIONAL), ())
    extra = args[2:]
    if not names or not extra or len(extra) > len(names) or any(n in kwargs for n in names[: len(extra)]):
        return args, dict(kwargs)  # nothing to move, or a call that fails on its own
    moved = dict(zip(names, extra, strict=False))
    warnings.warn(
        f"{cls.__name__}: passing {', '.join(moved)} by position is deprecated; "
        f"use {', '.join(f'{n}=...' for n in moved)} (keyword-only in the next release)",
        DeprecationWarning,
        stacklevel=stacklevel + 1,
    )
    return args[:2], {**kwargs, **moved}


def accepted_parameters(cls: type) -> dict[str, inspect.Parameter]:
    """The keyword parameters of the model class ``cls``'s constructor besides event shape and
    support, from the signatures of ``cls.__init__`` and, where it passes ``**kwargs`` on, of its
    base model classes' (the first definition of a name wins: its default and annotation are the
    ones used). A class built around a function of its own (``pyro_model_class``) declares them in
    ``_accepted_parameters``.

    Example:
        >>> from probgen.models import VAE
        >>> params = accepted_parameters(VAE)
        >>> params["latent_dim"].default, "event_shape" in params
        (8, False)
    """
    own = getattr(cls, "_accepted_parameters", None)
    if own is not None:
        return dict(own)
    accepted: dict[str, inspect.Parameter] = {}
    for klass in cls.__mro__:
        # a model class declares ``supports``; mixins and torch's classes do not
        if "__init__" not in vars(klass) or not hasattr(klass, "supports"):
            continue
        params = inspect.signature(klass.__init__).parameters.values()
        for p in params:
            if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD) and p.name not in SHAPE_ARGUMENTS:
                accepted.setdefault(p.name, p)
        if not any(p.kind == p.VAR_KEYWORD for p in params):
            break
    return accepted


def accepted_kwargs(cls: type) -> list[str]:
    """The names of :func:`accepted_parameters`, sorted.

    Example:
        >>> from probgen.models import IndependentBernoulli
        >>> accepted_kwargs(IndependentBernoulli)
        ['method', 'prior_a', 'prior_b']
    """
    return sorted(accepted_parameters(cls))


def check_kwargs(cls: type, kwargs: Mapping[str, Any]) -> None:
    """ValueError for a keyword the constructor of ``cls`` does not take, listing those it does
    (a deprecated name it still accepts passes: the constructor renames it with a warning).

    Example:
        >>> from probgen.models import IndependentBernoulli
        >>> check_kwargs(IndependentBernoulli, {"prior_a": 2.0})
        >>> check_kwargs(IndependentBernoulli, {"prior_alpha": 2.0})
        Traceback (most recent call last):
        ...
        ValueError: independent-bernoulli got unknown argument(s) 'prior_alpha'; it accepts method, prior_a, prior_b
    """
    accepted = accepted_kwargs(cls)
    unknown = sorted(set(kwargs) - set(accepted) - set(renamed_for(cls)))
    if unknown:
        raise ValueError(
            f"{getattr(cls, 'name', cls.__name__)} got unknown argument(s) {', '.join(map(repr, unknown))}; "
            f"it accepts {', '.join(accepted) or 'none'}"
        )


def renamed_for(cls: type) -> dict[str, str]:
    """The deprecated -> new argument names that the model class ``cls`` still accepts: those
    of :data:`RENAMED` for the classes of its MRO, where the class accepts the new name and no
    longer the old one (a subclass that takes the old name back keeps it).

    Example:
        >>> from probgen.models import MAF, NADE
        >>> renamed_for(NADE)
        {'hidden': 'num_hidden'}
        >>> renamed_for(MAF)
        {'hidden': 'hidden_features'}
    """
    accepted = accepted_parameters(cls)
    renamed: dict[str, str] = {}
    for klass in cls.__mro__:
        for old, new in RENAMED.get(klass.__name__, {}).items():
            if old not in accepted and new in accepted:
                renamed.setdefault(old, new)
    return renamed


def rename_arguments(cls: type, kwargs: Mapping[str, Any], *, warn: bool = True, stacklevel: int = 2) -> dict[str, Any]:
    """``kwargs`` of a constructor call of the model class ``cls`` with every deprecated name
    (:func:`renamed_for`) replaced by its new one (order kept).

    With ``warn``, a call that used old names gives one :class:`DeprecationWarning` naming each
    old and new name. An argument given under both its old and its new name is a TypeError.

    Example:
        >>> import warnings
        >>> from probgen.models import NADE
        >>> with warnings.catch_warnings(record=True) as caught:
        ...     warnings.simplefilter("always")
        ...     rename_arguments(NADE, {"hidden": 8})
        {'num_hidden': 8}
        >>> str(caught[0].message)
        "NADE: argument 'hidden' is deprecated; use 'num_hidden' (the old name goes in the next release)"
    """
    renamed = renamed_for(cls)
    owner = cls.__name__
    used = [old for old in kwargs if old in renamed]
    if not used:
        return dict(kwargs)
    for old in used:
        if renamed[old] in kwargs:
            raise TypeError(f"{owner} got both {old!r} and its new name {renamed[old]!r}; pass only {renamed[old]!r}")
    if warn:
        pairs = "; ".join(f"argument {old!r} is deprecated; use {renamed[old]!r}" for old in used)
        warnings.warn(
            f"{owner}: {pairs} (the old name{'s go' if len(used) > 1 else ' goes'} in the next release)",
            DeprecationWarning,
            stacklevel=stacklevel + 1,
        )
    return {renamed.get(key, key): value for key, value in kwargs.items()}


def vocabulary_table() -> str:
    """The vocabulary as a Markdown table (name, meaning, the old names it replaces).

    Example:
        >>> vocabulary_table().splitlines()[0]
        '| argument | meaning | replaces |'
    """
    replaces: dict[str, list[str]] = {}
    for renames in RENAMED.values():
        for old, new in renames.items():
            if old not in replaces.get(new, []):
                replaces.setdefault(new, []).append(old)
    lines = ["| argument | meaning | replaces |", "|---|---|---|"]
    for name, meaning in VOCABULARY.items():
        old = ", ".join(f"`{o}`" for o in replaces.get(name, []))
        lines.append(f"| `{name}` | {meaning} | {old} |")
    return "\n".join(lines)


def argument_table(models: Mapping[str, Any]) -> str:
    """Every constructor argument of every registered model, as a Markdown table: one row per
    model (``models`` is the registry, ``probgen.models.MODELS``), its arguments with their
    defaults, and the deprecated names it still accepts.

    Example:
        >>> from probgen.models import MODELS
        >>> argument_table(MODELS).splitlines()[2].startswith("| `autoencoder` |")
        True
    """
    lines = ["| model | arguments (default) | deprecated names still accepted |", "|---|---|---|"]
    for name in sorted(models):
        cls = models[name].cls
        accepted = accepted_parameters(cls)
        args = ", ".join(f"`{key}={param.default!r}`" for key, param in sorted(accepted.items()))
        old = ", ".join(f"`{o}` → `{n}`" for o, n in sorted(renamed_for(cls).items()))
        lines.append(f"| `{name}` | {args} | {old} |")
    return "\n".join(lines)
