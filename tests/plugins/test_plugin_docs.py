"""Every Python block in docs/plugins.md runs, in order, and prints what its comments say."""

from __future__ import annotations

from guides import DOCS, blocks, run_guide

DOC = DOCS / "plugins.md"


def test_guide_has_examples():
    assert len(blocks(DOC)) >= 10


def test_guide_examples_run_and_print_what_they_say():
    assert run_guide(DOC, "plugins_guide") >= 20
