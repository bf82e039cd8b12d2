"""Reductions, cumsum and the fused softmax on the host side (WGSL in reduce/scan/softmax.wgsl).

The input's dimensions are split into kept and reduced ones by strides alone (no
copy); each side is described to the kernel by its own small indexer. Integer and
bool sums and products give int32, and argmax/argmin int32 indices (the wgpu default
integer).
"""

from __future__ import annotations

import math
from typing import Any

from ... import dtypes as _dt
from ...dtypes import DType
from ...errors import LimitError
from ..array_kernels import normalize_dims
from .runtime import EXTRA, Runtime, compute_type, f32_bits, i32_bits
from .runtime import coalesce as _coalesce
from .storage import WGSL_TYPES, WGPUStorage

__all__ = ["reduce", "cumsum", "softmax", "softmax_backward", "cross_entropy", "cross_entropy_backward"]

_OPS = {"sum": 0, "prod": 1, "amax": 2, "amin": 3, "argmax": 4, "argmin": 5, "mean": 6}
_NAMES = {"amax": "max", "amin": "min", "argmax": "argmax", "argmin": "argmin"}
#: rows shorter than this are reduced by one invocation each
_THREAD_ROW = 64
#: a long row is split so that each workgroup folds about this many elements per invocation
_CHUNK_STEPS = 16
#: and so that rows x chunks stays near this many workgroups
_SPLIT_GROUPS = 1024
_ACC_DTYPES = {"f32": _dt.float32, "i32": _dt.int32, "u32": _dt.uint32}


def _pack(words: list[int], at: int, values: tuple[int, ...]) -> None:
    for k, v in enumerate(values):
        words[at + k] = i32_bits(v)


def _dims_block(shape: tuple[int, ...], strides: tuple[int, ...], what: str) -> tuple[tuple[int, ...], tuple[int, ...]]:
    cshape, (cstrides,) = _coalesce(shape, [strides])
    if len(cshape) > 8:
        raise LimitError(f"wgpu reductions index up to 8 {what} dimensions; got shape {shape}",
                         limit="max_dims", requested=len(cshape), maximum=8)
    return cshape, cstrides


def _one_axis(dim: int, ndim: int) -> int:
    """``dim`` as a non-negative axis (IndexError when out of range)."""
    axes = normalize_dims(dim, ndim)
    return axes[0] if axes else 0


def _wg_for(n: int) -> int:
    wg = 32
    while wg < n and wg < 256:
        wg *= 2
    return wg


def _out_dtype(name: str, dt: DType) -> DType:
    if name in ("argmax", "argmin"):
        return _dt.int32
    if name in ("sum", "prod") and dt.kind in "bi":
        return _dt.uint32 if dt is _dt.uint32 else _dt.int32
    return dt


