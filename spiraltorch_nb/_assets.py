"""Where the shipped non-Python files live: ``kernels/`` and ``widgets/``.

In an installed wheel they sit inside the package (``spiraltorch_nb/_assets/<name>``);
in a source checkout they are the repository's top-level folders. Both are found the
same way, so kernels and widget front ends load identically from either.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["asset_dir", "read_asset"]

_PKG = Path(__file__).resolve().parent


def asset_dir(name: str) -> Path:
    """The folder holding asset group ``name`` ("kernels" or "widgets")."""
    for candidate in (_PKG / "_assets" / name, _PKG.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"spiraltorch_nb assets '{name}' not found next to the package ({_PKG}); "
                            "reinstall the package or run from a complete source checkout")


def read_asset(name: str, relpath: str) -> str:
    """The text of one asset file, e.g. ``read_asset("kernels", "wgsl/binary.wgsl")``."""
    return (asset_dir(name) / relpath).read_text(encoding="utf-8")
