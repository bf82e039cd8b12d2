"""Loading weights written elsewhere (PyTorch ``.pt``/``.pth``, safetensors) and checking their fit.

>>> import spiraltorch_nb as st
>>> model = st.nn.Linear(3, 2)
>>> report = st.io.check_state_dict(model, {"weight": st.zeros(2, 4)})
>>> report.compatible, report.missing, report.mismatched
(False, ['bias'], {'weight': ((2, 3), (2, 4))})
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import CheckpointError
from ..nn._state import StateDictReport, _is_torch_tensor, as_array_or_tensor, compare_state
from ..tensor import Tensor
from .keymap import KeyMap, rename_keys, strip_prefix

__all__ = ["load_state_dict", "check_state_dict", "torch_load", "looks_like_torch_file"]

_TORCH_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt")
#: where training scripts commonly nest the model's weights inside a checkpoint dict
_NESTED_KEYS = ("state_dict", "model_state_dict", "model", "module", "net", "weights")


def looks_like_torch_file(path: Path) -> bool:
    """Whether a file is a PyTorch pickle/zip rather than safetensors (by suffix, then by its first bytes)."""
    if path.suffix.lower() in _TORCH_SUFFIXES:
        return True
    if path.suffix.lower() == ".safetensors":
        return False
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError:
        return False
    return head.startswith(b"PK\x03\x04") or head[:1] == b"\x80"


def _to_st(obj: Any, device: Any) -> Any:
    """Turn every torch tensor inside nested dicts/lists/tuples into a spiraltorch tensor."""
    if _is_torch_tensor(obj):
        from ..ops.creation import as_tensor

        arr = as_array_or_tensor(obj)
        t = as_tensor(np.require(arr, requirements="C"))
        return t.to(device) if device is not None else t
    if isinstance(obj, Mapping):
        return {k: _to_st(v, device) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(_to_st(v, device) for v in obj) if not hasattr(obj, "_fields") else obj
    return obj


def torch_load(path: str | os.PathLike, device: Any = None) -> Any:
    """Read a PyTorch ``.pt``/``.pth`` file with ``torch.load(weights_only=True)``; torch tensors become ours.

    Raises
    ------
    CheckpointError
        When torch is not installed (with the fix), or the file cannot be read safely.
    """
    p = Path(path)
    if not p.exists():
        raise CheckpointError(f"no checkpoint at {p}: the file does not exist", path=str(p))
    try:
        import torch
    except ImportError:
        raise CheckpointError(
            f"cannot load {p}: it is a PyTorch file and reading it needs torch, which is not installed. "
            "Install it (pip install torch), or convert the file once to safetensors where torch is available: "
            "safetensors.torch.save_file(torch.load(path), 'weights.safetensors')", path=str(p)) from None
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"cannot load {p} with torch.load(weights_only=True): {type(exc).__name__}: {exc}. "
                              "Files that pickle arbitrary objects are refused because loading them could run "
                              "code; re-save just the state dict (torch.save(model.state_dict(), path))",
                              path=str(p)) from exc
    return _to_st(obj, device)


def _is_flat_state(obj: Any) -> bool:
    return isinstance(obj, Mapping) and bool(obj) and all(
        isinstance(k, str) and (isinstance(v, Tensor | np.ndarray) or _is_torch_tensor(v)) for k, v in obj.items())


def _find_state_dict(obj: Any, path: Path) -> Mapping[str, Any]:
    if _is_flat_state(obj):
        return obj
    if isinstance(obj, Mapping):
        for key in _NESTED_KEYS:
            if _is_flat_state(obj.get(key)):
                return obj[key]
        if not obj:
            raise CheckpointError(f"{path} holds no tensors", path=str(path))
        summary = ", ".join(f"{k!r}: {type(v).__name__}" for k, v in list(obj.items())[:12])
        raise CheckpointError(f"{path} is not a state dict (a flat mapping of name -> tensor); its top level holds "
                              f"{{{summary}}}. Load it with st.load(path) and pass the part that holds the model's "
                              "weights to model.load_state_dict", path=str(path))
    raise CheckpointError(f"{path} holds a {type(obj).__name__}, not a state dict of name -> tensor", path=str(path))


def load_state_dict(path: str | os.PathLike, key_map: KeyMap | None = None, *, strip: str | None = None,
                    device: Any = None) -> dict[str, Tensor]:
    """Read a state dict from a file as ``name -> st.Tensor``, renaming keys on the way.

    Parameters
    ----------
    path : str or PathLike
        A safetensors file (from ``safetensors.torch.save_file``, :func:`st.save`, ...) or a
        PyTorch ``.pt``/``.pth`` file (needs torch; read with ``weights_only=True``). A
        checkpoint dict that nests the weights under ``"state_dict"`` or ``"model"`` is unwrapped.
    key_map : dict or callable, optional
        ``{"old": "new"}`` (unnamed keys kept) or ``fn(old) -> new or None`` (None drops the key).
    strip : str, optional
        A prefix removed from keys first, e.g. ``"module."`` from DataParallel checkpoints.
    device : str, optional
        Where to put the tensors (cpu by default).

    Examples
    --------
    ``model.load_state_dict(st.io.load_state_dict("gpt2.safetensors", {"lm_head.weight": "head.weight"}))``
    """
    from .checkpoints import load

    p = Path(path)
    state = dict(_find_state_dict(load(p, device=device), p))
    if strip:
        state = strip_prefix(state, strip)
    state = rename_keys(state, key_map)
    from ..ops.creation import as_tensor

    out: dict[str, Tensor] = {}
    for k, v in state.items():
        if not isinstance(v, Tensor):
            v = as_tensor(np.require(as_array_or_tensor(v, k), requirements="C"), device=device)
        out[k] = v
    return out


def check_state_dict(model: Any, state: Mapping[str, Any] | str | os.PathLike,
                     key_map: KeyMap | None = None) -> StateDictReport:
    """How ``state`` fits ``model`` (missing, unexpected, mis-shaped keys), without loading anything.

    ``state`` may be a mapping (values of any tensor kind) or a path, read with
    :func:`load_state_dict`; ``key_map`` renames keys first, so a map can be tried out.
    """
    if isinstance(state, str | os.PathLike):
        state = load_state_dict(state, key_map)
    elif key_map is not None:
        state = rename_keys(state, key_map)
    if not isinstance(state, Mapping):
        raise TypeError(f"check_state_dict: state must be a mapping or a path; got {type(state).__name__}")
    own = model.state_dict() if hasattr(model, "state_dict") else model
    return compare_state({k: tuple(v.shape) for k, v in own.items()}, state)
