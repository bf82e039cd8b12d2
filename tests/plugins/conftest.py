"""Fixtures for the plugin tests: recording plugins and a fake operator registry."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from spiraltorch_nb.plugins import Plugin, PluginMetadata, current_loading_context

Hook = Callable[..., Any] | None


class RecordingPlugin(Plugin):
    """A plugin whose hooks append to a shared journal and then run optional callbacks."""

    def __init__(
        self,
        metadata: PluginMetadata,
        journal: list,
        on_load: Hook = None,
        on_unload: Hook = None,
        on_event: Hook = None,
    ) -> None:
        self.metadata = metadata
        self.journal = journal
        self.events: list = []
        self._on_load = on_load
        self._on_unload = on_unload
        self._on_event = on_event

    def on_load(self, ctx):
        self.journal.append(("load", self.metadata.id))
        if self._on_load is not None:
            self._on_load(ctx)

    def on_unload(self, ctx):
        self.journal.append(("unload", self.metadata.id))
        if self._on_unload is not None:
            self._on_unload(ctx)

    def on_event(self, event, ctx):
        self.events.append(event)
        if self._on_event is not None:
            self._on_event(event, ctx)


@pytest.fixture
def journal() -> list:
    return []


@pytest.fixture
def make_plugin(journal):
    """Build a RecordingPlugin: make_plugin("a", "1.0", deps={"b": ">=1"}, on_load=...)."""

    def make(
        plugin_id: str,
        version: str = "1.0",
        *,
        deps: dict | None = None,
        caps: tuple = (),
        on_load: Hook = None,
        on_unload: Hook = None,
        on_event: Hook = None,
    ) -> RecordingPlugin:
        metadata = PluginMetadata(plugin_id, version, dependencies=deps or {}, capabilities=caps)
        return RecordingPlugin(metadata, journal, on_load, on_unload, on_event)

    return make


class FakeOperatorRegistry:
    """Stands in for spiraltorch_nb.ops.registry: records undo actions like the real one must."""

    def __init__(self) -> None:
        self.ops: dict[str, Any] = {}

    def register(self, name: str, fn: Any, replace: bool = False) -> None:
        if name in self.ops and not replace:
            raise KeyError(f"operator {name!r} exists")
        previous = self.ops.get(name)
        self.ops[name] = fn
        log = current_loading_context()
        if log is not None:

            def undo() -> None:
                if previous is None:
                    self.ops.pop(name, None)
                else:
                    self.ops[name] = previous

            log.track(undo, f"operator {name!r}")

    def unregister(self, name: str) -> None:
        del self.ops[name]

    def __contains__(self, name: str) -> bool:
        return name in self.ops


@pytest.fixture
def op_registry() -> FakeOperatorRegistry:
    return FakeOperatorRegistry()
