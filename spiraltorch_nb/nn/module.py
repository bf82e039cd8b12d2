"""``Module``: the base class of every layer, with PyTorch's registration-by-assignment API.

Assigning a parameter (``st.nn.Parameter(...)``, or any leaf tensor that requires
grad) or a submodule to an attribute registers it; ``register_buffer`` adds state
that is saved but not trained (BatchNorm's running statistics). From there the
module walks its tree for ``parameters()``, ``state_dict()``, ``to(device)``,
``train()``/``eval()`` and ``zero_grad()``.

>>> import spiraltorch_nb as st
>>> class Affine(st.nn.Module):
...     def __init__(self):
...         super().__init__()
...         self.scale = st.nn.Parameter(st.ones(3))
...         self.register_buffer("calls", st.zeros((), dtype="int64"))
...     def forward(self, x):
...         return x * self.scale
>>> m = Affine()
>>> [name for name, _ in m.named_parameters()], list(m.state_dict())
(['scale'], ['scale', 'calls'])
"""

from __future__ import annotations

import html
import itertools
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from ..autograd.grad_mode import no_grad
from ..device import Device
from ..dtypes import DType, get_dtype
from ..errors import DTypeError, SpiralTorchError
from ..tensor import Tensor
from ._state import IncompatibleKeys, StateDictError, as_array_or_tensor, compare_state, to_device
from .parameter import is_parameter, mark_parameter

__all__ = ["Module", "ModuleError", "HookHandle", "StateDictError", "IncompatibleKeys"]


class ModuleError(SpiralTorchError, TypeError):
    """A module used or built the wrong way (a bad attribute, a missing ``super().__init__()``...)."""


class HookHandle:
    """Returned by ``register_forward_hook`` and friends: ``.remove()`` takes the hook off.

    Also a context manager, so ``with m.register_forward_hook(fn): ...`` scopes a hook.
    """

    _ids = itertools.count()

    def __init__(self, hooks: dict[int, Callable[..., Any]]) -> None:
        self._hooks = hooks
        self.id = next(HookHandle._ids)

    def remove(self) -> None:
        """Take the hook off (safe to call more than once)."""
        self._hooks.pop(self.id, None)

    def __enter__(self) -> HookHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()


def _check_name(kind: str, name: Any) -> None:
    if not isinstance(name, str):
        raise ModuleError(f"a {kind} name must be a string; got {type(name).__name__}")
    if not name or "." in name:
        raise ModuleError(f"a {kind} name must be non-empty and contain no '.'; got {name!r} "
                          "('.' separates the levels of state-dict keys)")


def _parse_to(args: tuple, kwargs: dict) -> tuple[Device | None, DType | None]:
    device = kwargs.pop("device", None)
    dtype = kwargs.pop("dtype", None)
    kwargs.pop("non_blocking", None)
    if kwargs:
        raise ModuleError(f"to() got unexpected arguments {sorted(kwargs)}; it takes a device and/or a dtype")
    for a in args:
        if isinstance(a, Tensor):
            device, dtype = a.device, a.dtype
        elif isinstance(a, DType) or a is float:
            dtype = a
        elif isinstance(a, str):
            try:
                dtype = get_dtype(a)
            except DTypeError:
                device = a
        else:
            device = a
    dev = Device(device) if device is not None else None
    dt = get_dtype(dtype) if dtype is not None else None
    if dt is not None and not dt.is_floating_point:
        raise DTypeError(f"Module.to() converts floating-point parameters and buffers only; got {dt.name}. "
                         "Pass float16, float32 or float64", dtype=dt)
    return dev, dt


def _transplant(t: Tensor, new: Tensor) -> None:
    """Give ``t`` the data and device of ``new`` while keeping the same Python object.

    Optimizers hold parameter objects; replacing the data under them (rather than the
    objects) keeps their references valid across ``module.to(device)``.
    """
    if new is t or new._data is t._data:
        return
    t._data = new._data
    t._be = new._be
    t._ver[0] += 1


def _addindent(s: str, n: int) -> str:
    lines = s.split("\n")
    if len(lines) == 1:
        return s
    return lines[0] + "\n" + "\n".join(" " * n + line for line in lines[1:])


