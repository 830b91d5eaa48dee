"""Every public name of probgen has a docstring example, and tests/test_docstring_examples.py runs it.

The public names are those in ``__all__`` of the package and of its documented subpackages that
are classes or functions (modules re-exported there are not names of their own). A name's
example is a ``>>>`` line in ``inspect.getdoc`` of it; the example runs only if doctest collects
it from the module the object was defined in, so that is checked too.
"""

import doctest
import importlib
import inspect
import pkgutil

import pytest

import probgen

#: the modules whose ``__all__`` makes the public API (docs/api pages list these)
PUBLIC_MODULES = ("probgen", "probgen.models", "probgen.inference", "probgen.data", "probgen.experiments")
#: what tests/test_docstring_examples.py runs doctest on
DOCTESTED = {m.name for m in pkgutil.walk_packages(probgen.__path__, "probgen.")} | {"probgen"}


def public_names() -> dict[str, object]:
    """``module.name`` -> object for every class or function in the public ``__all__`` lists."""
    found = {}
    for module_name in PUBLIC_MODULES:
        module = importlib.import_module(module_name)
        for name in module.__all__:
            obj = getattr(module, name)
            if inspect.isclass(obj) or inspect.isfunction(obj):
                found[f"{module_name}.{name}"] = obj
    return found


def has_example(obj: object) -> bool:
    return ">>>" in (inspect.getdoc(obj) or "")


def test_the_scan_sees_the_public_api():
    names = public_names()
    # a broken scan (an empty __all__, a wrong module name) would pass the tests below vacuously
    assert len(names) > 100, f"only {len(names)} public classes and functions found"
    assert "probgen.fit" in names and "probgen.data.Dataset" in names and "probgen.models.VAE" in names
    assert not any(inspect.ismodule(obj) for obj in names.values())


def test_every_public_name_has_an_example():
    missing = sorted(name for name, obj in public_names().items() if not has_example(obj))
    assert not missing, f"{len(missing)} public names have no '>>>' docstring example: {', '.join(missing)}"


def _collected(obj: object) -> bool:
    """Whether doctest, run on the module that defines ``obj``, finds and runs ``obj``'s example."""
    module_name = getattr(obj, "__module__", None)
    if module_name not in DOCTESTED:
        return False
    module = importlib.import_module(module_name)
    wanted = f"{module_name}.{obj.__qualname__}"
    return any(t.name == wanted and t.examples for t in doctest.DocTestFinder().find(module))


@pytest.mark.parametrize("module_name", PUBLIC_MODULES)
def test_each_example_is_run_by_the_doctest_suite(module_name):
    module = importlib.import_module(module_name)
    names = [n for n in module.__all__ if (inspect.isclass(o := getattr(module, n)) or inspect.isfunction(o))]
    lost = sorted(n for n in names if has_example(getattr(module, n)) and not _collected(getattr(module, n)))
    assert not lost, (
        f"{module_name}: the examples of {', '.join(lost)} are not collected by tests/test_docstring_examples.py "
        "(the object's __module__ is not walked, or its docstring is inherited rather than its own)"
    )


def test_the_collection_check_can_fail():
    class Local:
        """A class of this test module, which the doctest suite does not walk.

        >>> 1 + 1
        2
        """

    assert has_example(Local) and not _collected(Local)
    assert _collected(probgen.fit) and _collected(probgen.data.Dataset)
