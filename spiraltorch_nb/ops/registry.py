"""The operator registry and the one dispatch path every operation takes.

``Tensor.__add__`` -> ``dispatch("add", a, b)`` -> the registry looks the operator up,
checks devices, applies dtype promotion, runs the forward registered for the inputs'
backend, records a tape node when an input requires grad, and tells the telemetry
observer (one branch when none is active). Built-in and user operators share this path.

An operator's backend forward receives that backend's native arrays (and Python
scalars as they were given) plus keyword attributes, and returns native arrays. Its
backward ``backward(inputs, outputs, grad_outputs, **attrs)`` receives and returns
Tensors, one gradient (or None) per input, so it is itself differentiable.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, NoReturn

from ..autograd.grad_mode import state as _grad_state
from ..dtypes import DType, default_float, int64, promote_types, scalar_dtype
from ..errors import DeviceError, DTypeError, OperatorError, ShapeError, SpiralTorchError

__all__ = [
    "Operator",
    "OperatorBuilder",
    "OperatorRegistry",
    "global_operator_registry",
    "dispatch",
    "register_op",
    "custom_op",
    "set_dispatch_observer",
    "get_dispatch_observer",
]

_perf_ns = time.perf_counter_ns

#: dtype rules an operator can declare; see ``_promote``
DTYPE_RULES = (None, "promote", "promote_float", "float", "compare", "where")

# Set by tensor.py once the Tensor class exists (avoids an import cycle on the hot path).
_Tensor: Any = None
_Node: Any = None
_observer: Any = None


class Operator:
    """A named operation: per-backend forwards, an optional backward and metadata.

    Call it like a function on Tensors: ``op(a, b, **attrs)`` is ``dispatch(op.name, a, b, **attrs)``.
    """

    __slots__ = (
        "name", "num_inputs", "num_outputs", "forwards", "backward", "composite",
        "dtype_rule", "differentiable", "view", "saves_inputs", "saves_output",
        "metadata", "builtin", "__weakref__",
    )

    def __init__(
        self,
        name: str,
        num_inputs: int = 1,
        num_outputs: int = 1,
        *,
        forwards: dict[str, Callable[..., Any]] | None = None,
        backward: Callable[..., Any] | None = None,
        composite: Callable[..., Any] | None = None,
        dtype_rule: str | None = None,
        differentiable: bool | None = None,
        view: bool = False,
        saves_inputs: bool = True,
        saves_output: bool = False,
        metadata: dict[str, Any] | None = None,
        builtin: bool = False,
    ) -> None:
        if not isinstance(name, str) or not name.isidentifier():
            raise OperatorError(f"an operator name must be a Python identifier like 'my_op'; got {name!r}")
        if dtype_rule not in DTYPE_RULES:
            raise OperatorError(f"operator '{name}': dtype_rule must be one of {DTYPE_RULES}; got {dtype_rule!r}", op=name)
        if num_outputs < 1:
            raise OperatorError(f"operator '{name}': num_outputs must be >= 1; got {num_outputs}", op=name)
        self.name = name
        self.num_inputs = num_inputs  # -1: variadic
        self.num_outputs = num_outputs
        self.forwards: dict[str, Callable[..., Any]] = dict(forwards or {})
        self.backward = backward
        self.composite = composite
        self.dtype_rule = dtype_rule
        # True: has a backward; False: not differentiable (outputs never require grad);
        # None: differentiable in principle but no backward registered (error at backward)
        self.differentiable = (backward is not None or None) if differentiable is None else differentiable
        self.view = view
        self.saves_inputs = saves_inputs
        self.saves_output = saves_output
        self.metadata: dict[str, Any] = dict(metadata or {})
        self.builtin = builtin

    @property
    def backends(self) -> list[str]:
        """Backends with a native forward (composite ops run on every backend)."""
        return sorted(self.forwards)

    def supports(self, backend: str) -> bool:
        return backend in self.forwards or self.composite is not None

    def __call__(self, *args: Any, **attrs: Any) -> Any:
        return _apply(self, args, attrs)

    def __repr__(self) -> str:
        kinds = ", ".join(self.backends) or ("composite" if self.composite else "none")
        return f"<Operator {self.name} inputs={self.num_inputs} outputs={self.num_outputs} backends=[{kinds}]>"


class OperatorRegistry:
    """Operators by name, with discovery by backend.

    >>> reg = global_operator_registry()
    >>> "add" in reg and reg.get("matmul").name
    'matmul'
    """

    def __init__(self) -> None:
        self._ops: dict[str, Operator] = {}
        self._backend_kernels: dict[str, dict[str, Callable[..., Any]]] = {}
        self._lock = threading.RLock()

    def register(self, op: Operator, replace: bool = False) -> Operator:
        """Add an operator; with ``replace=True`` an existing one of that name is swapped out.

        Safe to repeat in a re-run notebook cell with ``replace=True``. When a plugin is
        loading, the registration is undone if the plugin's load fails or it unloads.
        """
        if not isinstance(op, Operator):
            raise OperatorError(f"register() takes an Operator (build one with OperatorBuilder); got {type(op).__name__}")
        with self._lock:
            old = self._ops.get(op.name)
            if old is not None and not replace:
                raise OperatorError(
                    f"an operator named '{op.name}' is already registered; pass replace=True to swap it, "
                    f"or choose another name", op=op.name)
            if old is not None and old.builtin and not op.builtin:
                raise OperatorError(
                    f"'{op.name}' is a built-in operator and cannot be replaced by a custom one; "
                    f"choose another name (e.g. 'my_{op.name}')", op=op.name)
            for be_name, kernels in self._backend_kernels.items():
                fwd = kernels.get(op.name)
                if fwd is not None and be_name not in op.forwards:
                    op.forwards[be_name] = fwd
            self._ops[op.name] = op
        undo = _current_undo_log()
        if undo is not None:
            if old is None:
                undo(lambda: self._remove_if(op))
            else:
                undo(lambda: self._restore(op, old))
        return op

    def _remove_if(self, op: Operator) -> None:
        with self._lock:
            if self._ops.get(op.name) is op:
                del self._ops[op.name]

    def _restore(self, op: Operator, old: Operator) -> None:
        with self._lock:
            if self._ops.get(op.name) is op:
                self._ops[op.name] = old

    def unregister(self, name: str) -> Operator:
        """Remove an operator and return it (built-in operators cannot be removed).

        When a plugin is loading, the operator comes back if the plugin's load fails or it
        unloads (unless another operator took the name since).
        """
        with self._lock:
            op = self._ops.get(name)
            if op is None:
                raise self._unknown(name)
            if op.builtin:
                raise OperatorError(f"'{name}' is a built-in operator; only custom operators can be unregistered",
                                    op=name)
            del self._ops[name]
        undo = _current_undo_log()
        if undo is not None:
            def put_back() -> None:
                with self._lock:
                    self._ops.setdefault(name, op)

            undo(put_back)
        return op

    def get(self, name: str) -> Operator:
        op = self._ops.get(name)
        if op is None:
            raise self._unknown(name)
        return op

    def _unknown(self, name: str) -> OperatorError:
        import difflib

        close = difflib.get_close_matches(name, list(self._ops), n=3)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        return OperatorError(f"no operator named '{name}' is registered{hint}", op=name)

    def __contains__(self, name: object) -> bool:
        return name in self._ops

    def __len__(self) -> int:
        return len(self._ops)

    def __iter__(self) -> Iterable[Operator]:
        return iter(list(self._ops.values()))

    def list(self, backend: str | None = None) -> list[str]:
        """Operator names, optionally only those that run on ``backend`` (natively or composed)."""
        ops: Iterable[Operator] = self._ops.values()
        if backend is not None:
            from ..backends import BACKEND_MODULES, get_backend, probe

            if backend not in BACKEND_MODULES:
                raise OperatorError(f"unknown backend {backend!r}; expected one of {', '.join(BACKEND_MODULES)}")
            if probe(backend)["available"]:
                get_backend(backend)  # kernels install on first use
            ops = [op for op in ops if op.supports(backend)]
        return sorted(op.name for op in ops)

    def _install_backend(self, backend: Any) -> None:
        """Register a backend's kernels into the operators (called once per backend type)."""
        with self._lock:
            if backend.name in self._backend_kernels:
                return
            kernels = backend.kernels()
            self._backend_kernels[backend.name] = kernels
            for name, fwd in kernels.items():
                op = self._ops.get(name)
                if op is not None and backend.name not in op.forwards:
                    op.forwards[backend.name] = fwd


