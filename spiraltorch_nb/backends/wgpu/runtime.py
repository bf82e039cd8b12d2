"""The pieces every wgpu kernel launch needs, in one object.

:class:`Runtime` owns the device, the buffer pool, the command queue and the pipeline
cache, and offers the few primitives the op modules are written with: allocate a
storage, launch a kernel over n elements (or a given grid), upload and download.
It also packs the "indexer" parameter block that ``common.wgsl`` reads.
"""

from __future__ import annotations

import math
import struct
import time
from typing import Any

import numpy as np

from ... import dtypes as _dt
from ...dtypes import DType
from ...errors import DTypeError, LimitError
from .adapter import DeviceHandle
from .pipelines import Pipeline, PipelineCache
from .queue import CommandQueue
from .storage import (
    DEVICE_ITEMSIZE,
    DEVICE_NP,
    BufferPool,
    WGPUStorage,
    contiguous_strides,
)

__all__ = ["Runtime", "broadcast_shapes", "f32_bits", "i32_bits", "compute_type", "category", "MAX_DIMS", "EXTRA"]

MAX_DIMS = 8
EXTRA = 48
_MAX_GROUPS = 65535
_F32 = struct.Struct("<f")
_U32 = struct.Struct("<I")


def f32_bits(v: float) -> int:
    """The IEEE bits of ``v`` rounded to float32."""
    return _U32.unpack(_F32.pack(float(v)))[0]


def i32_bits(v: int) -> int:
    return int(v) & 0xFFFFFFFF


def compute_type(dt: DType) -> str:
    """The WGSL type arithmetic on ``dt`` is done in (float16 computes in f32)."""
    return {"float32": "f32", "float16": "f32", "int32": "i32", "uint32": "u32", "bool": "u32"}[dt.name]


def category(dt: DType) -> str:
    """Suffix of the kernel functions for ``dt``: f(loat), i(nt32), u(int32), b(ool)."""
    return {"float32": "f", "float16": "f", "int32": "i", "uint32": "u", "bool": "b"}[dt.name]


def scalar_bits(v: Any, dt: DType) -> int:
    """A Python scalar as the bits of ``dt``'s compute type, converted as NumPy would."""
    kind = dt.name
    if kind in ("float32", "float16"):
        if kind == "float16":
            v = float(np.float16(v))
        return f32_bits(v)
    if kind == "bool":
        return 1 if v else 0
    iv = int(v)
    if kind == "int32":
        if not -(2**31) <= iv < 2**31:
            raise OverflowError(f"Python integer {iv} out of bounds for int32")
        return i32_bits(iv)
    if not 0 <= iv < 2**32:
        raise OverflowError(f"Python integer {iv} out of bounds for uint32")
    return iv


def broadcast_shapes(*shapes: tuple[int, ...]) -> tuple[int, ...]:
    """NumPy's broadcasting of shapes (ValueError naming them when they do not broadcast).

    Written out because ``np.broadcast_shapes`` costs several microseconds per call, a
    noticeable share of a small op.
    """
    first = shapes[0]
    if all(s == first for s in shapes):
        return tuple(first)
    nd = max(len(s) for s in shapes)
    out = [1] * nd
    for s in shapes:
        lead = nd - len(s)
        for d, n in enumerate(s):
            cur = out[lead + d]
            if n != cur:
                if cur == 1:
                    out[lead + d] = n
                elif n != 1:
                    raise ValueError("shape mismatch: objects cannot be broadcast to a single shape: "
                                     + " and ".join(str(tuple(x)) for x in shapes))
    return tuple(out)


def coalesce(shape: tuple[int, ...], strides: list[tuple[int, ...]]) -> tuple[tuple[int, ...], list[tuple[int, ...]]]:
    """Drop size-1 dimensions and merge neighbours that every operand walks as one."""
    dims = [i for i, s in enumerate(shape) if s != 1]
    out_shape: list[int] = []
    out_strides: list[list[int]] = [[] for _ in strides]
    for d in dims:
        if out_shape and all(out_strides[k][-1] == st[d] * shape[d] for k, st in enumerate(strides)):
            out_shape[-1] *= shape[d]
            for k, st in enumerate(strides):
                out_strides[k][-1] = st[d]
            continue
        out_shape.append(shape[d])
        for k, st in enumerate(strides):
            out_strides[k].append(st[d])
    return tuple(out_shape), [tuple(s) for s in out_strides]


