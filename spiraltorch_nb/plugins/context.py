"""What plugins share: configuration, named services, the event bus, and undo logs.

While a plugin's ``on_load`` runs, an :class:`UndoLog` for it is active (see
:func:`current_loading_context`). Every change made through the context or the
event bus in that time records how to take itself back, and so can any other
component: the operator registry records the removal of each operator registered
during a load. If ``on_load`` raises, the log is replayed and the load leaves
nothing behind; when the plugin later unloads, the same log is replayed after its
``on_unload`` hook.
"""

from __future__ import annotations

import contextvars
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from spiraltorch_nb.errors import PluginError
from spiraltorch_nb.plugins.events import EventBus, PluginWarning

if TYPE_CHECKING:
    from spiraltorch_nb.plugins.registry import PluginRegistry

__all__ = ["PluginContext", "ServiceNotFoundError", "UndoLog", "current_loading_context"]

_MISSING: Any = object()

_ACTIVE_UNDO_LOG: contextvars.ContextVar[UndoLog | None] = contextvars.ContextVar(
    "spiraltorch_nb_active_undo_log", default=None
)


def current_loading_context() -> UndoLog | None:
    """The undo log of the plugin whose ``on_load`` is running now, or None.

    Components that let plugins register things call this and, when it returns a
    log, record how to undo the registration, so that a failed load or an unload
    removes it again.

    Examples
    --------
    >>> operators = {}
    >>> def register_operator(name, fn):
    ...     operators[name] = fn
    ...     log = current_loading_context()
    ...     if log is not None:
    ...         log.track(lambda: operators.pop(name, None), f"operator {name!r}")
    >>> register_operator("double", lambda x: 2 * x)  # no plugin loading: nothing tracked
    >>> current_loading_context() is None
    True
    """
    return _ACTIVE_UNDO_LOG.get()


class UndoLog:
    """Actions that take back, newest first, what one plugin did while it loaded.

    Calling the log is the same as calling :meth:`track`: ``log(undo)``.

    Parameters
    ----------
    plugin_id : str
        The plugin the actions belong to.

    Examples
    --------
    >>> log = UndoLog("demo")
    >>> done = []
    >>> log.track(lambda: done.append("first"), "first")
    >>> log.track(lambda: done.append("second"), "second")
    >>> log.replay()
    []
    >>> done
    ['second', 'first']
    """

    def __init__(self, plugin_id: str) -> None:
        self.plugin_id = plugin_id
        self._actions: list[tuple[str, Callable[[], object]]] = []

    def track(self, undo: Callable[[], object], description: str | None = None) -> None:
        """Record ``undo`` (called with no arguments) to run when the plugin is rolled back.

        Parameters
        ----------
        undo : callable
            Takes back one change; it may run after later changes were made by
            others, so it should check it still has something to undo.
        description : str, optional
            What it undoes, for messages (``"operator 'gelu2'"``).
        """
        if not callable(undo):
            message = (
                f"UndoLog.track expected a callable taking no arguments, got "
                f"{type(undo).__name__} {undo!r}."
            )
            raise PluginError(message, plugin_id=self.plugin_id)
        self._actions.append((description or repr(undo), undo))

    def __call__(self, undo: Callable[[], object], description: str | None = None) -> None:
        """Same as :meth:`track`: a log can be used where an undo callback is expected."""
        self.track(undo, description)

    def descriptions(self) -> list[str]:
        """What the recorded actions undo, oldest first."""
        return [description for description, _ in self._actions]

    def replay(self) -> list[tuple[str, BaseException]]:
        """Run every action, newest first, and empty the log.

        An action that raises does not stop the others.

        Returns
        -------
        list of (str, Exception)
            The description and error of each action that raised.
        """
        failures: list[tuple[str, BaseException]] = []
        while self._actions:
            description, undo = self._actions.pop()
            try:
                undo()
            except Exception as exc:
                failures.append((description, exc))
        return failures

    def __len__(self) -> int:
        return len(self._actions)

    def __repr__(self) -> str:
        return f"<UndoLog of plugin {self.plugin_id!r}: {len(self)} actions>"


