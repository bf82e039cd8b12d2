"""The update primitives optimizers are written with.

Every optimizer formula is written once against the small set of operations below
(``axpy_``, ``lerp_``, ``addcmul_``, ...). The in-place ones are registered operators
(``spiraltorch_nb/ops/update.py``), dispatched like every other op: on cpu (and cuda)
their kernels update the native array with ``out=`` arguments and no temporaries; on
other backends the composite made of Tensor in-place ops runs. Both perform the same
elementwise arithmetic in the same order, with Python scalars cast to the array's
dtype, so their results are bitwise equal (``tests/optim`` checks it). The order
follows ``torch.optim``'s single-tensor implementations.
"""

from __future__ import annotations

from ..errors import OperatorError
from ..ops import update as _update_ops  # noqa: F401  (registers the update operators)
from ..ops.registry import dispatch as _d
from ..ops.registry import global_operator_registry
from ..tensor import Tensor

__all__ = ["TensorOps", "NativeOps", "ops_for", "native_enabled", "set_native_enabled"]

_native = [True]


def native_enabled() -> bool:
    """Whether in-place updates use a backend's native update kernels where it has them."""
    return _native[0]


def set_native_enabled(enabled: bool) -> bool:
    """Use native update kernels (True) or always the Tensor-op composites (False); returns the old value.

    Both go through dispatch; turning native kernels off is for checks and debugging.
    """
    prev = _native[0]
    _native[0] = bool(enabled)
    return prev


def _update(name: str, x: Tensor, *args: object, **attrs: object) -> None:
    if _native[0]:
        _d(name, x, *args, **attrs)
    else:
        composite = global_operator_registry().get(name).composite
        if composite is None:  # ops/update.py registers every update operator with one
            raise OperatorError(f"update operator '{name}' has no composite to run with native kernels off",
                                op=name)
        composite(x, *args, **attrs)
    x._ver[0] += 1


class TensorOps:
    """Update primitives on Tensors, every one dispatched (run inside ``st.no_grad()``)."""

    name = "tensor"

    @staticmethod
    def axpy_(x: Tensor, y: Tensor, alpha: float = 1.0) -> None:
        """``x += alpha * y`` (``torch.Tensor.add_(y, alpha=alpha)``)."""
        _update("axpy_", x, y, alpha=alpha)

    @staticmethod
    def mul_(x: Tensor, s: float) -> None:
        x._inplace("mul", s)

    @staticmethod
    def lerp_(x: Tensor, y: Tensor, w: float) -> None:
        """``x += w * (y - x)``, with torch's two-sided formula for accuracy when ``w >= 0.5``."""
        _update("lerp_", x, y, weight=w)

    @staticmethod
    def addcmul_(x: Tensor, a: Tensor, b: Tensor, value: float) -> None:
        """``x += value * a * b``."""
        _update("addcmul_", x, a, b, value=value)

    @staticmethod
    def addcdiv_(x: Tensor, a: Tensor, b: Tensor, value: float) -> None:
        """``x += value * a / b``."""
        _update("addcdiv_", x, a, b, value=value)

    @staticmethod
    def maximum_(x: Tensor, y: Tensor) -> None:
        _update("maximum_", x, y)

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


#: kept for code written against the former two-executor design: the same class
NativeOps = TensorOps


def ops_for(p: Tensor) -> type[TensorOps]:
    """The update executor for parameter ``p`` (one executor: every update is dispatched)."""
    return TensorOps
