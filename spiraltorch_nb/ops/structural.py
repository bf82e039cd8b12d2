"""Reductions, matmul, layout, indexing and the fused nn kernels: registry entries and gradients."""

from __future__ import annotations

from typing import Any

from ..autograd.grad_mode import state as _grad_state
from ..backends.array_kernels import normalize_dims
from .elementwise import sum_to
from .registry import _op, dispatch

__all__: list[str] = []


def _expand_back(g: Any, x: Any, dim: Any, keepdim: bool) -> Any:
    """Broadcast a reduced gradient back to ``x``'s shape."""
    shape = tuple(x.shape)
    if dim is None and not keepdim:
        return g.expand(shape)
    dims = normalize_dims(dim, len(shape))
    if dims is None:
        dims = tuple(range(len(shape)))
    if not keepdim and dims:
        kshape = tuple(1 if i in dims else s for i, s in enumerate(shape))
        g = g.reshape(kshape)
    return g.expand(shape)


def _numel(x: Any, dim: Any) -> int:
    shape = tuple(x.shape)
    dims = normalize_dims(dim, len(shape))
    if dims is None:
        dims = tuple(range(len(shape)))
    n = 1
    for d in dims:
        n *= shape[d]
    return n


# ---- reductions -------------------------------------------------------------------
def _sum_bwd(i: Any, o: Any, g: Any, dim: Any = None, keepdim: bool = False) -> Any:
    return (_expand_back(g[0], i[0], dim, keepdim),)


def _mean_bwd(i: Any, o: Any, g: Any, dim: Any = None, keepdim: bool = False) -> Any:
    n = _numel(i[0], dim)
    return (_expand_back(g[0] / max(n, 1), i[0], dim, keepdim),)


def _prod_bwd(i: Any, o: Any, g: Any, dim: Any = None, keepdim: bool = False) -> Any:
    # d prod / d x_i is the product of the other entries; dividing the product by x_i gives
    # NaN at a zero, so zeros are handled apart: with one zero in a slice, the zero's entry
    # is the product of the rest and every other entry is (the zero) * rest / x_i, which is
    # 0 but keeps the right second derivative; with two or more zeros all entries are 0
    # (exact, but their second derivatives are then 0: a known limitation)
    x = i[0]
    zero = x == 0
    safe = dispatch("where", zero, 1.0, x)

    def keep(t: Any) -> Any:
        return t.reshape((1,) * x.ndim) if dim is None else t

    rest = keep(safe.prod(dim=dim, keepdim=True))
    count = keep(zero.sum(dim=dim, keepdim=True))
    the_zero = keep(dispatch("where", zero, x, 0.0).sum(dim=dim, keepdim=True))
    others = dispatch("where", count == 0, rest / safe, dispatch("where", zero, rest, the_zero * rest / safe))
    others = dispatch("where", count > 1, 0.0, others)
    return (_expand_back(g[0], x, dim, keepdim) * others,)


def _extreme_bwd(i: Any, o: Any, g: Any, dim: Any = None, keepdim: bool = False) -> Any:
    x = i[0]
    y = o[0]
    yk = _expand_back(y, x, dim, keepdim)
    mask = (x == yk).to(x.dtype)
    count = mask.sum(dim=dim if dim is not None else None, keepdim=True)
    if dim is None:
        count = count.reshape((1,) * x.ndim)
    return (_expand_back(g[0], x, dim, keepdim) * mask / count,)


def _cumsum_bwd(i: Any, o: Any, g: Any, dim: int) -> Any:
    return (g[0].flip(dim).cumsum(dim).flip(dim),)


_op("sum", 1, backward=_sum_bwd, saves_inputs=False)
_op("mean", 1, backward=_mean_bwd, dtype_rule="float", saves_inputs=False)
_op("prod", 1, backward=_prod_bwd)
_op("amax", 1, backward=_extreme_bwd, saves_output=True)
_op("amin", 1, backward=_extreme_bwd, saves_output=True)
_op("argmax", 1, differentiable=False)
_op("argmin", 1, differentiable=False)
_op("cumsum", 1, backward=_cumsum_bwd, saves_inputs=False)


# ---- matmul -------------------------------------------------------------------------
def _mT(x: Any) -> Any:
    return x.transpose(-1, -2)


def _matmul_bwd(i: Any, o: Any, g: Any) -> Any:
    a, b = i
    G = g[0]
    a1, b1 = a.ndim == 1, b.ndim == 1
    A = a.unsqueeze(0) if a1 else a
    B = b.unsqueeze(-1) if b1 else b
    if a1:
        # vector @ vector gives a 0-d gradient: it becomes (1,) here, then (1, 1) below
        G = G.unsqueeze(-2) if G.ndim else G.unsqueeze(0)
    if b1:
        G = G.unsqueeze(-1)
    ga = gb = None
    if not (a1 or b1) and a.ndim == 2 and b.ndim == 2 and not _grad_state.enabled \
            and a._be.name in _MATMUL_BACKWARD.forwards:
        # first order, 2-d: one kernel call instead of two transposes and two matmuls
        return dispatch("matmul_backward", G, a, b, needs=(a.requires_grad, b.requires_grad))
    if a.requires_grad:
        ga = sum_to(G @ _mT(B), A.shape)
        if a1:
            ga = ga.squeeze(0)
    if b.requires_grad:
        gb = sum_to(_mT(A) @ G, B.shape)
        if b1:
            gb = gb.squeeze(-1)
    return ga, gb


