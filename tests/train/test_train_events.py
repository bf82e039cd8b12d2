"""Trainer events on the global bus: every trainer reaches it, and watchers still tell runs apart."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

import spiraltorch_nb as st
from spiraltorch_nb.plugins import PluginRegistry, global_registry
from spiraltorch_nb.train import DataLoader, LambdaCallback, Trainer


def make_trainer(registry: PluginRegistry | None = None, **kw: object) -> Trainer:
    st.manual_seed(0)
    model = st.nn.Sequential(st.nn.Linear(2, 8), st.nn.ReLU(), st.nn.Linear(8, 2))
    opt = st.optim.SGD(model.parameters(), lr=0.1)
    return Trainer(model, "cross_entropy", opt, progress=False, registry=registry, **kw)


def loader(n: int, batch_size: int) -> DataLoader:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, 2)).astype(np.float32)
    return DataLoader(x, (x[:, 0] > 0).astype(np.int64), batch_size=batch_size)


def test_a_trainer_without_a_registry_publishes_on_the_global_bus() -> None:
    trainer = make_trainer()
    assert trainer.registry is not global_registry()
    seen: list = []
    with global_registry().events.subscribe("trainer.*", lambda ev: seen.append((ev.topic, ev.payload))):
        trainer.fit(loader(32, 16), epochs=2)
    epoch_ends = [p for t, p in seen if t == "trainer.epoch_end"]
    assert [p["epoch"] for p in epoch_ends] == [0, 1]
    assert all(p["trainer"] is trainer for _, p in seen)
    assert [t for t, _ in seen][:4] == ["trainer.fit_start", "trainer.epoch_start", "trainer.step_start",
                                        "trainer.step_end"]


def test_callbacks_stay_in_the_trainers_own_registry() -> None:
    plugin_events: list = []
    sub = global_registry().events.subscribe("plugin.*", lambda ev: plugin_events.append(ev.payload["id"]))
    try:
        first = make_trainer(callbacks=(LambdaCallback(on_step_end=lambda t, s, logs: None),))
        second = make_trainer(callbacks=(LambdaCallback(on_step_end=lambda t, s, logs: None),))
    finally:
        sub.unsubscribe()
    ids = [c.metadata.id for c in (*first.callbacks, *second.callbacks)]
    assert not any(i in global_registry() for i in ids)
    assert not set(ids) & set(plugin_events)  # their plugin.* events stay on the trainers' buses


def test_a_trainer_on_the_global_registry_publishes_each_event_once() -> None:
    trainer = make_trainer(registry=global_registry())
    assert trainer.events is global_registry().events
    seen: list = []
    with trainer.events.subscribe("trainer.epoch_end", seen.append):
        trainer.fit(loader(32, 16), epochs=1)
    assert len(seen) == 1


def test_device_events_reach_the_global_bus(monkeypatch: pytest.MonkeyPatch) -> None:
    import spiraltorch_nb.train.trainer as trainer_module

    trainer = make_trainer()
    seen: list = []
    with global_registry().events.subscribe("trainer.device_change*", lambda ev: seen.append(ev)):
        monkeypatch.setattr(trainer_module, "relocate", lambda model, opt, dev: 0)
        trainer.request_device("wgpu")

        def refuse(model, opt, dev):
            raise RuntimeError("no adapter")

        monkeypatch.setattr(trainer_module, "relocate", refuse)
        trainer.request_device("cpu")
    assert [(ev.topic, ev.payload["to"]) for ev in seen] == [("trainer.device_changed", "wgpu"),
                                                            ("trainer.device_change_failed", "cpu")]
    assert all(ev.payload["trainer"] is trainer for ev in seen)


def _watched_fit(trainer: Trainer, data: DataLoader, epochs: int) -> tuple:
    """A background fit held at its start until its dashboard listens."""
    gate = threading.Event()
    trainer.add_callback(LambdaCallback(on_fit_start=lambda t: gate.wait(10)))
    run = trainer.fit(data, epochs=epochs, background=True)
    dashboard = st.widgets.TelemetryDashboard(run)
    return run, dashboard, gate


@pytest.mark.parametrize("shared", [False, True], ids=["own-registries", "global-registry"])
def test_two_trainers_dashboards_do_not_mix_events(shared: bool) -> None:
    registry = global_registry() if shared else None
    a, b = make_trainer(registry=registry), make_trainer(registry=registry)
    run_a, dash_a, gate_a = _watched_fit(a, loader(64, 16), epochs=2)  # 8 steps
    run_b, dash_b, gate_b = _watched_fit(b, loader(48, 16), epochs=1)  # 3 steps
    try:
        gate_a.set()
        gate_b.set()
        run_a.wait(30)
        run_b.wait(30)
        for dash in (dash_a, dash_b):
            deadline = time.monotonic() + 5
            while "done" not in dash.status and time.monotonic() < deadline:
                time.sleep(0.02)
            dash.flush()
        assert dash_a.points("loss")[0].tolist() == [float(s) for s in range(1, 9)]
        assert dash_b.points("loss")[0].tolist() == [1.0, 2.0, 3.0]
        assert [len([o for o in d.overlays if o["kind"] == "epoch"]) for d in (dash_a, dash_b)] == [2, 1]
        # step_start is quiet: no overlay per step
        assert not any("step" in o["label"] for o in (*dash_a.overlays, *dash_b.overlays))
    finally:
        dash_a.close()
        dash_b.close()
        if shared:
            a.close()
            b.close()
