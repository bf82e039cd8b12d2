"""Indexing on the device: basic keys as views, advanced keys with gather/scatter kernels.

Keys arrive in native form (ints, slices, None, Ellipsis, and WGPUStorage index
arrays). The basic part of a key (ints, slices, None) is always applied as a view.
Integer index arrays then follow NumPy's advanced-indexing rules: they broadcast to
one index shape B, which replaces the indexed dimensions in place when those are
adjacent in the key and goes first otherwise.

The one host round trip: a bool mask used as an index has a data-dependent result
shape, so it is read back to find its nonzero positions (a counted, reported
transfer). ``x[mask] = value`` with a full-shape mask and a scalar value avoids it (it
is a ``where``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ... import dtypes as _dt
from ...errors import DTypeError
from . import elementwise as ew
from .runtime import EXTRA, Runtime, broadcast_shapes, i32_bits, scalar_bits
from .storage import WGSL_TYPES, WGPUStorage, contiguous_strides

__all__ = ["getitem", "getitem_grad", "index_put", "gather", "gather_grad"]


@dataclass
class _Plan:
    """A key applied to a (shape, strides, offset): the basic view and the advanced part."""

    shape: tuple[int, ...]        # the view, with array-indexed dims kept
    strides: tuple[int, ...]
    offset: int
    arrays: list[tuple[int, WGPUStorage]]  # (view dim, index array)
    insert: int                   # where B goes among the remaining dims (-1: first)

    @property
    def advanced(self) -> bool:
        return bool(self.arrays)


def _bool_to_int(rt: Runtime, mask: WGPUStorage) -> list[WGPUStorage]:
    # A mask's result shape depends on its values: read it back (a counted transfer) and
    # upload the positions of its True entries, one int32 array per masked dimension.
    host = rt.download(ew.contiguous(rt, mask))
    return [rt.upload(np.asarray(ix, dtype=np.int32), _dt.int32) for ix in np.nonzero(host)]


def _plan(rt: Runtime, shape: tuple[int, ...], strides: tuple[int, ...], offset: int, key: Any) -> _Plan:
    if not isinstance(key, tuple):
        key = (key,)
    entries: list[Any] = []
    for k in key:
        if isinstance(k, WGPUStorage):
            if k.dtype is _dt.bool_:
                if k.ndim == 0:
                    raise IndexError("a 0-d bool index is not supported on wgpu; use x[None] or where()")
                entries.extend(_bool_to_int(rt, k))
                continue
            if k.dtype.kind == "f":
                raise DTypeError(f"tensors used as indices must be integer or bool; got {k.dtype.name}", op="getitem")
        elif isinstance(k, bool | np.bool_):
            raise IndexError("a Python bool index is not supported on wgpu; use x[None] or a bool tensor")
        elif isinstance(k, np.integer):
            k = int(k)
        elif not (k is None or k is Ellipsis or isinstance(k, int | slice)):
            raise IndexError(f"only integers, slices, None, Ellipsis and integer or bool tensors are valid indices; "
                             f"got {type(k).__name__}")
        entries.append(k)
    consumed = sum(1 for k in entries if k is not None and k is not Ellipsis)
    if consumed > len(shape):
        raise IndexError(f"too many indices for array: array is {len(shape)}-dimensional, but {consumed} were indexed")
    if sum(1 for k in entries if k is Ellipsis) > 1:
        raise IndexError("an index can only have a single ellipsis ('...')")
    at = next((i for i, k in enumerate(entries) if k is Ellipsis), None)
    if at is not None:
        entries[at:at + 1] = [slice(None)] * (len(shape) - consumed)
    has_adv = any(isinstance(k, WGPUStorage) for k in entries)
    adv_pos = [i for i, k in enumerate(entries) if isinstance(k, WGPUStorage) or (has_adv and isinstance(k, int))]
    vshape: list[int] = []
    vstrides: list[int] = []
    off = offset
    xd = 0
    arrays: list[tuple[int, WGPUStorage]] = []
    insert = 0
    for i, k in enumerate(entries):
        if has_adv and i == adv_pos[0]:
            insert = len(vshape)
        if k is None:
            vshape.append(1)
            vstrides.append(0)
            continue
        size, stride = shape[xd], strides[xd]
        if isinstance(k, int):
            if not -size <= k < size:
                raise IndexError(f"index {k} is out of bounds for axis {xd} with size {size}")
            off += (k % size) * stride
        elif isinstance(k, slice):
            start, stop, step = k.indices(size)
            n = len(range(start, stop, step))
            if n:
                off += start * stride
            vshape.append(n)
            vstrides.append(stride * step)
        else:
            arrays.append((len(vshape), k))
            vshape.append(size)
            vstrides.append(stride)
        xd += 1
    vshape.extend(shape[xd:])
    vstrides.extend(strides[xd:])
    adjacent = not adv_pos or adv_pos == list(range(adv_pos[0], adv_pos[0] + len(adv_pos)))
    return _Plan(tuple(vshape), tuple(vstrides), off, arrays, insert if adjacent else -1)


def _lin(rt: Runtime, plan: _Plan) -> tuple[WGPUStorage, tuple[int, ...]]:
    """The int32 offsets (within the view) that each index position selects, shape B."""
    b_shape = tuple(broadcast_shapes(*(a.shape for _, a in plan.arrays)))
    lin = rt.empty(b_shape, _dt.int32)
    if lin.size == 0:
        return lin, b_shape
    prev: WGPUStorage | None = None
    for dim, arr in plan.arrays:
        out = lin if prev is None or len(plan.arrays) == 1 else rt.empty(b_shape, _dt.int32)
        types = {"TA": "i32", "TI": WGSL_TYPES[arr.dtype.name], "TO": "i32"}
        pipe = rt.pipeline("index", "rrw", entry="lin_accumulate", types=types, consts={"ACC": prev is not None})
        words = rt.indexer(b_shape, [(ew.broadcast_strides(arr, b_shape), arr.offset)])
        words += [plan.shape[dim], i32_bits(plan.strides[dim])]
        src = prev.buffer if prev is not None else rt.dummy
        rt.launch(pipe, (src, arr.buffer, out.buffer), words, lin.size)
        prev = out
    return out, b_shape


def _rest(plan: _Plan) -> tuple[list[int], tuple[int, ...], tuple[int, ...]]:
    adv = {d for d, _ in plan.arrays}
    dims = [d for d in range(len(plan.shape)) if d not in adv]
    return dims, tuple(plan.shape[d] for d in dims), tuple(plan.strides[d] for d in dims)


def _result_perm(n_b: int, n_r: int, insert: int) -> tuple[int, ...] | None:
    """Permutation from the kernel's (B..., R...) layout to NumPy's result order."""
    if insert <= 0:
        return None
    return tuple(range(n_b, n_b + insert)) + tuple(range(n_b)) + tuple(range(n_b + insert, n_b + n_r))


def getitem(rt: Runtime, x: WGPUStorage, key: Any) -> WGPUStorage:
    """``x[key]``: a view for basic keys, a gather for integer-array keys."""
    plan = _plan(rt, x.shape, x.strides, x.offset, key)
    if not plan.advanced:
        return x.view(plan.shape, plan.strides, plan.offset)
    lin, b_shape = _lin(rt, plan)
    _, r_shape, r_strides = _rest(plan)
    out = rt.empty(b_shape + r_shape, x.dtype)
    if out.size:
        n_r = math.prod(r_shape)
        words = [0] * EXTRA
        words[0], words[1], words[2], words[3] = out.size, len(r_shape), i32_bits(plan.offset), n_r
        for d, (s, st) in enumerate(zip(r_shape, r_strides, strict=True)):
            words[8 + d], words[16 + d] = s, i32_bits(st)
        t = WGSL_TYPES[x.dtype.name]
        pipe = rt.pipeline("index", "rrw", entry="gather_lin", types={"TA": t, "TI": "i32", "TO": t},
                           consts={"ACC": False})
        rt.launch(pipe, (x.buffer, lin.buffer, out.buffer), words, out.size)
    perm = _result_perm(len(b_shape), len(r_shape), plan.insert)
    if perm is not None:
        out = out.view(tuple(out.shape[d] for d in perm), tuple(out.strides[d] for d in perm), 0)
    return out


def _scatter(rt: Runtime, dst: WGPUStorage, plan: _Plan, v: Any, accumulate: bool) -> None:
    """Write/add ``v`` (broadcast to the result of ``dst[key]``) at the plan's positions of dst."""
    lin, b_shape = _lin(rt, plan)
    rdims, r_shape, _ = _rest(plan)
    n_b, n_r = math.prod(b_shape), math.prod(r_shape)
    if len(plan.shape) > 8:
        raise IndexError(f"advanced indexing on wgpu handles up to 8 dimensions; got {len(plan.shape)}")
    scalar = ew.is_scalar(v)
    if not scalar:
        # v in the kernel's (B..., R...) order, dense
        res_shape = b_shape + r_shape
        perm = _result_perm(len(b_shape), len(r_shape), plan.insert)
        if perm is not None:
            numpy_order = tuple((b_shape + r_shape)[d] for d in perm)
            v = ew.broadcast_view(v, numpy_order)
            inv = [0] * len(perm)
            for k, d in enumerate(perm):
                inv[d] = k
            v = v.view(res_shape, tuple(v.strides[inv[d]] for d in range(len(perm))), v.offset)
        else:
            v = ew.broadcast_view(v, res_shape)
        if v.dtype is not dst.dtype:
            v = ew.cast(rt, v, dst.dtype)
        v = ew.contiguous(rt, v)
    if n_b == 0 or dst.size == 0:
        return
    words = [0] * EXTRA
    words[0], words[1], words[2], words[3], words[4] = (math.prod(plan.shape), len(plan.shape),
                                                        i32_bits(plan.offset), n_b, n_r)
    r_weights = contiguous_strides(r_shape)
    adv = {d for d, _ in plan.arrays}
    for d, (s, st) in enumerate(zip(plan.shape, plan.strides, strict=True)):
        words[8 + d], words[16 + d] = s, i32_bits(st)
        words[24 + d] = i32_bits(st) if d in adv else 0
        words[32 + d] = r_weights[rdims.index(d)] if d not in adv else 0
    words[40] = scalar_bits(ew.convert_scalar(v, dst.dtype), dst.dtype) if scalar else 0
    t = WGSL_TYPES[dst.dtype.name]
    consts = {"ACCUM": bool(accumulate), "V_SCALAR": scalar, "IS_BOOL": dst.dtype is _dt.bool_}
    pipe = rt.pipeline("scatter", "rrw", entry="scatter_lin",
                       types={"TA": t, "TI": "i32", "C": ew.compute_type(dst.dtype)}, consts=consts)
    rt.launch(pipe, (rt.dummy if scalar else v.buffer, lin.buffer, dst.buffer), words, words[0])


