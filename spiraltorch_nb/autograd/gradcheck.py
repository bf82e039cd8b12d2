"""Finite-difference checks of first and second derivatives (in float64)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..errors import AutogradError
from .tape import grad as _grad

__all__ = ["gradcheck", "gradgradcheck"]


def _as_tuple(x: Any) -> tuple:
    return tuple(x) if isinstance(x, list | tuple) else (x,)


def _numerical_jacobian(fn: Callable[..., Any], inputs: Sequence[Any], eps: float) -> list[np.ndarray | None]:
    """d(sum of outputs weighted by fixed random vectors)/d(each input), by central differences."""
    outs: list[np.ndarray | None] = []
    for i, x in enumerate(inputs):
        if not (hasattr(x, "_be") and x.requires_grad):
            outs.append(None)
            continue
        base = x.numpy().astype(np.float64).copy()
        flat = base.reshape(-1)
        jac = np.zeros(flat.size)
        for k in range(flat.size):
            orig = flat[k]
            vals = []
            for delta in (eps, -eps):
                flat[k] = orig + delta
                xs = list(inputs)
                xs[i] = _replace(x, base)
                vals.append(_weighted(fn(*xs)))
            flat[k] = orig
            jac[k] = (vals[0] - vals[1]) / (2 * eps)
        outs.append(jac.reshape(base.shape))
    return outs


_WEIGHTS: dict[tuple, np.ndarray] = {}


def _weights(shape: tuple) -> np.ndarray:
    w = _WEIGHTS.get(shape)
    if w is None:
        w = _WEIGHTS[shape] = np.random.default_rng(len(shape) + sum(shape)).uniform(0.5, 1.5, size=shape)
    return w


def _weighted(out: Any) -> float:
    total = 0.0
    for o in _as_tuple(out):
        arr = o.numpy().astype(np.float64)
        total += float((arr * _weights(arr.shape)).sum())
    return total


def _replace(x: Any, values: np.ndarray) -> Any:
    from ..ops.creation import tensor

    return tensor(values.astype(x.dtype.np), device=x.device, requires_grad=True)


def gradcheck(fn: Callable[..., Any], inputs: Any, eps: float = 1e-6, atol: float = 1e-5,
              rtol: float = 1e-3, raise_exception: bool = True) -> bool:
    """Compare autograd gradients of ``fn`` with central finite differences.

    Inputs that require grad should be float64. Returns True, or raises (or returns
    False) naming the input and the largest difference.

    >>> import spiraltorch_nb as st
    >>> x = st.randn(3, dtype=st.float64, requires_grad=True)
    >>> st.autograd.gradcheck(lambda t: (t * t).sin(), (x,))
    True
    """
    inputs = _as_tuple(inputs)
    out = fn(*inputs)
    outs = _as_tuple(out)
    grads_out = []
    from ..ops.creation import tensor

    for o in outs:
        grads_out.append(tensor(_weights(tuple(o.shape)).astype(o.dtype.np), device=o.device))
    wanted = [x for x in inputs if hasattr(x, "_be") and x.requires_grad]
    # an output off the tape (e.g. a backward that detached) has a zero analytic gradient
    live = [(o, g) for o, g in zip(outs, grads_out, strict=True) if o.requires_grad]
    analytic = (_grad([o for o, _ in live], wanted, [g for _, g in live], allow_unused=True) if live
                else [None] * len(wanted))
    numeric = [n for n in _numerical_jacobian(fn, inputs, eps) if n is not None]
    for k, (a, n) in enumerate(zip(analytic, numeric, strict=True)):
        a_np = np.zeros_like(n) if a is None else a.numpy().astype(np.float64)
        if not np.allclose(a_np, n, atol=atol, rtol=rtol):
            worst = float(np.max(np.abs(a_np - n)))
            msg = (f"gradcheck: the analytic gradient of input {k} differs from finite differences by "
                   f"up to {worst:.3g} (atol={atol}, rtol={rtol})\nanalytic:\n{a_np}\nnumeric:\n{n}")
            if raise_exception:
                raise AutogradError(msg)
            return False
    return True


def gradgradcheck(fn: Callable[..., Any], inputs: Any, eps: float = 1e-6, atol: float = 1e-5,
                  rtol: float = 1e-3, raise_exception: bool = True) -> bool:
    """Check second derivatives: gradcheck of the (differentiable) first gradient of ``fn``."""
    inputs = _as_tuple(inputs)
    from ..ops.creation import tensor

    def first(*xs: Any) -> Any:
        outs = _as_tuple(fn(*xs))
        gos = [tensor(_weights(tuple(o.shape)).astype(o.dtype.np), device=o.device) for o in outs]
        wanted = [x for x in xs if hasattr(x, "_be") and x.requires_grad]
        gs = _grad(list(outs), wanted, gos, create_graph=True, allow_unused=True)
        return tuple(g for g in gs if g is not None and g.requires_grad) or tuple(g for g in gs if g is not None)

    return gradcheck(first, inputs, eps=eps, atol=atol, rtol=rtol, raise_exception=raise_exception)
