"""PluginRegistry: registration, dependency order, errors, unloading, rollback."""

from __future__ import annotations

import warnings

import pytest

from spiraltorch_nb.errors import PluginError
from spiraltorch_nb.plugins import (
    Plugin,
    PluginMetadata,
    PluginRegistry,
    PluginWarning,
    global_registry,
)

# -- helpers -------------------------------------------------------------------------


def loads(journal):
    return [pid for kind, pid in journal if kind == "load"]


def unloads(journal):
    return [pid for kind, pid in journal if kind == "unload"]


def diamond(make_plugin, registry):
    """a -> {b, c}; b -> d; c -> d. Registered top-down, so dependencies come later."""
    registry.register(make_plugin("a", deps={"b": ">=1", "c": ""}))
    registry.register(make_plugin("b", deps={"d": ">=1,<2"}))
    registry.register(make_plugin("c", deps={"d": ""}))
    registry.register(make_plugin("d", "1.5"))


def snapshot(registry, ops=None):
    """Everything a plugin can change through the registry's context and bus."""
    ctx = registry.context
    return {
        "subscriptions": [(id(s), s.pattern, s.owner) for s in registry.events.subscriptions()],
        "services": {
            name: (id(obj), ctx.service_owner(name)) for name, obj in ctx.services().items()
        },
        "config": {key: (id(value), value) for key, value in ctx.config().items()},
        "ops": dict(ops) if ops is not None else None,
    }


# -- dependency order ----------------------------------------------------------------


def test_diamond_loads_dependencies_first(make_plugin, journal):
    registry = PluginRegistry()
    diamond(make_plugin, registry)
    assert registry.initialize_all() == ["d", "b", "c", "a"]
    assert loads(journal) == ["d", "b", "c", "a"]
    for meta in registry.list():
        assert registry.is_loaded(meta.id)
        for dep in meta.dependencies:
            assert loads(journal).index(dep) < loads(journal).index(meta.id)
    assert registry.initialize_all() == []  # nothing left to load


def test_load_one_loads_only_its_dependencies(make_plugin, journal):
    registry = PluginRegistry()
    registry.register(make_plugin("unrelated"))
    diamond(make_plugin, registry)
    assert registry.load("b") == ["d", "b"]
    assert registry.load("a") == ["c", "a"]
    assert not registry.is_loaded("unrelated")
    assert registry.load("a") == []
    assert loads(journal) == ["d", "b", "c", "a"]


def test_load_unknown_plugin(make_plugin):
    registry = PluginRegistry()
    registry.register(make_plugin("known"))
    with pytest.raises(PluginError, match="no plugin 'ghost' is registered.*'known'"):
        registry.load("ghost")


def test_version_conflict_shows_specifier_and_found_version(make_plugin, journal):
    registry = PluginRegistry()
    registry.register(make_plugin("core", "1.5"))
    registry.register(make_plugin("app", deps={"core": ">=2.0,<3"}))
    with pytest.raises(PluginError) as info:
        registry.initialize_all()
    message = str(info.value)
    assert "'app'" in message and "'core'" in message
    assert ">=2.0,<3" in message
    assert "1.5" in message
    assert "Nothing was loaded" in message
    assert info.value.plugin_id == "app"
    assert journal == []  # checked before any hook ran, even core's
    assert registry.list(loaded=True) == []


def test_prerelease_in_range_satisfies(make_plugin):
    registry = PluginRegistry()
    registry.register(make_plugin("core", "2.1rc1"))
    registry.register(make_plugin("app", deps={"core": ">=2.0"}))
    assert registry.initialize_all() == ["core", "app"]


def test_missing_dependency_names_plugin_and_missing_id(make_plugin, journal):
    registry = PluginRegistry()
    registry.register(make_plugin("fine"))
    registry.register(make_plugin("app", deps={"zzz": ">=1"}))
    with pytest.raises(PluginError) as info:
        registry.initialize_all()
    message = str(info.value)
    assert "'app'" in message and "'zzz>=1'" in message and "not registered" in message
    assert journal == []
    assert not registry.is_loaded("fine")


@pytest.mark.parametrize(
    ("edges", "cycle"),
    [
        ({"a": ["b"], "b": ["a"]}, "a -> b -> a"),
        ({"a": ["b"], "b": ["c"], "c": ["a"]}, "a -> b -> c -> a"),
        ({"top": ["a"], "a": ["b"], "b": ["a"]}, "a -> b -> a"),
    ],
)
def test_cycle_is_shown(make_plugin, journal, edges, cycle):
    registry = PluginRegistry()
    for pid, deps in edges.items():
        registry.register(make_plugin(pid, deps={d: "" for d in deps}))
    with pytest.raises(PluginError) as info:
        registry.initialize_all()
    message = str(info.value)
    assert cycle in message
    assert message.count("dependency cycle") == 1
    assert journal == []


