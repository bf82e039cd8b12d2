"""Layout ops: zero-copy views (reshape, permute, expand) and copies (flip, cat, pad, im2col).

A view only changes shape, strides and offset of a storage over the same block.
``reshape`` is a view whenever NumPy's would be (the dimensions it merges are laid
out contiguously), and materializes with the copy kernel otherwise. Ops that are not
views in the operator registry (flip, cat, pad) always return a fresh buffer, so an
in-place update of their result can never reach their input.
"""

from __future__ import annotations

import math
from typing import Any

from ...dtypes import promote_types
from . import elementwise as ew
from .runtime import EXTRA, Runtime, f32_bits, i32_bits, scalar_bits
from .storage import WGSL_TYPES, WGPUStorage, contiguous_strides

__all__ = ["reshape", "permute", "expand", "flip", "cat", "pad", "unfold", "fold", "view_strides"]


def view_strides(old_shape: tuple[int, ...], old_strides: tuple[int, ...],
                 new_shape: tuple[int, ...]) -> tuple[int, ...] | None:
    """Strides that show ``new_shape`` over the same elements, or None when a copy is needed.

    The algorithm of NumPy's ``_attempt_nocopy_reshape``: match groups of old and new
    dimensions with equal products; a group can be re-strided only if its old
    dimensions are contiguous with one another.
    """
    if math.prod(new_shape) == 0:
        return contiguous_strides(new_shape)
    old = [(s, st) for s, st in zip(old_shape, old_strides, strict=True) if s != 1]
    new_strides = [0] * len(new_shape)
    oi = ni = 0
    while ni < len(new_shape) and oi < len(old):
        nprod, oprod = new_shape[ni], old[oi][0]
        nj, oj = ni + 1, oi + 1
        while nprod != oprod:
            if nprod < oprod:
                nprod *= new_shape[nj]
                nj += 1
            else:
                oprod *= old[oj][0]
                oj += 1
        for ok in range(oi, oj - 1):
            if old[ok][1] != old[ok + 1][0] * old[ok + 1][1]:
                return None
        new_strides[nj - 1] = old[oj - 1][1]
        for nk in range(nj - 1, ni, -1):
            new_strides[nk - 1] = new_strides[nk] * new_shape[nk]
        ni, oi = nj, oj
    last = new_strides[ni - 1] if ni > 0 else 1
    for nk in range(ni, len(new_shape)):
        new_strides[nk] = last
    return tuple(new_strides)


def reshape(rt: Runtime, x: WGPUStorage, shape: tuple[int, ...]) -> WGPUStorage:
    """``x`` as ``shape``: a view when possible, else a contiguous copy."""
    if math.prod(shape) != x.size:
        raise ValueError(f"cannot reshape array of size {x.size} into shape {shape}")
    strides = view_strides(x.shape, x.strides, shape)
    if strides is None:
        x = ew.clone(rt, x)
        strides = contiguous_strides(shape)
    return x.view(shape, strides, x.offset)


def permute(x: WGPUStorage, dims: tuple[int, ...]) -> WGPUStorage:
    """A view with the dimensions reordered."""
    if sorted(dims) != list(range(x.ndim)):
        raise ValueError(f"axes {dims} don't match array of {x.ndim} dimensions")
    return x.view(tuple(x.shape[d] for d in dims), tuple(x.strides[d] for d in dims), x.offset)


def expand(x: WGPUStorage, shape: tuple[int, ...]) -> WGPUStorage:
    """A broadcast view (stride 0 along the expanded dimensions)."""
    if len(shape) < x.ndim:
        raise ValueError(f"input operand has more dimensions than allowed by the axis remapping: {x.shape} -> {shape}")
    lead = len(shape) - x.ndim
    for s, t in zip(x.shape, shape[lead:], strict=True):
        if s != t and s != 1:
            raise ValueError(f"operands could not be broadcast together with remapped shapes {x.shape} -> {shape}")
    return x.view(tuple(shape), ew.broadcast_strides(x, tuple(shape)), x.offset)


def flip(rt: Runtime, x: WGPUStorage, dims: Any) -> WGPUStorage:
    """A copy with the order of elements reversed along ``dims``."""
    if dims is None:
        dims = tuple(range(x.ndim))
    elif isinstance(dims, int):
        dims = (dims,)
    offset = x.offset
    strides = list(x.strides)
    for d in dims:
        d = d % x.ndim
        if x.shape[d] > 0:
            offset += (x.shape[d] - 1) * strides[d]
        strides[d] = -strides[d]
    return ew.clone(rt, x.view(x.shape, tuple(strides), offset))


def cat(rt: Runtime, xs: tuple[WGPUStorage, ...], dim: int) -> WGPUStorage:
    """``np.concatenate``: every input copied into its slice of one new buffer."""
    if not xs:
        raise ValueError("need at least one array to concatenate")
    nd = xs[0].ndim
    if nd == 0:
        raise ValueError("zero-dimensional arrays cannot be concatenated")
    if not -nd <= dim < nd:
        raise IndexError(f"axis {dim} is out of bounds for array of dimension {nd}")
    dim %= nd
    dtype = xs[0].dtype
    for x in xs[1:]:
        if x.ndim != nd:
            raise ValueError("all the input array dimensions except for the concatenation axis must match exactly, "
                             f"but along dimension 0, the arrays have {nd} and {x.ndim} dimensions")
        for d in range(nd):
            if d != dim and x.shape[d] != xs[0].shape[d]:
                raise ValueError("all the input array dimensions except for the concatenation axis must match "
                                 f"exactly, but along dimension {d}, the arrays have sizes {xs[0].shape[d]} and "
                                 f"{x.shape[d]}")
        dtype = promote_types(dtype, x.dtype)
    shape = list(xs[0].shape)
    shape[dim] = sum(x.shape[dim] for x in xs)
    out = rt.empty(tuple(shape), dtype)
    start = 0
    for x in xs:
        n = x.shape[dim]
        if n and x.size:
            ew.copy_into(rt, out.view(x.shape, out.strides, start * out.strides[dim]), x)
        start += n
    return out


