"""Creating tensors: from data, filled, ranges, random (reproducible with ``st.manual_seed``)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from .. import dtypes as _dt
from ..backends import get_backend
from ..device import Device, get_default_device
from ..dtypes import DType, get_dtype, infer_dtype
from ..errors import DTypeError, ShapeError

if TYPE_CHECKING:
    from ..backends.cuda.backend import CUDABackend

__all__ = [
    "tensor", "as_tensor", "from_numpy", "from_dlpack", "zeros", "ones", "full", "empty", "arange",
    "linspace", "eye", "rand", "randn", "randint", "randperm", "zeros_like", "ones_like", "full_like",
    "empty_like", "rand_like", "randn_like", "randint_like",
]


def _T() -> Any:
    from ..tensor import Tensor

    return Tensor


def _backend(device: Any) -> Any:
    return get_backend(get_default_device() if device is None else Device(device))


def _size(size: tuple) -> tuple[int, ...]:
    if len(size) == 1 and isinstance(size[0], list | tuple):
        size = tuple(size[0])
    try:
        out = tuple(int(s) for s in size)
    except TypeError:
        raise ShapeError(f"a size is a sequence of integers; got {size!r}") from None
    if any(s < 0 for s in out):
        raise ShapeError(f"sizes must be non-negative; got {out}", shapes=(out,))
    return out


def _finish(data: Any, be: Any, requires_grad: bool) -> Any:
    t = _T()._wrap(data, be)
    if requires_grad:
        t.requires_grad_(True)
    return t


def _float_dtype(dtype: Any) -> DType:
    dt = _dt.default_float if dtype is None else get_dtype(dtype)
    return dt


def tensor(data: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Any:
    """A new tensor holding a copy of ``data`` (nested lists, scalars, NumPy arrays, tensors).

    The dtype is inferred as ``torch.tensor`` does: Python floats become float32, Python
    ints int64, a NumPy array keeps its dtype.

    >>> import spiraltorch_nb as st
    >>> st.tensor([1, 2]).dtype, st.tensor([1.5]).dtype
    (spiraltorch_nb.int64, spiraltorch_nb.float32)
    """
    T = _T()
    if isinstance(data, T):
        out = data.detach().clone() if data.device == Device(device or data.device) else data.detach().to(device)
        if dtype is not None:
            out = out.to(dtype)
        return out.requires_grad_(requires_grad) if requires_grad else out
    if isinstance(data, list | tuple) and data and any(isinstance(d, T) for d in _flat(data)):
        data = _nested_numpy(data)
    be = _backend(device)
    dt = get_dtype(dtype) if dtype is not None else infer_dtype(data)
    if dtype is None and dt is _dt.int64:
        dt = _default_int(be, data)
    if dt not in be.dtypes:
        _unsupported(dt, be)
    try:
        arr = np.array(data, dtype=dt.np, copy=True)
    except (ValueError, TypeError) as exc:
        raise DTypeError(f"cannot build a {dt.name} tensor from {type(data).__name__}: {exc}", dtype=dt) from exc
    return _finish(be.from_numpy(arr), be, requires_grad)


def _default_int(be: Any, data: Any = None) -> DType:
    """The integer dtype of integers given without a dtype: int64, or the backend's own
    ``default_int`` (int32 on wgpu, which has no 64-bit types); values that do not fit
    it are an error, never a silent wrap-around."""
    dt = be.default_int
    if dt is not _dt.int64 and data is not None:
        arr = np.asarray(data)
        info = np.iinfo(dt.np)
        if arr.size and (arr.min() < info.min or arr.max() > info.max):
            raise DTypeError(f"integer values in [{arr.min()}, {arr.max()}] do not fit {dt.name}, the integer dtype "
                             f"of {be.device}; store them as floats or keep them on the cpu", dtype=dt)
    return dt


def _flat(seq: Any) -> list[Any]:
    out = []
    for s in seq:
        if isinstance(s, list | tuple):
            out.extend(_flat(s))
        else:
            out.append(s)
    return out


def _nested_numpy(seq: Any) -> Any:
    T = _T()
    return [(_nested_numpy(s) if isinstance(s, list | tuple) else (s.numpy() if isinstance(s, T) else s)) for s in seq]


def _unsupported(dt: DType, be: Any) -> None:
    ok = ", ".join(d.name for d in be.dtypes)
    hint = ""
    if dt.name in ("float64", "int64") and be.name == "wgpu":
        hint = f"; WGSL has no 64-bit types: use {'float32' if dt.name == 'float64' else 'int32'}"
    raise DTypeError(f"{dt.name} is not supported on {be.device} (supported: {ok}){hint}", dtype=dt)


def as_tensor(data: Any, dtype: Any = None, device: Any = None) -> Any:
    """Like :func:`tensor`, but shares memory with a NumPy array or tensor when it can."""
    T = _T()
    if isinstance(data, T):
        return data.to(device=device, dtype=dtype) if (device or dtype) else data
    be = _backend(device)
    if isinstance(data, np.ndarray) and be.name == "cpu" and (dtype is None or get_dtype(dtype).np == data.dtype):
        get_dtype(data.dtype)
        return _finish(data, be, False)
    return tensor(data, dtype=dtype, device=device)


def from_numpy(array: np.ndarray) -> Any:
    """A cpu tensor sharing memory with ``array`` (changes show through both)."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"from_numpy expects a numpy.ndarray; got {type(array).__name__}")
    get_dtype(array.dtype)
    return _finish(array, get_backend("cpu"), False)