@contextmanager
def _loading_scope(log: UndoLog | None) -> Iterator[UndoLog | None]:
    """Make ``log`` the active undo log (None: none) for the current thread/task."""
    token = _ACTIVE_UNDO_LOG.set(log)
    try:
        yield log
    finally:
        _ACTIVE_UNDO_LOG.reset(token)


def _warn_undo_failures(
    plugin_id: str, when: str, failures: list[tuple[str, BaseException]]
) -> None:
    """Warn once about undo actions that raised, so the failure is not silent."""
    if not failures:
        return
    details = "; ".join(f"{what}: {type(err).__name__}: {err}" for what, err in failures)
    message = (
        f"plugin {plugin_id!r}: {len(failures)} undo action(s) raised {when} and may have "
        f"left something behind ({details})."
    )
    warnings.warn(message, PluginWarning, stacklevel=4)


class ServiceNotFoundError(PluginError, KeyError):
    """No service is registered under the name asked for.

    Attributes
    ----------
    service : str
        The name looked up.
    available : tuple of str
        The names that are registered.
    """

    def __init__(self, message: str, service: str, available: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.service = service
        self.available = available

    def __str__(self) -> str:
        # KeyError would print the message as a quoted repr.
        return str(self.args[0]) if self.args else ""


class PluginContext:
    """Configuration, named services and the event bus, shared by all plugins.

    Parameters
    ----------
    config : mapping, optional
        Initial configuration values.
    events : EventBus, optional
        The bus plugins publish and subscribe on; a new one when omitted.

    Attributes
    ----------
    events : EventBus
        The shared event bus.
    registry : PluginRegistry or None
        The registry that owns this context, when there is one.

    Examples
    --------
    >>> ctx = PluginContext({"precision": "fp32"})
    >>> ctx.get_config("precision")
    'fp32'
    >>> ctx.register_service("greeter", lambda name: f"hello {name}")  # doctest: +ELLIPSIS
    <function <lambda> at ...>
    >>> ctx.get_service("greeter")("world")
    'hello world'
    """

    def __init__(
        self, config: Mapping[str, Any] | None = None, *, events: EventBus | None = None
    ) -> None:
        self.events: EventBus = events if events is not None else EventBus()
        self.registry: PluginRegistry | None = None
        self._config: dict[str, Any] = dict(config or {})
        # name -> (service, owning plugin id or None)
        self._services: dict[str, tuple[Any, str | None]] = {}

    # -- loading scope -------------------------------------------------------------

    @property
    def loading_plugin(self) -> str | None:
        """Id of the plugin whose ``on_load`` is running now, or None."""
        log = _ACTIVE_UNDO_LOG.get()
        return log.plugin_id if log is not None else None

    def track(self, undo: Callable[[], object], description: str | None = None) -> None:
        """Record an undo action for the plugin being loaded.

        Use it from ``on_load`` for anything registered outside the context and the
        bus (a cache, a global hook): it runs if the load fails, and when the plugin
        unloads, after ``on_unload``.

        Raises
        ------
        PluginError
            When no plugin is loading.
        """
        log = _ACTIVE_UNDO_LOG.get()
        if log is None:
            message = (
                "PluginContext.track() records an undo action for the plugin being "
                "loaded, but no plugin is loading now. Call it from a plugin's on_load(ctx); "
                "outside a load, undo the change yourself."
            )
            raise PluginError(message)
        log.track(undo, description)

    def _record(self, undo: Callable[[], object], description: str) -> None:
        log = _ACTIVE_UNDO_LOG.get()
        if log is not None:
            log.track(undo, description)

    # -- configuration -------------------------------------------------------------

    def get_config(self, key: str, default: Any = None) -> Any:
        """The configuration value for ``key``, or ``default`` when it is not set."""
        return self._config.get(key, default)

    def set_config(self, key: str, value: Any) -> None:
        """Set configuration ``key`` to ``value``.

        Set while a plugin loads, the previous value (or its absence) comes back if
        the load fails or the plugin unloads, unless someone changed it since.
        """
        if not isinstance(key, str) or not key:
            message = f"config keys are non-empty strings such as 'telemetry.enabled', got {key!r}."
            raise PluginError(message, plugin_id=self.loading_plugin)
        previous = self._config.get(key, _MISSING)
        self._config[key] = value

        def restore() -> None:
            if self._config.get(key, _MISSING) is not value:
                return  # changed by someone else since: theirs wins
            if previous is _MISSING:
                del self._config[key]
            else:
                self._config[key] = previous

        self._record(restore, f"config {key!r}")

    def unset_config(self, key: str) -> None:
        """Remove configuration ``key``; nothing happens when it is not set."""
        previous = self._config.pop(key, _MISSING)
        if previous is _MISSING:
            return

        def restore() -> None:
            if key not in self._config:
                self._config[key] = previous

        self._record(restore, f"config {key!r}")

    def config(self) -> dict[str, Any]:
        """A copy of the whole configuration."""
        return dict(self._config)

    # -- services ------------------------------------------------------------------

    def register_service(self, name: str, service: Any, *, replace: bool = False) -> Any:
        """Make ``service`` available to every plugin as ``name``.

        Parameters
        ----------
        name : str
            The name others look it up by.
        service : any
            The object offered.
        replace : bool, default False
            Replace a service already registered under ``name`` instead of refusing.

        Returns
        -------
        any
            ``service``, so the call can be used inline.

        Raises
        ------
        PluginError
            When ``name`` is taken and ``replace`` is False; the message names the owner.
        """
        owner = self.loading_plugin
        if not isinstance(name, str) or not name:
            message = f"service names are non-empty strings such as 'tokenizer', got {name!r}."
            raise PluginError(message, plugin_id=owner)
        previous = self._services.get(name)
        if previous is not None and not replace:
            message = (
                f"service {name!r} is already registered by {_owner_text(previous[1])}. "
                f"Use another name, unregister it first with ctx.unregister_service({name!r}), "
                f"or pass replace=True to replace it."
            )
            raise PluginError(message, plugin_id=owner)
        entry = (service, owner)
        self._services[name] = entry

        def restore() -> None:
            if self._services.get(name) is not entry:
                return  # replaced or removed by someone else since
            if previous is None:
                del self._services[name]
            else:
                self._services[name] = previous

        self._record(restore, f"service {name!r}")
        return service

    def get_service(self, name: str) -> Any:
        """The service registered as ``name``.

        Raises
        ------
        ServiceNotFoundError
            When there is none; the message lists the available services.
        """
        entry = self._services.get(name)
        if entry is None:
            raise self._not_found(name)
        return entry[0]

    def unregister_service(self, name: str) -> Any:
        """Remove the service ``name`` and return it.

        Raises
        ------
        ServiceNotFoundError
            When there is none.
        """
        entry = self._services.pop(name, None)
        if entry is None:
            raise self._not_found(name)

        def restore() -> None:
            if name not in self._services:
                self._services[name] = entry

        self._record(restore, f"service {name!r}")
        return entry[0]

    def has_service(self, name: str) -> bool:
        """Whether a service is registered as ``name``."""
        return name in self._services

    def service_owner(self, name: str) -> str | None:
        """Id of the plugin that registered service ``name`` (None: not a plugin)."""
        entry = self._services.get(name)
        if entry is None:
            raise self._not_found(name)
        return entry[1]

    def services(self) -> dict[str, Any]:
        """A copy of the registered services, name to object, in registration order."""
        return {name: entry[0] for name, entry in self._services.items()}

    def _not_found(self, name: str) -> ServiceNotFoundError:
        available = tuple(self._services)
        listing = ", ".join(repr(n) for n in available) if available else "none"
        message = (
            f"no service is registered as {name!r}; available services: {listing}. "
            f"Check the name, or load the plugin that provides it first."
        )
        return ServiceNotFoundError(message, service=name, available=available)

    def __repr__(self) -> str:
        return f"<PluginContext: {len(self._config)} config keys, {len(self._services)} services>"


def _owner_text(owner: str | None) -> str:
    return f"plugin {owner!r}" if owner is not None else "code outside any plugin"
