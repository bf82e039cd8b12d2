"""The in-place update primitives optimizers are written with, in two executors.

Every optimizer formula is written once against the small set of operations below
(``axpy_``, ``lerp_``, ``addcmul_``, ...). Two executors run them:

* :class:`TensorOps` goes through Tensor operations, so it runs on every backend;
* :class:`NativeOps` works on the backend's native arrays with ``out=`` arguments, so
  an update allocates no Tensor wrappers and (mostly) no temporaries. It serves
  backends whose native arrays follow NumPy's API (cpu).

Both perform the same elementwise arithmetic in the same order, with Python scalars
cast to the array's dtype the way the kernels do, so their results are bitwise equal
(``tests/optim/test_native_path.py`` checks it). The arithmetic order follows
``torch.optim``'s single-tensor implementations.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..autograd.grad_mode import state as _grad_state
from ..ops.registry import dispatch as _d
from ..tensor import Tensor

__all__ = ["TensorOps", "NativeOps", "ops_for", "native_enabled", "set_native_enabled"]

_native = [True]


def native_enabled() -> bool:
    """Whether optimizers use the native-array executor where a backend allows it."""
    return _native[0]


def set_native_enabled(enabled: bool) -> bool:
    """Turn the native-array executor on or off (for checks and debugging); returns the old value."""
    prev = _native[0]
    _native[0] = bool(enabled)
    return prev


class TensorOps:
    """Updates written with Tensor operations: any device (run inside ``st.no_grad()``)."""

    name = "tensor"

    @staticmethod
    def axpy_(x: Tensor, y: Tensor, alpha: float = 1.0) -> None:
        """``x += alpha * y`` (``torch.Tensor.add_(y, alpha=alpha)``)."""
        x._inplace("add", y if alpha == 1 else _d("mul", y, alpha))

    @staticmethod
    def mul_(x: Tensor, s: float) -> None:
        x._inplace("mul", s)

    @staticmethod
    def lerp_(x: Tensor, y: Tensor, w: float) -> None:
        """``x += w * (y - x)``, with torch's two-sided formula for accuracy when ``w >= 0.5``."""
        diff = _d("sub", y, x)
        if w < 0.5:
            x._inplace("add", _d("mul", diff, w))
        else:
            x.copy_(_d("sub", y, _d("mul", diff, 1.0 - w)))

    @staticmethod
    def addcmul_(x: Tensor, a: Tensor, b: Tensor, value: float) -> None:
        """``x += value * a * b``."""
        x._inplace("add", _d("mul", _d("mul", a, value), b))

    @staticmethod
    def addcdiv_(x: Tensor, a: Tensor, b: Tensor, value: float) -> None:
        """``x += value * a / b``."""
        x._inplace("add", _d("div", _d("mul", a, value), b))

    @staticmethod
    def maximum_(x: Tensor, y: Tensor) -> None:
        x._inplace("maximum", y)

    @staticmethod
    def add_scaled(x: Tensor, y: Tensor, alpha: float) -> Tensor:
        """A new tensor ``x + alpha * y``."""
        return _d("add", x, y if alpha == 1 else _d("mul", y, alpha))

    @staticmethod
    def neg(x: Tensor) -> Tensor:
        return _d("neg", x)

    @staticmethod
    def clone(x: Tensor) -> Tensor:
        return _d("clone", x)

    @staticmethod
    def zeros_like(x: Tensor) -> Tensor:
        from ..ops.creation import zeros_like

        return zeros_like(x)

    @staticmethod
    def sqrt_scale_shift(x: Tensor, divisor: float, eps: float) -> Tensor:
        """A new tensor ``sqrt(x) / divisor + eps``."""
        return _d("add", _d("div", _d("sqrt", x), divisor), eps)

    @staticmethod
    def centered_root(sq: Tensor, avg: Tensor, eps: float) -> Tensor:
        """A new tensor ``sqrt(sq - avg * avg) + eps`` (torch's ``addcmul(value=-1)``)."""
        return _d("add", _d("sqrt", _d("add", sq, _d("mul", _d("mul", avg, -1.0), avg))), eps)

    @staticmethod
    def dot(x: Tensor, y: Tensor) -> float:
        """``sum(x * y)`` as a Python float."""
        return float(_d("sum", _d("mul", x, y)).item())


