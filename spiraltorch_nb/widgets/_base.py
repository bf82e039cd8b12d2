"""What every widget shares: front-end assets, routing of user intent, and coalesced flushing.

The front end never changes state itself: it sends ``{"action": name, ...}`` messages
and :class:`ActionWidget` calls the Python method registered for that action. An
exception raised by such a call is shown in the widget (its ``error`` trait) and never
reaches the kernel, so clicking in a widget cannot break a notebook.
"""

from __future__ import annotations

import contextlib
import threading
import weakref
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

import anywidget
import traitlets

from .._assets import read_asset
from ..errors import SpiralTorchError

__all__ = ["WidgetError", "ActionWidget", "Coalescer", "widget_asset", "WeakHandler", "subscribe_weak"]


class WidgetError(SpiralTorchError, ValueError):
    """A widget action that cannot be carried out (bad stage index, unknown action...)."""


def widget_asset(filename: str) -> str:
    """The text of one front-end file in ``widgets/`` (``"device_switcher.js"``)."""
    return read_asset("widgets", filename)


def _describe_error(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    if isinstance(exc, SpiralTorchError):
        return text
    return f"{type(exc).__name__}: {text}"


class ActionWidget(anywidget.AnyWidget):
    """An anywidget whose front end forwards user intent as named actions.

    Subclasses list the actions the front end may send in ``_actions`` (action name ->
    method name); the message's other keys are passed as keyword arguments.
    """

    _actions: ClassVar[dict[str, str]] = {}

    error = traitlets.Unicode("").tag(sync=True)

    def __init__(self, **kwargs: Any) -> None:
        # state changes come from the kernel's thread (clicks) and from training and flush
        # threads (events): ipywidgets' hold_sync is not thread-safe (a change made while
        # another thread leaves hold_sync can be queued after the queue was sent, and never
        # reach the page), so changes and held blocks take this lock
        self._sync_lock = threading.RLock()
        super().__init__(**kwargs)
        self.on_msg(self._on_front_message)

    @contextlib.contextmanager
    def hold_sync(self) -> Iterator[None]:
        """Send the changes made in the block together, when it ends (one thread at a time)."""
        with self._sync_lock, super().hold_sync():
            yield

    def _should_send_property(self, key: Any, value: Any) -> Any:
        # the check of "holding" and the queueing of the change are one step for other threads
        # (observers of the change run outside the lock)
        with self._sync_lock:
            return super()._should_send_property(key, value)

    def _on_front_message(self, _widget: Any, content: Any, buffers: list[bytes]) -> None:
        if not isinstance(content, dict) or "action" not in content:
            return  # not ours (anywidget's own protocol messages pass through here too)
        action = content.get("action")
        method = self._actions.get(action) if isinstance(action, str) else None
        if method is None:
            self.error = f"the front end sent an unknown action {action!r}; expected one of {sorted(self._actions)}"
            return
        args = {k: v for k, v in content.items() if k != "action"}
        try:
            getattr(self, method)(**args)
        except Exception as exc:  # the kernel must never see an exception caused by a click
            self.error = _describe_error(exc)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class WeakHandler:
    """A bus handler that calls ``method`` on an object without keeping the object alive.

    The event bus holds its handlers strongly; a widget subscribed through a bound method
    would never be freed. Once the object is gone the handler unsubscribes itself.
    """

    __slots__ = ("_ref", "_name", "subscription", "__weakref__")

    def __init__(self, obj: Any, method: str) -> None:
        self._ref = weakref.ref(obj)
        self._name = method
        self.subscription: Any = None

    def __call__(self, event: Any) -> None:
        obj = self._ref()
        if obj is None:
            if self.subscription is not None:
                self.subscription.unsubscribe()
            return
        getattr(obj, self._name)(event)

    def __repr__(self) -> str:  # how the bus names this handler in its warnings
        obj = self._ref()
        return f"{type(obj).__name__ if obj is not None else 'widget'}.{self._name}"


def subscribe_weak(bus: Any, pattern: str, obj: Any, method: str) -> Any:
    """Subscribe ``obj.method`` to ``pattern`` on ``bus`` without a strong reference to ``obj``."""
    handler = WeakHandler(obj, method)
    handler.subscription = bus.subscribe(pattern, handler)
    return handler.subscription


#: seconds an idle worker sleeps between checks that its widget still exists
_IDLE_CHECK = 30.0


def _never() -> bool:
    return False


def _weak_callable(fn: Callable[..., Any]) -> Callable[[], Callable[..., Any] | None]:
    """A function returning ``fn`` (or None once a bound method's object is collected)."""
    if getattr(fn, "__self__", None) is not None and getattr(fn, "__func__", None) is not None:
        return weakref.WeakMethod(fn)
    return lambda: fn


class Coalescer:
    """Calls ``flush()`` on a worker thread at most once per ``interval`` seconds, when poked.

    Producers (a training thread publishing one event per step) only call :meth:`poke`,
    which sets a flag; the worker wakes, flushes once for everything gathered since the
    last flush, then sleeps ``interval``. So however fast events arrive, the front end gets
    at most ``1 / interval`` updates per second, and none while nothing changes.
    ``poll_every`` also wakes the worker periodically without a poke (for sources that are
    read by polling, such as a recorder's frames) while ``polling()`` returns True.
    """

    def __init__(self, flush: Callable[[], Any], interval: float = 0.1, *,
                 poll_every: float | None = None, polling: Callable[[], bool] | None = None,
                 name: str = "spiraltorch-widget-flush") -> None:
        # bound methods are held weakly: the worker must not keep its widget alive
        self._flush_ref = _weak_callable(flush)
        self.interval = float(interval)
        self._poll_every = poll_every
        self._polling_ref = _weak_callable(polling or _never)
        self._wake = threading.Event()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._name = name
        self._later: threading.Timer | None = None
        self.flushes = 0
        self.last_error: BaseException | None = None

    def poke(self) -> None:
        """Ask for a flush soon (within ``interval``); cheap enough to call on every event."""
        wake = self._wake
        if not wake.is_set():  # set() takes a lock and notifies: between flushes, one call does it
            wake.set()
        if self._thread is None:
            self._start()

    def poke_after(self, seconds: float) -> None:
        """Ask for a flush in ``seconds`` (at most one such request is pending at a time)."""
        with self._lock:
            if self._later is not None or self._stopped.is_set():
                return
            self._later = threading.Timer(seconds, self._poke_later)
            self._later.daemon = True
            self._later.start()

    def _poke_later(self) -> None:
        with self._lock:
            self._later = None
        self.poke()

    def _start(self) -> None:
        with self._lock:
            if self._thread is not None or self._stopped.is_set():
                return
            self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
            self._thread.start()

    def ensure_running(self) -> None:
        """Start the worker without a poke (for polled sources)."""
        if self._thread is None:
            self._start()

    def _run(self) -> None:
        while not self._stopped.is_set():
            polling = self._polling_ref()
            if polling is None:
                return  # the owner is gone
            polled = bool(self._poll_every) and polling()
            del polling
            woke = self._wake.wait(self._poll_every if polled else _IDLE_CHECK)
            if self._stopped.is_set():
                break
            if not woke and not polled:
                continue  # an idle wake-up: only to notice a collected owner
            self._wake.clear()  # cleared before flushing: an event arriving meanwhile re-arms it
            flush = self._flush_ref()
            if flush is None:
                return
            try:
                flush()
                self.flushes += 1
            except Exception as exc:  # keep flushing later updates; the error is kept for inspection
                self.last_error = exc
            del flush
            self._stopped.wait(self.interval)

    def stop(self, timeout: float = 1.0) -> None:
        """Stop the worker (a last flush is not made: call ``flush`` yourself if needed)."""
        self._stopped.set()
        self._wake.set()
        with self._lock:
            if self._later is not None:
                self._later.cancel()
                self._later = None
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()