def from_dlpack(x: Any) -> Any:
    """A tensor sharing memory with any DLPack producer (NumPy, CuPy, PyTorch, JAX).

    Host arrays become cpu tensors, CUDA arrays cuda tensors; no copy is made when the
    producer allows it.
    """
    if not hasattr(x, "__dlpack_device__"):
        raise TypeError(f"from_dlpack needs an object with __dlpack__/__dlpack_device__; got {type(x).__name__}")
    dev_type, dev_id = x.__dlpack_device__()
    if int(dev_type) in (1, 3):  # kDLCPU, kDLCUDAHost
        arr = np.from_dlpack(x)
        get_dtype(arr.dtype)
        return _finish(arr, get_backend("cpu"), False)
    if int(dev_type) in (2, 13):  # kDLCUDA, kDLCUDAManaged
        be = cast("CUDABackend", get_backend(f"cuda:{dev_id}"))  # a cuda spec gives the cuda backend
        return _finish(be.from_dlpack(x), be, False)
    raise TypeError(f"from_dlpack: DLPack device type {dev_type} is not supported (cpu and cuda are)")


def full(size: Sequence[int], fill_value: Any, dtype: Any = None, device: Any = None,
         requires_grad: bool = False) -> Any:
    """A tensor of ``size`` filled with ``fill_value`` (``st.full((2, 3), 7.0)``)."""
    shape = _size((size,))
    dt = get_dtype(dtype) if dtype is not None else infer_dtype(fill_value)
    be = _backend(device)
    if dtype is None and dt is _dt.int64:
        dt = _default_int(be, fill_value)
    if dt not in be.dtypes:
        _unsupported(dt, be)
    return _finish(be.full(shape, fill_value, dt), be, requires_grad)


