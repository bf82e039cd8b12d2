"""Writing recordings out (Parquet, JSON Lines, Chrome trace) and reading them back.

A Parquet or JSONL export is a folder: ``ops``, ``transfers``, ``memory`` and
``metrics`` tables plus ``meta.json`` (clock origin, options, drop counts).
:func:`load` reads it back into a :class:`~.frames.LoadedTelemetry` with the same
frames, summaries, exporters and plots as a live recorder.

The Chrome trace is the JSON "trace event" format that chrome://tracing and
https://ui.perfetto.dev open: one process per backend, one track per thread, ops
and transfers as complete (``"X"``) events with ``ts``/``dur`` in microseconds from
the start of the recording, memory and metrics as counter (``"C"``) events, and
``"M"`` events naming the processes and threads. :data:`CHROME_TRACE_SCHEMA` is the
JSON Schema of exactly that subset.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import polars as pl

from .frames import SCHEMAS, LoadedTelemetry, TelemetryError, TelemetryFrames

__all__ = ["write_tables", "write_chrome_trace", "chrome_trace", "load", "CHROME_TRACE_SCHEMA"]

_FORMATS = {"parquet": ".parquet", "jsonl": ".jsonl"}


def write_tables(rec: TelemetryFrames, directory: str | Path, fmt: str = "parquet") -> Path:
    """Write the four tables of ``rec`` and ``meta.json`` into ``directory`` (created if needed)."""
    if fmt not in _FORMATS:
        raise TelemetryError(f"export format must be one of {sorted(_FORMATS)}; got {fmt!r}")
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    for name, frame in rec.frames().items():
        path = out / f"{name}{_FORMATS[fmt]}"
        if fmt == "parquet":
            frame.write_parquet(path)
        else:
            frame.write_ndjson(path)
    meta = dict(rec.meta)
    meta["format"] = fmt
    (out / "meta.json").write_text(json.dumps(meta, indent=2, default=str))
    return out


def load(directory: str | Path) -> LoadedTelemetry:
    """Read a folder written by ``rec.to_parquet(dir)`` (or ``rec.to_jsonl(dir)``) back.

    Returns
    -------
    LoadedTelemetry
        ``.ops``, ``.transfers``, ``.memory``, ``.metrics`` with the recorder's schemas,
        plus ``summary()``, the exporters, and ``meta`` from ``meta.json``.

    Examples
    --------
    >>> import tempfile, spiraltorch_nb as st
    >>> with st.telemetry.record() as rec:
    ...     _ = st.ones(3) * 2
    >>> folder = rec.to_parquet(tempfile.mkdtemp())
    >>> st.telemetry.load(folder).ops["op"].to_list()
    ['mul']
    """
    src = Path(directory)
    if not src.is_dir():
        raise TelemetryError(f"load() expects the folder an export wrote (rec.to_parquet(dir)); "
                             f"{str(src)!r} is not a folder")
    meta: dict[str, Any] = {}
    if (src / "meta.json").is_file():
        meta = json.loads((src / "meta.json").read_text())
    fmt = meta.get("format")
    if fmt not in _FORMATS:
        fmt = "parquet" if (src / "ops.parquet").exists() else "jsonl"
    ext = _FORMATS[fmt]
    if not any((src / f"{name}{ext}").exists() for name in SCHEMAS):
        raise TelemetryError(f"load(): {str(src)!r} holds no telemetry tables (expected ops.parquet "
                             "or ops.jsonl, written by rec.to_parquet(dir) or rec.to_jsonl(dir))")
    frames = {}
    for name, schema in SCHEMAS.items():
        path = src / f"{name}{ext}"
        if not path.exists():
            continue
        if fmt == "parquet":
            frame = pl.read_parquet(path)
        elif path.stat().st_size == 0:
            frame = pl.DataFrame(schema=schema)
        else:
            frame = pl.read_ndjson(path, schema=schema)
        missing = [c for c in schema if c not in frame.columns]
        if missing:
            raise TelemetryError(f"load(): {path.name} lacks columns {missing}; was it written by "
                                 "a different tool or an older version?")
        cast: dict[Any, Any] = schema
        frames[name] = frame.select(list(schema)).cast(cast)
    return LoadedTelemetry(frames, meta)


# ---------------------------------------------------------------------------------
# Chrome trace event format
# ---------------------------------------------------------------------------------

_NUM = {"type": "number"}
_INT = {"type": "integer"}
_NAME_ARGS = {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}}}

#: JSON Schema (draft 2020-12) of the trace files ``to_chrome_trace`` writes
CHROME_TRACE_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "spiraltorch_nb Chrome trace (trace event format subset)",
    "type": "object",
    "required": ["traceEvents", "displayTimeUnit"],
    "properties": {
        "displayTimeUnit": {"enum": ["ms", "ns"]},
        "otherData": {"type": "object"},
        "traceEvents": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["ph", "name", "pid"],
                "properties": {"ph": {"enum": ["X", "C", "M"]}, "name": {"type": "string"},
                               "pid": _INT, "tid": _INT},
                "oneOf": [
                    {   # complete events: ops and transfers
                        "properties": {
                            "ph": {"const": "X"},
                            "cat": {"enum": ["forward", "backward", "transfer"]},
                            "ts": {"type": "number", "minimum": 0},
                            "dur": {"type": "number", "minimum": 0},
                            "args": {"type": "object"},
                        },
                        "required": ["cat", "ts", "dur", "tid", "args"],
                    },
                    {   # counters: memory per backend, metrics
                        "properties": {
                            "ph": {"const": "C"},
                            "ts": {"type": "number", "minimum": 0},
                            "args": {"type": "object", "minProperties": 1,
                                     "additionalProperties": _NUM},
                        },
                        "required": ["ts", "args"],
                    },
                    {   # metadata: process and thread names, sort order
                        "properties": {
                            "ph": {"const": "M"},
                            "name": {"enum": ["process_name", "thread_name", "process_sort_index"]},
                            "args": {"type": "object"},
                        },
                        "required": ["args"],
                        "if": {"properties": {"name": {"enum": ["process_name", "thread_name"]}}},
                        "then": {"properties": {"args": _NAME_ARGS}},
                    },
                ],
            },
        },
    },
}

_HOST_NAMES = ("cpu", "host")
_OP_ARGS = ("seq", "device", "shapes", "dtype", "timing", "host_ns", "bytes_in", "bytes_out",
            "flops", "node", "step")


def _backend_of(device: str) -> str:
    return device.split(":", 1)[0]


def chrome_trace(rec: TelemetryFrames) -> dict[str, Any]:
    """The trace of ``rec`` as a dict in the Chrome trace event format (see :data:`CHROME_TRACE_SCHEMA`)."""
    return json.loads(_trace_json(rec))


def write_chrome_trace(rec: TelemetryFrames, path: str | Path) -> Path:
    """Write ``rec`` as a Chrome trace JSON file; open it in https://ui.perfetto.dev."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(_trace_json(rec))
    return out


