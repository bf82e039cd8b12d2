"""Plugins and the real operator registry: operators registered in on_load are undone."""

from __future__ import annotations

import uuid

import numpy as np
import pytest

from spiraltorch_nb.errors import PluginError
from spiraltorch_nb.plugins import Plugin, PluginMetadata, PluginRegistry, UndoLog

ops_registry = pytest.importorskip("spiraltorch_nb.ops.registry")


def op_name() -> str:
    return f"plugin_test_op_{uuid.uuid4().hex[:8]}"


def build_op(name: str, factor: float):
    return (
        ops_registry.OperatorBuilder(name, 1, 1)
        .with_backend("cpu", lambda x: x * factor)
        .build(register=False)
    )


class OperatorPlugin(Plugin):
    """Registers one operator in on_load and can be told to fail afterwards."""

    def __init__(self, name: str, fail: bool = False, replace: bool = False) -> None:
        self.metadata = PluginMetadata(f"ops-{name}", "1.0", capabilities=["operators"])
        self.name = name
        self.fail = fail
        self.replace = replace
        self.present_in_on_unload: bool | None = None

    def on_load(self, ctx):
        ops_registry.global_operator_registry().register(
            build_op(self.name, 3.0), replace=self.replace
        )
        if self.fail:
            raise RuntimeError("after registering the operator")

    def on_unload(self, ctx):
        self.present_in_on_unload = self.name in ops_registry.global_operator_registry()


def test_undo_log_is_callable_like_track():
    log = UndoLog("p")
    done = []
    log(lambda: done.append("called form"))
    log.replay()
    assert done == ["called form"]


def test_failed_load_removes_operator():
    registry = ops_registry.global_operator_registry()
    name = op_name()
    plugin_registry = PluginRegistry()
    plugin_registry.register(OperatorPlugin(name, fail=True))
    with pytest.raises(PluginError, match="after registering the operator"):
        plugin_registry.load(f"ops-{name}")
    assert name not in registry


def test_failed_replacing_load_restores_previous_operator():
    registry = ops_registry.global_operator_registry()
    name = op_name()
    original = registry.register(build_op(name, 2.0))
    try:
        plugin_registry = PluginRegistry()
        plugin_registry.register(OperatorPlugin(name, fail=True, replace=True))
        with pytest.raises(PluginError):
            plugin_registry.load(f"ops-{name}")
        assert registry.get(name) is original
    finally:
        registry.unregister(name)


def test_unload_removes_operator_after_on_unload():
    import spiraltorch_nb as st

    registry = ops_registry.global_operator_registry()
    name = op_name()
    plugin = OperatorPlugin(name)
    plugin_registry = PluginRegistry()
    plugin_registry.register(plugin)
    plugin_registry.load(plugin.metadata.id)
    assert name in registry
    result = ops_registry.dispatch(name, st.tensor([1.0, 2.0]))
    np.testing.assert_allclose(result.numpy(), [3.0, 6.0])
    plugin_registry.unload(plugin.metadata.id)
    assert plugin.present_in_on_unload is True
    assert name not in registry


def test_failed_load_puts_back_an_operator_it_unregistered():
    registry = ops_registry.global_operator_registry()
    name = op_name()
    original = registry.register(build_op(name, 2.0))

    class Remover(Plugin):
        metadata = PluginMetadata(f"remover-{name}", "1.0", capabilities=["operators"])

        def on_load(self, ctx):
            registry.unregister(name)
            raise RuntimeError("after unregistering the operator")

    try:
        plugin_registry = PluginRegistry()
        plugin_registry.register(Remover())
        with pytest.raises(PluginError, match="after unregistering the operator"):
            plugin_registry.load(f"remover-{name}")
        assert registry.get(name) is original
    finally:
        if name in registry:
            registry.unregister(name)


def test_unload_puts_back_an_operator_removed_in_on_load_unless_the_name_was_reused():
    registry = ops_registry.global_operator_registry()
    name = op_name()
    original = registry.register(build_op(name, 2.0))

    class Remover(Plugin):
        metadata = PluginMetadata(f"remover-{name}", "1.0", capabilities=["operators"])

        def on_load(self, ctx):
            registry.unregister(name)

    try:
        plugin_registry = PluginRegistry()
        plugin_registry.register(Remover())
        plugin_registry.load(f"remover-{name}")
        assert name not in registry
        plugin_registry.unload(f"remover-{name}")
        assert registry.get(name) is original
        # taken again by someone else meanwhile: the undo leaves theirs in place
        plugin_registry.load(f"remover-{name}")
        newer = registry.register(build_op(name, 5.0))
        plugin_registry.unload(f"remover-{name}")
        assert registry.get(name) is newer
    finally:
        if name in registry:
            registry.unregister(name)
