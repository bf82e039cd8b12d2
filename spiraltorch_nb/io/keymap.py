"""Renaming state-dict keys: key maps, and the prefix fixes checkpoints from elsewhere need.

A *key map* is either a dict (``{"lm_head.weight": "head.weight"}``; keys it does not
name are kept) or a function ``old -> new`` that returns ``None`` to drop a key.

>>> sd = {"module.fc.weight": 1, "module.fc.bias": 2}
>>> strip_prefix(sd, "module.")
{'fc.weight': 1, 'fc.bias': 2}
>>> rename_keys(sd, lambda k: None if k.endswith("bias") else k.replace("module.", ""))
{'fc.weight': 1}
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from ..nn._state import StateDictError

__all__ = ["KeyMap", "rename_keys", "strip_prefix", "add_prefix", "replace_prefix", "select_prefix"]

V = TypeVar("V")
KeyMap = Mapping[str, str] | Callable[[str], "str | None"]


def rename_keys(state: Mapping[str, V], key_map: KeyMap | None) -> dict[str, V]:
    """A new dict with keys renamed by ``key_map`` (order kept).

    Raises
    ------
    StateDictError
        When two keys would get the same new name (naming both), or the map returns a non-string.
    """
    if key_map is None:
        return dict(state)
    fn: Callable[[str], str | None]
    if isinstance(key_map, Mapping):
        mapping = key_map

        def fn(k: str) -> str | None:
            return mapping.get(k, k)
    elif callable(key_map):
        fn = key_map
    else:
        raise TypeError(f"key_map must be a dict or a function old_key -> new_key (or None); got {type(key_map).__name__}")
    out: dict[str, V] = {}
    source: dict[str, str] = {}
    for k, v in state.items():
        new = fn(k)
        if new is None:
            continue
        if not isinstance(new, str):
            raise StateDictError(f"key_map turned {k!r} into {new!r}; it must return a string (or None to drop the key)")
        if new in out:
            raise StateDictError(f"key_map maps both {source[new]!r} and {k!r} to {new!r}; each key needs its own name "
                                 "(drop one by returning None)")
        out[new] = v
        source[new] = k
    return out


def strip_prefix(state: Mapping[str, V], prefix: str = "module.") -> dict[str, V]:
    """Remove ``prefix`` from the keys that start with it (``"module."`` is what DataParallel adds)."""
    return rename_keys(state, lambda k: k[len(prefix):] if k.startswith(prefix) else k)


def add_prefix(state: Mapping[str, V], prefix: str) -> dict[str, V]:
    """Put ``prefix`` in front of every key (to load a submodule's weights into a larger model)."""
    return {prefix + k: v for k, v in state.items()}


def replace_prefix(state: Mapping[str, V], old: str, new: str) -> dict[str, V]:
    """Replace the leading ``old`` with ``new`` in the keys that start with ``old``."""
    return rename_keys(state, lambda k: new + k[len(old):] if k.startswith(old) else k)


def select_prefix(state: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    """Only the keys under ``prefix``, with it removed (``select_prefix(sd, "encoder.")``)."""
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
