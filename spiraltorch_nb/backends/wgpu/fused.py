"""Fused kernels on the host side: layer norm, bias + GELU, and optimizer updates.

They implement ``ops/fused.py``'s operators (``fused_layer_norm``, ``fused_bias_gelu``
and their first-order backwards) in one or a few dispatches instead of the dozen small
ops of the composites, and ``ops/update.py``'s in-place updates (``axpy_``, ``lerp_``,
``addcmul_``, ``addcdiv_``, ``maximum_``) in one dispatch each, writing into the
parameter's own buffer. WGSL in ``kernels/wgsl/{layernorm,binary_ops,update}.wgsl``.
"""

from __future__ import annotations

import math
from typing import Any

from ...errors import DTypeError
from . import elementwise as ew
from .reduce import reduce
from .runtime import EXTRA, Runtime, f32_bits, i32_bits
from .storage import WGSL_TYPES, WGPUStorage, contiguous_strides

__all__ = ["bias_gelu", "bias_gelu_backward", "layer_norm", "layer_norm_backward", "update"]

_UPDATES = {"axpy_": 0, "lerp_": 1, "addcmul_": 2, "addcdiv_": 3, "maximum_": 4}


def bias_gelu(rt: Runtime, x: WGPUStorage, bias: WGPUStorage, approximate: str = "none") -> WGPUStorage:
    """``gelu(x + bias)`` in one elementwise kernel."""
    return ew.binary(rt, "bias_gelu_tanh" if approximate == "tanh" else "bias_gelu", x, bias)


def bias_gelu_backward(rt: Runtime, g: WGPUStorage, x: WGPUStorage, bias: WGPUStorage,
                       approximate: str = "none") -> WGPUStorage:
    """``g * gelu'(x + bias)``: the gradient with respect to ``x + bias``."""
    h = ew.binary(rt, "add", x, bias)
    return ew.binary(rt, "gelu_tanh_grad" if approximate == "tanh" else "gelu_grad", g, h)


def _rows(rt: Runtime, t: WGPUStorage) -> tuple[WGPUStorage, int, int]:
    """``t`` dense, with its row count and row length (the last dimension)."""
    t = ew.contiguous(rt, t)
    n = t.shape[-1] if t.ndim else 1
    return t, (math.prod(t.shape[:-1]) if t.ndim else 1), n


def _launch(rt: Runtime, entry: str, x: WGPUStorage, w: Any, third: Any, outs: tuple[WGPUStorage, ...],
            rows: int, n: int, eps: float, g_offset: int = 0, has_bias: bool = False) -> None:
    words = [0] * EXTRA
    words[:9] = [rows, n, i32_bits(x.offset), n, f32_bits(eps), i32_bits(g_offset), n,
                 i32_bits(w.offset) if w is not None else 0, i32_bits(third.offset) if has_bias else 0]
    wg = 32
    while wg < n and wg < 256:
        wg *= 2
    consts = {"HAS_WEIGHT": w is not None, "HAS_BIAS": has_bias}
    pipe = rt.pipeline("layernorm", "rrrww", entry=entry, types={"TA": WGSL_TYPES[x.dtype.name]}, consts=consts,
                       wg=wg)
    buffers = (x.buffer, w.buffer if w is not None else rt.dummy2, third.buffer if third is not None else rt.dummy2,
               outs[0].buffer, outs[1].buffer if len(outs) > 1 else rt.dummy)
    rt.launch_groups(pipe, buffers, words, rows)


def _same(rt: Runtime, t: Any, like: WGPUStorage) -> Any:
    if t is None:
        return None
    t = ew.contiguous(rt, t)
    return t if t.dtype is like.dtype else ew.cast(rt, t, like.dtype)


def layer_norm(rt: Runtime, x: WGPUStorage, weight: Any = None, bias: Any = None, eps: float = 1e-5) -> WGPUStorage:
    """Layer norm over the last dimension, with optional weight and bias, in one kernel."""
    xr, rows, n = _rows(rt, x)
    out = rt.empty(x.shape, x.dtype)
    if out.size:
        _launch(rt, "forward", xr, _same(rt, weight, x), _same(rt, bias, x), (out,), rows, n, eps,
                has_bias=bias is not None)
    return out


def layer_norm_backward(rt: Runtime, g: WGPUStorage, x: WGPUStorage, weight: Any = None,
                        eps: float = 1e-5) -> tuple[WGPUStorage, WGPUStorage, WGPUStorage]:
    """(d x, d weight, d bias) of layer norm: one row kernel and two column sums."""
    xr, rows, n = _rows(rt, x)
    gr = _same(rt, ew.broadcast_view(g, x.shape), x)
    dx = rt.empty(x.shape, x.dtype)
    gxhat = rt.empty((rows, n), x.dtype)
    if dx.size:
        _launch(rt, "backward", xr, _same(rt, weight, x), gr, (dx, gxhat), rows, n, eps, g_offset=gr.offset)
    g2 = gr.view((rows, n), (n, 1), gr.offset)
    return dx, reduce(rt, "sum", gxhat, 0, False), reduce(rt, "sum", g2, 0, False)


def _operand(rt: Runtime, t: WGPUStorage, x: WGPUStorage) -> WGPUStorage:
    """An update operand broadcast to x, of x's dtype, and never sharing x's buffer."""
    t = ew.broadcast_view(t, x.shape)
    if t.dtype is not x.dtype:
        return ew.cast(rt, t, x.dtype)
    if t.block is x.block:
        return ew.clone(rt, t)  # one buffer cannot be bound for reading and for writing
    return t


def update(rt: Runtime, name: str, x: WGPUStorage, a: WGPUStorage, b: Any = None, s0: float = 1.0) -> WGPUStorage:
    """The in-place update ``name`` of ``x`` (see ``update.wgsl``); returns ``x``."""
    if x.dtype.kind != "f":
        raise DTypeError(f"{name} updates floating-point tensors on wgpu; got {x.dtype.name}", op=name, dtype=x.dtype)
    a = _operand(rt, a, x)
    b = _operand(rt, b, x) if b is not None else None
    if x.size == 0:
        return x
    dense = (contiguous_strides(x.shape), 0)
    words = rt.indexer(x.shape, [(x.strides, x.offset), (a.strides, a.offset),
                                 (b.strides, b.offset) if b is not None else dense])
    words.append(f32_bits(s0))
    consts = {"KIND": _UPDATES[name], "LINEAR": rt.is_linear(words, 3)}
    pipe = rt.pipeline("update", "wrr", types={"TA": WGSL_TYPES[x.dtype.name]}, consts=consts)
    rt.launch(pipe, (x.buffer, a.buffer, b.buffer if b is not None else rt.dummy), words, x.size)
    return x
