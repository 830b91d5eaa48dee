"""probgen: generative models as Pyro programs, fitted and scored through one inference layer.

Importing probgen turns on Pyro's ``module_local_params`` setting: parameters of every
``PyroModule`` created afterwards live in the module (as in plain PyTorch) instead of Pyro's
global param store, so two models never share parameters by name.
"""

import pyro

pyro.settings.set(module_local_params=True)

from probgen import data, experiments, inference, models  # noqa: E402
from probgen.checkpoint import load, load_checkpoint, save  # noqa: E402
from probgen.data import get_data, load_dataset, load_file  # noqa: E402
from probgen.inference import bayes_factor, compare, evidence, fit, log_likelihood, loo, to_inference_data  # noqa: E402
from probgen.models.plugins import load_entry_points  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "bayes_factor",
    "compare",
    "data",
    "evidence",
    "experiments",
    "fit",
    "get_data",
    "inference",
    "load",
    "load_checkpoint",
    "load_dataset",
    "load_file",
    "log_likelihood",
    "loo",
    "models",
    "save",
    "to_inference_data",
]

# last, with every name above in place: models that installed packages register (entry points)
load_entry_points()