class Runtime:
    """Device, pool, queue and pipelines of the wgpu backend (see module docstring)."""

    def __init__(self, handle: DeviceHandle) -> None:
        self.handle = handle
        self.device = handle.device
        self.limits = handle.limits
        self.stats = {"uploads": 0, "downloads": 0, "submits": 0, "dispatches": 0}
        self.pool = BufferPool(self.device, self.limits)
        self.queue = CommandQueue(self.device, self.limits, self.stats)
        self.pool.on_release = self.queue.forget_bind_groups
        self.pipelines = PipelineCache(self.device, handle.has_f16)
        #: a software adapter (lavapipe/llvmpipe): some kernels pick variants without barriers
        self.cpu_adapter = str(handle.adapter_info.get("adapter_type", "")) == "CPU"
        self.max_groups = int(self.limits.get("max-compute-workgroups-per-dimension", _MAX_GROUPS))
        # bound where a kernel declares a buffer it does not read (a fill has no source)
        self._dummy = self.pool.acquire(256)
        self._dummy2 = self.pool.acquire(256)  # a second one, where two unused slots differ in access

    # ---- storages ------------------------------------------------------------------
    def empty(self, shape: tuple[int, ...], dtype: DType) -> WGPUStorage:
        """A new contiguous storage (contents undefined)."""
        shape = tuple(int(s) for s in shape)
        n = math.prod(shape)
        item = DEVICE_ITEMSIZE[dtype.name]
        if n * item > self.pool.max_binding_size or n * item > self.pool.max_buffer_size:
            self.pool.check_size(n * item, f"a {dtype.name} tensor of shape {shape}")
        if n >= 2**31:
            raise LimitError(f"a tensor of shape {shape} has {n} elements; wgpu kernels index at most 2**31 - 1",
                             limit="max_elements", requested=n, maximum=2**31 - 1)
        block = self.pool.acquire(max(n * item, 4))
        return WGPUStorage(block, shape, contiguous_strides(shape), 0, dtype)

    @property
    def dummy(self) -> Any:
        return self._dummy.buffer

    @property
    def dummy2(self) -> Any:
        return self._dummy2.buffer

    # ---- launching ------------------------------------------------------------------
    def pipeline(self, kernel: str, signature: str, *, entry: str = "main", types: dict[str, str] | None = None,
                 consts: dict[str, Any] | None = None, wg: int = 256, op: tuple[str, int] | None = None) -> Pipeline:
        """The cached pipeline of a kernel variant; ``op`` = (function, arity) defines ``fn op``."""
        return self.pipelines.get(kernel, signature, entry=entry, types=types, consts=consts, wg=wg, op=op)

    def grid(self, groups: int) -> tuple[int, int, int]:
        """``groups`` workgroups as a grid within the per-dimension limit (1-D, then 2-D).

        Raises
        ------
        LimitError
            When even a 2-D grid would need more than the adapter's
            ``max_compute_workgroups_per_dimension`` in one dimension; ``requested`` is
            ``groups`` and ``maximum`` the most workgroups such a grid holds.
        """
        m = self.max_groups
        if groups <= m:
            return (max(groups, 1), 1, 1)
        y = -(-groups // m)
        if y <= m:
            return (m, y, 1)
        # the kernels flatten a 2-D grid (common.wgsl), so m * m workgroups is the ceiling
        msg = (f"a dispatch of {groups} workgroups needs a grid of {m} x {y}, over this adapter's "
               f"max_compute_workgroups_per_dimension of {m} (at most {m} x {m} = {m * m} workgroups per kernel "
               "launch); split the work into smaller tensors, e.g. process the rows in chunks")
        raise LimitError(msg, limit="max_compute_workgroups_per_dimension", requested=groups, maximum=m * m)

    def launch(self, pipe: Pipeline, buffers: tuple[Any, ...], params: list[int], threads: int, wg: int = 256) -> None:
        """Dispatch enough workgroups of ``wg`` invocations to cover ``threads``."""
        if threads <= 0:
            return
        self.queue.dispatch(pipe, buffers, params, self.grid(-(-threads // wg)))

    def launch_groups(self, pipe: Pipeline, buffers: tuple[Any, ...], params: list[int], groups: int) -> None:
        """Dispatch ``groups`` workgroups (one per row, for row kernels)."""
        if groups <= 0:
            return
        self.queue.dispatch(pipe, buffers, params, self.grid(groups))

    # ---- parameters -------------------------------------------------------------------
    @staticmethod
    def indexer(shape: tuple[int, ...], operands: list[tuple[tuple[int, ...], int]], n: int | None = None) -> list[int]:
        """The 48-word indexer block for ``shape`` and up to four (strides, offset) operands."""
        cshape, cstrides = coalesce(tuple(shape), [s for s, _ in operands])
        if len(cshape) > MAX_DIMS:
            raise LimitError(f"wgpu kernels index up to {MAX_DIMS} dimensions after merging contiguous ones; "
                             f"got shape {tuple(shape)}", limit="max_dims", requested=len(cshape), maximum=MAX_DIMS)
        words = [0] * EXTRA
        words[0] = math.prod(shape) if n is None else n
        words[1] = len(cshape)
        for k, (_, off) in enumerate(operands):
            words[2 + k] = off & 0xFFFFFFFF
        for d, s in enumerate(cshape):
            words[8 + d] = s
        for k, st in enumerate(cstrides):
            base = 16 + 8 * k
            for d, v in enumerate(st):
                words[base + d] = v & 0xFFFFFFFF
        return words

    @staticmethod
    def is_linear(words: list[int], n_operands: int) -> bool:
        """Whether an indexer block walks every operand densely with stride 1 (LINEAR)."""
        if words[1] == 0:
            return True
        return words[1] == 1 and all(words[16 + 8 * k] == 1 for k in range(n_operands))

    # ---- host transfers ----------------------------------------------------------------
    def upload(self, array: np.ndarray, dtype: DType) -> WGPUStorage:
        """A new storage holding ``array`` (already of a dtype this backend holds)."""
        host = np.ascontiguousarray(array, dtype=DEVICE_NP[dtype.name])
        out = self.empty(tuple(array.shape), dtype)
        if host.size:
            self.queue.upload(out.buffer, 0, host)
        else:  # nothing crosses, but the call is still a transfer the caller asked for
            t0 = time.perf_counter_ns()
            from ..base import report_transfer

            report_transfer("host", "wgpu", 0, t0, 0)
            self.stats["uploads"] += 1
        return out

    def download(self, x: WGPUStorage) -> np.ndarray:
        """The values of a contiguous storage as a new NumPy array of its dtype."""
        n = x.size
        item = DEVICE_ITEMSIZE[x.dtype.name]
        raw = self.queue.read(x.buffer, x.offset * item, n * item) if n else memoryview(b"")
        arr = np.frombuffer(raw, dtype=DEVICE_NP[x.dtype.name], count=n).copy() if n else \
            np.empty(0, DEVICE_NP[x.dtype.name])
        if x.dtype is _dt.bool_:
            arr = arr != 0
        return arr.reshape(x.shape)


def check_dtype(dt: DType, held: tuple[DType, ...], what: str = "this operation") -> None:
    """Raise DTypeError for a dtype the wgpu backend cannot hold, saying what to use instead."""
    if dt in held:
        return
    if dt.name in ("float64", "int64"):
        alt = "float32" if dt.name == "float64" else "int32"
        msg = (f"{dt.name} is not supported on wgpu ({what}): WGSL has no 64-bit types; use {alt} instead, "
               f"e.g. x.to(st.{alt}) before moving, or dtype=st.{alt}")
    else:
        ok = ", ".join(d.name for d in held)
        msg = f"{dt.name} is not supported on wgpu ({what}); supported dtypes: {ok}"
    raise DTypeError(msg, op=None, dtype=dt)

