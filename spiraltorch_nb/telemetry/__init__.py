"""Telemetry: every dispatched op, transfer, memory sample and metric, as Polars frames.

>>> import spiraltorch_nb as st
>>> x = st.ones(4, 4, requires_grad=True)
>>> with st.telemetry.record() as rec:
...     (x @ x).sum().backward()
...     rec.log(step=0, loss=1.5)
>>> rec.summary().filter(op="matmul")["count"].item()  # the forward; the gradients are one op
1
>>> rec.ops.filter(phase="backward")["op"].to_list()  # x is used twice: its two gradients add
['expand', 'matmul_backward', 'add']
>>> rec.metrics["value"].to_list()
[1.5]

See ``docs/telemetry.md`` for the guide and the table schemas. Plotly figures live in
:mod:`spiraltorch_nb.telemetry.plots` (imported on first use).
"""

from __future__ import annotations

from typing import Any

from .comparison import COMPARE_SCHEMA, SUMMARY_SCHEMA, compare, summarize
from .costs import estimate_flops
from .exporters import CHROME_TRACE_SCHEMA, chrome_trace, load
from .frames import (
    MEMORY_SCHEMA,
    METRICS_SCHEMA,
    OPS_SCHEMA,
    SCHEMAS,
    TRANSFERS_SCHEMA,
    LoadedTelemetry,
    TelemetryError,
    TelemetryFrames,
)
from .recorder import Recorder, active_recorder, process_memory, record
from .tail import TableTail

__all__ = [
    "record", "Recorder", "TableTail", "active_recorder", "load", "compare", "summarize", "chrome_trace",
    "estimate_flops", "process_memory", "TelemetryError", "TelemetryFrames", "LoadedTelemetry",
    "OPS_SCHEMA", "TRANSFERS_SCHEMA", "MEMORY_SCHEMA", "METRICS_SCHEMA", "SCHEMAS",
    "SUMMARY_SCHEMA", "COMPARE_SCHEMA", "CHROME_TRACE_SCHEMA", "plots",
]


def __getattr__(name: str) -> Any:
    if name == "plots":  # plotly is imported only when figures are asked for
        import importlib

        mod = importlib.import_module(".plots", __name__)
        globals()["plots"] = mod
        return mod
    raise AttributeError(f"module 'spiraltorch_nb.telemetry' has no attribute {name!r}")
