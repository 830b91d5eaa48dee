"""Write the intersphinx inventories the docs build reads instead of fetching them.

Each ``<project>.inv`` here lists the objects of another project that probgen's docs refer to
(signatures, bases, docstrings), with the address of each on that project's site, so that the
site links to them with no network at build time. Add a row to ``OBJECTS`` when the build reports
a new external name, then run ``python docs/_inventories/build.py`` and commit the ``.inv``.
"""

from __future__ import annotations

from pathlib import Path

import sphobjinv as soi

__all__ = ["OBJECTS", "PROJECTS", "main"]

HERE = Path(__file__).resolve().parent

#: project key (as in conf.py's intersphinx_mapping) -> (project name, version)
PROJECTS = {
    "python": ("Python", "3"),
    "torch": ("PyTorch", "stable"),
    "pyro": ("Pyro", "stable"),
    "arviz": ("ArviZ", "stable"),
    "numpy": ("NumPy", "stable"),
}

#: project key -> [(object name, domain:role, page and anchor relative to the project's root)];
#: an anchor "$" stands for the object's name (the inventory format's shorthand)
OBJECTS: dict[str, list[tuple[str, str, str]]] = {
    "python": [
        ("Any", "py:data", "library/typing.html#typing.Any"),
        ("typing.Any", "py:data", "library/typing.html#$"),
        ("typing.Literal", "py:data", "library/typing.html#$"),
        ("typing.Callable", "py:data", "library/typing.html#$"),
        ("typing.TypeVar", "py:class", "library/typing.html#$"),
        ("collections.abc.Callable", "py:class", "library/collections.abc.html#$"),
        ("collections.abc.Iterable", "py:class", "library/collections.abc.html#$"),
        ("collections.abc.Iterator", "py:class", "library/collections.abc.html#$"),
        ("collections.abc.Mapping", "py:class", "library/collections.abc.html#$"),
        ("collections.abc.Sequence", "py:class", "library/collections.abc.html#$"),
        ("pathlib.Path", "py:class", "library/pathlib.html#$"),
        ("os.PathLike", "py:class", "library/os.html#$"),
        ("Exception", "py:exception", "library/exceptions.html#$"),
        ("ValueError", "py:exception", "library/exceptions.html#$"),
        ("TypeError", "py:exception", "library/exceptions.html#$"),
        ("RuntimeError", "py:exception", "library/exceptions.html#$"),
        ("FileNotFoundError", "py:exception", "library/exceptions.html#$"),
        ("int", "py:class", "library/functions.html#$"),
        ("float", "py:class", "library/functions.html#$"),
        ("bool", "py:class", "library/functions.html#$"),
        ("str", "py:class", "library/stdtypes.html#$"),
        ("dict", "py:class", "library/stdtypes.html#$"),
        ("list", "py:class", "library/stdtypes.html#$"),
        ("tuple", "py:class", "library/stdtypes.html#$"),
        ("object", "py:class", "library/functions.html#$"),
        ("None", "py:data", "library/constants.html#$"),
        ("dataclasses.dataclass", "py:function", "library/dataclasses.html#$"),
    ],
    "torch": [
        ("torch.Tensor", "py:class", "tensors.html#$"),
        ("torch.dtype", "py:class", "tensor_attributes.html#$"),
        ("torch.device", "py:class", "tensor_attributes.html#$"),
        ("torch.Generator", "py:class", "generated/torch.Generator.html#$"),
        ("torch.nn.Module", "py:class", "generated/torch.nn.Module.html#$"),
        ("torch.optim.Optimizer", "py:class", "optim.html#$"),
        ("torch.utils.data.Dataset", "py:class", "data.html#$"),
        ("torch.utils.data.DataLoader", "py:class", "data.html#$"),
        ("torch.distributions.Distribution", "py:class", "distributions.html#$"),
    ],
    "pyro": [
        ("pyro.nn.PyroModule", "py:class", "nn.html#pyro.nn.module.PyroModule"),
        ("pyro.nn.module.PyroModule", "py:class", "nn.html#$"),
        ("pyro.nn.pyro_method", "py:function", "nn.html#pyro.nn.module.pyro_method"),
        ("pyro.infer.SVI", "py:class", "inference_algos.html#pyro.infer.svi.SVI"),
        ("pyro.infer.svi.SVI", "py:class", "inference_algos.html#$"),
        ("pyro.infer.ELBO", "py:class", "inference_algos.html#pyro.infer.elbo.ELBO"),
        ("pyro.infer.Trace_ELBO", "py:class", "inference_algos.html#pyro.infer.trace_elbo.Trace_ELBO"),
        ("pyro.infer.Predictive", "py:class", "inference_algos.html#pyro.infer.predictive.Predictive"),
        ("pyro.infer.MCMC", "py:class", "mcmc.html#pyro.infer.mcmc.api.MCMC"),
        ("pyro.infer.NUTS", "py:class", "mcmc.html#pyro.infer.mcmc.NUTS"),
        ("pyro.infer.autoguide.AutoDelta", "py:class", "infer.autoguide.html#$"),
        ("pyro.infer.autoguide.AutoNormal", "py:class", "infer.autoguide.html#$"),
        ("pyro.plate", "py:class", "primitives.html#pyro.primitives.plate"),
        ("pyro.optim.PyroOptim", "py:class", "optimization.html#pyro.optim.optim.PyroOptim"),
        ("pyro.distributions.Distribution", "py:class", "distributions.html#pyro.distributions.Distribution"),
        ("pyro.distributions.TorchDistribution", "py:class", "distributions.html#$"),
        ("pyro.poutine.trace", "py:function", "poutine.html#pyro.poutine.handlers.trace"),
    ],
    "arviz": [
        ("arviz.InferenceData", "py:class", "api/generated/arviz.InferenceData.html#$"),
        ("arviz.compare", "py:function", "api/generated/arviz.compare.html#$"),
        ("arviz.loo", "py:function", "api/generated/arviz.loo.html#$"),
        ("arviz.summary", "py:function", "api/generated/arviz.summary.html#$"),
        ("arviz.ELPDData", "py:class", "api/generated/arviz.ELPDData.html#$"),
    ],
    "numpy": [
        ("numpy.ndarray", "py:class", "reference/generated/numpy.ndarray.html#$"),
        ("numpy.memmap", "py:class", "reference/generated/numpy.memmap.html#$"),
        ("numpy.random.Generator", "py:class", "reference/random/generator.html#$"),
        ("numpy.typing.ArrayLike", "py:data", "reference/typing.html#$"),
        ("numpy.load", "py:function", "reference/generated/numpy.load.html#$"),
        ("numpy.save", "py:function", "reference/generated/numpy.save.html#$"),
    ],
}


def main() -> None:
    """Write ``<key>.inv`` for every project in :data:`PROJECTS`."""
    for key, (project, version) in PROJECTS.items():
        inventory = soi.Inventory()
        inventory.project, inventory.version = project, version
        for name, role, uri in OBJECTS[key]:
            domain, role_name = role.split(":")
            inventory.objects.append(
                soi.DataObjStr(name=name, domain=domain, role=role_name, priority="1", uri=uri, dispname="-")
            )
        soi.writebytes(HERE / f"{key}.inv", soi.compress(inventory.data_file(contract=True)))


if __name__ == "__main__":
    main()