def test_all_problems_reported_together(make_plugin):
    registry = PluginRegistry()
    registry.register(make_plugin("old", "0.5"))
    registry.register(make_plugin("p", deps={"missing": ""}))
    registry.register(make_plugin("q", deps={"old": ">=1"}))
    with pytest.raises(PluginError) as info:
        registry.initialize_all()
    message = str(info.value)
    assert "2 problems" in message
    assert "'missing (any version)'" in message and ">=1" in message and "0.5" in message


def test_problems_of_unrequested_plugins_do_not_block_load(make_plugin):
    registry = PluginRegistry()
    registry.register(make_plugin("broken", deps={"missing": ""}))
    registry.register(make_plugin("ok"))
    assert registry.load("ok") == ["ok"]


# -- registration --------------------------------------------------------------------


def test_duplicate_id_names_the_id_and_changes_nothing(make_plugin):
    registry = PluginRegistry()
    first = registry.register(make_plugin("dup", "1.0"))
    with pytest.raises(PluginError) as info:
        registry.register(make_plugin("dup", "2.0"))
    assert "'dup'" in str(info.value) and "another plugin" in str(info.value)
    assert info.value.plugin_id == "dup"
    assert registry.get("dup") is first
    assert [m.version for m in registry.list()] == ["1.0"]


def test_reregistering_same_instance_suggests_fixes(make_plugin):
    registry = PluginRegistry()
    plugin = registry.register(make_plugin("cell"))
    registry.load("cell")
    with pytest.raises(PluginError) as info:
        registry.register(plugin)
    message = str(info.value)
    assert "same instance" in message
    assert "registry.unload('cell')" in message and "replace=True" in message
    assert registry.is_loaded("cell")


def test_replace_unloads_old_and_registers_new(make_plugin, journal):
    registry = PluginRegistry()
    old = registry.register(make_plugin("p", "1.0"))
    registry.load("p")
    registry.register(make_plugin("after"))
    new = registry.register(make_plugin("p", "2.0"), replace=True)
    assert new is not old
    assert unloads(journal) == ["p"]
    assert registry.get("p") is new and not registry.is_loaded("p")
    # The replacement keeps the old one's place in registration order.
    assert [(m.id, m.version) for m in registry.list()] == [("p", "2.0"), ("after", "1.0")]
    assert registry.load("p") == ["p"]
    # Replacing with the very same instance is fine too (a re-run cell).
    assert registry.register(new, replace=True) is new


def test_replace_refused_while_dependents_loaded(make_plugin):
    registry = PluginRegistry()
    old = registry.register(make_plugin("base"))
    registry.register(make_plugin("top", deps={"base": ""}))
    registry.initialize_all()
    with pytest.raises(PluginError, match="'top'"):
        registry.register(make_plugin("base", "9.0"), replace=True)
    assert registry.get("base") is old and registry.is_loaded("base")


def test_register_accepts_classes_and_strings():
    registry = PluginRegistry()

    class Local(Plugin):
        metadata = PluginMetadata("local", "1.0")

    assert isinstance(registry.register(Local), Local)
    plugin = registry.register("spiraltorch_nb.plugins.loader:_ExamplePlugin")
    assert plugin.metadata.id == "example"
    assert [m.id for m in registry.list()] == ["local", "example"]


def test_register_checks_hook_signatures_before_changing_state():
    class BadHook(Plugin):
        metadata = PluginMetadata("bad-hook", "1.0")

        def on_load(self):  # missing ctx
            pass

    class BadEvent(Plugin):
        metadata = PluginMetadata("bad-event", "1.0")

        def on_event(self, event):  # missing ctx
            pass

    registry = PluginRegistry()
    with pytest.raises(PluginError) as info:
        registry.register(BadHook())
    message = str(info.value)
    assert "'bad-hook'" in message and "on_load" in message and "on_load(self, ctx)" in message
    with pytest.raises(PluginError, match="on_event"):
        registry.register(BadEvent())
    assert len(registry) == 0


