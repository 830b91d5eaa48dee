"""Every size argument of every registered model's constructor is checked in one place.

The size-like keywords are found from the constructors' signatures (annotated ``int`` or
``Sequence[int]``), not from a list kept here. So a size added to any family is covered, and it
fails here if the table in ``probgen._checks`` does not classify it. Bad sizes must give a
ValueError or TypeError that names the argument and the value received. They must never reach
torch as a negative dimension, never give an IndexError from inside Pyro, and never build a
model without a word. A seeded fuzz passes wrong types to every keyword. It accepts a
ValueError, a TypeError or a built model, and nothing else.
"""

import copy
import itertools
import math
import random
import warnings

import numpy as np
import pytest
import torch

import probgen as pg
from probgen._checks import SIZE_ARGUMENTS
from probgen.models import accepted_parameters

MODELS = pg.models.MODELS
#: integer keywords that are not sizes (any int is a valid seed)
NOT_SIZES = {"seed"}
SHAPE = (1, 4, 4)  # suits every family: flat models flatten it, image models take it as is
BAD_SIZES = [0, -5, 2.5, True, "8"]
BAD_WIDTHS = [(-5,), (0,), [8, -1], (2.5,), (True,), "88"]


def _support(cls) -> str:
    return "binary" if "binary" in cls.supports else "real"


