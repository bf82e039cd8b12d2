"""Walkthroughs are versioned: each names the package version it was validated with.

``notebooks/execute.py`` stamps ``metadata.spiraltorch_nb.validated_with``. A notebook
validated with an older minor version than the package's is stale (re-execute it), and
CHANGELOG.md must name every walkthrough and have an entry for the current version.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from packaging.version import InvalidVersion, Version

import spiraltorch_nb

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
CHANGELOG = ROOT / "CHANGELOG.md"


def minor(v: Version) -> tuple[int, int]:
    return v.major, v.minor


def test_there_are_walkthroughs() -> None:
    assert len(NOTEBOOKS) >= 3


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_was_validated_with_the_current_minor_version(path: Path) -> None:
    meta = json.loads(path.read_text(encoding="utf-8")).get("metadata", {})
    stamp = meta.get("spiraltorch_nb", {}).get("validated_with")
    fix = f"re-execute it: python notebooks/execute.py notebooks/{path.name}"
    assert stamp, f"{path.name} has no metadata.spiraltorch_nb.validated_with; {fix}"
    try:
        validated = Version(stamp)
    except InvalidVersion:
        pytest.fail(f"{path.name}: validated_with {stamp!r} is not a version; {fix}")
    current = Version(spiraltorch_nb.__version__)
    assert minor(validated) >= minor(current), (
        f"{path.name} was validated with {stamp}, older than the current minor version "
        f"{current.major}.{current.minor}; {fix}, and note it in CHANGELOG.md")
    assert validated <= current, f"{path.name} claims validation with {stamp}, newer than the package ({current})"


def test_notebook_names_are_numbered_and_unique() -> None:
    pattern = re.compile(r"^(\d{2})_[a-z0-9_]+\.ipynb$")
    bad = [p.name for p in NOTEBOOKS if not pattern.match(p.name)]
    assert not bad, f"walkthroughs are named NN_topic.ipynb (two digits, lowercase): {bad}"
    numbers = [pattern.match(p.name).group(1) for p in NOTEBOOKS]
    assert len(numbers) == len(set(numbers)), f"two walkthroughs share a number: {sorted(numbers)}"


def test_changelog_names_every_walkthrough() -> None:
    text = CHANGELOG.read_text(encoding="utf-8")
    missing = [p.name for p in NOTEBOOKS if p.name not in text]
    assert not missing, f"CHANGELOG.md must say which walkthroughs each release added or changed; not named: {missing}"


def test_changelog_has_an_entry_for_the_current_version() -> None:
    text = CHANGELOG.read_text(encoding="utf-8")
    version = spiraltorch_nb.__version__
    assert re.search(rf"^## \[?{re.escape(version)}\]?\b", text, flags=re.M), (
        f"CHANGELOG.md has no '## {version}' entry for the current version")
    entry = re.split(rf"^## \[?{re.escape(version)}\]?.*$", text, flags=re.M)[1].split("\n## ", 1)[0]
    assert "### Walkthroughs" in entry, f"the {version} entry should list the walkthroughs it added or changed"
