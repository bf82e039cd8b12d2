"""Backend lookup: one backend instance per device, imported and started on first use.

``get_backend(device)`` is the only way the rest of the package reaches a backend. On
first use of a backend its kernels are registered into the operator registry, so
dispatch finds them like any other implementation. ``available(name)`` and
``reason(name)`` ask whether a device can be used here, and why not, without starting it.
"""

from __future__ import annotations

import importlib
import threading
from typing import Any

from ..device import Device
from ..errors import DeviceUnavailableError
from .base import Backend

__all__ = ["Backend", "get_backend", "probe", "available", "reason", "describe", "loaded_backends",
           "BACKEND_MODULES"]

#: device type -> "module:class" of its backend
BACKEND_MODULES: dict[str, str] = {
    "cpu": "spiraltorch_nb.backends.cpu:CPUBackend",
    "cuda": "spiraltorch_nb.backends.cuda:CUDABackend",
    "wgpu": "spiraltorch_nb.backends.wgpu:WGPUBackend",
}

_instances: dict[str, Backend] = {}
_probes: dict[str, dict[str, Any]] = {}
_lock = threading.RLock()


def _backend_class(dtype: str) -> type[Backend]:
    module, _, attr = BACKEND_MODULES[dtype].partition(":")
    return getattr(importlib.import_module(module), attr)


def probe(dtype: str) -> dict[str, Any]:
    """Whether a device type can be used here: ``{"available", "reason", "devices"}``; never raises."""
    with _lock:
        info = _probes.get(dtype)
        if info is None:
            try:
                info = _backend_class(dtype).probe()
            except Exception as exc:  # an import failure is a reason, not a crash
                info = {"available": False, "reason": f"{type(exc).__name__}: {exc}", "devices": []}
            _probes[dtype] = info
        return info


def _availability(spec: str | Device) -> tuple[bool, str | None]:
    dev = spec if isinstance(spec, Device) else Device(spec)  # DeviceError for an unknown name
    info = probe(dev.type)
    if not info["available"]:
        return False, info.get("reason") or f"the {dev.type} backend reports itself unavailable"
    devices = info.get("devices") or [dev.type]
    if dev.type != "cpu" and str(dev) not in devices:
        return False, f"there is no device '{dev}' here; available {dev.type} devices: {', '.join(devices)}"
    return True, None


def available(name: str | Device) -> bool:
    """Whether a device (``"cpu"``, ``"wgpu"``, ``"cuda"``, ``"cuda:1"``) can be used here.

    Asks the backend's probe (cached per process): it may look for an adapter or a
    driver but opens no device and never raises for an absent one; :func:`reason`
    says why not.

    Raises
    ------
    DeviceError
        When ``name`` is not a device name at all.

    Examples
    --------
    >>> import spiraltorch_nb as st
    >>> st.backends.available("cpu"), st.backends.reason("cpu")
    (True, None)
    """
    return _availability(name)[0]


def reason(name: str | Device) -> str | None:
    """Why a device cannot be used here, in words; None when :func:`available` is True.

    Raises
    ------
    DeviceError
        When ``name`` is not a device name at all.
    """
    return _availability(name)[1]


def get_backend(spec: Any) -> Backend:
    """The backend instance serving a device, started on first use.

    Raises
    ------
    DeviceUnavailableError
        When the device is absent, with the reason in words.
    """
    dev = spec if isinstance(spec, Device) else Device(spec)
    key = str(dev)
    be = _instances.get(key)
    if be is not None:
        return be
    with _lock:
        be = _instances.get(key)
        if be is not None:
            return be
        info = probe(dev.type)
        if not info["available"]:
            msg = f"device '{key}' is not available: {info['reason']}"
            raise DeviceUnavailableError(msg, device=key, reason=info["reason"])
        devices = info.get("devices") or [dev.type]
        if key not in devices and dev.type != "cpu":
            msg = f"device '{key}' does not exist here; available {dev.type} devices: {', '.join(devices)}"
            raise DeviceUnavailableError(msg, device=key, reason="no such device index")
        be = _backend_class(dev.type)(dev)
        from ..ops.registry import global_operator_registry

        global_operator_registry()._install_backend(be)
        _instances[key] = be
        return be


def loaded_backends() -> list[Backend]:
    """Backends started so far in this process."""
    return list(_instances.values())


def describe(dev: Device) -> dict[str, Any]:
    """A dict describing a device; for an absent device, ``available=False`` and the reason."""
    info = probe(dev.type)
    base = {"name": str(dev), "backend": dev.type, "available": bool(info["available"]),
            "reason": info.get("reason", "")}
    if not info["available"]:
        base.update(device_name=None, memory_total=None, memory_used=None)
        return base
    try:
        be = get_backend(dev)
    except DeviceUnavailableError as exc:
        base.update(available=False, reason=exc.reason, device_name=None, memory_total=None, memory_used=None)
        return base
    base.update(be.describe())
    return base
