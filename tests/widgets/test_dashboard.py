"""TelemetryDashboard driven from Python: coalescing, bounded traffic, sources, overlays, export."""

from __future__ import annotations

import math
import threading
import time
from typing import Any

import numpy as np
import polars as pl
import pytest

import spiraltorch_nb as st
from spiraltorch_nb.plugins import global_registry
from spiraltorch_nb.widgets import TelemetryDashboard, WidgetError
from spiraltorch_nb.widgets.dashboard import MAX_OVERLAYS


class Wire:
    """Captures every comm message a widget sends and mirrors the dashboard front end's series store."""

    def __init__(self, widget: Any) -> None:
        self.messages: list[tuple[dict, list]] = []
        self.series: dict[str, dict[str, Any]] = {}
        original = widget._send

        def send(msg: dict, buffers: list | None = None) -> None:
            self.messages.append((msg, list(buffers or [])))
            content = msg.get("content") if msg.get("method") == "custom" else None
            if content and content.get("type") == "series":
                self._apply(content["items"], buffers or [])
            original(msg, buffers=buffers)

        widget._send = send

    def _apply(self, items: list[dict], buffers: list) -> None:
        for item, buf in zip(items, buffers, strict=True):
            data = np.frombuffer(buf, dtype="<f8")
            xs, ys = data[:item["n"]].tolist(), data[item["n"]:].tolist()
            s = self.series.setdefault(item["key"], {"xs": [], "ys": [], "tail": False})
            if item["reset"]:
                s["xs"], s["ys"] = xs, ys
            else:
                if s["tail"]:
                    s["xs"].pop()
                    s["ys"].pop()
                s["xs"] += xs
                s["ys"] += ys
            s["tail"] = item["tail"]

    @property
    def custom(self) -> list[tuple[dict, list]]:
        return [(m, b) for m, b in self.messages if m.get("method") == "custom"]


def publish_metric(step: int, name: str, value: float) -> None:
    global_registry().events.publish("telemetry.metric", {"step": step, "name": name, "value": value,
                                                          "time_ns": time.perf_counter_ns()})


@pytest.fixture
def dash():
    rec = st.telemetry.record()
    d = TelemetryDashboard(rec)
    yield d
    d.close()


def test_history_is_loaded_and_repr_is_stable() -> None:
    rec = st.telemetry.record()
    for step in range(10):
        rec.log(step=step, loss=1.0 / (step + 1), accuracy=step / 10)
    d = TelemetryDashboard(rec)
    try:
        assert repr(d) == "TelemetryDashboard(source=Recorder)" and d.series_names == ["loss", "accuracy"]
        xs, ys = d.points("loss")
        assert xs.tolist() == list(range(10)) and ys[3] == pytest.approx(0.25)
        with pytest.raises(WidgetError, match="no series named 'lost'"):
            d.points("lost")
    finally:
        d.close()


def test_100k_step_feed_sends_bounded_messages_and_bytes(dash: TelemetryDashboard) -> None:
    """A synthetic 100,000-step run flushed ten times a second at 1,000 steps/s (so every 100 steps)."""
    wire = Wire(dash)
    dash._flusher.stop()  # flushes are driven here, as the update thread would at 10 Hz
    n = 100_000
    rng = np.random.default_rng(0)
    loss = np.exp(-np.arange(n) / 20_000) + 0.01 * rng.standard_normal(n)
    for step in range(n):
        publish_metric(step, "loss", float(loss[step]))
        publish_metric(step, "accuracy", 1.0 - float(loss[step]) / 2)
        if step % 100 == 99:
            dash._flush()  # what the update thread calls
    dash._flush()
    custom = wire.custom
    sent_bytes = sum(len(b) for _, bufs in custom for b in bufs)
    naive = n * 2 * 16  # one float64 (x, y) pair per metric per step
    # at most one series message per flush, and bytes far below one point per step: each series sends
    # its first `capacity` points, then per doubling of the stride a resend of capacity/2 points and
    # capacity/2 new ones, plus one provisional tail point per flush
    flushes = n // 100 + 1
    assert len(custom) <= flushes + 1
    bound = 2 * 16 * (dash.capacity * (1 + math.log2(n / dash.capacity)) + flushes)
    assert sent_bytes <= bound
    assert sent_bytes < naive / 5
    assert dash.stats["bytes"] >= sent_bytes and dash.stats["messages"] >= len(custom)
    # what the front end holds is exactly the dashboard's (bounded) series
    for key in ("loss", "accuracy"):
        xs, ys = dash.points(key)
        assert len(xs) <= dash.capacity
        assert wire.series[key]["xs"] == xs.tolist() and wire.series[key]["ys"] == ys.tolist()
    # downsampling keeps the shape of the curve: bucket means track the raw values
    xs, ys = dash.points("loss")
    np.testing.assert_allclose(ys, np.exp(-xs / 20_000), atol=0.01)
    print(f"\n100k steps x 2 metrics: {len(custom)} series messages, {sent_bytes / 1e3:.0f} kB of points "
          f"(one pair per step would be {naive / 1e6:.1f} MB), {dash.stats}")


