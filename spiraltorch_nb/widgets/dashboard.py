"""TelemetryDashboard: live metric curves, per-op time, memory, and event overlays.

Data flow. The source (a :class:`~spiraltorch_nb.telemetry.Recorder`, a
:class:`~spiraltorch_nb.train.Trainer` or a training run handle) produces events on the
plugin bus from the training thread: ``telemetry.metric`` per logged value,
``trainer.*`` per stage. Each handler only appends to an in-memory
:class:`~._series.DownsampledSeries` and pokes a :class:`~._base.Coalescer`. The
coalescer's thread flushes at most ``1 / update_interval`` times per second (10 by
default): one custom comm message carrying, per changed series, only the points the
front end lacks as one float64 buffer, the new overlays and the status line; the op
breakdown (a synced trait) changes at most once a second. Per-op times and memory
samples are read from the recorder's frames by the same thread about once a second,
only the rows added since the previous read (:class:`~spiraltorch_nb.telemetry.TableTail`),
so a poll costs the same at step 100,000 as at step 100. So the comm carries a bounded
number of messages and, thanks to the series' doubling downsampling,
``O(capacity * log n)`` bytes for ``n`` steps, and the training thread pays a few
microseconds per event.

>>> import spiraltorch_nb as st
>>> rec = st.telemetry.record()
>>> for step in range(5):
...     rec.log(step=step, loss=1.0 / (step + 1))
>>> dash = st.widgets.TelemetryDashboard(rec)
>>> dash
TelemetryDashboard(source=Recorder)
>>> dash.series_names
['loss']
>>> xs, ys = dash.points("loss")
>>> xs.tolist()
[0.0, 1.0, 2.0, 3.0, 4.0]
>>> dash.close()
"""

from __future__ import annotations

import datetime as _dt
import json
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import traitlets

from ._base import ActionWidget, Coalescer, WidgetError, subscribe_weak, widget_asset
from ._series import DownsampledSeries, pack_points
from ._telemetry_source import find_recorder

__all__ = ["TelemetryDashboard"]

#: overlays kept; past it every other epoch mark is dropped (events and switches are kept)
MAX_OVERLAYS = 400
#: metric names that mark boundaries rather than draw curves
_BOUNDARY_METRICS = ("epoch",)
#: logged values that are bookkeeping rather than curves
_NOT_CURVES = ("batch", "batch_size", "step", "global_step")
#: trainer topics that carry data or repeat what an overlay shows already
_QUIET_TRAINER_TOPICS = ("trainer.step_start", "trainer.step_end", "trainer.epoch_end", "trainer.fit_start",
                         "trainer.validation_end")


def _payload_get(payload: Any, *keys: str) -> Any:
    for key in keys:
        if isinstance(payload, dict):
            if payload.get(key) is not None:
                return payload[key]
        else:
            value = getattr(payload, key, None)
            if value is not None:
                return value
    return None


def _is_number(v: Any) -> bool:
    if isinstance(v, bool):
        return False
    if isinstance(v, int | float | np.number):
        return True
    return hasattr(v, "numel") and callable(v.numel) and v.numel() == 1


def _panel_of(name: str) -> str:
    """Curves that belong together share a panel: ``loss``, ``epoch_loss`` and ``val_loss``."""
    for prefix in ("val_", "train_", "test_", "epoch_"):
        if name.startswith(prefix) and len(name) > len(prefix):
            return name[len(prefix):]
    return name