def getitem_grad(rt: Runtime, g: WGPUStorage, key: Any, shape: tuple[int, ...]) -> WGPUStorage:
    """Zeros of ``shape`` with ``g`` added at ``key`` (repeated indices accumulate)."""
    out = ew.fill(rt, shape, 0, g.dtype)
    plan = _plan(rt, out.shape, out.strides, 0, key)
    if plan.advanced:
        _scatter(rt, out, plan, g, accumulate=True)
    else:
        ew.copy_into(rt, out.view(plan.shape, plan.strides, plan.offset), g)
    return out


def _full_mask(key: Any, x: WGPUStorage) -> WGPUStorage | None:
    k = key if isinstance(key, tuple) else (key,)
    if len(k) == 1 and isinstance(k[0], WGPUStorage) and k[0].dtype is _dt.bool_ and k[0].shape == x.shape:
        return k[0]
    return None


def index_put(rt: Runtime, x: WGPUStorage, v: Any, key: Any, accumulate: bool = False) -> WGPUStorage:
    """A copy of ``x`` with ``v`` written (or added, ``accumulate``) at ``key``."""
    mask = _full_mask(key, x)
    if mask is not None and (ew.is_scalar(v) or v.size == 1):
        # x[mask] = value is a where(): no need to read the mask back
        val = v if ew.is_scalar(v) else ew.reshape_view(v, ())
        if accumulate:
            return ew.binary(rt, "add", x, ew.where(rt, mask, val, 0 if x.dtype.kind != "f" else 0.0))
        return ew.where(rt, mask, val, x) if ew.is_scalar(val) else ew.where(rt, mask, ew.cast(rt, val, x.dtype), x)
    out = ew.clone(rt, x)
    plan = _plan(rt, out.shape, out.strides, 0, key)
    if plan.advanced:
        _scatter(rt, out, plan, v, accumulate)
        return out
    view = out.view(plan.shape, plan.strides, plan.offset)
    if accumulate:
        ew.copy_into(rt, view, ew.binary(rt, "add", view, v if ew.is_scalar(v) else ew.broadcast_view(v, view.shape)))
    else:
        ew.copy_into(rt, view, v if ew.is_scalar(v) else ew.broadcast_view(v, view.shape))
    return out