def _build(cls, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. torch on zero-element tensors, were one built
        return cls(SHAPE, _support(cls), **kwargs)


def _is_sequence(param) -> bool:
    return "Sequence[int]" in str(param.annotation)


def _integer_keywords():
    for name, spec in MODELS.items():
        for keyword, param in accepted_parameters(spec.cls).items():
            head = str(param.annotation).split("|")[0].strip()
            if head == "int" or _is_sequence(param):
                yield name, keyword, param


SIZES = [(name, keyword, param) for name, keyword, param in _integer_keywords() if keyword not in NOT_SIZES]


def test_every_registered_model_builds_with_the_test_shape():
    for name, spec in MODELS.items():
        assert isinstance(_build(spec.cls), pg.models.GenerativeModel), name


def test_every_integer_keyword_is_a_known_size():
    """A new integer argument of any constructor must be named in the table (or here, as not a
    size): otherwise nothing would check it."""
    unknown = {(name, keyword) for name, keyword, _ in SIZES if keyword not in SIZE_ARGUMENTS}
    assert not unknown
    assert len(SIZES) > 60  # the survey found the sizes of ~29 models


@pytest.mark.parametrize(("name", "keyword", "param"), SIZES, ids=[f"{n}-{k}" for n, k, _ in SIZES])
def test_bad_sizes_are_refused_by_name(name, keyword, param):
    cls = MODELS[name].cls
    values = BAD_SIZES + (BAD_WIDTHS if _is_sequence(param) else [])
    if SIZE_ARGUMENTS[keyword] == 0:  # e.g. num_gibbs_steps=0: no Gibbs sweeps is allowed
        values = [v for v in values if not (type(v) is int and v == 0)]
    for value in values:
        with pytest.raises((ValueError, TypeError)) as info:
            _build(cls, **{keyword: value})
        message = str(info.value)
        assert keyword in message and repr(value) in message, message
        assert "must be" in message, message


WIDTHS = [(n, k, p) for n, k, p in SIZES if _is_sequence(p) and k == "hidden_features"]


@pytest.mark.parametrize(
    ("name", "keyword", "param"),
    [pytest.param(n, k, p, id=f"{n}-{k}") for n, k, p in WIDTHS],
)
def test_no_hidden_layer_is_refused_or_a_working_linear_network(name, keyword, param):
    """``hidden_features=()``: a ValueError where the class declares it needs a layer; elsewhere a network
    without a hidden layer, which must then fit (a linear critic, a linear-Gaussian VAE)."""
    cls = MODELS[name].cls
    if keyword in cls._nonempty_sizes:
        with pytest.raises(ValueError, match=f"{keyword} must be a non-empty sequence"):
            _build(cls, **{keyword: ()})
        return
    model = _build(cls, **{keyword: ()})
    x = torch.bernoulli(torch.full((8, *SHAPE), 0.5)) if model.support == "binary" else torch.randn(8, *SHAPE)
    data = (x, torch.arange(8) % 2) if cls.needs_labels else x
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = pg.fit(model, data, epochs=1, batch_size=8, progress=False)
    assert all(math.isfinite(v) for h in result.history for v in h.values() if isinstance(v, float))


@pytest.mark.parametrize("name", list(MODELS))
def test_bad_event_shapes_are_refused(name):
    cls = MODELS[name].cls
    for shape in [0, -5, 2.5, True, "16", (), (0,), (4, -1), (4, 2.5), (True, 4), None]:
        with pytest.raises((ValueError, TypeError), match="event_shape must be"):
            cls(shape, _support(cls))
    assert _build(cls).event_shape == SHAPE
    assert cls(tuple(np.array(SHAPE)), _support(cls)).event_shape == SHAPE  # numpy's integers are sizes


def test_copies_and_pickles_rebuild_without_arguments():
    """``__new__`` checks arguments only when there are some: copy and pickle rebuild a model by
    calling it with none."""
    model = pg.models.VAE(16, "binary", latent_dim=2, hidden_features=(4,))
    clone = copy.deepcopy(model)
    assert clone.config == model.config
    assert all(torch.equal(a, b) for a, b in zip(clone.state_dict().values(), model.state_dict().values(), strict=True))


#: wrong types and odd values for any keyword: a float, a string, containers, nothing, NaN
FUZZ_VALUES = [object(), "bogus", "8", -1.0, float("nan"), None, [object()], {"a": 1}, (2,), True, 3, -2]


def _accepted_or_refused(cls, kwargs):
    try:
        _build(cls, **kwargs)
    except (ValueError, TypeError):
        pass  # refused, as bad input should be


@pytest.mark.parametrize("name", list(MODELS))
def test_fuzz_every_keyword_with_wrong_values(name):
    """Each keyword with each value, then seeded random pairs of keywords with random values:
    a ValueError, a TypeError or a built model, never any other exception."""
    cls = MODELS[name].cls
    keywords = list(accepted_parameters(cls))
    for keyword, value in itertools.product(keywords, FUZZ_VALUES):
        _accepted_or_refused(cls, {keyword: value})
    rng = random.Random(0)
    for _ in range(20 if len(keywords) > 1 else 0):
        pair = rng.sample(keywords, 2)
        _accepted_or_refused(cls, {k: rng.choice(FUZZ_VALUES) for k in pair})


def _float_keywords():
    for name, spec in MODELS.items():
        for keyword, param in accepted_parameters(spec.cls).items():
            head = str(param.annotation).split("|")[0].strip()
            if head == "float" or (isinstance(param.default, float) and head in ("", "inspect._empty")):
                yield name, keyword


FLOATS = sorted(set(_float_keywords()))


def test_the_float_keywords_are_found():
    found = {keyword for _, keyword in FLOATS}
    assert {"prior_a", "prior_class", "beta", "dropout", "bound", "logit_alpha"} <= found


@pytest.mark.parametrize(("name", "keyword"), FLOATS, ids=[f"{n}-{k}" for n, k in FLOATS])
def test_bad_float_hyperparameters_are_refused_by_name(name, keyword):
    """NaN, infinity and text never build a model (they would give a NaN density or a crash in
    torch); a number too large for a float32 buffer is refused or builds, never overflows in torch."""
    cls = MODELS[name].cls
    for bad in (math.nan, math.inf, "0.5"):
        with pytest.raises((ValueError, TypeError), match=keyword):
            _build(cls, **{keyword: bad})
    try:
        _build(cls, **{keyword: 1e300})
    except (ValueError, TypeError) as err:
        assert keyword in str(err)