def test_live_updates_are_coalesced_in_real_time(dash: TelemetryDashboard) -> None:
    """A training thread publishing as fast as it can: at most ~10 flushes per second reach the comm."""
    wire = Wire(dash)
    n = 100_000
    done = threading.Event()

    def train() -> None:
        for step in range(n):
            publish_metric(step, "loss", 1.0 / (step + 1))
        done.set()

    t0 = time.perf_counter()
    worker = threading.Thread(target=train)
    worker.start()
    worker.join(120)
    elapsed = time.perf_counter() - t0
    time.sleep(3 * dash._flusher.interval)
    assert done.is_set()
    custom = wire.custom
    assert len(custom) <= elapsed / dash._flusher.interval + 3
    assert wire.series["loss"]["xs"] == dash.points("loss")[0].tolist()  # the last update arrived
    per_step_us = elapsed / n * 1e6
    print(f"\n100k events on a worker thread in {elapsed:.2f} s ({per_step_us:.1f} us per publish incl. handler): "
          f"{len(custom)} series messages, {len(wire.messages)} comm messages in all")
    assert per_step_us < 500  # the handler is a lock, an append and a flag


def test_snapshot_resends_everything_for_a_new_view(dash: TelemetryDashboard) -> None:
    wire = Wire(dash)
    dash._flusher.stop()
    for step in range(50):
        publish_metric(step, "loss", float(step))
    dash.flush()
    wire.series.clear()
    dash._on_front_message(dash, {"action": "snapshot"}, [])
    assert wire.series["loss"]["xs"] == list(map(float, range(50)))
    item = wire.custom[-1][0]["content"]["items"][0]
    assert item["reset"] is True and item["total"] == 50


def test_overlays_mark_epochs_events_and_notes(dash: TelemetryDashboard) -> None:
    dash._flusher.stop()
    for step in range(30):
        publish_metric(step, "epoch", step // 10)
        publish_metric(step, "loss", 1.0)
    global_registry().events.publish("plugin.loaded", {"id": "demo"})
    dash.add_overlay("lr drop", step=12)
    dash.flush()
    kinds = [(o["kind"], o["label"], o["step"]) for o in dash.overlays]
    # epochs are counted from 1, as the status line counts them: the trainer's epoch 0 is "epoch 1"
    assert ("epoch", "epoch 1", 0) in kinds and ("epoch", "epoch 2", 10) in kinds and ("epoch", "epoch 3", 20) in kinds
    assert [o["epoch"] for o in dash.overlays if o["kind"] == "epoch"] == [1, 2, 3]
    assert dash.status.startswith("step 29 · epoch 3")
    assert ("note", "lr drop", 12) in kinds
    for epoch in range(3, 2 * MAX_OVERLAYS):  # a long run: epoch marks are thinned, others kept
        publish_metric(epoch * 10, "epoch", epoch)
    dash.flush()
    assert len(dash.overlays) <= MAX_OVERLAYS and ("note", "lr drop", 12) in [
        (o["kind"], o["label"], o["step"]) for o in dash.overlays]
    epochs = [o["step"] for o in dash.overlays if o["kind"] == "epoch"]
    assert epochs == sorted(epochs) and epochs[-1] >= 10 * (2 * MAX_OVERLAYS - 2)
    assert any(k == "event" and label == "plugin.loaded" for k, label, _ in kinds)
    assert "epoch" not in dash.series_names  # a boundary, not a curve


def test_front_end_errors_never_raise(dash: TelemetryDashboard) -> None:
    dash._on_front_message(dash, {"action": "explode"}, [])
    assert "unknown action 'explode'" in dash.error


def test_rejects_other_sources() -> None:
    with pytest.raises(WidgetError, match="a Recorder .*, a Trainer, or the handle .*; got list"):
        TelemetryDashboard([1, 2, 3])


def _fit(epochs: int, callbacks: tuple = (), **kw: Any):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 4)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    model = st.nn.Sequential(st.nn.Linear(4, 8), st.nn.ReLU(), st.nn.Linear(8, 2))
    trainer = st.train.Trainer(model, "cross_entropy", st.optim.SGD(model.parameters(), lr=0.1),
                               callbacks=list(callbacks), progress=False)
    loaders = (st.train.DataLoader(x, y, batch_size=16), st.train.DataLoader(x, y, batch_size=64))
    return trainer, loaders


