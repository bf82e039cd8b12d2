"""The Recorder: schemas, exactly the expected events, lifecycle, metrics, bus, callbacks, timers."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

import spiraltorch_nb as st
from spiraltorch_nb.backends import get_backend, probe
from spiraltorch_nb.backends.base import report_transfer
from spiraltorch_nb.ops import registry
from spiraltorch_nb.plugins import global_registry
from spiraltorch_nb.telemetry import (
    MEMORY_SCHEMA,
    METRICS_SCHEMA,
    OPS_SCHEMA,
    TRANSFERS_SCHEMA,
    Recorder,
    TelemetryError,
)

WGPU = probe("wgpu")


def _chain():
    a = st.tensor([1.0, 2.0, 3.0], requires_grad=True)
    b = st.tensor([4.0, 5.0, 6.0], requires_grad=True)
    return a, b


# ---- schemas ------------------------------------------------------------------------

def test_frames_have_the_documented_schemas():
    a, b = _chain()
    with st.telemetry.record() as rec:
        (a * b + a).sum().backward()
        rec.log(step=1, loss=0.5)
        report_transfer("cpu", "wgpu", 12, 0, 1)
    assert dict(rec.ops.schema) == OPS_SCHEMA
    assert dict(rec.transfers.schema) == TRANSFERS_SCHEMA
    assert dict(rec.memory.schema) == MEMORY_SCHEMA
    assert dict(rec.metrics.schema) == METRICS_SCHEMA
    for name in ("op", "backend", "device", "phase", "shapes", "dtype", "start_ns", "duration_ns",
                 "timing", "bytes_in", "bytes_out", "flops", "node", "seq"):
        assert name in rec.ops.columns
    assert rec.ops["shapes"].dtype == pl.List(pl.List(pl.Int64))


def test_empty_recorder_has_empty_frames_with_schemas():
    rec = st.telemetry.record()
    assert rec.ops.height == 0 and dict(rec.ops.schema) == OPS_SCHEMA
    assert rec.metrics.height == 0 and dict(rec.metrics.schema) == METRICS_SCHEMA


# ---- the events of an op chain ----------------------------------------------------------

def test_op_chain_gives_exactly_the_expected_events():
    a, b = _chain()
    with st.telemetry.record() as rec:
        (a * b + a).sum().backward()
    ops = rec.ops
    fwd = ops.filter(pl.col("phase") == "forward")
    bwd = ops.filter(pl.col("phase") == "backward")
    assert fwd["op"].to_list() == ["mul", "add", "sum"]
    # sum -> expand; add passes its gradient through; mul -> g*b and g*a; a's two grads are added
    assert sorted(bwd["op"].to_list()) == ["add", "expand", "mul", "mul"]
    assert bwd["op"][0] == "expand"
    assert ops.height == 7
    assert ops["seq"].to_list() == list(range(7))
    assert fwd["node"].null_count() == 0 and bwd["node"].null_count() == 4  # no create_graph
    assert fwd["shapes"].to_list() == [[[3], [3]], [[3], [3]], [[3]]]
    assert fwd["bytes_in"].to_list() == [24, 24, 12]
    assert fwd["bytes_out"].to_list() == [12, 12, 4]
    assert set(ops["dtype"]) == {"float32"}
    assert set(ops["backend"]) == {"cpu"} and set(ops["device"]) == {"cpu"}
    assert set(ops["timing"]) == {"host"}
    assert (ops["duration_ns"] >= 0).all() and (ops["duration_ns"] == ops["host_ns"]).all()
    assert ops["start_ns"].is_sorted() and (ops["start_ns"] >= rec.t0_ns).all()
    assert np.allclose(a.grad.numpy(), [5.0, 6.0, 7.0])


def test_node_column_is_the_tape_node_of_the_output():
    x = st.ones(2, requires_grad=True)
    with st.telemetry.record() as rec:
        y = x * 2.0
        with st.no_grad():
            z = x * 3.0
    assert rec.ops["node"].to_list() == [id(y.grad_fn), None]
    del z


def test_flops_estimates_for_matmul_elementwise_and_layout():
    x = st.ones(5, 7, 3)
    w = st.ones(3, 4)
    with st.telemetry.record() as rec:
        y = x @ w             # batch 5, M 7, K 3, N 4
        y.relu()
        y.reshape(35, 4)
    flops = dict(zip(rec.ops["op"], rec.ops["flops"], strict=True))
    assert flops == {"matmul": 2 * 5 * 7 * 4 * 3, "relu": 5 * 7 * 4, "reshape": 0}


def test_conv2d_counts_flops_through_unfold_and_matmul():
    x = st.ones(1, 2, 5, 5)
    w = st.ones(3, 2, 3, 3)
    with st.telemetry.record() as rec:
        st.nn.functional.conv2d(x, w)
    ops = rec.ops
    assert "unfold" in ops["op"].to_list()
    assert ops.filter(op="unfold")["flops"].to_list() == [0]
    mm = ops.filter(op="matmul")["flops"].sum()
    assert mm == 2 * 3 * 9 * (2 * 3 * 3)  # out channels x positions x (C*kh*kw)


def test_custom_op_flops_metadata_is_used():
    op = (st.ops.OperatorBuilder("tele_double", 1, 1).with_backend("cpu", lambda x: x * 2)
          .with_metadata(flops=lambda shapes, out_numel: 7 * out_numel).build())
    with st.telemetry.record() as rec:
        op(st.ones(3))
    assert rec.ops["flops"].to_list() == [21]
    st.ops.global_operator_registry().unregister("tele_double")


# ---- transfers --------------------------------------------------------------------------

def test_cpu_only_chain_records_no_transfers():
    a, b = _chain()
    with st.telemetry.record() as rec:
        (a * b + a).sum().backward()
        a.numpy()
        a.to("cpu")
    assert rec.transfers.height == 0


def test_reported_transfers_are_recorded_with_seq_order():
    with st.telemetry.record() as rec:
        st.ones(2) + 1
        report_transfer("cpu", "cuda:0", 1024, 5, 7)
    t = rec.transfers
    assert t.select("src", "dst", "bytes", "start_ns", "duration_ns").rows() == [("cpu", "cuda:0", 1024, 5, 7)]
    assert t["seq"].item() == 1 and rec.ops["seq"].to_list() == [0]


@pytest.mark.skipif(not WGPU["available"], reason=f"wgpu unavailable: {WGPU['reason']}")
def test_wgpu_upload_and_download_are_one_transfer_each():
    host = st.ones(16, 16)
    with st.telemetry.record() as rec:
        dev = host.to("wgpu")
    up = rec.transfers
    assert up.height == 1, up
    assert up["bytes"].item() == 16 * 16 * 4
    assert "wgpu" in up["dst"].item() and "wgpu" not in up["src"].item()
    with st.telemetry.record() as rec:
        y = dev * 2.0
        before = rec.transfers.height
        y.numpy()
    down = rec.transfers
    assert before == 0 and down.height == 1, down
    assert "wgpu" in down["src"].item() and down["bytes"].item() == 16 * 16 * 4
    assert set(rec.ops["backend"]) == {"wgpu"}


# ---- lifecycle ----------------------------------------------------------------------------

def test_record_returns_an_unstarted_recorder_and_start_stop_work():
    rec = st.telemetry.record()
    assert not rec.active and registry.get_dispatch_observer() is None
    st.ones(2) + 1
    assert rec.start() is rec and rec.active
    assert st.telemetry.active_recorder() is rec
    st.ones(2) + 1
    rec.stop()
    st.ones(2) + 1
    assert not rec.active and rec.ops["op"].to_list() == ["add"]
    assert st.telemetry.active_recorder() is None


def test_a_second_active_recorder_is_refused_with_a_clear_error():
    with st.telemetry.record() as outer:
        inner = st.telemetry.record()
        with pytest.raises(TelemetryError, match="already observing"):
            inner.start()
        assert registry.get_dispatch_observer() is outer
    assert not inner.active


def test_recorder_survives_an_exception_in_its_block_and_reraises():
    rec = st.telemetry.record()
    with pytest.raises(ZeroDivisionError):
        with rec:
            st.ones(3) * 2
            rec.log(step=0, loss=1.0)
            raise ZeroDivisionError("inside the block")
    assert not rec.active and registry.get_dispatch_observer() is None
    assert rec.ops["op"].to_list() == ["mul"]
    assert rec.metrics["value"].to_list() == [1.0]


def test_failing_op_inside_recording_keeps_prior_events():
    with pytest.raises(st.ShapeError):
        with st.telemetry.record() as rec:
            st.ones(2) + 1
            st.ones(2) + st.ones(3)
    assert rec.ops["op"].to_list() == ["add"]


def test_bad_options_raise():
    with pytest.raises(TelemetryError, match="max_events"):
        st.telemetry.record(max_events=0)
    with pytest.raises(TelemetryError, match="memory_every"):
        st.telemetry.record(memory_every=-1)


# ---- metrics, steps, memory ------------------------------------------------------------------

def test_log_metrics_long_format_and_step_rules():
    rec = st.telemetry.record()
    rec.log(loss=2.0)                      # step 0
    rec.log(loss=1.5, acc=st.tensor(0.5))  # step 1, a tensor value
    rec.log(step=10, loss=np.float32(1.0))
    rec.log(loss=0.5)                      # step 11
    m = rec.metrics
    assert m.select("step", "name", "value").rows() == [
        (0, "loss", 2.0), (1, "loss", 1.5), (1, "acc", 0.5), (10, "loss", 1.0), (11, "loss", 0.5)]
    with pytest.raises(TelemetryError, match="loss"):
        rec.log(loss="high")
    with pytest.raises(TelemetryError, match="step"):
        rec.log(step=1.5, loss=1.0)


def test_ops_carry_the_last_logged_step():
    with st.telemetry.record() as rec:
        st.ones(1) + 1
        rec.log(step=3, loss=1.0)
        st.ones(1) + 1
    assert rec.ops["step"].to_list() == [None, 3]


def test_memory_is_sampled_at_start_stop_log_and_every_n_ops():
    with st.telemetry.record(memory_every=5) as rec:
        for _ in range(12):
            st.ones(2) + 1
        rec.log(loss=1.0)
    mem = rec.memory.filter(backend="cpu")  # other started backends add their own rows
    # start, ops 5 and 10, log, stop
    assert mem.height == 5
    assert set(mem["source"]) == {"process_rss"}
    assert mem["time_ns"].is_sorted()
    if mem["allocated_bytes"].null_count() == 0:
        assert (mem["allocated_bytes"] > 0).all()
        assert (mem["peak_bytes"] >= mem["allocated_bytes"]).all()


def test_memory_stats_of_a_backend_are_used(monkeypatch):
    be = get_backend("cpu")
    monkeypatch.setattr(be, "memory_stats", lambda: {"allocated_bytes": 100, "peak_bytes": 250}, raising=False)
    with st.telemetry.record(memory_every=0) as rec:
        st.ones(2) + 1
    mem = rec.memory.filter(backend="cpu")
    assert mem.select("backend", "allocated_bytes", "peak_bytes", "source").rows() == [
        ("cpu", 100, 250, "memory_stats")] * 2


# ---- the event bus ----------------------------------------------------------------------------

def test_events_are_published_only_to_subscribers():
    bus = global_registry().events
    seen = []
    with bus.subscribe("telemetry.*", seen.append):
        with st.telemetry.record() as rec:
            st.ones(2) * 3
            rec.log(step=0, loss=0.25)
            report_transfer("cpu", "wgpu", 8, 0, 1)
    topics = [e.topic for e in seen]
    assert topics == ["telemetry.op", "telemetry.metric", "telemetry.transfer"]
    op = seen[0].payload
    assert op["op"] == "mul" and op["phase"] == "forward" and op["shapes"] == [[2]] and op["flops"] == 2
    assert set(OPS_SCHEMA) == set(op)
    assert seen[1].payload["value"] == 0.25 and seen[2].payload["bytes"] == 8


def test_events_can_be_turned_off():
    bus = global_registry().events
    seen = []
    with bus.subscribe("telemetry.*", seen.append):
        with st.telemetry.record(events=False):
            st.ones(2) * 3
    assert seen == []


# ---- Trainer callbacks ---------------------------------------------------------------------------

class _FakeTrainer:
    global_step = 0


def test_trainer_callbacks_log_metrics_and_own_the_recording():
    rec = st.telemetry.record()
    tr = _FakeTrainer()
    rec.on_fit_start(tr)
    assert rec.active
    rec.on_epoch_start(tr, 0)
    for step in range(3):
        tr.global_step = step
        st.ones(2) + 1
        rec.on_step_end(tr, step, {"loss": st.tensor(1.0 / (step + 1)), "lr": 0.1, "note": "text",
                                   "epoch": 0, "batch": step, "batch_size": 32})
    rec.on_validation_end(tr, 0, {"loss": 0.7, "val_acc": 0.9})
    rec.on_epoch_end(tr, 0, {"loss": 0.6, "val_loss": 0.7, "val_acc": 0.9})
    rec.on_fit_end(tr)
    assert not rec.active
    m = rec.metrics
    assert m.filter(name="loss")["value"].round(4).to_list() == [1.0, 0.5, 0.3333]
    assert m.filter(name="lr")["step"].to_list() == [0, 1, 2]
    assert m.filter(name="val_loss")["value"].to_list() == [0.7]
    assert m.filter(name="val_acc")["step"].to_list() == [2]
    assert m.filter(name="epoch")["value"].to_list() == [0.0]  # from on_epoch_start only
    assert m.filter(name="epoch_loss").select("step", "value").rows() == [(2, 0.6)]
    assert m.filter(name="val_loss").height == 1  # not again from on_epoch_end
    assert not {"note", "batch", "batch_size"} & set(m["name"].to_list())
    assert rec.ops["step"].to_list() == [0, 0, 1]  # epoch start logged step 0


def test_fit_callbacks_leave_a_started_recorder_running():
    with st.telemetry.record() as rec:
        rec.on_fit_start(_FakeTrainer())
        rec.on_fit_end(_FakeTrainer())
        assert rec.active


# ---- device timers -----------------------------------------------------------------------------

class _FakeTimer:
    def __init__(self):
        self.marks = 0
        self.entered = self.exited = 0
        self.resolved: list = []

    def __enter__(self):
        self.entered += 1
        return self

    def __exit__(self, *exc):
        self.exited += 1

    def mark(self):
        self.marks += 1
        return self.marks

    def elapsed_ns(self, tokens):
        self.resolved.extend(tokens)
        return [1000 * t if t != 2 else None for t in tokens]


def test_device_timer_hook_gives_device_timing(monkeypatch):
    timer = _FakeTimer()
    monkeypatch.setattr(get_backend("cpu"), "device_timer", lambda: timer, raising=False)
    with st.telemetry.record() as rec:
        for _ in range(3):
            st.ones(2) + 1
    ops = rec.ops
    assert timer.entered == 1 and timer.exited == 1 and timer.marks == 3
    assert ops["timing"].to_list() == ["device", "host", "device"]
    assert ops["duration_ns"].to_list()[0::2] == [1000, 3000]
    assert ops["duration_ns"][1] == ops["host_ns"][1]


def test_device_timing_false_ignores_the_hook(monkeypatch):
    timer = _FakeTimer()
    monkeypatch.setattr(get_backend("cpu"), "device_timer", lambda: timer, raising=False)
    with st.telemetry.record(device_timing=False) as rec:
        st.ones(2) + 1
    assert timer.entered == 0 and rec.ops["timing"].to_list() == ["host"]


def test_a_failing_device_timer_falls_back_to_host(monkeypatch):
    def broken():
        raise RuntimeError("no timestamp queries")

    monkeypatch.setattr(get_backend("cpu"), "device_timer", broken, raising=False)
    with pytest.warns(RuntimeWarning, match="no timestamp queries"):
        with st.telemetry.record() as rec:
            st.ones(2) + 1
    assert rec.ops["timing"].to_list() == ["host"]


def test_repr_counts_rows():
    with st.telemetry.record() as rec:
        st.ones(2) + 1
    assert repr(rec).startswith("<Recorder stopped: ops=1 ")
    assert isinstance(rec, Recorder)


def test_signatures_repeat_across_steps_and_restarts():
    x = st.ones(3, 3)
    rec = st.telemetry.record()
    for _ in range(3):
        with rec:
            (x @ x + 1.0).relu()
    assert rec.ops.height == 9
    assert len(rec._sigs.keys) == 3  # matmul, add, relu: interned once
    assert rec.ops["op"].to_list() == ["matmul", "add", "relu"] * 3


def test_rows_past_the_signature_capacity_are_converted_one_by_one():
    rec = st.telemetry.record(chunk_rows=2)
    rec._sigs.capacity = 3
    with rec:
        for n in range(1, 8):
            st.ones(n) * 2.0
    ops = rec.ops
    assert ops["shapes"].to_list() == [[[n]] for n in range(1, 8)]
    assert ops["bytes_out"].to_list() == [4 * n for n in range(1, 8)]
    assert ops["flops"].to_list() == list(range(1, 8))
    assert ops["op"].to_list() == ["mul"] * 7
    assert len(rec._sigs.keys) <= 3  # chunks whose new signatures overflow are converted directly


def test_recorder_as_a_real_trainer_callback():
    train = pytest.importorskip("spiraltorch_nb.train", reason="the Trainer is not importable")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((48, 4)).astype(np.float32)
    y = rng.integers(0, 3, 48)
    model = st.nn.Sequential(st.nn.Linear(4, 8), st.nn.ReLU(), st.nn.Linear(8, 3))
    rec = st.telemetry.record()
    trainer = train.Trainer(model, "cross_entropy", st.optim.SGD(model.parameters(), lr=0.1),
                            callbacks=[rec], progress=False)
    trainer.fit(train.DataLoader(x, y, batch_size=16), train.DataLoader(x, y, batch_size=48), epochs=2)
    assert not rec.active  # started by on_fit_start, stopped by on_fit_end
    m = rec.metrics
    assert m.filter(name="loss")["step"].to_list() == [1, 2, 3, 4, 5, 6]
    assert m.filter(name="val_loss")["step"].to_list() == [3, 6]
    assert set(rec.ops["phase"]) == {"forward", "backward"}
    assert rec.ops.filter(pl.col("step").is_not_null()).height > 0


def test_a_subscriber_arriving_mid_recording_is_noticed_within_a_few_hundred_ops():
    bus = global_registry().events
    seen = []
    with st.telemetry.record() as rec:
        x = st.ones(2)
        x + 1
        with bus.subscribe("telemetry.op", seen.append):
            for _ in range(600):
                x + 1
    assert 600 - 256 <= len(seen) <= 600
    assert [e.payload["seq"] for e in seen] == rec.ops["seq"].to_list()[-len(seen):]