def zeros(*size: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Any:
    """A tensor of zeros (float32 unless ``dtype`` says otherwise)."""
    return full(_size(size), 0, dtype=_float_dtype(dtype), device=device, requires_grad=requires_grad)


def ones(*size: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Any:
    """A tensor of ones (float32 unless ``dtype`` says otherwise)."""
    return full(_size(size), 1, dtype=_float_dtype(dtype), device=device, requires_grad=requires_grad)


def empty(*size: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Any:
    """An uninitialized tensor (zero-filled here, so results never depend on stale memory)."""
    return zeros(*size, dtype=dtype, device=device, requires_grad=requires_grad)


def arange(start: Any, end: Any = None, step: Any = 1, dtype: Any = None, device: Any = None,
           requires_grad: bool = False) -> Any:
    """Values from ``start`` up to (not including) ``end`` by ``step``."""
    if end is None:
        start, end = 0, start
    be = _backend(device)
    if dtype is None:
        dt = _dt.default_float if any(isinstance(v, float) for v in (start, end, step)) else _default_int(be)
    else:
        dt = get_dtype(dtype)
    if step == 0:
        raise ValueError("arange: step must not be zero")
    return _finish(be.arange(start, end, step, dt), be, requires_grad)


def linspace(start: float, end: float, steps: int, dtype: Any = None, device: Any = None,
             requires_grad: bool = False) -> Any:
    """``steps`` evenly spaced values from ``start`` to ``end`` inclusive."""
    dt = _float_dtype(dtype)
    be = _backend(device)
    return _finish(be.from_numpy(np.linspace(start, end, steps, dtype=np.float64).astype(dt.np)), be, requires_grad)


def eye(n: int, m: int | None = None, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Any:
    """The identity matrix (``n`` x ``m``)."""
    dt = _float_dtype(dtype)
    be = _backend(device)
    return _finish(be.from_numpy(np.eye(n, m, dtype=dt.np)), be, requires_grad)


def _random(kind: str, size: tuple, dtype: DType, device: Any, requires_grad: bool, **params: Any) -> Any:
    be = _backend(device)
    if dtype not in be.dtypes:
        _unsupported(dtype, be)
    return _finish(be.random(kind, _size(size), dtype, **params), be, requires_grad)


def rand(*size: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Any:
    """Uniform samples in [0, 1)."""
    return _random("uniform", size, _float_dtype(dtype), device, requires_grad)


def randn(*size: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Any:
    """Standard normal samples."""
    return _random("normal", size, _float_dtype(dtype), device, requires_grad)


def randint(low: int, high: int | None = None, size: Sequence[int] = (), dtype: Any = None,
            device: Any = None) -> Any:
    """Integers uniformly drawn from [low, high)."""
    if high is None:
        low, high = 0, low
    if high <= low:
        raise ValueError(f"randint: high ({high}) must be greater than low ({low})")
    return _random("integers", tuple(size), get_dtype(dtype) if dtype else _default_int(_backend(device)), device, False,
                   low=low, high=high)


def randperm(n: int, dtype: Any = None, device: Any = None) -> Any:
    """A random permutation of 0..n-1."""
    return _random("permutation", (n,), get_dtype(dtype) if dtype else _default_int(_backend(device)), device,
                   False, n=n)


def _like(x: Any, dtype: Any, device: Any) -> tuple[Any, Any]:
    return (x.dtype if dtype is None else dtype), (x.device if device is None else device)


def zeros_like(x: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Any:
    dt, dev = _like(x, dtype, device)
    return full(tuple(x.shape), 0, dtype=dt, device=dev, requires_grad=requires_grad)


def ones_like(x: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Any:
    dt, dev = _like(x, dtype, device)
    return full(tuple(x.shape), 1, dtype=dt, device=dev, requires_grad=requires_grad)


def full_like(x: Any, fill_value: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Any:
    dt, dev = _like(x, dtype, device)
    return full(tuple(x.shape), fill_value, dtype=dt, device=dev, requires_grad=requires_grad)


def empty_like(x: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Any:
    return zeros_like(x, dtype, device, requires_grad)


def rand_like(x: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Any:
    dt, dev = _like(x, dtype, device)
    return rand(tuple(x.shape), dtype=dt, device=dev, requires_grad=requires_grad)


def randn_like(x: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Any:
    dt, dev = _like(x, dtype, device)
    return randn(tuple(x.shape), dtype=dt, device=dev, requires_grad=requires_grad)


def randint_like(x: Any, low: int, high: int | None = None, dtype: Any = None, device: Any = None) -> Any:
    dt, dev = _like(x, dtype, device)
    return randint(low, high, tuple(x.shape), dtype=dt, device=dev)


def numel_of(shape: Sequence[int]) -> int:
    return math.prod(shape)