class NativeOps:
    """The same updates on native NumPy-API arrays, in place with ``out=``.

    Each in-place write bumps the tensor's version counter, as a Tensor in-place op
    does, so autograd still notices a parameter changed under a saved graph.
    """

    name = "native"
    xp: Any = np

    @staticmethod
    def axpy_(x: Tensor, y: Tensor, alpha: float = 1.0) -> None:
        xd = x._data
        if alpha == 1:
            np.add(xd, y._data, out=xd)
        else:
            np.add(xd, np.multiply(y._data, xd.dtype.type(alpha)), out=xd)
        x._ver[0] += 1

    @staticmethod
    def mul_(x: Tensor, s: float) -> None:
        xd = x._data
        np.multiply(xd, xd.dtype.type(s), out=xd)
        x._ver[0] += 1

    @staticmethod
    def lerp_(x: Tensor, y: Tensor, w: float) -> None:
        xd, yd = x._data, y._data
        diff = np.subtract(yd, xd)
        if w < 0.5:
            np.multiply(diff, xd.dtype.type(w), out=diff)
            np.add(xd, diff, out=xd)
        else:
            np.multiply(diff, xd.dtype.type(1.0 - w), out=diff)
            np.subtract(yd, diff, out=xd)
        x._ver[0] += 1

    @staticmethod
    def addcmul_(x: Tensor, a: Tensor, b: Tensor, value: float) -> None:
        xd = x._data
        tmp = np.multiply(a._data, xd.dtype.type(value))
        np.multiply(tmp, b._data, out=tmp)
        np.add(xd, tmp, out=xd)
        x._ver[0] += 1

    @staticmethod
    def addcdiv_(x: Tensor, a: Tensor, b: Tensor, value: float) -> None:
        xd = x._data
        tmp = np.multiply(a._data, xd.dtype.type(value))
        np.divide(tmp, b._data, out=tmp)
        np.add(xd, tmp, out=xd)
        x._ver[0] += 1

    @staticmethod
    def maximum_(x: Tensor, y: Tensor) -> None:
        np.maximum(x._data, y._data, out=x._data)
        x._ver[0] += 1

    @staticmethod
    def add_scaled(x: Tensor, y: Tensor, alpha: float) -> Tensor:
        xd = x._data
        yd = y._data if alpha == 1 else np.multiply(y._data, xd.dtype.type(alpha))
        return Tensor._wrap(np.add(xd, yd), x._be)

    @staticmethod
    def neg(x: Tensor) -> Tensor:
        return Tensor._wrap(np.negative(x._data), x._be)

    @staticmethod
    def clone(x: Tensor) -> Tensor:
        return Tensor._wrap(x._data.copy(), x._be)

    @staticmethod
    def zeros_like(x: Tensor) -> Tensor:
        return Tensor._wrap(np.zeros_like(x._data), x._be)

    @staticmethod
    def sqrt_scale_shift(x: Tensor, divisor: float, eps: float) -> Tensor:
        xd = x._data
        out = np.sqrt(xd)
        np.divide(out, xd.dtype.type(divisor), out=out)
        np.add(out, xd.dtype.type(eps), out=out)
        return Tensor._wrap(out, x._be)

    @staticmethod
    def centered_root(sq: Tensor, avg: Tensor, eps: float) -> Tensor:
        sd, ad = sq._data, avg._data
        tmp = np.multiply(ad, sd.dtype.type(-1.0))
        np.multiply(tmp, ad, out=tmp)
        np.add(sd, tmp, out=tmp)
        np.sqrt(tmp, out=tmp)
        np.add(tmp, sd.dtype.type(eps), out=tmp)
        return Tensor._wrap(tmp, sq._be)

    @staticmethod
    def dot(x: Tensor, y: Tensor) -> float:
        return float(np.sum(np.multiply(x._data, y._data)))


#: backends whose native arrays NativeOps can work on
_NATIVE_BACKENDS = frozenset({"cpu"})


def ops_for(p: Tensor) -> type[TensorOps] | type[NativeOps]:
    """The executor for parameter ``p``: native arrays on cpu, Tensor ops elsewhere.

    Tensor ops are also used while grad mode is on (a differentiable update must be
    recorded), for 0-d parameters (NumPy returns scalars, not arrays, from 0-d
    arithmetic, so ``out=`` cannot be used), and when the native executor is off.
    """
    if _native[0] and p._be.name in _NATIVE_BACKENDS and not _grad_state.enabled and p._data.ndim:
        return NativeOps
    return TensorOps
