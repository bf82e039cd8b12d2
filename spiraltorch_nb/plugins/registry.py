"""The plugin registry: registration, dependency-ordered loading, rollback, unloading.

A plugin is *registered* (known, checked) and then *loaded* (its ``on_load`` ran).
Loading resolves dependencies first, checking that each is registered, that its
version satisfies the specifier, and that there is no cycle, before any hook
runs. A failed ``on_load`` is rolled back through the plugin's undo log (see
:mod:`spiraltorch_nb.plugins.context`); unloading runs ``on_unload`` and then
replays the same log.

Events published on the registry's bus:

==========================  ==============================================
``plugin.registered``       ``{"id", "version"}``
``plugin.loaded``           ``{"id", "version"}``
``plugin.load_failed``      ``{"id", "version", "error"}``
``plugin.unloaded``         ``{"id", "version"}``
``plugin.unregistered``     ``{"id", "version"}``
==========================  ==============================================
"""

from __future__ import annotations

import builtins
import fnmatch
import inspect
import threading
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from spiraltorch_nb.errors import PluginError
from spiraltorch_nb.plugins.context import (
    PluginContext,
    UndoLog,
    _loading_scope,
    _warn_undo_failures,
    current_loading_context,
)
from spiraltorch_nb.plugins.events import Event, EventBus, PluginWarning, Subscription
from spiraltorch_nb.plugins.loader import (
    ENTRY_POINT_GROUP,
    EntryPointFailure,
    EntryPointReport,
    PluginSpec,
    check_metadata,
    discover_entry_points,
    load_plugin,
)
from spiraltorch_nb.plugins.metadata import Plugin, PluginMetadata

__all__ = ["PluginRegistry", "global_registry"]

# hook name -> (the arguments it is called with, how its signature should read)
_HOOKS: dict[str, tuple[int, str]] = {
    "on_load": (1, "on_load(self, ctx)"),
    "on_unload": (1, "on_unload(self, ctx)"),
    "on_event": (2, "on_event(self, event, ctx)"),
}


@dataclass
class _Record:
    """The registry's state for one plugin."""

    plugin: Plugin
    metadata: PluginMetadata
    loaded: bool = False
    undo_log: UndoLog | None = None
    subscription: Subscription | None = None


class _EventForwarder:
    """Bus handler that hands every event to one loaded plugin's ``on_event``."""

    __slots__ = ("_plugin", "_context", "_plugin_id")

    def __init__(self, plugin: Plugin, context: PluginContext, plugin_id: str) -> None:
        self._plugin = plugin
        self._context = context
        self._plugin_id = plugin_id

    def __call__(self, event: Event) -> None:
        self._plugin.on_event(event, self._context)

    def __repr__(self) -> str:
        return f"<on_event of plugin {self._plugin_id!r}>"


def _check_hooks(plugin: Plugin, plugin_id: str) -> None:
    """Check every hook can be called the way the registry will call it."""
    for hook, (n_args, expected) in _HOOKS.items():
        method = getattr(plugin, hook, None)
        if not callable(method):
            message = (
                f"plugin {plugin_id!r}: {hook} must be a method {expected}, got "
                f"{type(method).__name__} {method!r}."
            )
            raise PluginError(message, plugin_id=plugin_id)
        try:
            signature = inspect.signature(method)
        except (TypeError, ValueError):
            continue  # builtins and some C callables have no signature to check
        try:
            signature.bind(*([None] * n_args))
        except TypeError:
            message = (
                f"plugin {plugin_id!r}: hook {hook}{signature} cannot be called as "
                f"{expected.replace('self, ', '')}. Define it as `def {expected}:`."
            )
            raise PluginError(message, plugin_id=plugin_id) from None