def test_register_refuses_non_plugins():
    registry = PluginRegistry()
    with pytest.raises(PluginError, match="expected a Plugin instance"):
        registry.register(object())  # type: ignore[arg-type]

    class NoMetadata(Plugin):
        pass

    with pytest.raises(PluginError, match="has no `metadata`"):
        registry.register(NoMetadata())
    assert len(registry) == 0


def test_unregister_unloads_and_forgets(make_plugin, journal):
    registry = PluginRegistry()
    plugin = registry.register(make_plugin("gone"))
    registry.load("gone")
    assert registry.unregister("gone") is plugin
    assert unloads(journal) == ["gone"]
    assert "gone" not in registry
    registry.register(plugin)  # the same instance may now come back
    with pytest.raises(PluginError, match="no plugin 'nope'"):
        registry.unregister("nope")


def test_lookup_listing_and_capabilities(make_plugin):
    registry = PluginRegistry()
    gpu = registry.register(make_plugin("gpu", caps=("backend:cuda", "operators")))
    web = registry.register(make_plugin("web", caps=("backend:wgpu",)))
    loss = registry.register(make_plugin("loss", caps=("losses", "my-custom")))
    registry.load("web")
    assert [m.id for m in registry.list()] == ["gpu", "web", "loss"]
    assert [m.id for m in registry.list(loaded=True)] == ["web"]
    assert [m.id for m in registry.list(loaded=False)] == ["gpu", "loss"]
    assert registry.find_by_capability("operators") == [gpu]
    assert registry.find_by_capability("backend:*") == [gpu, web]
    assert registry.find_by_capability("backend:*", loaded=True) == [web]
    assert registry.find_by_capability("my-custom") == [loss]
    assert registry.find_by_capability("widgets") == []
    assert registry.get("gpu") is gpu
    assert "gpu" in registry and "nope" not in registry
    assert not registry.is_loaded("nope")
    assert repr(registry) == "<PluginRegistry: 3 registered, 1 loaded>"


def test_global_registry_is_a_lazy_singleton():
    registry = global_registry()
    assert isinstance(registry, PluginRegistry)
    assert global_registry() is registry


# -- unloading -----------------------------------------------------------------------


def test_unload_refused_while_dependents_loaded(make_plugin, journal):
    registry = PluginRegistry()
    diamond(make_plugin, registry)
    registry.initialize_all()
    with pytest.raises(PluginError) as info:
        registry.unload("d")
    message = str(info.value)
    assert "'d'" in message and "'b'" in message and "'c'" in message and "'a'" in message
    assert "cascade=True" in message
    assert all(registry.is_loaded(p) for p in "abcd")
    assert unloads(journal) == []


def test_cascade_unloads_dependents_in_reverse_load_order(make_plugin, journal):
    registry = PluginRegistry()
    registry.register(make_plugin("bystander"))
    diamond(make_plugin, registry)
    registry.initialize_all()
    load_order = loads(journal)
    assert registry.unload("b", cascade=True) == ["a", "b"]
    assert registry.is_loaded("c") and registry.is_loaded("d") and registry.is_loaded("bystander")
    assert registry.unload("d", cascade=True) == ["c", "d"]
    assert unloads(journal) == ["a", "b", "c", "d"]
    assert registry.is_loaded("bystander")
    # Reloading works and follows the same order.
    journal.clear()
    assert registry.initialize_all() == [p for p in load_order if p != "bystander"]


def test_unload_leaf_and_not_loaded(make_plugin):
    registry = PluginRegistry()
    diamond(make_plugin, registry)
    registry.initialize_all()
    assert registry.unload("a") == ["a"]
    assert registry.unload("a") == []  # already unloaded: nothing to do
    with pytest.raises(PluginError, match="no plugin 'x'"):
        registry.unload("x")


def test_loaded_and_unloaded_events(make_plugin):
    registry = PluginRegistry()
    seen = []
    registry.events.subscribe("plugin.*", lambda e: seen.append((e.topic, e.payload)))
    registry.register(make_plugin("p", "1.2"))
    registry.load("p")
    registry.unload("p")
    assert seen == [
        ("plugin.registered", {"id": "p", "version": "1.2"}),
        ("plugin.loaded", {"id": "p", "version": "1.2"}),
        ("plugin.unloaded", {"id": "p", "version": "1.2"}),
    ]


