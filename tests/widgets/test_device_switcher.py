"""DeviceSwitcher driven from Python: listing, switching, failures, and switching a running fit."""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np
import pytest

import spiraltorch_nb as st
from spiraltorch_nb.backends import probe
from spiraltorch_nb.plugins import EventBus
from spiraltorch_nb.widgets import DeviceSwitcher

WGPU = probe("wgpu")
needs_wgpu = pytest.mark.skipif(not WGPU["available"], reason=f"wgpu unavailable: {WGPU['reason']}")


def small_model() -> tuple[Any, Any]:
    model = st.nn.Sequential(st.nn.Linear(4, 8), st.nn.ReLU(), st.nn.Linear(8, 2))
    opt = st.optim.Adam(model.parameters(), lr=0.01)
    out = model(st.randn(3, 4)).sum()
    out.backward()
    opt.step()  # so the optimizer has state tensors to move
    return model, opt


def devices_of(model: Any, opt: Any) -> set[str]:
    found = {str(p.device) for p in model.parameters()}
    found |= {str(v.device) for s in opt.state.values() for v in s.values() if isinstance(v, st.Tensor)}
    return found


def test_lists_every_backend_with_status() -> None:
    sw = DeviceSwitcher()
    names = [d["name"] for d in sw.devices]
    assert names[0] == "cpu" and len(names) == len(set(names))
    assert {d["backend"] for d in sw.devices} == {"cpu", "cuda", "wgpu"}
    for d in sw.devices:
        assert set(d) >= {"name", "available", "reason", "description"}
        assert d["description"]
        assert bool(d["reason"]) != d["available"]  # a reason exactly when unavailable
    assert [d["available"] for d in sw.devices] == sorted((d["available"] for d in sw.devices), reverse=True)
    assert sw.current == "cpu" and repr(sw) == f"DeviceSwitcher(current='cpu', devices={len(names)})"
    assert "cpu" in sw.readout and sw.readout["cpu"]["memory_bytes"] > 0
    sw.close()


def test_unavailable_device_shows_reason_and_moves_nothing() -> None:
    model, opt = small_model()
    sw = DeviceSwitcher(model=model, optimizer=opt)
    absent = next((d for d in sw.devices if not d["available"]), None)
    if absent is None:
        pytest.skip("every backend is available here")
    assert sw.select(absent["name"]) is False
    assert absent["reason"] in sw.error and "stays on cpu" in sw.error
    assert sw.current == "cpu" and devices_of(model, opt) == {"cpu"}
    assert str(st.get_default_device()) == "cpu"
    # the same through the front end's message: shown, never raised
    sw.error = ""
    sw._on_front_message(sw, {"action": "select", "name": absent["name"]}, [])
    assert absent["reason"] in sw.error
    sw._on_front_message(sw, {"action": "select", "name": "tpu"}, [])
    assert "unknown device 'tpu'" in sw.error


def with_fake_wgpu(sw: DeviceSwitcher) -> None:
    """List wgpu as available, so a switch can be attempted where no adapter exists (nothing touches it)."""
    sw.devices = [d for d in sw.devices if d["name"] != "wgpu"] + [
        {"name": "wgpu", "backend": "wgpu", "available": True, "reason": "", "description": "test adapter"}]


def test_failed_move_is_reported_and_leaves_the_model(monkeypatch: pytest.MonkeyPatch) -> None:
    import spiraltorch_nb.train._relocate as relocate_mod

    model, opt = small_model()
    sw = DeviceSwitcher(model=model, optimizer=opt)
    with_fake_wgpu(sw)

    def out_of_memory(*args: Any) -> int:
        raise MemoryError("device out of memory allocating 512 MiB")

    monkeypatch.setattr(relocate_mod, "relocate", out_of_memory)
    assert sw.select("wgpu") is False
    assert "MemoryError: device out of memory" in sw.error and sw.current == "cpu"
    assert devices_of(model, opt) == {"cpu"} and str(st.get_default_device()) == "cpu"