class PluginRegistry:
    """Plugins by id: register, load in dependency order, unload, look up.

    Parameters
    ----------
    context : PluginContext, optional
        The context handed to every hook; a new one (with a new bus) when omitted.

    Attributes
    ----------
    context : PluginContext
        Configuration and services shared by the plugins.
    events : EventBus
        The context's bus; every loaded plugin's ``on_event`` is subscribed to ``"*"``.

    Examples
    --------
    >>> from spiraltorch_nb.plugins import Plugin, PluginMetadata
    >>> class Core(Plugin):
    ...     metadata = PluginMetadata("core", "1.2")
    >>> class Extra(Plugin):
    ...     metadata = PluginMetadata("extra", "0.1", dependencies={"core": ">=1.0"})
    ...     def on_load(self, ctx):
    ...         ctx.register_service("extra.answer", 42)
    >>> registry = PluginRegistry()
    >>> registry.register(Extra())
    <Extra 'extra' 0.1>
    >>> registry.register(Core())
    <Core 'core' 1.2>
    >>> registry.initialize_all()
    ['core', 'extra']
    >>> registry.context.get_service("extra.answer")
    42
    >>> registry.unload("core", cascade=True)
    ['extra', 'core']
    >>> registry.context.services()
    {}
    """

    def __init__(self, context: PluginContext | None = None) -> None:
        self.context = context if context is not None else PluginContext()
        self.context.registry = self
        self._records: dict[str, _Record] = {}
        self._load_order: builtins.list[str] = []
        self._lock = threading.RLock()

    @property
    def events(self) -> EventBus:
        """The event bus shared with the plugins (``self.context.events``)."""
        return self.context.events

    # -- registration --------------------------------------------------------------

    def register(self, plugin: PluginSpec, *, replace: bool = False) -> Plugin:
        """Register a plugin (without loading it) and return the instance.

        Parameters
        ----------
        plugin : Plugin, type[Plugin] or str
            Anything :func:`~spiraltorch_nb.plugins.load_plugin` accepts.
        replace : bool, default False
            Replace a plugin already registered under the same id; the old one is
            unloaded first if loaded (refused while other loaded plugins need it).
            The new one is registered, not loaded.

        Raises
        ------
        PluginError
            If the plugin is malformed (metadata, hook signatures) or its id is
            taken; nothing changes in that case.

        Notes
        -----
        Called from another plugin's ``on_load``, the registration is taken back
        (the plugin unloaded if it was loaded meanwhile, a replaced one put back)
        when that load fails or that plugin unloads.
        """
        instance = load_plugin(plugin)
        metadata = check_metadata(instance)
        plugin_id = metadata.id
        _check_hooks(instance, plugin_id)
        with self._lock:
            existing = self._records.get(plugin_id)
            if existing is not None and not replace:
                raise self._duplicate_error(existing, instance, plugin_id)
            was_loaded = existing is not None and existing.loaded
            if was_loaded:
                # Refused, before anything changes, while loaded plugins depend on it.
                self.unload(plugin_id)
            # Assigning in place keeps a replaced plugin's position in registration order.
            record = self._records[plugin_id] = _Record(instance, metadata)
        if existing is not None:
            self._publish("plugin.unregistered", existing.metadata)
        self._publish("plugin.registered", metadata)
        log = current_loading_context()
        if log is not None:
            previous = None if existing is None else _Record(existing.plugin, existing.metadata)
            log.track(
                lambda: self._take_back(plugin_id, record, previous, was_loaded),
                f"registration of plugin {plugin_id!r}",
            )
        return instance

    def _take_back(
        self, plugin_id: str, record: _Record, previous: _Record | None, was_loaded: bool
    ) -> None:
        """Undo one registration, unless the id was re-registered or removed since."""
        # Unloading runs hooks: nothing they register may land in a log being replayed.
        with self._lock, _loading_scope(None):
            if self._records.get(plugin_id) is not record:
                return
            if previous is None:
                self._unregister(plugin_id, cascade=True)
                return
            if record.loaded:
                self.unload(plugin_id, cascade=True)
            self._records[plugin_id] = previous  # in place: the old position comes back
            self._publish("plugin.unregistered", record.metadata)
            self._publish("plugin.registered", previous.metadata)
            if was_loaded:
                self.load(plugin_id)

    def _duplicate_error(self, existing: _Record, new: Plugin, plugin_id: str) -> PluginError:
        state = "loaded" if existing.loaded else "registered"
        if existing.plugin is new:
            what = f"this same instance is already {state} (was the cell run twice?)"
        else:
            what = (
                f"another plugin with this id is already {state} "
                f"({existing.plugin!r}, version {existing.metadata.version})"
            )
        message = (
            f"cannot register plugin {plugin_id!r}: {what}. Plugin ids must be unique. To "
            f"swap it, call registry.register(plugin, replace=True); to remove it, call "
            f"registry.unregister({plugin_id!r}) (which first calls "
            f"registry.unload({plugin_id!r}) when it is loaded)."
        )
        return PluginError(message, plugin_id=plugin_id)

    def unregister(self, plugin_id: str, cascade: bool = False) -> Plugin:
        """Unload ``plugin_id`` if loaded, forget it, and return it.

        ``cascade`` is passed to :meth:`unload`. Called from another plugin's
        ``on_load``, the plugin is registered again at its place (and loaded again if
        it was loaded) when that load fails or that plugin unloads.
        """
        with self._lock:
            record = self._record(plugin_id)
            position = builtins.list(self._records).index(plugin_id)
            was_loaded = record.loaded
            self._unregister(plugin_id, cascade=cascade)
        log = current_loading_context()
        if log is not None:
            log.track(
                lambda: self._put_back(plugin_id, record, position, was_loaded),
                f"removal of plugin {plugin_id!r}",
            )
        return record.plugin

    def _put_back(self, plugin_id: str, record: _Record, position: int, was_loaded: bool) -> None:
        """Undo one removal, unless the id was registered again since."""
        with self._lock, _loading_scope(None):
            if plugin_id in self._records:
                return
            items = builtins.list(self._records.items())
            items.insert(position, (plugin_id, _Record(record.plugin, record.metadata)))
            self._records = dict(items)
            self._publish("plugin.registered", record.metadata)
            if was_loaded:
                self.load(plugin_id)

    def _unregister(self, plugin_id: str, cascade: bool) -> None:
        record = self._records[plugin_id]
        if record.loaded:
            self.unload(plugin_id, cascade=cascade)
        del self._records[plugin_id]
        self._publish("plugin.unregistered", record.metadata)

    # -- lookup --------------------------------------------------------------------

    def _record(self, plugin_id: str) -> _Record:
        record = self._records.get(plugin_id)
        if record is None:
            known = ", ".join(repr(i) for i in self._records) or "none"
            message = (
                f"no plugin {plugin_id!r} is registered; registered plugins: {known}. "
                f"Register it first with registry.register(...)."
            )
            raise PluginError(message, plugin_id=plugin_id)
        return record

    def get(self, plugin_id: str) -> Plugin:
        """The plugin registered as ``plugin_id``; PluginError when there is none."""
        return self._record(plugin_id).plugin

    def list(self, *, loaded: bool | None = None) -> builtins.list[PluginMetadata]:
        """Metadata of the registered plugins in registration order.

        ``loaded=True`` / ``False`` keeps only the loaded / not-loaded ones.
        """
        return [r.metadata for r in self._records.values() if loaded is None or r.loaded == loaded]

    def is_loaded(self, plugin_id: str) -> bool:
        """Whether ``plugin_id`` is registered and loaded."""
        record = self._records.get(plugin_id)
        return record is not None and record.loaded

    def find_by_capability(
        self, capability: str, *, loaded: bool | None = None
    ) -> builtins.list[Plugin]:
        """Plugins declaring ``capability`` (fnmatch wildcards allowed: ``"backend:*"``).

        Parameters
        ----------
        capability : str
            A capability such as ``"operators"``, or a pattern.
        loaded : bool, optional
            Keep only loaded (True) or not-loaded (False) plugins.
        """
        return [
            r.plugin
            for r in self._records.values()
            if (loaded is None or r.loaded == loaded)
            and any(fnmatch.fnmatchcase(c, capability) for c in r.metadata.capabilities)
        ]

    def dependents(self, plugin_id: str, *, loaded_only: bool = True) -> builtins.list[str]:
        """Ids of the plugins that depend directly on ``plugin_id``."""
        return [
            pid
            for pid, r in self._records.items()
            if plugin_id in r.metadata.dependencies and (r.loaded or not loaded_only)
        ]

    def __contains__(self, plugin_id: object) -> bool:
        return plugin_id in self._records

    def __len__(self) -> int:
        return len(self._records)

    def __repr__(self) -> str:
        n_loaded = sum(r.loaded for r in self._records.values())
        return f"<PluginRegistry: {len(self._records)} registered, {n_loaded} loaded>"

    # -- dependency resolution -----------------------------------------------------

    def _resolve(self, targets: Iterable[str]) -> builtins.list[str]:
        """Ids to load, dependencies first; every problem is reported at once.

        Depth-first over dependencies in declaration order, with an explicit stack
        so that a long chain cannot exhaust Python's recursion limit.
        """
        order: builtins.list[str] = []
        problems: dict[str, str] = {}  # message -> first plugin id it concerns
        cycles_seen: set[frozenset[str]] = set()
        done: set[str] = set()
        for target in targets:
            if target in done:
                continue
            path: builtins.list[str] = [target]
            on_path = {target}
            iterators = [iter(self._records[target].metadata.dependencies.items())]
            while iterators:
                current = path[-1]
                step = next(iterators[-1], None)
                if step is None:
                    iterators.pop()
                    path.pop()
                    on_path.discard(current)
                    done.add(current)
                    if not self._records[current].loaded:
                        order.append(current)
                    continue
                dep_id, spec = step
                problem = self._dependency_problem(current, dep_id, spec)
                if problem is not None:
                    problems.setdefault(problem, current)
                    continue
                if dep_id in on_path:
                    cycle = path[path.index(dep_id) :] + [dep_id]
                    # Report each cycle once, from whichever member the walk met first.
                    if frozenset(cycle) not in cycles_seen:
                        cycles_seen.add(frozenset(cycle))
                        message = (
                            f"dependency cycle: {' -> '.join(cycle)}. Remove one of these "
                            f"dependencies."
                        )
                        problems[message] = current
                    continue
                if dep_id in done:
                    continue
                path.append(dep_id)
                on_path.add(dep_id)
                iterators.append(iter(self._records[dep_id].metadata.dependencies.items()))
        if problems:
            self._raise_problems(problems)
        return order

    def _dependency_problem(self, plugin_id: str, dep_id: str, spec: str) -> str | None:
        wanted = f"{dep_id}{spec}" if spec else f"{dep_id} (any version)"
        dep = self._records.get(dep_id)
        if dep is None:
            return (
                f"plugin {plugin_id!r} requires {wanted!r}, which is not registered. "
                f"Register the plugin {dep_id!r} first, or remove the dependency."
            )
        metadata = self._records[plugin_id].metadata
        if not metadata.accepts(dep_id, dep.metadata.parsed_version):
            return (
                f"plugin {plugin_id!r} requires {dep_id!r} {spec}, but version "
                f"{dep.metadata.version} of {dep_id!r} is registered. Install a matching "
                f"{dep_id!r}, or relax the specifier in {plugin_id!r}'s dependencies."
            )
        return None

    @staticmethod
    def _raise_problems(problems: dict[str, str]) -> None:
        messages = list(problems)
        first_id = next(iter(problems.values()))
        if len(messages) == 1:
            text = f"cannot load plugins: {messages[0]}"
        else:
            text = f"cannot load plugins, {len(messages)} problems:\n" + "\n".join(
                f"  - {m}" for m in messages
            )
        text += "\nNothing was loaded."
        raise PluginError(text, plugin_id=first_id)

    # -- loading -------------------------------------------------------------------

    def load(self, plugin_id: str) -> builtins.list[str]:
        """Load ``plugin_id``, loading its dependencies first.

        Returns
        -------
        list of str
            The ids loaded by this call, in order (empty if already loaded).

        Raises
        ------
        PluginError
            On a missing dependency, a version conflict or a cycle (before any hook
            runs), or when an ``on_load`` fails; that plugin's changes are then
            undone, and dependencies loaded before it stay loaded.
        """
        with self._lock:
            self._record(plugin_id)
            return self._load_in_order(self._resolve([plugin_id]), requested=plugin_id)

    def initialize_all(self) -> builtins.list[str]:
        """Load every registered plugin that is not loaded yet, dependencies first.

        The whole dependency graph is checked before any hook runs.

        Returns
        -------
        list of str
            The ids loaded, in load order.
        """
        with self._lock:
            pending = [pid for pid, r in self._records.items() if not r.loaded]
            return self._load_in_order(self._resolve(pending), requested=None)

    def _load_in_order(
        self, order: builtins.list[str], requested: str | None
    ) -> builtins.list[str]:
        loaded: builtins.list[str] = []
        for plugin_id in order:
            self._load_one(plugin_id, requested=requested, loaded_so_far=loaded)
            loaded.append(plugin_id)
        return loaded

    def _load_one(
        self, plugin_id: str, requested: str | None, loaded_so_far: builtins.list[str]
    ) -> None:
        record = self._records[plugin_id]
        log = UndoLog(plugin_id)
        try:
            with _loading_scope(log):
                record.plugin.on_load(self.context)
        except BaseException as exc:
            failures = log.replay()
            _warn_undo_failures(plugin_id, "while rolling back a failed on_load", failures)
            if not isinstance(exc, Exception):
                raise  # KeyboardInterrupt and friends: rolled back, not wrapped
            self._publish("plugin.load_failed", record.metadata, error=exc)
            raise self._load_error(record, exc, requested, loaded_so_far) from exc
        record.undo_log = log
        forwarder = _EventForwarder(record.plugin, self.context, plugin_id)
        # No undo log while subscribing: when one plugin loads another from its on_load,
        # the inner plugin's forwarder must not land in the outer plugin's log.
        with _loading_scope(None):
            record.subscription = self.events.subscribe("*", forwarder, owner=plugin_id)
        record.loaded = True
        self._load_order.append(plugin_id)
        self._publish("plugin.loaded", record.metadata)

    @staticmethod
    def _load_error(
        record: _Record, error: Exception, requested: str | None, loaded_so_far: builtins.list[str]
    ) -> PluginError:
        plugin_id = record.metadata.id
        message = (
            f"plugin {plugin_id!r} {record.metadata.version} failed in on_load: "
            f"{type(error).__name__}: {error}. What it registered during on_load was undone; "
            f"it stays registered, not loaded. Fix the error, then call "
            f"registry.load({plugin_id!r}) again."
        )
        if requested is not None and requested != plugin_id:
            message += f" ({requested!r} was not loaded: it depends on {plugin_id!r}.)"
        if loaded_so_far:
            message += f" Loaded before the failure: {', '.join(loaded_so_far)}."
        error_out = PluginError(message, plugin_id=plugin_id)
        error_out.hook = "on_load"  # type: ignore[attr-defined]
        return error_out

    # -- unloading -----------------------------------------------------------------

    def unload(self, plugin_id: str, cascade: bool = False) -> builtins.list[str]:
        """Unload ``plugin_id``: call its ``on_unload``, then replay its undo log.

        It stays registered and can be loaded again. An ``on_unload`` that raises is
        reported with a :class:`PluginWarning`; the unload still completes.

        Parameters
        ----------
        plugin_id : str
        cascade : bool, default False
            Also unload the loaded plugins that depend on it (directly or not),
            in reverse load order, first. Without it, such dependents make the
            call fail.

        Returns
        -------
        list of str
            The ids unloaded, in order (empty if it was not loaded).
        """
        with self._lock:
            record = self._record(plugin_id)
            if not record.loaded:
                return []
            dependents = self._loaded_dependents(plugin_id)
            if dependents and not cascade:
                names = ", ".join(repr(d) for d in dependents)
                message = (
                    f"cannot unload plugin {plugin_id!r}: loaded plugins depend on it: "
                    f"{names}. Unload them first, or call "
                    f"registry.unload({plugin_id!r}, cascade=True) to unload them too."
                )
                raise PluginError(message, plugin_id=plugin_id)
            doomed = set(dependents) | {plugin_id}
            order = [pid for pid in reversed(self._load_order) if pid in doomed]
            for pid in order:
                self._unload_one(pid)
            return order

    def _loaded_dependents(self, plugin_id: str) -> builtins.list[str]:
        """Loaded plugins needing ``plugin_id`` directly or transitively, load order."""
        needed = {plugin_id}
        for pid in self._load_order:  # dependents always load after what they need
            if needed.intersection(self._records[pid].metadata.dependencies):
                needed.add(pid)
        return [pid for pid in self._load_order if pid in needed and pid != plugin_id]

    def _unload_one(self, plugin_id: str) -> None:
        record = self._records[plugin_id]
        if record.subscription is not None:
            record.subscription.unsubscribe()
        try:
            record.plugin.on_unload(self.context)
        except Exception as exc:
            message = (
                f"plugin {plugin_id!r}: on_unload raised {type(exc).__name__}: {exc}. The "
                f"plugin was unloaded anyway and its undo log replayed."
            )
            warnings.warn(message, PluginWarning, stacklevel=4)
        if record.undo_log is not None:
            failures = record.undo_log.replay()
            _warn_undo_failures(plugin_id, "while unloading", failures)
        record.loaded = False
        record.undo_log = None
        record.subscription = None
        self._load_order.remove(plugin_id)
        self._publish("plugin.unloaded", record.metadata)

    # -- entry points --------------------------------------------------------------

    def load_entry_points(self, group: str = ENTRY_POINT_GROUP) -> EntryPointReport:
        """Register (not load) every plugin installed under entry-point ``group``.

        A plugin whose id is already registered with an instance of the same class
        (a re-run cell) is listed in ``report.skipped``; one clashing with a different
        plugin is listed in ``report.errors``.

        Returns
        -------
        EntryPointReport
            What was registered, skipped, and what failed (each naming its entry point).
        """
        found = discover_entry_points(group)
        report = EntryPointReport(group, errors=list(found.errors))
        for entry in found.loaded:
            existing = self._records.get(entry.plugin.metadata.id)
            if existing is not None and type(existing.plugin) is type(entry.plugin):
                report.skipped.append(entry)
                continue
            try:
                self.register(entry.plugin)
            except PluginError as exc:
                message = f"entry point {entry.name!r} ({entry.value}): {exc}"
                error = PluginError(message, plugin_id=exc.plugin_id)
                error.__cause__ = exc
                report.errors.append(
                    EntryPointFailure(entry.name, entry.value, entry.distribution, error)
                )
                continue
            report.loaded.append(entry)
        return report

    # -- events --------------------------------------------------------------------

    def _publish(self, topic: str, metadata: PluginMetadata, **extra: Any) -> None:
        if self.events.has_subscribers(topic):
            self.events.publish(topic, {"id": metadata.id, "version": metadata.version, **extra})


_GLOBAL_REGISTRY: PluginRegistry | None = None
_GLOBAL_LOCK = threading.Lock()


def global_registry() -> PluginRegistry:
    """The process-wide :class:`PluginRegistry`, created on first use.

    Examples
    --------
    >>> global_registry() is global_registry()
    True
    """
    global _GLOBAL_REGISTRY
    if _GLOBAL_REGISTRY is None:
        with _GLOBAL_LOCK:
            if _GLOBAL_REGISTRY is None:
                _GLOBAL_REGISTRY = PluginRegistry()
    return _GLOBAL_REGISTRY
