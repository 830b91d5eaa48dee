"""Sphinx configuration of probgen's documentation site.

Build it with ``pip install -e ".[docs]" && make -C docs html`` (warnings are errors). Nothing is
fetched at build time: intersphinx reads the inventories in ``docs/_inventories/``, and the
tutorials are notebooks generated here from ``examples/*.py`` with jupytext and executed by
myst-nb at the examples' ``--quick`` budget. Why Sphinx, furo and myst-nb: ``why-sphinx.md``.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import os
import re
import sys
import textwrap
import types
from pathlib import Path

import jupytext
import nbformat
from sphinx.util import logging as sphinx_logging

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
# The checkout's probgen, for autodoc and for the kernels that run the tutorials (they inherit
# the environment), even where the package is not pip-installed; examples/ for the helpers the
# examples import from beside them (as a script run from there would).
sys.path.insert(0, str(ROOT))
_paths = (str(ROOT), str(ROOT / "examples"), os.environ.get("PYTHONPATH"))
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in _paths if p)
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("TQDM_DISABLE", "1")  # the executed tutorials show their numbers, not progress bars

import probgen  # noqa: E402

# --- The things a contributor edits -----------------------------------------------------------

#: Tutorials, in site order: adding one is one line (the name of an ``examples/<name>.py``).
TUTORIALS = [
    "factorized",
    "naive_bayes",
    "vae",
]

#: The modules whose ``__all__`` the API reference documents, name by name.
API_MODULES = ["probgen", "probgen.models", "probgen.inference", "probgen.data", "probgen.experiments"]

#: Pages other engineers are writing: the toctree names them, and the build drops an entry (with
#: a note) while its file does not exist yet.
OPTIONAL_PAGES = ["families", "bring-your-own-model"]

#: The parser the CLI page documents: the one the ``probgen`` command runs (the docs' only
#: reference to it; ``cli.md`` names the escaped copy below).
CLI_PARSER = "probgen.cli:build_parser"

#: TEMPORARY: public names whose docstrings break a warnings-as-errors build, excluded from the
#: API reference until they are fixed in probgen/ (each with its problem). Keep this empty.
API_EXCLUDE: dict[str, str] = {}
#: TEMPORARY: references in probgen's docstrings to names that have no documentation entry (the
#: build would fail on each), until they are fixed in probgen/. Keep this empty.
BROKEN_REFERENCES: list[tuple[str, str]] = []

# --- Project --------------------------------------------------------------------------------

project = "probgen"
author = "the probgen developers"
copyright = "the probgen developers, MIT licence"  # noqa: A001 (Sphinx's name)
release = version = probgen.__version__
smartquotes_action = "qe"  # quotes and ellipses; "--data" in the CLI's help stays two hyphens

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.intersphinx",
    "sphinx.ext.viewcode",
    "myst_nb",
    "sphinxarg.ext",
]
exclude_patterns = [
    "api/_pages.rst",
    "api/model-table.rst",
    "api/config-options.rst",
    "_build",
    "Thumbs.db",
    ".DS_Store",
    "**.ipynb_checkpoints",
    "_inventories",
]
templates_path = ["api/_templates"]
html_theme = "furo"
html_title = f"probgen {release}"
html_static_path = ["_static"]
html_css_files = ["probgen.css"]
# Only warnings that say something about the docs: the README's badges or the like are not ours.
suppress_warnings: list[str] = []

# Warnings are errors (the Makefile passes -W --keep-going); nitpicky so that every reference
# to a probgen object must resolve. References to other projects resolve through the shipped
# inventories; a name outside probgen that no inventory lists is left as plain text instead of
# failing the build (the inventories list what the docs are expected to link).
nitpicky = True
nitpick_ignore_regex = [(r"py:.*", r"(?!probgen\b)[\w.]+\.[\w.]+")]  # dotted names of other projects
nitpick_ignore = [("py:class", "optional"), *BROKEN_REFERENCES]  # napoleon's "(int, optional)"
if os.environ.get("PROBGEN_DOCS_ALL_REFS"):  # list every unresolved name, to extend the inventories
    nitpick_ignore_regex = []

# --- MyST and notebooks -----------------------------------------------------------------------

myst_enable_extensions = ["colon_fence", "deflist", "dollarmath"]
myst_heading_anchors = 3
# "cache": a rebuild re-runs only the tutorials whose code changed (jupyter-cache in _build).
nb_execution_mode = "cache"
nb_execution_raise_on_error = True  # a tutorial that raises fails the build
nb_execution_show_tb = True
nb_execution_timeout = 900
nb_execution_in_temp = True  # the examples' --out folders land in a temporary directory
# Each output as the kernel sent it: the page then shows exactly what the executed notebook holds
# (merging rewrites the saved notebook's outputs in place), which tests/test_docs_site.py checks.
nb_merge_streams = False

# --- autodoc ------------------------------------------------------------------------------------

autosummary_generate = ["api/_pages.rst"]  # written by write_api_pages(); not a page itself
autosummary_imported_members = True
autodoc_default_options = {"members": True, "show-inheritance": True}
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_typehints_description_target = "documented_params"
autodoc_typehints_format = "short"
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False
napoleon_use_ivar = True  # "Attributes:" as fields: the `#:` comments already make the entries
# An override without a docstring shows nothing new (its base class documents it), and torch's
# docstrings (load_state_dict, ...) are written for torch's site, not this one.
autodoc_inherit_docstrings = False

# --- intersphinx, offline -----------------------------------------------------------------------

intersphinx_mapping = {
    name: (url, str(DOCS / "_inventories" / f"{name}.inv"))
    for name, url in {
        "python": "https://docs.python.org/3/",
        "torch": "https://docs.pytorch.org/docs/stable/",
        "pyro": "https://docs.pyro.ai/en/stable/",
        "arviz": "https://python.arviz.org/en/stable/",
        "numpy": "https://numpy.org/doc/stable/",
    }.items()
}
intersphinx_disabled_reftypes = ["std:doc"]
intersphinx_timeout = 1  # never waited on: every inventory is a local file


# --- Generated sources --------------------------------------------------------------------------


def _write_if_changed(path: Path, text: str) -> None:
    """Rewrite a generated file only when its text changes, so Sphinx (and jupyter-cache) see an
    unchanged file as unchanged and an incremental build stays incremental."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists() or path.read_text(encoding="utf-8") != text:
        path.write_text(text, encoding="utf-8")