def test_selecting_the_current_device_moves_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    import spiraltorch_nb.train._relocate as relocate_mod

    model, opt = small_model()
    sw = DeviceSwitcher(model, opt)  # the contract's positional form
    monkeypatch.setattr(relocate_mod, "relocate", lambda *a: pytest.fail("nothing should be moved"))
    assert sw.select("cpu") is True
    assert sw.current == "cpu" and sw.pending == "" and sw.error == ""
    assert sw.status == "already on cpu; nothing to move"


@needs_wgpu
def test_click_moves_model_optimizer_state_and_default_device() -> None:
    model, opt = small_model()
    sw = DeviceSwitcher(model=model, optimizer=opt)
    try:
        assert sw.select("wgpu") is True
        assert sw.current == "wgpu" and sw.error == "" and "moved" in sw.status
        assert devices_of(model, opt) == {"wgpu"} and str(st.get_default_device()) == "wgpu"
        loss = model(st.randn(2, 4)).sum()  # the model still trains where it now lives
        loss.backward()
        opt.step()
        assert sw.select("cpu") and devices_of(model, opt) == {"cpu"}
    finally:
        st.set_default_device("cpu")


@needs_wgpu
def test_float64_model_that_wgpu_cannot_hold_stays_put() -> None:
    model = st.nn.Linear(3, 3).double()
    sw = DeviceSwitcher(model=model)
    ok = sw.select("wgpu")
    if ok:
        st.set_default_device("cpu")
        pytest.skip("this wgpu adapter supports float64, so there is no unsupported dtype to refuse")
    assert sw.error and sw.current == "cpu" and str(model.weight.device) == "cpu"


class FakeTrainer:
    """The trainer surface the switcher uses: events, device, request_device, a running flag.

    ``device`` is only a name here: a trainer "on wgpu" needs no adapter, so a switch to
    cpu can be requested and observed anywhere.
    """

    def __init__(self, device: str = "cpu") -> None:
        self.events = EventBus()
        self.device = device
        self.running = True
        self.requested: list[str] = []
        self.model = None
        self.optimizer = None

    def request_device(self, dev: str) -> dict | None:
        self.requested.append(dev)
        if self.running:
            return None
        return {"ok": True, "moved": 0, "to": dev}

    def publish(self, topic: str, **payload: Any) -> None:
        self.events.publish(topic, {"trainer": self, **payload})


class FakeRun:
    def __init__(self, trainer: FakeTrainer) -> None:
        self.trainer = trainer
        self.done = False


def test_switch_during_fit_is_pending_until_the_trainer_applies_it() -> None:
    trainer = FakeTrainer("wgpu")
    sw = DeviceSwitcher(run=FakeRun(trainer))
    assert sw.current == "wgpu"
    assert sw.select("cpu") is True and trainer.requested == ["cpu"] and sw.pending == "cpu"
    other = FakeTrainer("wgpu")
    other.publish("trainer.device_changed", **{"from": "wgpu", "to": "cpu", "step": 3})
    assert sw.pending == "cpu"  # another trainer's event is not ours
    trainer.device = "cpu"
    trainer.publish("trainer.device_changed", **{"from": "wgpu", "to": "cpu", "step": 7})
    assert sw.pending == "" and sw.current == "cpu" and "step 7" in sw.status


def test_selecting_the_current_device_during_a_fit_is_never_pending() -> None:
    """The trainer publishes nothing for a move to where it is, so nothing may wait for it."""
    trainer = FakeTrainer("cpu")
    sw = DeviceSwitcher(run=FakeRun(trainer))
    assert sw.select("cpu") is True
    assert sw.pending == "" and sw.current == "cpu" and sw.error == ""
    assert trainer.requested == [] and sw.status == "already on cpu; nothing to move"
    # the same click from the page
    sw._on_front_message(sw, {"action": "select", "name": "cpu"}, [])
    assert sw.pending == "" and trainer.requested == []


