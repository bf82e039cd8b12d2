"""EventBus: wildcard matching, delivery, handler isolation, thread safety."""

from __future__ import annotations

import sys
import threading
import time
import warnings

import pytest

from spiraltorch_nb.errors import PluginError
from spiraltorch_nb.plugins import Event, EventBus, PluginWarning, Subscription
from spiraltorch_nb.plugins import events as events_module


@pytest.mark.parametrize(
    ("pattern", "topic", "expected"),
    [
        ("*", "tensor.add", True),
        ("*", "plugin.loaded", True),
        ("tensor.*", "tensor.add", True),
        ("tensor.*", "tensor.add.backward", True),  # '*' crosses dots, as in fnmatch
        ("tensor.*", "tensor", False),
        ("tensor.*", "tensorx.add", False),
        ("tensor.*", "nn.tensor.add", False),
        ("telemetry.op", "telemetry.op", True),
        ("telemetry.op", "telemetry.ops", False),
        ("telemetry.op", "xtelemetry.op", False),
        ("telemetry.op", "Telemetry.op", False),
        ("Tensor.*", "tensor.add", False),  # case-sensitive
        ("*.loaded", "plugin.loaded", True),
        ("*.loaded", "plugin.unloaded", False),
        ("plugin.?oaded", "plugin.loaded", True),
        ("plugin.?oaded", "plugin.unloaded", False),
        ("tensor.[am]*", "tensor.add", True),
        ("tensor.[am]*", "tensor.mul", True),
        ("tensor.[am]*", "tensor.sub", False),
        ("tensor.[!a]*", "tensor.sub", True),
        ("a.b", "a.b", True),
        ("a.b", "axb", False),  # '.' is literal, not a regex dot
    ],
)
def test_wildcard_table(pattern, topic, expected):
    bus = EventBus()
    seen: list[Event] = []
    subscription = bus.subscribe(pattern, seen.append)
    assert subscription.matches(topic) is expected
    assert bus.has_subscribers(topic) is expected
    assert bus.publish(topic) == int(expected)
    assert [e.topic for e in seen] == ([topic] if expected else [])


def test_event_fields_and_frozen():
    bus = EventBus()
    seen: list[Event] = []
    bus.subscribe("x", seen.append)
    before = time.time()
    bus.publish("x", {"k": 1})
    after = time.time()
    (event,) = seen
    assert event.topic == "x" and event.payload == {"k": 1}
    assert before <= event.timestamp <= after
    with pytest.raises(AttributeError):
        event.topic = "y"  # type: ignore[misc]


def test_publish_counts_handlers_in_subscription_order():
    bus = EventBus()
    order: list[str] = []
    bus.subscribe("a.*", lambda e: order.append("first"))
    bus.subscribe("*", lambda e: order.append("second"))
    bus.subscribe("b.*", lambda e: order.append("never"))
    bus.subscribe("a.x", lambda e: order.append("third"))
    assert bus.publish("a.x") == 3
    assert order == ["first", "second", "third"]


def test_no_subscribers_fast_path():
    bus = EventBus()
    assert not bus.has_subscribers()
    assert not bus.has_subscribers("tensor.add")
    assert bus.publish("tensor.add", object()) == 0
    sub = bus.subscribe("other", lambda e: None)
    assert bus.has_subscribers()
    assert not bus.has_subscribers("tensor.add")
    sub.unsubscribe()
    assert not bus.has_subscribers()


def test_match_cache_sees_new_and_removed_subscriptions():
    bus = EventBus()
    first: list[Event] = []
    second: list[Event] = []
    bus.subscribe("t.*", first.append)
    assert bus.publish("t.a") == 1  # caches the match for "t.a"
    sub = bus.subscribe("t.a", second.append)
    assert bus.publish("t.a") == 2
    sub.unsubscribe()
    assert bus.publish("t.a") == 1
    assert len(first) == 3 and len(second) == 1


