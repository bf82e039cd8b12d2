"""Background fits and device changes at step boundaries."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

import spiraltorch_nb as st
from spiraltorch_nb.backends import probe
from spiraltorch_nb.train import DataLoader, Trainer, TrainingError

RNG = np.random.default_rng(0)
X = RNG.standard_normal((96, 4)).astype(np.float32)
Y = (X[:, 0] + X[:, 1] > 0).astype(np.int64)


def make_trainer(**kw: object) -> Trainer:
    st.manual_seed(0)
    model = st.nn.Sequential(st.nn.Linear(4, 8), st.nn.Tanh(), st.nn.Linear(8, 2))
    opt = st.optim.Adam(model.parameters(), lr=0.01)
    return Trainer(model, "cross_entropy", opt, progress=False, **kw)


def loader() -> DataLoader:
    return DataLoader(X, Y, batch_size=16, shuffle=True, seed=1)


def wait_for(cond: object, timeout: float = 30.0) -> None:
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise AssertionError("condition not reached in time")
        time.sleep(0.005)


def test_background_fit_progresses_while_the_main_thread_works() -> None:
    trainer = make_trainer()
    handle = trainer.fit(loader(), epochs=10_000, background=True)
    try:
        assert handle.running and isinstance(handle.thread, threading.Thread)
        wait_for(lambda: handle.progress["step"] >= 5)
        # the notebook thread computes meanwhile, inside no_grad: the worker still records its graph
        with st.no_grad():
            for _ in range(20):
                a = st.ones(3, requires_grad=True) * 2
                assert not a.requires_grad
        p1 = handle.progress
        wait_for(lambda: handle.progress["step"] >= p1["step"] + 10)
        p2 = handle.progress
        assert p2["epoch"] >= p1["epoch"] and p2["total_steps"] == 10_000 * 6
        assert 0 < p2["fraction"] < 1 and isinstance(p2["loss"], float) and p2["device"] == "cpu"
        live = handle.history
        assert live.height >= 2 * 10  # loss and lr per step so far
        with pytest.raises(TrainingError, match="already running"):
            trainer.fit(loader(), epochs=1)
        # evaluate and predict from this thread run between steps
        assert 0 <= trainer.evaluate(loader())["accuracy"] <= 1
        assert trainer.predict(X[:5]).shape == (5, 2)
        with pytest.raises(TimeoutError, match="still running"):
            handle.wait(timeout=0.01)
    finally:
        handle.stop()
    history = handle.wait(timeout=30)
    assert handle.done and handle.exception is None and handle.result is history
    assert trainer.stop_reason == "stopped by the user"
    assert 15 <= trainer.global_step < 10_000 * 6
    assert len(history.series("loss")) == trainer.global_step
    assert "done" in repr(handle)
    trainer.fit(loader(), epochs=1)  # the trainer is free again


def test_wait_reraises_the_worker_exception() -> None:
    calls = []

    def loss_fn(out: st.Tensor, y: st.Tensor) -> st.Tensor:
        calls.append(1)
        if len(calls) == 5:
            raise ValueError("bad batch")
        return st.nn.functional.cross_entropy(out, y)

    model = st.nn.Linear(4, 2)
    trainer = Trainer(model, loss_fn, st.optim.SGD(model.parameters(), lr=0.1), progress=False)
    handle = trainer.fit(loader(), epochs=3, background=True)
    with pytest.raises(ValueError, match="bad batch"):
        handle.wait(timeout=30)
    assert handle.done and isinstance(handle.exception, ValueError) and handle.result is None
    assert trainer.global_step == 4 and not handle.progress["running"]
    assert "failed (ValueError)" in repr(handle)
    trainer.fit(loader(), epochs=1)


def test_device_change_to_the_same_device_is_a_no_op() -> None:
    trainer = make_trainer()
    seen: list = []
    trainer.events.subscribe("trainer.device_*", lambda ev: seen.append(ev.topic))
    params = list(trainer.model.parameters())
    data = [p._data for p in params]
    handle = trainer.fit(loader(), epochs=10_000, background=True)
    wait_for(lambda: handle.progress["step"] >= 3)
    handle.request_device("cpu")
    step = handle.progress["step"]
    wait_for(lambda: handle.progress["step"] >= step + 5)
    handle.stop()
    handle.wait(30)
    assert seen == [] and trainer.device_log == [] and trainer.device == "cpu"
    assert all(p._data is d for p, d in zip(params, data, strict=True))  # updated in place, never copied


@pytest.mark.skipif(probe("cuda")["available"], reason="needs a machine where cuda is absent")
def test_failed_device_change_keeps_training_on_the_old_device() -> None:
    trainer = make_trainer()
    failures: list = []
    trainer.events.subscribe("trainer.device_change_failed", lambda ev: failures.append(ev.payload))
    handle = trainer.fit(loader(), epochs=10_000, background=True)
    wait_for(lambda: handle.progress["step"] >= 3)
    handle.request_device("cuda")
    wait_for(lambda: len(failures) == 1)
    at = handle.progress["step"]
    wait_for(lambda: handle.progress["step"] >= at + 5)  # training went on
    handle.stop()
    handle.wait(30)
    assert failures[0]["from"] == "cpu" and failures[0]["to"] == "cuda:0"
    assert isinstance(failures[0]["error"], st.DeviceUnavailableError)
    assert len(trainer.device_errors) == 1 and trainer.device == "cpu"
    assert all(p.device == "cpu" for p in trainer.model.parameters())
    assert all(v.device == "cpu" for s in trainer.optimizer.state.values() for v in s.values()
               if isinstance(v, st.Tensor))
    # outside a fit the move is immediate and reports its record
    record = trainer.request_device("cuda")
    assert record["ok"] is False and len(trainer.device_errors) == 2


needs_wgpu = pytest.mark.skipif(not probe("wgpu")["available"],
                                reason=f"wgpu unavailable: {probe('wgpu')['reason']}")


@needs_wgpu
def test_device_change_cpu_to_wgpu_mid_fit() -> None:
    trainer = make_trainer()
    changes: list = []
    trainer.events.subscribe("trainer.device_changed", lambda ev: changes.append(ev.payload))
    params = list(trainer.model.parameters())
    handle = trainer.fit(loader(), epochs=10_000, background=True)
    wait_for(lambda: handle.progress["step"] >= 6)
    handle.request_device("wgpu")
    wait_for(lambda: len(changes) == 1, timeout=60)
    at = handle.progress["step"]
    wait_for(lambda: handle.progress["step"] >= at + 6, timeout=120)
    handle.stop()
    handle.wait(60)
    assert changes[0]["from"] == "cpu" and changes[0]["to"] == "wgpu" and changes[0]["moved"] > 0
    assert trainer.device == "wgpu" and handle.progress["device"] == "wgpu"
    assert all(a is b for a, b in zip(trainer.model.parameters(), params, strict=True))
    assert all(p.device == "wgpu" for p in params)
    states = [v for s in trainer.optimizer.state.values() for v in s.values() if isinstance(v, st.Tensor)]
    assert states and all(v.device == "wgpu" for v in states)
    losses = trainer.history.series("loss")
    assert all(np.isfinite(losses)) and np.mean(losses[-5:]) < np.mean(losses[:5])
    # and back, synchronously
    assert trainer.request_device("cpu")["ok"] and all(p.device == "cpu" for p in params)


@needs_wgpu
def test_failed_copy_part_way_leaves_everything_in_place() -> None:
    """A float64 tensor cannot live on wgpu: the float32 ones copied before it must not move."""
    st.manual_seed(0)
    model = st.nn.Sequential(st.nn.Linear(4, 8), st.nn.Linear(8, 2))
    model[1].to(st.float64)
    opt = st.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    trainer = Trainer(model, lambda out, y: (out.float() ** 2).mean(), opt, progress=False, metrics=())
    trainer.fit([(st.tensor(X[:8]), st.tensor(Y[:8]))], epochs=1)  # momentum buffers exist now
    before = {id(p): (p._data, p.numpy().copy(), p.device) for p in model.parameters()}
    record = trainer.request_device("wgpu")
    assert record["ok"] is False and isinstance(record["error"], st.errors.SpiralTorchError)
    for p in model.parameters():
        data, values, dev = before[id(p)]
        assert p._data is data and p.device == dev
        np.testing.assert_array_equal(p.numpy(), values)
    assert all(s["momentum_buffer"].device == "cpu" for s in opt.state.values())
    assert trainer.device == "cpu"
