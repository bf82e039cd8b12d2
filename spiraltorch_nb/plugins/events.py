"""The event bus: publish/subscribe with wildcard topics and isolated handlers.

Topics are dotted strings (``"tensor.add"``, ``"plugin.loaded"``,
``"telemetry.op"``). A subscription names a pattern with ``fnmatch``-style
wildcards (``*``, ``?``, ``[abc]``), matched case-sensitively against the whole
topic; note that ``*`` also crosses dots, so ``"tensor.*"`` matches
``"tensor.add.backward"`` too.

Publishing is cheap when nobody listens: telemetry publishes one event per
dispatched op, so :meth:`EventBus.publish` returns at once when the bus has no
subscriptions, and caches which subscriptions match each topic.
"""

from __future__ import annotations

import fnmatch
import functools
import operator
import re
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from spiraltorch_nb.errors import PluginError

__all__ = ["Event", "EventBus", "PluginWarning", "Subscription", "HANDLER_ERROR_TOPIC"]

#: Topic on which the bus reports a handler that raised.
HANDLER_ERROR_TOPIC = "bus.handler_error"

# Topics whose matching subscriptions are cached; past this the cache starts afresh,
# so a program publishing ever-new topic names cannot grow it without bound.
_MATCH_CACHE_LIMIT = 1024

_WILDCARD_CHARS = frozenset("*?[")


class PluginWarning(UserWarning):
    """A plugin or event handler misbehaved, and the system carried on without it."""


@dataclass(frozen=True)
class Event:
    """One published event: its topic, its payload and when it was published.

    Examples
    --------
    >>> event = Event("tensor.add", {"shape": (2, 3)})
    >>> event.topic, event.payload["shape"]
    ('tensor.add', (2, 3))
    """

    topic: str
    payload: Any = None
    timestamp: float = field(default_factory=time.time)


def _compile_pattern(pattern: str) -> Callable[[str], bool]:
    """Return a fast predicate telling whether a topic matches ``pattern``."""
    if pattern == "*":
        return lambda topic: True
    if not _WILDCARD_CHARS.intersection(pattern):
        return functools.partial(operator.eq, pattern)
    regex = re.compile(fnmatch.translate(pattern))
    return lambda topic: regex.match(topic) is not None


def _describe_handler(handler: Callable[..., Any]) -> str:
    """Name a handler for messages: its qualified name where it has one, else its repr."""
    qualname = getattr(handler, "__qualname__", None)
    if isinstance(qualname, str):
        module = getattr(handler, "__module__", None)
        return f"{module}.{qualname}" if module else qualname
    return repr(handler)


class Subscription:
    """A handle on one subscription; :meth:`unsubscribe` removes it.

    Also a context manager: the subscription lasts for the ``with`` block.

    Attributes
    ----------
    pattern : str
        The topic pattern it listens to.
    handler : callable
        Called with each matching :class:`Event`.
    owner : str or None
        Id of the plugin that made it (set automatically while a plugin loads),
        or None when made outside any plugin.

    Examples
    --------
    >>> bus = EventBus()
    >>> seen = []
    >>> with bus.subscribe("demo.*", seen.append):
    ...     bus.publish("demo.ping")
    1
    >>> bus.publish("demo.ping")
    0
    >>> [event.topic for event in seen]
    ['demo.ping']
    """

    __slots__ = ("pattern", "handler", "owner", "_bus", "_active", "_matches")

    def __init__(
        self,
        bus: EventBus,
        pattern: str,
        handler: Callable[[Event], Any],
        owner: str | None,
    ) -> None:
        self.pattern = pattern
        self.handler = handler
        self.owner = owner
        self._bus = bus
        self._active = True
        self._matches = _compile_pattern(pattern)

    @property
    def active(self) -> bool:
        """Whether the subscription still receives events."""
        return self._active

    def matches(self, topic: str) -> bool:
        """Whether ``topic`` matches this subscription's pattern."""
        return self._matches(topic)

    def unsubscribe(self) -> bool:
        """Stop receiving events; safe to call again.

        Returns
        -------
        bool
            True if this call removed it, False if it was already removed.
        """
        return self._bus._remove(self)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.unsubscribe()

    def __repr__(self) -> str:
        state = "active" if self._active else "removed"
        owner = f", owner={self.owner!r}" if self.owner else ""
        return (
            f"<Subscription {self.pattern!r} -> {_describe_handler(self.handler)}{owner} ({state})>"
        )


class _BusState:
    """Subscriptions and the per-topic match cache, replaced together on every change."""

    __slots__ = ("subscriptions", "cache")

    def __init__(self, subscriptions: tuple[Subscription, ...]) -> None:
        self.subscriptions = subscriptions
        self.cache: dict[str, tuple[Subscription, ...]] = {}


