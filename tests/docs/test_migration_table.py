"""The API table of docs/migration_from_pytorch.md agrees with the package and with PyTorch.

Every spiraltorch_nb name in the table must exist; every PyTorch name must exist in the
installed torch; and a row marked "not supported yet" must really have no
spiraltorch_nb counterpart, so the table is updated when support arrives.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path
from typing import Any

import pytest

import spiraltorch_nb

DOC = Path(__file__).resolve().parents[2] / "docs" / "migration_from_pytorch.md"
NOT_YET = "not supported yet"
_CODE = re.compile(r"`([^`]+)`")
_NAME = re.compile(r"^(?:torch|st)(?:\.[A-Za-z_][A-Za-z0-9_]*)+$")


def table_rows() -> list[tuple[list[str], str, list[str]]]:
    """``(torch names, spiraltorch_nb cell, st names)`` for every row of the API table."""
    text = DOC.read_text(encoding="utf-8")
    section = text.split("## API table", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 3 or cells[0] in ("PyTorch", "---"):
            continue
        torch_names = [n for n in _CODE.findall(cells[0]) if _NAME.match(n)]
        st_names = [n for n in _CODE.findall(cells[1]) if _NAME.match(n)]
        rows.append((torch_names, cells[1], st_names))
    return rows


def resolve(name: str, root: Any, root_name: str) -> Any:
    """The object a dotted name refers to, importing submodules as needed; raises AttributeError."""
    parts = name.split(".")[1:]
    obj = root
    path = root_name
    for part in parts:
        path = f"{path}.{part}"
        try:
            obj = getattr(obj, part)
        except AttributeError:
            try:
                obj = importlib.import_module(path)
            except ImportError as exc:
                raise AttributeError(f"{name}: no attribute or module {path}") from exc
    return obj


def test_the_table_is_substantial() -> None:
    rows = table_rows()
    assert len(rows) > 60
    assert sum(1 for _, cell, _ in rows if cell == NOT_YET) > 10
    assert sum(len(st) for _, _, st in rows) > 150


def test_every_spiraltorch_name_exists() -> None:
    missing = []
    for _, _, st_names in table_rows():
        for name in st_names:
            try:
                resolve(name, spiraltorch_nb, "spiraltorch_nb")
            except AttributeError:
                missing.append(name)
    assert not missing, f"names in the migration table that spiraltorch_nb does not have: {missing}"


def test_every_row_has_a_spiraltorch_name_or_says_not_yet() -> None:
    bad = [torch for torch, cell, st in table_rows() if not st and cell != NOT_YET]
    assert not bad, f"rows with neither a spiraltorch_nb name nor '{NOT_YET}': {bad}"


def test_unsupported_rows_are_still_unsupported() -> None:
    now_supported = []
    for torch_names, cell, _ in table_rows():
        if cell != NOT_YET:
            continue
        for name in torch_names:
            candidate = "st" + name[len("torch"):]
            try:
                resolve(candidate, spiraltorch_nb, "spiraltorch_nb")
            except AttributeError:
                continue
            now_supported.append(f"{name} -> {candidate}")
    assert not now_supported, f"marked '{NOT_YET}' but spiraltorch_nb has them now; update the table: {now_supported}"


def test_every_pytorch_name_exists() -> None:
    torch = pytest.importorskip("torch")
    missing = []
    for torch_names, _, _ in table_rows():
        for name in torch_names:
            try:
                resolve(name, torch, "torch")
            except AttributeError:
                missing.append(name)
    assert not missing, f"PyTorch names in the migration table that torch {torch.__version__} lacks: {missing}"
