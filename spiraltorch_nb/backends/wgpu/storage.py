"""Device memory: pooled GPU buffers and the strided storage that views them.

A :class:`WGPUStorage` is what a wgpu Tensor holds: a :class:`Block` (one pooled GPU
buffer) plus shape, strides and offset in elements, and a dtype. Views (reshape,
permute, expand, basic indexing) are new storages over the same block, so they cost no
copy. A block goes back to the :class:`BufferPool` when the last storage using it is
garbage-collected; the pool hands it out again for the next request of the same size
class, so a training loop stops creating GPU buffers after its first step.

Reuse is safe without waiting for the GPU because every command goes through one
queue in order: a block freed after an op was recorded is only written by ops
recorded later (see ``queue.py`` for how uploads keep that order).
"""

from __future__ import annotations

import math
import threading
import weakref
from collections import defaultdict
from typing import Any

import numpy as np

from ...dtypes import DType
from ...errors import LimitError

__all__ = ["WGPUStorage", "Block", "BufferPool", "size_class", "contiguous_strides", "WGSL_TYPES"]

#: storage element type in WGSL for each dtype (bool is stored as u32)
WGSL_TYPES = {"float32": "f32", "float16": "f16", "int32": "i32", "uint32": "u32", "bool": "u32"}
#: bytes per element on the device
DEVICE_ITEMSIZE = {"float32": 4, "float16": 2, "int32": 4, "uint32": 4, "bool": 4}
#: NumPy dtype of the device representation
DEVICE_NP = {"float32": np.float32, "float16": np.float16, "int32": np.int32, "uint32": np.uint32,
             "bool": np.uint32}

_MIN_CLASS = 256


