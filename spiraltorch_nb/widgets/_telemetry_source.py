"""How widgets find the telemetry Recorder of what they watch (a run handle, a Trainer, its callbacks).

They read it through ``rec.tail(table)`` (:class:`~spiraltorch_nb.telemetry.TableTail`):
only the rows a table gained since the previous poll, so a poll costs the same late in
a long run as early.
"""

from __future__ import annotations

from typing import Any

__all__ = ["find_recorder"]


def find_recorder(owner: Any) -> Any:
    """The telemetry Recorder attached to a run handle, a Trainer or its callbacks, if any."""
    from ..telemetry import Recorder

    if isinstance(owner, Recorder):
        return owner
    for obj in (owner, getattr(owner, "trainer", None)):
        if obj is None:
            continue
        for attr in ("recorder", "telemetry"):
            value = getattr(obj, attr, None)
            if isinstance(value, Recorder):
                return value
        for cb in getattr(obj, "callbacks", None) or []:
            cb = getattr(cb, "target", cb)  # a CallbackAdapter around a plain object
            if isinstance(cb, Recorder):
                return cb
    return None
