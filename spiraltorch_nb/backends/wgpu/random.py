"""Reproducible random tensors on the device (Philox4x32-10, ``kernels/wgsl/philox.wgsl``).

The generator is only a seed and a 64-bit counter: a draw of n values consumes
ceil(n / 4) counter blocks. It is created through
``spiraltorch_nb.backends.random.generator("wgpu", PhiloxCounter)``, so
``st.manual_seed(s)`` resets it and the same seed repeats the same tensors.
"""

from __future__ import annotations

import threading
from typing import Any

from ... import dtypes as _dt
from ...dtypes import DType
from .. import random as _random
from .runtime import EXTRA, Runtime, compute_type, f32_bits, i32_bits
from .storage import WGSL_TYPES, WGPUStorage

__all__ = ["PhiloxCounter", "install_generator", "random"]

_KINDS = {"uniform": 0, "normal": 1, "integers": 2, "bernoulli": 3}
_MASK = 0xFFFFFFFF


class PhiloxCounter:
    """A Philox stream: the seed (key) and the next unused counter block."""

    def __init__(self, seed: int) -> None:
        self.seed = int(seed) & 0xFFFFFFFFFFFFFFFF
        self.counter = 0
        self._lock = threading.Lock()

    def reserve(self, blocks: int) -> int:
        """Claim ``blocks`` counter values; returns the first."""
        with self._lock:
            start = self.counter
            self.counter += blocks
            return start

    def words(self, start: int) -> list[int]:
        """(counter lo, counter hi, seed lo, seed hi) as u32 words."""
        return [start & _MASK, (start >> 32) & _MASK, self.seed & _MASK, (self.seed >> 32) & _MASK]

    def __repr__(self) -> str:
        return f"PhiloxCounter(seed={self.seed}, counter={self.counter})"


def install_generator() -> PhiloxCounter:
    """The wgpu generator (created from the current seed on first use)."""
    return _random.generator("wgpu", PhiloxCounter)


def random(rt: Runtime, kind: str, shape: tuple[int, ...], dtype: DType, **params: Any) -> WGPUStorage:
    """Draw ``kind`` ("uniform", "normal", "integers", "bernoulli", "permutation") on the device."""
    gen = install_generator()
    if kind == "permutation":
        return _permutation(rt, gen, int(params["n"]), dtype)
    if kind not in _KINDS:
        raise ValueError(f"unknown random kind {kind!r}")
    out = rt.empty(shape, dtype)
    n = out.size
    if n == 0:
        return out
    words = [0] * EXTRA
    words[0] = n
    words[1:5] = gen.words(gen.reserve(-(-n // 4)))
    if kind == "uniform":
        words[5:7] = [f32_bits(params.get("low", 0.0)), f32_bits(params.get("high", 1.0))]
    elif kind == "normal":
        words[5:7] = [f32_bits(params.get("mean", 0.0)), f32_bits(params.get("std", 1.0))]
    elif kind == "integers":
        low, high = int(params["low"]), int(params["high"])
        if high - low > 2**32 or not -(2**31) <= low < 2**31:
            raise ValueError(f"randint on wgpu draws from ranges of at most 2**32 values within int32; "
                             f"got [{low}, {high})")
        words[5:7] = [i32_bits(low), (high - low) & _MASK]
    else:
        words[5] = f32_bits(params["p"])
    c = "f32" if dtype.kind == "f" else ("i32" if dtype is _dt.int32 else compute_type(dtype))
    pipe = rt.pipeline("random", "w", types={"TO": WGSL_TYPES[dtype.name], "C": c}, consts={"KIND": _KINDS[kind]})
    rt.launch(pipe, (out.buffer,), words, -(-n // 4))
    return out


def _permutation(rt: Runtime, gen: PhiloxCounter, n: int, dtype: DType) -> WGPUStorage:
    from . import elementwise as ew

    size = 1
    while size < n:
        size *= 2
    keys = rt.empty((size,), _dt.uint32)
    idx = rt.empty((size,), _dt.uint32)
    if n == 0:
        return rt.empty((0,), dtype)
    words = [0] * EXTRA
    words[0], words[1] = size, n
    words[2:6] = gen.words(gen.reserve(-(-n // 4)))
    init = rt.pipeline("sort", "ww", entry="perm_init")
    rt.launch(init, (keys.buffer, idx.buffer), words, size)
    step = rt.pipeline("sort", "ww", entry="bitonic_step")
    k = 2
    while k <= size:
        j = k // 2
        while j >= 1:
            w = [0] * EXTRA
            w[0], w[1], w[2] = size, j, k
            rt.launch(step, (keys.buffer, idx.buffer), w, size)
            j //= 2
        k *= 2
    return ew.cast(rt, idx.view((n,), (1,), 0), dtype)
