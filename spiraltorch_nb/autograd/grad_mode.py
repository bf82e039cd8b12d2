"""Grad mode: whether operations are recorded on the tape. Thread-local, as in PyTorch.

The trainer's background thread and the notebook's thread each have their own mode,
so ``with st.no_grad():`` in one never changes what the other records.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["no_grad", "enable_grad", "set_grad_enabled", "is_grad_enabled"]

F = TypeVar("F", bound=Callable[..., Any])


class _GradState(threading.local):
    enabled = True
    phase = "forward"


state = _GradState()


def is_grad_enabled() -> bool:
    """Whether operations on tensors that require grad are being recorded."""
    return state.enabled


class set_grad_enabled:
    """Turn recording on or off, as a call, a context manager or a decorator."""

    def __init__(self, mode: bool) -> None:
        self.prev = state.enabled
        self.mode = bool(mode)
        state.enabled = self.mode

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        state.enabled = self.prev

    def __call__(self, fn: F) -> F:
        state.enabled = self.prev
        mode = self.mode

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with set_grad_enabled(mode):
                return fn(*args, **kwargs)

        return wrapper  # type: ignore[return-value]


class _Mode:
    mode = True

    def __enter__(self) -> None:
        self._prev = state.enabled
        state.enabled = self.mode

    def __exit__(self, *exc: object) -> None:
        state.enabled = self._prev

    def __call__(self, fn: F) -> F:
        mode = self.mode

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            prev = state.enabled
            state.enabled = mode
            try:
                return fn(*args, **kwargs)
            finally:
                state.enabled = prev

        return wrapper  # type: ignore[return-value]


class no_grad(_Mode):
    """Do not record operations (inference, in-place parameter updates).

    >>> import spiraltorch_nb as st
    >>> w = st.ones(2, requires_grad=True)
    >>> with st.no_grad():
    ...     w -= 0.5 * st.ones(2)
    >>> w.requires_grad, w.tolist()
    (True, [0.5, 0.5])
    """

    mode = False


class enable_grad(_Mode):
    """Record operations again inside a ``no_grad`` block."""

    mode = True
