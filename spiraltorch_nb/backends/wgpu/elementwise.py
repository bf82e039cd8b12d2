"""Elementwise kernels on the host side: unary, binary, where, cast, copies and fills.

Each function takes :class:`WGPUStorage` inputs (and Python scalars where NumPy
accepts them), records one dispatch and returns a new storage; nothing is read back.
The WGSL lives in ``kernels/wgsl/{unary,binary,binary_ops,binary_inplace,where,copy,
fill}.wgsl``; the tables below only name, for each op and compute category (f, i, u,
b), the WGSL function that implements it.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ... import dtypes as _dt
from ...dtypes import DType, promote_types
from ...errors import DTypeError
from .runtime import EXTRA, Runtime, broadcast_shapes, category, compute_type, f32_bits, scalar_bits
from .storage import WGSL_TYPES, WGPUStorage, contiguous_strides

__all__ = ["UNARY", "BINARY", "unary", "binary", "binary_inplace", "where", "cast", "clone", "copy_into",
           "contiguous", "fill", "arange", "broadcast_strides", "broadcast_view", "reshape_view", "is_scalar",
           "convert_scalar", "compute_type"]

#: unary op -> WGSL function per compute category (missing: not defined for that dtype)
UNARY: dict[str, dict[str, str]] = {
    "neg": {"f": "neg_f", "i": "neg_i", "u": "neg_u"},
    "abs": {"f": "abs_f", "i": "abs_i", "u": "identity_u", "b": "identity_u"},
    "sign": {"f": "sign_f", "i": "sign_i", "u": "sign_u"},
    "exp": {"f": "exp_f"},
    "log": {"f": "log_f"},
    "log1p": {"f": "log1p_f"},
    "expm1": {"f": "expm1_f"},
    "sqrt": {"f": "sqrt_f"},
    "rsqrt": {"f": "rsqrt_f"},
    "sin": {"f": "sin_f"},
    "cos": {"f": "cos_f"},
    "tanh": {"f": "tanh_f"},
    "erf": {"f": "erf_f"},
    "sigmoid": {"f": "sigmoid_f"},
    "floor": {"f": "floor_f", "i": "identity_i", "u": "identity_u", "b": "identity_u"},
    "ceil": {"f": "ceil_f", "i": "identity_i", "u": "identity_u", "b": "identity_u"},
    "round": {"f": "round_f", "i": "identity_i", "u": "identity_u", "b": "identity_u"},
    "logical_not": {"f": "logical_not_f", "i": "logical_not_i", "u": "logical_not_u", "b": "logical_not_u"},
    "relu": {"f": "relu_f", "i": "relu_i", "u": "identity_u", "b": "identity_u"},
    "leaky_relu": {"f": "leaky_relu_f"},
    "gelu": {"f": "gelu_f"},
    "gelu_tanh": {"f": "gelu_tanh_f"},
    "silu": {"f": "silu_f"},
    "softplus": {"f": "softplus_f"},
    "clamp": {"f": "clamp_f", "i": "clamp_i", "u": "clamp_u", "b": "clamp_u"},
}

_CMP = {name: {"f": f"{name}_f", "i": f"{name}_i", "u": f"{name}_u", "b": f"{name}_u"}
        for name in ("eq", "ne", "lt", "le", "gt", "ge")}

#: binary op -> WGSL function per compute category
BINARY: dict[str, dict[str, str]] = {
    "add": {"f": "add_f", "i": "add_i", "u": "add_u", "b": "or_b"},
    "sub": {"f": "sub_f", "i": "sub_i", "u": "sub_u"},
    "mul": {"f": "mul_f", "i": "mul_i", "u": "mul_u", "b": "and_b"},
    "div": {"f": "div_f"},
    "floordiv": {"f": "floordiv_f", "i": "floordiv_i", "u": "floordiv_u"},
    "remainder": {"f": "remainder_f", "i": "remainder_i", "u": "remainder_u"},
    "pow": {"f": "pow_ff", "i": "pow_i", "u": "pow_u"},
    "maximum": {"f": "maximum_f", "i": "maximum_i", "u": "maximum_u", "b": "or_b"},
    "minimum": {"f": "minimum_f", "i": "minimum_i", "u": "minimum_u", "b": "and_b"},
    "atan2": {"f": "atan2_ff"},
    "bias_gelu": {"f": "bias_gelu_ff"},
    "bias_gelu_tanh": {"f": "bias_gelu_tanh_ff"},
    "gelu_grad": {"f": "gelu_grad_ff"},
    "gelu_tanh_grad": {"f": "gelu_tanh_grad_ff"},
    "relu_grad": {"f": "relu_grad_f", "i": "relu_grad_i", "u": "relu_grad_u", "b": "and_b"},
    "logical_and": {"b": "and_b"},
    "logical_or": {"b": "or_b"},
    "logical_xor": {"b": "xor_b"},
    **_CMP,
}
_BOOL_RESULT = frozenset(("eq", "ne", "lt", "le", "gt", "ge", "logical_and", "logical_or", "logical_xor"))


def is_scalar(v: Any) -> bool:
    return isinstance(v, bool | int | float | np.generic)


def _fn_for(table: dict[str, dict[str, str]], name: str, dt: DType) -> str:
    fn = table[name].get(category(dt))
    if fn is None:
        msg = f"{name} is not defined for {dt.name} tensors on wgpu (as in NumPy); convert the input first, e.g. x.float()"
        raise DTypeError(msg, op=name, dtype=dt)
    return fn


def broadcast_strides(x: WGPUStorage, shape: tuple[int, ...]) -> tuple[int, ...]:
    """Strides that walk ``x`` as if broadcast to ``shape`` (0 along broadcast dimensions)."""
    lead = len(shape) - x.ndim
    out = [0] * lead
    for s, st, target in zip(x.shape, x.strides, shape[lead:], strict=True):
        out.append(0 if s == 1 and target != 1 else st)
    return tuple(out)


def broadcast_view(x: WGPUStorage, shape: tuple[int, ...]) -> WGPUStorage:
    """``x`` broadcast to ``shape`` as a view (ValueError when it does not broadcast)."""
    shape = tuple(shape)
    if x.shape == shape:
        return x
    if len(x.shape) > len(shape) or tuple(broadcast_shapes(x.shape, shape)) != shape:
        raise ValueError(f"could not broadcast input array from shape {x.shape} into shape {shape}")
    return x.view(shape, broadcast_strides(x, shape), x.offset)


def reshape_view(x: WGPUStorage, shape: tuple[int, ...]) -> WGPUStorage:
    """A one-element storage seen with another all-ones shape."""
    if x.size != 1 or math.prod(shape) != 1:
        raise ValueError(f"cannot view shape {x.shape} as {shape}")
    return x.view(tuple(shape), (0,) * len(shape), x.offset)


def _types(**named: DType) -> dict[str, str]:
    return {k: WGSL_TYPES[v.name] for k, v in named.items()}


# ---- unary ----------------------------------------------------------------------------
def unary(rt: Runtime, name: str, x: WGPUStorage, s0: Any = None, s1: Any = None) -> WGPUStorage:
    """``name`` applied elementwise; ``s0``/``s1`` are its scalar attributes (None: absent)."""
    dt = x.dtype
    fn = _fn_for(UNARY, name, dt)
    out_dt = _dt.bool_ if name == "logical_not" else dt
    out = rt.empty(x.shape, out_dt)
    if out.size == 0:
        return out
    c = compute_type(dt)
    types = {**_types(TA=dt, TO=out_dt), "C": c, "R": "u32" if name == "logical_not" else c}
    params = rt.indexer(x.shape, [(x.strides, x.offset)])
    pipe = rt.pipeline("unary", "rw", types=types, op=(fn, 1), consts={"LINEAR": rt.is_linear(params, 1)})
    params += [_attr_bits(s0, dt), _attr_bits(s1, dt), int(s0 is not None), int(s1 is not None)]
    rt.launch(pipe, (x.buffer, out.buffer), params, out.size)
    return out


def _attr_bits(v: Any, dt: DType) -> int:
    if v is None:
        return 0
    if dt.kind == "f":
        return f32_bits(v)
    if isinstance(v, float) and not math.isfinite(v):
        return (0x7FFFFFFF if v > 0 else 0x80000000) if dt.name == "int32" else (0xFFFFFFFF if v > 0 else 0)
    return scalar_bits(int(v), dt)


# ---- binary ---------------------------------------------------------------------------
def _scalar_dtype(v: Any) -> DType:
    if isinstance(v, bool | np.bool_):
        return _dt.bool_
    if isinstance(v, int | np.integer):
        return _dt.int32
    return _dt.float32


def binary(rt: Runtime, name: str, a: Any, b: Any) -> WGPUStorage:
    """``name`` elementwise with NumPy broadcasting; one side may be a Python scalar."""
    a_s, b_s = is_scalar(a), is_scalar(b)
    if a_s and b_s:
        raise DTypeError(f"{name} needs at least one tensor operand on wgpu", op=name)
    if name in ("logical_and", "logical_or", "logical_xor"):
        a = a if a_s else _as_bool(rt, a)
        b = b if b_s else _as_bool(rt, b)
        a = bool(a) if a_s else a
        b = bool(b) if b_s else b
    elif not a_s and not b_s and a.dtype is not b.dtype:
        common = promote_types(a.dtype, b.dtype)
        a, b = cast(rt, a, common), cast(rt, b, common)
    dt = b.dtype if a_s else a.dtype
    fn = _fn_for(BINARY, name, dt)
    shape = tuple(broadcast_shapes(() if a_s else a.shape, () if b_s else b.shape))
    out_dt = _dt.bool_ if name in _BOOL_RESULT else dt
    out = rt.empty(shape, out_dt)
    if out.size == 0:
        return out
    c = compute_type(dt)
    types = {**_types(TA=dt, TB=dt, TO=out_dt), "C": c, "R": "u32" if name in _BOOL_RESULT else c}
    dense = (contiguous_strides(shape), 0)  # a scalar's slot is never read: let it look dense
    ops = [dense if a_s else (broadcast_strides(a, shape), a.offset),
           dense if b_s else (broadcast_strides(b, shape), b.offset)]
    params = rt.indexer(shape, ops)
    consts = {"A_SCALAR": a_s, "B_SCALAR": b_s, "LINEAR": rt.is_linear(params, 2)}
    pipe = rt.pipeline("binary", "rrw", types=types, consts=consts, op=(fn, 2))
    params += [scalar_bits(a, dt) if a_s else 0, scalar_bits(b, dt) if b_s else 0]
    buf_a = b.buffer if a_s else a.buffer
    buf_b = a.buffer if b_s else b.buffer
    rt.launch(pipe, (buf_a, buf_b, out.buffer), params, out.size)
    return out


def binary_inplace(rt: Runtime, name: str, a: WGPUStorage, b: Any) -> WGPUStorage:
    """``a op= b`` written into ``a``'s own buffer (b broadcast to a's shape); returns ``a``."""
    b_s = is_scalar(b)
    dt = a.dtype
    if not b_s:
        b = broadcast_view(b, a.shape)
        if b.dtype is not dt:
            b = cast(rt, b, dt)
        elif b.block is a.block:
            b = clone(rt, b)  # one buffer cannot be bound for reading and for writing
    if a.size == 0:
        return a
    fn = _fn_for(BINARY, name, dt)
    c = compute_type(dt)
    types = {"TA": WGSL_TYPES[dt.name], "C": c, "R": c}
    ops = [(a.strides, a.offset), (contiguous_strides(a.shape), 0) if b_s else (b.strides, b.offset)]
    params = rt.indexer(a.shape, ops)
    consts = {"B_SCALAR": b_s, "LINEAR": rt.is_linear(params, 2)}
    pipe = rt.pipeline("binary_inplace", "wr", types=types, consts=consts, op=(fn, 2))
    params += [0, scalar_bits(b, dt) if b_s else 0]
    rt.launch(pipe, (a.buffer, rt.dummy if b_s else b.buffer), params, a.size)
    return a


def _as_bool(rt: Runtime, x: WGPUStorage) -> WGPUStorage:
    return x if x.dtype is _dt.bool_ else cast(rt, x, _dt.bool_)


# ---- where ------------------------------------------------------------------------------
def where(rt: Runtime, cond: Any, a: Any, b: Any) -> WGPUStorage:
    """``cond ? a : b`` elementwise with broadcasting; a or b may be Python scalars."""
    if is_scalar(cond):
        cond = fill(rt, (), bool(cond), _dt.bool_)
    a_s, b_s = is_scalar(a), is_scalar(b)
    if a_s and b_s:
        dt = promote_types(_scalar_dtype(a), _scalar_dtype(b))
        a, a_s = fill(rt, (), a, dt), False
    elif not a_s and not b_s and a.dtype is not b.dtype:
        common = promote_types(a.dtype, b.dtype)
        a, b = cast(rt, a, common), cast(rt, b, common)
    dt = b.dtype if a_s else a.dtype
    shape = tuple(broadcast_shapes(cond.shape, () if a_s else a.shape, () if b_s else b.shape))
    out = rt.empty(shape, dt)
    if out.size == 0:
        return out
    types = {**_types(TW=cond.dtype, TA=dt), "C": compute_type(dt)}
    dense = (contiguous_strides(shape), 0)  # a scalar's slot is never read: let it look dense
    ops = [(broadcast_strides(cond, shape), cond.offset),
           dense if a_s else (broadcast_strides(a, shape), a.offset),
           dense if b_s else (broadcast_strides(b, shape), b.offset)]
    params = rt.indexer(shape, ops)
    consts = {"A_SCALAR": a_s, "B_SCALAR": b_s, "LINEAR": rt.is_linear(params, 3)}
    pipe = rt.pipeline("where", "rrrw", types=types, consts=consts)
    params += [scalar_bits(a, dt) if a_s else 0, scalar_bits(b, dt) if b_s else 0]
    buf_a = b.buffer if a_s else a.buffer
    buf_b = a.buffer if b_s else b.buffer
    rt.launch(pipe, (cond.buffer, buf_a, buf_b, out.buffer), params, out.size)
    return out


# ---- copies ------------------------------------------------------------------------------
def copy_into(rt: Runtime, dst: WGPUStorage, src: Any) -> None:
    """Write ``src`` (a storage broadcast to dst's shape, or a scalar) into the view ``dst``."""
    if dst.size == 0:
        return
    scalar = is_scalar(src)
    if not scalar and src.block is dst.block:
        src = clone(rt, src)  # a kernel must not read and write one buffer
    ta = dst.dtype if scalar else src.dtype
    types = {**_types(TA=ta, TO=dst.dtype), "CO": compute_type(dst.dtype)}
    consts = {"SRC_SCALAR": scalar, "TO_BOOL": dst.dtype is _dt.bool_ and ta is not _dt.bool_,
              "WRAP_NEG": dst.dtype is _dt.uint32 and ta.kind == "f"}
    if scalar:
        src_op = (contiguous_strides(dst.shape), 0)
        src_buf = rt.dummy
        value = scalar_bits(convert_scalar(src, dst.dtype), dst.dtype)
    else:
        src_op = (broadcast_strides(src, dst.shape), src.offset)
        src_buf = src.buffer
        value = 0
    params = rt.indexer(dst.shape, [(dst.strides, dst.offset), src_op])
    params.append(value)
    consts["LINEAR"] = rt.is_linear(params, 2)
    pipe = rt.pipeline("copy", "rw", types=types, consts=consts)
    rt.launch(pipe, (src_buf, dst.buffer), params, dst.size)


def convert_scalar(v: Any, dt: DType) -> Any:
    """A scalar as NumPy would store it in ``dt`` (floats truncate into integers)."""
    if dt is _dt.bool_:
        return bool(v)
    if dt.kind == "i":
        if isinstance(v, float) and not math.isfinite(v):
            raise ValueError(f"cannot convert float {v} to integer")
        return int(v)
    return float(v)


def cast(rt: Runtime, x: WGPUStorage, dtype: DType) -> WGPUStorage:
    """A new contiguous storage of ``x`` converted to ``dtype`` (NumPy's astype)."""
    out = rt.empty(x.shape, dtype)
    copy_into(rt, out, x)
    return out


def clone(rt: Runtime, x: WGPUStorage) -> WGPUStorage:
    """A contiguous copy of ``x``."""
    out = rt.empty(x.shape, x.dtype)
    if out.size:
        types = {**_types(TA=x.dtype, TO=x.dtype), "CO": compute_type(x.dtype)}
        params = rt.indexer(x.shape, [(out.strides, 0), (x.strides, x.offset)])
        params.append(0)
        consts = {"SRC_SCALAR": False, "TO_BOOL": False, "WRAP_NEG": False, "LINEAR": rt.is_linear(params, 2)}
        pipe = rt.pipeline("copy", "rw", types=types, consts=consts)
        rt.launch(pipe, (x.buffer, out.buffer), params, out.size)
    return out


def contiguous(rt: Runtime, x: WGPUStorage) -> WGPUStorage:
    """``x`` itself when dense and row-major, else a contiguous copy."""
    return x if x.is_contiguous() else clone(rt, x)


def fill(rt: Runtime, shape: tuple[int, ...], value: Any, dtype: DType) -> WGPUStorage:
    """A new storage of ``shape`` holding ``value`` everywhere."""
    out = rt.empty(shape, dtype)
    copy_into(rt, out, value)
    return out


def arange(rt: Runtime, start: Any, stop: Any, step: Any, dtype: DType) -> WGPUStorage:
    """``start, start + step, ...`` below ``stop``, as ``np.arange`` with ``dtype``."""
    n = max(int(math.ceil((stop - start) / step)), 0)
    out = rt.empty((n,), dtype)
    if n == 0:
        return out
    if dtype is _dt.bool_:
        raise DTypeError("arange cannot make a bool tensor; ask for an integer or float dtype", op="arange",
                         dtype=dtype)
    c = compute_type(dtype)
    pipe = rt.pipeline("fill", "w", entry="arange", types={"TO": WGSL_TYPES[dtype.name], "C": c})
    params = [0] * EXTRA
    params[0] = n
    params += [scalar_bits(start, dtype), scalar_bits(step, dtype)]
    rt.launch(pipe, (out.buffer,), params, n)
    return out