def _public_names(module_name: str) -> list[str]:
    module = importlib.import_module(module_name)
    if not hasattr(module, "__all__"):
        raise RuntimeError(f"{module_name} has no __all__: the API reference is driven by it")
    return list(module.__all__)


def _canonical_pages() -> dict[int, str]:
    """Where each public object is documented: under the first module (after ``probgen`` itself,
    which re-exports) whose ``__all__`` names it, so that no object has two pages."""
    home: dict[int, str] = {}
    for module_name in [*API_MODULES[1:], API_MODULES[0]]:
        module = importlib.import_module(module_name)
        for name in _public_names(module_name):
            home.setdefault(id(getattr(module, name)), f"{module_name}.{name}")
    return home


def _summary(obj: object, name: str) -> str:
    """The first sentence of an object's docstring, cut at a full stop outside ``literals`` (the
    module pages' tables; autosummary's own cut splits ``x = f(. ...)`` inside a literal)."""
    doc = inspect.getdoc(obj) if callable(obj) or inspect.ismodule(obj) else None
    text = doc or " ".join(_defining_comment(obj, name))
    paragraph = " ".join(text.strip().split("\n\n")[0].split())
    for match in re.finditer(r"\.(\s|$)", paragraph):
        head = paragraph[: match.start() + 1]
        if head.count("``") % 2 == 0:
            return head
    return paragraph


def write_api_pages() -> None:
    """One page per module in ``API_MODULES``: its docstring, then a table of its ``__all__``
    linking each name to its own page (signature, docstring, example), which autosummary
    generates from ``api/_pages.rst``. A name another module documents links to that page."""
    home = _canonical_pages()
    pages = []
    for module_name in API_MODULES:
        module = importlib.import_module(module_name)
        own, elsewhere, submodules = [], [], []
        for name in _public_names(module_name):
            full = f"{module_name}.{name}"
            if full in API_EXCLUDE:
                continue
            obj = getattr(module, name)
            if inspect.ismodule(obj) and obj.__name__ in API_MODULES:
                submodules.append(obj.__name__)
            elif home[id(obj)] == full:
                own.append(name)
            else:
                elsewhere.append((name, home[id(obj)]))
        lines = [module_name, "=" * len(module_name), "", f".. automodule:: {module_name}", "   :no-members:", ""]
        if submodules:
            lines += ["Subpackages: " + ", ".join(f":mod:`{m}`" for m in submodules) + ".", ""]
        rows = [(f":py:obj:`{n} <{module_name}.{n}>`", _summary(getattr(module, n), n)) for n in own]
        rows += [(f":py:obj:`{n} <{target}>`", f"``{target}``") for n, target in elsewhere]
        if rows:
            lines += [".. list-table::", "   :widths: 30 70", "   :class: api-summary", ""]
            for link, summary in rows:
                lines += [f"   * - {link}", f"     - {summary}"]
            lines += [""]
        if own:
            lines += [".. toctree::", "   :hidden:", "", *(f"   generated/{module_name}.{n}" for n in own), ""]
            pages += [f".. currentmodule:: {module_name}", "", ".. autosummary::", "   :toctree: generated", ""]
            pages += [f"   {n}" for n in own] + [""]
        _write_if_changed(DOCS / "api" / f"{module_name}.rst", "\n".join(lines))
    _write_if_changed(DOCS / "api" / "_pages.rst", "\n".join(pages))


