"""DeviceSwitcher: every backend with its status, and one click to move a model (even mid-training).

>>> import spiraltorch_nb as st
>>> sw = st.widgets.DeviceSwitcher()
>>> sw
DeviceSwitcher(current='cpu', devices=3)
>>> [d["name"] for d in sw.devices][0], sw.devices[0]["available"]
('cpu', True)
>>> sw.select("cpu"), sw.current, sw.error
(True, 'cpu', '')
"""

from __future__ import annotations

import threading
import time
from typing import Any

import traitlets

from ..device import DEVICE_TYPES, Device, describe_device, get_default_device, set_default_device
from ..errors import DeviceError
from ._base import ActionWidget, Coalescer, subscribe_weak, widget_asset

__all__ = ["DeviceSwitcher"]

#: trainer topics the switcher listens to (on the trainer's own event bus)
_TOPICS = {"trainer.device_changed": "_on_device_changed", "trainer.device_change_failed": "_on_device_change_failed",
           "trainer.step_end": "_on_step_end", "trainer.fit_end": "_on_fit_end"}


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


def _memory_in_use(name: str) -> int | None:
    """Bytes in use on a started device: the backend's own count, or the process RSS for cpu."""
    from ..backends import loaded_backends

    for be in loaded_backends():
        if str(be.device) != name and be.name != name:
            continue
        stats = getattr(be, "memory_stats", None)
        if callable(stats):
            try:
                value = (stats() or {}).get("allocated_bytes")
                return None if value is None else int(value)
            except Exception:
                return None
        if be.name == "cpu":
            from ..telemetry.recorder import process_memory

            return process_memory()[0]
    return None


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
        Per available device: ``step_ms`` (last training step), ``steps``, ``memory_bytes``.
    """

    _esm = widget_asset("device_switcher.js")
    _css = widget_asset("device_switcher.css")
    _actions = {"select": "select", "refresh": "refresh"}

    devices = traitlets.List(traitlets.Dict()).tag(sync=True)
    current = traitlets.Unicode("").tag(sync=True)
    pending = traitlets.Unicode("").tag(sync=True)
    status = traitlets.Unicode("").tag(sync=True)
    readout = traitlets.Dict().tag(sync=True)

    def __init__(self, model: Any = None, optimizer: Any = None, run: Any = None, **kwargs: Any) -> None:
        self._subscriptions: list[Any] = []
        super().__init__(**kwargs)
        trainer = getattr(run, "trainer", None)
        self._trainer = trainer
        self._model = model if model is not None else getattr(trainer, "model", None)
        self._optimizer = optimizer if optimizer is not None else getattr(trainer, "optimizer", None)
        self._run = run
        self._steps: dict[str, dict[str, Any]] = {}
        self._last_step_time: float | None = None
        self._readout_flusher = Coalescer(self._flush_readout, interval=0.25, name="spiraltorch-device-readout")
        self.devices = list_devices()
        self.current = self._where()
        if trainer is not None:
            bus = trainer.events
            for topic, method in _TOPICS.items():
                self._subscriptions.append(subscribe_weak(bus, topic, self, method))
        self._flush_readout()

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

        A failure never raises: it is shown in :attr:`error` and the model stays where it was.
        """
        try:
            dev = str(Device(name))
        except DeviceError as exc:
            self.error = str(exc)
            return False
        entry = next((d for d in self.devices if d["name"] == dev), None) or _device_entry(dev)
        if not entry["available"]:
            self.error = f"cannot switch to {dev}: {entry['reason']}. Everything stays on {self.current}."
            return False
        if self._trainer is not None:
            return self._request_from_trainer(dev)
        return self._move_now(dev)

    def refresh(self) -> None:
        """Probe the devices again and update the readout."""
        self.devices = list_devices()
        self._flush_readout()

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
        try:
            record = trainer.request_device(dev)
        except Exception as exc:
            self.error = f"the trainer refused the switch to {dev}: {type(exc).__name__}: {exc}"
            return False
        if record is None:  # a fit is running: the trainer moves at the next step boundary
            with self.hold_sync():
                self.error = ""
                self.pending = dev
                self.status = f"switch to {dev} requested; it happens at the next training step"
            return True
        if not record.get("ok", True):
            err = record.get("error")
            self.error = f"could not move to {dev}: {type(err).__name__}: {err}. Everything stays on {self.current}."
            return False
        try:
            set_default_device(dev)
        except Exception as exc:
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

    def _on_fit_end(self, event: Any) -> None:
        if not self._is_ours(event.payload):
            return
        self._last_step_time = None
        self._readout_flusher.poke()
        if self.pending and self._run is not None:
            # the fit ended before its next step boundary: apply the switch once the run is done
            threading.Thread(target=self._apply_after_fit, name="spiraltorch-device-switch", daemon=True).start()

    def _apply_after_fit(self) -> None:
        run = self._run
        deadline = time.monotonic() + 30.0
        while not run.done and time.monotonic() < deadline:
            time.sleep(0.01)
        if self.pending and run.done:
            self._request_from_trainer(self.pending)

    def _flush_readout(self) -> None:
        out = {}
        for d in self.devices:
            if not d["available"]:
                continue
            steps = self._steps.get(d["name"], {})
            out[d["name"]] = {"step_ms": steps.get("step_ms"), "steps": steps.get("steps", 0),
                              "memory_bytes": _memory_in_use(d["name"])}
        self.readout = out

    # ---- lifecycle ------------------------------------------------------------------
    def close(self) -> None:
        """Stop listening to the trainer and close the front end."""
        for sub in getattr(self, "_subscriptions", ()):
            sub.unsubscribe()
        self._subscriptions = []
        if hasattr(self, "_readout_flusher"):
            self._readout_flusher.stop()
        super().close()

    def __repr__(self) -> str:
        return f"DeviceSwitcher(current={self.current!r}, devices={len(self.devices)})"
