"""In-place parameter-update operators (``axpy_``, ``lerp_``, ``addcmul_``, ...).

Optimizers are written with these. Each is an ordinary registered operator, so an
update goes through dispatch like every other op (telemetry sees it); a backend with
a native kernel (cpu and cuda: NumPy/CuPy with ``out=``) updates without temporaries,
and any other backend runs the composite written with Tensor in-place operations.
They are not differentiable: differentiable steps live in ``st.optim.functional``.
The caller bumps the tensor's version counter.
"""

from __future__ import annotations

from typing import Any

from .registry import _op, dispatch

__all__: list[str] = []


def _axpy(x: Any, y: Any, alpha: float = 1.0) -> Any:
    x._inplace("add", y if alpha == 1 else dispatch("mul", y, alpha))
    return x


def _lerp(x: Any, y: Any, weight: float) -> Any:
    diff = dispatch("sub", y, x)
    if weight < 0.5:
        x._inplace("add", dispatch("mul", diff, weight))
    else:
        x.copy_(dispatch("sub", y, dispatch("mul", diff, 1.0 - weight)))
    return x


def _addcmul(x: Any, a: Any, b: Any, value: float) -> Any:
    x._inplace("add", dispatch("mul", dispatch("mul", a, value), b))
    return x


def _addcdiv(x: Any, a: Any, b: Any, value: float) -> Any:
    x._inplace("add", dispatch("div", dispatch("mul", a, value), b))
    return x


def _maximum(x: Any, y: Any) -> Any:
    x._inplace("maximum", y)
    return x


for _name, _fn, _n in (("axpy_", _axpy, 2), ("lerp_", _lerp, 2), ("addcmul_", _addcmul, 3),
                       ("addcdiv_", _addcdiv, 3), ("maximum_", _maximum, 2)):
    _op(_name, _n, differentiable=False, composite=_fn,
        metadata={"description": "in-place optimizer update", "inplace": True})