def gather(rt: Runtime, x: WGPUStorage, index: WGPUStorage, dim: int) -> WGPUStorage:
    """``np.take_along_axis(x, index, dim)``."""
    if index.dtype.kind == "f" or index.dtype is _dt.bool_:
        raise IndexError(f"gather needs an integer index; got {index.dtype.name}")
    if index.ndim != x.ndim:
        raise ValueError("`indices` and `arr` must have the same number of dimensions")
    dim %= max(x.ndim, 1)
    # as torch (and the cpu kernel): along the other dims the index may be shorter than x
    if index.shape != x.shape:
        x = x.view(tuple(x.shape[d] if d == dim or index.shape[d] > x.shape[d] else index.shape[d]
                         for d in range(x.ndim)), x.strides, x.offset)
    shape = list(broadcast_shapes(tuple(1 if d == dim else s for d, s in enumerate(x.shape)),
                                     tuple(1 if d == dim else s for d, s in enumerate(index.shape))))
    shape[dim] = index.shape[dim]
    shape_t = tuple(shape)
    out = rt.empty(shape_t, x.dtype)
    if out.size:
        if x.shape[dim] == 0:
            raise IndexError(f"index is out of bounds for axis {dim} with size 0")
        xs = list(ew.broadcast_strides(x.view(tuple(1 if d == dim else s for d, s in enumerate(x.shape)),
                                               x.strides, x.offset), shape_t))
        xs[dim] = 0
        ops = [(ew.broadcast_strides(index, shape_t), index.offset), (tuple(xs), x.offset)]
        words = rt.indexer(shape_t, ops)
        words += [x.shape[dim], i32_bits(x.strides[dim])]
        t = WGSL_TYPES[x.dtype.name]
        pipe = rt.pipeline("index", "rrw", entry="take_along",
                           types={"TA": t, "TI": WGSL_TYPES[index.dtype.name], "TO": t}, consts={"ACC": False})
        rt.launch(pipe, (x.buffer, index.buffer, out.buffer), words, out.size)
    return out