def test_selecting_the_current_device_cancels_a_pending_switch() -> None:
    trainer = FakeTrainer("wgpu")
    sw = DeviceSwitcher(run=FakeRun(trainer))
    sw.select("cpu")
    assert sw.pending == "cpu"
    assert sw.select("wgpu") is True
    # the trainer's pending request is replaced by one for where it is (which moves nothing)
    assert trainer.requested == ["cpu", "wgpu"] and sw.pending == "" and sw.current == "wgpu"
    assert sw.status == "already on wgpu; the switch to cpu is cancelled"


def test_pending_is_set_before_the_trainer_can_apply_the_switch() -> None:
    """A trainer at a step boundary may move (and publish) before request_device returns."""

    class EagerTrainer(FakeTrainer):
        def request_device(self, dev: str) -> None:
            self.requested.append(dev)
            self.device = dev
            self.publish("trainer.device_changed", **{"from": "wgpu", "to": dev, "step": 4})
            return None

    trainer = EagerTrainer("wgpu")
    sw = DeviceSwitcher(run=FakeRun(trainer))
    assert sw.select("cpu") is True
    assert sw.pending == "" and sw.current == "cpu" and "step 4" in sw.status


def test_failed_switch_during_fit_shows_the_trainers_error() -> None:
    trainer = FakeTrainer("wgpu")
    sw = DeviceSwitcher(run=FakeRun(trainer))
    sw.select("cpu")
    trainer.publish("trainer.device_change_failed", **{"from": "wgpu", "to": "cpu", "step": 2,
                                                         "message": "MemoryError: out of memory"})
    assert sw.pending == "" and sw.current == "wgpu"
    assert "out of memory" in sw.error and "stays on wgpu" in sw.error


def test_switch_requested_as_the_fit_ends_is_applied_after_it() -> None:
    trainer = FakeTrainer("wgpu")
    run = FakeRun(trainer)
    sw = DeviceSwitcher(run=run)
    sw.select("cpu")
    trainer.publish("trainer.fit_end", stopped=False)
    trainer.running = False
    run.done = True
    deadline = time.monotonic() + 5
    while sw.pending and time.monotonic() < deadline:
        time.sleep(0.01)
    assert sw.pending == "" and trainer.requested == ["cpu", "cpu"] and sw.current == "cpu"


def test_step_readout_from_trainer_events_without_a_recorder() -> None:
    trainer = FakeTrainer()
    sw = DeviceSwitcher(run=FakeRun(trainer))
    assert sw.recorder is None
    for step in range(5):
        trainer.publish("trainer.step_end", step=step, logs={"loss": 1.0})
        time.sleep(0.002)
    sw._flush_readout()
    cpu = sw.readout["cpu"]
    assert cpu["steps"] == 5 and cpu["step_ms"] >= 1.0
    assert cpu["step_source"] == "trainer events" and cpu["memory_source"] == "process RSS"
    assert cpu["memory_bytes"] > 0


