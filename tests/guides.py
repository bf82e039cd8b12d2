"""Run a guide's Python blocks and check that each prints what its comment says.

Convention of the guides: ``print(...)  # text`` means the call prints ``text``; a text
ending in ``...`` gives only the start of the output. One runner serves every guide
whose examples are full Python blocks (the ``>>>`` guides run as doctests instead).
"""

from __future__ import annotations

import builtins
import re
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)
CLAIM = re.compile(r"^\s*print\(.*\)\s+# (?P<expected>.+)$")


def blocks(doc: Path) -> list[str]:
    """The guide's ```python blocks, in order."""
    return BLOCK.findall(doc.read_text(encoding="utf-8"))


def run_guide(doc: Path, module_name: str, skip: Callable[[str], str | None] | None = None,
              skipped: list[str] | None = None) -> int:
    """Run the blocks in one namespace, check each claimed output, and return how many were checked.

    ``skip(source)`` may give a reason a block cannot run here (a missing GPU); such a
    block is left out and its reason appended to ``skipped``.
    """
    filenames: set[str] = set()
    printed: dict[tuple[str, int], str] = {}

    def recording_print(*args, sep=" ", end="\n", **kwargs):
        frame = sys._getframe(1)
        if frame.f_code.co_filename in filenames:
            printed[(frame.f_code.co_filename, frame.f_lineno)] = sep.join(map(str, args))
        else:
            builtins.print(*args, sep=sep, end=end, **kwargs)

    namespace: dict = {"__name__": module_name, "print": recording_print}
    checked = 0
    for number, source in enumerate(blocks(doc), start=1):
        why = skip(source) if skip is not None else None
        if why:
            if skipped is not None:
                skipped.append(f"block {number}: {why}")
            continue
        filename = f"docs/{doc.name}[block {number}]"
        filenames.add(filename)
        try:
            exec(compile(source, filename, "exec"), namespace)
        except Exception as exc:
            pytest.fail(f"{filename} raised {exc!r}:\n{source}")
        for lineno, line in enumerate(source.splitlines(), start=1):
            match = CLAIM.match(line)
            if match is None:
                continue
            expected = match["expected"]
            actual = printed.get((filename, lineno))
            assert actual is not None, f"{filename} line {lineno} printed nothing: {line}"
            if expected.endswith("..."):
                assert actual.startswith(expected[:-3].rstrip()), (filename, line, actual)
            else:
                assert actual == expected, (filename, line, actual)
            checked += 1
    return checked