def gather_grad(rt: Runtime, g: WGPUStorage, index: WGPUStorage, dim: int, shape: tuple[int, ...]) -> WGPUStorage:
    """Zeros of ``shape`` with ``g`` added at the positions ``index`` picks along ``dim``."""
    out = rt.empty(shape, g.dtype)
    nd = len(shape)
    if out.size == 0:
        return out
    if nd > 8:
        raise IndexError(f"gather on wgpu handles up to 8 dimensions; got {nd}")
    dim %= max(nd, 1)
    gb = ew.broadcast_view(g, index.shape)
    words = [0] * EXTRA
    words[:6] = [out.size, nd, i32_bits(index.offset), i32_bits(gb.offset), dim, index.shape[dim]]
    for d in range(nd):
        words[8 + d] = shape[d]
        words[16 + d] = i32_bits(index.strides[d])
        words[24 + d] = i32_bits(gb.strides[d])
        words[32 + d] = index.shape[d]
    t = WGSL_TYPES[g.dtype.name]
    pipe = rt.pipeline("scatter", "rrw", entry="gather_grad",
                       types={"TA": t, "TI": WGSL_TYPES[index.dtype.name], "C": ew.compute_type(g.dtype)},
                       consts={"ACCUM": True, "V_SCALAR": False, "IS_BOOL": False})
    rt.launch(pipe, (gb.buffer, index.buffer, out.buffer), words, out.size)
    return out
