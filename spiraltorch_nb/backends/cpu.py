"""The cpu backend: NumPy arrays, the reference every other backend is checked against."""

from __future__ import annotations

import os
import platform
from collections.abc import Callable
from typing import Any

import numpy as np

from .. import dtypes as _dt
from ..dtypes import DType, from_numpy_dtype
from . import random as _random
from .array_kernels import build_kernels
from .base import Backend

__all__ = ["CPUBackend"]


def _cpu_model() -> str:
    """The processor's marketing name where the OS tells it, else the architecture."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


class CPUBackend(Backend):
    """Runs every op with NumPy (and SciPy for erf)."""

    name = "cpu"
    dtypes = (_dt.float16, _dt.float32, _dt.float64, _dt.int32, _dt.int64, _dt.uint32, _dt.bool_)
    native_type = np.ndarray

    @classmethod
    def probe(cls) -> dict[str, Any]:
        return {"available": True, "reason": "", "devices": ["cpu"]}

    def describe(self) -> dict[str, Any]:
        total = None
        try:
            total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        except (ValueError, OSError, AttributeError):
            pass
        return {
            "device_name": _cpu_model(),
            "cores": os.cpu_count(),
            "memory_total": total,
            "memory_used": None,
            "numpy": np.__version__,
        }

    def capabilities(self) -> dict[str, Any]:
        return {"dtypes": [d.name for d in self.dtypes], "autograd": True, "fused": ["softmax", "log_softmax"]}

    def from_numpy(self, array: np.ndarray) -> np.ndarray:
        return array

    def to_numpy(self, x: np.ndarray) -> np.ndarray:
        return x

    def coerce(self, x: Any) -> np.ndarray:
        return np.asarray(x)

    def dtype_of(self, x: np.ndarray) -> DType:
        return from_numpy_dtype(x.dtype)

    def full(self, shape: tuple[int, ...], value: Any, dtype: DType) -> np.ndarray:
        if not shape:  # a scalar (the seed gradient of every backward): np.full's Python layer costs 4x
            return np.array(value, dtype=dtype.np)
        return np.full(shape, value, dtype=dtype.np)

    def arange(self, start: Any, stop: Any, step: Any, dtype: DType) -> np.ndarray:
        return np.arange(start, stop, step, dtype=dtype.np)

    def random(self, kind: str, shape: tuple[int, ...], dtype: DType, **params: Any) -> np.ndarray:
        return _random.numpy_random(_random.generator("cpu"), kind, shape, dtype.np, **params)

    def write(self, dst: np.ndarray, src: Any) -> None:
        np.copyto(dst, src, casting="unsafe")

    def kernels(self) -> dict[str, Callable[..., Any]]:
        import scipy.special

        return build_kernels(np, scipy.special)
