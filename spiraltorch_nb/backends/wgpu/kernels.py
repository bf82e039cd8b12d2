"""The wgpu kernel table: op name -> forward, with the cpu kernels' attributes and semantics.

Every forward takes :class:`WGPUStorage` inputs (Python scalars where the cpu kernel
accepts them) and keyword attributes exactly as ``array_kernels.build_kernels``
defines them, and returns new storages without reading anything back (the in-place
``add_``... and optimizer updates ``axpy_``... write into their first input and return
it). Beyond the cpu's table it has fused kernels for ``ops/fused.py``'s operators
(softmax/log-softmax/cross-entropy backwards, bias + GELU, layer norm).
"""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace
from typing import Any, cast

from ... import dtypes as _dt
from ...dtypes import DType
from . import elementwise as ew
from . import fused, indexing, layout, linalg, reduce
from .runtime import Runtime, check_dtype

__all__ = ["build_kernels", "kernel_names", "declared_dtypes"]

_PLAIN_UNARY = ("neg", "abs", "sign", "exp", "log", "log1p", "expm1", "sqrt", "rsqrt", "sin", "cos", "tanh",
                "floor", "ceil", "round", "logical_not", "erf", "sigmoid", "relu", "silu")
_BINARY = ("add", "sub", "mul", "div", "floordiv", "remainder", "pow", "maximum", "minimum", "eq", "ne", "lt",
           "le", "gt", "ge", "logical_and", "logical_or", "logical_xor", "atan2", "relu_grad")