_registry = OperatorRegistry()


def global_operator_registry() -> OperatorRegistry:
    """The process-wide registry holding every built-in and user operator."""
    return _registry


def _current_undo_log() -> Callable[[Callable[[], None]], None] | None:
    try:
        from ..plugins.context import current_loading_context
    except ImportError:
        return None
    return current_loading_context()


def register_op(op: Operator, replace: bool = False) -> Operator:
    """Register ``op`` in the global registry (see :meth:`OperatorRegistry.register`)."""
    return _registry.register(op, replace=replace)


def dispatch(name: str, *args: Any, **attrs: Any) -> Any:
    """Run operator ``name`` on ``args`` (Tensors and scalars) with keyword attributes.

    >>> import spiraltorch_nb as st
    >>> st.ops.dispatch("add", st.tensor([1.0, 2.0]), 1.0).tolist()
    [2.0, 3.0]
    """
    op = _registry._ops.get(name)
    if op is None:
        raise _registry._unknown(name)
    return _apply(op, args, attrs)


def set_dispatch_observer(observer: Any) -> Any:
    """Install the object told about every dispatched op (telemetry); returns the previous one.

    The observer's ``on_op(op, backend, args, outputs, start_ns, duration_ns, phase)`` is
    called after each op. ``None`` turns observation off (one branch per op).
    """
    global _observer
    prev, _observer = _observer, observer
    return prev


