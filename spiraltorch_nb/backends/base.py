"""The Backend protocol: the small contract every device backend implements.

A backend owns native arrays (``numpy.ndarray`` on cpu, ``cupy.ndarray`` on cuda, a
buffer-backed storage on wgpu) and provides:

* host transfer: ``from_numpy`` and ``to_numpy`` (the only ways data crosses);
* introspection of a native array: ``shape_of``, ``dtype_of``, ``nbytes_of``;
* creation: ``full``, ``arange``, ``random`` (reproducible from ``st.manual_seed``);
* in-place writes: ``write`` (copy one array into another of the same shape);
* kernels: a mapping ``op name -> forward`` registered into the operator registry
  when the backend loads (``kernels()``), so every op still goes through one dispatch;
* ``describe()`` (device name, memory, limits) and ``capabilities()`` (dtypes, ops).
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from typing import Any

import numpy as np

from ..device import Device
from ..dtypes import DType
from ..dtypes import int64 as _dt_int64

__all__ = ["Backend"]


class Backend(abc.ABC):
    """Base class of a device backend. Subclasses fill in the native operations."""

    #: backend name, also the device type ("cpu", "cuda", "wgpu")
    name: str = ""
    #: dtypes this backend can hold
    dtypes: tuple[DType, ...] = ()
    #: the integer dtype used when none is given (int64; int32 where 64-bit integers are absent)
    default_int: DType = _dt_int64

    def __init__(self, device: Device) -> None:
        self.device = device

    # ---- availability -----------------------------------------------------------
    @classmethod
    @abc.abstractmethod
    def probe(cls) -> dict[str, Any]:
        """``{"available": bool, "reason": str, "devices": [...]}`` without raising."""

    @abc.abstractmethod
    def describe(self) -> dict[str, Any]:
        """``device_name``, memory figures and limits of this device."""

    def capabilities(self) -> dict[str, Any]:
        return {"dtypes": [d.name for d in self.dtypes]}

    # ---- native arrays -------------------------------------------------------------
    @abc.abstractmethod
    def from_numpy(self, array: np.ndarray) -> Any:
        """A native array holding ``array``'s values on this device (a host-to-device transfer)."""

    @abc.abstractmethod
    def to_numpy(self, x: Any) -> np.ndarray:
        """The values of native array ``x`` on the host (a device-to-host transfer)."""

    def shape_of(self, x: Any) -> tuple[int, ...]:
        return tuple(x.shape)

    @abc.abstractmethod
    def dtype_of(self, x: Any) -> DType:
        """The DType of native array ``x``."""

    def nbytes_of(self, x: Any) -> int:
        return int(x.nbytes)

    # ---- creation ------------------------------------------------------------------
    def full(self, shape: tuple[int, ...], value: Any, dtype: DType) -> Any:
        return self.from_numpy(np.full(shape, value, dtype=dtype.np))

    def arange(self, start: Any, stop: Any, step: Any, dtype: DType) -> Any:
        return self.from_numpy(np.arange(start, stop, step, dtype=dtype.np))

    @abc.abstractmethod
    def random(self, kind: str, shape: tuple[int, ...], dtype: DType, **params: Any) -> Any:
        """Random values (``uniform``, ``normal``, ``integers``, ``bernoulli``, ``permutation``)."""

    @abc.abstractmethod
    def write(self, dst: Any, src: Any) -> None:
        """Copy ``src`` into ``dst`` in place (same shape; ``src`` may be a scalar)."""

    def synchronize(self) -> None:  # noqa: B027  (a real default: synchronous backends have nothing to wait for)
        """Wait for queued work (a no-op on synchronous backends)."""

    # ---- kernels -----------------------------------------------------------------
    def kernels(self) -> dict[str, Callable[..., Any]]:
        """Forward implementations by op name, registered into the operator registry."""
        return {}

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.device}>"


def report_transfer(src: str, dst: str, nbytes: int, start_ns: int, duration_ns: int) -> None:
    """Tell the active telemetry observer that ``nbytes`` crossed between host and device."""
    from ..ops import registry

    obs = registry._observer
    if obs is not None and hasattr(obs, "on_transfer"):
        obs.on_transfer(src, dst, nbytes, start_ns, duration_ns)
