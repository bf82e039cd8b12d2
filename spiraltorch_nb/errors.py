"""The exception hierarchy: every error spiraltorch_nb raises derives from SpiralTorchError.

Each class carries its context as attributes so that code can react to an error
without parsing its message; the message itself says what was expected, what came,
and how to fix it.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "SpiralTorchError",
    "ShapeError",
    "DeviceError",
    "DeviceUnavailableError",
    "DTypeError",
    "AutogradError",
    "OperatorError",
    "PluginError",
    "LimitError",
    "CheckpointError",
]


class SpiralTorchError(Exception):
    """Base class of every error raised by spiraltorch_nb."""


class ShapeError(SpiralTorchError, ValueError):
    """Shapes that an operation cannot combine.

    Attributes
    ----------
    op : str or None
        The operation that failed.
    shapes : tuple
        The shapes it received.
    """

    def __init__(self, message: str, op: str | None = None, shapes: tuple = ()) -> None:
        super().__init__(message)
        self.op = op
        self.shapes = shapes


class DeviceError(SpiralTorchError, RuntimeError):
    """Tensors on different devices, or a device that cannot do what was asked."""

    def __init__(self, message: str, op: str | None = None, devices: tuple = ()) -> None:
        super().__init__(message)
        self.op = op
        self.devices = devices


class DeviceUnavailableError(DeviceError):
    """A device that is not present on this machine; ``reason`` says why."""

    def __init__(self, message: str, device: str | None = None, reason: str = "") -> None:
        super().__init__(message, devices=(device,) if device else ())
        self.device = device
        self.reason = reason


class DTypeError(SpiralTorchError, TypeError):
    """A dtype that an operation or a device does not support."""

    def __init__(self, message: str, op: str | None = None, dtype: Any = None) -> None:
        super().__init__(message)
        self.op = op
        self.dtype = dtype


class AutogradError(SpiralTorchError, RuntimeError):
    """Misuse of the autograd tape (freed graph, in-place change, non-scalar backward...)."""

    def __init__(self, message: str, op: str | None = None) -> None:
        super().__init__(message)
        self.op = op


class OperatorError(SpiralTorchError, RuntimeError):
    """An operator that is unknown, badly registered, or missing for a backend."""

    def __init__(self, message: str, op: str | None = None, backend: str | None = None) -> None:
        super().__init__(message)
        self.op = op
        self.backend = backend


class LimitError(DeviceError):
    """A request that exceeds a device limit; names the limit and the size asked for."""

    def __init__(self, message: str, limit: str = "", requested: int = 0, maximum: int = 0) -> None:
        super().__init__(message)
        self.limit = limit
        self.requested = requested
        self.maximum = maximum


class PluginError(SpiralTorchError):
    """A plugin that cannot be registered, loaded or unloaded."""

    def __init__(self, message: str, plugin_id: str | None = None) -> None:
        super().__init__(message)
        self.plugin_id = plugin_id


class CheckpointError(SpiralTorchError, OSError):
    """A checkpoint that cannot be written or read (truncated, tampered, incompatible)."""

    def __init__(self, message: str, path: str | None = None) -> None:
        super().__init__(message)
        self.path = path
