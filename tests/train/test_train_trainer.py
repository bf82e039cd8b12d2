"""Trainer: fitting, metrics, history, callbacks (plugins and adapted objects), events, stopping."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

import spiraltorch_nb as st
from spiraltorch_nb.plugins import Plugin, PluginMetadata, PluginRegistry
from spiraltorch_nb.train import (
    Callback,
    DataLoader,
    EarlyStopping,
    LambdaCallback,
    StopTraining,
    Trainer,
    TrainingError,
)


def blobs(n: int = 240, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Three well-separated Gaussian classes in 2-d."""
    rng = np.random.default_rng(seed)
    centers = np.array([[2.0, 0.0], [-1.0, 2.0], [-1.0, -2.0]])
    y = rng.integers(0, 3, n)
    x = centers[y] + 0.5 * rng.standard_normal((n, 2))
    return x.astype(np.float32), y.astype(np.int64)


def make_trainer(callbacks: tuple = (), lr: float = 0.05, **kw: object) -> Trainer:
    st.manual_seed(0)
    model = st.nn.Sequential(st.nn.Linear(2, 16), st.nn.ReLU(), st.nn.Linear(16, 3))
    opt = st.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    return Trainer(model, "cross_entropy", opt, callbacks=callbacks, progress=False, **kw)


def loaders(batch_size: int = 32) -> tuple[DataLoader, DataLoader]:
    x, y = blobs()
    xv, yv = blobs(90, seed=1)
    return DataLoader(x, y, batch_size=batch_size, shuffle=True, seed=0), DataLoader(xv, yv, batch_size=45)


def test_fit_reaches_high_accuracy_and_fills_history() -> None:
    trainer = make_trainer()
    train, val = loaders()
    before = trainer.evaluate(val)
    history = trainer.fit(train, val, epochs=6)
    after = trainer.evaluate(val)
    assert after["accuracy"] >= 0.97 and after["loss"] < before["loss"] / 3
    df = history.history
    assert isinstance(df, pl.DataFrame)
    assert df.columns == ["epoch", "step", "split", "scope", "name", "value", "time"]
    steps = df.filter((pl.col("split") == "train") & (pl.col("scope") == "step") & (pl.col("name") == "loss"))
    assert steps["step"].to_list() == list(range(1, 6 * len(train) + 1))
    assert trainer.global_step == 6 * len(train) and trainer.epoch == 6
    val_acc = history.series("accuracy", "val")
    assert len(val_acc) == 6 and val_acc[-1] == pytest.approx(after["accuracy"])
    wide = history.wide()
    assert wide.columns == ["epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy"]
    assert wide["epoch"].to_list() == list(range(6))
    # the per-epoch train loss is the sample-weighted mean of that epoch's step losses
    first = steps.filter(pl.col("epoch") == 0)["value"].to_numpy()
    sizes = [32] * 7 + [240 - 7 * 32]
    assert wide["train_loss"][0] == pytest.approx(float(np.dot(first, sizes) / 240))
    assert history.series("lr")[:2] == [0.05, 0.05]
    assert history.last("loss") == pytest.approx(after["loss"])


def test_predict_and_evaluate_restore_training_mode() -> None:
    trainer = make_trainer()
    train, val = loaders()
    trainer.fit(train, epochs=2)
    x, _ = blobs(90, seed=1)
    out = trainer.predict(x)
    assert tuple(out.shape) == (90, 3) and not out.requires_grad
    np.testing.assert_allclose(trainer.predict(val).numpy(), out.numpy(), rtol=1e-6)
    trainer.model.train()
    trainer.evaluate(val)
    assert trainer.model.training


def test_custom_metrics_loss_functions_and_scheduler() -> None:
    def top_class_share(out: st.Tensor, y: st.Tensor) -> float:
        return float((out.argmax(1) == 0).float().mean().item())

    model = st.nn.Linear(2, 3)
    opt = st.optim.AdamW(model.parameters(), lr=0.05)
    sched = st.optim.StepLR(opt, step_size=1, gamma=0.5)
    trainer = Trainer(model, st.nn.functional.cross_entropy, opt, metrics={"share0": top_class_share},
                      scheduler=sched, progress=False, grad_clip=1.0)
    train, val = loaders()
    trainer.fit(train, val, epochs=3)
    names = set(trainer.history.history["name"].unique().to_list())
    assert {"loss", "lr", "share0"} <= names and "accuracy" not in names
    lrs = trainer.history.series("lr")
    assert lrs[0] == 0.05 and lrs[-1] == pytest.approx(0.0125)
    with pytest.raises(TrainingError, match="unknown loss"):
        Trainer(model, "hinge", opt)
    with pytest.raises(TrainingError, match="unknown metric"):
        Trainer(model, "mse", opt, metrics=("f1",))
    with pytest.raises(TrainingError, match="epochs"):
        trainer.fit(train, epochs=0)


