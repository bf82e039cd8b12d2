"""The cuda backend (CuPy): ``spiraltorch_nb.backends.cuda:CUDABackend``.

Importing this package never imports CuPy or touches a GPU; :meth:`CUDABackend.probe`
says whether one is usable and, when not, why in words.
"""

from __future__ import annotations

from .backend import INSTALL_HINT, CUDABackend, DeviceTimer

__all__ = ["CUDABackend", "DeviceTimer", "INSTALL_HINT"]
