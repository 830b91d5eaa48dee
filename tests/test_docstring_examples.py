"""Every docstring ``Example:`` in the package runs and prints what it says."""

import doctest
import importlib
import pkgutil

import pyro
import pytest
import torch

import probgen
from probgen.inference.strategies import STRATEGIES
from probgen.models import MODELS

MODULES = sorted(m.name for m in pkgutil.walk_packages(probgen.__path__, "probgen.") if m.name != "probgen.__main__")


@pytest.fixture
def registries():
    """An example may register a model or a strategy of its own: the registries come back as they were."""
    saved = dict(MODELS), dict(STRATEGIES)
    yield
    for registry, before in zip((MODELS, STRATEGIES), saved, strict=True):
        registry.clear()
        registry.update(before)
    pyro.clear_param_store()


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name, registries):
    torch.manual_seed(0)
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} docstring examples failed in {name}"


def test_the_registries_are_whole_again():
    assert "my-model" not in MODELS  # the registry's own example registers one
