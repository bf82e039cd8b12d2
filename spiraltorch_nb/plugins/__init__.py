"""Plugins: metadata, a dependency-aware registry, an event bus, a shared context.

A plugin subclasses :class:`Plugin`, declares a :class:`PluginMetadata` (id,
PEP 440 version, capabilities, dependencies) and overrides the hooks it needs.
A :class:`PluginRegistry` loads plugins in dependency order, rolls back a failed
``on_load`` and refuses to unload a plugin that others need. See
``docs/plugins.md`` for the guide.

Examples
--------
>>> from spiraltorch_nb.plugins import Plugin, PluginMetadata, PluginRegistry
>>> class Hello(Plugin):
...     metadata = PluginMetadata("hello", "1.0")
...     def on_load(self, ctx):
...         ctx.register_service("greet", lambda name: f"hello, {name}")
>>> registry = PluginRegistry()
>>> registry.register(Hello())
<Hello 'hello' 1.0>
>>> registry.load("hello")
['hello']
>>> registry.context.get_service("greet")("notebook")
'hello, notebook'
"""

from spiraltorch_nb.plugins.context import (
    PluginContext,
    ServiceNotFoundError,
    UndoLog,
    current_loading_context,
)
from spiraltorch_nb.plugins.events import Event, EventBus, PluginWarning, Subscription
from spiraltorch_nb.plugins.loader import (
    ENTRY_POINT_GROUP,
    EntryPointReport,
    discover_entry_points,
    load_plugin,
)
from spiraltorch_nb.plugins.metadata import KNOWN_CAPABILITIES, Plugin, PluginMetadata
from spiraltorch_nb.plugins.registry import PluginRegistry, global_registry

__all__ = [
    "ENTRY_POINT_GROUP",
    "KNOWN_CAPABILITIES",
    "EntryPointReport",
    "Event",
    "EventBus",
    "Plugin",
    "PluginContext",
    "PluginMetadata",
    "PluginRegistry",
    "PluginWarning",
    "ServiceNotFoundError",
    "Subscription",
    "UndoLog",
    "current_loading_context",
    "discover_entry_points",
    "global_registry",
    "load_plugin",
]
