"""Notebook widgets: switch devices, watch telemetry live, edit model pipelines.

Each widget is an anywidget class whose state lives in Python (synced traits) and whose
front end (``widgets/*.js``, plain ES modules) only renders it and forwards clicks as
actions. Every action is also a Python method, so the widgets work without a browser.

See ``docs/widgets.md``.
"""

from __future__ import annotations

from ._base import WidgetError
from .dashboard import TelemetryDashboard
from .device_switcher import DeviceSwitcher
from .pipeline_editor import PipelineEditor

__all__ = ["DeviceSwitcher", "TelemetryDashboard", "PipelineEditor", "WidgetError"]