def write_model_table() -> None:
    """The registry as a table for the front page (``api/model-table.rst``, generated)."""
    from probgen.models import MODELS

    documented = set(_public_names("probgen.models"))
    rows = []
    for name, spec in sorted(MODELS.items()):
        cls = spec.cls.__name__
        link = f":class:`~probgen.models.{cls}`" if cls in documented else f"``{cls}``"
        rows.append(
            f"   * - ``{name}``\n     - {'/'.join(spec.cls.supports)}\n     - {link}\n     - {spec.description}"
        )
    header = [".. list-table::", "   :header-rows: 1", "", "   * - name\n     - data\n     - class\n     - what it is"]
    _write_if_changed(DOCS / "api" / "model-table.rst", "\n".join(header + rows) + "\n")


def write_config_options() -> None:
    """The fit options a run config may set, with what each must be (``api/config-options.rst``)."""
    from probgen.experiments.config import EVAL_METHODS, FIT_OPTIONS, PREPROCESS

    rows = [f"   * - ``{key}``\n     - {expected}" for key, (expected, _check) in FIT_OPTIONS.items()]
    lines = [".. list-table::", "   :header-rows: 1", "", "   * - key\n     - expected", *rows, ""]
    lines += [f"``[eval] method`` is one of {', '.join(f'``{m}``' for m in EVAL_METHODS)};"]
    lines += [f"``[data] preprocess`` one of {', '.join(f'``{p}``' for p in PREPROCESS)}.", ""]
    _write_if_changed(DOCS / "api" / "config-options.rst", "\n".join(lines))


def _tutorial_notebook(name: str) -> nbformat.NotebookNode:
    """The notebook of ``examples/<name>.py``: its docstring as the text, its code as cells
    (jupytext's light format), then a cell that runs ``main()`` at the ``--quick`` budget and one
    that shows the figures it wrote. The example stays the only source."""
    source = ROOT / "examples" / f"{name}.py"
    nb = jupytext.read(source, fmt="py:light")
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    doc_cell, code = code[0], code[1:]
    docstring = eval(doc_cell.source, {})  # the module docstring literal, as Python reads it
    if not isinstance(docstring, str):
        raise RuntimeError(f"examples/{name}.py must open with its docstring (the tutorial's text)")
    # The script's `if __name__ == "__main__": main()` would run under the kernel's argv.
    code = [cell for cell in code if not cell.source.lstrip().startswith("if __name__")]
    title, _, body = docstring.partition("\n")
    title = title.removeprefix("Tutorial:").strip().rstrip(".")
    text = (
        f"# {title[:1].upper()}{title[1:]}\n{body}\n\n"
        f"This page is `examples/{name}.py`, run at its `--quick` budget when the site was built; "
        f"run `python examples/{name}.py` for the full budget."
    )
    out = f"tutorial-output/{name}"
    cells = [
        nbformat.v4.new_markdown_cell(text),
        # What `__doc__` is in the script (its argparse description reads it); tqdm's complaint
        # that a kernel has no ipywidgets is about the kernel, not the tutorial.
        nbformat.v4.new_code_cell(
            f'import warnings\n\nwarnings.filterwarnings("ignore", message="IProgress not found")\n'
            f"__doc__ = {docstring!r}",
            metadata={"tags": ["remove-cell"]},
        ),
        *(nbformat.v4.new_code_cell(cell.source) for cell in code),
        nbformat.v4.new_markdown_cell("## Run"),
        nbformat.v4.new_code_cell(f'import sys\n\nsys.argv = ["{name}.py", "--quick", "--out", "{out}"]\nmain()'),
        nbformat.v4.new_markdown_cell("## Figures"),
        nbformat.v4.new_code_cell(
            "from IPython.display import Image, display\n\n"
            f'for png in sorted(Path("{out}").glob("*.png")):\n    display(Image(filename=png))',
            metadata={"tags": ["remove-input"]},
        ),
    ]
    notebook = nbformat.v4.new_notebook(cells=cells)
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    notebook.metadata["language_info"] = {"name": "python"}
    return notebook


