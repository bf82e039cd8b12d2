"""PluginContext configuration and services, UndoLog and the loading scope."""

from __future__ import annotations

import pytest

from spiraltorch_nb.errors import PluginError, SpiralTorchError
from spiraltorch_nb.plugins import (
    EventBus,
    PluginContext,
    PluginRegistry,
    ServiceNotFoundError,
    UndoLog,
    current_loading_context,
)


def test_config_get_set_default_unset():
    ctx = PluginContext({"a": 1})
    assert ctx.get_config("a") == 1
    assert ctx.get_config("missing") is None
    assert ctx.get_config("missing", "fallback") == "fallback"
    ctx.set_config("b", [1, 2])
    snapshot = ctx.config()
    snapshot["b"].append(3)  # the copy is shallow, the mapping is not shared
    snapshot["c"] = 0
    assert "c" not in ctx.config()
    ctx.unset_config("a")
    ctx.unset_config("never-set")
    assert ctx.config() == {"b": [1, 2, 3]}


@pytest.mark.parametrize("key", ["", None, 1])
def test_config_key_must_be_string(key):
    with pytest.raises(PluginError, match="config keys"):
        PluginContext().set_config(key, 1)  # type: ignore[arg-type]


def test_context_owns_or_shares_a_bus():
    assert isinstance(PluginContext().events, EventBus)
    bus = EventBus()
    assert PluginContext(events=bus).events is bus


def test_services_register_get_unregister():
    ctx = PluginContext()
    tokenizer = object()
    assert ctx.register_service("tokenizer", tokenizer) is tokenizer
    assert ctx.get_service("tokenizer") is tokenizer
    assert ctx.has_service("tokenizer")
    assert ctx.service_owner("tokenizer") is None
    assert ctx.services() == {"tokenizer": tokenizer}
    assert ctx.unregister_service("tokenizer") is tokenizer
    assert not ctx.has_service("tokenizer")
    assert ctx.services() == {}


def test_duplicate_service_names_service_and_owner():
    ctx = PluginContext()
    ctx.register_service("tok", "first")
    with pytest.raises(PluginError) as info:
        ctx.register_service("tok", "second")
    message = str(info.value)
    assert "'tok'" in message and "outside any plugin" in message and "replace=True" in message
    assert ctx.get_service("tok") == "first"
    ctx.register_service("tok", "second", replace=True)
    assert ctx.get_service("tok") == "second"


def test_duplicate_service_names_owning_plugin(make_plugin):
    registry = PluginRegistry()
    registry.register(make_plugin("provider", on_load=lambda ctx: ctx.register_service("tok", 1)))
    registry.load("provider")
    assert registry.context.service_owner("tok") == "provider"
    with pytest.raises(PluginError, match="already registered by plugin 'provider'"):
        registry.context.register_service("tok", 2)


def test_service_not_found_is_plugin_and_key_error():
    ctx = PluginContext()
    ctx.register_service("alpha", 1)
    ctx.register_service("beta", 2)
    with pytest.raises(ServiceNotFoundError) as info:
        ctx.get_service("gamma")
    error = info.value
    assert isinstance(error, PluginError) and isinstance(error, KeyError)
    assert isinstance(error, SpiralTorchError)
    assert error.service == "gamma" and error.available == ("alpha", "beta")
    assert str(error).startswith("no service is registered as 'gamma'")
    assert "'alpha', 'beta'" in str(error)
    with pytest.raises(KeyError):
        ctx.unregister_service("gamma")
    with pytest.raises(ServiceNotFoundError, match="available services: none"):
        PluginContext().service_owner("x")


@pytest.mark.parametrize("name", ["", None])
def test_service_name_must_be_string(name):
    with pytest.raises(PluginError, match="service names"):
        PluginContext().register_service(name, 1)  # type: ignore[arg-type]


def test_track_outside_a_load_is_refused():
    ctx = PluginContext()
    assert ctx.loading_plugin is None
    assert current_loading_context() is None
    with pytest.raises(PluginError, match="no plugin is loading"):
        ctx.track(lambda: None)


def test_changes_outside_a_load_record_nothing():
    ctx = PluginContext()
    ctx.set_config("a", 1)
    ctx.register_service("s", 1)
    ctx.events.subscribe("x", lambda e: None)
    assert current_loading_context() is None
    assert ctx.events.subscriptions()[0].owner is None


def test_loading_scope_is_visible_inside_on_load_only(make_plugin):
    seen = {}

    def on_load(ctx):
        log = current_loading_context()
        seen["log"] = log
        seen["plugin"] = ctx.loading_plugin
        seen["len_before"] = len(log)
        ctx.set_config("k", 1)
        seen["len_after"] = len(log)

    registry = PluginRegistry()
    registry.register(make_plugin("scoped", on_load=on_load))
    registry.load("scoped")
    assert isinstance(seen["log"], UndoLog)
    assert seen["log"].plugin_id == "scoped" and seen["plugin"] == "scoped"
    assert (seen["len_before"], seen["len_after"]) == (0, 1)
    assert current_loading_context() is None
    assert registry.context.loading_plugin is None


def test_undo_log_replays_newest_first_and_collects_failures():
    log = UndoLog("p")
    done: list[str] = []

    def broken():
        raise RuntimeError("cannot undo")

    log.track(lambda: done.append("one"), "one")
    log.track(broken, "broken")
    log.track(lambda: done.append("three"), "three")
    assert log.descriptions() == ["one", "broken", "three"]
    assert len(log) == 3
    failures = log.replay()
    assert done == ["three", "one"]
    assert [(what, type(err)) for what, err in failures] == [("broken", RuntimeError)]
    assert len(log) == 0
    assert log.replay() == []


def test_undo_log_track_requires_callable():
    with pytest.raises(PluginError, match="callable"):
        UndoLog("p").track("nope")  # type: ignore[arg-type]
