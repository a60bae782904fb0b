"""Sphinx configuration of the alibi-countergan documentation (built by ``tox -e docs``).

Prose pages are MyST Markdown; the pages under ``examples/`` and ``theorem.md`` are MyST-NB text
notebooks that are executed on every build (an error in a cell fails the build). The API
reference is generated from the installed package: :func:`write_api_pages` writes one page per
public module into ``api/`` (ignored by git) before Sphinx reads the sources, so a module added
to the package appears in the reference without editing the docs.
"""

import importlib
import inspect
import os
import pkgutil
from pathlib import Path
from typing import List, Tuple

# Imported before autodoc installs its mocks, so that alibi (and what it imports) are the real modules.
import alibi_countergan

DOCS = Path(__file__).resolve().parent

project = "alibi-countergan"
author = "alibi-countergan developers"
copyright = "alibi-countergan developers"
release = alibi_countergan.__version__
version = release

extensions = [
    "myst_nb",  # MyST Markdown and executed text notebooks (includes myst_parser)
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
]

exclude_patterns = ["_build", "Thumbs.db", ".DS_Store", "**/.ipynb_checkpoints"]

# -- MyST -----------------------------------------------------------------------------------------
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist"]
myst_heading_anchors = 3
myst_dmath_double_inline = True

# -- MyST-NB: execute every notebook page on every build, and fail on the first error -------------
nb_execution_mode = "force"
nb_execution_raise_on_error = True
nb_execution_show_tb = True
nb_execution_timeout = 900  # seconds per cell; the MNIST training cell is the longest (about a minute)
nb_merge_streams = True
# The notebooks' kernels inherit this process's environment. With MPLBACKEND=Agg (tox sets it for the build,
# which needs no display) a kernel's plt.show() draws nothing and every figure is silently missing from the
# pages; the inline backend makes figures cell outputs. Matplotlib already imported here keeps its backend.
os.environ["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"

# -- autodoc / napoleon ---------------------------------------------------------------------------
autodoc_mock_imports = ["tensorflow", "mlserver", "mlserver_alibi_explain", "fastapi"]
autodoc_default_options = {"member-order": "bysource"}
autodoc_typehints = "signature"
autodoc_class_signature = "mixed"
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_rtype = False
napoleon_preprocess_types = False

# -- HTML -----------------------------------------------------------------------------------------
html_theme = "furo"
html_title = f"alibi-countergan {release}"
html_static_path: List[str] = []


# -- API pages, generated from the package ----------------------------------------------------------


def public_modules(package: str = "alibi_countergan") -> List[Tuple[str, bool]]:
    """``(dotted name, is a package)`` of the package's public modules (no leading underscore).

    Only packages are imported to find their modules (``__main__`` would run the demo).
    """
    root = importlib.import_module(package)
    found = [(package, True)]
    for info in pkgutil.walk_packages(root.__path__, prefix=package + "."):
        if not any(part.startswith("_") for part in info.name.split(".")):
            found.append((info.name, info.ispkg))
    return sorted(found)


def _page(module: str, is_package: bool) -> str:
    title = f"``{module}``"
    lines = [title, "=" * len(title), ""]
    if not is_package:
        lines += [f".. automodule:: {module}", "   :members:", "   :show-inheritance:", ""]
        return "\n".join(lines)
    # A package page documents what the package defines itself, and links to the modules that
    # define what it re-exports (documenting a re-export twice makes cross-references ambiguous).
    mod = importlib.import_module(module)
    own, reexported, values = [], [], []
    for name in getattr(mod, "__all__", []):
        obj = getattr(mod, name)
        if inspect.isclass(obj) or inspect.isfunction(obj):
            (own if obj.__module__ == module else reexported).append((name, obj.__module__))
        elif name.startswith("__"):
            values.append(name)  # e.g. __version__: a plain value without a docstring
        else:
            own.append((name, module))
    lines += [f".. automodule:: {module}"]
    if own:
        lines += ["   :members: " + ", ".join(name for name, _ in own)]
    lines += [""]
    if reexported or values:
        lines += ["Names re-exported here:", ""]
        for name, origin in reexported:
            kind = "class" if inspect.isclass(getattr(mod, name)) else "func"
            lines += [f"- :py:{kind}:`{name} <{origin}.{name}>` (defined in :py:mod:`{origin}`)"]
        for name in values:
            lines += [f"- ``{name}`` = ``{getattr(mod, name)!r}``"]
        lines += [""]
    return "\n".join(lines)


def write_api_pages() -> None:
    """Write ``api/<module>.rst`` for every public module, removing pages of modules that are gone."""
    out = DOCS / "api"
    out.mkdir(exist_ok=True)
    wanted = {f"{m}.rst": _page(m, is_package) for m, is_package in public_modules()}
    for stale in out.glob("*.rst"):
        if stale.name not in wanted:
            stale.unlink()
    for name, text in wanted.items():
        path = out / name
        if not path.is_file() or path.read_text() != text:  # unchanged pages keep their timestamp
            path.write_text(text)


write_api_pages()
