"""Every Python block in docs/telemetry.md runs, in order, and prints what its comments say."""

from __future__ import annotations

from guides import DOCS, blocks, run_guide

from spiraltorch_nb.ops import registry

DOC = DOCS / "telemetry.md"


def test_guide_has_examples():
    assert len(blocks(DOC)) >= 10


def test_guide_examples_run_and_print_what_they_say():
    try:
        assert run_guide(DOC, "telemetry_guide") >= 25
    finally:  # the guide registers a custom op; leave the global registry as it was
        if "doc_cube" in registry.global_operator_registry():
            registry.global_operator_registry().unregister("doc_cube")
