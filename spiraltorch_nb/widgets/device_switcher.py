"""DeviceSwitcher: every backend with its status, and one click to move a model (even mid-training).

>>> import spiraltorch_nb as st
>>> sw = st.widgets.DeviceSwitcher()
>>> sw
DeviceSwitcher(current='cpu', devices=3)
>>> [d["name"] for d in sw.devices][0], sw.devices[0]["available"]
('cpu', True)
>>> sw.select("cpu"), sw.current, sw.error
(True, 'cpu', '')
>>> sw.status
'already on cpu; nothing to move'
"""

from __future__ import annotations

import threading
import time
from typing import Any

import traitlets

from ..device import DEVICE_TYPES, Device, describe_device, get_default_device, set_default_device
from ..errors import DeviceError
from ._base import ActionWidget, Coalescer, WidgetError, subscribe_weak, widget_asset
from ._telemetry_source import find_recorder

__all__ = ["DeviceSwitcher"]

#: trainer topics the switcher listens to (on the trainer's own event bus)
_TOPICS = {"trainer.device_changed": "_on_device_changed", "trainer.device_change_failed": "_on_device_change_failed",
           "trainer.step_end": "_on_step_end", "trainer.fit_end": "_on_fit_end"}
#: seconds between two reads of the recorder's memory table
_MEMORY_POLL = 1.0


def _fmt_bytes(n: Any) -> str:
    if not isinstance(n, int | float) or n <= 0:
        return ""
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{int(n)} B"


def _device_entry(name: str) -> dict[str, Any]:
    """One row of the device list, from ``describe_device`` (which never raises for absent devices)."""
    try:
        info = describe_device(name)
    except Exception as exc:  # a backend whose probe itself breaks is listed as unavailable
        info = {"available": False, "reason": f"{type(exc).__name__}: {exc}", "backend": name.split(":")[0]}
    available = bool(info.get("available"))
    parts = []
    if available:
        if info.get("device_name"):
            parts.append(str(info["device_name"]))
        if info.get("adapter_type"):
            parts.append(str(info["adapter_type"]))
        if info.get("cores"):
            parts.append(f"{info['cores']} cores")
        mem = _fmt_bytes(info.get("memory_total"))
        if mem:
            parts.append(f"{mem} memory")
    description = " · ".join(parts) if available else str(info.get("reason") or "unavailable")
    return {"name": name, "backend": str(info.get("backend") or name.split(":")[0]), "available": available,
            "reason": "" if available else str(info.get("reason") or "unavailable"),
            "description": description}


def list_devices() -> list[dict[str, Any]]:
    """Every device type with its status, available ones first; a multi-device backend lists each device."""
    from ..backends import probe

    out = []
    for dtype in DEVICE_TYPES:
        try:
            info = probe(dtype)
        except Exception:  # probe never raises by contract; a broken backend module still must not
            info = {"available": False, "devices": []}
        names = list(info.get("devices") or []) if info.get("available") else []
        for name in names or [dtype]:
            out.append(_device_entry(str(name)))
    return sorted(out, key=lambda d: not d["available"])


#: where a readout figure comes from (shown in the widget)
SOURCE_TELEMETRY = "telemetry"
SOURCE_TRAINER = "trainer events"
SOURCE_BACKEND = "backend"
SOURCE_RSS = "process RSS"


def _memory_in_use(name: str) -> tuple[int | None, str | None]:
    """Bytes in use on a started device and where the figure comes from: the backend's own
    count, or the process RSS for cpu; ``(None, None)`` for a device not started."""
    from ..backends import loaded_backends

    for be in loaded_backends():
        if str(be.device) != name and be.name != name:
            continue
        stats = getattr(be, "memory_stats", None)
        if callable(stats):
            try:
                value = (stats() or {}).get("allocated_bytes")
                return (None, None) if value is None else (int(value), SOURCE_BACKEND)
            except Exception:
                return None, None
        if be.name == "cpu":
            from ..telemetry.recorder import process_memory

            return process_memory()[0], SOURCE_RSS
    return None, None