def test_readout_from_the_recorder_of_a_run() -> None:
    """With a recorder among the trainer's callbacks, step time and memory come from its telemetry."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 4)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    model, opt = small_model()
    rec = st.telemetry.record()
    gate = threading.Event()
    trainer = st.train.Trainer(model, "cross_entropy", opt, progress=False,
                               callbacks=[rec, st.train.LambdaCallback(on_fit_start=lambda t: gate.wait(10))])
    run = trainer.fit(st.train.DataLoader(x, y, batch_size=8), epochs=3, background=True)
    sw = DeviceSwitcher(run=run)
    try:
        assert sw.recorder is rec
        gate.set()  # the switcher listens before the first step
        run.wait(60)
        sw.refresh()
        cpu = sw.readout["cpu"]
        assert cpu["step_source"] == "telemetry" and cpu["memory_source"] == "telemetry"
        assert cpu["steps"] == trainer.global_step == 24
        # the last step time is the gap between the recorder's last two logged steps
        times = rec.metrics.filter(name="loss").sort("step")["time_ns"].to_list()
        assert cpu["step_ms"] == pytest.approx((times[-1] - times[-2]) / 1e6)
        last_cpu_sample = rec.memory.filter(device="cpu").drop_nulls("allocated_bytes")["allocated_bytes"][-1]
        assert cpu["memory_bytes"] == last_cpu_sample
    finally:
        sw.close()


def test_readout_from_an_explicit_recorder_in_a_hand_written_loop() -> None:
    model, opt = small_model()
    rec = st.telemetry.record()
    sw = DeviceSwitcher(model, opt, recorder=rec)
    assert sw.readout["cpu"]["step_source"] is None  # nothing logged yet
    with rec:
        for step in range(4):
            loss = model(st.randn(3, 4)).sum()
            loss.backward()
            opt.step()
            rec.log(step=step, loss=loss)
            time.sleep(0.003)
    sw.refresh()
    cpu = sw.readout["cpu"]
    assert cpu["steps"] == 4 and cpu["step_ms"] >= 3.0 and cpu["step_source"] == "telemetry"
    assert cpu["memory_source"] == "telemetry" and cpu["memory_bytes"] > 0
    sw.close()


def test_recorder_must_be_a_recorder() -> None:
    from spiraltorch_nb.widgets import WidgetError

    with pytest.raises(WidgetError, match="takes a telemetry Recorder"):
        DeviceSwitcher(recorder="rec")


@needs_wgpu
def test_real_background_fit_switches_at_a_step_boundary() -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 4)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    model, opt = small_model()
    steps_on: dict[str, int] = {}
    slow = st.train.LambdaCallback(on_step_end=lambda t, step, logs: (
        steps_on.__setitem__(str(t.device), steps_on.get(str(t.device), 0) + 1), time.sleep(0.01)))
    trainer = st.train.Trainer(model, "cross_entropy", opt, callbacks=[slow], progress=False)
    run = trainer.fit(st.train.DataLoader(x, y, batch_size=8), epochs=50, background=True)
    sw = DeviceSwitcher(run=run)
    try:
        while not steps_on:
            time.sleep(0.01)
        assert sw.select("wgpu") and sw.pending in ("wgpu", "")
        deadline = time.monotonic() + 30
        while sw.current != "wgpu" and time.monotonic() < deadline:
            time.sleep(0.02)
        assert sw.current == "wgpu" and sw.pending == "" and str(trainer.device) == "wgpu"
        assert str(st.get_default_device()) == "wgpu"
        while not steps_on.get("wgpu") and time.monotonic() < deadline:
            time.sleep(0.02)  # the first wgpu step compiles its kernels
        assert devices_of(model, opt) == {"wgpu"} and steps_on.get("wgpu", 0) > 0
    finally:
        run.stop()
        run.wait(60)
        st.set_default_device("cpu")
        sw.close()


def test_real_background_fit_selecting_its_own_device_leaves_nothing_pending() -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 4)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    model, opt = small_model()
    started = threading.Event()
    slow = st.train.LambdaCallback(on_step_end=lambda t, step, logs: (started.set(), time.sleep(0.005)))
    trainer = st.train.Trainer(model, "cross_entropy", opt, callbacks=[slow], progress=False)
    run = trainer.fit(st.train.DataLoader(x, y, batch_size=8), epochs=50, background=True)
    sw = DeviceSwitcher(run=run)
    try:
        assert started.wait(30)
        assert sw.select("cpu") is True
        assert sw.pending == "" and sw.current == "cpu" and "already on cpu" in sw.status
        time.sleep(0.05)  # a few step boundaries later: still nothing pending, still training on cpu
        assert sw.pending == "" and not run.done and str(trainer.device) == "cpu"
    finally:
        run.stop()
        run.wait(60)
        sw.close()


def test_select_is_safe_from_another_thread() -> None:
    sw = DeviceSwitcher()
    errors: list[BaseException] = []

    def click() -> None:
        try:
            for _ in range(20):
                sw.select("cpu")
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=click) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and sw.current == "cpu"
