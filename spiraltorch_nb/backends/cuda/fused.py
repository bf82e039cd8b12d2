"""Fused CUDA kernels from ``kernels/cuda/*.cu``, compiled once with ``cupy.RawModule``.

Each function in :func:`fused_kernels` is a backend forward like those of
``build_kernels``: CuPy arrays and keyword attributes in, CuPy arrays out. The cuda
backend registers them into the operator registry under the names of the operators
they implement (``softmax``, ``log_softmax``, ``cross_entropy``, their ``*_backward``
helpers and the ``fused_*`` operators of :mod:`spiraltorch_nb.ops.fused`), so they run
through the one dispatch path like every other op.

The kernels handle float32 and float64 (float16 computes in float32); other layouts or
dtypes run the same math as CuPy array expressions on the same GPU. Kernels run on the
current CuPy stream of the current device, which the backend sets from the inputs.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import numpy as np

from ..._assets import read_asset

__all__ = ["KERNELS", "KERNEL_FILES", "FUSED_OPS", "kernel_source", "fused_kernels"]

#: the kernels launched from each source in ``kernels/cuda``, by base name; each exists as
#: ``<base>_f32`` and ``<base>_f64`` (a test checks them against the compiled PTX)
KERNELS: dict[str, tuple[str, ...]] = {
    "softmax.cu": ("softmax_forward", "log_softmax_forward", "softmax_backward", "log_softmax_backward",
                   "cross_entropy_forward", "cross_entropy_backward"),
    "bias_gelu.cu": ("bias_gelu_forward", "bias_gelu_backward"),
    "layer_norm.cu": ("layer_norm_forward", "layer_norm_backward", "layer_norm_param_grads"),
}
KERNEL_FILES = tuple(KERNELS)
_FILE_OF = {base: filename for filename, bases in KERNELS.items() for base in bases}

_SUFFIX = {np.dtype(np.float32): "f32", np.dtype(np.float64): "f64"}
_F16 = np.dtype(np.float16)
_MAX_GRID = 1 << 24  # the row and element loops in the kernels stride past this
_ELEM_THREADS = 256

_lock = threading.Lock()
_modules: dict[tuple[int, str], Any] = {}
_functions: dict[tuple[int, str, str], Any] = {}


def kernel_source(filename: str) -> str:
    """The CUDA source of ``kernels/cuda/<filename>`` with ``common.cuh`` pasted in.

    Pasting (rather than an include path) makes the text CuPy hashes for its compile
    cache the whole program, so editing the shared header recompiles every kernel.
    """
    common = read_asset("kernels", "cuda/common.cuh").replace("#pragma once", "")
    return read_asset("kernels", f"cuda/{filename}").replace('#include "common.cuh"', common)


def _function(base: str, dtype: np.dtype, device_id: int) -> Any:
    """The compiled kernel ``<base>_<f32|f64>`` on one device (compiled once, cached)."""
    filename = _FILE_OF[base]
    name = f"{base}_{_SUFFIX[dtype]}"
    key = (device_id, filename, name)
    fn = _functions.get(key)
    if fn is not None:
        return fn
    import cupy

    with _lock:
        fn = _functions.get(key)
        if fn is None:
            mod = _modules.get((device_id, filename))
            if mod is None:
                # one module per device: a loaded CUDA module belongs to one device context
                mod = cupy.RawModule(code=kernel_source(filename))
                _modules[(device_id, filename)] = mod
            with cupy.cuda.Device(device_id):
                fn = mod.get_function(name)  # NVRTC compiles here the first time
            _functions[key] = fn
    return fn


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


def _row_threads(cols: int) -> int:
    """Threads per row-owning block: a warp for short rows, up to 512 for long ones."""
    threads = 32
    while threads < 512 and threads * 4 < cols:
        threads *= 2
    return threads


def _launch_rows(base: str, ref: Any, rows: int, cols: int, args: tuple) -> None:
    """One block per row (grid-strided), sized to the row length; ``ref`` gives dtype and device."""
    fn = _function(base, ref.dtype, ref.device.id)
    fn((min(rows, _MAX_GRID),), (_row_threads(cols),), args)


def _launch_elems(base: str, ref: Any, n: int, args: tuple) -> None:
    """A grid-strided elementwise launch over ``n`` elements."""
    fn = _function(base, ref.dtype, ref.device.id)
    fn((min(_cdiv(n, _ELEM_THREADS), _MAX_GRID),), (_ELEM_THREADS,), args)


def _compute_dtype(dtype: np.dtype) -> np.dtype | None:
    """The dtype a kernel computes in for inputs of ``dtype`` (None: no kernel for it)."""
    if dtype in _SUFFIX:
        return dtype
    if dtype == _F16:
        return np.dtype(np.float32)
    return None


def _is_last(dim: int, ndim: int) -> bool:
    return ndim > 0 and -ndim <= dim < ndim and dim % ndim == ndim - 1


#: the operator names :func:`fused_kernels` registers, declared so that they can be listed
#: without CuPy or a GPU (the docs' backend matrix); a test checks them against the function
FUSED_OPS = ("softmax", "log_softmax", "softmax_backward", "log_softmax_backward", "fused_bias_gelu",
             "fused_bias_gelu_backward", "cross_entropy", "cross_entropy_backward", "fused_layer_norm",
             "fused_layer_norm_backward")


def fused_kernels(composite: dict[str, Callable[..., Any]]) -> dict[str, Callable[..., Any]]:
    """The fused forwards, by operator name; ``composite`` is the CuPy ``build_kernels`` table."""
    import cupy

    def prepared(x: Any, dtype: np.dtype) -> Any:
        return cupy.ascontiguousarray(x.astype(dtype, copy=False))

    def int32_cols(cols: int, what: str) -> np.int32:
        if cols >= 2**31:
            raise ValueError(f"{what}: the last dimension has {cols} elements; the fused kernel takes fewer than 2**31")
        return np.int32(cols)

    # ---- softmax / log-softmax -------------------------------------------------------------
    def row_softmax(name: str) -> Callable[..., Any]:
        fallback = composite[name]

        def forward(x: Any, dim: int = -1) -> Any:
            # only float32/float64 over the last dim use the kernel; the rest is CuPy's composite
            if x.dtype not in _SUFFIX or not _is_last(dim, x.ndim) or x.size == 0:
                return fallback(x, dim=dim)
            x = cupy.ascontiguousarray(x)
            cols = x.shape[-1]
            rows = x.size // cols
            y = cupy.empty_like(x)
            _launch_rows(f"{name}_forward", x, rows, cols,
                         (x, y, np.int64(rows), int32_cols(cols, name)))
            return y

        return forward

    def row_softmax_backward(name: str) -> Callable[..., Any]:
        log = name == "log_softmax"

        def backward(g: Any, y: Any, dim: int = -1) -> Any:
            if y.dtype not in _SUFFIX or g.dtype != y.dtype or not _is_last(dim, y.ndim) or y.size == 0:
                if log:
                    return g - cupy.exp(y) * g.sum(axis=dim, keepdims=True)
                gy = g * y
                return gy - y * gy.sum(axis=dim, keepdims=True)
            g = cupy.ascontiguousarray(cupy.broadcast_to(g, y.shape))
            y = cupy.ascontiguousarray(y)
            cols = y.shape[-1]
            rows = y.size // cols
            dx = cupy.empty_like(y)
            _launch_rows(f"{name}_backward", y, rows, cols,
                         (g, y, dx, np.int64(rows), int32_cols(cols, name)))
            return dx

        return backward

    # ---- bias + GELU -------------------------------------------------------------------------
    def check_bias(x: Any, bias: Any, what: str) -> None:
        if x.ndim == 0 or bias.ndim != 1 or bias.shape[0] != x.shape[-1]:
            raise ValueError(f"{what}: the bias must be 1-d with the input's last dimension "
                             f"({x.shape[-1] if x.ndim else '?'} values); got shapes {x.shape} and {bias.shape}")

    def approximate_flag(approximate: str) -> np.int32:
        if approximate not in ("none", "tanh"):
            raise ValueError(f"gelu: approximate must be 'none' or 'tanh'; got {approximate!r}")
        return np.int32(approximate == "tanh")

    def bias_gelu(x: Any, bias: Any, approximate: str = "none") -> Any:
        check_bias(x, bias, "fused_bias_gelu")
        flag = approximate_flag(approximate)
        cdt = _compute_dtype(x.dtype)
        if cdt is None:
            return composite["gelu"](x + bias, approximate=approximate)
        xc, bc = prepared(x, cdt), prepared(bias, cdt)
        y = cupy.empty_like(xc)
        if y.size:
            _launch_elems("bias_gelu_forward", xc, y.size,
                          (xc, bc, y, np.int64(y.size), np.int64(bc.size), flag))
        return y.astype(x.dtype, copy=False)

    def bias_gelu_backward(g: Any, x: Any, bias: Any, approximate: str = "none") -> Any:
        check_bias(x, bias, "fused_bias_gelu_backward")
        flag = approximate_flag(approximate)
        cdt = _compute_dtype(x.dtype)
        if cdt is None:
            raise TypeError(f"fused_bias_gelu_backward needs floating inputs; got {x.dtype}")
        xc, bc = prepared(x, cdt), prepared(bias, cdt)
        gc = prepared(cupy.broadcast_to(g, x.shape), cdt)
        dh = cupy.empty_like(xc)
        if dh.size:
            _launch_elems("bias_gelu_backward", xc, dh.size,
                          (gc, xc, bc, dh, np.int64(dh.size), np.int64(bc.size), flag))
        return dh.astype(x.dtype, copy=False)

    # ---- cross-entropy (the ``cross_entropy`` op of ops/losses.py) ----------------------------
    ce_fallback = composite["cross_entropy"]

    def check_ce(logits: Any, target: Any, what: str) -> np.dtype | None:
        """The kernel's compute dtype, or None where the CuPy composite must run."""
        if logits.ndim != 2 or target.shape != logits.shape[:1]:
            raise ValueError(f"{what}: expected logits (N, C) and class indices (N,); got shapes "
                             f"{logits.shape} and {target.shape}")
        if target.dtype.kind not in "iu":
            raise TypeError(f"{what}: the target must hold integer class indices; got {target.dtype}")
        if logits.shape[1] == 0:
            raise ValueError(f"{what}: the logits have zero classes (shape {logits.shape})")
        return _compute_dtype(logits.dtype)

    def row_scale(g: Any, valid_rows: Any, reduction: str, rows: int, dtype: np.dtype) -> Any:
        """The incoming gradient spread over the rows as the reduction did."""
        if reduction == "mean":
            g = g / valid_rows.sum().astype(dtype)
        return cupy.ascontiguousarray(cupy.broadcast_to(g.astype(dtype, copy=False), (rows,)))

    def cross_entropy(x: Any, target: Any, ignore_index: int = -100, label_smoothing: float = 0.0,
                      reduction: str = "mean") -> Any:
        cdt = check_ce(x, target, "cross_entropy")
        if cdt is None:
            return ce_fallback(x, target, ignore_index=ignore_index, label_smoothing=label_smoothing,
                               reduction=reduction)
        rows, cols = x.shape
        xc = prepared(x, cdt)
        t = prepared(target, np.dtype(np.int64))
        loss = cupy.empty((rows,), dtype=cdt)
        if rows:
            # an out-of-range class index gives NaN here instead of an error: checking it on the
            # host would wait for the GPU on every step
            _launch_rows("cross_entropy_forward", xc, rows, cols,
                         (xc, t, loss, np.int64(rows), int32_cols(cols, "cross_entropy"),
                          np.int64(ignore_index), cdt.type(label_smoothing)))
        if reduction == "none":
            out = loss
        elif reduction == "sum":
            out = loss.sum()
        else:
            out = loss.sum() / (t != ignore_index).sum().astype(cdt)
        return out.astype(x.dtype, copy=False)

    def cross_entropy_backward(g: Any, x: Any, target: Any, ignore_index: int = -100,
                               label_smoothing: float = 0.0, reduction: str = "mean") -> Any:
        cdt = check_ce(x, target, "cross_entropy_backward")
        if cdt is None:
            raise TypeError(f"cross_entropy_backward: the logits must be floating point; got {x.dtype}")
        rows, cols = x.shape
        xc = prepared(x, cdt)
        t = prepared(target, np.dtype(np.int64))
        dx = cupy.empty_like(xc)
        if rows:
            gr = row_scale(g, t != ignore_index, reduction, rows, cdt)
            _launch_rows("cross_entropy_backward", xc, rows, cols,
                         (gr, xc, t, dx, np.int64(rows), int32_cols(cols, "cross_entropy"),
                          np.int64(ignore_index), cdt.type(label_smoothing)))
        return dx.astype(x.dtype, copy=False)

    # ---- layer norm ------------------------------------------------------------------------------
    def check_affine(x: Any, p: Any, what: str, name: str) -> None:
        if p is not None and (p.ndim != 1 or x.ndim == 0 or p.shape[0] != x.shape[-1]):
            raise ValueError(f"{what}: the {name} must be 1-d with the input's last dimension; got shapes "
                             f"{x.shape} and {p.shape}")

    def layer_norm(x: Any, weight: Any = None, bias: Any = None, eps: float = 1e-5) -> Any:
        check_affine(x, weight, "fused_layer_norm", "weight")
        check_affine(x, bias, "fused_layer_norm", "bias")
        cdt = _compute_dtype(x.dtype)
        if cdt is None or x.ndim == 0:
            raise TypeError(f"fused_layer_norm needs a floating input with at least one dimension; got "
                            f"{x.dtype} of shape {x.shape}")
        xc = prepared(x, cdt)
        y = cupy.empty_like(xc)
        if y.size:
            cols = xc.shape[-1]
            rows = xc.size // cols
            w = prepared(weight, cdt) if weight is not None else xc  # never read when absent
            b = prepared(bias, cdt) if bias is not None else xc
            _launch_rows("layer_norm_forward", xc, rows, cols,
                         (xc, w, b, y, np.int64(rows), int32_cols(cols, "layer_norm"), cdt.type(eps),
                          np.int32(weight is not None), np.int32(bias is not None)))
        return y.astype(x.dtype, copy=False)

    def layer_norm_backward(g: Any, x: Any, weight: Any = None, eps: float = 1e-5) -> tuple[Any, Any, Any]:
        check_affine(x, weight, "fused_layer_norm_backward", "weight")
        cdt = _compute_dtype(x.dtype)
        if cdt is None or x.ndim == 0:
            raise TypeError(f"fused_layer_norm_backward needs a floating input with at least one dimension; "
                            f"got {x.dtype} of shape {x.shape}")
        xc = prepared(x, cdt)
        gc = prepared(cupy.broadcast_to(g, x.shape), cdt)
        cols = xc.shape[-1]
        rows = xc.size // cols if cols else 0
        dx = cupy.empty_like(xc)
        if not xc.size:
            zeros = cupy.zeros((cols,), dtype=x.dtype)
            return dx.astype(x.dtype, copy=False), zeros, zeros.copy()
        mean = cupy.empty((rows,), dtype=cdt)
        rstd = cupy.empty((rows,), dtype=cdt)
        w = prepared(weight, cdt) if weight is not None else xc
        _launch_rows("layer_norm_backward", xc, rows, cols,
                     (gc, xc, w, dx, mean, rstd, np.int64(rows), int32_cols(cols, "layer_norm"), cdt.type(eps),
                      np.int32(weight is not None)))
        # weight/bias gradients: columns across threads, rows in up to 256 chunks
        chunks = min(rows, 256)
        per_chunk = _cdiv(rows, chunks)
        chunks = _cdiv(rows, per_chunk)
        dw_part = cupy.empty((chunks, cols), dtype=cdt)
        db_part = cupy.empty((chunks, cols), dtype=cdt)
        fn = _function("layer_norm_param_grads", cdt, xc.device.id)
        fn((_cdiv(cols, _ELEM_THREADS), chunks), (_ELEM_THREADS,),
           (gc, xc, mean, rstd, dw_part, db_part, np.int64(rows), np.int32(cols), np.int64(per_chunk)))
        out = x.dtype
        return (dx.astype(out, copy=False), dw_part.sum(axis=0).astype(out, copy=False),
                db_part.sum(axis=0).astype(out, copy=False))

    return {
        "softmax": row_softmax("softmax"),
        "log_softmax": row_softmax("log_softmax"),
        "softmax_backward": row_softmax_backward("softmax"),
        "log_softmax_backward": row_softmax_backward("log_softmax"),
        "fused_bias_gelu": bias_gelu,
        "fused_bias_gelu_backward": bias_gelu_backward,
        "cross_entropy": cross_entropy,
        "cross_entropy_backward": cross_entropy_backward,
        "fused_layer_norm": layer_norm,
        "fused_layer_norm_backward": layer_norm_backward,
    }
