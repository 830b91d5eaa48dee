import pyro
import pytest
import torch

import probgen  # noqa: F401  (sets module-local params before any PyroModule is built)

# small tensors: one intra-op thread is as fast, and immune to oversubscription when test
# processes (or subprocesses) share the cores
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _isolate():
    """Fixed seeds and an empty param store for every test."""
    pyro.clear_param_store()
    pyro.set_rng_seed(0)
    yield
    pyro.clear_param_store()


@pytest.fixture
def float64():
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)
