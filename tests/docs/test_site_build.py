"""The documentation site builds with Sphinx in strict mode, and renders what it should.

One build per session (in a subprocess, so the suite's registry state cannot leak in):
warnings are errors. The checks after it look at the output: every guide and
walkthrough has a page, walkthroughs show their stored outputs (they are not executed
again), and every public class and function is in the API reference.
"""

from __future__ import annotations

import html
import importlib
import inspect
import pkgutil
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

import spiraltorch_nb

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
NOTEBOOKS = ROOT / "notebooks"
BUILD_BUDGET_S = 240  # generous: the build takes well under a minute of CPU time


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The built HTML site (built once for this module)."""
    for module in ("sphinx", "myst_nb", "furo"):
        if importlib.util.find_spec(module) is None:
            pytest.fail(f"the docs build needs {module!r}: install the dev extra, pip install -e '.[dev]'")
    out = tmp_path_factory.mktemp("site")
    cmd = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html", "-c", str(DOCS),
           "-d", str(out / "doctrees"), str(ROOT), str(out / "html")]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    elapsed = time.perf_counter() - t0
    print(f"documentation site built in {elapsed:.1f} s")
    if proc.returncode != 0:
        pytest.fail(f"the strict docs build failed (exit {proc.returncode}); each warning is an error:\n"
                    f"{proc.stderr[-8000:]}\n{proc.stdout[-2000:]}\nreproduce with: "
                    f"python -m sphinx -W --keep-going -c docs . docs/_build/html", pytrace=False)
    assert elapsed < BUILD_BUDGET_S, f"the docs build took {elapsed:.0f} s; it should stay under a minute or two"
    return out / "html"


def test_every_guide_and_walkthrough_has_a_page(site: Path) -> None:
    guides = sorted(p.stem for p in DOCS.glob("*.md"))
    notebooks = sorted(p.stem for p in NOTEBOOKS.glob("*.ipynb"))
    assert guides and notebooks
    missing = [f"docs/{g}.md" for g in guides if not (site / "docs" / f"{g}.html").is_file()]
    missing += [f"notebooks/{n}.ipynb" for n in notebooks if not (site / "notebooks" / f"{n}.html").is_file()]
    missing += [f"{name}.md" for name in ("CONTRIBUTING", "CHANGELOG") if not (site / f"{name}.html").is_file()]
    assert not missing, f"no page was built for {missing}"


def test_walkthroughs_show_their_stored_outputs(site: Path) -> None:
    import nbformat

    for path in sorted(NOTEBOOKS.glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        texts = [o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
                 if o.get("output_type") == "stream" and o.get("name") == "stdout"]
        lines = [ln.strip() for t in texts for ln in t.splitlines() if len(ln.strip()) > 12 and "<" not in ln]
        assert lines, f"{path.name} has no stored printed output to look for"
        page = (site / "notebooks" / f"{path.stem}.html").read_text(encoding="utf-8")
        rendered = html.unescape(re.sub(r"<[^>]+>", "", page))
        assert lines[-1] in rendered, f"{path.name}: its last stored output line {lines[-1]!r} is not on its page"


def _public_objects() -> dict[str, str]:
    """Canonical ``module.qualname`` of every public class and function, by where it is reachable."""
    found: dict[str, str] = {}
    names = [spiraltorch_nb.__name__] + [m.name for m in pkgutil.walk_packages(spiraltorch_nb.__path__,
                                                                              "spiraltorch_nb.")]
    for name in names:
        if any(part.startswith("_") for part in name.split(".")[1:]):
            continue
        module = importlib.import_module(name)
        for attr in getattr(module, "__all__", ()):
            obj = getattr(module, attr, None)
            if not (inspect.isclass(obj) or inspect.isfunction(obj)):
                continue
            owner = getattr(obj, "__module__", "") or ""
            if not owner.startswith("spiraltorch_nb"):
                continue
            found.setdefault(f"{owner}.{obj.__qualname__}", f"{name}.{attr}")
    return found


def test_api_reference_documents_every_public_class_and_function(site: Path) -> None:
    from sphinx.util.inventory import InventoryFile

    with open(site / "objects.inv", "rb") as f:
        inv = InventoryFile.load(f, "", lambda base, uri: uri)
    documented = set()
    for kind, entries in (inv.data if hasattr(inv, "data") else inv).items():
        if kind.startswith("py:"):
            documented.update(entries)
    public = _public_objects()
    assert len(public) > 100
    missing = sorted(f"{reachable} (defined as {canonical})" for canonical, reachable in public.items()
                     if canonical not in documented)
    assert not missing, ("public objects missing from the API reference (give them a docstring, and an "
                         "automodule or autoclass line in docs/api/<area>.md): " + ", ".join(missing))


def test_every_public_module_has_an_api_page() -> None:
    pages = "\n".join(p.read_text(encoding="utf-8") for p in (DOCS / "api").glob("*.md"))
    documented = set(re.findall(r"^\.\. automodule:: (\S+)", pages, flags=re.M))
    modules = [m.name for m in pkgutil.walk_packages(spiraltorch_nb.__path__, "spiraltorch_nb.")
               if not any(part.startswith("_") for part in m.name.split(".")[1:])]
    missing = sorted(set(modules) - documented)
    assert len(modules) > 50
    assert not missing, f"add '.. automodule:: <name>' for these modules to the right docs/api/*.md page: {missing}"