def reduce(rt: Runtime, name: str, x: WGPUStorage, dim: Any, keepdim: bool) -> WGPUStorage:
    """``name`` over ``dim`` (None: all, an int, or a tuple of ints), as the cpu kernel."""
    nd = x.ndim
    axes = normalize_dims(dim, nd)
    if name in ("argmax", "argmin") and axes is not None and len(axes) != 1:
        raise TypeError(f"{name} takes one dimension; got {dim}")
    red = tuple(range(nd)) if axes is None else tuple(sorted(set(axes)))
    kept = tuple(d for d in range(nd) if d not in red)
    n_red = math.prod(x.shape[d] for d in red)
    if name in _NAMES and x.size == 0 and (axes is None or any(x.shape[a] == 0 for a in red)):
        raise ValueError(f"{_NAMES[name]}() of an empty tensor over a zero-size dimension has no identity; "
                         "give a non-empty input")
    if name in ("argmax", "argmin") and axes is None:
        out_shape: tuple[int, ...] = (1,) * nd if keepdim else ()
    elif keepdim:
        out_shape = tuple(1 if d in red else s for d, s in enumerate(x.shape))
    else:
        out_shape = tuple(x.shape[d] for d in kept)
    dt = x.dtype
    if name == "mean" and dt.kind != "f":
        dt = _dt.float32
    out = rt.empty(out_shape, _out_dtype(name, dt))
    rows = out.size
    if rows == 0:
        return out
    kshape, kstrides = _dims_block(tuple(x.shape[d] for d in kept), tuple(x.strides[d] for d in kept), "kept")
    rshape, rstrides = _dims_block(tuple(x.shape[d] for d in red), tuple(x.strides[d] for d in red), "reduced")
    words = [0] * EXTRA
    words[0], words[1], words[2], words[3], words[4] = rows, len(kshape), i32_bits(x.offset), n_red, len(rshape)
    _pack(words, 8, kshape)
    _pack(words, 16, kstrides)
    _pack(words, 24, rshape)
    _pack(words, 32, rstrides)
    words[7] = max(n_red, 1) if name != "mean" or n_red else 0
    acc = "f32" if name == "mean" else ("i32" if x.dtype is _dt.int32 and name in ("sum", "prod") else compute_type(x.dtype))
    consts = {"OP": _OPS[name], "R_LINEAR": len(rshape) <= 1, "PASS": 0}
    types = {"TA": WGSL_TYPES[x.dtype.name], "TO": WGSL_TYPES[out.dtype.name], "C": acc}
    d1, d2 = rt.dummy, rt.dummy2
    if n_red < _THREAD_ROW or rows >= 4096 and n_red < 1024:
        pipe = rt.pipeline("reduce", "rwwr", entry="reduce_thread", types=types, consts=consts, wg=64)
        rt.launch(pipe, (x.buffer, out.buffer, d1, d2), words, rows, wg=64)
        return out
    wg = _wg_for(n_red)
    chunks = min(-(-n_red // (wg * _CHUNK_STEPS)), max(1, _SPLIT_GROUPS // rows))
    if chunks <= 1:
        pipe = rt.pipeline("reduce", "rwwr", entry="reduce_wg", types=types, consts=consts, wg=wg)
        rt.launch_groups(pipe, (x.buffer, out.buffer, d1, d2), words, rows)
        return out
    # long rows: partial results per chunk, then one more launch combines them
    chunk = -(-n_red // chunks)
    chunks = -(-n_red // chunk)  # so that no chunk is empty
    words[5], words[6] = chunks, chunk
    part = rt.empty((rows, chunks), _ACC_DTYPES[acc])
    part_idx = rt.empty((rows, chunks), _dt.uint32) if name in ("argmax", "argmin") else None
    pipe = rt.pipeline("reduce", "rwwr", entry="reduce_wg", types={**types, "TO": acc},
                       consts={**consts, "PASS": 1}, wg=wg)
    rt.launch_groups(pipe, (x.buffer, part.buffer, part_idx.buffer if part_idx else d1, d2), words, rows * chunks)
    words2 = list(words)
    words2[3], words2[5], words2[6] = chunks, 0, 0
    wg2 = _wg_for(chunks)
    pipe = rt.pipeline("reduce", "rwwr", entry="reduce_wg", types={**types, "TA": acc},
                       consts={**consts, "PASS": 2}, wg=wg2)
    rt.launch_groups(pipe, (part.buffer, out.buffer, d1, part_idx.buffer if part_idx else d2), words2, rows)
    return out


def _line_words(x: WGPUStorage, out: WGPUStorage, dim: int) -> list[int]:
    """Parameters of scan.wgsl / softmax.wgsl: the grid of lines along ``dim``."""
    grid = tuple(s for d, s in enumerate(x.shape) if d != dim)
    istr = tuple(st for d, st in enumerate(x.strides) if d != dim)
    ostr = tuple(st for d, st in enumerate(out.strides) if d != dim)
    gshape, (gi, go) = _coalesce(grid, [istr, ostr])
    if len(gshape) > 8:
        raise LimitError(f"wgpu row kernels index up to 8 dimensions; got shape {x.shape}", limit="max_dims",
                         requested=len(gshape), maximum=8)
    words = [0] * EXTRA
    words[0] = math.prod(grid)
    words[1] = len(gshape)
    words[2] = i32_bits(x.offset)
    words[3] = x.shape[dim]
    words[4] = i32_bits(x.strides[dim])
    words[5] = i32_bits(out.strides[dim])
    _pack(words, 8, gshape)
    _pack(words, 16, gi)
    _pack(words, 24, go)
    return words


def cumsum(rt: Runtime, x: WGPUStorage, dim: int) -> WGPUStorage:
    """Inclusive prefix sums along ``dim`` (int32 for integer and bool inputs)."""
    d = _one_axis(dim, x.ndim) if x.ndim else 0
    if x.ndim == 0:
        x = x.view((1,), (1,), x.offset)
    out_dt = _dt.int32 if x.dtype.kind in "bi" and x.dtype is not _dt.uint32 else x.dtype
    out = rt.empty(x.shape, out_dt)
    if out.size:
        types = {"TA": WGSL_TYPES[x.dtype.name], "TO": WGSL_TYPES[out_dt.name],
                 "C": "i32" if out_dt is _dt.int32 else compute_type(out_dt)}
        pipe = rt.pipeline("scan", "rw", types=types, wg=64)
        words = _line_words(x, out, d)
        rt.launch(pipe, (x.buffer, out.buffer), words, words[0], wg=64)
    return out


def softmax(rt: Runtime, x: WGPUStorage, dim: int, log: bool) -> WGPUStorage:
    """Softmax (or log-softmax) along ``dim`` in one kernel."""
    if x.dtype.kind != "f":
        raise TypeError(f"softmax needs a floating-point tensor; got {x.dtype.name}")
    nd = x.ndim
    view = x if nd else x.view((1,), (1,), x.offset)
    d = _one_axis(dim, max(nd, 1))
    out = rt.empty(view.shape, x.dtype)
    if out.size:
        wg = _wg_for(view.shape[d])
        pipe = rt.pipeline("softmax", "rw", types={"TA": WGSL_TYPES[x.dtype.name]}, consts={"LOG": log}, wg=wg)
        words = _line_words(view, out, d)
        rt.launch_groups(pipe, (x.buffer, out.buffer), words, words[0])
    return out if nd else out.view((), (), 0)


def cross_entropy(rt: Runtime, x: WGPUStorage, t: WGPUStorage, ignore_index: int, label_smoothing: float,
                  reduction: str) -> WGPUStorage:
    """Fused cross-entropy of (N, C) logits against class indices ``t`` (N,)."""
    from . import elementwise as ew

    if x.ndim != 2 or t.ndim != 1 or t.shape[0] != x.shape[0]:
        raise ValueError(f"cross_entropy: expected logits (N, C) and targets (N,); got {x.shape} and {t.shape}")
    if x.dtype.kind != "f" or t.dtype.kind == "f":
        raise TypeError(f"cross_entropy: expected float logits and integer targets; got {x.dtype.name} and "
                        f"{t.dtype.name}")
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"cross_entropy: reduction must be 'mean', 'sum' or 'none'; got {reduction!r}")
    n, c = x.shape
    if n == 0:
        if reduction == "none":
            return rt.empty((0,), x.dtype)
        return ew.fill(rt, (), float("nan") if reduction == "mean" else 0.0, x.dtype)
    loss = rt.empty((n,), x.dtype)
    valid = rt.empty((n,), x.dtype)
    words = [0] * EXTRA
    words[:9] = [n, c, i32_bits(x.offset), i32_bits(x.strides[0]), i32_bits(x.strides[1]), i32_bits(t.offset),
                 i32_bits(t.strides[0]), i32_bits(ignore_index), f32_bits(label_smoothing)]
    types = {"TA": WGSL_TYPES[x.dtype.name], "TI": WGSL_TYPES[t.dtype.name]}
    pipe = rt.pipeline("losses", "rrwwr", entry="cross_entropy_rows", types=types, consts={"REDUCTION": 0},
                       wg=_wg_for(c))
    rt.launch_groups(pipe, (x.buffer, t.buffer, loss.buffer, valid.buffer, rt.dummy), words, n)
    if reduction == "none":
        return loss
    total = reduce(rt, "sum", loss, None, False)
    if reduction == "sum":
        return total
    return ew.binary(rt, "div", total, reduce(rt, "sum", valid, None, False))


def cross_entropy_backward(rt: Runtime, g: WGPUStorage, x: WGPUStorage, t: WGPUStorage, ignore_index: int,
                           label_smoothing: float, reduction: str) -> WGPUStorage:
    """d cross_entropy / d logits in one kernel (the forward's first-order gradient)."""
    n, c = x.shape
    out = rt.empty((n, c), x.dtype)
    if out.size == 0:
        return out
    words = [0] * EXTRA
    words[:11] = [n, c, i32_bits(x.offset), i32_bits(x.strides[0]), i32_bits(x.strides[1]), i32_bits(t.offset),
                  i32_bits(t.strides[0]), i32_bits(ignore_index), f32_bits(label_smoothing), i32_bits(g.offset),
                  i32_bits(g.strides[0] if g.ndim else 0)]
    if g.dtype is not x.dtype:
        from . import elementwise as ew

        g = ew.cast(rt, g, x.dtype)
        words[9], words[10] = 0, 1 if g.ndim else 0
    types = {"TA": WGSL_TYPES[x.dtype.name], "TI": WGSL_TYPES[t.dtype.name]}
    consts = {"REDUCTION": {"mean": 0, "sum": 1, "none": 2}[reduction]}
    pipe = rt.pipeline("losses", "rrwwr", entry="cross_entropy_grad_rows", types=types, consts=consts,
                       wg=_wg_for(max(c, n if reduction == "mean" else 1)))
    rt.launch_groups(pipe, (x.buffer, t.buffer, out.buffer, rt.dummy, g.buffer), words, n)
    return out


def softmax_backward(rt: Runtime, g: WGPUStorage, y: WGPUStorage, dim: int, log: bool) -> WGPUStorage:
    """The gradient of softmax (or log-softmax) along ``dim`` from its output ``y``, in one kernel."""
    from . import elementwise as ew

    if g.shape != y.shape:
        g = ew.broadcast_view(g, y.shape)
    if g.dtype is not y.dtype:
        g = ew.cast(rt, g, y.dtype)
    scalar = y.ndim == 0
    if scalar:
        y, g = y.view((1,), (1,), y.offset), g.view((1,), (1,), g.offset)
    d = _one_axis(dim, y.ndim)
    out = rt.empty(y.shape, y.dtype)
    if out.size:
        words = _line_words(y, out, d)
        grid = tuple(s for k, s in enumerate(y.shape) if k != d)
        gstr = tuple(st for k, st in enumerate(g.strides) if k != d)
        ystr = tuple(st for k, st in enumerate(y.strides) if k != d)
        ostr = tuple(st for k, st in enumerate(out.strides) if k != d)
        gshape, (gy, go, gg) = _coalesce(grid, [ystr, ostr, gstr])
        words[1] = len(gshape)
        for k in range(8):
            words[8 + k] = gshape[k] if k < len(gshape) else 0
            words[16 + k] = i32_bits(gy[k]) if k < len(gshape) else 0
            words[24 + k] = i32_bits(go[k]) if k < len(gshape) else 0
            words[32 + k] = i32_bits(gg[k]) if k < len(gshape) else 0
        words[6], words[7] = i32_bits(g.offset), i32_bits(g.strides[d])
        pipe = rt.pipeline("softmax_grad", "rrw", types={"TA": WGSL_TYPES[y.dtype.name]}, consts={"LOG": log},
                           wg=_wg_for(y.shape[d]))
        rt.launch_groups(pipe, (y.buffer, g.buffer, out.buffer), words, words[0])
    return out.view((), (), 0) if scalar else out
