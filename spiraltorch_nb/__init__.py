"""spiraltorch_nb: Jupyter-first deep learning on NumPy, CuPy and WebGPU behind one tensor API.

>>> import spiraltorch_nb as st
>>> x = st.tensor([1.0, 2.0, 3.0], requires_grad=True)
>>> y = (x ** 2).sum()
>>> y.backward()
>>> x.grad
tensor([2., 4., 6.])
"""

from __future__ import annotations

from . import (
    autograd,
    dtypes,
    errors,
    ops,  # registers the built-in operators first
)
from ._version import __version__
from .autograd import enable_grad, grad, is_grad_enabled, no_grad, set_grad_enabled
from .backends.random import initial_seed, manual_seed
from .device import (
    Device,
    available_devices,
    default_device,
    describe_device,
    device,
    get_default_device,
    set_default_device,
)
from .dtypes import DType, bool_, float16, float32, float64, int32, int64, promote_types, uint32
from .errors import (
    AutogradError,
    DeviceError,
    DeviceUnavailableError,
    DTypeError,
    OperatorError,
    ShapeError,
    SpiralTorchError,
)
from .functions import *  # noqa: F403
from .functions import __all__ as _functions_all
from .ops.creation import (
    arange,
    as_tensor,
    empty,
    empty_like,
    eye,
    from_dlpack,
    from_numpy,
    full,
    full_like,
    linspace,
    ones,
    ones_like,
    rand,
    rand_like,
    randint,
    randint_like,
    randn,
    randn_like,
    randperm,
    tensor,
    zeros,
    zeros_like,
)
from .tensor import Tensor

bool = bool_  # st.bool, as torch.bool
float = float32  # noqa: A001
double = float64
half = float16
long = int64
int = int32  # noqa: A001


def __getattr__(name: str):  # lazily import the heavier subpackages
    import importlib

    if name in _LAZY:
        mod = importlib.import_module(f".{name}", __name__)
        globals()[name] = mod
        return mod
    if name in ("save", "load"):
        from . import io

        return getattr(io, name)
    raise AttributeError(f"module 'spiraltorch_nb' has no attribute {name!r}")


_LAZY = ("nn", "optim", "train", "telemetry", "widgets", "plugins", "io", "backends")

__all__ = [
    "__version__", "Tensor", "DType", "Device",
    "tensor", "as_tensor", "from_numpy", "from_dlpack", "zeros", "ones", "full", "empty", "arange",
    "linspace", "eye", "rand", "randn", "randint", "randperm", "zeros_like", "ones_like", "full_like",
    "empty_like", "rand_like", "randn_like", "randint_like", "manual_seed", "initial_seed",
    "float16", "float32", "float64", "int32", "int64", "uint32", "bool_", "promote_types",
    "device", "set_default_device", "get_default_device", "default_device", "available_devices",
    "describe_device", "no_grad", "enable_grad", "set_grad_enabled", "is_grad_enabled", "grad",
    "SpiralTorchError", "ShapeError", "DeviceError", "DeviceUnavailableError", "DTypeError",
    "AutogradError", "OperatorError", "autograd", "dtypes", "errors", "ops",
    *_functions_all, *_LAZY, "save", "load",  # noqa: F405  (save/load resolve lazily via __getattr__)
]