def test_many_distinct_topics_stay_correct_past_cache_limit():
    bus = EventBus()
    seen: list[Event] = []
    bus.subscribe("op.*", seen.append)
    for i in range(3000):
        assert bus.publish(f"op.{i}") == 1
        assert bus.publish(f"other.{i}") == 0
    assert len(seen) == 3000
    assert len(bus._state.cache) <= events_module._MATCH_CACHE_LIMIT  # bounded memory


def test_unsubscribe_idempotent_and_context_manager():
    bus = EventBus()
    seen: list[Event] = []
    sub = bus.subscribe("x", seen.append)
    assert isinstance(sub, Subscription) and sub.active
    assert sub.unsubscribe() is True
    assert sub.unsubscribe() is False
    assert not sub.active
    assert bus.publish("x") == 0
    with bus.subscribe("x", seen.append) as scoped:
        assert bus.publish("x") == 1
    assert not scoped.active
    assert bus.publish("x") == 0
    assert len(seen) == 1 and len(bus) == 0


def test_bus_unsubscribe_method_and_foreign_subscription():
    bus, other = EventBus(), EventBus()
    sub = bus.subscribe("x", lambda e: None)
    with pytest.raises(PluginError, match="this bus"):
        other.unsubscribe(sub)
    assert bus.unsubscribe(sub) is True
    assert bus.unsubscribe(sub) is False


def test_subscriptions_listing_and_clear():
    bus = EventBus()
    a = bus.subscribe("x", lambda e: None)
    b = bus.subscribe("y", lambda e: None, owner="plug")
    assert bus.subscriptions() == [a, b]
    assert bus.subscriptions(owner="plug") == [b]
    assert b.owner == "plug" and a.owner is None
    bus.clear()
    assert bus.subscriptions() == [] and not a.active and not b.active
    assert "removed" in repr(a)


def test_unsubscribed_during_delivery_is_not_called():
    bus = EventBus()
    calls: list[str] = []
    later: list[Subscription] = []

    def first(event):
        calls.append("first")
        later[0].unsubscribe()

    bus.subscribe("x", first)
    later.append(bus.subscribe("x", lambda e: calls.append("second")))
    assert bus.publish("x") == 1
    assert calls == ["first"]


def test_subscribed_during_delivery_waits_for_next_event():
    bus = EventBus()
    calls: list[str] = []

    def first(event):
        calls.append("first")
        if len(calls) == 1:
            bus.subscribe("x", lambda e: calls.append("new"))

    bus.subscribe("x", first)
    assert bus.publish("x") == 1
    assert bus.publish("x") == 2
    assert calls == ["first", "first", "new"]


@pytest.mark.parametrize("pattern", ["", None, 3])
def test_bad_pattern(pattern):
    with pytest.raises(PluginError, match="topic pattern"):
        EventBus().subscribe(pattern, lambda e: None)  # type: ignore[arg-type]


def test_bad_handler():
    with pytest.raises(PluginError, match="callable handler"):
        EventBus().subscribe("x", "not callable")  # type: ignore[arg-type]


def test_bad_topic_when_subscribed():
    bus = EventBus()
    bus.subscribe("*", lambda e: None)
    with pytest.raises(PluginError, match="non-empty topic"):
        bus.publish("")


def test_raising_handler_is_isolated_and_reported():
    bus = EventBus()
    calls: list[str] = []
    errors: list[Event] = []

    def broken_handler(event):
        raise ValueError("kaput")

    bus.subscribe("train.step", lambda e: calls.append("before"))
    bus.subscribe("train.*", broken_handler)
    bus.subscribe("train.step", lambda e: calls.append("after"))
    bus.subscribe("bus.handler_error", errors.append)
    with pytest.warns(PluginWarning) as record:
        called = bus.publish("train.step", 7)
    assert called == 3
    assert calls == ["before", "after"]
    (warning,) = record
    text = str(warning.message)
    assert "broken_handler" in text and "'train.step'" in text and "kaput" in text
    assert warning.filename == __file__  # points at the publish() call
    (error_event,) = errors
    payload = error_event.payload
    assert payload["topic"] == "train.step"
    assert "broken_handler" in payload["handler"]
    assert isinstance(payload["error"], ValueError)
    assert payload["event"].payload == 7