def size_class(nbytes: int) -> int:
    """Round a request up to its pool size class: powers of two split into quarters.

    At most 25% of a block is slack, and requests of similar size share a class.
    """
    if nbytes <= _MIN_CLASS:
        return _MIN_CLASS
    top = 1 << (nbytes - 1).bit_length()
    quarter = top // 8  # the classes between top/2 and top step by top/8
    return -(-nbytes // quarter) * quarter


def contiguous_strides(shape: tuple[int, ...]) -> tuple[int, ...]:
    """Row-major strides (in elements) of ``shape``."""
    strides = []
    acc = 1
    for s in reversed(shape):
        strides.append(acc)
        acc *= max(s, 1)
    return tuple(reversed(strides))


class Block:
    """One GPU buffer checked out of the pool; returned to it when garbage-collected."""

    __slots__ = ("buffer", "size", "__weakref__")

    def __init__(self, buffer: Any, size: int) -> None:
        self.buffer = buffer
        self.size = size


class BufferPool:
    """GPU buffers kept for reuse, keyed by size class.

    Attributes
    ----------
    stats : dict
        ``allocations`` (GPU buffers created), ``reuses`` (requests served from the
        pool), ``bytes_in_use``, ``peak_bytes`` and ``bytes_cached`` (free buffers held).
    """

    def __init__(self, device: Any, limits: dict[str, int]) -> None:
        import wgpu

        self._device = device
        self._usage = wgpu.BufferUsage.STORAGE | wgpu.BufferUsage.COPY_SRC | wgpu.BufferUsage.COPY_DST
        self.max_buffer_size = int(limits.get("max-buffer-size", 1 << 28))
        self.max_binding_size = int(limits.get("max-storage-buffer-binding-size", 1 << 27))
        self._free: dict[int, list[Any]] = defaultdict(list)
        self._lock = threading.Lock()
        self.stats = {"allocations": 0, "reuses": 0, "bytes_in_use": 0, "bytes_cached": 0, "peak_bytes": 0}
        #: called with no arguments when free buffers are destroyed (bind groups may hold them)
        self.on_release: Any = None

    def check_size(self, nbytes: int, what: str = "a tensor") -> None:
        """Raise LimitError when ``nbytes`` cannot be one buffer bound to a kernel."""
        if nbytes > self.max_buffer_size:
            msg = (f"{what} needs a buffer of {nbytes} bytes, over this adapter's max_buffer_size of "
                   f"{self.max_buffer_size} bytes; split the work into smaller tensors")
            raise LimitError(msg, limit="max_buffer_size", requested=nbytes, maximum=self.max_buffer_size)
        if nbytes > self.max_binding_size:
            msg = (f"{what} needs a buffer of {nbytes} bytes, over this adapter's "
                   f"max_storage_buffer_binding_size of {self.max_binding_size} bytes (every kernel binds "
                   "whole buffers); split the work into smaller tensors")
            raise LimitError(msg, limit="max_storage_buffer_binding_size", requested=nbytes,
                             maximum=self.max_binding_size)

    def acquire(self, nbytes: int) -> Block:
        """A block of at least ``nbytes`` (contents undefined)."""
        self.check_size(nbytes)
        size = min(size_class(nbytes), max(self.max_binding_size // 4 * 4, _MIN_CLASS))
        size = max(size, -(-nbytes // 4) * 4)
        free = self._free.get(size)
        buf = None
        if free:
            try:
                buf = free.pop()
            except IndexError:  # emptied by a finalizer between the check and the pop
                buf = None
        if buf is not None:
            self.stats["reuses"] += 1
            self.stats["bytes_cached"] -= size
        else:
            buf = self._create(size)
            self.stats["allocations"] += 1
        stats = self.stats
        stats["bytes_in_use"] += size
        if stats["bytes_in_use"] > stats["peak_bytes"]:
            stats["peak_bytes"] = stats["bytes_in_use"]
        block = Block(buf, size)
        weakref.finalize(block, self._release, buf, size)
        return block

    def _create(self, size: int) -> Any:
        try:
            return self._device.create_buffer(size=size, usage=self._usage)
        except Exception:  # out of memory: drop cached buffers and try once more
            self.empty_cache()
            return self._device.create_buffer(size=size, usage=self._usage)

    def _release(self, buf: Any, size: int) -> None:
        self._free[size].append(buf)
        self.stats["bytes_in_use"] -= size
        self.stats["bytes_cached"] += size

    def empty_cache(self) -> int:
        """Destroy every free buffer; returns the bytes released."""
        with self._lock:
            freed = 0
            for size, bufs in list(self._free.items()):
                while bufs:
                    buf = bufs.pop()
                    buf.destroy()
                    freed += size
            self.stats["bytes_cached"] -= freed
        if freed and self.on_release is not None:
            self.on_release()
        return freed


class WGPUStorage:
    """A strided view of a GPU buffer: the native array of the wgpu backend.

    Attributes
    ----------
    block : Block
        The pooled buffer holding the data (shared by views).
    shape, strides : tuple of int
        Sizes and strides in elements (strides may be 0 for broadcast dimensions, and
        negative for flipped views).
    offset : int
        Index of element ``(0, ..., 0)`` in the buffer, in elements.
    dtype : DType
    """

    __slots__ = ("block", "shape", "strides", "offset", "dtype", "__weakref__")

    def __init__(self, block: Block, shape: tuple[int, ...], strides: tuple[int, ...], offset: int,
                 dtype: DType) -> None:
        self.block = block
        self.shape = shape
        self.strides = strides
        self.offset = offset
        self.dtype = dtype

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        return self.size * self.dtype.itemsize

    @property
    def buffer(self) -> Any:
        return self.block.buffer

    @property
    def wgsl_type(self) -> str:
        return WGSL_TYPES[self.dtype.name]

    def is_contiguous(self) -> bool:
        """Whether the elements are dense and row-major (size-1 dimensions may have any stride)."""
        expected = 1
        for s, st in zip(reversed(self.shape), reversed(self.strides), strict=True):
            if s == 1:
                continue
            if st != expected:
                return False
            expected *= s
        return True

    def view(self, shape: tuple[int, ...], strides: tuple[int, ...], offset: int) -> WGPUStorage:
        """Another view of the same block."""
        return WGPUStorage(self.block, tuple(shape), tuple(strides), offset, self.dtype)

    def __repr__(self) -> str:
        return (f"<WGPUStorage {self.dtype.name} shape={self.shape} strides={self.strides} "
                f"offset={self.offset} buffer={self.block.size}B>")