def test_loaded_plugins_receive_events_until_unloaded(make_plugin):
    registry = PluginRegistry()
    contexts = []
    listener = registry.register(
        make_plugin("listener", on_event=lambda e, ctx: contexts.append(ctx))
    )
    assert len(registry.events) == 0
    registry.load("listener")
    (forwarder,) = registry.events.subscriptions()
    assert forwarder.pattern == "*" and forwarder.owner == "listener"
    assert registry.events.publish("tensor.add", 1) == 1
    topics = [e.topic for e in listener.events]
    assert topics == ["plugin.loaded", "tensor.add"]
    assert contexts[-1] is registry.context
    registry.unload("listener")
    assert len(registry.events) == 0
    assert registry.events.publish("tensor.add") == 0
    assert [e.topic for e in listener.events] == topics


def test_failing_on_event_is_isolated(make_plugin):
    registry = PluginRegistry()

    def explode(event, ctx):
        raise RuntimeError("bad plugin")

    registry.register(make_plugin("noisy", on_event=explode))
    quiet = registry.register(make_plugin("quiet"))
    with pytest.warns(PluginWarning, match="plugin 'noisy'"):
        registry.initialize_all()
    with pytest.warns(PluginWarning) as record:
        assert registry.events.publish("x.y") == 2
    topics = ["'x.y'" in str(w.message) for w in record]
    assert topics == [True, False]  # then again for 'bus.handler_error', which it also sees
    assert "x.y" in [e.topic for e in quiet.events]


def test_on_unload_failure_warns_and_still_unloads(make_plugin, op_registry):
    registry = PluginRegistry()

    def on_load(ctx):
        op_registry.register("myop", object())

    def on_unload(ctx):
        raise RuntimeError("unload trouble")

    registry.register(make_plugin("shaky", on_load=on_load, on_unload=on_unload))
    registry.load("shaky")
    with pytest.warns(PluginWarning, match="on_unload raised RuntimeError: unload trouble"):
        assert registry.unload("shaky") == ["shaky"]
    assert not registry.is_loaded("shaky")
    assert "myop" not in op_registry


# -- rollback and undo logs ----------------------------------------------------------


def test_failed_load_rolls_back_everything_exactly(make_plugin, op_registry):
    registry = PluginRegistry()
    ctx = registry.context
    ctx.set_config("precision", "fp32")
    ctx.set_config("keep", 1)
    ctx.register_service("tokenizer", object())
    ctx.register_service("cache", object())
    registry.events.subscribe("tensor.*", lambda e: None)
    op_registry.register("add", "builtin add")
    before = snapshot(registry, op_registry.ops)
    custom_undone = []

    def on_load(ctx):
        ctx.events.subscribe("*", lambda e: None)
        ctx.events.subscribe("train.step", lambda e: None)
        ctx.register_service("new-service", object())
        ctx.register_service("tokenizer", object(), replace=True)
        ctx.unregister_service("cache")
        ctx.set_config("precision", "bf16")
        ctx.set_config("precision", "fp8")  # twice: must unwind to the original
        ctx.set_config("brand-new", True)
        ctx.unset_config("keep")
        ctx.track(lambda: custom_undone.append(True), "custom")
        op_registry.register("fused_gelu", "plugin op")
        op_registry.register("add", "plugin add", replace=True)
        ctx.events.publish("half.way")
        raise ValueError("disk on fire")

    registry.register(make_plugin("arsonist", on_load=on_load))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a clean rollback warns about nothing
        with pytest.raises(PluginError) as info:
            registry.load("arsonist")
    error = info.value
    assert isinstance(error.__cause__, ValueError)
    assert error.plugin_id == "arsonist" and error.hook == "on_load"
    message = str(error)
    assert "'arsonist'" in message and "on_load" in message and "disk on fire" in message
    assert "registry.load('arsonist')" in message
    assert snapshot(registry, op_registry.ops) == before
    assert custom_undone == [True]
    assert not registry.is_loaded("arsonist")
    assert "arsonist" in registry  # still registered, can be retried


def test_failed_load_can_be_retried(make_plugin):
    registry = PluginRegistry()
    attempts = []

    def on_load(ctx):
        attempts.append(1)
        ctx.register_service("svc", len(attempts))
        if len(attempts) == 1:
            raise RuntimeError("first try fails")

    registry.register(make_plugin("flaky", on_load=on_load))
    with pytest.raises(PluginError):
        registry.load("flaky")
    assert registry.context.services() == {}
    assert registry.load("flaky") == ["flaky"]  # no "already registered service" error
    assert registry.context.get_service("svc") == 2