class Module:
    """Base class of layers and models; subclasses define ``forward``.

    Call ``super().__init__()`` before assigning parameters or submodules. Calling the
    module runs forward pre-hooks, ``forward`` and forward hooks.
    """

    training: bool
    _parameters: dict[str, Tensor | None]
    _buffers: dict[str, Tensor | None]
    _modules: dict[str, Module | None]

    def __init__(self) -> None:
        d = self.__dict__
        d["training"] = True
        d["_parameters"] = {}
        d["_buffers"] = {}
        d["_non_persistent"] = set()
        d["_modules"] = {}
        d["_forward_hooks"] = {}
        d["_forward_pre_hooks"] = {}

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} has no forward(); define forward(self, ...) in the subclass")

    # ---- registration ---------------------------------------------------------------
    def _stores(self) -> dict[str, Any]:
        d = self.__dict__
        if "_parameters" not in d:
            raise ModuleError(f"{type(self).__name__}: call super().__init__() at the start of __init__, before "
                              "assigning parameters, buffers or submodules")
        return d

    def _discard(self, name: str) -> None:
        d = self.__dict__
        d.pop(name, None)
        for store in ("_parameters", "_buffers", "_modules"):
            d[store].pop(name, None)
        d["_non_persistent"].discard(name)

    def register_parameter(self, name: str, param: Tensor | None) -> None:
        """Add a parameter (``None`` reserves the name, as ``bias=False`` layers do)."""
        d = self._stores()
        _check_name("parameter", name)
        if param is not None:
            if not isinstance(param, Tensor):
                raise ModuleError(f"parameter {name!r} must be a Tensor or None; got {type(param).__name__}")
            if not param.is_leaf:
                raise ModuleError(f"parameter {name!r} must be a leaf tensor, but it was computed by "
                                  f"{param.grad_fn!r}; use st.nn.Parameter(t.detach())")
            mark_parameter(param)
        if name in d and name not in d["_parameters"]:
            raise ModuleError(f"{type(self).__name__} already has an attribute {name!r}; choose another name")
        self._discard(name)
        d["_parameters"][name] = param

    def register_buffer(self, name: str, tensor: Tensor | None, persistent: bool = True) -> None:
        """Add a buffer: state moved by ``to()`` and (if ``persistent``) saved in ``state_dict()``."""
        d = self._stores()
        _check_name("buffer", name)
        if tensor is not None and not isinstance(tensor, Tensor):
            raise ModuleError(f"buffer {name!r} must be a Tensor or None; got {type(tensor).__name__}")
        if name in d and name not in d["_buffers"]:
            raise ModuleError(f"{type(self).__name__} already has an attribute {name!r}; choose another name")
        self._discard(name)
        d["_buffers"][name] = tensor
        if not persistent:
            d["_non_persistent"].add(name)

    def add_module(self, name: str, module: Module | None) -> None:
        """Add a submodule under ``name`` (what assignment does)."""
        d = self._stores()
        _check_name("module", name)
        if module is not None and not isinstance(module, Module):
            raise ModuleError(f"submodule {name!r} must be a Module or None; got {type(module).__name__}")
        if name in d and name not in d["_modules"]:
            raise ModuleError(f"{type(self).__name__} already has an attribute {name!r}; choose another name")
        self._discard(name)
        d["_modules"][name] = module

    register_module = add_module

    def __setattr__(self, name: str, value: Any) -> None:
        d = self.__dict__
        if isinstance(value, Tensor) and (is_parameter(value) or (value.requires_grad and value.is_leaf)):
            self._stores()
            self._discard(name)
            self.register_parameter(name, value)
            return
        if isinstance(value, Module):
            self._stores()
            self._discard(name)
            d["_modules"][name] = value
            return
        params = d.get("_parameters")
        if params is not None and name in params:
            if value is not None:
                raise ModuleError(f"cannot assign a {type(value).__name__} to parameter {name!r}: expected a "
                                  "parameter or None. Make it one with st.nn.Parameter(t), or copy values in "
                                  f"with `with st.no_grad(): m.{name}.copy_(t)`")
            params[name] = None
            return
        modules = d.get("_modules")
        if modules is not None and name in modules:
            if value is not None:
                raise ModuleError(f"cannot assign a {type(value).__name__} to submodule {name!r}: expected a Module or None")
            modules[name] = None
            return
        buffers = d.get("_buffers")
        if buffers is not None and name in buffers:
            if value is not None and not isinstance(value, Tensor):
                raise ModuleError(f"cannot assign a {type(value).__name__} to buffer {name!r}: expected a Tensor or None")
            buffers[name] = value
            return
        object.__setattr__(self, name, value)

    def __getattr__(self, name: str) -> Any:
        d = self.__dict__
        for store in ("_parameters", "_buffers", "_modules"):
            s = d.get(store)
            if s is not None and name in s:
                return s[name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __delattr__(self, name: str) -> None:
        d = self.__dict__
        for store in ("_parameters", "_buffers", "_modules"):
            s = d.get(store)
            if s is not None and name in s:
                del s[name]
                d["_non_persistent"].discard(name)
                return
        object.__delattr__(self, name)

    def __dir__(self) -> list[str]:
        keys = set(super().__dir__())
        for store in ("_parameters", "_buffers", "_modules"):
            keys.update(self.__dict__.get(store, {}))
        return sorted(keys)

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        # copies (deepcopy, pickle) carry new tensor objects that need the parameter mark again
        for p in self.__dict__.get("_parameters", {}).values():
            if p is not None:
                mark_parameter(p)

    # ---- walking the tree -------------------------------------------------------------
    def named_children(self) -> Iterator[tuple[str, Module]]:
        """Direct submodules as ``(name, module)``."""
        seen = set()
        for name, m in self._modules.items():
            if m is not None and id(m) not in seen:
                seen.add(id(m))
                yield name, m

    def children(self) -> Iterator[Module]:
        for _, m in self.named_children():
            yield m

    def named_modules(self, memo: set[int] | None = None, prefix: str = "",
                      remove_duplicate: bool = True) -> Iterator[tuple[str, Module]]:
        """This module and every descendant as ``(dotted name, module)``, parents first."""
        if memo is None:
            memo = set()
        if remove_duplicate:
            if id(self) in memo:
                return
            memo.add(id(self))
        yield prefix, self
        for name, m in self._modules.items():
            if m is None:
                continue
            yield from m.named_modules(memo, f"{prefix}.{name}" if prefix else name, remove_duplicate)

    def modules(self) -> Iterator[Module]:
        for _, m in self.named_modules():
            yield m

    def _named_members(self, store: str, prefix: str, recurse: bool,
                       remove_duplicate: bool) -> Iterator[tuple[str, Tensor]]:
        seen: set[int] = set()
        mods = self.named_modules(prefix=prefix, remove_duplicate=remove_duplicate) if recurse else [(prefix, self)]
        for mod_prefix, mod in mods:
            for name, t in mod.__dict__[store].items():
                if t is None or id(t) in seen:
                    continue
                if remove_duplicate:
                    seen.add(id(t))
                yield (f"{mod_prefix}.{name}" if mod_prefix else name), t

    def named_parameters(self, prefix: str = "", recurse: bool = True,
                         remove_duplicate: bool = True) -> Iterator[tuple[str, Tensor]]:
        """Parameters as ``(dotted name, tensor)``; a shared parameter appears once."""
        return self._named_members("_parameters", prefix, recurse, remove_duplicate)

    def parameters(self, recurse: bool = True) -> Iterator[Tensor]:
        """The parameter tensors themselves (what an optimizer updates)."""
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def named_buffers(self, prefix: str = "", recurse: bool = True,
                      remove_duplicate: bool = True) -> Iterator[tuple[str, Tensor]]:
        return self._named_members("_buffers", prefix, recurse, remove_duplicate)

    def buffers(self, recurse: bool = True) -> Iterator[Tensor]:
        for _, b in self.named_buffers(recurse=recurse):
            yield b

    def get_submodule(self, target: str) -> Module:
        """The submodule at a dotted path (``"encoder.layers.0"``); ``""`` is this module."""
        mod: Module = self
        if not target:
            return mod
        walked: list[str] = []
        for part in target.split("."):
            child = mod._modules.get(part)
            if child is None:
                where = ".".join(walked) or type(self).__name__
                have = ", ".join(mod._modules) or "none"
                raise AttributeError(f"{where} has no submodule {part!r} (it has: {have})")
            walked.append(part)
            mod = child
        return mod

    def get_parameter(self, target: str) -> Tensor:
        """The parameter at a dotted path (``"fc.weight"``)."""
        mod_path, _, name = target.rpartition(".")
        mod = self.get_submodule(mod_path)
        p = mod._parameters.get(name)
        if p is None:
            raise AttributeError(f"{mod_path or type(self).__name__} has no parameter {name!r}")
        return p

    def num_parameters(self, trainable_only: bool = False) -> int:
        """How many scalar values the parameters hold (shared parameters counted once)."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)

    # ---- modes and gradients ------------------------------------------------------------
    def train(self, mode: bool = True) -> Module:
        """Switch this module and its descendants to training (or, with ``False``, evaluation) mode."""
        if not isinstance(mode, bool):
            raise ModuleError(f"train() takes a bool; got {type(mode).__name__} (did you mean model.train()?)")
        for m in self.modules():
            m.__dict__["training"] = mode
        return self

    def eval(self) -> Module:
        """Evaluation mode: dropout off, batch norm uses its running statistics."""
        return self.train(False)

    def requires_grad_(self, requires_grad: bool = True) -> Module:
        """Freeze (``False``) or unfreeze every parameter."""
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clear every parameter's ``.grad`` (drop it, or with ``set_to_none=False`` fill it with zeros)."""
        for p in self.parameters():
            if p.grad is None:
                continue
            if set_to_none:
                p.grad = None
            else:
                g = p.grad.detach()
                g.zero_()
                p.grad = g

    def apply(self, fn: Callable[[Module], Any]) -> Module:
        """Call ``fn`` on every submodule (children first) and on this module; returns self."""
        for m in self.children():
            m.apply(fn)
        fn(self)
        return self

    # ---- devices and dtypes ----------------------------------------------------------------
    def _retarget(self, fn: Callable[[Tensor, str], Tensor]) -> Module:
        """Replace every parameter's and buffer's data (and grad) by ``fn(tensor, key)``.

        All-or-nothing: every new tensor is made before any is put in place, so a move
        that fails part way (a device out of memory, a dtype it lacks) changes nothing.
        """
        moves: list[tuple[Tensor, Tensor]] = []
        seen: set[int] = set()  # a tensor shared between modules moves once
        with no_grad():
            for prefix, m in self.named_modules():
                for store in ("_parameters", "_buffers"):
                    for key, t in m.__dict__[store].items():
                        if t is None or id(t) in seen:
                            continue
                        seen.add(id(t))
                        name = f"{prefix}.{key}" if prefix else key
                        moves.append((t, fn(t.detach(), name)))
                        if t.grad is not None:
                            moves.append((t.grad, fn(t.grad.detach(), f"{name}.grad")))
            for t, new in moves:
                _transplant(t, new)
        return self

    def to(self, *args: Any, **kwargs: Any) -> Module:
        """Move parameters and buffers to a device and/or convert floating ones to a dtype, in place.

        The parameter objects stay the same (an optimizer built before the move keeps
        working); their data, and their ``.grad``, move. A move that fails part way
        leaves every tensor where it was.

        >>> import spiraltorch_nb as st
        >>> lin = st.nn.Linear(2, 2)
        >>> w = lin.weight
        >>> lin.to(st.float64).weight is w, w.dtype
        (True, spiraltorch_nb.float64)
        """
        device, dtype = _parse_to(args, kwargs)

        def convert(t: Tensor, name: str) -> Tensor:
            if device is not None:
                t = to_device(t, device, name)
            if dtype is not None and t.dtype.is_floating_point and t.dtype is not dtype:
                t = t.to(dtype)
            return t

        return self._retarget(convert)

    def cpu(self) -> Module:
        return self.to("cpu")

    def cuda(self, index: int | None = None) -> Module:
        return self.to("cuda" if index is None else f"cuda:{index}")

    def wgpu(self) -> Module:
        return self.to("wgpu")

    def float(self) -> Module:
        return self.to(get_dtype("float32"))

    def double(self) -> Module:
        return self.to(get_dtype("float64"))

    def half(self) -> Module:
        return self.to(get_dtype("float16"))

    # ---- calling ---------------------------------------------------------------------
    def register_forward_pre_hook(self, hook: Callable[..., Any]) -> HookHandle:
        """Call ``hook(module, args)`` before forward; a returned value replaces ``args``."""
        handle = HookHandle(self._forward_pre_hooks)
        self._forward_pre_hooks[handle.id] = hook
        return handle

    def register_forward_hook(self, hook: Callable[..., Any]) -> HookHandle:
        """Call ``hook(module, args, output)`` after forward; a returned value replaces the output."""
        handle = HookHandle(self._forward_hooks)
        self._forward_hooks[handle.id] = hook
        return handle

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        for hook in list(self._forward_pre_hooks.values()):
            res = hook(self, args)
            if res is not None:
                args = res if isinstance(res, tuple) else (res,)
        out = self.forward(*args, **kwargs)
        for hook in list(self._forward_hooks.values()):
            res = hook(self, args, out)
            if res is not None:
                out = res
        return out

    # ---- state dicts -------------------------------------------------------------------
    def state_dict(self, destination: dict[str, Tensor] | None = None, prefix: str = "",
                   keep_vars: bool = False) -> dict[str, Tensor]:
        """Parameters and persistent buffers by dotted name, as detached tensors sharing memory."""
        out: dict[str, Tensor] = OrderedDict() if destination is None else destination
        for name, p in self._parameters.items():
            if p is not None:
                out[prefix + name] = p if keep_vars else p.detach()
        for name, b in self._buffers.items():
            if b is not None and name not in self._non_persistent:
                out[prefix + name] = b if keep_vars else b.detach()
        for name, m in self._modules.items():
            if m is not None:
                m.state_dict(destination=out, prefix=f"{prefix}{name}.", keep_vars=keep_vars)
        return out

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True) -> IncompatibleKeys:
        """Copy values into the existing parameters and buffers (their device and dtype are kept).

        Every missing key, unexpected key and shape mismatch is collected first and reported
        together in one :class:`StateDictError`; nothing is copied when it is raised. With
        ``strict=False`` missing and unexpected keys are skipped (and returned); shape
        mismatches always raise. Values may be spiraltorch tensors, NumPy arrays or torch tensors.
        """
        if not isinstance(state_dict, Mapping):
            raise StateDictError(f"load_state_dict expects a mapping of name -> tensor; got {type(state_dict).__name__}. "
                                 "To read a file use st.io.load_state_dict(path) first")
        own = self.state_dict(keep_vars=True)
        report = compare_state({k: tuple(v.shape) for k, v in own.items()}, state_dict)
        fatal = bool(report.mismatched) or (strict and not report.compatible)
        if fatal:
            msg = (f"Error(s) loading a state dict into {type(self).__name__}:\n  "
                   + report.message().replace("\n", "\n  ")
                   + "\nTo fix: rename keys (st.io.load_state_dict(path, key_map=...) or st.io.strip_prefix), "
                     "skip missing/unexpected keys with strict=False, or inspect the fit first with "
                     "st.io.check_state_dict(model, state).")
            raise StateDictError(msg, report.missing, report.unexpected, report.mismatched)
        values = {k: as_array_or_tensor(state_dict[k], k) for k in report.matched}
        from ..ops.creation import tensor as _tensor

        with no_grad():
            for k, v in values.items():
                src = v.detach() if isinstance(v, Tensor) else _tensor(v)
                own[k].copy_(src)
        return IncompatibleKeys(report.missing, report.unexpected)

    # ---- display ----------------------------------------------------------------------
    def extra_repr(self) -> str:
        """The one-line settings shown in ``repr`` (``in_features=2, out_features=3``)."""
        return ""

    def __repr__(self) -> str:
        extra = self.extra_repr()
        extra_lines = extra.split("\n") if extra else []
        child_lines = [f"({name}): {_addindent(repr(m), 2)}" for name, m in self._modules.items()]
        main = type(self).__name__ + "("
        lines = extra_lines + child_lines
        if len(extra_lines) == 1 and not child_lines:
            main += extra
        elif lines:
            main += "\n  " + "\n  ".join(lines) + "\n"
        return main + ")"

    def _repr_html_(self) -> str:
        rows = []
        for name, m in self.named_modules():
            depth = name.count(".") + 1 if name else 0
            own = [(n, p) for n, p in m._parameters.items() if p is not None]
            shapes = ", ".join(f"{html.escape(n)} {tuple(p.shape)}" for n, p in own)
            total = m.num_parameters()
            label = html.escape(name.rsplit(".", 1)[-1] if name else "(root)")
            extra = html.escape(m.extra_repr())
            rows.append(
                f"<tr><td style='padding-left:{depth * 1.2:.1f}em;text-align:left'>{label}</td>"
                f"<td style='text-align:left'>{html.escape(type(m).__name__)}"
                f"{'(' + extra + ')' if extra else ''}</td>"
                f"<td style='text-align:left'>{shapes}</td><td style='text-align:right'>{total:,}</td></tr>")
        params = list(self.parameters())
        devices = sorted({str(p.device) for p in params}) or ["-"]
        dtypes = sorted({p.dtype.name for p in params}) or ["-"]
        trainable = self.num_parameters(trainable_only=True)
        buffers = sum(b.numel() for b in self.buffers())
        summary = (f"{self.num_parameters():,} parameters ({trainable:,} trainable), {buffers:,} buffer values; "
                   f"device {', '.join(devices)}; dtype {', '.join(dtypes)}; "
                   f"{'training' if self.training else 'eval'} mode")
        return ("<div class='spiraltorch-module' style='font-family:monospace;font-size:12px'>"
                f"<b>{html.escape(type(self).__name__)}</b>: {summary}"
                "<table><tr><th style='text-align:left'>module</th><th style='text-align:left'>type</th>"
                "<th style='text-align:left'>parameters</th><th style='text-align:right'>count</th></tr>"
                + "".join(rows) + "</table></div>")
