"""Moving a model and its optimizer's state to another device, all or nothing.

Every tensor involved (parameters, buffers, gradients, optimizer state) is first
copied to the target; only when every copy succeeded are the copies swapped in under
the same Python objects, so the optimizer's references stay valid. A failure while
copying changes nothing: the model stays entirely where it was.
"""

from __future__ import annotations

from typing import Any

from ..device import Device
from ..tensor import Tensor

__all__ = ["training_tensors", "relocate", "model_device"]


def training_tensors(model: Any, optimizer: Any) -> list[Tensor]:
    """Parameters, buffers, their gradients and the optimizer's state tensors (each once)."""
    seen: set[int] = set()
    out: list[Tensor] = []

    def add(t: Any) -> None:
        if isinstance(t, Tensor) and id(t) not in seen:
            seen.add(id(t))
            out.append(t)

    params = list(model.parameters()) if hasattr(model, "parameters") else []
    if optimizer is not None:
        params += [p for g in getattr(optimizer, "param_groups", []) for p in g["params"]]
    for p in params:
        add(p)
        add(p.grad)
    if hasattr(model, "buffers"):
        for b in model.buffers():
            add(b)
    if optimizer is not None:
        for state in getattr(optimizer, "state", {}).values():
            for v in state.values():
                add(v)
    return out


def model_device(model: Any, default: Device) -> Device:
    """The device of the model's first parameter (``default`` for a model without any)."""
    for p in (model.parameters() if hasattr(model, "parameters") else ()):
        return p.device
    return default


def _swap(t: Tensor, data: Any, be: Any) -> None:
    t._data = data
    t._be = be
    t._ver[0] += 1


def relocate(model: Any, optimizer: Any, device: Device) -> int:
    """Move everything training touches to ``device``; all or nothing. Returns how many tensors moved.

    Raises
    ------
    SpiralTorchError (or the backend's error)
        When the device is unavailable or a copy fails; nothing has moved then.
    """
    from ..backends import get_backend

    get_backend(device)  # an unavailable device fails here, with its reason
    copies: list[tuple[Tensor, Any, Any]] = []
    for t in training_tensors(model, optimizer):
        if t.device == device:
            continue
        new = t.detach().to(device)
        copies.append((t, new._data, new._be))
    old = [(t, t._data, t._be) for t, _, _ in copies]
    for t, data, be in copies:
        _swap(t, data, be)
    if hasattr(model, "to") and callable(model.to):
        try:
            # anything the model keeps besides parameters and buffers follows; the tensors above are already there
            model.to(device)
        except Exception:
            for t, data, be in old:
                _swap(t, data, be)
            raise
    return len(copies)
