"""Fused loss operators: one kernel forward where a backend has it, Tensor-op backward.

``cross_entropy`` over (N, C) logits and integer targets is the training hot path, so
it is one operator instead of a dozen small ones. Its backward
``(softmax(x) - (1-eps) onehot - eps/C) * valid * scale`` is written with Tensor ops,
so second derivatives still work, and backends without the kernel run the composite.
"""

from __future__ import annotations

from typing import Any

from .registry import _op, dispatch

__all__: list[str] = []


def _ce_backward(i: Any, o: Any, g: Any, ignore_index: int = -100, label_smoothing: float = 0.0,
                 reduction: str = "mean") -> Any:
    from .creation import arange

    x, target = i
    n, c = x.shape
    p = x.softmax(1)
    valid = target != ignore_index
    safe = dispatch("where", valid, target, 0)
    onehot = (safe.unsqueeze(1) == arange(c, device=x.device, dtype=target.dtype)).to(x.dtype)
    grad = p - onehot * (1.0 - label_smoothing)
    if label_smoothing:
        grad = grad - label_smoothing / c
    vf = valid.to(x.dtype).unsqueeze(1)
    grad = grad * vf
    go = g[0]
    if reduction == "mean":
        # every target ignored: the loss is NaN (as in torch) but its gradient is 0, not 0/0
        grad = grad * (go / vf.sum().clamp(min=1.0))
    elif reduction == "sum":
        grad = grad * go
    else:
        grad = grad * go.unsqueeze(1)
    return grad, None


def _ce_composite(x: Any, target: Any, ignore_index: int = -100, label_smoothing: float = 0.0,
                  reduction: str = "mean") -> Any:
    from ..nn.functional import _cross_entropy_composite

    return _cross_entropy_composite(x, target, None, ignore_index, reduction, label_smoothing)


_op("cross_entropy", 2, backward=_ce_backward, composite=_ce_composite, dtype_rule=None)