def build_kernels(rt: Runtime) -> dict[str, Callable[..., Any]]:
    """Forwards for every op of the cpu backend, bound to runtime ``rt``."""
    k: dict[str, Callable[..., Any]] = {}
    held = rt_dtypes(rt)

    def unary(name: str) -> Callable[..., Any]:
        def run(x: Any) -> Any:
            return ew.unary(rt, name, x)
        run.__name__ = name
        return run

    for name in _PLAIN_UNARY:
        k[name] = unary(name)

    def leaky_relu(x: Any, negative_slope: float = 0.01) -> Any:
        return ew.unary(rt, "leaky_relu", x, s0=negative_slope)

    def gelu(x: Any, approximate: str = "none") -> Any:
        return ew.unary(rt, "gelu_tanh" if approximate == "tanh" else "gelu", x)

    def softplus(x: Any, beta: float = 1.0, threshold: float = 20.0) -> Any:
        return ew.unary(rt, "softplus", x, s0=beta, s1=threshold)

    def clamp(x: Any, min: Any = None, max: Any = None) -> Any:
        # tensor bounds (broadcast) go through maximum/minimum, as the cpu kernel does
        if min is not None and not ew.is_scalar(min):
            x = ew.binary(rt, "maximum", x, min)
            min = None
        if max is not None and not ew.is_scalar(max):
            x = ew.binary(rt, "minimum", x, max)
            max = None
        if min is None and max is None:
            return ew.clone(rt, x)
        return ew.unary(rt, "clamp", x, s0=min, s1=max)

    k.update(leaky_relu=leaky_relu, gelu=gelu, softplus=softplus, clamp=clamp)

    def binary(name: str) -> Callable[..., Any]:
        def run(a: Any, b: Any) -> Any:
            return ew.binary(rt, name, a, b)
        run.__name__ = name
        return run

    for name in _BINARY:
        k[name] = binary(name)

    def inplace(name: str) -> Callable[..., Any]:
        def run(a: Any, b: Any) -> Any:
            return ew.binary_inplace(rt, name, a, b)
        run.__name__ = name + "_"
        return run

    for name in ("add", "sub", "mul", "div"):
        k[name + "_"] = inplace(name)

    # optimizer updates (ops/update.py), in place
    def axpy_(x: Any, y: Any, alpha: float = 1.0) -> Any:
        return fused.update(rt, "axpy_", x, y, s0=alpha)

    def lerp_(x: Any, y: Any, weight: float) -> Any:
        return fused.update(rt, "lerp_", x, y, s0=weight)

    def addcmul_(x: Any, a: Any, b: Any, value: float) -> Any:
        return fused.update(rt, "addcmul_", x, a, b, s0=value)

    def addcdiv_(x: Any, a: Any, b: Any, value: float) -> Any:
        return fused.update(rt, "addcdiv_", x, a, b, s0=value)

    def maximum_(x: Any, y: Any) -> Any:
        return fused.update(rt, "maximum_", x, y)

    k.update(axpy_=axpy_, lerp_=lerp_, addcmul_=addcmul_, addcdiv_=addcdiv_, maximum_=maximum_)

    def where(c: Any, a: Any, b: Any) -> Any:
        return ew.where(rt, c, a, b)

    def cast(x: Any, dtype: DType) -> Any:
        check_dtype(dtype, held, "cast")
        return ew.cast(rt, x, dtype)

    def clone(x: Any) -> Any:
        return ew.clone(rt, x)

    k.update(where=where, cast=cast, clone=clone)

    # ---- reductions ------------------------------------------------------------------
    def reduction(name: str) -> Callable[..., Any]:
        def run(x: Any, dim: Any = None, keepdim: bool = False) -> Any:
            return reduce.reduce(rt, name, x, dim, keepdim)
        run.__name__ = name
        return run

    for name in ("sum", "mean", "prod", "amax", "amin", "argmax", "argmin"):
        k[name] = reduction(name)

    def cumsum(x: Any, dim: int) -> Any:
        return reduce.cumsum(rt, x, dim)

    def softmax(x: Any, dim: int = -1) -> Any:
        return reduce.softmax(rt, x, dim, log=False)

    def log_softmax(x: Any, dim: int = -1) -> Any:
        return reduce.softmax(rt, x, dim, log=True)

    def cross_entropy(x: Any, t: Any, ignore_index: int = -100, label_smoothing: float = 0.0,
                      reduction: str = "mean") -> Any:
        return reduce.cross_entropy(rt, x, t, ignore_index, label_smoothing, reduction)

    # fused first-order backwards (ops/fused.py routes first-order gradients to them)
    def softmax_backward(g: Any, y: Any, dim: int = -1) -> Any:
        return reduce.softmax_backward(rt, g, y, dim, log=False)

    def log_softmax_backward(g: Any, y: Any, dim: int = -1) -> Any:
        return reduce.softmax_backward(rt, g, y, dim, log=True)

    def cross_entropy_backward(g: Any, x: Any, t: Any, ignore_index: int = -100, label_smoothing: float = 0.0,
                               reduction: str = "mean") -> Any:
        return reduce.cross_entropy_backward(rt, g, x, t, ignore_index, label_smoothing, reduction)

    def fused_bias_gelu(x: Any, bias: Any, approximate: str = "none") -> Any:
        return fused.bias_gelu(rt, x, bias, approximate)

    def fused_bias_gelu_backward(g: Any, x: Any, bias: Any, approximate: str = "none") -> Any:
        return fused.bias_gelu_backward(rt, g, x, bias, approximate)

    def fused_layer_norm(x: Any, weight: Any = None, bias: Any = None, eps: float = 1e-5) -> Any:
        return fused.layer_norm(rt, x, weight, bias, eps)

    def fused_layer_norm_backward(g: Any, x: Any, weight: Any = None, eps: float = 1e-5) -> Any:
        return fused.layer_norm_backward(rt, g, x, weight, eps)

    k.update(fused_bias_gelu=fused_bias_gelu, fused_bias_gelu_backward=fused_bias_gelu_backward,
             fused_layer_norm=fused_layer_norm, fused_layer_norm_backward=fused_layer_norm_backward)
    k.update(cumsum=cumsum, softmax=softmax, log_softmax=log_softmax, cross_entropy=cross_entropy,
             softmax_backward=softmax_backward, log_softmax_backward=log_softmax_backward,
             cross_entropy_backward=cross_entropy_backward)

    # ---- linear algebra and layout -------------------------------------------------------
    def matmul(a: Any, b: Any) -> Any:
        return linalg.matmul(rt, a, b)

    def linear(x: Any, w: Any, b: Any = None) -> Any:
        y = linalg.matmul(rt, x, layout.permute(w, (1, 0)) if w.ndim == 2 else w)
        return y if b is None else ew.binary(rt, "add", y, b)

    def reshape(x: Any, shape: tuple[int, ...]) -> Any:
        return layout.reshape(rt, x, tuple(shape))

    def permute(x: Any, dims: tuple[int, ...]) -> Any:
        return layout.permute(x, tuple(dims))

    def expand(x: Any, shape: tuple[int, ...]) -> Any:
        return layout.expand(x, tuple(shape))

    def flip(x: Any, dims: tuple[int, ...]) -> Any:
        return layout.flip(rt, x, dims)

    def cat(*xs: Any, dim: int = 0) -> Any:
        return layout.cat(rt, xs, dim)

    def pad(x: Any, pad: tuple[int, ...], value: float = 0.0) -> Any:
        return layout.pad(rt, x, tuple(pad), value)

    def linear_backward(g: Any, x: Any, w: Any, needs: tuple[bool, bool, bool] = (True, True, True)) -> Any:
        gx = linalg.matmul(rt, g, w) if needs[0] else None
        gw = gb = None
        if needs[1] or needs[2]:
            rows = 1
            for s in x.shape[:-1]:
                rows *= s
            g2 = g if g.ndim == 2 else layout.reshape(rt, g, (rows, g.shape[-1]))
            if needs[1]:
                x2 = x if x.ndim == 2 else layout.reshape(rt, x, (rows, x.shape[-1]))
                gw = linalg.matmul(rt, layout.permute(g2, (1, 0)), x2)
            if needs[2]:
                gb = reduce.reduce(rt, "sum", g2, 0, False)
        return gx, gw, gb

    def matmul_backward(g: Any, a: Any, b: Any, needs: tuple[bool, bool] = (True, True)) -> Any:
        if a.ndim != 2 or b.ndim != 2:
            raise ValueError(f"matmul_backward takes 2-d operands; got shapes {a.shape} and {b.shape}")
        return (linalg.matmul(rt, g, layout.permute(b, (1, 0))) if needs[0] else None,
                linalg.matmul(rt, layout.permute(a, (1, 0)), g) if needs[1] else None)

    k.update(matmul=matmul, matmul_backward=matmul_backward, linear=linear, linear_backward=linear_backward, reshape=reshape, permute=permute, expand=expand, flip=flip, cat=cat, pad=pad)

    # ---- indexing ---------------------------------------------------------------------------
    def getitem(x: Any, key: Any) -> Any:
        return indexing.getitem(rt, x, key)

    def getitem_grad(g: Any, key: Any, shape: tuple[int, ...]) -> Any:
        return indexing.getitem_grad(rt, g, key, tuple(shape))

    def index_put(x: Any, v: Any, key: Any, accumulate: bool = False) -> Any:
        return indexing.index_put(rt, x, v, key, accumulate)

    def gather(x: Any, index: Any, dim: int) -> Any:
        return indexing.gather(rt, x, index, dim)

    def gather_grad(g: Any, index: Any, dim: int, shape: tuple[int, ...]) -> Any:
        return indexing.gather_grad(rt, g, index, dim, tuple(shape))

    k.update(getitem=getitem, getitem_grad=getitem_grad, index_put=index_put, gather=gather,
             gather_grad=gather_grad)

    # ---- im2col / col2im ----------------------------------------------------------------------
    def unfold(x: Any, kernel_size: tuple[int, int], dilation: tuple[int, int], padding: tuple[int, int],
               stride: tuple[int, int], fill: float = 0.0) -> Any:
        return layout.unfold(rt, x, kernel_size, dilation, padding, stride, fill)

    def fold(cols: Any, output_size: tuple[int, int], kernel_size: tuple[int, int], dilation: tuple[int, int],
             padding: tuple[int, int], stride: tuple[int, int]) -> Any:
        return layout.fold(rt, cols, output_size, kernel_size, dilation, padding, stride)

    k.update(unfold=unfold, fold=fold)
    return k


class _TableOnly:
    """Stands in for a Runtime when only the table's names are wanted: building it reads
    ``handle.has_f16`` and nothing else, so no device opens."""

    def __init__(self, has_f16: bool) -> None:
        self.handle = SimpleNamespace(has_f16=has_f16)


def kernel_names() -> list[str]:
    """The op names :func:`build_kernels` provides, listed without opening a device (for the backend matrix)."""
    return sorted(build_kernels(cast(Runtime, _TableOnly(False))))


def declared_dtypes(has_f16: bool) -> tuple[DType, ...]:
    """The dtypes a device holds when its adapter has (or lacks) ``shader-f16``, without opening one."""
    return rt_dtypes(cast(Runtime, _TableOnly(has_f16)))


def rt_dtypes(rt: Runtime) -> tuple[DType, ...]:
    held = [_dt.float32, _dt.int32, _dt.uint32, _dt.bool_]
    if rt.handle.has_f16:
        held.insert(0, _dt.float16)
    return tuple(held)
