"""Elementwise operators: their registry entries and gradient rules (one table, as in tinygrad).

Each backward is written with Tensor operations, so it is recorded when
``create_graph=True`` and second derivatives work for every differentiable op here.
"""

from __future__ import annotations

import math
from typing import Any

from .registry import _op, dispatch


def _where(c: Any, a: Any, b: Any) -> Any:
    return dispatch("where", c, a, b)

__all__ = ["sum_to"]


def sum_to(g: Any, shape: tuple[int, ...]) -> Any:
    """Reduce a broadcast gradient ``g`` back to ``shape`` (the inverse of broadcasting)."""
    gs = tuple(g.shape)
    shape = tuple(shape)
    if gs == shape:
        return g
    lead = len(gs) - len(shape)
    inner = tuple(i + lead for i, s in enumerate(shape) if s == 1 and gs[i + lead] != 1)
    if not inner:  # only leading dimensions were broadcast (a bias): one reduction, no reshape
        return g.sum(dim=tuple(range(lead))) if lead else g.reshape(shape)
    g = g.sum(dim=tuple(range(lead)) + inner, keepdim=True)
    return g.reshape(shape)


def _is_t(x: Any) -> bool:
    return hasattr(x, "_be")


def _unary(name: str, backward: Any = None, *, rule: str | None = "float", saves_output: bool = False,
           differentiable: bool | None = None) -> None:
    _op(name, 1, backward=backward, dtype_rule=rule, saves_output=saves_output,
        saves_inputs=not saves_output, differentiable=differentiable)


# ---- unary ------------------------------------------------------------------------
_unary("neg", lambda i, o, g: (-g[0],), rule=None)
_unary("abs", lambda i, o, g: (g[0] * i[0].sign(),), rule=None)
_unary("sign", None, rule=None, differentiable=False)
_unary("floor", None, rule=None, differentiable=False)
_unary("ceil", None, rule=None, differentiable=False)
_unary("round", None, rule=None, differentiable=False)
_unary("logical_not", None, rule=None, differentiable=False)
_unary("exp", lambda i, o, g: (g[0] * o[0],), saves_output=True)
_unary("log", lambda i, o, g: (g[0] / i[0],))
_unary("log1p", lambda i, o, g: (g[0] / (i[0] + 1.0),))
_unary("expm1", lambda i, o, g: (g[0] * (o[0] + 1.0),), saves_output=True)
_unary("sqrt", lambda i, o, g: (g[0] / (o[0] * 2.0),), saves_output=True)
_unary("rsqrt", lambda i, o, g: (g[0] * -0.5 * o[0] * o[0] * o[0],), saves_output=True)
_unary("sin", lambda i, o, g: (g[0] * i[0].cos(),))
_unary("cos", lambda i, o, g: (-g[0] * i[0].sin(),))
_unary("tanh", lambda i, o, g: (g[0] * (1.0 - o[0] * o[0]),), saves_output=True)
_unary("sigmoid", lambda i, o, g: (g[0] * o[0] * (1.0 - o[0]),), saves_output=True)
_unary("erf", lambda i, o, g: (g[0] * (2.0 / math.sqrt(math.pi)) * (-(i[0] * i[0])).exp(),))
_unary("relu", lambda i, o, g: (dispatch("relu_grad", g[0], i[0]),), rule=None)


def _relu_grad_composite(g: Any, x: Any) -> Any:
    return g * (x > 0).to(g.dtype)


# relu's backward ``g * (x > 0)`` as one op (a multiply by a mask, no select), itself
# differentiable: d/dg is the same mask, d/dx is zero almost everywhere
_op("relu_grad", 2, backward=lambda i, o, g: (dispatch("relu_grad", g[0], i[1]), None),
    composite=_relu_grad_composite, saves_inputs=False)


def _leaky_relu_bwd(i: Any, o: Any, g: Any, negative_slope: float = 0.01) -> Any:
    return (_where(i[0] > 0, g[0], g[0] * negative_slope),)