def get_dispatch_observer() -> Any:
    return _observer


# ---------------------------------------------------------------------------------
# the hot path
# ---------------------------------------------------------------------------------

def _apply(op: Operator, args: tuple, attrs: dict) -> Any:
    T = _Tensor
    n = len(args)
    # fast paths for the common arities (Tensor has no subclasses: a class test suffices)
    if n == 2:
        a, b = args
        if a.__class__ is T:
            be = a._be
            if b.__class__ is T:
                if b._be is not be:
                    _device_mismatch(op, args)
                rg = a.requires_grad or b.requires_grad
            else:
                rg = a.requires_grad
        elif b.__class__ is T:
            be = b._be
            rg = b.requires_grad
        else:
            be, rg = _scan(op, args)
    elif n == 1 and args[0].__class__ is T:
        be = args[0]._be
        rg = args[0].requires_grad
    else:
        be, rg = _scan(op, args)
    if op.dtype_rule is not None:
        args = _promote(op, args)
    fwd = op.forwards.get(be.name)
    if fwd is None:
        if op.composite is not None:
            return op.composite(*args, **attrs)
        _missing_backend(op, be)
    native: tuple[Any, ...] | list[Any]
    if n == 2:
        a, b = args
        native = (a._data if a.__class__ is T else a, b._data if b.__class__ is T else b)
    elif n == 1:
        native = (args[0]._data,)
    else:
        native = [a._data if isinstance(a, T) else a for a in args]
    obs = _observer
    try:
        if obs is None:
            out = fwd(*native, **attrs)
        else:
            t0 = _perf_ns()
            out = fwd(*native, **attrs)
            dt = _perf_ns() - t0
    except SpiralTorchError:
        raise
    except Exception as exc:
        raise _forward_error(op, be, args, exc) from exc
    if op.num_outputs == 1:
        res = T._wrap(out, be)
        if op.view:
            res._ver = args[0]._ver
        if rg and op.differentiable is not False and _grad_state.enabled:
            _Node(op, args, attrs, (res,))
        if obs is not None:
            obs.on_op(op, be, args, (res,), t0, dt, _grad_state.phase)
        return res
    outs = tuple(None if o is None else T._wrap(o, be) for o in out)  # None: an output not asked for
    if rg and op.differentiable is not False and _grad_state.enabled:
        _Node(op, args, attrs, outs)
    if obs is not None:
        obs.on_op(op, be, args, outs, t0, dt, _grad_state.phase)
    return outs