class DeviceSwitcher(ActionWidget):
    """Lists the devices and moves the default device, a model and its optimizer on a click.

    Parameters
    ----------
    model : Module, optional
        Moved (parameters, buffers, grads) together with the default device.
    optimizer : Optimizer, optional
        Its state tensors (momentum, moments) move with the model.
    run : FitHandle, optional
        From ``Trainer.fit(..., background=True)`` (its trainer's model and optimizer
        are used when ``model``/``optimizer`` are not given). While it runs, a switch is
        requested from the trainer and applied at the next step boundary; the widget
        shows it as pending until the trainer publishes ``trainer.device_changed`` (or
        ``trainer.device_change_failed``).
    recorder : Recorder, optional
        Where the readout's figures come from: the time between the recorder's logged
        steps (its ``telemetry.metric`` events) and its memory samples (``rec.memory``).
        By default the recorder among the run's trainer callbacks, if any. Without one,
        the step time is the widget's own clock between ``trainer.step_end`` events and
        memory is read from the backend (process RSS for cpu).

    Attributes
    ----------
    devices : list of dict
        ``name``, ``backend``, ``available``, ``reason``, ``description`` per device.
    current : str
        Where the model is (or the default device, without a model).
    pending : str
        A device requested from a running trainer and not yet applied ("" if none).
    error : str
        Why the last switch failed ("" after a successful one).
    readout : dict
        Per available device: ``step_ms`` (last training step), ``steps``, ``memory_bytes``,
        and where they come from: ``step_source`` ("telemetry" or "trainer events") and
        ``memory_source`` ("telemetry", "backend" or "process RSS"), None where unknown.
    """

    _esm = widget_asset("device_switcher.js")
    _css = widget_asset("device_switcher.css")
    _actions = {"select": "select", "refresh": "refresh"}

    devices = traitlets.List(traitlets.Dict()).tag(sync=True)
    current = traitlets.Unicode("").tag(sync=True)
    pending = traitlets.Unicode("").tag(sync=True)
    status = traitlets.Unicode("").tag(sync=True)
    readout = traitlets.Dict().tag(sync=True)

    def __init__(self, model: Any = None, optimizer: Any = None, run: Any = None, *, recorder: Any = None,
                 **kwargs: Any) -> None:
        from ..telemetry import Recorder

        if recorder is not None and not isinstance(recorder, Recorder):
            msg = (f"DeviceSwitcher(recorder=...) takes a telemetry Recorder (st.telemetry.record()); "
                   f"got {type(recorder).__name__}")
            raise WidgetError(msg)
        self._subscriptions: list[Any] = []
        super().__init__(**kwargs)
        trainer = getattr(run, "trainer", None)
        self._trainer = trainer
        self._model = model if model is not None else getattr(trainer, "model", None)
        self._optimizer = optimizer if optimizer is not None else getattr(trainer, "optimizer", None)
        self._run = run
        self._rec = recorder if recorder is not None else (find_recorder(run) if run is not None else None)
        self._select_lock = threading.RLock()
        # the readout: per device, from the trainer's events and from telemetry
        self._steps: dict[str, dict[str, Any]] = {}
        self._last_step_time: float | None = None
        self._tel_steps: dict[str, dict[str, Any]] = {}
        self._tel_last: tuple[int, int, str] | None = None  # (step, time_ns, device) of the last new step
        self._tel_memory: dict[str, int] = {}
        self._mem_tail = self._rec.tail("memory") if self._rec is not None else None
        self._mem_lock = threading.Lock()
        self._mem_polled = -_MEMORY_POLL
        self._readout_flusher = Coalescer(self._flush_readout, interval=0.25, name="spiraltorch-device-readout")
        self.devices = list_devices()
        self.current = self._where()
        if trainer is not None:
            bus = trainer.events
            for topic, method in _TOPICS.items():
                self._subscriptions.append(subscribe_weak(bus, topic, self, method))
        if self._rec is not None:
            from ..plugins import global_registry

            self._subscriptions.append(subscribe_weak(global_registry().events, "telemetry.metric", self, "_on_metric"))
        self._flush_readout()

    @property
    def recorder(self) -> Any:
        """The telemetry Recorder the readout comes from (None: trainer events and backend counts)."""
        return self._rec

    def _where(self) -> str:
        if self._trainer is not None:
            return str(self._trainer.device)
        if self._model is not None:
            for t in self._model.parameters():
                return str(t.device)
        return str(get_default_device())

    # ---- actions --------------------------------------------------------------------
    def select(self, name: str) -> bool:
        """Switch to device ``name``; True when done (or requested from a running trainer).

        Selecting the device everything is on already moves nothing and leaves no switch
        pending (a pending switch to another device is cancelled). A failure never raises:
        it is shown in :attr:`error` and the model stays where it was.
        """
        try:
            dev = str(Device(name))
        except DeviceError as exc:
            self.error = str(exc)
            return False
        with self._select_lock:
            if dev == self._where():
                return self._stay(dev)
            entry = next((d for d in self.devices if d["name"] == dev), None) or _device_entry(dev)
            if not entry["available"]:
                self.error = f"cannot switch to {dev}: {entry['reason']}. Everything stays on {self.current}."
                return False
            if self._trainer is not None:
                return self._request_from_trainer(dev)
            return self._move_now(dev)

    def refresh(self) -> None:
        """Probe the devices again and update the readout (reading the recorder's newest memory samples)."""
        self.devices = list_devices()
        self._flush_readout(force=True)

    def _stay(self, dev: str) -> bool:
        """The selected device is where everything is: nothing moves, nothing stays pending."""
        cancelled = self.pending
        if cancelled and self._trainer is not None:
            try:
                # the trainer keeps one request: asking for the current device replaces the
                # pending one, and moving to where it already is does nothing
                self._trainer.request_device(dev)
            except Exception as exc:
                self.error = f"could not cancel the pending switch to {cancelled}: {type(exc).__name__}: {exc}"
                return False
        try:
            if str(get_default_device()) != dev:
                set_default_device(dev)
        except Exception as exc:
            self.error = f"everything is on {dev} but the default device could not follow: {exc}"
            return False
        status = f"already on {dev}; " + (f"the switch to {cancelled} is cancelled" if cancelled else "nothing to move")
        with self.hold_sync():
            self.error = ""
            self.pending = ""
            self.current = dev
            self.status = status
        return True

    def _move_now(self, dev: str) -> bool:
        from ..train._relocate import relocate

        start = time.perf_counter()
        try:
            moved = relocate(self._model, self._optimizer, Device(dev)) if self._model is not None else 0
            set_default_device(dev)
        except Exception as exc:  # out of memory, unsupported dtype, device lost: report and stay put
            self.error = f"could not move to {dev}: {type(exc).__name__}: {exc}. Everything stays on {self.current}."
            return False
        self._switched(dev, f"moved {moved} tensors to {dev} in {(time.perf_counter() - start) * 1e3:.0f} ms"
                       if self._model is not None else f"new tensors are created on {dev}")
        return True

    def _switched(self, dev: str, status: str) -> None:
        with self.hold_sync():
            self.error = ""
            self.pending = ""
            self.current = dev
            self.status = status
        self._last_step_time = None
        self._readout_flusher.poke()

    def _request_from_trainer(self, dev: str) -> bool:
        trainer: Any = self._trainer
        # pending is shown before asking: the trainer may apply the switch (and publish
        # trainer.device_changed, which clears it) before request_device returns
        with self.hold_sync():
            self.error = ""
            self.pending = dev
            self.status = f"switch to {dev} requested; it happens at the next training step"
        try:
            record = trainer.request_device(dev)
        except Exception as exc:
            with self.hold_sync():
                self.pending = ""
                self.status = ""
                self.error = f"the trainer refused the switch to {dev}: {type(exc).__name__}: {exc}"
            return False
        if record is None:  # a fit is running: the trainer moves at the next step boundary
            return True
        if not record.get("ok", True):
            err = record.get("error")
            with self.hold_sync():
                self.pending = ""
                self.status = ""
                self.error = f"could not move to {dev}: {type(err).__name__}: {err}. Everything stays on {self.current}."
            return False
        try:
            set_default_device(dev)
        except Exception as exc:
            with self.hold_sync():
                self.pending = ""
                self.current = self._where()
                self.error = f"the model moved to {dev} but the default device could not follow: {exc}"
            return False
        self._switched(dev, f"moved {record.get('moved', 0)} tensors to {dev}")
        return True

    # ---- trainer events (called on the training thread) -----------------------------
    def _is_ours(self, payload: Any) -> bool:
        return not isinstance(payload, dict) or payload.get("trainer", self._trainer) is self._trainer

    def _on_device_changed(self, event: Any) -> None:
        payload = event.payload
        if not self._is_ours(payload):
            return
        dev = str(payload.get("to"))
        try:
            set_default_device(dev)
        except Exception as exc:
            self.error = f"the model moved to {dev} but the default device could not follow: {exc}"
            return
        self._switched(dev, f"training continues on {dev} (from step {payload.get('step')})")

    def _on_device_change_failed(self, event: Any) -> None:
        payload = event.payload
        if not self._is_ours(payload):
            return
        where = str(payload.get("from") or self.current)
        with self.hold_sync():
            self.pending = ""
            self.current = where
            self.status = ""
            self.error = (f"could not move to {payload.get('to')}: {payload.get('message') or payload.get('error')}. "
                          f"Training stays on {where}.")

    def _on_step_end(self, event: Any) -> None:
        payload = event.payload
        if not self._is_ours(payload):
            return
        now = time.perf_counter()
        dev = str(getattr(self._trainer, "device", self.current))
        entry = self._steps.setdefault(dev, {"steps": 0, "step_ms": None})
        entry["steps"] += 1
        if self._last_step_time is not None:
            entry["step_ms"] = (now - self._last_step_time) * 1e3
        self._last_step_time = now
        self._readout_flusher.poke()

    def _on_metric(self, event: Any) -> None:
        """A value the recorder logged: the first one of each new step times the step before it."""
        from ..telemetry import active_recorder

        active = active_recorder()
        if active is not None and active is not self._rec:
            return  # another recorder's metrics
        payload = event.payload if isinstance(event.payload, dict) else {}
        step, t_ns = payload.get("step"), payload.get("time_ns")
        if not isinstance(step, int) or not isinstance(t_ns, int) or payload.get("name") == "epoch":
            return  # an epoch number is logged as the epoch starts, not when a step ends
        last = self._tel_last
        if last is not None and step <= last[0]:
            return  # another value of the same step (or validation, logged at the last step)
        dev = str(self._trainer.device) if self._trainer is not None else self.current
        entry = self._tel_steps.setdefault(dev, {"steps": 0, "step_ms": None})
        entry["steps"] += 1
        if last is not None and last[2] == dev:  # the step right after a switch includes the move
            entry["step_ms"] = (t_ns - last[1]) / 1e6 / (step - last[0])
        self._tel_last = (step, t_ns, dev)
        self._readout_flusher.poke()

    def _on_fit_end(self, event: Any) -> None:
        if not self._is_ours(event.payload):
            return
        self._last_step_time = None
        self._tel_last = None  # the next fit's first step does not time the pause in between
        self._readout_flusher.poke()
        if self.pending and self._run is not None:
            # the fit ended before its next step boundary: apply the switch once the run is done
            threading.Thread(target=self._apply_after_fit, name="spiraltorch-device-switch", daemon=True).start()

    def _apply_after_fit(self) -> None:
        run = self._run
        deadline = time.monotonic() + 30.0
        while not run.done and time.monotonic() < deadline:
            time.sleep(0.01)
        with self._select_lock:
            if self.pending and run.done:
                self._request_from_trainer(self.pending)

    # ---- the readout ----------------------------------------------------------------
    def _poll_memory(self, force: bool = False) -> None:
        """Fold the recorder's memory samples taken since the last poll into the last value per device."""
        tail = self._mem_tail
        now = time.monotonic()
        if tail is None or (not force and now - self._mem_polled < _MEMORY_POLL):
            return
        with self._mem_lock:
            self._mem_polled = now
            frame = tail.read()
        if not frame.height:
            return
        latest = (frame.drop_nulls("allocated_bytes").sort("time_ns")
                  .group_by("device", maintain_order=True).last())
        for backend, device, alloc in latest.select("backend", "device", "allocated_bytes").iter_rows():
            # the device list names a device "wgpu" or "cuda:1"; the table says both
            self._tel_memory[device] = self._tel_memory[backend] = int(alloc)

    def _flush_readout(self, force: bool = False) -> None:
        try:
            self._poll_memory(force)
        except Exception:  # an unreadable memory table costs the telemetry figure, not the widget
            self._mem_tail = None
        out = {}
        for d in self.devices:
            if not d["available"]:
                continue
            name = d["name"]
            steps, step_source = self._tel_steps.get(name), SOURCE_TELEMETRY
            if steps is None:
                steps, step_source = self._steps.get(name), SOURCE_TRAINER
            memory: int | None = self._tel_memory.get(name)
            memory_source: str | None = SOURCE_TELEMETRY
            if memory is None:
                memory, memory_source = _memory_in_use(name)
            out[name] = {"step_ms": (steps or {}).get("step_ms"), "steps": (steps or {}).get("steps", 0),
                         "memory_bytes": memory, "step_source": step_source if steps else None,
                         "memory_source": memory_source if memory is not None else None}
        self.readout = out

    # ---- lifecycle ------------------------------------------------------------------
    def close(self) -> None:
        """Stop listening to the trainer and the recorder, and close the front end."""
        for sub in getattr(self, "_subscriptions", ()):
            sub.unsubscribe()
        self._subscriptions = []
        if hasattr(self, "_readout_flusher"):
            self._readout_flusher.stop()
        super().close()

    def __repr__(self) -> str:
        return f"DeviceSwitcher(current={self.current!r}, devices={len(self.devices)})"