def test_raising_error_handler_does_not_recurse():
    bus = EventBus()
    error_calls: list[Event] = []

    def always_raises(event):
        raise RuntimeError(f"failed on {event.topic}")

    def error_handler(event):
        error_calls.append(event)
        raise RuntimeError("the error handler fails too")

    bus.subscribe("*", always_raises)
    bus.subscribe("bus.handler_error", error_handler)
    with pytest.warns(PluginWarning) as record:
        assert bus.publish("x") == 1
    # always_raises on 'x'; then on 'bus.handler_error' both handlers raise: warned only.
    assert len(record) == 3
    assert len(error_calls) == 1


def test_warning_names_owner():
    bus = EventBus()

    def handler(event):
        raise KeyError("k")

    bus.subscribe("x", handler, owner="my-plugin")
    with pytest.warns(PluginWarning, match="plugin 'my-plugin'"):
        bus.publish("x")


def test_threads_subscribe_and_publish_concurrently_counts_exact():
    n_threads, per_thread, n_events = 8, 25, 40
    bus = EventBus()
    counter = {"n": 0}
    counter_lock = threading.Lock()

    def handler(event):
        with counter_lock:
            counter["n"] += 1

    barrier = threading.Barrier(n_threads)
    subscriptions: list[list[Subscription]] = [[] for _ in range(n_threads)]

    def subscribe_many(i):
        barrier.wait()
        for _ in range(per_thread):
            subscriptions[i].append(bus.subscribe("load.*", handler))

    old_interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        threads = [threading.Thread(target=subscribe_many, args=(i,)) for i in range(n_threads)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        total_subs = n_threads * per_thread
        assert len(bus) == total_subs
        assert len({id(s) for subs in subscriptions for s in subs}) == total_subs

        returned: list[int] = []

        def publish_many():
            barrier.wait()
            for j in range(n_events):
                returned.append(bus.publish(f"load.{j % 5}"))

        threads = [threading.Thread(target=publish_many) for _ in range(n_threads)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert returned == [total_subs] * (n_threads * n_events)
        assert counter["n"] == n_threads * n_events * total_subs

        # Now half the threads unsubscribe everything while the others publish.
        def unsubscribe_all(i):
            barrier.wait()
            for s in subscriptions[i]:
                s.unsubscribe()

        churn_counts: list[int] = []

        def publish_while_churning():
            barrier.wait()
            for _ in range(n_events):
                churn_counts.append(bus.publish("load.x"))

        threads = [
            threading.Thread(target=unsubscribe_all, args=(i,))
            if i % 2 == 0
            else threading.Thread(target=publish_while_churning)
            for i in range(n_threads)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(old_interval)
    assert len(churn_counts) == (n_threads // 2) * n_events
    assert all(0 <= n <= total_subs for n in churn_counts)
    remaining = sum(len(subscriptions[i]) for i in range(n_threads) if i % 2 == 1)
    assert len(bus) == remaining
    assert bus.publish("load.y") == remaining


def test_handlers_run_outside_the_lock():
    """A handler that publishes from another thread and waits for it must not deadlock."""
    bus = EventBus()
    got: list[str] = []
    bus.subscribe("inner", lambda e: got.append("inner"))

    def outer(event):
        worker = threading.Thread(target=lambda: bus.subscribe("late", lambda e: None))
        worker.start()
        worker.join(timeout=5)
        assert not worker.is_alive()
        bus.publish("inner")

    bus.subscribe("outer", outer)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        bus.publish("outer")
    assert got == ["inner"]