def _scan(op: Operator, args: tuple) -> tuple[Any, bool]:
    """The backend of the tensor arguments (all on one device) and whether any requires grad."""
    T = _Tensor
    be = None
    rg = False
    for a in args:
        if isinstance(a, T):
            if be is None:
                be = a._be
            elif a._be is not be:
                _device_mismatch(op, args)
            if a.requires_grad:
                rg = True
    if be is None:
        raise OperatorError(f"{op.name}() needs at least one Tensor argument; got {_describe_args(args)}", op=op.name)
    return be, rg


def _promote(op: Operator, args: tuple) -> tuple:
    """Cast tensor inputs to the common dtype the op's rule asks for (recorded casts).

    The common case (every tensor of one dtype, scalars of a compatible kind) returns
    at once without building DType objects.
    """
    T = _Tensor
    rule = op.dtype_rule
    first = 1 if rule == "where" else 0
    nd = None
    fast = True
    for a in args[first:]:
        if isinstance(a, T):
            d = a._data.dtype
            if nd is None:
                nd = d
            elif d is not nd:
                fast = False
                break
    if nd is None:  # where(cond, scalar, scalar)
        return args
    if fast:
        kind = nd.kind
        if (rule == "float" or rule == "promote_float") and kind != "f":
            fast = False
        else:
            for a in args[first:]:
                c = a.__class__
                if c is float:
                    if kind != "f":
                        fast = False
                        break
                elif c is int:
                    if kind == "b":
                        fast = False
                        break
        if fast:
            return args
    return _promote_slow(rule, first, args)


def _promote_slow(rule: str | None, first: int, args: tuple) -> tuple:
    T = _Tensor
    common: DType | None = None
    mixed = False
    for a in args[first:]:
        if isinstance(a, T):
            dt = a._be.dtype_of(a._data)
            if common is None:
                common = dt
            elif dt is not common:
                common = promote_types(common, dt)
                mixed = True
    if common is None:
        return args
    tensor_common = common
    for a in args[first:]:
        if not isinstance(a, T) and a is not None:
            if isinstance(a, bool | int | float):
                s = promote_types(common, scalar_dtype(tensor_common, a))
                if s is not common:
                    common = s
                    mixed = True
    if rule == "promote_float" or rule == "float":
        if common.kind != "f":
            common = default_float
            mixed = True
    if common is int64:
        # a backend without 64-bit integers (wgpu) counts in its own integer type instead
        narrow = next(a for a in args[first:] if isinstance(a, T))._be.default_int
        if narrow is not common:
            common = narrow
            mixed = True
    if not mixed:
        return args
    cast = _registry._ops["cast"]
    new = list(args[:first])
    for a in args[first:]:
        if isinstance(a, T) and a._be.dtype_of(a._data) is not common:
            a = _apply(cast, (a,), {"dtype": common})
        new.append(a)
    return tuple(new)


def _describe_args(args: Iterable[Any]) -> str:
    parts = []
    for a in args:
        if _Tensor is not None and isinstance(a, _Tensor):
            parts.append(f"Tensor(shape={tuple(a.shape)}, dtype={a.dtype.name}, device={a.device})")
        else:
            parts.append(type(a).__name__)
    return "(" + ", ".join(parts) + ")"