class EventBus:
    """Publish/subscribe with wildcard topics, thread-safe, with isolated handlers.

    A handler that raises does not stop delivery to the others: the bus warns with a
    :class:`PluginWarning` naming the handler and the topic, and publishes a
    ``"bus.handler_error"`` event whose payload holds ``topic``, ``handler``,
    ``error`` and ``event``.

    Examples
    --------
    >>> bus = EventBus()
    >>> sub = bus.subscribe("tensor.*", lambda event: print(event.topic, event.payload))
    >>> bus.publish("tensor.add", {"n": 2})
    tensor.add {'n': 2}
    1
    >>> bus.publish("optim.step")
    0
    >>> sub.unsubscribe()
    True
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._state = _BusState(())

    # -- subscribing -------------------------------------------------------------

    def subscribe(
        self,
        pattern: str,
        handler: Callable[[Event], Any],
        *,
        owner: str | None = None,
    ) -> Subscription:
        """Call ``handler(event)`` for every published topic matching ``pattern``.

        Parameters
        ----------
        pattern : str
            A topic (``"telemetry.op"``) or an fnmatch pattern (``"tensor.*"``, ``"*"``).
        handler : callable
            Receives one :class:`Event`; its return value is ignored.
        owner : str, optional
            Plugin id to file the subscription under. Defaults to the plugin being
            loaded, if any; a subscription made while a plugin loads is removed again
            if that load fails, and when the plugin unloads.

        Returns
        -------
        Subscription
            The handle; call ``.unsubscribe()`` or use it as a context manager.
        """
        if not isinstance(pattern, str) or not pattern:
            message = (
                f"EventBus.subscribe expected a non-empty topic pattern such as 'tensor.*', "
                f"got {pattern!r}."
            )
            raise PluginError(message, plugin_id=owner)
        if not callable(handler):
            message = (
                f"EventBus.subscribe expected a callable handler taking one Event, got "
                f"{type(handler).__name__} {handler!r}. Pass a function such as "
                f"`lambda event: print(event.topic)`."
            )
            raise PluginError(message, plugin_id=owner)
        # Imported here: context.py builds on this module.
        from spiraltorch_nb.plugins.context import current_loading_context

        undo_log = current_loading_context()
        if owner is None and undo_log is not None:
            owner = undo_log.plugin_id
        subscription = Subscription(self, pattern, handler, owner)
        with self._lock:
            self._state = _BusState(self._state.subscriptions + (subscription,))
        if undo_log is not None:
            undo_log.track(subscription.unsubscribe, f"event subscription {pattern!r}")
        return subscription

    def _remove(self, subscription: Subscription) -> bool:
        with self._lock:
            if not subscription._active:
                return False
            subscription._active = False
            remaining = tuple(s for s in self._state.subscriptions if s is not subscription)
            self._state = _BusState(remaining)
        return True

    def unsubscribe(self, subscription: Subscription) -> bool:
        """Remove ``subscription``; same as ``subscription.unsubscribe()``."""
        if not isinstance(subscription, Subscription) or subscription._bus is not self:
            message = (
                f"EventBus.unsubscribe expected a Subscription returned by this bus's "
                f"subscribe(), got {subscription!r}."
            )
            raise PluginError(message)
        return subscription.unsubscribe()

    def subscriptions(self, owner: str | None = None) -> list[Subscription]:
        """The active subscriptions in subscription order, optionally only ``owner``'s."""
        current = self._state.subscriptions
        if owner is None:
            return list(current)
        return [s for s in current if s.owner == owner]

    def clear(self) -> None:
        """Remove every subscription."""
        with self._lock:
            for subscription in self._state.subscriptions:
                subscription._active = False
            self._state = _BusState(())

    def __len__(self) -> int:
        return len(self._state.subscriptions)

    def __repr__(self) -> str:
        return f"<EventBus: {len(self)} subscriptions>"

    # -- publishing --------------------------------------------------------------

    def _matching(self, state: _BusState, topic: str) -> tuple[Subscription, ...]:
        matched = state.cache.get(topic)
        if matched is None:
            matched = tuple(s for s in state.subscriptions if s._matches(topic))
            if len(state.cache) >= _MATCH_CACHE_LIMIT:
                state.cache.clear()
            state.cache[topic] = matched
        return matched

    def has_subscribers(self, topic: str | None = None) -> bool:
        """Whether publishing ``topic`` would call anyone (any topic when None).

        Producers of costly payloads check this first and skip building them.
        """
        state = self._state
        if not state.subscriptions:
            return False
        if topic is None:
            return True
        return bool(self._matching(state, topic))

    def publish(self, topic: str, payload: Any = None) -> int:
        """Deliver an :class:`Event` to every subscription matching ``topic``.

        Handlers run in subscription order, in the publishing thread, outside the
        bus's lock. A subscription removed during delivery is not called after that.

        Parameters
        ----------
        topic : str
            A dotted topic name; no wildcards.
        payload : any, optional
            Passed through as ``event.payload``.

        Returns
        -------
        int
            How many handlers were called (including ones that raised).
        """
        state = self._state
        if not state.subscriptions:
            return 0
        if not isinstance(topic, str) or not topic:
            message = f"EventBus.publish expected a non-empty topic string, got {topic!r}."
            raise PluginError(message)
        matched = self._matching(state, topic)
        if not matched:
            return 0
        event = Event(topic, payload)
        called = 0
        for subscription in matched:
            if not subscription._active:
                continue
            called += 1
            try:
                subscription.handler(event)
            except Exception as exc:
                self._report_handler_error(subscription, event, exc)
        return called

    def _report_handler_error(
        self, subscription: Subscription, event: Event, error: Exception
    ) -> None:
        handler_name = _describe_handler(subscription.handler)
        owner = f" (plugin {subscription.owner!r})" if subscription.owner else ""
        message = (
            f"event handler {handler_name}{owner} raised {type(error).__name__}: {error} "
            f"while handling topic {event.topic!r}; the other handlers still ran. Fix the "
            f"handler, or remove it with its Subscription's .unsubscribe()."
        )
        # stacklevel 3 points at the code that called publish().
        warnings.warn(message, PluginWarning, stacklevel=3)
        # A failing handler of the error topic itself is only warned about: reporting it
        # on the same topic could recurse without end.
        if event.topic == HANDLER_ERROR_TOPIC:
            return
        self.publish(
            HANDLER_ERROR_TOPIC,
            {
                "topic": event.topic,
                "handler": handler_name,
                "owner": subscription.owner,
                "error": error,
                "event": event,
            },
        )