_op("matmul", 2, backward=_matmul_bwd, dtype_rule="promote")


def _matmul_grad(g: Any, a: Any, b: Any, needs: tuple[bool, bool] = (True, True)) -> Any:
    """(da, db) of ``a @ b`` for 2-d ``a``, ``b`` as Tensor ops; ``needs`` leaves unwanted ones None."""
    return (dispatch("matmul", g, dispatch("permute", b, dims=(1, 0))) if needs[0] else None,
            dispatch("matmul", dispatch("permute", a, dims=(1, 0)), g) if needs[1] else None)


def _matmul_backward_flops(shapes: Any, out_numel: int) -> int:
    """2*m*k*n per gradient computed; which ran shows in the elements produced."""
    (m, n), (_, k) = shapes[0], shapes[1]
    per = 2 * m * k * n
    return 2 * per if out_numel == m * k + k * n else per if out_numel else 0


_MATMUL_BACKWARD = _op("matmul_backward", 3, num_outputs=2, composite=_matmul_grad, dtype_rule="promote",
                       differentiable=False,
                       metadata={"description": "first-order gradients (a, b) of a @ b for 2-d a and b; "
                                                "needs=(a, b) picks which (the other is None)",
                                 "category": "fused", "flops": _matmul_backward_flops})


def _linear_grad(g: Any, x: Any, w: Any, needs: tuple[bool, bool, bool] = (True, True, True)) -> Any:
    """(dx, dweight, dbias) of ``x @ w.T + b`` as Tensor ops; ``needs`` leaves unwanted ones None."""
    out_f, in_f = w.shape
    gx = dispatch("matmul", g, w) if needs[0] else None
    gw = gb = None
    if needs[1] or needs[2]:
        # the common 2-d case goes straight to the ops (no reshape bookkeeping on the hot path)
        rows = 1
        for s in x.shape[:-1]:  # not reshape(-1, ...): -1 is ambiguous when a size is 0
            rows *= s
        G2 = g if g.ndim == 2 else g.reshape(rows, out_f)
        if needs[1]:
            x2 = x if x.ndim == 2 else x.reshape(rows, in_f)
            gw = dispatch("matmul", dispatch("permute", G2, dims=(1, 0)), x2)
        if needs[2]:
            gb = dispatch("sum", G2, dim=0, keepdim=False)
    return gx, gw, gb


def _linear_bwd(i: Any, o: Any, g: Any) -> Any:
    x, w = i[0], i[1]
    b = i[2] if len(i) > 2 else None
    needs = (x.requires_grad, w.requires_grad, b is not None and b.requires_grad)
    if not _grad_state.enabled and x._be.name in _LINEAR_BACKWARD.forwards:
        # first order: one kernel call instead of up to five ops
        gx, gw, gb = dispatch("linear_backward", g[0], x, w, needs=needs)
    else:
        gx, gw, gb = _linear_grad(g[0], x, w, needs)
    return (gx, gw, gb) if b is not None else (gx, gw)


def _linear_composite(x: Any, w: Any, b: Any = None) -> Any:
    y = x @ w.transpose(0, 1)
    return y if b is None else y + b


# x @ w.T + b as one op: gradients come out in the weight's own layout, and backends
# without a native forward run the composite
_op("linear", -1, backward=_linear_bwd, composite=_linear_composite, dtype_rule="promote")
def _linear_backward_flops(shapes: Any, out_numel: int) -> int:
    """2*rows*in*out per matmul gradient, rows*out for the bias: which ones ran shows in the elements produced."""
    g, x = shapes[0], shapes[1]
    out_f, in_f = g[-1], x[-1]
    rows = 1
    for s in x[:-1]:
        rows *= s
    parts = ((rows * in_f, 2 * rows * in_f * out_f), (out_f * in_f, 2 * rows * in_f * out_f), (out_f, rows * out_f))
    for mask in ((1, 1, 1), (1, 1, 0), (0, 1, 1), (0, 1, 0), (1, 0, 1), (1, 0, 0), (0, 0, 1)):
        if sum(n for (n, _), m in zip(parts, mask, strict=True) if m) == out_numel:
            return sum(f for (_, f), m in zip(parts, mask, strict=True) if m)
    return 0


_LINEAR_BACKWARD = _op("linear_backward", 3, num_outputs=3, composite=_linear_grad, dtype_rule="promote",
                       differentiable=False,
                       metadata={"description": "first-order gradients (x, weight, bias) of linear; "
                                                "needs=(x, weight, bias) picks which (the others are None)",
                                 "category": "fused", "flops": _linear_backward_flops})


