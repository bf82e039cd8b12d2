"""Reports, at the end of a run, how many walkthroughs and guides had their code validated.

A walkthrough counts when nbval ran its cells and none failed; a guide (``docs/*.md``)
counts when its ``>>>`` examples passed as a doctest, or when a test module whose
docstring says ``Every Python block in docs/<guide>.md runs`` passed.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

import pytest

_GUIDE_TEST = re.compile(r"Python blocks? in (docs/[\w./-]+\.md)")
_docstrings: dict[Path, str] = {}


def _module_docstring(path: Path) -> str:
    if path not in _docstrings:
        try:
            _docstrings[path] = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
        except (OSError, SyntaxError, ValueError):
            _docstrings[path] = ""
    return _docstrings[path]


def validated_code(reports: list[Any], failed: list[Any], root: Path) -> tuple[set[str], set[str]]:
    """Walkthroughs and guides with at least one passed item and no failed one.

    Parameters
    ----------
    reports, failed
        Test reports of the items that passed and of those that failed.
    root
        The rootdir the node ids are relative to.

    Returns
    -------
    tuple of set
        Notebook paths and guide paths, relative to ``root``.
    """

    def source(nodeid: str) -> tuple[str, str] | None:
        path = nodeid.split("::", 1)[0]
        if path.startswith("notebooks/") and path.endswith(".ipynb"):
            return "walkthrough", path
        if path.startswith("docs/") and path.endswith(".md"):
            return "guide", path
        if path.endswith(".py"):
            match = _GUIDE_TEST.search(_module_docstring(root / path))
            if match:
                return "guide", match.group(1)
        return None

    passed: dict[tuple[str, str], bool] = {}
    for rep in reports:
        key = source(rep.nodeid)
        if key is not None:
            passed.setdefault(key, True)
    for rep in failed:
        key = source(rep.nodeid)
        if key is not None:
            passed[key] = False
    walkthroughs = {p for (kind, p), ok in passed.items() if ok and kind == "walkthrough"}
    guides = {p for (kind, p), ok in passed.items() if ok and kind == "guide"}
    return walkthroughs, guides


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    stats = terminalreporter.stats
    reports = [r for r in stats.get("passed", []) if getattr(r, "when", "call") == "call"]
    failed = [r for r in stats.get("failed", []) + stats.get("error", []) if hasattr(r, "nodeid")]
    walkthroughs, guides = validated_code(reports, failed, Path(str(config.rootpath)))
    if not walkthroughs and not guides:
        return
    terminalreporter.write_sep("-", "walkthroughs and guides")
    terminalreporter.write_line(f"validated code: {len(walkthroughs)} walkthroughs, {len(guides)} guides")
    if config.getoption("verbose") > 0:
        for path in sorted(walkthroughs | guides):
            terminalreporter.write_line(f"  {path}")


# this file configures the suite; it is not a test module for --doctest-modules
collect_ignore = ["conftest.py"]
