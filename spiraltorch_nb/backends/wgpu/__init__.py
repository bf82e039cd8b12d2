"""The WebGPU backend (``device="wgpu"``): tensors in GPU buffers, kernels in WGSL.

Importing this package never touches wgpu; the adapter opens when the first wgpu
tensor is made. Choose the adapter beforehand with :func:`configure` or the
``SPIRALTORCH_WGPU_BACKEND`` / ``SPIRALTORCH_WGPU_POWER`` environment variables.

>>> from spiraltorch_nb.backends.wgpu import WGPUBackend
>>> sorted(WGPUBackend.probe())
['available', 'devices', 'reason']
"""

from __future__ import annotations

from typing import Any

from .adapter import AdapterSettings, configure, current_settings

__all__ = ["WGPUBackend", "WGPUStorage", "configure", "current_settings", "AdapterSettings"]


def __getattr__(name: str) -> Any:
    # the backend and storage modules import numpy-side helpers only; wgpu itself is
    # imported when a device opens, so a broken wgpu install shows up in probe()
    if name == "WGPUBackend":
        from .backend import WGPUBackend

        return WGPUBackend
    if name == "WGPUStorage":
        from .storage import WGPUStorage

        return WGPUStorage
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