# ---- layout ---------------------------------------------------------------------------
def _reshape_bwd(i: Any, o: Any, g: Any, shape: Any) -> Any:
    return (g[0].reshape(tuple(i[0].shape)),)


def _permute_bwd(i: Any, o: Any, g: Any, dims: tuple[int, ...]) -> Any:
    inv = [0] * len(dims)
    for k, d in enumerate(dims):
        inv[d] = k
    return (g[0].permute(*inv),)


def _expand_bwd(i: Any, o: Any, g: Any, shape: Any) -> Any:
    return (sum_to(g[0], tuple(i[0].shape)),)


def _flip_bwd(i: Any, o: Any, g: Any, dims: Any) -> Any:
    return (g[0].flip(dims),)


def _cat_bwd(i: Any, o: Any, g: Any, dim: int = 0) -> Any:
    out = []
    start = 0
    for x in i:
        n = x.shape[dim]
        key = (slice(None),) * dim + (slice(start, start + n),)
        out.append(g[0][key] if x.requires_grad else None)
        start += n
    return tuple(out)


def _pad_bwd(i: Any, o: Any, g: Any, pad: tuple[int, ...], value: float = 0.0) -> Any:
    return (dispatch("pad", g[0], pad=tuple(-p for p in pad), value=0.0),)


_op("reshape", 1, backward=_reshape_bwd, view=True, saves_inputs=False)
_op("permute", 1, backward=_permute_bwd, view=True, saves_inputs=False)
_op("expand", 1, backward=_expand_bwd, view=True, saves_inputs=False)
_op("flip", 1, backward=_flip_bwd, saves_inputs=False)
_op("cat", -1, backward=_cat_bwd, dtype_rule="promote", saves_inputs=False)
_op("pad", 1, backward=_pad_bwd, saves_inputs=False)


# ---- indexing ---------------------------------------------------------------------------
def _getitem_bwd(i: Any, o: Any, g: Any, key: Any) -> Any:
    return (dispatch("getitem_grad", g[0], key=key, shape=tuple(i[0].shape)),)


def _getitem_grad_bwd(i: Any, o: Any, g: Any, key: Any, shape: Any) -> Any:
    return (dispatch("getitem", g[0], key=key),)


def _index_put_bwd(i: Any, o: Any, g: Any, key: Any, accumulate: bool = False) -> Any:
    x, v = i
    gx = None
    if x.requires_grad:
        gx = g[0] if accumulate else dispatch("index_put", g[0], 0.0, key=key)
    gv = None
    if hasattr(v, "_be") and v.requires_grad:
        gv = sum_to(dispatch("getitem", g[0], key=key), tuple(v.shape))
    return gx, gv


def _gather_bwd(i: Any, o: Any, g: Any, dim: int) -> Any:
    x, index = i
    return dispatch("gather_grad", g[0], index, dim=dim, shape=tuple(x.shape)), None


def _gather_grad_bwd(i: Any, o: Any, g: Any, dim: int, shape: Any) -> Any:
    return dispatch("gather", g[0], i[1], dim=dim), None


_op("getitem", 1, backward=_getitem_bwd, view=True, saves_inputs=False)
_op("getitem_grad", 1, backward=_getitem_grad_bwd, saves_inputs=False)
_op("index_put", 2, backward=_index_put_bwd, saves_inputs=False)
_op("gather", 2, backward=_gather_bwd, saves_inputs=False)
_op("gather_grad", 2, backward=_gather_grad_bwd, saves_inputs=False)


# ---- fused neural-network kernels ------------------------------------------------------
def _softmax_bwd(i: Any, o: Any, g: Any, dim: int = -1) -> Any:
    y = o[0]
    gy = g[0] * y
    return (gy - y * gy.sum(dim=dim, keepdim=True),)


def _log_softmax_bwd(i: Any, o: Any, g: Any, dim: int = -1) -> Any:
    y = o[0]
    return (g[0] - y.exp() * g[0].sum(dim=dim, keepdim=True),)


_op("softmax", 1, backward=_softmax_bwd, dtype_rule="float", saves_output=True, saves_inputs=False)
_op("log_softmax", 1, backward=_log_softmax_bwd, dtype_rule="float", saves_output=True, saves_inputs=False)


def _unfold_bwd(i: Any, o: Any, g: Any, kernel_size: Any, dilation: Any, padding: Any, stride: Any,
                fill: float = 0.0) -> Any:
    x = i[0]
    return (dispatch("fold", g[0], output_size=tuple(x.shape[-2:]), kernel_size=kernel_size,
                     dilation=dilation, padding=padding, stride=stride),)


def _fold_bwd(i: Any, o: Any, g: Any, output_size: Any, kernel_size: Any, dilation: Any, padding: Any,
              stride: Any) -> Any:
    return (dispatch("unfold", g[0], kernel_size=kernel_size, dilation=dilation, padding=padding,
                     stride=stride),)


_op("unfold", 1, backward=_unfold_bwd, saves_inputs=False)
_op("fold", 1, backward=_fold_bwd, saves_inputs=False)
