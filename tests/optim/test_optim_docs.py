"""Every Python block in docs/hypergradients.md runs, in order, and prints what its comments say."""

from __future__ import annotations

from guides import DOCS, run_guide


def test_hypergradient_guide_examples_run_and_print_what_they_say() -> None:
    assert run_guide(DOCS / "hypergradients.md", "hypergradient_guide") >= 9
