"""Parameters: leaf tensors a :class:`~spiraltorch_nb.nn.Module` registers and optimizers update.

A parameter is an ordinary :class:`~spiraltorch_nb.Tensor` (``isinstance(p, st.Tensor)``
holds) marked in a side table, because the Tensor keeps a fixed set of slots and has
no public constructor to subclass. ``isinstance(p, st.nn.Parameter)`` checks the mark.

>>> import spiraltorch_nb as st
>>> w = st.nn.Parameter(st.zeros(3))
>>> w.requires_grad, isinstance(w, st.Tensor), isinstance(w, st.nn.Parameter)
(True, True, True)
"""

from __future__ import annotations

import functools
import weakref
from typing import Any

from ..errors import DTypeError
from ..tensor import Tensor

__all__ = ["Parameter", "is_parameter", "mark_parameter"]

# id(tensor) -> weak reference; a dict keyed by id rather than a WeakSet because
# Tensor.__eq__ is elementwise, which set membership tests would trip over.
_marked: dict[int, weakref.ref] = {}


def _forget(key: int, ref: weakref.ref) -> None:
    if _marked.get(key) is ref:
        del _marked[key]


def mark_parameter(t: Tensor) -> Tensor:
    """Flag ``t`` as a parameter (idempotent) and return it."""
    key = id(t)
    ref = _marked.get(key)
    if ref is None or ref() is not t:
        _marked[key] = weakref.ref(t, functools.partial(_forget, key))
    return t


def is_parameter(obj: Any) -> bool:
    """Whether ``obj`` is a tensor flagged as a parameter."""
    if not isinstance(obj, Tensor):
        return False
    ref = _marked.get(id(obj))
    return ref is not None and ref() is obj


class _ParameterMeta(type):
    def __instancecheck__(cls, obj: Any) -> bool:
        return is_parameter(obj)


class Parameter(metaclass=_ParameterMeta):
    """Make ``data`` a parameter: a leaf tensor (sharing its memory) that requires grad.

    ``Parameter(t)`` returns a :class:`~spiraltorch_nb.Tensor`, not an instance of this
    class; ``isinstance(x, Parameter)`` tells whether a tensor was made a parameter.

    Parameters
    ----------
    data : Tensor, optional
        The values; an empty float32 tensor when omitted.
    requires_grad : bool
        ``False`` makes a frozen parameter: registered and saved, but not trained.

    Examples
    --------
    >>> import spiraltorch_nb as st
    >>> p = st.nn.Parameter(st.ones(2, 2))
    >>> p.is_leaf, p.requires_grad
    (True, True)
    """

    def __new__(cls, data: Tensor | None = None, requires_grad: bool = True) -> Tensor:  # type: ignore[misc]
        if data is None:
            from ..ops.creation import empty

            data = empty(0)
        if not isinstance(data, Tensor):
            raise DTypeError(f"Parameter expects a Tensor; got {type(data).__name__}. "
                             "Wrap the values first: st.nn.Parameter(st.tensor(values))")
        if requires_grad and not data.dtype.is_floating_point:
            raise DTypeError(f"a parameter that requires grad must be floating point; got {data.dtype.name}. "
                             "Convert it (t.float()) or pass requires_grad=False", dtype=data.dtype)
        t = data.detach()
        t.requires_grad = bool(requires_grad)
        return mark_parameter(t)
