"""Choosing the WebGPU adapter and opening the device.

The default is the highest-performance adapter wgpu offers. Two settings override it,
each from a Python call (:func:`configure`) or an environment variable, the call
winning:

* power preference: ``"high-performance"`` or ``"low-power"``
  (``SPIRALTORCH_WGPU_POWER``);
* backend type: ``"vulkan"``, ``"gl"``, ``"metal"`` or ``"d3d12"``
  (``SPIRALTORCH_WGPU_BACKEND``).

Settings apply when the device first opens; changing them afterwards is an error
(restart the kernel). Nothing here imports ``wgpu`` at module import time, so a broken
or missing wgpu installation surfaces as ``probe()`` returning a reason, never as an
import error of spiraltorch_nb.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import Any

from ...errors import DeviceError

__all__ = ["configure", "current_settings", "AdapterSettings", "open_device", "probe_adapter", "DeviceHandle"]

ENV_BACKEND = "SPIRALTORCH_WGPU_BACKEND"
ENV_POWER = "SPIRALTORCH_WGPU_POWER"

#: user spellings -> the ``backend_type`` wgpu reports in ``adapter.info``
BACKEND_TYPES = {"vulkan": "Vulkan", "gl": "OpenGL", "opengl": "OpenGL", "metal": "Metal",
                 "d3d12": "D3D12", "dx12": "D3D12"}
POWER_PREFERENCES = ("high-performance", "low-power")

#: adapter types from most to least capable (for "high-performance")
_TYPE_RANK = {"DiscreteGPU": 0, "IntegratedGPU": 1, "VirtualGPU": 2, "CPU": 3, "Unknown": 4}

#: limits that matter to compute work; the device is opened with the adapter's maxima
LIMIT_NAMES = (
    "max-buffer-size",
    "max-storage-buffer-binding-size",
    "max-storage-buffers-per-shader-stage",
    "max-compute-workgroup-storage-size",
    "max-compute-invocations-per-workgroup",
    "max-compute-workgroup-size-x",
    "max-compute-workgroup-size-y",
    "max-compute-workgroup-size-z",
    "max-compute-workgroups-per-dimension",
    "min-storage-buffer-offset-alignment",
)


@dataclass(frozen=True)
class AdapterSettings:
    """Which adapter to pick: a power preference and an optional backend type."""

    power_preference: str = "high-performance"
    backend_type: str | None = None


_lock = threading.Lock()
_overrides: dict[str, str | None] = {}
_opened: list[DeviceHandle] = []


def _check_power(value: str) -> str:
    v = value.strip().lower().replace("_", "-")
    if v not in POWER_PREFERENCES:
        raise DeviceError(f"wgpu power preference must be one of {POWER_PREFERENCES}; got {value!r}")
    return v


def _check_backend(value: str) -> str:
    v = value.strip().lower()
    if v not in BACKEND_TYPES:
        raise DeviceError(f"wgpu backend type must be one of 'vulkan', 'gl', 'metal', 'd3d12'; got {value!r}")
    return v


def configure(power_preference: str | None = None, backend_type: str | None = None) -> AdapterSettings:
    """Choose the WebGPU adapter before the first wgpu tensor is made.

    Parameters
    ----------
    power_preference
        ``"high-performance"`` (default) or ``"low-power"``.
    backend_type
        ``"vulkan"``, ``"gl"``, ``"metal"`` or ``"d3d12"``; None lets wgpu choose.

    Returns
    -------
    AdapterSettings
        The settings that will be used.

    Raises
    ------
    DeviceError
        For an unknown value, or when the wgpu device is already open (settings only
        take effect before first use; restart the kernel to change them).
    """
    power = _check_power(power_preference) if power_preference is not None else None
    backend = _check_backend(backend_type) if backend_type is not None else None
    with _lock:
        if _opened:
            msg = ("the wgpu device is already open on adapter "
                   f"'{_opened[0].adapter_info.get('device', '?')}'; configure() only takes effect before the "
                   "first wgpu tensor is created: restart the kernel and call configure() first")
            raise DeviceError(msg, devices=("wgpu",))
        if power is not None:
            _overrides["power_preference"] = power
        if backend is not None:
            _overrides["backend_type"] = backend
    _forget_probe()
    return current_settings()


def current_settings() -> AdapterSettings:
    """The settings in force: :func:`configure` over environment variables over defaults."""
    power = _overrides.get("power_preference") or os.environ.get(ENV_POWER) or "high-performance"
    backend = _overrides.get("backend_type") or os.environ.get(ENV_BACKEND) or None
    return AdapterSettings(_check_power(power), _check_backend(backend) if backend else None)


def _forget_probe() -> None:
    # the package-level probe cache would otherwise keep the answer for the old settings
    from .. import _probes

    _probes.pop("wgpu", None)


def _quiet_runtime_dir() -> None:
    """Give the native WebGPU stack a private runtime dir when the session has none.

    Without ``XDG_RUNTIME_DIR`` (headless servers, containers, CI), Mesa's window-system
    probing prints "error: XDG_RUNTIME_DIR is invalid" to stderr at adapter creation,
    which lands in notebook outputs. A fresh 0700 temp dir satisfies it; nothing uses it.
    """
    if os.environ.get("XDG_RUNTIME_DIR"):
        return
    import tempfile

    path = tempfile.mkdtemp(prefix="spiraltorch-runtime-")
    os.chmod(path, 0o700)
    os.environ["XDG_RUNTIME_DIR"] = path


def _select_adapter(settings: AdapterSettings) -> Any:
    """The adapter matching ``settings``, or raise RuntimeError saying why none does."""
    _quiet_runtime_dir()
    import wgpu

    if settings.backend_type is None:
        adapter = wgpu.gpu.request_adapter_sync(power_preference=settings.power_preference)
        if adapter is None:
            raise RuntimeError("wgpu found no adapter (no GPU driver, and no software rasterizer such as "
                               "Mesa's lavapipe/llvmpipe)")
        return adapter
    want = BACKEND_TYPES[settings.backend_type]
    adapters = wgpu.gpu.enumerate_adapters_sync()
    found = [a for a in adapters if str(a.info.get("backend_type", "")) == want]
    if not found:
        have = sorted({str(a.info.get("backend_type", "?")) for a in adapters}) or ["none"]
        raise RuntimeError(f"no wgpu adapter with backend type {settings.backend_type!r} ({want}); "
                           f"available backend types: {', '.join(have)}")
    sign = 1 if settings.power_preference == "high-performance" else -1
    found.sort(key=lambda a: sign * _TYPE_RANK.get(str(a.info.get("adapter_type", "Unknown")), 4))
    return found[0]


def probe_adapter() -> dict[str, Any]:
    """``{"available", "reason", "devices", "adapter"}`` for the configured adapter; never raises."""
    try:
        settings = current_settings()
        _quiet_runtime_dir()
        import wgpu  # noqa: F401  (an import failure is a reason)

        adapter = _select_adapter(settings)
        info = dict(adapter.info)
        return {"available": True, "reason": "", "devices": ["wgpu"], "adapter": info}
    except Exception as exc:  # every failure is a reason, never a crash
        return {"available": False, "reason": f"{type(exc).__name__}: {exc}", "devices": []}


@dataclass
class DeviceHandle:
    """The open device with what the backend needs to know about it."""

    device: Any
    adapter: Any
    adapter_info: dict[str, Any]
    limits: dict[str, int]
    features: frozenset[str]
    settings: AdapterSettings

    @property
    def has_f16(self) -> bool:
        return "shader-f16" in self.features

    @property
    def has_timestamps(self) -> bool:
        return "timestamp-query" in self.features


def open_device() -> DeviceHandle:
    """Open the configured adapter's device with its maximum compute limits.

    Raises
    ------
    DeviceError
        When no adapter matches the settings, or the device cannot be opened.
    """
    with _lock:
        if _opened:
            return _opened[0]
        settings = current_settings()
        try:
            adapter = _select_adapter(settings)
            adapter_limits = dict(adapter.limits)
            wanted = {k: adapter_limits[k] for k in LIMIT_NAMES if k in adapter_limits}
            features = [f for f in ("shader-f16", "timestamp-query") if f in adapter.features]
            device = adapter.request_device_sync(required_features=features, required_limits=wanted)
        except Exception as exc:
            raise DeviceError(f"could not open a wgpu device ({settings}): {type(exc).__name__}: {exc}",
                              devices=("wgpu",)) from exc
        limits = {k: int(v) for k, v in dict(device.limits).items() if isinstance(v, int)}
        handle = DeviceHandle(device, adapter, dict(adapter.info), limits, frozenset(device.features), settings)
        _opened.append(handle)
        return handle
