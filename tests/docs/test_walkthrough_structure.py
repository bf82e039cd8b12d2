"""Every walkthrough ends with a runnable result and a Troubleshooting section.

Also: the glossary covers the concepts the guides use, each with the code it maps onto.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
_TROUBLESHOOTING = re.compile(r"^#{1,6}\s+Troubleshooting\b", flags=re.M)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_walkthrough_has_a_troubleshooting_section(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    sections = [c for c in nb.cells if c.cell_type == "markdown" and _TROUBLESHOOTING.search(c.source)]
    assert sections, f"{path.name} needs a markdown cell with a '## Troubleshooting' heading"
    assert "|" in sections[-1].source or "- " in sections[-1].source, (
        f"{path.name}: the Troubleshooting section should list errors and fixes (a table or a list)")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_walkthrough_ends_with_a_runnable_result(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    code = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and c.source.strip()]
    assert code, f"{path.name} has no code"
    trouble = max((i for i, c in enumerate(nb.cells) if c.cell_type == "markdown" and _TROUBLESHOOTING.search(c.source)),
                  default=len(nb.cells))
    before = [i for i in code if i < trouble]
    assert before, f"{path.name}: the result should come before the Troubleshooting section"
    last = nb.cells[before[-1]]
    assert last.get("outputs"), (f"{path.name}: the last code cell before Troubleshooting has no stored output; "
                                 "end with a cell that shows the result, then re-execute the notebook")
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors, f"{path.name} has stored error outputs; the walkthrough should run cleanly"


GLOSSARY_TERMS = (
    "tensor", "backend", "device", "dtype promotion", "dispatch", "tape", "node", "hypergradient",
    "create_graph", "operator registry", "operator builder", "composite op", "fused kernel", "plugin",
    "capability (plugin)", "capability (backend)", "event bus", "service", "plugin context", "undo log",
    "sequencer", "module discovery", "pipeline config", "telemetry frame", "recorder", "Chrome trace",
    "widget", "background fit", "checkpoint", "key map", "conformance suite",
)


def test_glossary_defines_each_concept_with_its_code() -> None:
    text = (ROOT / "docs" / "glossary.md").read_text(encoding="utf-8")
    entries = {m.group(1).strip(): m.group(2) for m in
               re.finditer(r"^### ([^\n]+)\n(.*?)(?=^##|\Z)", text, flags=re.M | re.S)}
    missing = [t for t in GLOSSARY_TERMS if t not in entries]
    assert not missing, f"docs/glossary.md lacks entries for {missing}"
    no_code = [t for t, body in entries.items() if "In code:" not in body]
    assert not no_code, f"glossary entries without an 'In code:' line naming the class or module: {no_code}"