def test_run_handle_without_recorder_uses_trainer_events() -> None:
    trainer, (train, val) = _fit(3)
    gate = threading.Event()
    trainer.add_callback(st.train.LambdaCallback(on_fit_start=lambda t: gate.wait(10)))
    run = trainer.fit(train, val, epochs=3, background=True)
    d = TelemetryDashboard(run)
    try:
        gate.set()  # the dashboard is listening before the first step
        run.wait(30)
        deadline = time.monotonic() + 5
        while "done" not in d.status and time.monotonic() < deadline:
            time.sleep(0.05)
        d.flush()
        assert {"loss", "accuracy", "val_loss", "val_accuracy"} <= set(d.series_names)
        assert d.points("loss")[0].tolist() == [float(s) for s in range(1, 13)]
        assert len(d.points("val_loss")[0]) == 3
        epochs = [o["label"] for o in d.overlays if o["kind"] == "epoch"]
        assert epochs == ["epoch 1", "epoch 2", "epoch 3"]
        assert d.status.endswith("done") and "epoch 3/3" in d.status
        assert repr(d) == "TelemetryDashboard(source=FitHandle)"
    finally:
        d.close()


def test_run_with_recorder_shows_ops_memory_and_exports(tmp_path) -> None:
    rec = st.telemetry.record()
    trainer, (train, val) = _fit(2, callbacks=(rec,))
    run = trainer.fit(train, val, epochs=2, background=True)
    d = TelemetryDashboard(run)
    try:
        run.wait(30)
        d._poll_frames(force=True)
        d.flush()
        assert "loss" in d.series_names and any(k.startswith("memory:") for k in d.series_names)
        ops = {row["op"] for row in d.op_breakdown}
        assert "matmul" in ops or "linear" in ops
        # each share is rounded to 4 decimals: the sum may exceed 1 by half a unit per row
        assert sum(row["share"] for row in d.op_breakdown) <= 1.0 + 0.5e-4 * len(d.op_breakdown)
        out = d.export(tmp_path / "export")
        assert (tmp_path / "export" / "dashboard.html").stat().st_size > 10_000
        assert pl.read_parquet(tmp_path / "export" / "metrics.parquet").height > 0
        assert out["figure"].name == "dashboard.html"
        assert "exported to" in d.export_status
        d._on_front_message(d, {"action": "export", "directory": str(tmp_path / "from-button")}, [])
        assert (tmp_path / "from-button" / "dashboard.html").exists()
    finally:
        d.close()


def test_closed_dashboard_stops_listening(dash: TelemetryDashboard) -> None:
    bus = global_registry().events
    before = len(bus)
    dash.close()
    assert len(bus) < before


def test_failed_fit_is_shown() -> None:
    trainer, (train, val) = _fit(1)

    def explode(t: Any, step: int, logs: dict) -> None:
        if step == 2:
            raise RuntimeError("boom at step 2")

    trainer.add_callback(st.train.LambdaCallback(on_step_end=explode))
    run = trainer.fit(train, val, epochs=3, background=True)
    d = TelemetryDashboard(run)
    try:
        with pytest.raises(RuntimeError):
            run.wait(30)
        d.flush()
        assert "failed: RuntimeError: boom at step 2" in d.status
        assert any(o["kind"] == "error" for o in d.overlays)
    finally:
        d.close()


@pytest.mark.parametrize("attach", ["before", "after"])
def test_fit_end_is_marked_once_whether_attached_before_or_after_the_end(attach: str) -> None:
    rec = st.telemetry.record()
    trainer, (train, val) = _fit(1, callbacks=(rec,))
    gate = threading.Event()
    trainer.add_callback(st.train.LambdaCallback(on_fit_start=lambda t: gate.wait(10)))
    run = trainer.fit(train, val, epochs=2, background=True)
    if attach == "after":
        gate.set()
        run.wait(30)  # the fit_end event is published before the dashboard subscribes
    d = TelemetryDashboard(run)
    try:
        gate.set()
        run.wait(30)
        d.flush()
        d.flush()
        ends = [(o["label"], o["step"]) for o in d.overlays if o["kind"] == "event"]
        assert ends == [("fit end", trainer.global_step)]
    finally:
        d.close()