_unary("leaky_relu", _leaky_relu_bwd)

_INV_SQRT2 = 1.0 / math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)


def _gelu_bwd(i: Any, o: Any, g: Any, approximate: str = "none") -> Any:
    x = i[0]
    if approximate == "tanh":
        inner = (x + 0.044715 * x * x * x) * _SQRT_2_OVER_PI
        t = inner.tanh()
        d_inner = (1.0 + 0.134145 * x * x) * _SQRT_2_OVER_PI
        d = 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * d_inner
        return (g[0] * d,)
    cdf = 0.5 * (1.0 + (x * _INV_SQRT2).erf())
    pdf = (-0.5 * x * x).exp() * _INV_SQRT_2PI
    return (g[0] * (cdf + x * pdf),)


_unary("gelu", _gelu_bwd)


def _silu_bwd(i: Any, o: Any, g: Any) -> Any:
    s = i[0].sigmoid()
    return (g[0] * s * (1.0 + i[0] * (1.0 - s)),)


_unary("silu", _silu_bwd)


def _softplus_bwd(i: Any, o: Any, g: Any, beta: float = 1.0, threshold: float = 20.0) -> Any:
    x = i[0]
    bx = x * beta
    return (g[0] * _where(bx > threshold, 1.0, bx.sigmoid()),)


_unary("softplus", _softplus_bwd)


def _clamp_bwd(i: Any, o: Any, g: Any, min: Any = None, max: Any = None) -> Any:
    x = i[0]
    mask = None
    if min is not None:
        mask = x >= min
    if max is not None:
        m2 = x <= max
        mask = m2 if mask is None else mask.logical_and(m2)
    return (g[0] if mask is None else g[0] * mask,)


_unary("clamp", _clamp_bwd, rule=None)


def _cast_bwd(i: Any, o: Any, g: Any, dtype: Any) -> Any:
    x = i[0]
    if not x.dtype.is_floating_point:
        return (None,)
    return (g[0].to(x.dtype),)


_op("cast", 1, backward=_cast_bwd, saves_inputs=False)
_op("clone", 1, backward=lambda i, o, g: (g[0],), saves_inputs=False)


# ---- binary -----------------------------------------------------------------------
def _shape(x: Any) -> tuple[int, ...] | None:
    return tuple(x.shape) if _is_t(x) else None


def _grads2(i: Any, ga: Any, gb: Any) -> tuple[Any, Any]:
    a, b = i
    return (sum_to(ga, a.shape) if _is_t(a) and a.requires_grad else None,
            sum_to(gb, b.shape) if _is_t(b) and b.requires_grad else None)


def _add_bwd(i: Any, o: Any, g: Any) -> Any:
    return _grads2(i, g[0], g[0])


def _sub_bwd(i: Any, o: Any, g: Any) -> Any:
    a, b = i
    return (sum_to(g[0], a.shape) if _is_t(a) and a.requires_grad else None,
            sum_to(-g[0], b.shape) if _is_t(b) and b.requires_grad else None)


def _mul_bwd(i: Any, o: Any, g: Any) -> Any:
    a, b = i
    return (sum_to(g[0] * b, a.shape) if _is_t(a) and a.requires_grad else None,
            sum_to(g[0] * a, b.shape) if _is_t(b) and b.requires_grad else None)


def _div_bwd(i: Any, o: Any, g: Any) -> Any:
    a, b = i
    ga = sum_to(g[0] / b, a.shape) if _is_t(a) and a.requires_grad else None
    gb = sum_to(-g[0] * a / (b * b), b.shape) if _is_t(b) and b.requires_grad else None
    return ga, gb