def test_step_interval_scheduler_logs_the_rate_each_step_used() -> None:
    model = st.nn.Linear(2, 3)
    opt = st.optim.SGD(model.parameters(), lr=0.1)
    trainer = Trainer(model, "cross_entropy", opt, progress=False, scheduler=st.optim.StepLR(opt, 2, gamma=0.5),
                      scheduler_interval="step")
    trainer.fit(loaders(batch_size=48)[0], epochs=1)  # five steps
    assert trainer.history.series("lr") == [0.1, 0.1, 0.05, 0.05, 0.025]
    with pytest.raises(TrainingError, match="scheduler_interval"):
        Trainer(model, "mse", opt, scheduler_interval="batch")


class Journal(Callback):
    """Records every stage call with its arguments."""

    def __init__(self, log: list, tag: str = "j") -> None:
        self.log, self.tag = log, tag

    def on_fit_start(self, trainer):
        self.log.append((self.tag, "fit_start"))

    def on_epoch_start(self, trainer, epoch):
        self.log.append((self.tag, "epoch_start", epoch))

    def on_step_end(self, trainer, step, logs):
        self.log.append((self.tag, "step_end", step, logs["epoch"], round(logs["loss"], 12)))

    def on_validation_end(self, trainer, epoch, metrics):
        self.log.append((self.tag, "validation_end", epoch, sorted(metrics)))

    def on_epoch_end(self, trainer, epoch, logs):
        self.log.append((self.tag, "epoch_end", epoch, sorted(logs)))

    def on_fit_end(self, trainer):
        self.log.append((self.tag, "fit_end"))


def test_callbacks_called_in_order_with_the_right_arguments() -> None:
    log: list = []
    trainer = make_trainer(callbacks=(Journal(log),))
    train, val = loaders(batch_size=120)  # two steps per epoch
    trainer.fit(train, val, epochs=2)
    kinds = [e[1] for e in log]
    assert kinds == ["fit_start",
                     "epoch_start", "step_end", "step_end", "validation_end", "epoch_end",
                     "epoch_start", "step_end", "step_end", "validation_end", "epoch_end",
                     "fit_end"]
    steps = [e for e in log if e[1] == "step_end"]
    assert [s[2] for s in steps] == [1, 2, 3, 4] and [s[3] for s in steps] == [0, 0, 1, 1]
    losses = trainer.history.series("loss")
    assert [s[4] for s in steps] == [round(v, 12) for v in losses]
    assert log[4] == ("j", "validation_end", 0, ["accuracy", "loss"])
    assert log[5] == ("j", "epoch_end", 0, ["accuracy", "loss", "val_accuracy", "val_loss"])


def test_plain_object_adapter_and_dependency_order() -> None:
    log: list = []

    class Old:  # no base class, only some stages
        def on_epoch_start(self, trainer, epoch):
            log.append(("old", "epoch_start", epoch))

        def on_fit_end(self, trainer):
            log.append(("old", "fit_end"))

    class Needs(Journal):
        metadata = PluginMetadata("needs-base", "1.0", capabilities=("sequencer",), dependencies={"base": ">=1"})

    class Base(Journal):
        metadata = PluginMetadata("base", "1.2", capabilities=("sequencer",))

    old = Old()
    trainer = make_trainer(callbacks=(old, Needs(log, "needs"), Base(log, "base")))
    assert [c.metadata.id for c in trainer.callbacks][1:] == ["base", "needs-base"]
    assert trainer.callbacks[0].target is old
    trainer.fit(loaders(batch_size=240)[0], epochs=1)
    starts = [e[0] for e in log if e[1] == "epoch_start"]
    assert starts == ["old", "base", "needs"]  # dependencies run first
    assert log[-3:] == [("old", "fit_end"), ("base", "fit_end"), ("needs", "fit_end")]
    assert all(trainer.registry.is_loaded(c.metadata.id) for c in trainer.callbacks)
    trainer.remove_callback(old)
    assert len(trainer.callbacks) == 2


