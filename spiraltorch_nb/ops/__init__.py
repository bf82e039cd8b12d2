"""Operators: the registry, dispatch, and the built-in operator definitions.

Importing this package registers every built-in operator. Backends add their
forwards when they start.
"""

from __future__ import annotations

from . import elementwise, fused, losses, structural, update  # noqa: F401  (register the built-ins)
from .registry import (
    Operator,
    OperatorBuilder,
    OperatorRegistry,
    custom_op,
    dispatch,
    get_dispatch_observer,
    global_operator_registry,
    register_op,
    set_dispatch_observer,
)

__all__ = [
    "Operator",
    "OperatorBuilder",
    "OperatorRegistry",
    "custom_op",
    "dispatch",
    "get_dispatch_observer",
    "global_operator_registry",
    "register_op",
    "set_dispatch_observer",
]
