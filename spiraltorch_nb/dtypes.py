"""Data types and the promotion rules shared by every backend.

Promotion follows PyTorch: categories order ``bool < integer < floating``; inside a
category the wider type wins; an integer tensor combined with a floating tensor takes
the floating tensor's type. A Python scalar never widens a tensor of its own category
(``float32_tensor * 2.5`` stays float32); a Python float combined with an integer or
bool tensor gives the default float (float32), a Python int with a bool tensor gives
int64.

>>> promote_types(int32, float16)
spiraltorch_nb.float16
>>> promote_types(float32, float64)
spiraltorch_nb.float64
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .errors import DTypeError

__all__ = [
    "DType",
    "float16",
    "float32",
    "float64",
    "int32",
    "int64",
    "uint32",
    "bool_",
    "get_dtype",
    "promote_types",
    "result_type",
    "default_float",
]


class DType:
    """A tensor element type (``st.float32``, ``st.int64``, ...)."""

    __slots__ = ("name", "np", "itemsize", "kind", "rank")

    def __init__(self, name: str, np_dtype: Any, kind: str, rank: int) -> None:
        self.name = name
        self.np = np.dtype(np_dtype)
        self.itemsize = self.np.itemsize
        self.kind = kind  # "b" bool, "i" signed/unsigned integer, "f" floating
        self.rank = rank

    @property
    def is_floating_point(self) -> bool:
        return self.kind == "f"

    @property
    def is_bool(self) -> bool:
        return self.kind == "b"

    def __repr__(self) -> str:
        return f"spiraltorch_nb.{self.name}"

    def __reduce__(self) -> str:
        return self.name


float16 = DType("float16", np.float16, "f", 1)
float32 = DType("float32", np.float32, "f", 2)
float64 = DType("float64", np.float64, "f", 3)
int32 = DType("int32", np.int32, "i", 2)
uint32 = DType("uint32", np.uint32, "i", 2)
int64 = DType("int64", np.int64, "i", 3)
bool_ = DType("bool", np.bool_, "b", 0)

ALL_DTYPES = (float16, float32, float64, int32, uint32, int64, bool_)
_BY_NAME = {d.name: d for d in ALL_DTYPES}
_BY_NAME.update({"half": float16, "float": float32, "double": float64, "int": int32,
                 "long": int64, "bool_": bool_})
_BY_NP = {d.np: d for d in ALL_DTYPES}

default_float = float32
default_int = int64


def get_dtype(spec: Any) -> DType:
    """Turn a DType, a name (``"float32"``), a NumPy dtype or a Python type into a DType."""
    if spec.__class__ is DType:
        return spec
    if isinstance(spec, str):
        found = _BY_NAME.get(spec)
        if found is not None:
            return found
    elif spec is float:
        return default_float
    elif spec is int:
        return default_int
    elif spec is bool:
        return bool_
    else:
        try:
            found = _BY_NP.get(np.dtype(spec))
        except TypeError:
            found = None
        if found is not None:
            return found
    names = ", ".join(d.name for d in ALL_DTYPES)
    msg = f"unsupported dtype {spec!r}: expected one of {names}"
    raise DTypeError(msg, dtype=spec)


def from_numpy_dtype(npd: np.dtype) -> DType:
    """The DType of a NumPy dtype; raises DTypeError for unsupported ones."""
    found = _BY_NP.get(npd)
    if found is None:
        return get_dtype(npd)
    return found


def promote_types(a: DType, b: DType) -> DType:
    """The dtype two tensors of dtypes ``a`` and ``b`` combine into."""
    if a is b:
        return a
    if a.kind == b.kind:
        if a.kind == "i" and {a, b} == {uint32, int32}:
            return int64
        return a if a.rank >= b.rank else b
    order = {"b": 0, "i": 1, "f": 2}
    return a if order[a.kind] > order[b.kind] else b


def scalar_dtype(tensor_dtype: DType, value: Any) -> DType:
    """The dtype of ``tensor <op> python_scalar`` under PyTorch's rules."""
    if isinstance(value, bool) or value.__class__ is np.bool_:
        return tensor_dtype
    if isinstance(value, int):
        return int64 if tensor_dtype.kind == "b" else tensor_dtype
    if isinstance(value, float):
        return tensor_dtype if tensor_dtype.kind == "f" else default_float
    if isinstance(value, np.generic):
        return promote_types(tensor_dtype, from_numpy_dtype(value.dtype)) if value.dtype.kind == "f" and tensor_dtype.kind != "f" else tensor_dtype
    raise DTypeError(f"cannot combine a tensor with a {type(value).__name__} value {value!r}")


def result_type(*items: Any) -> DType:
    """The result dtype of combining tensors (anything with ``.dtype``) and Python scalars."""
    tensor_dt = None
    for it in items:
        dt = getattr(it, "dtype", None)
        if isinstance(dt, DType):
            tensor_dt = dt if tensor_dt is None else promote_types(tensor_dt, dt)
    if tensor_dt is None:
        raise DTypeError("result_type needs at least one tensor")
    out = tensor_dt
    for it in items:
        if not isinstance(getattr(it, "dtype", None), DType):
            out = promote_types(out, scalar_dtype(tensor_dt, it))
    return out


def infer_dtype(data: Any) -> DType:
    """The dtype ``st.tensor(data)`` gives, as ``torch.tensor`` does."""
    if isinstance(data, np.ndarray | np.generic):
        return from_numpy_dtype(data.dtype)
    if isinstance(data, bool):
        return bool_
    if isinstance(data, int):
        return default_int
    if isinstance(data, float):
        return default_float
    arr = np.asarray(data)
    kind = arr.dtype.kind
    if kind == "b":
        return bool_
    if kind in "iu":
        return default_int
    if kind == "f":
        return default_float
    msg = f"cannot build a tensor from {type(data).__name__} data of NumPy kind {arr.dtype}"
    raise DTypeError(msg, dtype=arr.dtype)
