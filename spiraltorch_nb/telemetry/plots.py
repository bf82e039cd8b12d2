"""Plotly figures of a recording: where time went, when, memory, metrics, and two devices compared.

Every function takes a :class:`~spiraltorch_nb.telemetry.Recorder` or a recording read
back with :func:`~spiraltorch_nb.telemetry.load` and returns a ``plotly.graph_objects.Figure``
(display it in a notebook, or ``fig.write_html(path)``).

>>> import spiraltorch_nb as st
>>> from spiraltorch_nb.telemetry import plots
>>> with st.telemetry.record() as rec:
...     _ = (st.ones(8, 8) @ st.ones(8, 8)).sum()
>>> [t.name for t in plots.op_breakdown(rec).data]
['cpu']
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import plotly.graph_objects as go
import polars as pl

from .comparison import compare as _compare
from .comparison import summarize
from .frames import TelemetryError

__all__ = ["op_breakdown", "timeline", "memory", "metrics", "compare"]

_MS = 1e6
_PHASE_COLORS = {"forward": "#4C78A8", "backward": "#F58518", "transfer": "#54A24B"}


def _frames(rec: Any, what: str) -> Any:
    if not hasattr(rec, "ops"):
        raise TelemetryError(f"plots.{what} expects a Recorder or a loaded recording; got {type(rec).__name__}")
    return rec


def op_breakdown(rec: Any, top: int = 15, phase: str | None = None) -> go.Figure:
    """Horizontal bars of total time per op (milliseconds), one stacked trace per backend.

    Parameters
    ----------
    top : int
        Show the ``top`` ops by total time; the rest are summed into "other".
    phase : str, optional
        Only "forward" or "backward" ops.
    """
    s = summarize(_frames(rec, "op_breakdown").ops, by=("op", "backend"), phase=phase)
    fig = go.Figure()
    if s.height:
        per_op = s.group_by("op").agg(pl.col("total_ns").sum()).sort("total_ns", descending=True)
        keep = per_op["op"].head(top).to_list()
        s = s.with_columns(op=pl.when(pl.col("op").is_in(keep)).then(pl.col("op")).otherwise(pl.lit("other")))
        s = s.group_by("op", "backend").agg(pl.col("total_ns").sum(), pl.col("count").sum(), pl.col("share").sum())
        # bottom to top: "other" first, then the largest op last so that it sits on top
        order = (["other"] if "other" in s["op"].to_list() else []) + list(reversed(keep))
        for backend in sorted(s["backend"].unique().to_list()):
            part = s.filter(pl.col("backend") == backend)
            fig.add_trace(go.Bar(
                name=backend, orientation="h", y=part["op"].to_list(),
                x=(part["total_ns"] / _MS).to_list(),
                customdata=list(zip(part["count"].to_list(), (part["share"] * 100).to_list(), strict=True)),
                hovertemplate="%{y}: %{x:.3f} ms, %{customdata[0]} calls, %{customdata[1]:.1f}%<extra>"
                              + backend + "</extra>",
            ))
        fig.update_yaxes(categoryorder="array", categoryarray=order)
    fig.update_layout(title="Time per op", barmode="stack", xaxis_title="total time (ms)",
                      yaxis_title="op", legend_title="backend")
    return fig


def timeline(rec: Any, max_events: int = 5000) -> go.Figure:
    """Op spans on a time axis, one lane per backend and thread; transfers in their own color.

    One trace per phase ("forward", "backward") and one for transfers. Only the last
    ``max_events`` ops are drawn (a browser slows down past a few thousand bars).
    """
    rec = _frames(rec, "timeline")
    t0 = rec.t0_ns
    all_ops = rec.ops
    ops = all_ops.tail(max_events)
    xfers = rec.transfers
    if ops.height < all_ops.height:
        xfers = xfers.filter(pl.col("start_ns") >= ops["start_ns"].min())
    threads: dict[int, int] = {}
    for ident in [*ops["thread"].to_list(), *xfers["thread"].to_list()]:
        threads.setdefault(ident, len(threads))
    fig = go.Figure()
    for phase in ("forward", "backward"):
        part = ops.filter(pl.col("phase") == phase)
        if not part.height:
            continue
        lanes = [f"{b} / t{threads[t]}" for b, t in zip(part["backend"].to_list(), part["thread"].to_list(), strict=True)]
        shapes = [" ".join("x".join(str(d) for d in s) or "()" for s in shp) for shp in part["shapes"].to_list()]
        fig.add_trace(go.Bar(
            name=phase, orientation="h", y=lanes, base=((part["start_ns"] - t0) / _MS).to_list(),
            x=(part["duration_ns"] / _MS).to_list(), marker_color=_PHASE_COLORS[phase],
            text=part["op"].to_list(), customdata=list(zip(shapes, part["timing"].to_list(), strict=True)),
            hovertemplate="%{text} [%{customdata[0]}]: %{x:.4f} ms (%{customdata[1]})<extra>" + phase + "</extra>",
            textposition="none",
        ))
    if xfers.height:
        lanes = [f"{_transfer_lane(s, d)} / t{threads[t]}" for s, d, t in
                 zip(xfers["src"].to_list(), xfers["dst"].to_list(), xfers["thread"].to_list(), strict=True)]
        names = [f"{s}->{d}" for s, d in zip(xfers["src"].to_list(), xfers["dst"].to_list(), strict=True)]
        fig.add_trace(go.Bar(
            name="transfer", orientation="h", y=lanes, base=((xfers["start_ns"] - t0) / _MS).to_list(),
            x=(xfers["duration_ns"] / _MS).to_list(), marker_color=_PHASE_COLORS["transfer"], text=names,
            customdata=xfers["bytes"].to_list(), textposition="none",
            hovertemplate="%{text}: %{customdata} bytes, %{x:.4f} ms<extra>transfer</extra>",
        ))
    fig.update_layout(title="Timeline", barmode="overlay", xaxis_title="time since start (ms)",
                      yaxis_title="backend / thread", bargap=0.3)
    return fig


def _transfer_lane(src: str, dst: str) -> str:
    for end in (dst, src):
        if end.split(":", 1)[0] not in ("cpu", "host"):
            return end.split(":", 1)[0]
    return dst


def memory(rec: Any) -> go.Figure:
    """Allocated bytes (solid) and peak bytes (dotted) per backend over time, in MiB."""
    rec = _frames(rec, "memory")
    mem = rec.memory.sort("time_ns")
    fig = go.Figure()
    for backend in sorted(mem["backend"].unique().to_list()):
        part = mem.filter(pl.col("backend") == backend)
        x = ((part["time_ns"] - rec.t0_ns) / 1e9).to_list()
        source = part["source"][0] if part.height else ""
        fig.add_trace(go.Scatter(name=f"{backend} allocated", x=x, y=(part["allocated_bytes"] / 2**20).to_list(),
                                 mode="lines+markers", hovertemplate="%{y:.1f} MiB<extra>" + source + "</extra>"))
        fig.add_trace(go.Scatter(name=f"{backend} peak", x=x, y=(part["peak_bytes"] / 2**20).to_list(),
                                 mode="lines", line={"dash": "dot"}))
    fig.update_layout(title="Memory", xaxis_title="time since start (s)", yaxis_title="MiB")
    return fig


def metrics(rec: Any, names: Sequence[str] | None = None) -> go.Figure:
    """One line per logged metric against the step (``names`` picks which; all by default)."""
    rec = _frames(rec, "metrics")
    met = rec.metrics
    wanted = sorted(met["name"].unique().to_list()) if names is None else list(names)
    unknown = [n for n in wanted if n not in set(met["name"].to_list())]
    if unknown:
        known = sorted(set(met["name"].to_list()))
        raise TelemetryError(f"plots.metrics: no metric named {unknown}; logged metrics are {known}")
    fig = go.Figure()
    for name in wanted:
        part = met.filter(pl.col("name") == name).sort("step", "time_ns")
        fig.add_trace(go.Scatter(name=name, x=part["step"].to_list(), y=part["value"].to_list(),
                                 mode="lines+markers" if part.height < 50 else "lines"))
    fig.update_layout(title="Metrics", xaxis_title="step", yaxis_title="value")
    return fig


def compare(rec_a: Any, rec_b: Any, labels: tuple[str, str] = ("a", "b"), top: int = 15,
            phase: str | None = None) -> go.Figure:
    """Grouped bars of mean time per call of each op in two recordings (e.g. cpu and wgpu).

    The hover shows the ratio ``b / a``; ``labels`` name the two bars.
    """
    table = _compare(rec_a, rec_b, phase=phase).head(top)
    ops = table["op"].to_list()
    ratio = ["" if r is None else f"{r:.2f}x" for r in table["ratio"].to_list()]
    fig = go.Figure()
    for side, label in zip(("a", "b"), labels, strict=True):
        fig.add_trace(go.Bar(
            name=label, x=ops, y=(table[f"mean_{side}_ns"] / 1e3).to_list(), customdata=ratio,
            hovertemplate="%{x}: %{y:.2f} us per call (b/a %{customdata})<extra>" + label + "</extra>",
        ))
    fig.update_layout(title=f"{labels[0]} vs {labels[1]}: time per call", barmode="group",
                      xaxis_title="op", yaxis_title="mean time per call (us)", legend_title="recording")
    return fig