def write_tutorials() -> None:
    """Generate ``tutorials/<name>.ipynb`` for each of ``TUTORIALS`` (gitignored: generated)."""
    for name in TUTORIALS:
        notebook = _tutorial_notebook(name)
        for index, cell in enumerate(notebook.cells):
            cell["id"] = f"{name}-{index}"  # stable ids: an unchanged example gives an unchanged file
        _write_if_changed(DOCS / "tutorials" / f"{name}.ipynb", nbformat.writes(notebook) + "\n")
    for stale in (DOCS / "tutorials").glob("*.ipynb"):
        if stale.stem not in TUTORIALS:
            stale.unlink()


def _drop_absent_optional_pages(app, docname: str, source: list[str]) -> None:
    """Drop toctree lines (and {doc} links) naming an optional page that is not written yet."""
    if docname != "index":
        return
    text = source[0]
    for page in OPTIONAL_PAGES:
        if not (DOCS / f"{page}.md").exists():
            logger.info(f"note: docs/{page}.md does not exist yet; left out of the toctree")
            text = "".join(line for line in text.splitlines(keepends=True) if line.strip() != page)
            text = text.replace(f"{{doc}}`{page}`", f"`{page}` (to come)")
    source[0] = text


def _rst_escape(text: str | None) -> str | None:
    """Help text as literal reStructuredText: sphinx-argparse parses it as markup, and "IDX
    *-idx1-ubyte" would open an emphasis."""
    if not text:
        return text
    return text.replace("\\", "\\\\").replace("*", "\\*").replace("`", "\\`").replace("|", "\\|")


def cli_parser_for_docs() -> argparse.ArgumentParser:
    """:data:`CLI_PARSER`'s parser with its help texts escaped for sphinx-argparse, and a
    pre-formatted epilog (the examples of ``probgen fit --help``) kept as a literal block."""
    module_name, _, function = CLI_PARSER.partition(":")
    parser = getattr(importlib.import_module(module_name), function)()

    def escape(p: argparse.ArgumentParser) -> None:
        p.description = _rst_escape(p.description)
        if p.epilog and issubclass(p.formatter_class, argparse.RawDescriptionHelpFormatter):
            p.epilog = "::\n\n" + textwrap.indent(textwrap.dedent(p.epilog).strip("\n"), "    ")
        else:
            p.epilog = _rst_escape(p.epilog)
        for action in p._actions:
            action.help = _rst_escape(action.help)
            if isinstance(action, argparse._SubParsersAction):
                for choice in action._choices_actions:
                    choice.help = _rst_escape(choice.help)
                for sub in dict.fromkeys(action.choices.values()):
                    escape(sub)

    escape(parser)
    return parser


def _napoleon_prose_attributes(app, what, name, obj, options, lines) -> None:
    """napoleon, except that an attribute's or property's docstring is read as prose: here it
    never has napoleon's "type: description" first line (type hints give the type), and reading
    "The ordering o: ``order[i]`` is ..." that way makes "The ordering o" a type."""
    from sphinx.ext.napoleon import _process_docstring

    _process_docstring(app, "method" if what in ("attribute", "property", "data") else what, name, obj, options, lines)


def _warn_missing_docstring(app, what, name, obj, options, lines) -> None:
    """A public name without a docstring is a warning (so an error under -W). A module-level
    constant has none of its own unless a ``#:`` comment gives one: autodoc would show its type's
    (dict's), which is dropped here."""
    if (
        what == "data"
        and not isinstance(obj, type)
        and lines
        and "\n".join(lines).strip() == (inspect.cleandoc(type(obj).__doc__ or ""))
    ):
        lines.clear()
    if what == "data" and not lines:  # a `#:` comment where the constant is defined
        lines.extend(_defining_comment(obj, name.rpartition(".")[2]))
    if name in _PUBLIC and not any(line.strip() for line in lines):
        logger.warning(f"public name {name} has no docstring (a docstring, or a `#:` comment above a constant)")


def _defining_comment(obj: object, name: str) -> list[str]:
    """The ``#:`` comment of a constant in the probgen module that defines it (autodoc reads
    only the module it documents, and ``probgen.data`` re-exports what ``bundled.py`` defines)."""
    from sphinx.pycode import ModuleAnalyzer

    for mod_name, mod in list(sys.modules.items()):
        if mod_name.startswith("probgen") and getattr(mod, name, None) is obj:
            try:
                comment = ModuleAnalyzer.for_module(mod_name).find_attr_docs().get(("", name))
            except Exception:  # noqa: BLE001 (a module without source: nothing to read)
                continue
            if comment:
                return list(comment)
    return []


