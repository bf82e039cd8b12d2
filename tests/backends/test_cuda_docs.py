"""Every Python block in docs/cuda.md runs, in order, and prints what its comments say.

A block whose first line is ``# needs a GPU`` (``# needs torch``, ``# needs jax``) is
skipped where that is missing; ``print(...)  # text`` means the call prints ``text``.
"""

from __future__ import annotations

import builtins
import importlib.util
import re
import sys
from pathlib import Path

import pytest

from spiraltorch_nb.backends import probe

DOC = Path(__file__).resolve().parents[2] / "docs" / "cuda.md"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)
CLAIM = re.compile(r"^print\(.*\)\s+# (?P<expected>.+)$")


def _missing(first_line: str) -> str | None:
    """Why a block cannot run here, or None."""
    if first_line == "# needs a GPU":
        info = probe("cuda")
        return None if info["available"] else f"cuda unavailable: {info['reason']}"
    if first_line == "# needs torch":
        return None if importlib.util.find_spec("torch") else "torch is not installed"
    if first_line == "# needs jax":
        return None if importlib.util.find_spec("jax") else "jax is not installed"
    return None


def test_guide_has_examples_for_every_machine() -> None:
    blocks = BLOCK.findall(DOC.read_text())
    assert len(blocks) >= 6
    assert sum(not b.startswith("# needs") for b in blocks) >= 3, "the guide needs blocks that run without a GPU"


def test_guide_examples_run_and_print_what_they_say() -> None:
    printed: dict[tuple[str, int], str] = {}
    names: set[str] = set()

    def recording_print(*args: object, sep: str = " ", end: str = "\n", **kwargs: object) -> None:
        frame = sys._getframe(1)
        if frame.f_code.co_filename in names:
            printed[(frame.f_code.co_filename, frame.f_lineno)] = sep.join(map(str, args))
        else:
            builtins.print(*args, sep=sep, end=end, **kwargs)

    namespace: dict = {"__name__": "cuda_guide", "print": recording_print}
    skipped, checked = [], 0
    for number, source in enumerate(BLOCK.findall(DOC.read_text()), start=1):
        why = _missing(source.splitlines()[0].strip())
        if why:
            skipped.append(f"block {number}: {why}")
            continue
        name = f"docs/cuda.md[block {number}]"
        names.add(name)
        try:
            exec(compile(source, name, "exec"), namespace)
        except Exception as exc:
            pytest.fail(f"{name} raised {exc!r}:\n{source}")
        for lineno, line in enumerate(source.splitlines(), start=1):
            match = CLAIM.match(line)
            if match is None:
                continue
            actual = printed.get((name, lineno))
            assert actual is not None, f"{name} line {lineno} printed nothing: {line}"
            assert actual == match["expected"].strip(), f"{name} line {lineno}: printed {actual!r}; the guide says {match['expected']!r}"
            checked += 1
    assert checked >= 5, f"only {checked} printed claims were checked ({'; '.join(skipped)})"