def _trace_json(rec: TelemetryFrames) -> str:
    t0 = int(rec.t0_ns)
    ops, xfers, mem, metrics = rec.ops, rec.transfers, rec.memory, rec.metrics

    # a process per backend (in order of appearance), then one for metrics
    pids: dict[str, int] = {}
    for name in [*ops["backend"].to_list(), *mem["backend"].to_list()]:
        pids.setdefault(name, len(pids) + 1)
    xfer_proc = [_transfer_backend(s, d) for s, d in zip(xfers["src"].to_list(), xfers["dst"].to_list(), strict=True)]
    for name in xfer_proc:
        pids.setdefault(name, len(pids) + 1)
    metrics_pid = len(pids) + 1
    main_ident = threading.main_thread().ident
    tids: dict[int, int] = {}
    for ident in [*ops["thread"].to_list(), *xfers["thread"].to_list()]:
        if ident not in tids:
            tids[ident] = len(tids) + 1

    parts: list[str] = []
    ts = lambda col: ((pl.col(col) - t0) / 1000.0).clip(lower_bound=0.0)  # noqa: E731
    if ops.height:
        ev = ops.select(
            name=pl.col("op"), cat=pl.col("phase"), ph=pl.lit("X"), ts=ts("start_ns"),
            dur=pl.col("duration_ns") / 1000.0,
            pid=pl.col("backend").replace_strict(pids, return_dtype=pl.Int64),
            tid=pl.col("thread").replace_strict(tids, return_dtype=pl.Int64),
            args=pl.struct(list(_OP_ARGS)),
        )
        parts.append(ev.write_json())
    if xfers.height:
        ev = xfers.with_columns(proc=pl.Series(xfer_proc, dtype=pl.String)).select(
            name=pl.concat_str([pl.col("src"), pl.lit("->"), pl.col("dst")]), cat=pl.lit("transfer"),
            ph=pl.lit("X"), ts=ts("start_ns"), dur=pl.col("duration_ns") / 1000.0,
            pid=pl.col("proc").replace_strict(pids, return_dtype=pl.Int64),
            tid=pl.col("thread").replace_strict(tids, return_dtype=pl.Int64),
            args=pl.struct("seq", "src", "dst", "bytes", "step"),
        )
        parts.append(ev.write_json())
    mem_ok = mem.filter(pl.col("allocated_bytes").is_not_null())
    if mem_ok.height:
        ev = mem_ok.select(
            name=pl.lit("memory"), ph=pl.lit("C"), ts=ts("time_ns"),
            pid=pl.col("backend").replace_strict(pids, return_dtype=pl.Int64),
            args=pl.struct(pl.col("allocated_bytes"),
                           pl.col("peak_bytes").fill_null(pl.col("allocated_bytes"))),
        )
        parts.append(ev.write_json())
    if metrics.height:
        ev = metrics.filter(pl.col("value").is_finite()).select(
            name=pl.col("name"), ph=pl.lit("C"), ts=ts("time_ns"), pid=pl.lit(metrics_pid, dtype=pl.Int64),
            args=pl.struct(pl.col("value")),
        )
        if ev.height:
            parts.append(ev.write_json())

    meta_events: list[dict[str, Any]] = []
    for name, pid in pids.items():
        meta_events.append({"ph": "M", "name": "process_name", "pid": pid, "tid": 0, "args": {"name": name}})
        meta_events.append({"ph": "M", "name": "process_sort_index", "pid": pid, "tid": 0, "args": {"sort_index": pid}})
    if metrics.height:
        meta_events.append({"ph": "M", "name": "process_name", "pid": metrics_pid, "tid": 0, "args": {"name": "metrics"}})
    lanes: set[tuple[str, int]] = set()
    for frame, pid_col in ((ops, "backend"), (xfers, None)):
        if not frame.height:
            continue
        procs = frame[pid_col].to_list() if pid_col else xfer_proc
        lanes.update(zip(procs, frame["thread"].to_list(), strict=True))
    for proc, ident in sorted(lanes, key=lambda x: (pids[x[0]], tids[x[1]])):
        label = "main thread" if ident == main_ident else f"thread {tids[ident]}"
        meta_events.append({"ph": "M", "name": "thread_name", "pid": pids[proc], "tid": tids[ident],
                            "args": {"name": label}})
    parts.append(json.dumps(meta_events))

    events = ",".join(p.strip()[1:-1] for p in parts if p.strip() not in ("[]", ""))
    other = json.dumps({"producer": "spiraltorch_nb", "t0_ns": t0,
                        "wall_time_start": rec.meta.get("wall_time_start")})
    return f'{{"displayTimeUnit":"ms","otherData":{other},"traceEvents":[{events}]}}'


def _transfer_backend(src: str, dst: str) -> str:
    """The process a transfer is drawn in: the device end of a host<->device copy."""
    for end in (dst, src):
        if _backend_of(end) not in _HOST_NAMES:
            return _backend_of(end)
    return _backend_of(dst)
