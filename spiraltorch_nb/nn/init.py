"""Parameter initialization, as ``torch.nn.init``: fill a tensor in place from the st generator.

Every function draws through ``st.rand``/``st.randn`` on the tensor's own device, so
``st.manual_seed(s)`` makes initialization repeat, and runs without recording on the
tape (parameters are leaves that require grad).

>>> import spiraltorch_nb as st
>>> w = st.empty(64, 32)
>>> _ = st.nn.init.kaiming_uniform_(w, a=5 ** 0.5)
>>> bool(w.abs().max() <= 1 / 32 ** 0.5)
True
"""

from __future__ import annotations

import math
from typing import Any

from ..autograd.grad_mode import no_grad
from ..errors import ShapeError
from ..ops import creation
from ..tensor import Tensor

__all__ = [
    "calculate_gain", "uniform_", "normal_", "zeros_", "ones_", "constant_", "xavier_uniform_",
    "xavier_normal_", "kaiming_uniform_", "kaiming_normal_", "trunc_normal_", "eye_",
]


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    """The recommended gain for a nonlinearity (PyTorch's table).

    >>> round(calculate_gain("relu"), 4), calculate_gain("tanh")
    (1.4142, 1.6666666666666667)
    """
    linear = ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
              "conv_transpose3d", "sigmoid")
    if nonlinearity in linear:
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        if param is None:
            slope = 0.01
        elif isinstance(param, bool) or not isinstance(param, int | float):
            raise ValueError(f"calculate_gain: negative_slope must be a number; got {param!r}")
        else:
            slope = float(param)
        return math.sqrt(2.0 / (1 + slope ** 2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"calculate_gain: unknown nonlinearity {nonlinearity!r}; expected one of "
                     f"{', '.join(linear + ('tanh', 'relu', 'leaky_relu', 'selu'))}")


def _fill(t: Tensor, src: Tensor) -> Tensor:
    with no_grad():
        t.copy_(src)
    return t


def _check(t: Any, fn: str) -> Tensor:
    if not isinstance(t, Tensor):
        raise TypeError(f"{fn} fills a Tensor in place; got {type(t).__name__}")
    return t


def uniform_(tensor: Tensor, a: float = 0.0, b: float = 1.0) -> Tensor:
    """Fill with samples from U(a, b)."""
    _check(tensor, "uniform_")
    r = creation.rand(tuple(tensor.shape), dtype=tensor.dtype, device=tensor.device)
    return _fill(tensor, r * (b - a) + a)


def normal_(tensor: Tensor, mean: float = 0.0, std: float = 1.0) -> Tensor:
    """Fill with samples from N(mean, std^2)."""
    _check(tensor, "normal_")
    r = creation.randn(tuple(tensor.shape), dtype=tensor.dtype, device=tensor.device)
    return _fill(tensor, r * std + mean)


def trunc_normal_(tensor: Tensor, mean: float = 0.0, std: float = 1.0, a: float = -2.0, b: float = 2.0) -> Tensor:
    """Fill with N(mean, std^2) samples, those outside [a, b] redrawn."""
    _check(tensor, "trunc_normal_")
    import numpy as np

    shape = tuple(tensor.shape)
    out = np.empty(int(np.prod(shape)), dtype=np.float64)
    filled = 0
    while filled < out.size:
        draw = creation.randn(out.size - filled, dtype="float64").numpy() * std + mean
        keep = draw[(draw >= a) & (draw <= b)]
        out[filled:filled + keep.size] = keep
        filled += keep.size
    return _fill(tensor, creation.tensor(out.reshape(shape), dtype=tensor.dtype, device=tensor.device))


def constant_(tensor: Tensor, val: float) -> Tensor:
    """Fill with ``val``."""
    _check(tensor, "constant_")
    with no_grad():
        tensor.fill_(val)
    return tensor


def zeros_(tensor: Tensor) -> Tensor:
    return constant_(tensor, 0.0)


def ones_(tensor: Tensor) -> Tensor:
    return constant_(tensor, 1.0)


def eye_(tensor: Tensor) -> Tensor:
    """Fill a 2-d tensor with the identity matrix."""
    _check(tensor, "eye_")
    if tensor.ndim != 2:
        raise ShapeError(f"eye_ needs a 2-d tensor; got shape {tuple(tensor.shape)}", op="eye_")
    n, m = tensor.shape
    return _fill(tensor, creation.eye(n, m, dtype=tensor.dtype, device=tensor.device))


def _fans(tensor: Tensor, fn: str) -> tuple[int, int]:
    if tensor.ndim < 2:
        raise ShapeError(f"{fn}: fan in and fan out need a tensor with at least 2 dimensions; got shape "
                         f"{tuple(tensor.shape)}", op=fn, shapes=(tuple(tensor.shape),))
    receptive = math.prod(tensor.shape[2:])
    return tensor.shape[1] * receptive, tensor.shape[0] * receptive


def _fan(tensor: Tensor, mode: str, fn: str) -> int:
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"{fn}: mode must be 'fan_in' or 'fan_out'; got {mode!r}")
    fan_in, fan_out = _fans(tensor, fn)
    return fan_in if mode == "fan_in" else fan_out


def xavier_uniform_(tensor: Tensor, gain: float = 1.0) -> Tensor:
    """Glorot uniform: U(-a, a) with a = gain * sqrt(6 / (fan_in + fan_out))."""
    fan_in, fan_out = _fans(_check(tensor, "xavier_uniform_"), "xavier_uniform_")
    a = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return uniform_(tensor, -a, a)


def xavier_normal_(tensor: Tensor, gain: float = 1.0) -> Tensor:
    """Glorot normal: N(0, std^2) with std = gain * sqrt(2 / (fan_in + fan_out))."""
    fan_in, fan_out = _fans(_check(tensor, "xavier_normal_"), "xavier_normal_")
    return normal_(tensor, 0.0, gain * math.sqrt(2.0 / (fan_in + fan_out)))


def kaiming_uniform_(tensor: Tensor, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu") -> Tensor:
    """He uniform: U(-b, b) with b = gain * sqrt(3 / fan). ``a`` is the leaky-ReLU slope.

    ``kaiming_uniform_(w, a=math.sqrt(5))`` is the default initialization of Linear and Conv2d weights.
    """
    fan = _fan(_check(tensor, "kaiming_uniform_"), mode, "kaiming_uniform_")
    if fan == 0:
        return tensor
    bound = calculate_gain(nonlinearity, a) * math.sqrt(3.0 / fan)
    return uniform_(tensor, -bound, bound)


def kaiming_normal_(tensor: Tensor, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu") -> Tensor:
    """He normal: N(0, std^2) with std = gain / sqrt(fan)."""
    fan = _fan(_check(tensor, "kaiming_normal_"), mode, "kaiming_normal_")
    if fan == 0:
        return tensor
    return normal_(tensor, 0.0, calculate_gain(nonlinearity, a) / math.sqrt(fan))


def _fan_in(tensor: Tensor) -> int:
    """Fan in as Linear/Conv bias initialization needs it (used by the layers)."""
    return _fans(tensor, "fan_in")[0]