def _pow_bwd(i: Any, o: Any, g: Any) -> Any:
    a, b = i
    ga = gb = None
    if _is_t(a) and a.requires_grad:
        if _is_t(b):
            ga = sum_to(g[0] * b * a ** (b - 1.0), a.shape)
        elif b == 0:
            ga = g[0] * 0.0
        else:
            ga = g[0] * b * a ** (b - 1)
    if _is_t(b) and b.requires_grad:
        out = a ** b
        if _is_t(a):
            loga = _where(a > 0, a, 1.0).log()
            gb = sum_to(g[0] * out * loga, b.shape)
        else:
            gb = g[0] * out * (math.log(a) if a > 0 else 0.0)
    return ga, gb


def _max_min_bwd(pick_a_gt: bool) -> Any:
    def bwd(i: Any, o: Any, g: Any) -> Any:
        a, b = i
        if not _is_t(b):
            wa = (a > b) if pick_a_gt else (a < b)
            return g[0] * (wa + (a == b) * 0.5), None
        if not _is_t(a):
            wb = (b > a) if pick_a_gt else (b < a)
            return None, g[0] * (wb + (a == b) * 0.5)
        wa = ((a > b) if pick_a_gt else (a < b)) + (a == b) * 0.5
        return _grads2(i, g[0] * wa, g[0] * (1.0 - wa))
    return bwd


def _remainder_bwd(i: Any, o: Any, g: Any) -> Any:
    a, b = i
    ga = sum_to(g[0], a.shape) if _is_t(a) and a.requires_grad else None
    gb = sum_to(-g[0] * (a // b), b.shape) if _is_t(b) and b.requires_grad else None
    return ga, gb


def _atan2_bwd(i: Any, o: Any, g: Any) -> Any:
    a, b = i
    den = a * a + b * b
    return _grads2(i, g[0] * b / den, -g[0] * a / den)


_op("add", 2, backward=_add_bwd, dtype_rule="promote", saves_inputs=False)
_op("sub", 2, backward=_sub_bwd, dtype_rule="promote", saves_inputs=False)
_op("mul", 2, backward=_mul_bwd, dtype_rule="promote")
_op("div", 2, backward=_div_bwd, dtype_rule="promote_float")
_op("pow", 2, backward=_pow_bwd, dtype_rule="promote")
_op("maximum", 2, backward=_max_min_bwd(True), dtype_rule="promote")
_op("minimum", 2, backward=_max_min_bwd(False), dtype_rule="promote")
_op("remainder", 2, backward=_remainder_bwd, dtype_rule="promote")
_op("atan2", 2, backward=_atan2_bwd, dtype_rule="promote_float")
_op("floordiv", 2, dtype_rule="promote", differentiable=False)
for _name in ("eq", "ne", "lt", "le", "gt", "ge"):
    _op(_name, 2, dtype_rule="compare", differentiable=False)
for _name in ("logical_and", "logical_or", "logical_xor"):
    _op(_name, 2, differentiable=False)


def _where_bwd(i: Any, o: Any, g: Any) -> Any:
    c, a, b = i
    ga = sum_to(_where(c, g[0], 0.0), a.shape) if _is_t(a) and a.requires_grad else None
    gb = sum_to(_where(c, 0.0, g[0]), b.shape) if _is_t(b) and b.requires_grad else None
    return None, ga, gb


_op("where", 3, backward=_where_bwd, dtype_rule="where")


# ---- in-place updates outside the tape (optimizer steps, ``x += 1`` under no_grad) -----
def _inplace_composite(name: str) -> Any:
    def run(a: Any, b: Any) -> Any:
        res = dispatch(name, a, b)
        if tuple(res.shape) != tuple(a.shape):
            from ..errors import ShapeError

            raise ShapeError(f"in-place '{name}': the result has shape {tuple(res.shape)} but the tensor has shape "
                             f"{tuple(a.shape)}; in-place ops cannot broadcast the tensor being changed",
                             op=name + "_", shapes=(tuple(a.shape), tuple(res.shape)))
        a._be.write(a._data, res._data)
        return a
    return run


for _name in ("add", "sub", "mul", "div"):
    _op(_name + "_", 2, differentiable=False, composite=_inplace_composite(_name))
