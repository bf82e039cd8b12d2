"""The package type-checks with mypy and the repository passes ruff (both configured in pyproject.toml).

Both tools come with the dev extra; without them these checks skip. mypy keeps its
incremental cache in ``.mypy_cache`` (git-ignored), so only the first run is slow.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _run_tool(module: str, *args: str) -> None:
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} is not installed (pip install -e '.[dev]')")
    proc = subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, capture_output=True,
                          text=True, check=False)
    if proc.returncode != 0:
        pytest.fail(f"`python -m {module} {' '.join(args)}` exited with {proc.returncode}:\n"
                    f"{proc.stdout}{proc.stderr}", pytrace=False)


def test_mypy_reports_no_errors() -> None:
    _run_tool("mypy", "spiraltorch_nb")


def test_ruff_reports_no_errors() -> None:
    _run_tool("ruff", "check", ".")
