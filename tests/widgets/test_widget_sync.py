"""Widget state changed from several threads reaches the front end (ipywidgets' hold_sync alone is not thread-safe)."""

from __future__ import annotations

import threading

import traitlets

from spiraltorch_nb.widgets._base import ActionWidget


class Pair(ActionWidget):
    _esm = "export default { render() {} };"
    a = traitlets.Int(0).tag(sync=True)
    b = traitlets.Int(0).tag(sync=True)


class RecordingComm:
    """Stands in for the kernel's comm: keeps the state each message sent."""

    kernel = True
    comm_id = "recording"

    def __init__(self) -> None:
        self.sent: list[dict] = []

    def on_msg(self, callback: object) -> None:
        pass

    def send(self, data: dict | None = None, metadata: object = None, buffers: object = None) -> None:
        if isinstance(data, dict) and data.get("method") in ("update", "echo_update"):
            self.sent.append(dict(data["state"]))


class GatedQueue(set):
    """The queue of held changes, made to hit the race: a change queued by ``late`` waits
    until the holding thread has sent and cleared the queue."""

    def __init__(self, late: threading.Thread) -> None:
        super().__init__()
        self.late = late
        self.cleared = threading.Event()

    def add(self, key: object) -> None:
        if threading.current_thread() is self.late:
            self.cleared.wait(2.0)
        super().add(key)

    def clear(self) -> None:
        super().clear()
        self.cleared.set()


def test_a_change_made_while_another_thread_leaves_hold_sync_is_sent() -> None:
    """Thread A holds sync while thread B changes `b`: B's change must still reach the page.

    Without a lock, B sees "holding", queues its change, and A sends and clears the queue
    around it: the change is never sent (the gated queue makes that interleaving certain).
    """
    w = Pair()
    comm = RecordingComm()
    w.comm = comm  # type: ignore[assignment]
    inside, b_started = threading.Event(), threading.Event()

    def set_b() -> None:
        inside.wait(2.0)
        b_started.set()
        w.b = 7

    late = threading.Thread(target=set_b)
    w._trait_values["_states_to_send"] = GatedQueue(late)
    late.start()
    with w.hold_sync():
        w.a = 1
        inside.set()
        b_started.wait(2.0)
    late.join(5.0)
    assert [s["b"] for s in comm.sent if "b" in s] == [7]
    assert [s["a"] for s in comm.sent if "a" in s] == [1]
