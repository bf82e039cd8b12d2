"""The Tensor: a native array on a device, plus the tape bookkeeping autograd needs.

Every operation a Tensor offers goes through :func:`spiraltorch_nb.ops.dispatch`; this
module only turns PyTorch-shaped calls (``x.sum(dim=1, keepdim=True)``,
``x[mask]``, ``x += 1``) into dispatched operators.
"""

from __future__ import annotations

import builtins
import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NamedTuple

import numpy as np

from .autograd import tape as _tape
from .autograd.grad_mode import state as _grad_state
from .backends.array_kernels import _is_basic, normalize_dims
from .device import Device
from .dtypes import DType, get_dtype
from .errors import AutogradError, DTypeError, ShapeError
from .ops import registry as _registry
from .ops.registry import dispatch as _d

__all__ = ["Tensor", "ValuesIndices"]


class ValuesIndices(NamedTuple):
    """``(values, indices)`` as returned by ``max(dim)``/``min(dim)``."""

    values: Tensor
    indices: Tensor


def _dims_arg(dims: tuple) -> tuple[int, ...]:
    if len(dims) == 1 and isinstance(dims[0], list | tuple):
        return tuple(dims[0])
    return tuple(dims)


class Tensor:
    """An n-dimensional array on a device (cpu, cuda, wgpu) that autograd can differentiate.

    Build tensors with :func:`spiraltorch_nb.tensor`, :func:`~spiraltorch_nb.zeros`, ...

    >>> import spiraltorch_nb as st
    >>> x = st.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    >>> (x * x).sum().backward()
    >>> x.grad.tolist()
    [[2.0, 4.0], [6.0, 8.0]]
    """

    __slots__ = ("_data", "_be", "requires_grad", "grad", "_node", "_oidx", "_ver", "_hooks",
                 "_retains", "__weakref__")
    # declared for type checkers (annotations only: the slots above hold the values)
    _data: Any
    _be: Any
    requires_grad: bool
    grad: Tensor | None
    _node: Any
    _oidx: int
    _ver: list[int]
    _hooks: list[Callable[..., Any]] | None
    _retains: bool
    __array_priority__ = 1000  # NumPy defers to our reflected operators

    # ---- construction -------------------------------------------------------------
    @staticmethod
    def _wrap(data: Any, be: Any) -> Tensor:
        if data.__class__ is not be.native_type:
            data = be.coerce(data)
        t = object.__new__(Tensor)
        t._data = data
        t._be = be
        t.requires_grad = False
        t.grad = None
        t._node = None
        t._oidx = 0
        t._ver = [0]
        t._hooks = None
        t._retains = False
        return t

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise TypeError("build tensors with st.tensor(data), st.zeros(shape), ...; Tensor() has no public constructor")

    # ---- properties ---------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        return self._be.shape_of(self._data)

    @property
    def ndim(self) -> int:
        return len(self._be.shape_of(self._data))

    def dim(self) -> int:
        return self.ndim

    def size(self, dim: int | None = None) -> Any:
        shape = self.shape
        return shape if dim is None else shape[dim]

    def numel(self) -> int:
        return math.prod(self.shape)

    @property
    def dtype(self) -> DType:
        return self._be.dtype_of(self._data)

    @property
    def device(self) -> Device:
        return self._be.device

    @property
    def is_leaf(self) -> bool:
        return self._node is None

    @property
    def grad_fn(self) -> Any:
        return self._node

    @property
    def _version(self) -> int:
        return self._ver[0]

    @property
    def data(self) -> Tensor:
        return self.detach()

    @property
    def T(self) -> Tensor:
        return self.permute(*reversed(range(self.ndim)))

    @property
    def mT(self) -> Tensor:
        return self.transpose(-1, -2)

    def is_floating_point(self) -> bool:
        return self.dtype.is_floating_point

    # ---- conversions ----------------------------------------------------------------
    def numpy(self) -> np.ndarray:
        """The values as a NumPy array (shared memory on cpu; a device read elsewhere)."""
        return self._be.to_numpy(self._data)

    def item(self) -> Any:
        if self.numel() != 1:
            raise ShapeError(f"item() needs a tensor with exactly one element; this one has shape {self.shape}. "
                             "Index it or reduce it first (x.sum().item())", op="item", shapes=(self.shape,))
        return self.numpy().reshape(()).item()

    def tolist(self) -> Any:
        return self.numpy().tolist()

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        arr = self.numpy()
        if dtype is not None:
            arr = arr.astype(dtype, copy=False)
        return arr.copy() if copy else arr

    def __dlpack__(self, *args: Any, **kwargs: Any) -> Any:
        return self._be.dlpack(self._data, *args, **kwargs) if hasattr(self._be, "dlpack") else self.numpy().__dlpack__(*args, **kwargs)

    def __dlpack_device__(self) -> tuple[int, int]:
        if hasattr(self._be, "dlpack_device"):
            return self._be.dlpack_device(self._data)
        return self.numpy().__dlpack_device__()

    @property
    def __cuda_array_interface__(self) -> dict[str, Any]:
        if self.device.type != "cuda":
            raise AttributeError(f"__cuda_array_interface__ exists only on cuda tensors; this one is on {self.device}")
        return self._data.__cuda_array_interface__

    def detach(self) -> Tensor:
        """The same data, cut from the tape (shares memory and version counter)."""
        t = Tensor._wrap(self._data, self._be)
        t._ver = self._ver
        return t

    def detach_(self) -> Tensor:
        self._node = None
        self.requires_grad = False
        return self

    def __deepcopy__(self, memo: dict) -> Tensor:
        # the default deepcopy would also copy the backend object (a second cpu/wgpu backend)
        if self._node is not None:
            raise AutogradError("only leaf tensors can be deep-copied; this one was computed by "
                                f"{self._node!r}. Copy t.detach() instead")
        out = _d("clone", self.detach())
        out.requires_grad = self.requires_grad
        memo[id(self)] = out
        if self.grad is not None:
            import copy

            out.grad = copy.deepcopy(self.grad, memo)
        return out

    def clone(self) -> Tensor:
        return _d("clone", self)

    def contiguous(self) -> Tensor:
        return self

    def to(self, *args: Any, **kwargs: Any) -> Tensor:
        """Move to a device and/or convert to a dtype: ``x.to("wgpu")``, ``x.to(st.float64)``."""
        device = kwargs.pop("device", None)
        dtype = kwargs.pop("dtype", None)
        kwargs.pop("non_blocking", None)
        copy = kwargs.pop("copy", False)
        if kwargs:
            raise TypeError(f"to() got unexpected arguments {sorted(kwargs)}")
        for a in args:
            if isinstance(a, Tensor):
                device, dtype = a.device, a.dtype
            elif isinstance(a, DType) or a in (float, int, bool) or (isinstance(a, str) and _is_dtype_name(a)):
                dtype = a
            else:
                device = a
        out = self
        if device is not None:
            dev = Device(device)
            if dev != self.device:
                out = _move(out, dev)
        if dtype is not None:
            dt = get_dtype(dtype)
            if dt is not out.dtype:
                out = _d("cast", out, dtype=dt)
        if copy and out is self:
            out = self.clone()
        return out

    def cpu(self) -> Tensor:
        return self.to("cpu")

    def cuda(self, index: int | None = None) -> Tensor:
        return self.to("cuda" if index is None else f"cuda:{index}")

    def wgpu(self) -> Tensor:
        return self.to("wgpu")

    def float(self) -> Tensor:
        return self.to(get_dtype("float32"))

    def double(self) -> Tensor:
        return self.to(get_dtype("float64"))

    def half(self) -> Tensor:
        return self.to(get_dtype("float16"))

    def int(self) -> Tensor:
        return self.to(get_dtype("int32"))

    def long(self) -> Tensor:
        return self.to(get_dtype("int64"))

    def bool(self) -> Tensor:
        return self.to(get_dtype("bool"))

    def type_as(self, other: Tensor) -> Tensor:
        return self.to(other.dtype)

    # ---- autograd -----------------------------------------------------------------
    def requires_grad_(self, requires_grad: builtins.bool = True) -> Tensor:
        if requires_grad and not self.dtype.is_floating_point:
            raise AutogradError(
                f"only floating-point tensors can require gradients; this one is {self.dtype.name}. "
                "Convert it first: x = x.float().requires_grad_()")
        if not requires_grad and self._node is not None:
            raise AutogradError("requires_grad_(False) works only on leaf tensors; use .detach() on a computed tensor")
        self.requires_grad = bool(requires_grad)
        return self

    def backward(self, gradient: Any = None, retain_graph: builtins.bool | None = None, create_graph: builtins.bool = False) -> None:
        """Accumulate d(self)/d(leaf) into every leaf's ``.grad``.

        ``gradient`` is required when self is not a scalar; ``create_graph=True`` records
        the backward pass so gradients can be differentiated again.
        """
        _tape.backward(self, gradient, retain_graph, create_graph)

    def register_hook(self, hook: Callable[[Tensor], Tensor | None]) -> _tape.RemovableHandle:
        """Call ``hook(grad)`` when this tensor's gradient is computed; a returned tensor replaces it."""
        if not self.requires_grad:
            raise AutogradError("cannot register a hook on a tensor that does not require grad")
        if self._node is None:
            if self._hooks is None:
                self._hooks = []
            lst = self._hooks
        else:
            node = self._node
            if node.hooks is None:
                node.hooks = {}
            lst = node.hooks.setdefault(self._oidx, [])
        lst.append(hook)
        return _tape.RemovableHandle(lst, hook)

    def retain_grad(self) -> None:
        """Keep ``.grad`` on a non-leaf tensor after backward."""
        if self._node is None or self._retains:
            return
        self._retains = True
        import weakref

        ref = weakref.ref(self)

        def keep(g: Tensor) -> None:
            t = ref()
            if t is not None:
                gd = g.detach()
                t.grad = gd if t.grad is None else t.grad + gd

        self.register_hook(keep)

    # ---- printing -------------------------------------------------------------------
    def __repr__(self) -> str:
        arr = self.numpy()
        body = np.array2string(arr, separator=", ", prefix="tensor(", threshold=1000, edgeitems=3,
                               precision=4, suppress_small=False)
        extras = []
        dt = self.dtype
        if dt.name not in ("float32", "int64", "bool") or arr.size == 0:
            extras.append(f"dtype={dt!r}".replace("spiraltorch_nb.", "st."))
        if self.device.type != "cpu":
            extras.append(f"device='{self.device}'")
        if self._node is not None:
            extras.append(f"grad_fn={self._node!r}")
        elif self.requires_grad:
            extras.append("requires_grad=True")
        return "tensor(" + body + "".join(", " + e for e in extras) + ")"

    def _repr_html_(self) -> str:
        from ._html import tensor_html

        return tensor_html(self)

    def __len__(self) -> builtins.int:
        shape = self.shape
        if not shape:
            raise TypeError("len() of a 0-d tensor")
        return shape[0]

    def __iter__(self) -> Iterator[Tensor]:
        if self.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        for i in range(self.shape[0]):
            yield self[i]

    def __bool__(self) -> builtins.bool:
        if self.numel() != 1:
            raise ShapeError(f"the truth value of a tensor with {self.numel()} elements is ambiguous; use .any() or .all()")
        return builtins.bool(self.item())

    def __float__(self) -> builtins.float:
        return builtins.float(self.item())

    def __int__(self) -> builtins.int:
        return builtins.int(self.item())

    def __index__(self) -> builtins.int:
        if self.dtype.is_floating_point or self.numel() != 1:
            raise TypeError("only integer tensors of a single element can be used as an index")
        return builtins.int(self.item())

    def __hash__(self) -> builtins.int:
        return id(self)

    # ---- arithmetic ---------------------------------------------------------------
    def __add__(self, o: Any) -> Tensor:
        return _d("add", self, o)

    def __radd__(self, o: Any) -> Tensor:
        return _d("add", o, self)

    def __sub__(self, o: Any) -> Tensor:
        return _d("sub", self, o)

    def __rsub__(self, o: Any) -> Tensor:
        return _d("sub", o, self)

    def __mul__(self, o: Any) -> Tensor:
        return _d("mul", self, o)

    def __rmul__(self, o: Any) -> Tensor:
        return _d("mul", o, self)

    def __truediv__(self, o: Any) -> Tensor:
        return _d("div", self, o)

    def __rtruediv__(self, o: Any) -> Tensor:
        return _d("div", o, self)

    def __floordiv__(self, o: Any) -> Tensor:
        return _d("floordiv", self, o)

    def __rfloordiv__(self, o: Any) -> Tensor:
        return _d("floordiv", o, self)

    def __mod__(self, o: Any) -> Tensor:
        return _d("remainder", self, o)

    def __rmod__(self, o: Any) -> Tensor:
        return _d("remainder", o, self)

    def __pow__(self, o: Any) -> Tensor:
        return _d("pow", self, o)

    def __rpow__(self, o: Any) -> Tensor:
        return _d("pow", o, self)

    def __matmul__(self, o: Any) -> Tensor:
        return _d("matmul", self, _as_tensor_like(o, self))

    def __rmatmul__(self, o: Any) -> Tensor:
        return _d("matmul", _as_tensor_like(o, self), self)

    def __neg__(self) -> Tensor:
        return _d("neg", self)

    def __pos__(self) -> Tensor:
        return self

    def __abs__(self) -> Tensor:
        return _d("abs", self)

    def __invert__(self) -> Tensor:
        if self.dtype.is_bool:
            return _d("logical_not", self)
        raise DTypeError(f"~ is defined here for bool tensors only; got {self.dtype.name}", op="invert")

    def __and__(self, o: Any) -> Tensor:
        return _d("logical_and", self, o)

    def __or__(self, o: Any) -> Tensor:
        return _d("logical_or", self, o)

    def __xor__(self, o: Any) -> Tensor:
        return _d("logical_xor", self, o)

    __rand__ = __and__
    __ror__ = __or__
    __rxor__ = __xor__

    def __eq__(self, o: Any) -> Tensor:  # type: ignore[override]
        return _d("eq", self, o)

    def __ne__(self, o: Any) -> Tensor:  # type: ignore[override]
        return _d("ne", self, o)

    def __lt__(self, o: Any) -> Tensor:
        return _d("lt", self, o)

    def __le__(self, o: Any) -> Tensor:
        return _d("le", self, o)

    def __gt__(self, o: Any) -> Tensor:
        return _d("gt", self, o)

    def __ge__(self, o: Any) -> Tensor:
        return _d("ge", self, o)

    # in-place ----------------------------------------------------------------------
    def _inplace(self, name: str, *args: Any, **attrs: Any) -> Tensor:
        if _grad_state.enabled and (self.requires_grad
                                    or any(a.__class__ is Tensor and a.requires_grad for a in args)):
            if self.requires_grad and self._node is None:
                raise AutogradError(
                    f"a leaf tensor that requires grad cannot be changed in place by '{name}'; "
                    "update it inside `with st.no_grad():` (as optimizers do) or work on a .clone()", op=name)
            old = Tensor._wrap(self._data, self._be)
            old.requires_grad, old._node, old._oidx = self.requires_grad, self._node, self._oidx
            old._ver = [self._ver[0]]
            res = _d(name, old, *args, **attrs)
            self._check_inplace_dtype(name, res)
            if res.dtype is not self.dtype:
                res = res.to(self.dtype)
            self._data = res._data
            self._node, self._oidx, self.requires_grad = res._node, res._oidx, res.requires_grad
            self._ver[0] += 1
            return self
        native = _NATIVE_INPLACE.get(name)
        if native is not None and not attrs and _same_kind(self, args[0]):
            res = _d(native, self, *args)
            if res is not self:  # a native in-place kernel returned the same array
                if res._data is not self._data:
                    self._be.write(self._data, res._data)
            self._ver[0] += 1
            return self
        res = _d(name, self, *args, **attrs)
        self._check_inplace_dtype(name, res)
        self._be.write(self._data, res._data)
        self._ver[0] += 1
        return self

    def _check_inplace_dtype(self, name: str, res: Tensor) -> None:
        if res.dtype.is_floating_point and not self.dtype.is_floating_point:
            raise DTypeError(
                f"in-place '{name}' would turn this {self.dtype.name} tensor into {res.dtype.name}; "
                "use the out-of-place form (x = x + y) or convert x first", op=name)
        if tuple(res.shape) != tuple(self.shape):
            raise ShapeError(
                f"in-place '{name}': the result has shape {tuple(res.shape)} but the tensor has shape "
                f"{tuple(self.shape)}; in-place ops cannot broadcast the tensor being changed",
                op=name, shapes=(tuple(self.shape), tuple(res.shape)))

    def __iadd__(self, o: Any) -> Tensor:
        return self._inplace("add", o)

    def __isub__(self, o: Any) -> Tensor:
        return self._inplace("sub", o)

    def __imul__(self, o: Any) -> Tensor:
        return self._inplace("mul", o)

    def __itruediv__(self, o: Any) -> Tensor:
        return self._inplace("div", o)

    def __ipow__(self, o: Any) -> Tensor:
        return self._inplace("pow", o)

    def add_(self, o: Any, alpha: Any = None) -> Tensor:
        return self._inplace("add", o if alpha is None else o * alpha)

    def sub_(self, o: Any, alpha: Any = None) -> Tensor:
        return self._inplace("sub", o if alpha is None else o * alpha)

    def mul_(self, o: Any) -> Tensor:
        return self._inplace("mul", o)

    def div_(self, o: Any) -> Tensor:
        return self._inplace("div", o)

    def clamp_(self, min: Any = None, max: Any = None) -> Tensor:
        return self._inplace("clamp", min=min, max=max)

    def zero_(self) -> Tensor:
        return self.fill_(0)

    def fill_(self, value: Any) -> Tensor:
        if isinstance(value, Tensor):
            value = value.item()
        with _no_grad_if_leaf(self):
            self._be.write(self._data, value)
        self._ver[0] += 1
        return self

    def copy_(self, src: Any) -> Tensor:
        """Copy ``src`` (broadcast to this shape, converted to this dtype and device) into self."""
        src = _as_tensor_like(src, self)
        if src.device != self.device:
            src = src.to(self.device)
        if _grad_state.enabled and (self.requires_grad or src.requires_grad):
            return self._inplace("index_put", src.expand(self.shape).to(self.dtype), key=(Ellipsis,))
        src = src.expand(self.shape).to(self.dtype)
        self._be.write(self._data, src._data)
        self._ver[0] += 1
        return self

    # ---- elementwise methods ------------------------------------------------------
    def abs(self) -> Tensor:
        return _d("abs", self)

    def neg(self) -> Tensor:
        return _d("neg", self)

    def sign(self) -> Tensor:
        return _d("sign", self)

    def exp(self) -> Tensor:
        return _d("exp", self)

    def log(self) -> Tensor:
        return _d("log", self)

    def log1p(self) -> Tensor:
        return _d("log1p", self)

    def expm1(self) -> Tensor:
        return _d("expm1", self)

    def sqrt(self) -> Tensor:
        return _d("sqrt", self)

    def rsqrt(self) -> Tensor:
        return _d("rsqrt", self)

    def sin(self) -> Tensor:
        return _d("sin", self)

    def cos(self) -> Tensor:
        return _d("cos", self)

    def tanh(self) -> Tensor:
        return _d("tanh", self)

    def sigmoid(self) -> Tensor:
        return _d("sigmoid", self)

    def erf(self) -> Tensor:
        return _d("erf", self)

    def floor(self) -> Tensor:
        return _d("floor", self)

    def ceil(self) -> Tensor:
        return _d("ceil", self)

    def round(self) -> Tensor:
        return _d("round", self)

    def relu(self) -> Tensor:
        return _d("relu", self)

    def square(self) -> Tensor:
        return _d("mul", self, self)

    def reciprocal(self) -> Tensor:
        return _d("div", 1.0, self)

    def logical_not(self) -> Tensor:
        return _d("logical_not", self)

    def logical_and(self, o: Any) -> Tensor:
        return _d("logical_and", self, o)

    def logical_or(self, o: Any) -> Tensor:
        return _d("logical_or", self, o)

    def clamp(self, min: Any = None, max: Any = None) -> Tensor:
        if isinstance(min, Tensor) or isinstance(max, Tensor):
            out = self
            if min is not None:
                out = _d("maximum", out, min)
            if max is not None:
                out = _d("minimum", out, max)
            return out
        return _d("clamp", self, min=min, max=max)

    clip = clamp

    def pow(self, o: Any) -> Tensor:
        return _d("pow", self, o)

    def add(self, o: Any, alpha: Any = None) -> Tensor:
        return _d("add", self, o if alpha is None else o * alpha)

    def sub(self, o: Any, alpha: Any = None) -> Tensor:
        return _d("sub", self, o if alpha is None else o * alpha)

    def mul(self, o: Any) -> Tensor:
        return _d("mul", self, o)

    def div(self, o: Any) -> Tensor:
        return _d("div", self, o)

    def maximum(self, o: Any) -> Tensor:
        return _d("maximum", self, o)

    def minimum(self, o: Any) -> Tensor:
        return _d("minimum", self, o)

    def eq(self, o: Any) -> Tensor:
        return _d("eq", self, o)

    def ne(self, o: Any) -> Tensor:
        return _d("ne", self, o)

    def lt(self, o: Any) -> Tensor:
        return _d("lt", self, o)

    def le(self, o: Any) -> Tensor:
        return _d("le", self, o)

    def gt(self, o: Any) -> Tensor:
        return _d("gt", self, o)

    def ge(self, o: Any) -> Tensor:
        return _d("ge", self, o)

    def where(self, condition: Any, other: Any) -> Tensor:
        """``condition ? self : other`` (PyTorch's ``Tensor.where``)."""
        return _d("where", _as_tensor_like(condition, self), self, other)

    def masked_fill(self, mask: Any, value: Any) -> Tensor:
        return _d("where", _as_tensor_like(mask, self), value, self)

    def softmax(self, dim: builtins.int) -> Tensor:
        return _d("softmax", self, dim=_one_dim(dim, self.ndim))

    def log_softmax(self, dim: builtins.int) -> Tensor:
        return _d("log_softmax", self, dim=_one_dim(dim, self.ndim))

    # ---- reductions ---------------------------------------------------------------
    def sum(self, dim: Any = None, keepdim: builtins.bool = False, dtype: Any = None) -> Tensor:
        x = self if dtype is None else self.to(dtype)
        return _d("sum", x, dim=_dim_attr(dim), keepdim=keepdim)

    def mean(self, dim: Any = None, keepdim: builtins.bool = False) -> Tensor:
        return _d("mean", self, dim=_dim_attr(dim), keepdim=keepdim)

    def prod(self, dim: Any = None, keepdim: builtins.bool = False) -> Tensor:
        return _d("prod", self, dim=_dim_attr(dim), keepdim=keepdim)

    def var(self, dim: Any = None, unbiased: builtins.bool | None = None, keepdim: builtins.bool = False, *,
            correction: builtins.int | None = None) -> Tensor:
        corr = correction if correction is not None else (0 if unbiased is False else 1)
        x = self if self.dtype.is_floating_point else self.float()
        d = _dim_attr(dim)
        mu = x.mean(dim=d, keepdim=True)
        diff = x - mu
        n = self.numel() if d is None else math.prod(self.shape[i] for i in normalize_dims(d, self.ndim))
        return (diff * diff).sum(dim=d, keepdim=keepdim) / builtins.max(n - corr, 0)

    def std(self, dim: Any = None, unbiased: builtins.bool | None = None, keepdim: builtins.bool = False, *,
            correction: builtins.int | None = None) -> Tensor:
        return self.var(dim, unbiased, keepdim, correction=correction).sqrt()

    def amax(self, dim: Any = None, keepdim: builtins.bool = False) -> Tensor:
        return _d("amax", self, dim=_dim_attr(dim), keepdim=keepdim)

    def amin(self, dim: Any = None, keepdim: builtins.bool = False) -> Tensor:
        return _d("amin", self, dim=_dim_attr(dim), keepdim=keepdim)

    def max(self, dim: Any = None, keepdim: builtins.bool = False) -> Any:
        """The largest value; with ``dim``, ``(values, indices)`` along it. ``max(other)`` is maximum."""
        if isinstance(dim, Tensor):
            return _d("maximum", self, dim)
        if dim is None:
            return _d("amax", self, dim=None, keepdim=False)
        return self._extreme_along("argmax", dim, keepdim)

    def min(self, dim: Any = None, keepdim: builtins.bool = False) -> Any:
        if isinstance(dim, Tensor):
            return _d("minimum", self, dim)
        if dim is None:
            return _d("amin", self, dim=None, keepdim=False)
        return self._extreme_along("argmin", dim, keepdim)

    def _extreme_along(self, arg: str, dim: Any, keepdim: builtins.bool) -> ValuesIndices:
        """``(values, indices)`` of ``max(dim)``/``min(dim)``: the values gathered at the indices.

        As in torch, the gradient goes to the element each index names, where ``amax`` and
        ``amin`` split it between tied elements.
        """
        if not self.ndim:  # a 0-d tensor is its own extreme, at index 0 (dim 0 or -1, as in torch)
            if dim not in (0, -1):
                raise IndexError(f"{arg[3:]}(dim={dim!r}) of a 0-d tensor: dim must be 0 or -1")
            return ValuesIndices(_d("amax" if arg == "argmax" else "amin", self, dim=None, keepdim=False),
                                 _d(arg, self, dim=None, keepdim=False))
        d = _one_dim(dim, self.ndim)
        idx = _d(arg, self, dim=d, keepdim=True)
        vals = _d("gather", self, idx, dim=d)
        if keepdim:
            return ValuesIndices(vals, idx)
        return ValuesIndices(vals.squeeze(d), idx.squeeze(d))

    def argmax(self, dim: builtins.int | None = None, keepdim: builtins.bool = False) -> Tensor:
        return _d("argmax", self, dim=dim, keepdim=keepdim)

    def argmin(self, dim: builtins.int | None = None, keepdim: builtins.bool = False) -> Tensor:
        return _d("argmin", self, dim=dim, keepdim=keepdim)

    def logsumexp(self, dim: Any, keepdim: builtins.bool = False) -> Tensor:
        d = _dim_attr(dim)
        if self.numel() == 0:  # log of an empty sum: -inf, as in torch (the sum keeps the graph and the shape)
            out = self.sum(dim=d, keepdim=True) - math.inf
        else:
            m = self.amax(dim=d, keepdim=True).detach()
            m = _d("where", m.abs() == math.inf, 0.0, m)
            out = (self - m).exp().sum(dim=d, keepdim=True).log() + m
        if not keepdim:
            out = out.squeeze(d)
        return out

    def cumsum(self, dim: builtins.int) -> Tensor:
        return _d("cumsum", self, dim=_one_dim(dim, self.ndim))

    def all(self, dim: Any = None, keepdim: builtins.bool = False) -> Tensor:
        return _d("amin", self.bool(), dim=_dim_attr(dim), keepdim=keepdim) if self.numel() else _full_like_scalar(self, True)

    def any(self, dim: Any = None, keepdim: builtins.bool = False) -> Tensor:
        return _d("amax", self.bool(), dim=_dim_attr(dim), keepdim=keepdim) if self.numel() else _full_like_scalar(self, False)

    def norm(self, p: Any = 2, dim: Any = None, keepdim: builtins.bool = False) -> Tensor:
        if p == 2:
            return (self * self).sum(dim=_dim_attr(dim), keepdim=keepdim).sqrt()
        if p == 1:
            return self.abs().sum(dim=_dim_attr(dim), keepdim=keepdim)
        if p in (math.inf, "inf"):
            return self.abs().amax(dim=_dim_attr(dim), keepdim=keepdim)
        return (self.abs() ** p).sum(dim=_dim_attr(dim), keepdim=keepdim) ** (1.0 / p)

    # ---- linear algebra -----------------------------------------------------------
    def matmul(self, o: Any) -> Tensor:
        return _d("matmul", self, _as_tensor_like(o, self))

    # ---- layout -----------------------------------------------------------------------
    def reshape(self, *shape: Any) -> Tensor:
        new = _infer_shape(_dims_arg(shape), self.numel(), self.shape)
        if new == self.shape:
            return self
        return _d("reshape", self, shape=new)

    view = reshape

    def view_as(self, other: Tensor) -> Tensor:
        return self.reshape(other.shape)

    def reshape_as(self, other: Tensor) -> Tensor:
        return self.reshape(other.shape)

    def flatten(self, start_dim: builtins.int = 0, end_dim: builtins.int = -1) -> Tensor:
        shape = self.shape
        if not shape:
            return self.reshape(1)
        s = start_dim % len(shape)
        e = end_dim % len(shape)
        return self.reshape(*shape[:s], math.prod(shape[s:e + 1]), *shape[e + 1:])

    def unflatten(self, dim: builtins.int, sizes: Sequence[builtins.int]) -> Tensor:
        shape = self.shape
        d = dim % len(shape)
        return self.reshape(*shape[:d], *sizes, *shape[d + 1:])

    def permute(self, *dims: Any) -> Tensor:
        dims = _dims_arg(dims)
        nd = self.ndim
        if len(dims) != nd or sorted(d % builtins.max(nd, 1) for d in dims) != list(range(nd)):
            raise ShapeError(f"permute: dims {dims} are not a permutation of the {nd} dimensions of shape {self.shape}",
                             op="permute", shapes=(self.shape,))
        dims = tuple(d % nd for d in dims)
        if dims == tuple(range(nd)):
            return self
        return _d("permute", self, dims=dims)

    def transpose(self, dim0: builtins.int, dim1: builtins.int) -> Tensor:
        nd = self.ndim
        if nd < 2 and dim0 in (0, -1) and dim1 in (0, -1):
            return self
        d0, d1 = _one_dim(dim0, nd), _one_dim(dim1, nd)
        dims = list(range(nd))
        dims[d0], dims[d1] = dims[d1], dims[d0]
        return self.permute(*dims)

    def t(self) -> Tensor:
        return self.transpose(0, 1) if self.ndim == 2 else self

    def squeeze(self, dim: Any = None) -> Tensor:
        shape = self.shape
        if dim is None:
            new = tuple(s for s in shape if s != 1)
        else:
            dims = normalize_dims(dim, len(shape)) if shape else ()
            new = tuple(s for i, s in enumerate(shape) if not (i in dims and s == 1))
        return self.reshape(new) if new != shape else self

    def unsqueeze(self, dim: builtins.int) -> Tensor:
        shape = self.shape
        d = dim if dim >= 0 else dim + len(shape) + 1
        if not 0 <= d <= len(shape):
            raise ShapeError(f"unsqueeze: dim {dim} is out of range for shape {shape}", op="unsqueeze", shapes=(shape,))
        return _d("reshape", self, shape=shape[:d] + (1,) + shape[d:])

    def expand(self, *shape: Any) -> Tensor:
        shape = _dims_arg(shape)
        cur = self.shape
        if len(shape) < len(cur):
            raise ShapeError(f"expand: cannot expand shape {cur} to fewer dimensions {shape}", op="expand", shapes=(cur, shape))
        lead = len(shape) - len(cur)
        new = tuple(cur[i - lead] if (s == -1 and i >= lead) else s for i, s in enumerate(shape))
        for i, c in enumerate(cur):
            if c != 1 and c != new[i + lead]:
                raise ShapeError(f"expand: size {c} at dimension {i} of shape {cur} cannot become {new[i + lead]} "
                                 f"(only size-1 dimensions expand); target {shape}", op="expand", shapes=(cur, shape))
        if new == cur:
            return self
        return _d("expand", self, shape=new)

    def expand_as(self, other: Tensor) -> Tensor:
        return self.expand(other.shape)

    def broadcast_to(self, shape: Sequence[builtins.int]) -> Tensor:
        return self.expand(tuple(shape))

    def flip(self, dims: Any) -> Tensor:
        return _d("flip", self, dims=normalize_dims(dims, self.ndim))

    def repeat(self, *sizes: Any) -> Tensor:
        sizes = _dims_arg(sizes)
        x = self.reshape((1,) * (len(sizes) - self.ndim) + self.shape)
        # interleave a size-1 axis in front of each dim, expand it, then merge
        shape = x.shape
        y = x.reshape(tuple(v for s in shape for v in (1, s)))
        y = y.expand(tuple(v for r, s in zip(sizes, shape, strict=True) for v in (r, s)))
        return y.reshape(tuple(r * s for r, s in zip(sizes, shape, strict=True)))

    def split(self, split_size: Any, dim: builtins.int = 0) -> tuple[Tensor, ...]:
        d = _one_dim(dim, self.ndim)
        n = self.shape[d]
        if isinstance(split_size, int):
            if split_size <= 0:
                raise ShapeError(f"split: split_size must be positive; got {split_size}", op="split")
            sizes = [builtins.min(split_size, n - i) for i in range(0, n, split_size)] or [0]
        else:
            sizes = list(split_size)
            if sum(sizes) != n:
                raise ShapeError(f"split: sizes {sizes} add up to {sum(sizes)} but dimension {dim} has size {n}",
                                 op="split", shapes=(self.shape,))
        out = []
        start = 0
        for s in sizes:
            out.append(self[(slice(None),) * d + (slice(start, start + s),)])
            start += s
        return tuple(out)

    def chunk(self, chunks: builtins.int, dim: builtins.int = 0) -> tuple[Tensor, ...]:
        n = self.shape[_one_dim(dim, self.ndim)]
        return self.split(builtins.max(1, -(-n // chunks)), dim)

    def unbind(self, dim: builtins.int = 0) -> tuple[Tensor, ...]:
        d = _one_dim(dim, self.ndim)
        return tuple(self[(slice(None),) * d + (i,)] for i in range(self.shape[d]))

    # ---- indexing -----------------------------------------------------------------
    def __getitem__(self, key: Any) -> Tensor:
        nkey = _native_key(key, self)
        out = _d("getitem", self, key=nkey)
        if not _is_basic(nkey):
            # advanced indexing copies (as in torch): later in-place changes of self do not reach it
            out._ver = [0]
        return out

    def __setitem__(self, key: Any, value: Any) -> None:
        nkey = _native_key(key, self)
        if isinstance(value, Tensor):
            if value.device != self.device:
                raise _registry.DeviceError(
                    f"setitem: the value is on {value.device} but the tensor is on {self.device}; move it with .to('{self.device}')",
                    op="setitem", devices=(str(self.device), str(value.device)))
            if value.dtype is not self.dtype:
                value = value.to(self.dtype)
        elif not isinstance(value, builtins.int | builtins.float | builtins.bool):
            value = _as_tensor_like(value, self).to(self.dtype)
        self._inplace("index_put", value, key=nkey)

    def gather(self, dim: builtins.int, index: Tensor) -> Tensor:
        return _d("gather", self, index, dim=_one_dim(dim, self.ndim))

    def index_select(self, dim: builtins.int, index: Tensor) -> Tensor:
        d = _one_dim(dim, self.ndim)
        return self[(slice(None),) * d + (index,)]

    def nonzero(self) -> Tensor:
        from .ops import creation

        idx = np.argwhere(self.numpy())
        return creation.tensor(idx, dtype=self._be.default_int, device=self.device)


# ---------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------

_NATIVE_INPLACE = {"add": "add_", "sub": "sub_", "mul": "mul_", "div": "div_"}


def _same_kind(t: Tensor, other: Any) -> builtins.bool:
    """Whether ``t op= other`` can run in place without any dtype change."""
    mine = t._data.dtype  # NumPy/CuPy dtypes, or the wgpu storage's DType
    if other.__class__ is Tensor:
        theirs = other._data.dtype
        return theirs is mine or theirs == mine
    kind = mine.kind
    if other.__class__ is builtins.float:
        return kind == "f"
    if other.__class__ is builtins.int:
        return kind != "b"
    return False


class _no_grad_if_leaf:
    def __init__(self, t: Tensor) -> None:
        self.t = t

    def __enter__(self) -> None:
        if self.t.requires_grad and self.t._node is None and _grad_state.enabled:
            raise AutogradError("a leaf tensor that requires grad cannot be filled in place; "
                                "do it inside `with st.no_grad():`", op="fill_")

    def __exit__(self, *exc: object) -> None:
        return None


def _is_dtype_name(s: str) -> bool:
    try:
        get_dtype(s)
        return True
    except DTypeError:
        return False


def _one_dim(dim: int, ndim: int) -> int:
    return normalize_dims(dim, ndim)[0]


def _dim_attr(dim: Any) -> Any:
    if dim is None or isinstance(dim, int):
        return dim
    return tuple(dim)


def _infer_shape(shape: tuple, numel: int, cur: tuple) -> tuple[int, ...]:
    shape = tuple(builtins.int(s) for s in shape)
    if shape.count(-1) > 1:
        raise ShapeError(f"reshape: only one dimension can be -1; got {shape}", op="reshape", shapes=(cur, shape))
    if -1 in shape:
        rest = math.prod(s for s in shape if s != -1)
        if rest == 0 or numel % rest:
            raise ShapeError(f"reshape: cannot reshape a tensor of shape {cur} ({numel} elements) into {shape}",
                             op="reshape", shapes=(cur, shape))
        shape = tuple(numel // rest if s == -1 else s for s in shape)
    if math.prod(shape) != numel:
        raise ShapeError(f"reshape: cannot reshape a tensor of shape {cur} ({numel} elements) into {shape} "
                         f"({math.prod(shape)} elements)", op="reshape", shapes=(cur, shape))
    return shape


def _as_tensor_like(x: Any, like: Tensor) -> Tensor:
    if isinstance(x, Tensor):
        return x
    from .ops import creation

    return creation.tensor(x, device=like.device)


def _full_like_scalar(like: Tensor, value: Any) -> Tensor:
    from .ops import creation

    return creation.tensor(value, device=like.device)


def _native_key(key: Any, x: Tensor) -> Any:
    """Turn an index key into native form: Tensor and list indices become backend arrays."""
    if not isinstance(key, tuple):
        key = (key,)
    out = []
    be = x._be
    for k in key:
        if isinstance(k, Tensor):
            if k.device != x.device:
                raise _registry.DeviceError(
                    f"getitem: the index is on {k.device} but the tensor is on {x.device}; move the index with .to('{x.device}')",
                    op="getitem", devices=(str(x.device), str(k.device)))
            if k.dtype.is_floating_point:
                raise DTypeError(f"tensors used as indices must be integer or bool; got {k.dtype.name}", op="getitem")
            out.append(k._data)
        elif isinstance(k, list | np.ndarray):
            arr = np.asarray(k)
            if arr.dtype.kind == "f":
                raise DTypeError("indices must be integers, slices, None, Ellipsis or bool/integer tensors; got floats", op="getitem")
            # indices in the backend's own integer type (int32 on wgpu)
            out.append(be.from_numpy(arr.astype(be.default_int.np) if arr.dtype.kind in "iu" else arr))
        elif k is None or k is Ellipsis or isinstance(k, slice | builtins.int | np.integer):
            out.append(builtins.int(k) if isinstance(k, np.integer) else k)
        else:
            raise DTypeError(f"unsupported index {k!r} of type {type(k).__name__}: use ints, slices, None, "
                             "Ellipsis, or bool/integer tensors", op="getitem")
    return tuple(out)


def _move(t: Tensor, dev: Device) -> Tensor:
    """Copy to another device through the host; recorded on the tape so gradients flow back."""
    from .backends import get_backend

    target = get_backend(dev)
    res = Tensor._wrap(target.from_numpy(np.ascontiguousarray(t._be.to_numpy(t._data))), target)
    if t.requires_grad and _grad_state.enabled:
        _tape.Node(_TO_DEVICE, (t,), {"device": str(dev)}, (res,))
    return res


def _to_device_bwd(i: Any, o: Any, g: Any, device: str) -> Any:
    return (g[0].to(i[0].device),)


_TO_DEVICE = _registry.global_operator_registry().register(
    _registry.Operator("to_device", 1, backward=_to_device_bwd, saves_inputs=False, builtin=True,
                       metadata={"description": "copy to another device (host round trip)"}),
    replace=True)
_registry._Tensor = Tensor
_registry._Node = _tape.Node
_tape._Tensor = Tensor
