"""The wgpu backend: tensors that live in WebGPU buffers, computed by WGSL kernels.

Data stays on the device: every op records GPU work (see ``queue.py``) and returns a
:class:`~spiraltorch_nb.backends.wgpu.storage.WGPUStorage`; only :meth:`to_numpy`
(``.numpy()``, ``.item()``, ``.tolist()``, printing, moving to another device) reads
back, and every host<->device copy is reported to telemetry and counted in
:attr:`WGPUBackend.stats`.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import numpy as np

from ... import dtypes as _dt
from ...device import Device
from ...dtypes import DType, from_numpy_dtype
from ..base import Backend
from . import elementwise as ew
from .adapter import open_device, probe_adapter
from .kernels import rt_dtypes
from .runtime import Runtime, check_dtype
from .storage import WGPUStorage

__all__ = ["WGPUBackend"]


class WGPUBackend(Backend):
    """Runs every op as WGSL compute shaders on the configured WebGPU adapter.

    Attributes
    ----------
    stats : dict
        Counters of ``uploads``, ``downloads``, ``submits`` and ``dispatches``.
    pool : BufferPool
        The GPU buffer pool (``pool.stats``: allocations, reuses, bytes in use/cached).
    pipelines : PipelineCache
        Compiled kernels (``pipelines.stats``: hits, misses).
    queue : CommandQueue
        The batching recorder; ``queue.max_ops`` and ``queue.submit_every_op`` tune it.
    """

    name = "wgpu"
    native_type = WGPUStorage
    #: integer dtype of indices and of integer tensors made without an explicit dtype
    default_int = _dt.int32

    @classmethod
    def probe(cls) -> dict[str, Any]:
        info = probe_adapter()
        info.pop("adapter", None)
        return info

    def __init__(self, device: Device) -> None:
        super().__init__(device)
        self.handle = open_device()
        self.rt = Runtime(self.handle)
        self.dtypes = rt_dtypes(self.rt)
        self.stats = self.rt.stats
        self.pool = self.rt.pool
        self.queue = self.rt.queue
        self.pipelines = self.rt.pipelines
        self._kernels: dict[str, Callable[..., Any]] | None = None
        from .random import install_generator

        install_generator()

    # ---- introspection ---------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        info = self.handle.adapter_info
        lim = self.handle.limits
        pool = self.pool.stats
        return {
            "device_name": info.get("device") or info.get("description") or "wgpu adapter",
            "adapter_name": info.get("device", ""),
            "vendor": info.get("vendor", ""),
            "backend_type": str(info.get("backend_type", "")),
            "adapter_type": str(info.get("adapter_type", "")),
            "power_preference": self.handle.settings.power_preference,
            "features": sorted(self.handle.features),
            "limits": {
                "max_buffer_size": lim.get("max-buffer-size"),
                "max_storage_buffer_binding_size": lim.get("max-storage-buffer-binding-size"),
                "max_compute_workgroup_size": (lim.get("max-compute-workgroup-size-x"),
                                               lim.get("max-compute-workgroup-size-y"),
                                               lim.get("max-compute-workgroup-size-z")),
                "max_compute_invocations_per_workgroup": lim.get("max-compute-invocations-per-workgroup"),
                "max_compute_workgroups_per_dimension": lim.get("max-compute-workgroups-per-dimension"),
                "max_compute_workgroup_storage_size": lim.get("max-compute-workgroup-storage-size"),
            },
            "memory_total": None,  # WebGPU does not report device memory
            "memory_used": pool["bytes_in_use"],
            "memory_cached": pool["bytes_cached"],
            "buffers_allocated": pool["allocations"],
            "pipelines": len(self.pipelines),
        }

    def capabilities(self) -> dict[str, Any]:
        return {"dtypes": [d.name for d in self.dtypes], "ops": sorted(self.kernels()), "autograd": True,
                "fused": ["softmax", "log_softmax", "softmax_backward", "log_softmax_backward", "cross_entropy",
                          "cross_entropy_backward", "matmul_backward", "linear", "linear_backward", "fused_bias_gelu", "fused_bias_gelu_backward",
                          "fused_layer_norm", "fused_layer_norm_backward"],
                "default_int": self.default_int.name, "int64": False, "float64": False}

    def memory_stats(self) -> dict[str, int]:
        """Pool bytes in use, at peak and cached (free buffers kept for reuse).

        ``allocated_bytes``/``peak_bytes`` are the names the telemetry recorder reads.
        WebGPU does not report the device's total or free memory.
        """
        pool = self.pool.stats
        return {"used": pool["bytes_in_use"], "peak": pool["peak_bytes"], "cached": pool["bytes_cached"],
                "allocated_bytes": pool["bytes_in_use"], "peak_bytes": pool["peak_bytes"],
                "buffers_created": pool["allocations"]}

    def reset_peak_memory(self) -> None:
        """Start peak tracking afresh from the bytes in use now."""
        self.pool.stats["peak_bytes"] = self.pool.stats["bytes_in_use"]

    # ---- native arrays ------------------------------------------------------------------
    def from_numpy(self, array: np.ndarray) -> WGPUStorage:
        array = np.asarray(array)
        dt = from_numpy_dtype(array.dtype)
        check_dtype(dt, self.dtypes, "moving data to the device")
        return self.rt.upload(array, dt)

    def to_numpy(self, x: WGPUStorage) -> np.ndarray:
        if not x.is_contiguous():
            x = ew.clone(self.rt, x)
        return self.rt.download(x)

    def coerce(self, x: Any) -> WGPUStorage:
        if isinstance(x, WGPUStorage):
            return x
        return self.from_numpy(np.asarray(x))

    def shape_of(self, x: WGPUStorage) -> tuple[int, ...]:
        return x.shape

    def dtype_of(self, x: WGPUStorage) -> DType:
        return x.dtype

    def nbytes_of(self, x: WGPUStorage) -> int:
        return x.nbytes

    # ---- creation ---------------------------------------------------------------------------
    def full(self, shape: tuple[int, ...], value: Any, dtype: DType) -> WGPUStorage:
        check_dtype(dtype, self.dtypes, "full")
        return ew.fill(self.rt, tuple(shape), value, dtype)

    def arange(self, start: Any, stop: Any, step: Any, dtype: DType) -> WGPUStorage:
        check_dtype(dtype, self.dtypes, "arange")
        return ew.arange(self.rt, start, stop, step, dtype)

    def random(self, kind: str, shape: tuple[int, ...], dtype: DType, **params: Any) -> WGPUStorage:
        check_dtype(dtype, self.dtypes, f"random {kind}")
        from .random import random

        return random(self.rt, kind, tuple(shape), dtype, **params)

    def write(self, dst: WGPUStorage, src: Any) -> None:
        if isinstance(src, np.ndarray):
            src = self.coerce(src) if src.ndim else src.item()
        ew.copy_into(self.rt, dst, src)

    def device_timer(self) -> AbstractContextManager[Any] | None:
        """Per-op device timing for telemetry from timestamp queries (see ``timing.py``).

        Returns None when the adapter lacks the ``timestamp-query`` feature; telemetry
        then times ops on the host.
        """
        if not self.handle.has_timestamps:
            return None
        from .timing import timed_passes

        return timed_passes(self.handle.device, self.queue)

    def synchronize(self) -> None:
        """Submit queued work and wait for the GPU to finish it."""
        self.queue.wait()

    def empty_cache(self) -> int:
        """Release the pool's free buffers; returns the bytes released."""
        self.queue.flush()
        return self.pool.empty_cache()

    # ---- kernels --------------------------------------------------------------------------
    def kernels(self) -> dict[str, Callable[..., Any]]:
        if self._kernels is None:
            from .kernels import build_kernels

            self._kernels = build_kernels(self.rt)
        return dict(self._kernels)
