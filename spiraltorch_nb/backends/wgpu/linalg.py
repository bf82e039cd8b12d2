"""Matrix products on the host side (WGSL in ``kernels/wgsl/matmul.wgsl``).

``matmul`` follows ``np.matmul``: 1-d operands gain and then lose a unit dimension,
leading (batch) dimensions broadcast. Operands are passed by strides, so transposes
and broadcast batches cost no copy.
"""

from __future__ import annotations

import math

from ... import dtypes as _dt
from ...errors import LimitError
from . import elementwise as ew
from .runtime import EXTRA, Runtime, broadcast_shapes, coalesce, compute_type, i32_bits
from .storage import WGSL_TYPES, WGPUStorage

__all__ = ["matmul"]


def _tile(m: int, n: int) -> int:
    """Outputs per invocation along each side: 4 (64x64 tiles) for big products, else 1 or 2."""
    if m >= 64 and n >= 64:
        return 4
    if m >= 32 and n >= 32:
        return 2
    return 1


def matmul(rt: Runtime, a: WGPUStorage, b: WGPUStorage) -> WGPUStorage:
    """``np.matmul(a, b)`` on the device."""
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(f"matmul needs tensors with at least one dimension; got shapes {a.shape} and {b.shape}")
    if a.dtype is not b.dtype:
        common = _dt.promote_types(a.dtype, b.dtype)
        a, b = ew.cast(rt, a, common), ew.cast(rt, b, common)
    if a.dtype is _dt.bool_:  # logical "or of ands", as NumPy: count in int32, then test
        counts = matmul(rt, ew.cast(rt, a, _dt.int32), ew.cast(rt, b, _dt.int32))
        return ew.binary(rt, "ne", counts, 0)
    a1, b1 = a.ndim == 1, b.ndim == 1
    if a1:
        a = a.view((1, a.shape[0]), (0, a.strides[0]), a.offset)
    if b1:
        b = b.view((b.shape[0], 1), (b.strides[0], 0), b.offset)
    m, k = a.shape[-2:]
    k2, n = b.shape[-2:]
    if k != k2:
        raise ValueError(f"matmul: Input operand 1 has a mismatch in its core dimension 0, with gufunc signature "
                         f"(n?,k),(k,m?)->(n?,m?) (size {k2} is different from {k})")
    batch = tuple(broadcast_shapes(a.shape[:-2], b.shape[:-2]))
    out_shape = batch + (m, n)
    final = out_shape
    if a1:
        final = final[:-2] + final[-1:]
    if b1:
        final = final[:-1]
    if k == 0:
        return ew.fill(rt, final, 0, a.dtype)
    out = rt.empty(out_shape, a.dtype)
    if out.size:
        nb = math.prod(batch)
        a_bs = _batch_strides(a, batch)
        b_bs = _batch_strides(b, batch)
        bshape, (a_bs, b_bs) = coalesce(batch, [a_bs, b_bs])
        if len(bshape) > 8:
            raise LimitError(f"matmul indexes up to 8 batch dimensions; got {batch}", limit="max_dims",
                             requested=len(bshape), maximum=8)
        words = [0] * EXTRA
        words[:7] = [m, n, k, nb, len(bshape), i32_bits(a.offset), i32_bits(b.offset)]
        words[8:12] = [i32_bits(v) for v in (a.strides[-2], a.strides[-1], b.strides[-2], b.strides[-1])]
        for d, (s, sa, sb) in enumerate(zip(bshape, a_bs, b_bs, strict=True)):
            words[16 + d], words[24 + d], words[32 + d] = s, i32_bits(sa), i32_bits(sb)
        t = _tile(m, n)
        types = {"TA": WGSL_TYPES[a.dtype.name], "C": compute_type(a.dtype)}
        limit = rt.max_groups
        if rt.cpu_adapter:
            # no workgroup memory: barriers are expensive on software rasterizers
            pipe = rt.pipeline("matmul", "rrw", entry="main_regs", types=types, consts={"TM": 4, "TN": 4})
            groups = (min(-(-n // 32), limit), min(-(-m // 32), limit), min(nb, limit))
        else:
            pipe = rt.pipeline("matmul", "rrw", types=types, consts={"TM": t, "TN": t})
            groups = (min(-(-n // (16 * t)), limit), min(-(-m // (16 * t)), limit), min(nb, limit))
        rt.queue.dispatch(pipe, (a.buffer, b.buffer, out.buffer), words, groups)
    if final != out_shape:
        out = out.view(final, _contig(final), 0)
    return out


def _batch_strides(x: WGPUStorage, batch: tuple[int, ...]) -> tuple[int, ...]:
    lead = len(batch) - (x.ndim - 2)
    out = [0] * lead
    for s, st, target in zip(x.shape[:-2], x.strides[:-2], batch[lead:], strict=True):
        out.append(0 if s == 1 and target != 1 else st)
    return tuple(out)


def _contig(shape: tuple[int, ...]) -> tuple[int, ...]:
    from .storage import contiguous_strides

    return contiguous_strides(shape)
