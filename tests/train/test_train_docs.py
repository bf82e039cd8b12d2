"""Every Python block in docs/training.md runs, in order, and prints what its comments say."""

from __future__ import annotations

from guides import DOCS, run_guide


def test_training_guide_examples_run_and_print_what_they_say() -> None:
    assert run_guide(DOCS / "training.md", "training_guide") >= 12