def test_telemetry_recorder_works_as_a_callback() -> None:
    telemetry = pytest.importorskip("spiraltorch_nb.telemetry")
    recorder = telemetry.Recorder()
    trainer = make_trainer(callbacks=(recorder,))
    train, val = loaders(batch_size=120)
    trainer.fit(train, val, epochs=2)
    assert trainer.callbacks[0].target is recorder
    losses = recorder.metrics.filter(pl.col("name") == "loss")
    assert losses["value"].to_list() == pytest.approx(trainer.history.series("loss"))


def test_callback_registration_errors_leave_nothing_behind() -> None:
    class NotSequencer(Plugin):
        metadata = PluginMetadata("plain-plugin", "1.0", capabilities=("telemetry",))

    with pytest.raises(st.errors.PluginError, match="sequencer"):
        make_trainer(callbacks=(NotSequencer(),))
    with pytest.raises(st.errors.PluginError, match="none of the stage methods"):
        make_trainer(callbacks=(object(),))

    class Missing(Journal):
        metadata = PluginMetadata("missing-dep", "1.0", capabilities=("sequencer",), dependencies={"nope": ""})

    registry = PluginRegistry()
    with pytest.raises(st.errors.PluginError, match="not registered"):
        make_trainer(callbacks=(Journal([]), Missing([])), registry=registry)
    assert len(registry) == 0


def test_events_on_the_bus() -> None:
    trainer = make_trainer()
    seen: list = []
    trainer.events.subscribe("trainer.*", lambda ev: seen.append((ev.topic, ev.payload)))
    train, val = loaders(batch_size=120)
    trainer.fit(train, val, epochs=1)
    topics = [t for t, _ in seen]
    assert topics == ["trainer.fit_start", "trainer.epoch_start",
                      "trainer.step_start", "trainer.step_end", "trainer.step_start", "trainer.step_end",
                      "trainer.validation_end", "trainer.epoch_end", "trainer.fit_end"]
    payloads = dict(seen[:2])
    assert payloads["trainer.fit_start"]["trainer"] is trainer
    assert payloads["trainer.fit_start"]["total_steps"] == 2
    step = seen[5][1]
    assert step["step"] == 2 and step["logs"]["loss"] == pytest.approx(trainer.history.series("loss")[1])
    assert set(seen[6][1]["metrics"]) == {"loss", "accuracy"}
    assert seen[-1][1]["stopped"] is False


def test_stop_by_raising_returning_and_calling() -> None:
    def raiser(trainer, step, logs):
        if step == 3:
            raise StopTraining("enough")

    trainer = make_trainer(callbacks=(LambdaCallback(on_step_end=raiser),))
    train, val = loaders()
    trainer.fit(train, val, epochs=5)
    assert trainer.global_step == 3 and trainer.stop_reason == "enough"
    assert trainer.history.series("loss", "val") == []  # stopped mid-epoch: no validation

    trainer = make_trainer(callbacks=(LambdaCallback(on_epoch_end=lambda t, e, logs: StopTraining("one")),))
    trainer.fit(train, val, epochs=5)
    assert trainer.epoch == 1 and trainer.stop_reason == "one"
    assert len(trainer.history.series("loss", "val")) == 1

    class Caller(Callback):
        def on_step_end(self, trainer, step, logs):
            if step == 2:
                trainer.stop("manual")

    trainer = make_trainer(callbacks=(Caller(),))
    trainer.fit(train, epochs=3)
    assert trainer.global_step == 2 and trainer.stopped
    trainer.fit(train, epochs=1)  # a new fit starts afresh
    assert trainer.global_step == 2 + len(train) and not trainer.stopped


def test_early_stopping_restores_best() -> None:
    stopper = EarlyStopping(monitor="val_loss", patience=1, restore_best=True)
    # a learning rate so high the validation loss gets worse at some point
    trainer = make_trainer(callbacks=(stopper,), lr=3.0)
    train, val = loaders()
    trainer.fit(train, val, epochs=30)
    assert trainer.stopped and "did not improve" in trainer.stop_reason
    assert trainer.evaluate(val)["loss"] == pytest.approx(stopper.best, rel=1e-6)
    with pytest.raises(st.errors.PluginError, match="no 'val_oops'"):
        make_trainer(callbacks=(EarlyStopping(monitor="val_oops"),)).fit(train, val, epochs=1)


