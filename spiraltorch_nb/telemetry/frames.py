"""The telemetry tables: their schemas, and what every holder of them can do.

Four tables, each a Polars DataFrame with a fixed schema (see ``docs/telemetry.md``):

* ``ops``: one row per dispatched operator call;
* ``transfers``: one row per host<->device copy a backend reported;
* ``memory``: samples of allocated and peak bytes per backend;
* ``metrics``: user metrics in long format (step, name, value).

A live :class:`~spiraltorch_nb.telemetry.Recorder` and a recording read back with
:func:`~spiraltorch_nb.telemetry.load` both derive from :class:`TelemetryFrames`, so
summaries, exporters and plots work the same on either.
"""

from __future__ import annotations

import abc
from pathlib import Path
from typing import Any

import polars as pl

from ..errors import SpiralTorchError

__all__ = [
    "TelemetryError",
    "OPS_SCHEMA",
    "TRANSFERS_SCHEMA",
    "MEMORY_SCHEMA",
    "METRICS_SCHEMA",
    "SCHEMAS",
    "TelemetryFrames",
    "LoadedTelemetry",
]


class TelemetryError(SpiralTorchError, RuntimeError):
    """A recorder used in a way it cannot serve (a second active recorder, bad options, a bad file)."""


_I64 = pl.Int64()
_STR = pl.String()

#: one row per dispatched op; ``shapes`` holds the tensor inputs' shapes in argument order
OPS_SCHEMA: dict[str, pl.DataType] = {
    "seq": _I64,            # order of the event in the recording (shared with transfers)
    "op": _STR,             # operator name ("matmul")
    "backend": _STR,        # "cpu", "wgpu", "cuda"
    "device": _STR,         # "cpu", "wgpu:0", "cuda:1"
    "phase": _STR,          # "forward" or "backward" (ops run by the backward engine)
    "shapes": pl.List(pl.List(_I64)),  # shapes of the tensor inputs
    "dtype": _STR,          # dtype of the (first) output
    "start_ns": _I64,       # host clock (time.perf_counter_ns) at the call
    "duration_ns": _I64,    # device time when timing == "device", else host time
    "timing": _STR,         # "device" or "host": where duration_ns was measured
    "host_ns": _I64,        # host wall time of the forward call, always
    "bytes_in": _I64,       # bytes of the tensor inputs
    "bytes_out": _I64,      # bytes of the outputs
    "flops": _I64,          # estimated floating-point operations (telemetry.costs)
    "node": _I64,           # id() of the tape node recorded for the output, or null
    "thread": _I64,         # threading.get_ident() of the calling thread
    "step": _I64,           # the last step given to log() before the op, or null
}

#: one row per host<->device copy reported with ``backends.base.report_transfer``
TRANSFERS_SCHEMA: dict[str, pl.DataType] = {
    "seq": _I64, "src": _STR, "dst": _STR, "bytes": _I64, "start_ns": _I64,
    "duration_ns": _I64, "thread": _I64, "step": _I64,
}

#: memory samples per backend (at start/stop, on log(), every ``memory_every`` ops)
MEMORY_SCHEMA: dict[str, pl.DataType] = {
    "backend": _STR, "device": _STR, "time_ns": _I64, "allocated_bytes": _I64,
    "peak_bytes": _I64, "source": _STR,  # "memory_stats" (the backend's) or "process_rss"
}

#: user metrics, long format
METRICS_SCHEMA: dict[str, pl.DataType] = {
    "step": _I64, "name": _STR, "value": pl.Float64(), "time_ns": _I64,
}

SCHEMAS: dict[str, dict[str, pl.DataType]] = {
    "ops": OPS_SCHEMA, "transfers": TRANSFERS_SCHEMA, "memory": MEMORY_SCHEMA,
    "metrics": METRICS_SCHEMA,
}