def test_failed_load_publishes_load_failed(make_plugin):
    registry = PluginRegistry()
    seen = []
    registry.events.subscribe("plugin.load_failed", seen.append)

    def fail(ctx):
        raise KeyError("x")

    registry.register(make_plugin("f", "3.0", on_load=fail))
    with pytest.raises(PluginError):
        registry.load("f")
    (event,) = seen
    assert event.payload["id"] == "f" and event.payload["version"] == "3.0"
    assert isinstance(event.payload["error"], KeyError)


def test_failure_in_dependency_chain_reports_requested_plugin(make_plugin, journal):
    registry = PluginRegistry()

    def fail(ctx):
        raise RuntimeError("nope")

    registry.register(make_plugin("base"))
    registry.register(make_plugin("middle", deps={"base": ""}, on_load=fail))
    registry.register(make_plugin("top", deps={"middle": ""}))
    with pytest.raises(PluginError) as info:
        registry.load("top")
    message = str(info.value)
    assert info.value.plugin_id == "middle"
    assert "'top' was not loaded" in message and "Loaded before the failure: base" in message
    assert registry.is_loaded("base")
    assert not registry.is_loaded("middle") and not registry.is_loaded("top")


def test_undo_action_failure_warns_but_rest_is_undone(make_plugin):
    registry = PluginRegistry()

    def on_load(ctx):
        ctx.set_config("a", 1)

        def broken_undo():
            raise OSError("undo failed")

        ctx.track(broken_undo, "broken undo")
        ctx.set_config("b", 2)
        raise RuntimeError("load failed")

    registry.register(make_plugin("messy", on_load=on_load))
    with pytest.warns(PluginWarning, match="broken undo: OSError: undo failed"):
        with pytest.raises(PluginError, match="load failed"):
            registry.load("messy")
    assert registry.context.config() == {}


def test_keyboard_interrupt_rolls_back_and_propagates(make_plugin):
    registry = PluginRegistry()

    def on_load(ctx):
        ctx.register_service("half", 1)
        raise KeyboardInterrupt

    registry.register(make_plugin("interrupted", on_load=on_load))
    with pytest.raises(KeyboardInterrupt):
        registry.load("interrupted")
    assert registry.context.services() == {}
    assert not registry.is_loaded("interrupted")


def test_unload_calls_on_unload_then_replays_undo_log(make_plugin, op_registry):
    registry = PluginRegistry()
    order = []
    ctx = registry.context
    ctx.set_config("mode", "eager")
    before = snapshot(registry, op_registry.ops)

    def on_load(ctx):
        op_registry.register("fused_gelu", "impl")
        ctx.register_service("gelu.tuner", object())
        ctx.set_config("mode", "fused")
        ctx.events.subscribe("tensor.*", lambda e: None)
        ctx.track(lambda: order.append("undo"), "custom")

    def on_unload(ctx):
        # Everything it registered is still there when on_unload runs.
        order.append(("on_unload", "fused_gelu" in op_registry, ctx.has_service("gelu.tuner")))

    registry.register(make_plugin("gelu", on_load=on_load, on_unload=on_unload))
    registry.load("gelu")
    assert "fused_gelu" in op_registry
    subs = registry.events.subscriptions(owner="gelu")
    assert {s.pattern for s in subs} == {"*", "tensor.*"}  # forwarder + its own
    registry.unload("gelu")
    assert order == [("on_unload", True, True), "undo"]
    assert snapshot(registry, op_registry.ops) == before
    # Loading again records a fresh log; unloading again undoes it again.
    registry.load("gelu")
    registry.unload("gelu")
    assert snapshot(registry, op_registry.ops) == before


def test_unload_does_not_clobber_later_changes(make_plugin):
    registry = PluginRegistry()
    ctx = registry.context

    def on_load(ctx):
        ctx.set_config("k", "plugin value")
        ctx.register_service("svc", "plugin service")

    registry.register(make_plugin("p", on_load=on_load))
    registry.load("p")
    ctx.set_config("k", "user value")
    ctx.register_service("svc", "user service", replace=True)
    registry.unload("p")
    assert ctx.get_config("k") == "user value"
    assert ctx.get_service("svc") == "user service"


def test_on_unload_may_clean_up_itself(make_plugin, op_registry):
    """An on_unload that already removed things leaves the undo log nothing to trip on."""
    registry = PluginRegistry()
    holder = {}

    def on_load(ctx):
        ctx.register_service("svc", 1)
        holder["sub"] = ctx.events.subscribe("x", lambda e: None)

    def on_unload(ctx):
        ctx.unregister_service("svc")
        holder["sub"].unsubscribe()

    registry.register(make_plugin("tidy", on_load=on_load, on_unload=on_unload))
    registry.load("tidy")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        registry.unload("tidy")
    assert registry.context.services() == {} and len(registry.events) == 0


