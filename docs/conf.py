"""Sphinx configuration of the documentation site: MyST-NB for the guides and walkthroughs.

The source directory is the repository root, so the walkthroughs render from
``notebooks/`` and ``CONTRIBUTING.md``/``CHANGELOG.md`` from the root, where they live;
only this configuration sits in ``docs/``. Build (warnings are errors)::

    python -m sphinx -W --keep-going -c docs . docs/_build/html

Notebooks are not executed here: nbval runs them in the test suite, and the site shows
the outputs stored in them.
"""

from __future__ import annotations

import inspect
import json
import shutil
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import spiraltorch_nb  # noqa: E402

project = "spiraltorch_nb"
author = "spiraltorch_nb contributors"
copyright = "spiraltorch_nb contributors; AGPL-3.0-or-later"  # noqa: A001
release = spiraltorch_nb.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "myst_nb",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
]

# ---- what is read: the guides, the walkthroughs and the two root pages ---------------
root_doc = "docs/index"
include_patterns = ["docs/**.md", "notebooks/*.ipynb", "CONTRIBUTING.md", "DEVELOPERS.md", "CHANGELOG.md"]
# pruned while walking the tree, so the build never descends into them
exclude_patterns = [".*", "**/.*", "**/_build", "build", "dist", "spiraltorch_nb", "tests", "kernels",
                    "widgets", "benchmarks", "node_modules", "test-artifacts", "**/.ipynb_checkpoints",
                    "**/__pycache__"]

# ---- MyST and notebooks ----------------------------------------------------------------
nb_execution_mode = "off"
# widget views need the live kernel's state (not stored): the site shows their text form
nb_mime_priority_overrides = [("html", "application/vnd.jupyter.widget-view+json", None)]
nb_merge_streams = True
myst_heading_anchors = 3
myst_enable_extensions = ["colon_fence"]
# `[text](#spiraltorch_nb.tensor.Tensor)` resolves to the API page; a missing target is an error
myst_ref_domains = ["std", "py"]

# ---- API reference from numpy-style docstrings -----------------------------------------
# every object is documented once, in the module that defines it (re-exports would
# describe it twice and make cross-references ambiguous); public members without a
# docstring are listed too, with their signature
autodoc_default_options = {"members": True, "undoc-members": True, "show-inheritance": True,
                           "ignore-module-all": True}
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_preserve_defaults = True
napoleon_google_docstring = False
napoleon_numpy_docstring = True
# an "Attributes" section becomes a field list, not a second description of a property
napoleon_use_ivar = True
# parameter and return types stay words: as cross-reference fields they are looked up by
# suffix, so "type" or "dtype" would match every attribute of that name; the signature
# above them carries the linked annotations
napoleon_use_param = False
napoleon_use_rtype = False

# ---- HTML ----------------------------------------------------------------------------------
html_theme = "furo"
html_title = f"spiraltorch_nb {release}"
html_copy_source = False
html_show_sourcelink = False


# ---- Plotly figures in the walkthroughs ----------------------------------------------------
PLOTLY_MIME = "application/vnd.plotly.v1+json"


def _plotly_outputs_as_html(app: Any, docname: str, source: list[str]) -> None:
    """Give each stored Plotly figure an HTML rendering, drawn by the site's copy of plotly.js.

    MyST-NB has no renderer for Plotly's own mime type (JupyterLab has), so the figure
    JSON is turned into the HTML a notebook renderer would produce, before parsing.
    """
    if not str(app.env.doc2path(docname)).endswith(".ipynb") or PLOTLY_MIME not in source[0]:
        return
    import plotly.io

    nb = json.loads(source[0])
    for cell in nb.get("cells", []):
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            figure = data.pop(PLOTLY_MIME, None)
            if figure is not None and "text/html" not in data:
                html = plotly.io.to_html(figure, include_plotlyjs=False, full_html=False, validate=False)
                # the theme loads scripts at the end of the page: draw once plotly.js is there
                data["text/html"] = html.replace("<script>", '<script>window.addEventListener("load", () => {', 1)\
                                        .replace("</script>", "});</script>", 1)
    source[0] = json.dumps(nb)


def _copy_plotly_js(app: Any, exception: BaseException | None) -> None:
    if exception is None and app.builder.format == "html":
        import plotly

        bundle = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
        shutil.copy2(bundle, Path(app.outdir) / "_static" / "plotly.min.js")


# ---- API reference: leave out typing helpers ------------------------------------------------
def _skip_typing_helpers(app: Any, what: str, name: str, obj: Any, skip: bool, options: Any) -> bool | None:
    """Module-level type aliases, TypeVars and loggers are not API: leave them out of the reference."""
    import logging
    import types
    import typing

    if what != "module" or inspect.isclass(obj) or inspect.isroutine(obj) or inspect.ismodule(obj):
        return None
    typing_like = (typing.TypeVar, types.UnionType, types.GenericAlias, logging.Logger)
    if isinstance(obj, typing_like) or type(obj).__module__ == "typing":
        return True
    return None


def _builtin_names_resolve_exactly(app: Any, doctree: Any) -> None:
    """Look builtins in annotations up by exact name only.

    Sphinx matches a type in a signature by suffix, so ``type`` in ``type[Plugin]`` would
    match ``Device.type`` and every other attribute called ``type``.
    """
    import builtins

    from sphinx.addnodes import pending_xref

    for node in doctree.findall(pending_xref):
        if node.get("refdomain") == "py" and node.get("reftarget") in vars(builtins):
            node.attributes.pop("refspecific", None)


def setup(app: Any) -> dict[str, Any]:
    app.connect("autodoc-skip-member", _skip_typing_helpers)
    app.connect("doctree-read", _builtin_names_resolve_exactly)
    app.connect("source-read", _plotly_outputs_as_html)
    app.connect("build-finished", _copy_plotly_js)
    app.add_js_file("plotly.min.js")
    return {"parallel_read_safe": True, "parallel_write_safe": True}
