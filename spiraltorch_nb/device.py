"""Devices: names like ``"cpu"``, ``"wgpu"``, ``"cuda"``, ``"cuda:1"``, the default device, and lookups.

A device names *where* a tensor lives; the backend behind it (``backends/``) says how
its operations run. Backends are imported, and touch hardware, only when a device of
theirs is first used, so importing ``spiraltorch_nb`` never opens a device.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

from .errors import DeviceError

__all__ = [
    "Device",
    "device",
    "set_default_device",
    "get_default_device",
    "default_device",
    "available_devices",
    "describe_device",
    "DEVICE_TYPES",
]

DEVICE_TYPES = ("cpu", "cuda", "wgpu")


class Device:
    """A device: a type (``cpu``, ``cuda``, ``wgpu``) and an index.

    >>> Device("cuda:1")
    device(type='cuda', index=1)
    >>> str(Device("wgpu"))
    'wgpu'
    """

    __slots__ = ("type", "index", "_str")
    # declared for type checkers (annotations only: the slots above hold the values)
    type: str
    index: int | None
    _str: str

    def __init__(self, spec: Any, index: int | None = None) -> None:
        if isinstance(spec, Device):
            self.type, self.index, self._str = spec.type, spec.index, spec._str
            return
        if not isinstance(spec, str):
            raise DeviceError(f"a device is named by a string like 'cpu', 'wgpu' or 'cuda:0'; got {spec!r}")
        name = spec.strip().lower()
        dtype, _, idx = name.partition(":")
        if dtype == "gpu":
            dtype = "cuda"
        if dtype == "webgpu":
            dtype = "wgpu"
        if dtype not in DEVICE_TYPES:
            known = ", ".join(repr(t) for t in DEVICE_TYPES)
            raise DeviceError(f"unknown device {spec!r}: expected one of {known}, optionally with ':index'")
        if idx:
            if not idx.isdigit():
                raise DeviceError(f"bad device index in {spec!r}: write e.g. 'cuda:0'")
            if index is not None and index != int(idx):
                raise DeviceError(f"device {spec!r} given together with a different index {index}")
            index = int(idx)
        if dtype == "cpu" and index not in (None, 0):
            raise DeviceError(f"there is only one cpu device; got {spec!r}")
        self.type = dtype
        self.index = index if index is not None else (0 if dtype == "cuda" else None)
        self._str = dtype if self.index is None or (dtype != "cuda") else f"cuda:{self.index}"

    def __repr__(self) -> str:
        if self.index is None:
            return f"device(type='{self.type}')"
        return f"device(type='{self.type}', index={self.index})"

    def __str__(self) -> str:
        return self._str

    def __eq__(self, other: object) -> bool:
        if isinstance(other, str):
            try:
                other = Device(other)
            except DeviceError:
                return False
        return isinstance(other, Device) and other._str == self._str

    def __hash__(self) -> int:
        return hash(self._str)


_state = threading.local()
_global_default = ["cpu"]


def device(spec: Any, index: int | None = None) -> Device:
    """Build a :class:`Device` from a name such as ``"cpu"``, ``"wgpu"`` or ``"cuda:1"``."""
    return Device(spec, index)


def get_default_device() -> Device:
    """The device new tensors are created on (``cpu`` unless changed)."""
    stack = getattr(_state, "stack", None)
    if stack:
        return stack[-1]
    return Device(_global_default[0])


def set_default_device(spec: Any) -> Device:
    """Make ``spec`` the default device for new tensors (checked to be available).

    >>> set_default_device("cpu")
    device(type='cpu')
    """
    from .backends import get_backend

    dev = Device(spec)
    get_backend(dev)  # raises DeviceUnavailableError with the reason
    _global_default[0] = str(dev)
    return dev


@contextlib.contextmanager
def default_device(spec: Any) -> Iterator[Device]:
    """Within the block, new tensors are created on ``spec``; the previous default comes back after.

    >>> import spiraltorch_nb as st
    >>> with st.default_device("cpu"):
    ...     st.zeros(2).device
    device(type='cpu')
    """
    from .backends import get_backend

    dev = Device(spec)
    get_backend(dev)
    stack = getattr(_state, "stack", None)
    if stack is None:
        stack = _state.stack = []
    stack.append(dev)
    try:
        yield dev
    finally:
        stack.pop()


def available_devices() -> list[str]:
    """Names of the devices usable on this machine, ``cpu`` first."""
    from .backends import probe

    out = []
    for dtype in DEVICE_TYPES:
        info = probe(dtype)
        if info["available"]:
            out.extend(info.get("devices", [dtype]))
    return out


def describe_device(spec: Any = "cpu") -> dict[str, Any]:
    """What a device is: ``name``, ``available``, ``reason``, ``backend``, ``device_name``, memory, limits.

    Never raises for a device that is merely absent: ``available`` is False and
    ``reason`` says why in words.
    """
    from .backends import describe

    return describe(Device(spec))