def test_batches_of_other_forms() -> None:
    """Lists of (x, y) numpy pairs, and unsupervised (x,) batches with loss_fn(output)."""
    x, y = blobs(64)
    trainer = make_trainer()
    pairs = [(x[i:i + 16], y[i:i + 16]) for i in range(0, 64, 16)]
    trainer.fit(pairs, epochs=1)
    assert trainer.global_step == 4 and trainer.progress["total_steps"] == 4
    model = st.nn.Linear(2, 1)
    auto = Trainer(model, lambda out: (out ** 2).mean(), st.optim.SGD(model.parameters(), lr=0.1), progress=False,
                   metrics=())
    auto.fit(DataLoader(x, batch_size=16), epochs=2)
    losses = auto.history.series("loss")
    assert losses[-1] < losses[0]


def test_progress_bar_runs(capsys: pytest.CaptureFixture) -> None:
    trainer = make_trainer()
    trainer.progress_bar = True
    trainer.fit(loaders()[0], epochs=1)
    err = capsys.readouterr().err
    assert "8/8" in err and "loss=" in err


def test_step_start_is_published_before_each_step_with_the_step_end_numbering() -> None:
    trainer = make_trainer()
    seen: list = []
    trainer.events.subscribe("trainer.step_*", lambda ev: seen.append((ev.topic, ev.payload)))
    trainer.fit(loaders(batch_size=120)[0], epochs=2)  # two steps per epoch
    assert [t for t, _ in seen] == ["trainer.step_start", "trainer.step_end"] * 4
    starts = [p for t, p in seen if t == "trainer.step_start"]
    ends = [p for t, p in seen if t == "trainer.step_end"]
    assert [(p["step"], p["epoch"], p["batch"]) for p in starts] == [(1, 0, 0), (2, 0, 1), (3, 1, 0), (4, 1, 1)]
    assert [p["step"] for p in ends] == [p["step"] for p in starts]
    assert [p["epoch"] for p in ends] == [p["epoch"] for p in starts]
    assert all(p["trainer"] is trainer for p in starts)


def test_on_step_start_reaches_callbacks_of_every_kind() -> None:
    log: list = []

    class Old:  # a plain object: adapted
        def on_step_start(self, trainer, step):
            log.append(("old", "step_start", step, trainer.global_step))

        def on_step_end(self, trainer, step, logs):
            log.append(("old", "step_end", step, trainer.global_step))

    class Sub(Callback):
        def on_step_start(self, trainer, step):
            log.append(("sub", "step_start", step))

    lam = LambdaCallback(on_step_start=lambda trainer, step: log.append(("lambda", "step_start", step)))
    trainer = make_trainer(callbacks=(Old(), Sub(), lam))
    assert "on_step_start" in trainer.callbacks[0].stages
    trainer.fit(loaders(batch_size=120)[0], epochs=1)
    assert log == [("old", "step_start", 1, 0), ("sub", "step_start", 1), ("lambda", "step_start", 1),
                   ("old", "step_end", 1, 1),
                   ("old", "step_start", 2, 1), ("sub", "step_start", 2), ("lambda", "step_start", 2),
                   ("old", "step_end", 2, 2)]


def test_stopping_from_on_step_start_lets_that_step_finish() -> None:
    topics: list = []

    def stop_at_two(trainer, step):
        if step == 2:
            raise StopTraining("budget spent")

    trainer = make_trainer(callbacks=(LambdaCallback(on_step_start=stop_at_two),))
    trainer.events.subscribe("trainer.step_*", lambda ev: topics.append((ev.topic, ev.payload["step"])))
    trainer.fit(loaders()[0], epochs=3)
    assert trainer.global_step == 2 and trainer.stop_reason == "budget spent"
    assert topics == [("trainer.step_start", 1), ("trainer.step_end", 1),
                      ("trainer.step_start", 2), ("trainer.step_end", 2)]


def test_a_device_that_cannot_take_the_model_is_an_error_at_construction() -> None:
    """Trainer(device=...) never trains silently somewhere else: the failed move raises."""
    model = st.nn.Linear(3, 2).to(st.float64)  # wgpu has no float64
    opt = st.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(st.DTypeError) as info:
        Trainer(model, "cross_entropy", opt, device="wgpu", progress=False)
    assert any("Trainer(device='wgpu')" in note and "stays on cpu" in note for note in info.value.__notes__)
    assert all(p.device == "cpu" and p.dtype == st.float64 for p in model.parameters())