class TelemetryFrames(abc.ABC):
    """Anything holding the four telemetry tables: summaries and exports over them.

    Subclasses provide the ``ops``, ``transfers``, ``memory`` and ``metrics`` frames,
    ``t0_ns`` (the host clock at the start of the recording) and ``meta``.
    """

    t0_ns: int = 0
    meta: dict[str, Any]

    @property
    @abc.abstractmethod
    def ops(self) -> pl.DataFrame:
        """The ``ops`` table (see the module docstring for its schema)."""

    @property
    @abc.abstractmethod
    def transfers(self) -> pl.DataFrame:
        """The ``transfers`` table (see the module docstring for its schema)."""

    @property
    @abc.abstractmethod
    def memory(self) -> pl.DataFrame:
        """The ``memory`` table (see the module docstring for its schema)."""

    @property
    @abc.abstractmethod
    def metrics(self) -> pl.DataFrame:
        """The ``metrics`` table (see the module docstring for its schema)."""

    def frames(self) -> dict[str, pl.DataFrame]:
        """The four tables by name."""
        return {"ops": self.ops, "transfers": self.transfers, "memory": self.memory,
                "metrics": self.metrics}

    def tail(self, table: str = "ops") -> Any:
        """A :class:`~spiraltorch_nb.telemetry.tail.TableTail`: each ``read()`` returns the rows added since the last."""
        from .tail import TableTail

        return TableTail(self, table)

    # ---- analysis -----------------------------------------------------------------
    def summary(self, by: tuple[str, ...] | list[str] = ("op", "backend"), phase: str | None = None) -> pl.DataFrame:
        """Per op and backend: count, total/mean/p50/p95 time, share, bytes and GFLOP/s.

        See :func:`spiraltorch_nb.telemetry.comparison.summarize` for the columns.
        """
        from .comparison import summarize

        return summarize(self.ops, by=by, phase=phase)

    # ---- export -------------------------------------------------------------------
    def to_parquet(self, directory: str | Path) -> Path:
        """Write the four tables and ``meta.json`` to ``directory`` (read back with ``telemetry.load``)."""
        from .exporters import write_tables

        return write_tables(self, directory, "parquet")

    def to_jsonl(self, directory: str | Path) -> Path:
        """Write the four tables as JSON Lines (one object per row) and ``meta.json``."""
        from .exporters import write_tables

        return write_tables(self, directory, "jsonl")

    def to_chrome_trace(self, path: str | Path) -> Path:
        """Write a Chrome trace-event JSON file (open it in https://ui.perfetto.dev)."""
        from .exporters import write_chrome_trace

        return write_chrome_trace(self, path)

    def _repr_counts(self) -> str:
        return ", ".join(f"{k}={v.height}" for k, v in self.frames().items())


class LoadedTelemetry(TelemetryFrames):
    """A recording read back from disk: the same frames, summaries and exporters as a Recorder."""

    def __init__(self, frames: dict[str, pl.DataFrame], meta: dict[str, Any] | None = None) -> None:
        self._frames = {name: frames.get(name, pl.DataFrame(schema=schema))
                        for name, schema in SCHEMAS.items()}
        self.meta = dict(meta or {})
        t0 = self.meta.get("t0_ns")
        if t0 is None:
            starts = [int(f["start_ns"].min()) for f in (self._frames["ops"], self._frames["transfers"])  # type: ignore[arg-type]
                      if f.height]
            t0 = min(starts) if starts else 0
        self.t0_ns = int(t0)

    @property
    def ops(self) -> pl.DataFrame:
        return self._frames["ops"]

    @property
    def transfers(self) -> pl.DataFrame:
        return self._frames["transfers"]

    @property
    def memory(self) -> pl.DataFrame:
        return self._frames["memory"]

    @property
    def metrics(self) -> pl.DataFrame:
        return self._frames["metrics"]

    def __repr__(self) -> str:
        return f"<LoadedTelemetry {self._repr_counts()}>"
