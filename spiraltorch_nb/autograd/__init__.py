"""Reverse-mode autograd: the tape, grad mode, and numerical gradient checks."""

from __future__ import annotations

from .grad_mode import enable_grad, is_grad_enabled, no_grad, set_grad_enabled
from .gradcheck import gradcheck, gradgradcheck
from .tape import Node, RemovableHandle, backward, grad

__all__ = ["Node", "RemovableHandle", "backward", "grad", "no_grad", "enable_grad",
           "set_grad_enabled", "is_grad_enabled", "gradcheck", "gradgradcheck"]
