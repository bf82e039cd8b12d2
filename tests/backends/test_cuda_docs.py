"""Every Python block in docs/cuda.md runs, in order, and prints what its comments say.

A block whose first line is ``# needs a GPU`` (``# needs torch``, ``# needs jax``) is
skipped where that is missing; ``print(...)  # text`` means the call prints ``text``
(the runner in ``tests/guides.py``).
"""

from __future__ import annotations

import importlib.util

from guides import DOCS, blocks, run_guide

from spiraltorch_nb.backends import probe

DOC = DOCS / "cuda.md"


def _missing(source: str) -> str | None:
    """Why a block cannot run here, or None."""
    first_line = source.splitlines()[0].strip()
    if first_line == "# needs a GPU":
        info = probe("cuda")
        return None if info["available"] else f"cuda unavailable: {info['reason']}"
    if first_line == "# needs torch":
        return None if importlib.util.find_spec("torch") else "torch is not installed"
    if first_line == "# needs jax":
        return None if importlib.util.find_spec("jax") else "jax is not installed"
    return None


def test_guide_has_examples_for_every_machine() -> None:
    found = blocks(DOC)
    assert len(found) >= 6
    assert sum(not b.startswith("# needs") for b in found) >= 3, "the guide needs blocks that run without a GPU"


def test_guide_examples_run_and_print_what_they_say() -> None:
    skipped: list[str] = []
    checked = run_guide(DOC, "cuda_guide", skip=_missing, skipped=skipped)
    assert checked >= 5, f"only {checked} printed claims were checked ({'; '.join(skipped)})"
