"""The Trainer: fit / evaluate / predict loops with stage callbacks, events, history and device moves.

>>> import numpy as np, spiraltorch_nb as st
>>> rng = np.random.default_rng(0)
>>> x = rng.standard_normal((64, 2)); y = (x[:, 0] > 0).astype(np.int64)
>>> w = st.zeros(2, 2, dtype=st.float64, requires_grad=True)
>>> model = lambda xb: xb @ w
>>> trainer = st.train.Trainer(model, "cross_entropy", st.optim.SGD([w], lr=0.5), progress=False)
>>> history = trainer.fit(st.train.DataLoader(x, y, batch_size=16), epochs=5)
>>> trainer.evaluate(st.train.DataLoader(x, y, batch_size=64))["accuracy"] > 0.9
True
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from ..autograd.grad_mode import no_grad
from ..device import Device, get_default_device
from ..errors import SpiralTorchError
from ..plugins import EventBus, Plugin, PluginRegistry, global_registry
from ..tensor import Tensor
from ._relocate import model_device, relocate
from .background import FitHandle
from .callbacks import StopTraining, as_callback
from .data import _holds_int64
from .history import History

__all__ = ["Trainer", "TrainingError", "LOSSES", "METRICS"]


class TrainingError(SpiralTorchError, RuntimeError):
    """A trainer used in a way it cannot work (bad arguments, a fit already running, ...)."""


def _loss_by_name(name: str) -> Callable[..., Any]:
    from ..nn import functional as F

    table: dict[str, Callable[..., Any]] = {
        "cross_entropy": F.cross_entropy, "mse": F.mse_loss, "mse_loss": F.mse_loss, "l1": F.l1_loss,
        "l1_loss": F.l1_loss, "nll": F.nll_loss, "nll_loss": F.nll_loss,
        "bce_with_logits": F.binary_cross_entropy_with_logits, "bce": F.binary_cross_entropy,
    }
    return table[name]


#: loss names accepted for ``loss_fn``
LOSSES = ("cross_entropy", "mse", "l1", "nll", "bce_with_logits", "bce")


def accuracy(output: Tensor, target: Tensor) -> float:
    """The fraction of correct predictions.

    Class scores along dimension 1 (``(N, C)`` or ``(N, C, ...)``) are compared by
    argmax with integer targets (or one-hot / probability targets); a single score
    per sample is a logit, predicting class 1 when positive.
    """
    out = np.asarray(output.detach().numpy())
    tgt = np.asarray(target.detach().numpy()) if isinstance(target, Tensor) else np.asarray(target)
    if out.ndim >= 2 and out.shape[1] > 1:
        pred = out.argmax(axis=1)
        if tgt.ndim == out.ndim:
            tgt = tgt.argmax(axis=1)
    else:
        pred = (out.reshape(tgt.shape) > 0).astype(np.int64)
        tgt = (tgt > 0.5).astype(np.int64)
    return float((pred == tgt).mean()) if pred.size else 0.0


#: metric names accepted in ``metrics``
METRICS: dict[str, Callable[[Tensor, Tensor], float]] = {"accuracy": accuracy, "acc": accuracy}


def _metrics(spec: Any) -> dict[str, Callable[[Tensor, Tensor], float]]:
    if spec is None:
        return {}
    if isinstance(spec, str) or callable(spec):
        spec = (spec,)
    items = spec.items() if isinstance(spec, Mapping) else [(None, m) for m in spec]
    out: dict[str, Callable[[Tensor, Tensor], float]] = {}
    for name, m in items:
        if isinstance(m, str):
            if m not in METRICS:
                raise TrainingError(f"unknown metric {m!r}; known: {', '.join(METRICS)}, or pass a function "
                                    "metric(output, target) -> float")
            out["accuracy" if m == "acc" else m] = METRICS[m]
        elif callable(m):
            out[str(name) if name else getattr(m, "__name__", f"metric{len(out)}")] = m
        else:
            raise TrainingError(f"a metric is a name or a function metric(output, target) -> float; got {m!r}")
    return out


class Trainer:
    """Train a model with an optimizer and a loss; report progress, metrics and events.

    Parameters
    ----------
    model : callable
        ``model(x) -> output``; an ``st.nn.Module`` (``parameters()``, ``train()``,
        ``eval()``, ``to()`` are used when present).
    loss_fn : callable or str
        ``loss_fn(output, target) -> scalar Tensor``, or a name from :data:`LOSSES`.
    optimizer : Optimizer
    callbacks : iterable
        Callback plugins (capability ``sequencer``) or plain objects with stage methods
        (adapted); see :mod:`spiraltorch_nb.train.callbacks`.
    device : str or Device, optional
        Where to train; the model (with the optimizer state) is moved there now. A move
        that fails raises its error (the model stays where it was). Default: where the
        model's parameters are.
    progress : bool, default True
        Show a tqdm progress bar.
    metrics : sequence or dict, default ("accuracy",)
        Metric names or functions ``metric(output, target) -> float`` (batch means).
        ``loss`` is always reported.
    scheduler : LRScheduler, optional
        Stepped once per epoch, or per optimizer step with ``scheduler_interval="step"``.
    grad_clip : float, optional
        Clip the gradients' total 2-norm to this before each step.
    registry : PluginRegistry, optional
        Where callbacks are loaded and whose bus carries the ``trainer.*`` events; the
        trainer's own registry by default, so that callback ids never collide between
        trainers (pass ``st.plugins.global_registry()`` to share).

    Attributes
    ----------
    events : EventBus
        Publishes ``trainer.fit_start``, ``trainer.epoch_start``, ``trainer.step_start``,
        ``trainer.step_end``, ``trainer.validation_end``, ``trainer.epoch_end``,
        ``trainer.fit_end``, ``trainer.device_changed`` and ``trainer.device_change_failed``
        (payloads are dicts holding ``trainer`` and the stage's values). The same events
        are also published on the global registry's bus (``st.plugins.global_registry().events``)
        when ``events`` is another bus; the ``trainer`` entry tells trainers apart there.
    history : History
        Every logged value; ``history.history`` is a Polars frame.
    global_step : int
        Optimizer steps taken (across fits).
    epoch : int
        Epochs completed (across fits).
    """

    def __init__(self, model: Any, loss_fn: Callable[..., Any] | str, optimizer: Any,
                 callbacks: Iterable[Any] = (), device: Any = None, progress: bool = True,
                 metrics: Any = ("accuracy",), scheduler: Any = None, scheduler_interval: str = "epoch",
                 grad_clip: float | None = None, registry: PluginRegistry | None = None) -> None:
        if not callable(model):
            raise TrainingError(f"model must be callable (an st.nn.Module or a function); got {type(model).__name__}")
        if isinstance(loss_fn, str):
            if loss_fn not in LOSSES and loss_fn not in ("mse_loss", "l1_loss", "nll_loss"):
                raise TrainingError(f"unknown loss {loss_fn!r}; known: {', '.join(LOSSES)}, or pass a function "
                                    "loss_fn(output, target)")
            loss_fn = _loss_by_name(loss_fn)
        if not callable(loss_fn):
            raise TrainingError(f"loss_fn must be callable or a loss name; got {type(loss_fn).__name__}")
        if isinstance(optimizer, type):
            raise TrainingError(f"optimizer must be an instance, not the class {optimizer.__name__}; build it "
                                f"with the parameters: {optimizer.__name__}(model.parameters(), lr=...)")
        if not hasattr(optimizer, "step") or not hasattr(optimizer, "zero_grad"):
            raise TrainingError(f"optimizer needs step() and zero_grad() (e.g. st.optim.AdamW); got "
                                f"{type(optimizer).__name__}")
        if scheduler_interval not in ("epoch", "step"):
            raise TrainingError(f"scheduler_interval must be 'epoch' or 'step'; got {scheduler_interval!r}")
        self.model = model
        self.loss_fn = loss_fn
        self.optimizer = optimizer
        self.metrics = _metrics(metrics)
        self.scheduler = scheduler
        self.scheduler_interval = scheduler_interval
        self.grad_clip = grad_clip
        self.progress_bar = bool(progress)
        self.registry = registry if registry is not None else PluginRegistry()
        self.events = self.registry.events
        shared = global_registry().events
        # trainer.* topics also reach the global bus; the registry's own plugin.* events stay private
        self._buses: tuple[EventBus, ...] = (self.events,) if self.events is shared else (self.events, shared)
        self.history = History()
        self.global_step = 0
        self.epoch = 0
        self.stop_reason: str | None = None
        self.device_log: list[dict[str, Any]] = []
        self._callbacks: list[Plugin] = []
        self._load_seq: list[str] = []
        self._lock = threading.RLock()
        self._stop = False
        self._running = False
        self._pending_device: Device | None = None
        self._progress: dict[str, Any] = {"epoch": 0, "epochs": 0, "step": 0, "total_steps": None,
                                          "fraction": None, "loss": None, "running": False, "device": None}
        self.device = model_device(model, get_default_device())
        self._progress["device"] = str(self.device)
        if device is not None:
            record = self._move(Device(device))
            if not record["ok"]:  # asked for at construction: never train silently elsewhere
                err = record["error"]
                err.add_note(f"Trainer(device={str(device)!r}): the model could not be moved there and stays on "
                             f"{self.device}; pick an available device (st.available_devices())")
                raise err
        self.add_callbacks(callbacks)

    # ---- callbacks ------------------------------------------------------------------
    @property
    def callbacks(self) -> list[Plugin]:
        """The callback plugins in the order their hooks run (dependencies first)."""
        return list(self._callbacks)

    def add_callback(self, callback: Any) -> Plugin:
        """Register and load one callback (a sequencer plugin or any object with stage methods)."""
        return self.add_callbacks([callback])[0]

    def add_callbacks(self, callbacks: Iterable[Any]) -> list[Plugin]:
        """Register and load callbacks into the registry; on any failure none of them stays."""
        plugins = [as_callback(c) for c in callbacks]
        registered: list[str] = []
        try:
            for p in plugins:
                pid = p.metadata.id
                if pid in self.registry and self.registry.get(pid) is p:
                    continue
                if pid in self.registry and type(self.registry.get(pid)) is type(p):
                    self.registry.register(p, replace=True)  # a re-run notebook cell
                else:
                    self.registry.register(p)
                registered.append(pid)
            for p in plugins:
                for pid in self.registry.load(p.metadata.id):
                    if pid not in self._load_seq:
                        self._load_seq.append(pid)
                if p.metadata.id not in self._load_seq:
                    self._load_seq.append(p.metadata.id)
        except Exception:
            for pid in reversed(registered):
                if pid in self.registry:
                    self.registry.unregister(pid, cascade=True)
                if pid in self._load_seq:
                    self._load_seq.remove(pid)
            raise
        mine = {id(p) for p in self._callbacks} | {id(p) for p in plugins}
        everyone = [*self._callbacks, *plugins]
        by_id = {p.metadata.id: p for p in everyone if id(p) in mine}
        self._callbacks = [by_id[pid] for pid in self._load_seq if pid in by_id]
        return plugins

    def remove_callback(self, callback: Any) -> None:
        """Unload and unregister a callback (the plugin, the adapted object, or its id)."""
        for p in self._callbacks:
            if p is callback or p.metadata.id == callback or getattr(p, "target", None) is callback:
                self._callbacks.remove(p)
                if p.metadata.id in self.registry:
                    self.registry.unregister(p.metadata.id, cascade=True)
                if p.metadata.id in self._load_seq:
                    self._load_seq.remove(p.metadata.id)
                return
        raise TrainingError(f"{callback!r} is not one of this trainer's callbacks")

    def close(self) -> None:
        """Unregister every callback from the registry (useful with a shared registry)."""
        for p in list(self._callbacks):
            self.remove_callback(p)

    def _stage(self, stage: str, *args: Any, **payload: Any) -> None:
        """Call ``stage`` on every callback, then publish ``trainer.<stage>`` on the bus."""
        for cb in self._callbacks:
            hook = getattr(cb, stage, None)
            if hook is None:
                continue
            try:
                result = hook(self, *args)
            except StopTraining as exc:
                self.stop(exc.reason or f"{cb.metadata.id} raised StopTraining in {stage}")
                continue
            if isinstance(result, StopTraining) or result is StopTraining:
                reason = getattr(result, "reason", "") or f"{cb.metadata.id} returned StopTraining from {stage}"
                self.stop(reason)
        self._publish("trainer." + stage[3:], payload)

    def _publish(self, topic: str, payload: dict[str, Any]) -> None:
        """Publish ``topic`` with ``{"trainer": self, **payload}`` on the trainer's bus and the global one."""
        for bus in self._buses:
            if bus.has_subscribers(topic):
                bus.publish(topic, {"trainer": self, **payload})

    # ---- control ----------------------------------------------------------------------
    def stop(self, reason: str = "stopped by the user") -> None:
        """End the running fit after the current step (callbacks may call it too)."""
        if not self._stop:
            self.stop_reason = reason
        self._stop = True

    @property
    def stopped(self) -> bool:
        return self._stop

    @property
    def progress(self) -> dict[str, Any]:
        """A snapshot of the current (or last) fit's progress."""
        return dict(self._progress)

    def request_device(self, device: Any) -> dict[str, Any] | None:
        """Move model and optimizer state to ``device``.

        During a fit the move happens at the next step boundary (returns None); otherwise
        at once, returning the record that is also appended to :attr:`device_log`. A move
        that fails leaves everything where it was: the error is recorded and published as
        ``trainer.device_change_failed``, and training goes on.
        """
        dev = Device(device)
        with self._lock:  # the fit releases it between steps, and takes it to finish
            if self._running:
                self._pending_device = dev
                return None
            return self._move(dev)

    def _move(self, dev: Device) -> dict[str, Any]:
        src = self.device
        record: dict[str, Any] = {"step": self.global_step, "from": str(src), "to": str(dev), "ok": True,
                                  "error": None, "moved": 0}
        if dev != src:
            try:
                record["moved"] = relocate(self.model, self.optimizer, dev)
            except Exception as exc:
                record.update(ok=False, error=exc)
                self.device_log.append(record)
                self._publish("trainer.device_change_failed",
                              {"from": str(src), "to": str(dev), "step": self.global_step, "error": exc,
                               "message": f"{type(exc).__name__}: {exc}"})
                return record
            self.device = dev
            self._progress["device"] = str(dev)
            self.device_log.append(record)
            self._publish("trainer.device_changed", {"from": str(src), "to": str(dev), "step": self.global_step,
                                                     "moved": record["moved"]})
        return record

    @property
    def device_errors(self) -> list[dict[str, Any]]:
        """The failed device moves (each with ``from``, ``to``, ``step`` and ``error``)."""
        return [r for r in self.device_log if not r["ok"]]

    # ---- batches ------------------------------------------------------------------------
    def _to_device(self, x: Any) -> Any:
        if isinstance(x, Tensor):
            if x.device == self.device:
                return x
            if x.dtype.name == "int64" and not _holds_int64(self.device):
                x = x.to("int32")  # integer labels for a device without 64-bit integers (wgpu)
            return x.to(self.device)
        if isinstance(x, np.ndarray):
            from ..ops.creation import as_tensor

            if x.dtype == np.int64 and not _holds_int64(self.device):
                x = x.astype(np.int32)
            return as_tensor(x, device=self.device)
        return x

    def _split(self, batch: Any) -> tuple[Any, Any, tuple]:
        if isinstance(batch, Tensor | np.ndarray):
            return self._to_device(batch), None, ()
        if not isinstance(batch, Sequence) or not batch:
            raise TrainingError(f"a batch must be a tensor or a tuple (x, y, ...); got {type(batch).__name__}")
        parts = [self._to_device(b) for b in batch]
        if len(parts) == 1:
            return parts[0], None, ()
        return parts[0], parts[1], tuple(parts[2:])

    def _loss(self, out: Any, y: Any, extra: tuple) -> Tensor:
        return self.loss_fn(out) if y is None else self.loss_fn(out, y, *extra)

    def _set_mode(self, training: bool) -> None:
        fn = getattr(self.model, "train", None)
        if callable(fn):
            fn(training)

    # ---- steps ----------------------------------------------------------------------------
    def _train_step(self, batch: Any) -> tuple[float, int, dict[str, float], float]:
        x, y, extra = self._split(batch)
        opt = self.optimizer
        with self._lock:
            opt.zero_grad(set_to_none=True)
            out = self.model(x)
            loss = self._loss(out, y, extra)
            loss.backward()
            if self.grad_clip is not None:
                from ..optim.clip import clip_grad_norm_

                clip_grad_norm_([p for g in opt.param_groups for p in g["params"]], self.grad_clip)
            lr = self._lr()  # the rate this step uses (a scheduler may change it right after)
            opt.step()
            if self.scheduler is not None and self.scheduler_interval == "step":
                self.scheduler.step()
            value = float(loss.item())
            scores = {}
            if y is not None and self.metrics:
                with no_grad():
                    scores = {k: float(m(out, y)) for k, m in self.metrics.items()}
        n = int(x.shape[0]) if hasattr(x, "shape") and len(x.shape) else 1
        return value, n, scores, lr

    def evaluate(self, loader: Iterable[Any]) -> dict[str, float]:
        """Loss and metrics over ``loader`` (no gradients, eval mode), averaged per sample.

        Safe to call from the notebook while a background fit runs: it runs between steps.
        """
        sums: dict[str, float] = {}
        count = 0
        with self._lock, no_grad():
            was_training = getattr(self.model, "training", True)
            self._set_mode(False)
            try:
                for batch in loader:
                    x, y, extra = self._split(batch)
                    out = self.model(x)
                    n = int(x.shape[0]) if len(x.shape) else 1
                    vals = {"loss": float(self._loss(out, y, extra).item())}
                    if y is not None:
                        vals.update({k: float(m(out, y)) for k, m in self.metrics.items()})
                    for k, v in vals.items():
                        sums[k] = sums.get(k, 0.0) + v * n
                    count += n
            finally:
                self._set_mode(bool(was_training))
        if count == 0:
            raise TrainingError("evaluate: the loader yielded no batches")
        return {k: v / count for k, v in sums.items()}

    def predict(self, data: Any) -> Tensor:
        """Model outputs (no gradients, eval mode) for a tensor/array, or concatenated over a loader's batches."""
        from ..functions import cat

        with self._lock, no_grad():
            was_training = getattr(self.model, "training", True)
            self._set_mode(False)
            try:
                if isinstance(data, Tensor | np.ndarray):
                    return self.model(self._to_device(data))
                outs = []
                for batch in data:
                    x, _, _ = self._split(batch)
                    outs.append(self.model(x))
            finally:
                self._set_mode(bool(was_training))
        if not outs:
            raise TrainingError("predict: the loader yielded no batches")
        return outs[0] if len(outs) == 1 else cat(outs)

    # ---- fitting ----------------------------------------------------------------------------
    def fit(self, train_loader: Iterable[Any], val_loader: Iterable[Any] | None = None, epochs: int = 1,
            background: bool = False) -> History | FitHandle:
        """Train for ``epochs`` epochs, evaluating on ``val_loader`` after each.

        Parameters
        ----------
        train_loader, val_loader : iterable of batches
            Usually :class:`~spiraltorch_nb.train.DataLoader`; a batch is ``(x, y)``, ``(x, y, *extra)``
            (passed on to ``loss_fn``) or ``(x,)`` for ``loss_fn(output)``.
        epochs : int, default 1
        background : bool, default False
            Run on a worker thread and return a :class:`FitHandle` at once.

        Returns
        -------
        History or FitHandle
            The trainer's history (it grows across fits), or the handle of the background fit.
        """
        if not isinstance(epochs, int) or isinstance(epochs, bool) or epochs < 1:
            raise TrainingError(f"epochs must be a positive integer; got {epochs!r}")
        with self._lock:
            if self._running:
                raise TrainingError("a fit is already running on this trainer; wait for it (handle.wait()) or stop "
                                    "it (trainer.stop()) first")
            self._running = True  # claimed here so that a second fit() cannot slip in before the thread starts
        self._stop = False
        self.stop_reason = None
        if background:
            try:
                return FitHandle(self, lambda: self._fit(train_loader, val_loader, epochs))._start()
            except BaseException:
                self._running = False  # the worker never started
                raise
        return self._fit(train_loader, val_loader, epochs)

    def _fit(self, train_loader: Iterable[Any], val_loader: Iterable[Any] | None, epochs: int) -> History:
        try:
            per_epoch = len(train_loader) if hasattr(train_loader, "__len__") else None  # type: ignore[arg-type]
        except TypeError:
            per_epoch = None
        total = per_epoch * epochs if per_epoch is not None else None
        bar = None
        t0 = time.perf_counter()
        steps_done = 0
        try:
            self._progress = {"epoch": 0, "epochs": epochs, "step": 0, "total_steps": total, "fraction": 0.0 if total
                              else None, "loss": None, "running": True, "device": str(self.device),
                              "global_step": self.global_step, "elapsed": 0.0}
            if self.progress_bar:
                from tqdm.auto import tqdm

                bar = tqdm(total=total, desc=f"epoch 1/{epochs}", leave=True, dynamic_ncols=True)
            self._stage("on_fit_start", epochs=epochs, total_steps=total, device=str(self.device))
            for e in range(epochs):
                if self._stop:
                    break
                epoch = self.epoch
                self._stage("on_epoch_start", epoch, epoch=epoch)
                self._set_mode(True)
                sums: dict[str, float] = {}
                count = batches = 0
                for i, batch in enumerate(train_loader):
                    self._step_boundary()
                    if self._stop:
                        break
                    # a step that starts also ends: stopping from on_step_start ends the fit after it
                    step = self.global_step + 1
                    self._stage("on_step_start", step, step=step, epoch=epoch, batch=i)
                    loss, n, scores, lr = self._train_step(batch)
                    self.global_step += 1
                    steps_done += 1
                    batches += 1
                    for k, v in {"loss": loss, **scores}.items():
                        sums[k] = sums.get(k, 0.0) + v * n
                    count += n
                    self.history.log(epoch, self.global_step, "train", "step", {"loss": loss, "lr": lr})
                    logs = {"loss": loss, "lr": lr, "epoch": epoch, "batch": i, "batch_size": n, **scores}
                    self._progress = {**self._progress, "epoch": e, "step": steps_done, "loss": loss,
                                      "fraction": steps_done / total if total else None,
                                      "global_step": self.global_step, "elapsed": time.perf_counter() - t0}
                    self._stage("on_step_end", self.global_step, logs, step=self.global_step, epoch=epoch, logs=logs)
                    if bar is not None:
                        bar.update(1)
                        bar.set_postfix(loss=f"{loss:.4g}", refresh=False)
                if batches == 0 and not self._stop:
                    raise TrainingError("fit: the training loader yielded no batches")
                # a fit stopped part-way through an epoch skips that epoch's validation
                cut_short = self._stop and (per_epoch is None or batches < per_epoch)
                epoch_logs = {k: v / count for k, v in sums.items()} if count else {}
                if count:
                    self.history.log(epoch, self.global_step, "train", "epoch", epoch_logs)
                if val_loader is not None and count and not cut_short:
                    self._step_boundary()
                    metrics = self.evaluate(val_loader)
                    self.history.log(epoch, self.global_step, "val", "epoch", metrics)
                    epoch_logs.update({f"val_{k}": v for k, v in metrics.items()})
                    self._stage("on_validation_end", epoch, metrics, epoch=epoch, metrics=metrics)
                if count:
                    self._stage("on_epoch_end", epoch, epoch_logs, epoch=epoch, logs=epoch_logs)
                    self.epoch += 1
                if self.scheduler is not None and self.scheduler_interval == "epoch" and count:
                    self.scheduler.step()
                if bar is not None and e + 1 < epochs:
                    bar.set_description(f"epoch {e + 2}/{epochs}")
            self._stage("on_fit_end", history=self.history, stopped=self._stop, reason=self.stop_reason)
            return self.history
        finally:
            with self._lock:
                self._running = False
                pending, self._pending_device = self._pending_device, None
                if pending is not None:  # the end of the fit is a step boundary too
                    self._move(pending)
            self._progress = {**self._progress, "running": False, "elapsed": time.perf_counter() - t0}
            if bar is not None:
                bar.close()

    def _step_boundary(self) -> None:
        dev = self._pending_device
        if dev is not None:
            self._pending_device = None
            with self._lock:
                self._move(dev)

    def _lr(self) -> float:
        groups = getattr(self.optimizer, "param_groups", None)
        if groups:
            try:
                return float(groups[0]["lr"])
            except (KeyError, TypeError, ValueError):
                return float("nan")
        return float("nan")

    def __repr__(self) -> str:
        name = type(self.model).__name__
        return (f"<Trainer {name} on {self.device}: {type(self.optimizer).__name__}, epoch {self.epoch}, "
                f"step {self.global_step}, {len(self._callbacks)} callback(s)>")