def test_trainer_source_with_a_recorder_watched_before_and_across_fits(tmp_path) -> None:
    rec = st.telemetry.record()
    trainer, (train, val) = _fit(2, callbacks=(rec,))
    d = TelemetryDashboard(trainer)  # before any fit: waiting, and listening
    try:
        assert repr(d) == "TelemetryDashboard(source=Trainer)" and d.source is trainer
        assert d.status == "on cpu · waiting" and d.series_names == []
        trainer.fit(train, val, epochs=2)  # in the foreground: the update thread sends meanwhile
        d.flush()
        assert {"loss", "accuracy", "val_loss"} <= set(d.series_names)
        assert any(k.startswith("memory:") for k in d.series_names) and d.op_breakdown
        assert d.points("loss")[0].tolist() == [float(s) for s in range(1, 9)]
        assert [o["label"] for o in d.overlays if o["kind"] == "epoch"] == ["epoch 1", "epoch 2"]
        assert d.status == "step 8 · epoch 2/2 · on cpu · done"
        trainer.fit(train, epochs=1)  # a second fit continues the same curves
        d.flush()
        assert d.points("loss")[0].tolist() == [float(s) for s in range(1, 13)]
        assert [o["label"] for o in d.overlays if o["kind"] == "epoch"][-1] == "epoch 3"
        written = d.export(tmp_path / "export")
        assert (tmp_path / "export" / "history.parquet").exists() and (tmp_path / "export" / "ops.parquet").exists()
        assert pl.read_parquet(tmp_path / "export" / "history.parquet").filter(scope="step", name="loss").height == 12
        assert written["figure"].exists()
    finally:
        d.close()


def test_trainer_source_without_a_recorder_uses_its_events_and_history() -> None:
    trainer, (train, val) = _fit(1)
    trainer.fit(train, val, epochs=1)  # before the dashboard: read back from the trainer's history
    d = TelemetryDashboard(trainer)
    try:
        assert d.points("loss")[0].tolist() == [1.0, 2.0, 3.0, 4.0] and len(d.points("val_loss")[0]) == 1
        trainer.fit(train, val, epochs=1)  # during: from its events
        d.flush()
        assert d.points("loss")[0].tolist() == [float(s) for s in range(1, 9)]
        assert len(d.points("val_loss")[0]) == 2 and d.op_breakdown == []
        assert d.status.endswith("on cpu · done")
    finally:
        d.close()


def test_poll_reads_only_the_rows_recorded_since_the_last_poll() -> None:
    """A long run does not make each poll slower: a poll reads the new op rows, not the whole table."""
    x = st.ones(4, 4)
    rec = st.telemetry.record(chunk_rows=64)
    with rec:
        for _ in range(500):
            x = x + 1.0
        d = TelemetryDashboard(rec)
        d._flusher.stop()
        read_at_start = d._ops_tail.rows_read
        assert read_at_start == rec.ops.height == 500
        for round_ in range(3):
            for _ in range(200):
                x = x * 1.0
            d._poll_frames(force=True)
            assert d._ops_tail.rows_read == read_at_start + 200 * (round_ + 1)  # the 200 new rows, nothing else
    d._poll_frames(force=True)
    full = rec.ops.group_by("op").agg(pl.col("duration_ns").sum() / 1e6, pl.len())
    totals = {op: (ms, n) for (op, _be), (ms, n) in d._op_totals.items()}
    for op, ms, n in full.iter_rows():
        assert totals[op][1] == n and totals[op][0] == pytest.approx(ms)
    d.close()


def test_figure_of_a_long_run_draws_a_bounded_number_of_marks(dash: TelemetryDashboard, tmp_path) -> None:
    """Hundreds of epoch marks: the exported figure thins them and is built in one go (not per mark)."""
    from spiraltorch_nb.widgets.dashboard import FIGURE_EPOCH_MARKS

    dash._flusher.stop()
    for step in range(3000):
        publish_metric(step, "loss", 1.0 / (step + 1))
        publish_metric(step, "accuracy", step / 3000)
        if step % 5 == 0:
            publish_metric(step, "epoch", step // 5)
    dash.add_overlay("→ wgpu", step=1502, kind="device")
    t0 = time.perf_counter()
    fig = dash.figure()
    assert time.perf_counter() - t0 < 10
    panels = 2  # loss, accuracy
    lines = [shape.x0 for shape in fig.layout.shapes]
    assert len(lines) <= (FIGURE_EPOCH_MARKS + 1) * panels and lines.count(1502) == panels
    dash._on_front_message(dash, {"action": "export", "directory": str(tmp_path / "long")}, [])
    assert dash.export_status == f"exported to {tmp_path / 'long'}" and dash.error == ""