def pad(rt: Runtime, x: WGPUStorage, widths: tuple[int, ...], value: float) -> WGPUStorage:
    """Constant padding in PyTorch's order (last dimension first); negative widths crop."""
    out_shape = list(x.shape)
    src_off = x.offset
    src_shape = list(x.shape)
    dst_start = [0] * x.ndim
    for i in range(len(widths) // 2):
        d = x.ndim - 1 - i
        lo, hi = widths[2 * i], widths[2 * i + 1]
        out_shape[d] = x.shape[d] + lo + hi
        if out_shape[d] < 0:
            raise ValueError(f"padding {widths} makes dimension {d} of shape {x.shape} negative")
        crop_lo, crop_hi = max(-lo, 0), max(-hi, 0)
        src_off += crop_lo * x.strides[d]
        src_shape[d] = max(x.shape[d] - crop_lo - crop_hi, 0)
        dst_start[d] = max(lo, 0)
    out = ew.fill(rt, tuple(out_shape), value, x.dtype)
    if math.prod(src_shape):
        src = x.view(tuple(src_shape), x.strides, src_off)
        dst_off = sum(s * st for s, st in zip(dst_start, out.strides, strict=True))
        ew.copy_into(rt, out.view(tuple(src_shape), out.strides, dst_off), src)
    return out


def _conv_geometry(h: int, w: int, k: tuple[int, int], d: tuple[int, int], p: tuple[int, int],
                   s: tuple[int, int]) -> tuple[int, int]:
    oh = (h + 2 * p[0] - d[0] * (k[0] - 1) - 1) // s[0] + 1
    ow = (w + 2 * p[1] - d[1] * (k[1] - 1) - 1) // s[1] + 1
    return oh, ow


def _im2col_params(n: int, c: int, h: int, w: int, k: tuple[int, int], d: tuple[int, int], p: tuple[int, int],
                   s: tuple[int, int], oh: int, ow: int) -> list[int]:
    words = [0] * EXTRA
    words[:16] = [n * c * k[0] * k[1] * oh * ow, n, c, h, w, k[0], k[1], oh, ow, d[0], d[1], p[0], p[1], s[0], s[1], 0]
    return words


def unfold(rt: Runtime, x: WGPUStorage, kernel_size: tuple[int, int], dilation: tuple[int, int],
           padding: tuple[int, int], stride: tuple[int, int], fill: float = 0.0) -> WGPUStorage:
    """im2col: (N, C, H, W) -> (N, C*kh*kw, L), padding reads as ``fill``."""
    n, c, h, w = x.shape
    oh, ow = _conv_geometry(h, w, kernel_size, dilation, padding, stride)
    if oh <= 0 or ow <= 0:
        raise ValueError(f"the kernel {kernel_size} (dilation {dilation}) is larger than the padded input "
                         f"{(h + 2 * padding[0], w + 2 * padding[1])}")
    kh, kw = kernel_size
    out = rt.empty((n, c * kh * kw, oh * ow), x.dtype)
    if out.size:
        params = _im2col_params(n, c, h, w, kernel_size, dilation, padding, stride, oh, ow)
        params[16:21] = [i32_bits(v) for v in (*x.strides, x.offset)]
        params[21] = scalar_bits(fill, x.dtype) if x.dtype.kind != "f" else f32_bits(fill)
        types = {"TA": WGSL_TYPES[x.dtype.name], "C": "f32" if x.dtype.kind == "f" else WGSL_TYPES[x.dtype.name]}
        pipe = rt.pipeline("im2col", "rw", entry="unfold", types=types)
        rt.launch(pipe, (x.buffer, out.buffer), params, out.size)
    return out


def fold(rt: Runtime, cols: WGPUStorage, output_size: tuple[int, int], kernel_size: tuple[int, int],
         dilation: tuple[int, int], padding: tuple[int, int], stride: tuple[int, int]) -> WGPUStorage:
    """col2im: the adjoint of :func:`unfold`, summing overlapping blocks (a loop per output pixel)."""
    kh, kw = kernel_size
    n = cols.shape[0]
    c = cols.shape[1] // (kh * kw)
    h, w = output_size
    oh, ow = _conv_geometry(h, w, kernel_size, dilation, padding, stride)
    if cols.shape[1] != c * kh * kw or cols.shape[2] != oh * ow:
        raise ValueError(f"cannot reshape array of shape {cols.shape} into shape {(n, c, kh, kw, oh, ow)}")
    cols = ew.contiguous(rt, cols)
    out = rt.empty((n, c, h, w), cols.dtype)
    if out.size:
        params = _im2col_params(n, c, h, w, kernel_size, dilation, padding, stride, oh, ow)
        params[0] = out.size
        params[20] = cols.offset
        types = {"TA": WGSL_TYPES[cols.dtype.name], "C": "f32" if cols.dtype.kind == "f" else WGSL_TYPES[cols.dtype.name]}
        pipe = rt.pipeline("im2col", "rw", entry="fold", types=types)
        rt.launch(pipe, (cols.buffer, out.buffer), params, out.size)
    return out