def _device_mismatch(op: Operator, args: tuple) -> None:
    devs = [str(a.device) for a in args if isinstance(a, _Tensor)]
    uniq = list(dict.fromkeys(devs))
    msg = (f"{op.name}: expected all tensors on one device, got tensors on {' and '.join(uniq)}; "
           f"move them explicitly, e.g. b.to('{uniq[0]}')")
    raise DeviceError(msg, op=op.name, devices=tuple(uniq))


def _missing_backend(op: Operator, be: Any) -> NoReturn:
    has = ", ".join(op.backends) or "none"
    msg = (f"operator '{op.name}' has no implementation for backend '{be.name}' "
           f"(it has: {has}); move the inputs with .to('{op.backends[0] if op.backends else 'cpu'}') "
           f"or register a forward with OperatorBuilder(...).with_backend('{be.name}', fn)")
    raise OperatorError(msg, op=op.name, backend=be.name)


def _forward_error(op: Operator, be: Any, args: tuple, exc: Exception) -> SpiralTorchError:
    shapes = tuple(tuple(a.shape) for a in args if isinstance(a, _Tensor))
    what = f"{op.name} on {be.device} with inputs {_describe_args(args)}"
    if isinstance(exc, ValueError | IndexError):
        if "broadcast" in str(exc):
            shape_txt = " and ".join(str(s) for s in shapes)
            if op.name.endswith("_"):
                fix = "an in-place op cannot broadcast the tensor it changes; use the out-of-place form (x = x + y)"
            else:
                fix = "make each trailing dimension equal or 1, e.g. with .unsqueeze() or .reshape()"
            msg = f"{op.name}: shapes {shape_txt} cannot be broadcast together ({exc}); {fix}"
        elif op.name == "matmul" and len(shapes) == 2:
            msg = (f"matmul: shapes {shapes[0]} and {shapes[1]} do not line up ({exc}); the last dimension of the "
                   "first must equal the second-to-last (or only) dimension of the second: transpose one with .mT "
                   "or reshape it")
        else:
            msg = f"{what}: {exc}"
        err: SpiralTorchError = ShapeError(msg, op=op.name, shapes=shapes)
        if isinstance(exc, IndexError):
            err = _IndexShapeError(msg, op=op.name, shapes=shapes)
        return err
    if isinstance(exc, TypeError):
        if not op.builtin and op.num_inputs >= 0 and len(args) != op.num_inputs:
            msg = (f"{op.name}() takes {op.num_inputs} input(s) but was called with {len(args)}: "
                   f"{_describe_args(args)}; pass keyword attributes by name")
            return OperatorError(msg, op=op.name, backend=be.name)
        return DTypeError(f"{what}: {exc}", op=op.name)
    return OperatorError(f"{what} failed: {type(exc).__name__}: {exc}", op=op.name, backend=be.name)


class _IndexShapeError(ShapeError, IndexError):
    """An index out of range (an IndexError too, so Python iteration protocols work)."""


# ---------------------------------------------------------------------------------
# building operators
# ---------------------------------------------------------------------------------