def test_plugin_loading_another_plugin_keeps_logs_apart(make_plugin):
    registry = PluginRegistry()

    def load_helper(ctx):
        ctx.registry.load("helper")
        ctx.set_config("outer", 1)
        raise RuntimeError("outer fails after loading helper")

    registry.register(make_plugin("helper", on_load=lambda ctx: ctx.set_config("inner", 1)))
    registry.register(make_plugin("outer", on_load=load_helper))
    with pytest.raises(PluginError, match="'outer'"):
        registry.load("outer")
    # helper loaded fine and keeps its config and its event forwarder.
    assert registry.is_loaded("helper")
    assert registry.context.config() == {"inner": 1}
    assert [s.owner for s in registry.events.subscriptions()] == ["helper"]


def registry_state(registry):
    """What the registry knows: ids in registration order, loaded ones, bus subscriptions."""
    return (
        [meta.id for meta in registry.list()],
        [meta.id for meta in registry.list(loaded=True)],
        [(s.pattern, s.owner) for s in registry.events.subscriptions()],
    )


def test_plugin_registered_by_a_failing_on_load_is_unregistered(make_plugin, journal):
    registry = PluginRegistry()
    registry.register(make_plugin("first"))
    registry.load("first")
    seen = []
    registry.events.subscribe("plugin.*", lambda e: seen.append((e.topic, e.payload["id"])))
    before = registry_state(registry)

    def on_load(ctx):
        ctx.registry.register(make_plugin("parked"))
        ctx.registry.register(make_plugin("started"))
        ctx.registry.load("started")
        raise RuntimeError("outer fails after registering two plugins")

    registry.register(make_plugin("outer", on_load=on_load))
    with pytest.raises(PluginError, match="'outer'"):
        registry.load("outer")
    registry.unregister("outer")
    assert registry_state(registry) == before
    assert "parked" not in registry and "started" not in registry
    assert unloads(journal) == ["started"]  # it was loaded: its on_unload ran
    assert ("plugin.unregistered", "parked") in seen and ("plugin.unregistered", "started") in seen


def test_plugin_registered_in_on_load_goes_when_its_registrant_unloads(make_plugin):
    registry = PluginRegistry()

    def on_load(ctx):
        ctx.registry.register(make_plugin("extension"))

    registry.register(make_plugin("host", on_load=on_load))
    registry.load("host")
    assert "extension" in registry
    registry.unload("host")
    assert "extension" not in registry
    # registered again by the user since: the undo leaves it alone
    registry.load("host")
    registry.unregister("extension")
    mine = registry.register(make_plugin("extension", "2.0"))
    registry.unload("host")
    assert registry.get("extension") is mine


def test_failing_on_load_puts_back_what_it_replaced_or_unregistered(make_plugin, journal):
    registry = PluginRegistry()
    for pid in ("a", "b", "c"):
        registry.register(make_plugin(pid))
    registry.load("a")
    registry.load("b")
    originals = {pid: registry.get(pid) for pid in "abc"}
    before = registry_state(registry)

    def on_load(ctx):
        ctx.registry.register(make_plugin("a", "9.0"), replace=True)  # a was loaded
        ctx.registry.unregister("b")  # b was loaded too
        ctx.registry.unregister("c")
        raise RuntimeError("outer fails after replacing and removing")

    registry.register(make_plugin("outer", on_load=on_load))
    journal.clear()
    with pytest.raises(PluginError, match="'outer'"):
        registry.load("outer")
    registry.unregister("outer")
    ids, loaded, subscriptions = registry_state(registry)
    # reloaded newest-undo-first, so their forwarders may come in another order
    assert (ids, loaded, sorted(subscriptions)) == (before[0], before[1], sorted(before[2]))
    assert {pid: registry.get(pid) for pid in "abc"} == originals
    assert sorted(loads(journal)) == ["a", "b", "outer"]  # a and b loaded again, as they were


def test_unload_takes_cascade_positionally(make_plugin, journal):
    registry = PluginRegistry()
    diamond(make_plugin, registry)
    registry.initialize_all()
    assert registry.unload("b", True) == ["a", "b"]
    assert registry.unload("d", cascade=True) == ["c", "d"]
    registry.initialize_all()
    assert registry.unregister("d", True) is not None and "d" not in registry
