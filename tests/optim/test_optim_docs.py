"""Every Python block in docs/hypergradients.md runs, in order, and prints what its comments say.

Convention of the guide: ``print(...)  # text`` means the call prints ``text``; a
text ending in ``...`` gives only the start of the output.
"""

from __future__ import annotations

import builtins
import re
import sys
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "hypergradients.md"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)
CLAIM = re.compile(r"^\s*print\(.*\)\s+# (?P<expected>.+)$")


def run_guide(doc: Path, module_name: str) -> int:
    """Run the guide's blocks in one namespace; check each claimed output; return how many."""
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
    for number, source in enumerate(BLOCK.findall(doc.read_text()), start=1):
        filename = f"{doc.name}[block {number}]"
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


def test_hypergradient_guide_examples_run_and_print_what_they_say() -> None:
    assert run_guide(DOC, "hypergradient_guide") >= 9
