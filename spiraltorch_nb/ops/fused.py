"""Fused neural-network operators: one registry entry for a chain of primitives.

``fused_bias_gelu`` and ``fused_layer_norm`` compute exactly what their composite
forward (written with Tensor ops) computes, so they run on every backend; a backend may
register one kernel for them instead, as the cuda backend does (``kernels/cuda/*.cu``).

Their backward has two routes. First-order gradients (``create_graph=False``) go through
a ``*_backward`` operator: a kernel where the backend has one, the Tensor formula
elsewhere. With ``create_graph=True`` the backward *is* the Tensor formula, recorded on
the tape, so gradients of gradients work as for any composite op.

``softmax``, ``log_softmax`` (structural.py) and ``cross_entropy`` (losses.py) get the
same first-order route here: ``softmax_backward``, ``log_softmax_backward`` and
``cross_entropy_backward`` are operators whose composite is the op's own backward
formula, used only on backends that register a native kernel for them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from ..autograd.grad_mode import state as _grad_state
from ..errors import OperatorError, ShapeError
from . import losses as _losses  # noqa: F401  (cross_entropy, whose backward is routed here)
from . import structural as _structural  # noqa: F401  (softmax, log_softmax: likewise)
from .elementwise import _gelu_bwd, sum_to
from .registry import _op, dispatch, global_operator_registry

__all__ = ["bias_gelu", "layer_norm"]


def _is_t(x: Any) -> bool:
    return hasattr(x, "_be")


def _wants_grad(x: Any) -> bool:
    return _is_t(x) and x.requires_grad


def _registered_backward(name: str) -> Callable[..., Any]:
    fn = global_operator_registry().get(name).backward
    if fn is None:
        raise OperatorError(f"operator '{name}' has no backward formula to route", op=name)
    return fn


# ---- bias + GELU ---------------------------------------------------------------------------
def _bias_gelu_composite(x: Any, bias: Any, approximate: str = "none") -> Any:
    return dispatch("gelu", x + bias, approximate=approximate)


def _bias_gelu_grad(g: Any, x: Any, bias: Any, approximate: str = "none") -> Any:
    """dL/dh for h = x + bias, as Tensor ops."""
    return _gelu_bwd((x + bias,), None, (g,), approximate=approximate)[0]


def _bias_gelu_bwd(i: Any, o: Any, g: Any, approximate: str = "none") -> Any:
    x, bias = i
    if _grad_state.enabled:  # create_graph: stay on the tape
        dh = _bias_gelu_grad(g[0], x, bias, approximate)
    else:
        dh = dispatch("fused_bias_gelu_backward", g[0], x, bias, approximate=approximate)
    return (sum_to(dh, tuple(x.shape)) if _wants_grad(x) else None,
            sum_to(dh, tuple(bias.shape)) if _wants_grad(bias) else None)


_op("fused_bias_gelu", 2, backward=_bias_gelu_bwd, composite=_bias_gelu_composite, dtype_rule="promote_float",
    metadata={"description": "gelu(x + bias), bias along the last dimension", "category": "fused"})
_op("fused_bias_gelu_backward", 3, composite=_bias_gelu_grad, dtype_rule="promote_float",
    metadata={"description": "first-order gradient of fused_bias_gelu with respect to x + bias",
              "category": "fused"})


# ---- cross-entropy backward (the op itself lives in losses.py) ----------------------------
def _ce_grad(g: Any, x: Any, target: Any, ignore_index: int = -100, label_smoothing: float = 0.0,
             reduction: str = "mean") -> Any:
    """d loss / d logits of ``cross_entropy`` as Tensor ops (its registered backward formula)."""
    return _ce_formula((x, target), None, (g,), ignore_index=ignore_index, label_smoothing=label_smoothing,
                       reduction=reduction)[0]


_ce_formula = _registered_backward("cross_entropy")
_op("cross_entropy_backward", 3, composite=_ce_grad,
    metadata={"description": "first-order gradient of cross_entropy with respect to the logits",
              "category": "fused"})


# ---- layer norm ----------------------------------------------------------------------------------
def _ln_stats(x: Any, eps: float) -> tuple[Any, Any]:
    xc = x - x.mean(dim=-1, keepdim=True)
    rstd = ((xc * xc).mean(dim=-1, keepdim=True) + eps).rsqrt()
    return xc, rstd


def _ln_composite(x: Any, weight: Any = None, bias: Any = None, eps: float = 1e-5) -> Any:
    xc, rstd = _ln_stats(x, eps)
    y = xc * rstd
    if weight is not None:
        y = y * weight
    if bias is not None:
        y = y + bias
    return y


def _ln_grad(g: Any, x: Any, weight: Any = None, eps: float = 1e-5) -> tuple[Any, Any, Any]:
    """(dx, dweight, dbias) of layer norm over the last dimension, as Tensor ops."""
    xc, rstd = _ln_stats(x, eps)
    xhat = xc * rstd
    gw = g if weight is None else g * weight
    a = gw.mean(dim=-1, keepdim=True)
    b = (gw * xhat).mean(dim=-1, keepdim=True)
    dx = (gw - a - xhat * b) * rstd
    n = (x.shape[-1],)
    return dx, sum_to(g * xhat, n), sum_to(g, n)


def _ln_bwd(i: Any, o: Any, g: Any, eps: float = 1e-5) -> Any:
    x, weight, bias = i
    if _grad_state.enabled:
        dx, dw, db = _ln_grad(g[0], x, weight, eps)
    else:
        dx, dw, db = dispatch("fused_layer_norm_backward", g[0], x, weight, eps=eps)
    return (dx if _wants_grad(x) else None, dw if _wants_grad(weight) else None,
            db if _wants_grad(bias) else None)


_op("fused_layer_norm", 3, backward=_ln_bwd, composite=_ln_composite, dtype_rule="promote_float",
    metadata={"description": "layer norm over the last dimension with optional weight and bias",
              "category": "fused"})
_op("fused_layer_norm_backward", 3, num_outputs=3, composite=_ln_grad, dtype_rule="promote_float",
    metadata={"description": "first-order gradients (x, weight, bias) of fused_layer_norm", "category": "fused"})


# ---- softmax / log-softmax backward ------------------------------------------------------------
def _softmax_grad(g: Any, y: Any, dim: int = -1) -> Any:
    gy = g * y
    return gy - y * gy.sum(dim=dim, keepdim=True)


def _log_softmax_grad(g: Any, y: Any, dim: int = -1) -> Any:
    return g - y.exp() * g.sum(dim=dim, keepdim=True)


_op("softmax_backward", 2, composite=_softmax_grad, dtype_rule="promote_float",
    metadata={"description": "first-order gradient of softmax from its output", "category": "fused"})
_op("log_softmax_backward", 2, composite=_log_softmax_grad, dtype_rule="promote_float",
    metadata={"description": "first-order gradient of log_softmax from its output", "category": "fused"})


def _route_first_order(name: str, helper: str, from_output: bool) -> None:
    """Send ``name``'s first-order backward to ``helper`` where a backend has it natively.

    ``helper`` takes the incoming gradient followed by the op's output (``from_output``)
    or its inputs, and the op's attributes. Elsewhere, and whenever the backward is
    recorded (``create_graph=True``), the op's own Tensor-op formula runs.
    """
    reg = global_operator_registry()
    op, fast = reg.get(name), reg.get(helper)
    formula = _registered_backward(name)

    def backward(i: Any, o: Any, g: Any, **attrs: Any) -> Any:
        saved = o if from_output else i
        if not _grad_state.enabled and saved[0]._be.name in fast.forwards:
            grad = dispatch(helper, g[0], *saved, **attrs)
            return (grad,) if from_output else (grad if _wants_grad(i[0]) else None,) + (None,) * (len(i) - 1)
        return formula(i, o, g, **attrs)

    backward.__name__ = f"_{name}_bwd_routed"
    op.backward = backward


_route_first_order("softmax", "softmax_backward", from_output=True)
_route_first_order("log_softmax", "log_softmax_backward", from_output=True)
_route_first_order("cross_entropy", "cross_entropy_backward", from_output=False)


# ---- the calls nn.functional makes -------------------------------------------------------------
def bias_gelu(x: Any, bias: Any, approximate: str = "none") -> Any:
    """``gelu(x + bias)`` with ``bias`` of shape ``(x.shape[-1],)``, as one fused op.

    >>> import spiraltorch_nb as st
    >>> from spiraltorch_nb.ops.fused import bias_gelu
    >>> round(bias_gelu(st.tensor([[0.5]]), st.tensor([0.5])).item(), 4)
    0.8413
    """
    if approximate not in ("none", "tanh"):
        raise ValueError(f"bias_gelu: approximate must be 'none' or 'tanh'; got {approximate!r}")
    if bias.ndim != 1 or x.ndim == 0 or bias.shape[0] != x.shape[-1]:
        raise ShapeError(f"bias_gelu: the bias must be 1-d with the input's last dimension; got shapes "
                         f"{tuple(x.shape)} and {tuple(bias.shape)}", op="fused_bias_gelu",
                         shapes=(tuple(x.shape), tuple(bias.shape)))
    return dispatch("fused_bias_gelu", x, bias, approximate=approximate)


def layer_norm(x: Any, normalized_shape: Sequence[int] | int, weight: Any = None, bias: Any = None,
               eps: float = 1e-5) -> Any:
    """Layer norm over the trailing ``normalized_shape`` dims through ``fused_layer_norm``.

    Several trailing dims are normalized as one flattened dimension (a free reshape).

    >>> import spiraltorch_nb as st
    >>> from spiraltorch_nb.ops.fused import layer_norm
    >>> [round(v, 4) for v in layer_norm(st.tensor([[1.0, 3.0]]), 2).tolist()[0]]
    [-1.0, 1.0]
    """
    ns = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    k = len(ns)
    if k == 0 or x.ndim < k or tuple(x.shape[x.ndim - k:]) != ns:
        raise ShapeError(f"layer_norm: the input's trailing shape {tuple(x.shape[max(x.ndim - k, 0):])} does not "
                         f"match normalized_shape {ns}", op="fused_layer_norm", shapes=(tuple(x.shape), ns))
    for name, p in (("weight", weight), ("bias", bias)):
        if p is not None and tuple(p.shape) != ns:
            raise ShapeError(f"layer_norm: the {name} has shape {tuple(p.shape)}; expected normalized_shape {ns}",
                             op="fused_layer_norm", shapes=(tuple(p.shape), ns))
    if k == 1:
        return dispatch("fused_layer_norm", x, weight, bias, eps=eps)
    n = math.prod(ns)
    flat = x.reshape(*x.shape[:x.ndim - k], n)
    w = weight.reshape(n) if weight is not None else None
    b = bias.reshape(n) if bias is not None else None
    return dispatch("fused_layer_norm", flat, w, b, eps=eps).reshape(x.shape)
