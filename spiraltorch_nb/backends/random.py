"""Reproducible random numbers: ``st.manual_seed(s)`` reseeds every backend's generator."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

__all__ = ["manual_seed", "initial_seed", "generator", "numpy_random"]

_lock = threading.Lock()
_seed = [0]
_generators: dict[str, Any] = {}


def manual_seed(seed: int) -> int:
    """Seed every backend's generator so that random tensors repeat from here on.

    >>> import spiraltorch_nb as st
    >>> _ = st.manual_seed(0); a = st.rand(3).tolist()
    >>> _ = st.manual_seed(0); a == st.rand(3).tolist()
    True
    """
    if not isinstance(seed, int | np.integer):
        raise TypeError(f"manual_seed takes an integer; got {type(seed).__name__}")
    with _lock:
        _seed[0] = int(seed)
        _generators.clear()
    return int(seed)


def initial_seed() -> int:
    return _seed[0]


def generator(backend: str, factory: Any = None) -> Any:
    """The generator a backend draws from (created from the current seed on first use)."""
    gen = _generators.get(backend)
    if gen is None:
        with _lock:
            gen = _generators.get(backend)
            if gen is None:
                gen = factory(_seed[0]) if factory is not None else np.random.Generator(np.random.Philox(_seed[0]))
                _generators[backend] = gen
    return gen


def numpy_random(gen: Any, kind: str, shape: tuple[int, ...], dtype: Any, **params: Any) -> Any:
    """Draw with a NumPy-compatible generator (NumPy's, or CuPy's)."""
    if kind == "uniform":
        low, high = params.get("low", 0.0), params.get("high", 1.0)
        out = gen.random(shape, dtype=np.float64 if np.dtype(dtype) == np.float16 else dtype)
        if low != 0.0 or high != 1.0:
            out = out * (high - low) + low
        return out.astype(dtype, copy=False)
    if kind == "normal":
        mean, std = params.get("mean", 0.0), params.get("std", 1.0)
        out = gen.standard_normal(shape, dtype=np.float64 if np.dtype(dtype) == np.float16 else dtype)
        if mean != 0.0 or std != 1.0:
            out = out * std + mean
        return out.astype(dtype, copy=False)
    if kind == "integers":
        return gen.integers(params["low"], params["high"], size=shape).astype(dtype, copy=False)
    if kind == "bernoulli":
        return (gen.random(shape) < params["p"]).astype(dtype, copy=False)
    if kind == "permutation":
        return gen.permutation(params["n"]).astype(dtype, copy=False)
    raise ValueError(f"unknown random kind {kind!r}")
