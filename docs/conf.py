"""Sphinx configuration of the documentation site (MyST-NB for Markdown guides and notebooks).

The source directory is the repository root, so the walkthroughs in ``notebooks/`` and
``CONTRIBUTING.md``/``CHANGELOG.md`` render where they live; this file stays in ``docs/``::

    python -m sphinx -W --keep-going -c docs . docs/_build/html
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
copyright = "spiraltorch_nb contributors, AGPL-3.0-or-later"  # noqa: A001
release = spiraltorch_nb.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "myst_nb",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
]

root_doc = "docs/index"
include_patterns = ["docs/**.md", "notebooks/*.ipynb", "CONTRIBUTING.md", "CHANGELOG.md"]
exclude_patterns = [".*", "**/.*", "docs/_build", "build", "dist", "spiraltorch_nb", "tests", "kernels",
                    "widgets", "benchmarks", "node_modules", "test-artifacts", "**/.ipynb_checkpoints"]

# the walkthroughs are executed by nbval in the test suite; the site shows their stored outputs
nb_execution_mode = "off"
myst_heading_anchors = 3
myst_enable_extensions = ["colon_fence"]

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "show-inheritance": True, "ignore-module-all": True}
napoleon_google_docstring = False
napoleon_numpy_docstring = True

html_theme = "alabaster"
html_title = f"spiraltorch_nb {release}"
