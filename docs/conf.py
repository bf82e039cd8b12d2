"""Sphinx configuration of the documentation site: MyST-NB for the guides and walkthroughs.

The source directory is the repository root, so the walkthroughs render from
``notebooks/`` and ``CONTRIBUTING.md``/``CHANGELOG.md`` from the root, where they live;
only this configuration sits in ``docs/``. Build (warnings are errors)::

    python -m sphinx -W --keep-going -c docs . docs/_build/html

Notebooks are not executed here: nbval runs them in the test suite, and the site shows
the outputs stored in them.
"""

from __future__ import annotations

import sys
from pathlib import Path

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
include_patterns = ["docs/**.md", "notebooks/*.ipynb", "CONTRIBUTING.md", "CHANGELOG.md"]
# pruned while walking the tree, so the build never descends into them
exclude_patterns = [".*", "**/.*", "**/_build", "build", "dist", "spiraltorch_nb", "tests", "kernels",
                    "widgets", "benchmarks", "node_modules", "test-artifacts", "**/.ipynb_checkpoints",
                    "**/__pycache__"]

# ---- MyST and notebooks ----------------------------------------------------------------
nb_execution_mode = "off"
nb_merge_streams = True
myst_heading_anchors = 3
myst_enable_extensions = ["colon_fence"]
# `[text](#spiraltorch_nb.tensor.Tensor)` resolves to the API page; a missing target is an error
myst_ref_domains = ["std", "py"]

# ---- API reference from numpy-style docstrings -----------------------------------------
# every object is documented once, in the module that defines it (re-exports would
# describe it twice and make cross-references ambiguous)
autodoc_default_options = {"members": True, "show-inheritance": True, "ignore-module-all": True}
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