def _import_path(dotted: str) -> object | None:
    """The object a dotted name names (a module, or attributes walked from one), or None."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for part in parts[cut:]:
            obj = getattr(obj, part, _MISSING)
            if obj is _MISSING:
                return None
        return obj
    return None


def _resolve_probgen_reference(app, env, node, contnode):
    """A reference that Sphinx could not resolve, to a probgen object: if the object is
    documented under its public name (``probgen.fit`` is :func:`probgen.inference.fit`;
    ``probgen.models.flows.Flow`` is ``probgen.models.Flow``), link there; if it exists but is
    not public (a private hook, a helper, a TypeVar), show the name as code, unlinked. A name
    that names nothing stays a warning, i.e. an error."""
    if node.get("refdomain") != "py" or node["reftarget"] in ("optional",):
        return None
    target = node["reftarget"].lstrip("~.")
    module, cls = node.get("py:module"), node.get("py:class")
    documented = _import_path(node["refdoc"].rpartition("/")[2]) if "/generated/" in node["refdoc"] else None
    scopes = [f"{module}.{cls}" if module and cls else None, module]
    for obj in (documented, _import_path(f"{module}.{cls}") if module and cls else None):
        if inspect.ismodule(obj):  # e.g. the page of probgen.inference.compare, function and module
            scopes.append(obj.__name__)
        elif obj is not None and getattr(obj, "__module__", None):
            scopes += [f"{obj.__module__}.{getattr(obj, '__qualname__', '')}".rstrip("."), obj.__module__]
    candidates = [target] + [f"{scope}.{target}" for scope in scopes if scope]
    for candidate in candidates:
        if not candidate.startswith("probgen"):
            continue
        obj = _import_path(candidate)
        if obj is None:
            continue
        parts = candidate.split(".")
        for cut in range(len(parts), 1, -1):  # the longest documented prefix, then the rest
            home = _CANONICAL.get(id(_import_path(".".join(parts[:cut]))))
            if home:
                new_target = ".".join([home, *parts[cut:]])
                domain = env.get_domain("py")
                found = domain.resolve_xref(
                    env, node["refdoc"], app.builder, node["reftype"], new_target, node, contnode
                )
                if found is not None:
                    return found
                break
        UNLINKED.add(candidate)
        return contnode  # it exists: not a broken reference, just not a public page
    # A name imported only for type checking (a hint such as `Posterior | None`): the one
    # probgen module that defines a class or function of that name.
    if "." not in target:
        owners = {
            f"{mod_name}.{target}"
            for mod_name, mod in list(sys.modules.items())
            if mod_name.startswith("probgen") and inspect.isclass(getattr(mod, target, None))
        }
        if len({id(_import_path(owner)) for owner in owners}) == 1:
            UNLINKED.add(owners.pop())
            return contnode
    return None


# sphinx-argparse imports the parser factory by module name: cli.md names this one.
sys.modules["probgen_docs_cli"] = types.ModuleType("probgen_docs_cli")
sys.modules["probgen_docs_cli"].parser = cli_parser_for_docs
_MISSING = object()
logger = sphinx_logging.getLogger("probgen-docs")
#: the names documented in the API reference, and where each object is documented
_PUBLIC = {f"{m}.{n}" for m in API_MODULES for n in _public_names(m)}
_CANONICAL = _canonical_pages()
#: probgen names referenced in docstrings that exist but have no page (shown unlinked)
UNLINKED: set[str] = set()

write_api_pages()
write_model_table()
write_config_options()
write_tutorials()


def setup(app) -> None:
    app.connect("source-read", _drop_absent_optional_pages)
    # index's toctree depends on which optional pages exist: re-read it on every build.
    app.connect("env-get-outdated", lambda app, env, added, changed, removed: ["index"])
    from sphinx.ext.napoleon import _process_docstring

    app.setup_extension("sphinx.ext.napoleon")
    for listener in list(app.events.listeners["autodoc-process-docstring"]):
        if listener.handler is _process_docstring:
            app.disconnect(listener.id)
    app.connect("autodoc-process-docstring", _napoleon_prose_attributes)
    app.connect("autodoc-process-docstring", _warn_missing_docstring, priority=900)
    app.connect("missing-reference", _resolve_probgen_reference)