class OperatorBuilder:
    """Build a custom operator step by step.

    Examples
    --------
    >>> import numpy as np, spiraltorch_nb as st
    >>> square = (st.ops.OperatorBuilder("doc_square", 1, 1)
    ...     .with_backend("cpu", lambda x: np.square(x))
    ...     .with_backward(lambda inputs, outputs, grads: [2 * inputs[0] * grads[0]])
    ...     .build())
    >>> x = st.tensor([3.0], requires_grad=True)
    >>> square(x).backward(st.ones(1)); x.grad.tolist()
    [6.0]
    """

    def __init__(self, name: str, num_inputs: int = 1, num_outputs: int = 1) -> None:
        self._name = name
        self._num_inputs = num_inputs
        self._num_outputs = num_outputs
        self._forwards: dict[str, Callable[..., Any]] = {}
        self._backward: Callable[..., Any] | None = None
        self._metadata: dict[str, Any] = {}
        self._dtype_rule: str | None = None
        self._composite: Callable[..., Any] | None = None

    def with_backend(self, backend: str, forward: Callable[..., Any]) -> OperatorBuilder:
        """Add a forward for ``backend`` ("cpu", "cuda", "wgpu"): native arrays in, native arrays out."""
        if backend not in ("cpu", "cuda", "wgpu"):
            raise OperatorError(f"operator '{self._name}': unknown backend {backend!r}; expected 'cpu', 'cuda' or 'wgpu'", op=self._name)
        if not callable(forward):
            raise OperatorError(f"operator '{self._name}': the forward for {backend} must be callable; got {type(forward).__name__}", op=self._name)
        self._forwards[backend] = forward
        return self

    def with_composite(self, fn: Callable[..., Any]) -> OperatorBuilder:
        """A forward written with Tensor operations: runs on every backend, differentiated automatically."""
        self._composite = fn
        return self

    def with_backward(self, backward: Callable[..., Any]) -> OperatorBuilder:
        """``backward(inputs, outputs, grad_outputs) -> one Tensor (or None) per input``."""
        if not callable(backward):
            raise OperatorError(f"operator '{self._name}': backward must be callable", op=self._name)
        self._backward = backward
        return self

    def with_metadata(self, **metadata: Any) -> OperatorBuilder:
        """Free-form metadata (description, category, ...); ``dtype_rule`` is understood."""
        rule = metadata.pop("dtype_rule", None)
        if rule is not None:
            self._dtype_rule = rule
        self._metadata.update(metadata)
        return self

    def build(self, register: bool = True, replace: bool = True) -> Operator:
        """Make the Operator and (by default) register it globally, replacing one of the same name.

        ``replace=True`` by default so that re-running a notebook cell is safe; a builtin
        operator is never replaced silently.
        """
        if not self._forwards and self._composite is None:
            raise OperatorError(f"operator '{self._name}' has no forward: call .with_backend('cpu', fn) first", op=self._name)
        op = Operator(
            self._name, self._num_inputs, self._num_outputs, forwards=self._forwards,
            backward=self._backward, composite=self._composite, dtype_rule=self._dtype_rule,
            saves_output=True, metadata=self._metadata,
        )
        if register:
            existing = _registry._ops.get(op.name)
            if existing is not None and existing.builtin:
                raise OperatorError(f"'{op.name}' is a built-in operator; choose another name for a custom op", op=op.name)
            _registry.register(op, replace=replace)
        return op


def custom_op(
    name: str | None = None,
    *,
    backend: str = "cpu",
    backward: Callable[..., Any] | None = None,
    num_inputs: int | None = None,
    **metadata: Any,
) -> Callable[[Callable[..., Any]], Operator]:
    """Decorator: turn a native forward into a registered operator.

    >>> import numpy as np, spiraltorch_nb as st
    >>> @st.ops.custom_op(backward=lambda i, o, g: [g[0] * np.pi])
    ... def doc_scale_pi(x):
    ...     return x * np.pi
    >>> round(doc_scale_pi(st.tensor([1.0])).item(), 4)
    3.1416
    """
    import inspect

    def wrap(fn: Callable[..., Any]) -> Operator:
        n = num_inputs
        if n is None:
            params = [p for p in inspect.signature(fn).parameters.values()
                      if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty]
            n = len(params)
        b = OperatorBuilder(name or fn.__name__, n, 1).with_backend(backend, fn)
        if backward is not None:
            b.with_backward(backward)
        if metadata:
            b.with_metadata(**metadata)
        b._metadata.setdefault("description", (fn.__doc__ or "").strip().split("\n")[0])
        return b.build()

    return wrap


def _op(name: str, num_inputs: int = 1, **kw: Any) -> Operator:
    """Register a built-in operator (used by the ops modules)."""
    op = Operator(name, num_inputs, builtin=True, **kw)
    return _registry.register(op, replace=True)