class TelemetryDashboard(ActionWidget):
    """Live charts of a recorder or a training run: metrics, op time, memory, overlays.

    Parameters
    ----------
    source : Recorder, Trainer or training run handle
        What to watch. A Trainer's or a run handle's recorder (a ``Recorder`` among the
        trainer's callbacks) is used when present; otherwise the trainer's step and epoch
        events provide the metrics. A Trainer may be watched before its fit starts, and
        across fits.
    update_interval : float
        Seconds between front-end updates at most (0.1: ten per second).
    capacity : int
        Points kept per curve (older points are merged pairwise beyond it).
    events : tuple of str
        Bus topic patterns drawn as overlays besides the trainer's and plugins'.

    Attributes
    ----------
    overlays : list of dict
        Marks on the curves: ``kind`` (epoch, device, error, event, note), ``label``,
        ``step``, ``t`` (seconds since the recording started), ``topic``; epoch marks
        also carry ``epoch``, numbered from 1 like the status line (``"epoch 1"`` marks
        the start of the trainer's epoch 0).
    op_breakdown : list of dict
        The ops that took the most time: ``op``, ``backend``, ``total_ms``, ``count``, ``share``.
    status : str
        A one-line summary (step, epoch, state).
    """

    _esm = widget_asset("telemetry_dashboard.js")
    _css = widget_asset("telemetry_dashboard.css")
    _actions = {"snapshot": "_send_snapshot", "export": "_export_from_front"}

    # not synced: the list only grows, so it crosses the comm incrementally with the points
    overlays = traitlets.List(traitlets.Dict())
    op_breakdown = traitlets.List(traitlets.Dict()).tag(sync=True)
    status = traitlets.Unicode("").tag(sync=True)
    export_status = traitlets.Unicode("").tag(sync=True)
    capacity = traitlets.Int(2048).tag(sync=True)
    title = traitlets.Unicode("Telemetry").tag(sync=True)

    def __init__(self, source: Any, *, update_interval: float = 0.1, capacity: int = 2048,
                 events: tuple[str, ...] = (), title: str = "Telemetry", **kwargs: Any) -> None:
        from ..telemetry import Recorder
        from ..train.trainer import Trainer

        if not isinstance(update_interval, int | float) or update_interval < 0.02:
            raise WidgetError(f"update_interval is in seconds and at least 0.02 (50 updates/s); got {update_interval!r}")
        if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 16 or capacity % 2:
            raise WidgetError(f"capacity is an even number of points per curve, at least 16; got {capacity!r}")
        self._run: Any = None
        self._trainer: Any = None
        if isinstance(source, Recorder):
            self._rec = source
        elif isinstance(source, Trainer):
            self._trainer, self._rec = source, find_recorder(source)
        elif source is not None and hasattr(source, "trainer") and hasattr(source, "history"):
            self._run, self._trainer, self._rec = source, source.trainer, find_recorder(source)
        else:
            msg = (f"TelemetryDashboard watches a Recorder (st.telemetry.record()), a Trainer, or the handle "
                   f"returned by Trainer.fit(..., background=True); got {type(source).__name__}")
            raise WidgetError(msg)
        self._messages = 0  # set before the base class sends its first state message
        self._bytes = 0
        self._subscriptions: list[Any] = []
        super().__init__(capacity=capacity, title=title, **kwargs)
        self._lock = threading.RLock()
        self._series: dict[str, DownsampledSeries] = {}
        self._series_meta: dict[str, dict[str, str]] = {}
        self._pending_overlays: list[dict[str, Any]] = []
        self._overlays_reset = False
        self._overlay_keys: set[tuple] = set()
        self._op_totals: dict[tuple[str, str], list[float]] = {}
        self._poll_lock = threading.Lock()  # one reader of the recorder's tables at a time
        self._ops_tail = self._rec.tail("ops") if self._rec is not None else None
        self._mem_tail = self._rec.tail("memory") if self._rec is not None else None
        self._last_poll = 0.0
        self._status_time = 0.0
        self._history_until_ns = -1
        self._history_until_step = -1
        self._last_step: int | None = None
        self._epoch: Any = None
        self._state = "waiting"
        self._wall_t0 = time.time()
        self._points_sent = 0
        self._flusher = Coalescer(self._flush, interval=float(update_interval), poll_every=1.0,
                                  polling=self._is_live, name="spiraltorch-dashboard-flush")
        with self._lock:  # events that arrive meanwhile wait, then skip what the history holds
            self._subscribe(tuple(events))
            self._load_history()
        self._flush()
        if self._is_live():
            self._flusher.ensure_running()

    # ---- public API -----------------------------------------------------------------
    @property
    def source(self) -> Any:
        """The recorder, trainer or run handle being watched."""
        if self._run is not None:
            return self._run
        return self._trainer if self._trainer is not None else self._rec

    @property
    def series_names(self) -> list[str]:
        """Names of the series drawn (metrics, then ``memory:<device>``)."""
        with self._lock:
            return list(self._series)

    def points(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """The (downsampled) points of one series as the charts hold them: ``(x, y)``."""
        with self._lock:
            series = self._series.get(name)
            if series is None:
                raise WidgetError(f"no series named {name!r}; the dashboard has {sorted(self._series)}")
            return series.snapshot()

    @property
    def stats(self) -> dict[str, int]:
        """What crossed the comm so far: ``messages``, ``bytes`` and ``points`` sent."""
        return {"messages": self._messages, "bytes": self._bytes, "points": self._points_sent,
                "flushes": self._flusher.flushes}

    def add_overlay(self, label: str, step: int | None = None, kind: str = "note") -> None:
        """Mark ``step`` (default: the latest) on the curves with ``label``."""
        self._add_overlay(kind, str(label), step=step, topic="user")
        self._flusher.poke()

    def flush(self) -> None:
        """Send whatever is pending now and bring ``status`` up to date (the update thread does this on its own)."""
        self._flush(status_now=True)

    def export(self, directory: str | Path | None = None) -> dict[str, Path]:
        """Write the frames (Parquet) and the dashboard's figure (``dashboard.html``) to ``directory``.

        Returns
        -------
        dict
            ``"frames"``: the folder of Parquet tables, ``"figure"``: the HTML file.
        """
        if directory is None:
            directory = Path("telemetry-export") / _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        written: dict[str, Path] = {}
        if self._rec is not None:
            self._rec.to_parquet(out)
            written["frames"] = out
        history = self._history_frame()
        if history is not None and hasattr(history, "write_parquet"):
            history.write_parquet(out / "history.parquet")
            written["frames"] = out
        figure = self.figure()
        html = out / "dashboard.html"
        figure.write_html(html, include_plotlyjs=True, full_html=True)
        written["figure"] = html
        (out / "overlays.json").write_text(json.dumps(self.overlays, indent=1, default=str))
        self.export_status = f"exported to {out}"
        return written

    def figure(self) -> Any:
        """A Plotly figure of what the dashboard shows (curves, memory, op times, overlays)."""
        import plotly.graph_objects as go
        from plotly.subplots import make_subplots

        with self._lock:
            data = {k: s.snapshot() for k, s in self._series.items()}
            meta = dict(self._series_meta)
        metric_panels: list[str] = []
        for m in meta.values():
            if m["axis"] == "step" and m["panel"] not in metric_panels:
                metric_panels.append(m["panel"])
        memory_keys = [k for k, m in meta.items() if m["axis"] == "time"]
        titles = [*metric_panels, "memory (MiB)", "time per op (ms)"]
        rows = len(titles)
        fig = make_subplots(rows=rows, cols=1, subplot_titles=titles, vertical_spacing=0.25 / max(rows, 1))
        for key, (xs, ys) in data.items():
            m = meta[key]
            row = metric_panels.index(m["panel"]) + 1 if m["axis"] == "step" else rows - 1
            fig.add_trace(go.Scatter(x=xs, y=ys, name=key, mode="lines"), row=row, col=1)
        ops = self.op_breakdown
        fig.add_trace(go.Bar(x=[o["total_ms"] for o in ops], y=[f"{o['op']} · {o['backend']}" for o in ops],
                             orientation="h", name="op time"), row=rows, col=1)
        # one shape per mark and metric panel, set at once: add_vline copies every shape so far on each
        # call, which takes minutes for the hundreds of marks of a long run
        shapes = []
        for ov in _figure_overlays(self.overlays):
            for row in range(1, len(metric_panels) + 1):
                axis = "" if row == 1 else str(row)
                shapes.append({"type": "line", "xref": f"x{axis}", "yref": f"y{axis} domain", "x0": ov["step"],
                               "x1": ov["step"], "y0": 0, "y1": 1, "line": {
                                   "dash": "dot", "width": 1, "color": _OVERLAY_COLORS.get(ov["kind"], "#888")}})
        if not memory_keys:
            fig.add_annotation(text="no memory samples", showarrow=False, row=rows - 1, col=1)
        fig.update_layout(height=260 * rows, title=self.title, showlegend=True, shapes=shapes)
        return fig

    # ---- subscriptions and history --------------------------------------------------
    def _is_live(self) -> bool:
        if self._run is not None:
            return not bool(getattr(self._run, "done", False))
        recording = bool(self._rec is not None and self._rec.active)
        if self._trainer is not None:
            return recording or bool(self._trainer.progress.get("running"))
        return recording

    def _history_frame(self) -> Any:
        """The trainer's history as a Polars frame (None for a bare recorder)."""
        if self._run is not None:
            return getattr(self._run, "history", None)
        if self._trainer is not None:
            return getattr(getattr(self._trainer, "history", None), "history", None)
        return None

    def _subscribe(self, extra: tuple[str, ...]) -> None:
        from ..plugins import global_registry

        gbus = global_registry().events
        trainer = self._trainer
        tbus = trainer.events if trainer is not None else gbus
        subs = [(gbus, "plugin.*", "_on_other_event"), (tbus, "trainer.*", "_on_trainer_event")]
        if self._rec is not None:
            subs.append((gbus, "telemetry.metric", "_on_metric"))
        if tbus is not gbus:
            subs.append((tbus, "plugin.*", "_on_other_event"))
        subs += [(gbus, pattern, "_on_other_event") for pattern in extra]
        for bus, pattern, method in subs:
            self._subscriptions.append(subscribe_weak(bus, pattern, self, method))

    def _load_history(self) -> None:
        """Feed what the source recorded before the dashboard existed."""
        with self._lock:
            self._load_history_locked()

    def _load_history_locked(self) -> None:
        rec = self._rec
        if rec is not None:
            frame = rec.metrics
            if frame.height:
                self._history_until_ns = _as_int(frame["time_ns"].max())
                for name in frame["name"].unique(maintain_order=True).to_list():
                    part = frame.filter(name=name)
                    if name in _BOUNDARY_METRICS:
                        for step, value in zip(part["step"].to_list(), part["value"].to_list(), strict=True):
                            self._boundary(name, value, step)
                    elif name not in _NOT_CURVES:
                        self._series_for(name, "step").extend(part["step"].to_numpy().astype(np.float64),
                                                              part["value"].to_numpy().astype(np.float64))
                steps = frame["step"].drop_nulls()
                if steps.len():
                    self._last_step = _as_int(steps.max())
            self._poll_frames(force=True)
            self._state = "recording" if rec.active else ("stopped" if frame.height else "waiting")
        elif self._trainer is not None:
            self._load_run_history(self._history_frame())

    def _load_run_history(self, frame: Any) -> None:
        """A Trainer's long history: per-step train rows and per-epoch validation rows."""
        if frame is None or not getattr(frame, "height", 0):
            return
        self._history_until_step = int(frame["step"].max())
        self._last_step = self._history_until_step
        for (split, scope, name), part in frame.group_by("split", "scope", "name", maintain_order=True):
            if name in _NOT_CURVES or (split == "train" and scope == "epoch"):
                continue
            key = name if split == "train" else f"{split}_{name}"
            self._series_for(key, "step").extend(part["step"].to_numpy().astype(np.float64),
                                                 part["value"].to_numpy().astype(np.float64))
        for epoch, step in frame.group_by("epoch", maintain_order=True).agg(pl.col("step").min()).iter_rows():
            self._boundary("epoch", epoch, max(int(step) - 1, 0))

    def _series_for(self, key: str, axis: str, panel: str | None = None) -> DownsampledSeries:
        series = self._series.get(key)
        if series is None:
            series = self._series[key] = DownsampledSeries(self.capacity)
            self._series_meta[key] = {"panel": panel or _panel_of(key), "axis": axis}
        return series

    # ---- event handlers (run on the publishing thread: keep them short) ---------------
    def _accepts_metric(self) -> bool:
        from ..telemetry import active_recorder

        rec = self._rec
        if rec is None:
            return False
        active = active_recorder()
        return active is None or active is rec

    def _on_metric(self, event: Any) -> None:
        if not self._accepts_metric():
            return
        p = event.payload
        name, value, step = p.get("name"), p.get("value"), p.get("step")
        if name is None or value is None or name in _NOT_CURVES:
            return
        with self._lock:  # held while the history loads, so nothing lands before it
            if p.get("time_ns", 0) <= self._history_until_ns:
                return  # already read from the recorder's frame
            if step is not None:
                self._last_step = _as_int(step)
            if name in _BOUNDARY_METRICS:
                self._boundary(name, value, step)
            else:
                series = self._series_for(name, "step")
                series.append(float(step) if step is not None else float(series.total), float(value))
            if self._state == "waiting":
                self._state = "recording"
        self._flusher.poke()

    def _on_trainer_event(self, event: Any) -> None:
        topic = event.topic
        p = event.payload if isinstance(event.payload, dict) else {}
        trainer = p.get("trainer")
        if self._trainer is not None and trainer is not self._trainer:
            return
        step = p.get("step")
        if step is None and trainer is not None:
            step = getattr(trainer, "global_step", None)
        with self._lock:
            if _is_number(step):
                self._last_step = _as_int(step)
            if topic == "trainer.step_end":
                if self._rec is None and (step is None or step > self._history_until_step):
                    self._metrics_from(p.get("logs"), step)
                self._state = "training"
            elif topic == "trainer.validation_end":
                if self._rec is None and (step is None or step > self._history_until_step):
                    self._metrics_from(p.get("metrics"), step, prefix="val_")
            elif topic == "trainer.epoch_start":
                self._boundary("epoch", p.get("epoch"), step)
            elif topic == "trainer.device_changed":
                self._add_overlay("device", f"→ {p.get('to')}", step=step, topic=topic)
            elif topic == "trainer.device_change_failed":
                self._add_overlay("error", f"✗ {p.get('to')}", step=step, topic=topic)
            elif topic == "trainer.fit_end":
                self._state = "stopped" if p.get("stopped") else "done"
                self._add_overlay("event", "stopped" if p.get("stopped") else "fit end", step=step, topic=topic)
            elif topic not in _QUIET_TRAINER_TOPICS:
                self._add_overlay("event", topic.split(".", 1)[1], step=step, topic=topic)
        self._flusher.poke()

    def _metrics_from(self, logs: Any, step: Any, prefix: str = "") -> None:
        """Metrics carried by trainer events (used when no recorder is attached)."""
        if not isinstance(logs, dict):
            return
        for name, value in logs.items():
            if name in _NOT_CURVES or name in _BOUNDARY_METRICS or not _is_number(value):
                continue
            key = name if name.startswith(prefix) else prefix + name
            series = self._series_for(key, "step")
            series.append(float(step) if _is_number(step) else float(series.total), float(value))

    def _on_other_event(self, event: Any) -> None:
        with self._lock:
            self._add_overlay("event", event.topic, step=None, topic=event.topic)
        self._flusher.poke()

    def _boundary(self, name: str, value: Any, step: Any) -> None:
        if value is None or value == self._epoch:
            return
        self._epoch = value
        number = _ordinal(value)
        self._add_overlay("epoch", f"{name} {number}", step=step, topic=f"metric.{name}", epoch=number)

    def _now_s(self) -> float:
        rec = self._rec
        if rec is not None and rec.t0_ns:
            return (time.perf_counter_ns() - rec.t0_ns) / 1e9
        return time.time() - self._wall_t0

    def _add_overlay(self, kind: str, label: str, step: Any = None, topic: str = "", **extra: Any) -> None:
        with self._lock:
            s = int(step) if step is not None and _is_number(step) else self._last_step
            key = (kind, label, s)
            if key in self._overlay_keys:
                return
            self._overlay_keys.add(key)
            mark = {"kind": kind, "label": label, "step": s, "t": round(self._now_s(), 4), "topic": topic, **extra}
            marks = [*self.overlays, mark]
            if len(marks) > MAX_OVERLAYS:
                marks = _thin_overlays(marks, MAX_OVERLAYS)
                self._overlays_reset = True  # the front end's list is replaced at the next flush
            self.overlays = marks
            self._pending_overlays.append(mark)

    # ---- polling the recorder's frames ----------------------------------------------
    def _poll_frames(self, force: bool = False) -> bool:
        """Fold the op rows and memory samples recorded since the last poll into the op totals and memory series.

        Only new rows are read (:class:`~spiraltorch_nb.telemetry.TableTail`), so a poll costs the same late in a long
        run as early on.
        """
        rec = self._rec
        now = time.monotonic()
        ops_tail, mem_tail = self._ops_tail, self._mem_tail
        if rec is None or ops_tail is None or mem_tail is None or (not force and now - self._last_poll < 1.0):
            return False
        self._last_poll = now
        with self._poll_lock:  # a flush from the notebook and the update thread may poll at once
            ops = ops_tail.read()
            mem = mem_tail.read()
        changed = False
        if ops.height:
            agg = ops.group_by("op", "backend").agg(pl.col("duration_ns").sum().alias("ns"), pl.len().alias("n"))
            with self._lock:
                for op, backend, ns, n in agg.iter_rows():
                    tot = self._op_totals.setdefault((op, backend), [0.0, 0])
                    tot[0] += (ns or 0) / 1e6
                    tot[1] += n
            changed = True
        if mem.height:
            t0 = rec.t0_ns
            with self._lock:
                for (device,), part in mem.sort("time_ns").group_by("device", maintain_order=True):
                    part = part.drop_nulls("allocated_bytes")
                    if not part.height:
                        continue
                    xs = (part["time_ns"].to_numpy().astype(np.float64) - t0) / 1e9
                    ys = part["allocated_bytes"].to_numpy().astype(np.float64) / 2**20
                    self._series_for(f"memory:{device}", "time", panel="memory").extend(xs, ys)
            changed = True
        return changed

    def _breakdown(self, top: int = 12) -> list[dict[str, Any]]:
        total = sum(v[0] for v in self._op_totals.values()) or 1.0
        rows = sorted(self._op_totals.items(), key=lambda kv: -kv[1][0])[:top]
        return [{"op": op, "backend": be, "total_ms": round(ms, 3), "count": int(n), "share": round(ms / total, 4)}
                for (op, be), (ms, n) in rows]

    # ---- sending --------------------------------------------------------------------
    def _status_line(self) -> str:
        parts = []
        if self._last_step is not None:
            parts.append(f"step {self._last_step}")
        state = self._state
        if self._trainer is not None:
            progress = self._run.progress if self._run is not None else self._trainer.progress
            if progress.get("epochs"):
                parts.append(f"epoch {progress.get('epoch', 0) + 1}/{progress['epochs']}")
            if progress.get("device"):
                parts.append(f"on {progress['device']}")
            if self._run is not None and self._run.done:
                stopped = bool(getattr(self._trainer, "stopped", False))
                state = "stopped" if stopped else "done"
                failure = getattr(self._run, "exception", None)
                if failure is not None:
                    state = f"failed: {type(failure).__name__}: {failure}"[:200]
                    self._add_overlay("error", f"✗ {type(failure).__name__}", topic="run.exception")
                else:  # also when the fit ended before this dashboard subscribed to its events
                    self._add_overlay("event", "stopped" if stopped else "fit end", topic="trainer.fit_end")
        else:
            if self._epoch is not None:
                parts.append(f"epoch {_ordinal(self._epoch)}")
            if self._rec is not None:
                state = "recording" if self._rec.active else ("stopped" if self._state != "waiting" else "waiting")
        parts.append(state)
        return " · ".join(parts)

    def _flush(self, everything: bool = False, status_now: bool = False) -> None:
        """Send what changed since the last flush: one custom message and one batched trait update."""
        try:
            self._poll_frames(force=not self._is_live())
        except Exception as exc:  # a frame that cannot be read costs the op and memory panels, not the curves
            self.status = f"telemetry frames unreadable: {type(exc).__name__}: {exc}"
        with self._lock:
            items, buffers = [], []
            for key, series in self._series.items():
                if everything:
                    series.mark_all_unsent()
                if not series.dirty:
                    continue
                reset, xs, ys, tail = series.take()
                meta = self._series_meta[key]
                items.append({"key": key, "panel": meta["panel"], "axis": meta["axis"], "reset": reset,
                              "n": int(xs.size), "tail": tail, "stride": series.stride, "total": series.total})
                buffers.append(pack_points(xs, ys))
                self._points_sent += int(xs.size)
            status = self._status_line()  # first: a failed run adds an overlay
            new_overlays, overlays_reset = self._take_overlays(everything)
            breakdown = self._breakdown()
            if items or new_overlays or overlays_reset:
                # one message per flush: new points, new overlays, and the status line; the synced
                # status trait follows at most once a second
                content: dict[str, Any] = {"type": "series", "items": items, "status": status}
                if new_overlays or overlays_reset:
                    content["overlays"] = new_overlays
                    content["overlays_reset"] = overlays_reset
                self.send(content, buffers)
            now = time.monotonic()
            status_due = status != self.status and (now - self._status_time >= 1.0 or not items or status_now)
            if status != self.status and not status_due:
                self._flusher.poke_after(1.0)  # so the trait catches up once the run goes quiet
            if breakdown != self.op_breakdown or status_due:
                with self.hold_sync():
                    if breakdown != self.op_breakdown:
                        self.op_breakdown = breakdown
                    if status_due:
                        self.status = status
                        self._status_time = now

    def _take_overlays(self, everything: bool) -> tuple[list[dict[str, Any]], bool]:
        """Overlays the front end lacks, and whether they replace its list (after thinning)."""
        pending, self._pending_overlays = self._pending_overlays, []
        reset = everything or self._overlays_reset
        self._overlays_reset = False
        if reset:
            return list(self.overlays), True
        return pending, False

    def _send_snapshot(self) -> None:
        """A view was (re)rendered: send it every series in full."""
        self._flush(everything=True)

    def _export_from_front(self, directory: str | None = None) -> None:
        try:
            self.export(directory)
        except Exception as exc:
            self.export_status = f"export failed: {type(exc).__name__}: {exc}"

    def _send(self, msg: dict, buffers: list | None = None) -> None:
        """Every comm message goes through here: count it (``stats``) before sending."""
        self._messages += 1
        self._bytes += len(json.dumps(msg, default=str)) + sum(len(b) for b in (buffers or ()))
        super()._send(msg, buffers=buffers)

    # ---- lifecycle ------------------------------------------------------------------
    def close(self) -> None:
        """Stop updating and close the front end."""
        for sub in getattr(self, "_subscriptions", ()):
            sub.unsubscribe()
        self._subscriptions = []
        if hasattr(self, "_flusher"):
            self._flusher.stop()
        super().close()

    def __repr__(self) -> str:
        # stable on purpose (notebooks compare it): what is watched, not how far it got
        return f"TelemetryDashboard(source={type(self.source).__name__})"


def _as_int(value: Any) -> int:
    """A frame aggregate (typed loosely by Polars) as an int."""
    return int(value)


def _ordinal(epoch: Any) -> Any:
    """An epoch index (0-based, as the trainer counts) as people count it: 0 -> 1; non-integers as they are."""
    if _is_number(epoch) and float(epoch).is_integer():
        return int(epoch) + 1
    return epoch


#: epoch marks drawn in the exported figure at most (every mark stays in ``overlays.json``)
FIGURE_EPOCH_MARKS = 40


def _figure_overlays(overlays: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The marks the figure draws: every mark with a step, epoch marks thinned to ``FIGURE_EPOCH_MARKS``."""
    marks = [o for o in overlays if o.get("step") is not None]
    epochs = [o for o in marks if o["kind"] == "epoch"]
    if len(epochs) <= FIGURE_EPOCH_MARKS:
        return marks
    every = -(-len(epochs) // FIGURE_EPOCH_MARKS)
    keep = {id(o) for o in epochs[::every]}
    return [o for o in marks if o["kind"] != "epoch" or id(o) in keep]


def _thin_overlays(overlays: list[dict[str, Any]], limit: int) -> list[dict[str, Any]]:
    """Drop every other epoch mark until ``limit`` fit (then the oldest other marks, if still too many)."""
    while len(overlays) > limit:
        epochs = [i for i, o in enumerate(overlays) if o["kind"] == "epoch"]
        if len(epochs) < 2:
            return overlays[-limit:]
        drop = set(epochs[1::2])
        overlays = [o for i, o in enumerate(overlays) if i not in drop]
    return overlays


_OVERLAY_COLORS = {"epoch": "#8c959f", "device": "#bf8700", "error": "#cf222e", "event": "#8250df", "note": "#0969da"}
