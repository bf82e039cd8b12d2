"""Every Python block in docs/telemetry.md runs, in order, and prints what its comments say.

Convention of the guide: ``print(...)  # text`` means the call prints ``text``; a
text ending in ``...`` gives only the start of the output.
"""

from __future__ import annotations

import builtins
import re
import sys
from pathlib import Path

import pytest

from spiraltorch_nb.ops import registry

DOC = Path(__file__).resolve().parents[2] / "docs" / "telemetry.md"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)
CLAIM = re.compile(r"^\s*print\(.*\)\s+# (?P<expected>.+)$")


def blocks() -> list[str]:
    return BLOCK.findall(DOC.read_text())


def test_guide_has_examples():
    assert len(blocks()) >= 10


def test_guide_examples_run_and_print_what_they_say():
    filenames = {}
    printed: dict[tuple[str, int], str] = {}

    def recording_print(*args, sep=" ", end="\n", **kwargs):
        frame = sys._getframe(1)
        if frame.f_code.co_filename in filenames:
            printed[(frame.f_code.co_filename, frame.f_lineno)] = sep.join(map(str, args))
        else:
            builtins.print(*args, sep=sep, end=end, **kwargs)

    namespace: dict = {"__name__": "telemetry_guide", "print": recording_print}
    checked = 0
    try:
        for number, source in enumerate(blocks(), start=1):
            filename = f"docs/telemetry.md[block {number}]"
            filenames[filename] = source
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
    finally:
        if "doc_cube" in registry.global_operator_registry():
            registry.global_operator_registry().unregister("doc_cube")
    assert checked >= 25
