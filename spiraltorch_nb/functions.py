"""Top-level functions, where ``torch.<name>`` exists: ``st.exp(x)``, ``st.cat([a, b])``, ``st.where(...)``."""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from typing import Any

from .errors import ShapeError
from .ops.registry import dispatch as _d
from .tensor import Tensor

__all__ = [
    "abs", "neg", "sign", "exp", "log", "log1p", "expm1", "sqrt", "rsqrt", "sin", "cos", "tanh", "sigmoid",
    "relu", "erf", "floor", "ceil", "round", "square", "clamp", "clip", "maximum", "minimum", "where",
    "add", "sub", "mul", "div", "pow", "sum", "mean", "var", "std", "prod", "max", "min", "amax", "amin",
    "argmax", "argmin", "logsumexp", "cumsum", "matmul", "reshape", "flatten", "transpose", "permute",
    "squeeze", "unsqueeze", "flip", "cat", "concat", "stack", "split", "chunk", "unbind", "gather",
    "index_select", "softmax", "log_softmax", "allclose", "isclose", "numel", "atan2", "outer",
]


def _method(name: str) -> Any:
    meth = getattr(Tensor, name)

    def fn(input: Tensor, *args: Any, **kwargs: Any) -> Any:
        if not isinstance(input, Tensor):
            raise TypeError(f"st.{name} expects a Tensor as its first argument; got {type(input).__name__}")
        return meth(input, *args, **kwargs)

    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = f"``st.{name}(x, ...)`` is ``x.{name}(...)``; see :meth:`Tensor.{name}`."
    return fn


abs = _method("abs")
neg = _method("neg")
sign = _method("sign")
exp = _method("exp")
log = _method("log")
log1p = _method("log1p")
expm1 = _method("expm1")
sqrt = _method("sqrt")
rsqrt = _method("rsqrt")
sin = _method("sin")
cos = _method("cos")
tanh = _method("tanh")
sigmoid = _method("sigmoid")
relu = _method("relu")
erf = _method("erf")
floor = _method("floor")
ceil = _method("ceil")
round = _method("round")
square = _method("square")
clamp = _method("clamp")
clip = _method("clamp")
sum = _method("sum")
mean = _method("mean")
var = _method("var")
std = _method("std")
prod = _method("prod")
max = _method("max")
min = _method("min")
amax = _method("amax")
amin = _method("amin")
argmax = _method("argmax")
argmin = _method("argmin")
logsumexp = _method("logsumexp")
cumsum = _method("cumsum")
reshape = _method("reshape")
flatten = _method("flatten")
transpose = _method("transpose")
permute = _method("permute")
squeeze = _method("squeeze")
unsqueeze = _method("unsqueeze")
flip = _method("flip")
split = _method("split")
chunk = _method("chunk")
unbind = _method("unbind")
gather = _method("gather")
index_select = _method("index_select")
softmax = _method("softmax")
log_softmax = _method("log_softmax")
numel = _method("numel")


def add(a: Any, b: Any, alpha: Any = None) -> Tensor:
    return _d("add", a, b if alpha is None else b * alpha)


def sub(a: Any, b: Any, alpha: Any = None) -> Tensor:
    return _d("sub", a, b if alpha is None else b * alpha)


def mul(a: Any, b: Any) -> Tensor:
    return _d("mul", a, b)


def div(a: Any, b: Any) -> Tensor:
    return _d("div", a, b)


def pow(a: Any, b: Any) -> Tensor:
    return _d("pow", a, b)


def atan2(a: Any, b: Any) -> Tensor:
    return _d("atan2", a, b)


def maximum(a: Any, b: Any) -> Tensor:
    return _d("maximum", a, b)


def minimum(a: Any, b: Any) -> Tensor:
    return _d("minimum", a, b)


def matmul(a: Tensor, b: Tensor) -> Tensor:
    return _d("matmul", a, b)


def outer(a: Tensor, b: Tensor) -> Tensor:
    return a.reshape(-1, 1) * b.reshape(1, -1)


def where(condition: Tensor, input: Any, other: Any) -> Tensor:
    """Elementwise ``condition ? input : other`` with broadcasting; either branch may be a scalar."""
    return _d("where", condition, input, other)


def cat(tensors: Sequence[Tensor], dim: int = 0) -> Tensor:
    """Join tensors along an existing dimension."""
    tensors = list(tensors)
    if not tensors:
        raise ShapeError("cat: expected a non-empty sequence of tensors", op="cat")
    nd = tensors[0].ndim
    if nd == 0:
        raise ShapeError("cat: zero-dimensional tensors cannot be concatenated; use st.stack", op="cat")
    d = dim % nd
    for i, t in enumerate(tensors):
        if t.ndim != nd or tuple(t.shape[:d]) + tuple(t.shape[d + 1:]) != tuple(tensors[0].shape[:d]) + tuple(tensors[0].shape[d + 1:]):
            shapes = tuple(tuple(x.shape) for x in tensors)
            raise ShapeError(f"cat: tensor {i} has shape {tuple(t.shape)}; all shapes must match except in dimension "
                             f"{dim} (shapes: {shapes})", op="cat", shapes=shapes)
    if len(tensors) == 1:
        return tensors[0]
    return _d("cat", *tensors, dim=d)


concat = cat


def stack(tensors: Sequence[Tensor], dim: int = 0) -> Tensor:
    """Join tensors along a new dimension."""
    tensors = list(tensors)
    if not tensors:
        raise ShapeError("stack: expected a non-empty sequence of tensors", op="stack")
    shapes = {tuple(t.shape) for t in tensors}
    if len(shapes) != 1:
        raise ShapeError(f"stack: all tensors must have the same shape; got {sorted(shapes)}", op="stack",
                         shapes=tuple(shapes))
    d = dim if dim >= 0 else dim + tensors[0].ndim + 1
    return cat([t.unsqueeze(d) for t in tensors], dim=d)


def isclose(a: Tensor, b: Any, rtol: float = 1e-5, atol: float = 1e-8) -> Tensor:
    return (a - b).abs() <= atol + rtol * (b.abs() if isinstance(b, Tensor) else builtins.abs(b))


def allclose(a: Tensor, b: Any, rtol: float = 1e-5, atol: float = 1e-8) -> bool:
    import numpy as np

    return bool(np.allclose(a.numpy(), b.numpy() if isinstance(b, Tensor) else b, rtol=rtol, atol=atol))
