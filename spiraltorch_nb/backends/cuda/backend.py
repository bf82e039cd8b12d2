"""The cuda backend: CuPy arrays on NVIDIA GPUs, the cpu's kernel table plus fused kernels.

Every primitive comes from the same ``build_kernels`` table the cpu backend uses, called
with ``cupy`` and ``cupyx.scipy.special``; softmax, log-softmax, cross-entropy, layer norm
and bias+GELU additionally have fused kernels (``kernels/cuda/*.cu``). One backend
instance serves one device (``cuda:0``, ``cuda:1``, ...); its work runs under that
device and on CuPy's current stream, and ``.numpy()`` waits for it.

CuPy is imported only when the backend is probed or started, so ``import spiraltorch_nb``
works on machines without it.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from ... import dtypes as _dt
from ...dtypes import DType, from_numpy_dtype
from ...errors import DeviceError, DTypeError
from ...ops import registry as _registry
from .. import random as _random
from ..array_kernels import build_kernels
from ..base import Backend, report_transfer

__all__ = ["CUDABackend", "DeviceTimer", "EventTimeline", "INSTALL_HINT"]

#: what to run when CuPy is missing
INSTALL_HINT = "pip install 'spiraltorch-nb[cuda13]'  (or [cuda12] for a CUDA 12 driver)"

_FUSED = ("softmax", "log_softmax", "cross_entropy", "fused_bias_gelu", "fused_layer_norm")


def _nvidia_gpu_seen() -> bool:
    """Whether the OS shows an NVIDIA GPU (its device nodes or driver), without CUDA libraries."""
    import glob
    import os

    return bool(glob.glob("/dev/nvidia[0-9]*")) or os.path.exists("/proc/driver/nvidia/version")


class DeviceTimer:
    """GPU time between two CUDA events recorded on one stream.

    Reading :attr:`elapsed_ms` waits for the end event, so a timed block costs no
    synchronization until its result is asked for.
    """

    __slots__ = ("_start", "_end", "_done")

    def __init__(self, start: Any, end: Any) -> None:
        self._start = start
        self._end = end
        self._done = False

    @property
    def elapsed_ms(self) -> float:
        """Milliseconds of device time the block took (waits for the GPU to get there)."""
        if not self._done:
            raise DeviceError("the timed block has not finished yet; read elapsed_ms after the `with` block")
        import cupy

        self._end.synchronize()
        return float(cupy.cuda.get_elapsed_time(self._start, self._end))

    @property
    def elapsed_ns(self) -> int:
        """:attr:`elapsed_ms` in integer nanoseconds (the unit telemetry events use)."""
        return int(round(self.elapsed_ms * 1e6))


class EventTimeline:
    """The telemetry device timer (``Backend.device_timer`` protocol) built on CUDA events.

    :meth:`mark` records an event on the current stream after each op; its token stands
    for the device time between that event and the previous one, i.e. the op's kernels
    when the GPU is busy (when it idles, waiting for the host, the gap counts too).
    """

    def __init__(self, cupy: Any, device: Any) -> None:
        self._cupy = cupy
        self._dev = device
        self._spans: dict[int, tuple[Any, Any]] = {}
        self._next = 0
        self._prev = self._record()

    def _record(self) -> Any:
        cuda = self._cupy.cuda
        with self._dev:
            ev = cuda.Event()
            ev.record(cuda.get_current_stream())
        return ev

    def mark(self) -> int:
        ev = self._record()
        token = self._next
        self._next += 1
        self._spans[token] = (self._prev, ev)
        self._prev = ev
        return token

    def elapsed_ns(self, tokens: list[int]) -> list[int | None]:
        """Device nanoseconds per token (waits for the GPU to reach each token's end event)."""
        out: list[int | None] = []
        for token in tokens:
            span = self._spans.pop(token, None)
            if span is None:
                out.append(None)
                continue
            start, end = span
            end.synchronize()
            out.append(int(round(self._cupy.cuda.get_elapsed_time(start, end) * 1e6)))
        return out


class _PeakTracker:
    """An allocator in front of CuPy's memory pool that remembers the most it ever handed out."""

    def __init__(self, pool: Any) -> None:
        self.pool = pool
        self.peak: dict[int, int] = {}

    def malloc(self, size: int) -> Any:
        mem = self.pool.malloc(size)
        dev = mem.device_id
        used = self.pool.used_bytes()  # of the current device, which is the one allocated on
        if used > self.peak.get(dev, 0):
            self.peak[dev] = used
        return mem


_tracker_lock = threading.Lock()
_tracker: _PeakTracker | None = None


def _peak_tracker(cupy: Any) -> _PeakTracker | None:
    """Install the peak-tracking allocator once, unless the user installed their own allocator."""
    global _tracker
    with _tracker_lock:
        if _tracker is None:
            pool = cupy.get_default_memory_pool()
            current = cupy.cuda.get_allocator()
            if current != pool.malloc:
                return None  # a custom allocator (managed memory, RMM, ...) stays untouched
            _tracker = _PeakTracker(pool)
            cupy.cuda.set_allocator(_tracker.malloc)
        return _tracker


def _on_input_device(fn: Callable[..., Any], ndarray: Any) -> Callable[..., Any]:
    """Run ``fn`` under the device of its first CuPy array argument (multi-GPU machines)."""

    def run(*args: Any, **attrs: Any) -> Any:
        for a in args:
            if isinstance(a, ndarray):
                with a.device:
                    return fn(*args, **attrs)
        return fn(*args, **attrs)

    run.__name__ = getattr(fn, "__name__", "kernel")
    return run


class CUDABackend(Backend):
    """Runs every op with CuPy on one NVIDIA GPU, with fused kernels for the hot nn ops."""

    name = "cuda"
    dtypes = (_dt.float16, _dt.float32, _dt.float64, _dt.int32, _dt.int64, _dt.uint32, _dt.bool_)

    def __init__(self, device: Any) -> None:
        super().__init__(device)
        import cupy

        self._cupy = cupy
        self.native_type = cupy.ndarray
        self.index = int(device.index or 0)
        self._dev = cupy.cuda.Device(self.index)
        self._pool = cupy.get_default_memory_pool()
        self._tracker = _peak_tracker(cupy)

    # ---- availability -----------------------------------------------------------------
    @classmethod
    def probe(cls) -> dict[str, Any]:
        """Whether CuPy and a CUDA device are usable, with the reason in words when not."""
        try:
            import cupy
        except ImportError:
            gpu = _nvidia_gpu_seen()
            where = ("an NVIDIA GPU is present, but CuPy is not installed"
                     if gpu else "no NVIDIA GPU (no /dev/nvidia* device, no driver) and CuPy is not installed")
            return {"available": False, "reason": f"{where}: {INSTALL_HINT}", "devices": []}
        except Exception as exc:  # a broken CuPy install (wrong CUDA wheel, missing libs) is a reason
            return {"available": False, "devices": [],
                    "reason": f"CuPy failed to import ({type(exc).__name__}: {exc}); reinstall it: {INSTALL_HINT}"}
        try:
            count = int(cupy.cuda.runtime.getDeviceCount())
        except Exception as exc:
            return {"available": False, "reason": f"no CUDA device: {_cuda_error_text(cupy, exc)}", "devices": []}
        if count < 1:
            return {"available": False, "reason": "no CUDA device: the driver reports 0 GPUs", "devices": []}
        return {"available": True, "reason": "", "devices": [f"cuda:{i}" for i in range(count)]}

    @classmethod
    def declared_kernels(cls) -> list[str]:
        """The op names :meth:`kernels` provides, known without CuPy or a GPU (for the backend matrix)."""
        import scipy.special

        from .fused import FUSED_OPS

        return sorted(set(build_kernels(np, scipy.special)) | set(FUSED_OPS))

    def describe(self) -> dict[str, Any]:
        """Device name, compute capability, memory (device and CuPy pool) and versions."""
        cupy = self._cupy
        rt = cupy.cuda.runtime
        props = rt.getDeviceProperties(self.index)
        name = props["name"]
        mem = self.memory_stats()
        return {
            "device_name": name.decode() if isinstance(name, bytes) else str(name),
            "compute_capability": f"{props['major']}.{props['minor']}",
            "multiprocessors": int(props["multiProcessorCount"]),
            "memory_total": mem["device_total"],
            "memory_used": mem["device_total"] - mem["device_free"],
            "pool": {"used": mem["used"], "total": mem["total"], "peak": mem["peak"]},
            "cupy": cupy.__version__,
            "cuda_runtime": _version_text(rt.runtimeGetVersion()),
            "cuda_driver": _version_text(rt.driverGetVersion()),
        }

    def capabilities(self) -> dict[str, Any]:
        return {"dtypes": [d.name for d in self.dtypes], "autograd": True, "fused": list(_FUSED),
                "streams": True, "dlpack": True, "cuda_array_interface": True}

    # ---- memory and time --------------------------------------------------------------------
    def memory_stats(self) -> dict[str, int]:
        """CuPy pool bytes in use, held and at peak on this device, plus the device's free/total.

        ``peak`` is the most the pool had handed out since the backend started or since
        :meth:`reset_peak_memory` (it equals ``used`` when a custom allocator is installed).
        ``allocated_bytes``/``peak_bytes`` repeat ``used``/``peak`` under the names the
        telemetry recorder reads.
        """
        with self._dev:
            used = int(self._pool.used_bytes())
            total = int(self._pool.total_bytes())
            free, device_total = self._cupy.cuda.runtime.memGetInfo()
        peak = used
        if self._tracker is not None:
            peak = max(used, self._tracker.peak.get(self.index, 0))
            self._tracker.peak[self.index] = peak
        return {"used": used, "total": total, "peak": peak, "device_free": int(free),
                "device_total": int(device_total), "allocated_bytes": used, "peak_bytes": peak}

    def reset_peak_memory(self) -> None:
        """Start peak tracking afresh from the bytes in use now."""
        if self._tracker is not None:
            with self._dev:
                self._tracker.peak[self.index] = int(self._pool.used_bytes())

    def empty_cache(self) -> None:
        """Give the pool's unused blocks back to the driver."""
        with self._dev:
            self._pool.free_all_blocks()

    @contextlib.contextmanager
    def timer(self, stream: Any = None) -> Iterator[DeviceTimer]:
        """Measure the device time of the work queued inside the block, with CUDA events.

        Example (needs a GPU)::

            be = st.backends.get_backend("cuda")
            with be.timer() as t:
                y = x @ x
            t.elapsed_ms
        """
        cupy = self._cupy
        with self._dev:
            s = stream if stream is not None else cupy.cuda.get_current_stream()
            start, end = cupy.cuda.Event(), cupy.cuda.Event()
            timer = DeviceTimer(start, end)
            start.record(s)
            try:
                yield timer
            finally:
                end.record(s)
                timer._done = True

    @contextlib.contextmanager
    def device_timer(self) -> Iterator[EventTimeline]:
        """Per-op device timing for telemetry (see ``spiraltorch_nb.telemetry.recorder``)."""
        yield EventTimeline(self._cupy, self._dev)

    def stream(self, non_blocking: bool = False) -> Any:
        """A new CuPy stream on this device; ``with stream:`` makes ops queue on it."""
        with self._dev:
            return self._cupy.cuda.Stream(non_blocking=non_blocking)

    def synchronize(self) -> None:
        """Wait until every stream of this device has finished its queued work."""
        self._dev.synchronize()

    # ---- native arrays -------------------------------------------------------------------------
    def from_numpy(self, array: np.ndarray) -> Any:
        obs = _registry._observer
        t0 = time.perf_counter_ns() if obs else 0
        with self._dev:
            out = self._cupy.asarray(array)
        if obs:
            report_transfer("host", str(self.device), int(out.nbytes), t0, time.perf_counter_ns() - t0)
        return out

    def to_numpy(self, x: Any) -> np.ndarray:
        obs = _registry._observer
        t0 = time.perf_counter_ns() if obs else 0
        dev = x.device
        # wait for every stream of the device, not only the current one: x may have been
        # produced on a non-blocking stream the caller has since left
        dev.synchronize()
        with dev:
            out = x.get()
        if obs:
            report_transfer(str(self.device), "host", int(out.nbytes), t0, time.perf_counter_ns() - t0)
        return out

    def coerce(self, x: Any) -> Any:
        with self._dev:
            return self._cupy.asarray(x)

    def dtype_of(self, x: Any) -> DType:
        return from_numpy_dtype(x.dtype)

    # ---- creation ----------------------------------------------------------------------------
    def full(self, shape: tuple[int, ...], value: Any, dtype: DType) -> Any:
        with self._dev:
            return self._cupy.full(shape, value, dtype=dtype.np)

    def random(self, kind: str, shape: tuple[int, ...], dtype: DType, **params: Any) -> Any:
        cupy = self._cupy
        with self._dev:
            gen = _random.generator(str(self.device), cupy.random.default_rng)
            if kind == "permutation":  # CuPy's Generator has no permutation(): sort random keys
                return cupy.argsort(gen.random((params["n"],))).astype(dtype.np, copy=False)
            return _random.numpy_random(gen, kind, shape, dtype.np, **params)

    def write(self, dst: Any, src: Any) -> None:
        with dst.device:
            self._cupy.copyto(dst, src, casting="unsafe")

    # ---- interop -------------------------------------------------------------------------------
    def dlpack(self, x: Any, *args: Any, **kwargs: Any) -> Any:
        """The DLPack capsule of ``x`` (``Tensor.__dlpack__``): shares memory, no copy."""
        with x.device:
            return x.__dlpack__(*args, **kwargs)

    def dlpack_device(self, x: Any) -> tuple[int, int]:
        dev_type, dev_id = x.__dlpack_device__()
        return int(dev_type), int(dev_id)

    def from_dlpack(self, x: Any) -> Any:
        """A CuPy array sharing memory with a CUDA DLPack producer (CuPy, PyTorch, JAX, ...)."""
        with self._dev:
            arr = self._cupy.from_dlpack(x)
        try:
            from_numpy_dtype(arr.dtype)
        except DTypeError as exc:
            raise DTypeError(f"from_dlpack: {arr.dtype} arrays are not supported; convert to one of "
                             f"{', '.join(d.name for d in self.dtypes)} first", dtype=arr.dtype) from exc
        return arr

    # ---- kernels ---------------------------------------------------------------------------------
    def kernels(self) -> dict[str, Callable[..., Any]]:
        """The cpu's kernel table on CuPy, with the fused kernels layered on top."""
        import cupyx.scipy.special

        from .fused import fused_kernels

        table = build_kernels(self._cupy, cupyx.scipy.special)
        table.update(fused_kernels(table))
        if self._cupy.cuda.runtime.getDeviceCount() > 1:
            # kernels are shared by every cuda:N backend, so each call picks its inputs' device;
            # with one GPU that device is always current and the wrapper would be pure overhead
            nd = self._cupy.ndarray
            table = {name: _on_input_device(fn, nd) for name, fn in table.items()}
        return table


def _cuda_error_text(cupy: Any, exc: Exception) -> str:
    """The CUDA error with what it most likely means on this machine."""
    text = str(exc) or type(exc).__name__
    rt = cupy.cuda.runtime
    try:
        driver = int(rt.driverGetVersion())
    except Exception:
        driver = 0
    if driver == 0:
        return f"{text} (no NVIDIA driver is installed or loadable here, so there is no GPU to use)"
    if "InsufficientDriver" in text:
        try:
            needed = _version_text(int(rt.runtimeGetVersion()))
        except Exception:
            needed = "a newer CUDA"
        return (f"{text} (the driver supports CUDA {_version_text(driver)} but this CuPy needs {needed}: "
                "update the driver, or install the CuPy build for the older CUDA, e.g. the [cuda12] extra)")
    if "NoDevice" in text or "no CUDA-capable device" in text:
        return f"{text} (no NVIDIA GPU is visible: check nvidia-smi and CUDA_VISIBLE_DEVICES)"
    return text


def _version_text(v: int) -> str:
    return f"{v // 1000}.{(v % 1000) // 10}"
