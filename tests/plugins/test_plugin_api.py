"""The public surface of spiraltorch_nb.plugins."""

from __future__ import annotations

import importlib

import spiraltorch_nb.plugins as plugins
from spiraltorch_nb.errors import PluginError

REQUIRED = {
    "Plugin",
    "PluginMetadata",
    "PluginRegistry",
    "EventBus",
    "Event",
    "Subscription",
    "PluginContext",
    "ServiceNotFoundError",
    "PluginWarning",
    "KNOWN_CAPABILITIES",
    "load_plugin",
    "discover_entry_points",
    "global_registry",
    "current_loading_context",
}


def test_all_lists_the_contract_and_every_name_exists():
    assert REQUIRED <= set(plugins.__all__)
    for name in plugins.__all__:
        assert hasattr(plugins, name), name


def test_exception_and_warning_classes():
    assert issubclass(plugins.PluginWarning, UserWarning)
    assert issubclass(plugins.ServiceNotFoundError, PluginError)
    assert issubclass(plugins.ServiceNotFoundError, KeyError)


def test_reachable_from_the_top_level_package():
    st = importlib.import_module("spiraltorch_nb")
    assert st.plugins.global_registry() is plugins.global_registry()
    assert st.plugins.PluginRegistry is plugins.PluginRegistry


def test_submodules_declare_all():
    for module in ("context", "events", "loader", "metadata", "registry"):
        mod = importlib.import_module(f"spiraltorch_nb.plugins.{module}")
        assert mod.__all__ and all(hasattr(mod, name) for name in mod.__all__)
