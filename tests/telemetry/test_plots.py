"""Plotly figures: the right kind of figure with the expected traces."""

from __future__ import annotations

import plotly.graph_objects as go
import pytest

import spiraltorch_nb as st
from spiraltorch_nb.backends.base import report_transfer
from spiraltorch_nb.telemetry import TelemetryError, plots


@pytest.fixture
def rec():
    x = st.ones(6, 6, requires_grad=True)
    with st.telemetry.record(memory_every=3) as r:
        for step in range(4):
            loss = (x @ x).tanh().sum()
            loss.backward()
            r.log(step=step, loss=1.0 / (step + 1), acc=step / 4)
        report_transfer("cpu", "wgpu:0", 64, r.t0_ns, 1000)
    return r


def test_op_breakdown_is_a_bar_per_backend(rec):
    fig = plots.op_breakdown(rec)
    assert isinstance(fig, go.Figure)
    assert [t.type for t in fig.data] == ["bar"] and fig.data[0].name == "cpu"
    ops = set(fig.data[0].y)
    assert {"matmul", "tanh", "sum"} <= ops
    total_ms = sum(fig.data[0].x)
    assert total_ms == pytest.approx(rec.ops["duration_ns"].sum() / 1e6)
    small = plots.op_breakdown(rec, top=2)
    assert "other" in set(small.data[0].y) and len(set(small.data[0].y)) == 3


def test_timeline_has_forward_backward_and_transfer_spans(rec):
    fig = plots.timeline(rec)
    assert [t.name for t in fig.data] == ["forward", "backward", "transfer"]
    fwd = fig.data[0]
    assert len(fwd.x) == rec.ops.filter(phase="forward").height
    assert min(fwd.base) >= 0
    assert len(fig.data[2].x) == 1 and fig.data[2].y[0].startswith("wgpu")
    last3 = plots.timeline(rec, max_events=3)
    assert sum(len(t.x) for t in last3.data if t.name != "transfer") == 3
    assert all(t.name != "transfer" for t in last3.data)  # the transfer came before those ops


def test_memory_figure_has_allocated_and_peak_lines(rec):
    fig = plots.memory(rec)
    backends = sorted(set(rec.memory["backend"]))  # cpu, plus any started device backend
    assert "cpu" in backends
    assert [t.name for t in fig.data] == [f"{b} {k}" for b in backends for k in ("allocated", "peak")]
    assert all(t.type == "scatter" for t in fig.data)
    cpu = next(t for t in fig.data if t.name == "cpu allocated")
    assert len(cpu.x) == rec.memory.filter(backend="cpu").height


def test_metric_curves_one_line_per_metric(rec):
    fig = plots.metrics(rec)
    assert sorted(t.name for t in fig.data) == ["acc", "loss"]
    loss = next(t for t in fig.data if t.name == "loss")
    assert list(loss.x) == [0, 1, 2, 3] and loss.y[1] == pytest.approx(0.5)
    assert [t.name for t in plots.metrics(rec, names=["loss"]).data] == ["loss"]
    with pytest.raises(TelemetryError, match="no metric"):
        plots.metrics(rec, names=["nope"])


def test_device_comparison_chart(rec):
    with st.telemetry.record() as other:
        x = st.ones(6, 6)
        (x @ x).tanh()
    fig = plots.compare(rec, other, labels=("cpu run", "second run"))
    assert [t.name for t in fig.data] == ["cpu run", "second run"]
    assert list(fig.data[0].x) == st.telemetry.compare(rec, other)["op"].head(15).to_list()
    assert all(t.type == "bar" for t in fig.data)


def test_plots_work_on_a_loaded_recording(rec, tmp_path):
    loaded = st.telemetry.load(rec.to_parquet(tmp_path))
    assert len(plots.timeline(loaded).data) == 3
    with pytest.raises(TelemetryError, match="Recorder"):
        plots.timeline(42)


def test_plots_of_an_empty_recording():
    empty = st.telemetry.record()
    for fn in (plots.op_breakdown, plots.timeline, plots.memory, plots.metrics):
        assert isinstance(fn(empty), go.Figure) and len(fn(empty).data) == 0
