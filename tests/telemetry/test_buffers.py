"""Bounded memory (ring buffer, spilling) and thread-safe recording."""

from __future__ import annotations

import threading

import polars as pl
import pytest

import spiraltorch_nb as st
from spiraltorch_nb.ops import registry
from spiraltorch_nb.telemetry import process_memory
from spiraltorch_nb.telemetry.buffers import EventBuffer
from spiraltorch_nb.telemetry.recorder import MAX_STAGED_CHUNKS

SCHEMA = {"seq": pl.Int64, "value": pl.Int64}
# through the full op path (a few microseconds each); the plain buffer test takes 2M
N_EVENTS = 400_000


def _convert(rows):
    seq, value = zip(*rows, strict=True)
    return pl.DataFrame({"seq": seq, "value": value}, schema=SCHEMA)


def test_ring_buffer_keeps_the_newest_rows_of_two_million():
    buf = EventBuffer("t", SCHEMA, _convert, chunk_rows=8192, max_rows=100_000, sort_by="seq")
    append = buf.append
    n = 2_000_000
    peak_chunks = 0
    for i in range(n):
        append((i, i * 2))
        if i % 100_000 == 0:
            peak_chunks = max(peak_chunks, buf.chunks_in_memory)
            assert buf.rows_in_memory <= 100_000
    df = buf.frame()
    assert df.height == 100_000
    assert df["seq"].to_list() == list(range(n - 100_000, n))
    assert buf.dropped == n - 100_000
    assert len(buf) == 100_000
    assert peak_chunks <= 100_000 // 8192 + 2


def _op_rows(rec, n, start=0):
    """Feed ``n`` synthetic op events through the recorder's own append path."""
    x = st.ones(16, 16)
    y = x @ x
    op = registry.global_operator_registry().get("matmul")
    on_op = rec.on_op
    for i in range(n):
        on_op(op, x._be, (x, x), (y,), start + i, 100, "forward")


def test_recorder_memory_stays_bounded_over_many_events():
    rec = st.telemetry.record(max_events=50_000, memory_every=0)
    rec.start()
    registry.set_dispatch_observer(None)  # the feed below is the only source of events
    try:
        # the first events set up what stays: the ring's chunks, Polars' and the allocator's
        # pools, the converter thread; after them, many more events must not grow the process
        warm = N_EVENTS // 4
        _op_rows(rec, warm)
        rss_before, _ = process_memory()
        _op_rows(rec, N_EVENTS - warm, start=warm)
        rss_after, _ = process_memory()
        assert rec._ops_buf.rows_in_memory <= 50_000
        # rows wait for the converter thread, up to a bound
        assert rec._ops_buf.staged < MAX_STAGED_CHUNKS * rec._ops_buf.chunk_rows
    finally:
        registry.set_dispatch_observer(rec)
        rec.stop()
    ops = rec.ops
    assert ops.height == 50_000 and rec.dropped["ops"] == N_EVENTS - 50_000
    assert ops["seq"][-1] == N_EVENTS - 1 and ops["seq"].is_sorted()
    assert ops["flops"][0] == 2 * 16 * 16 * 16
    # all rows kept would take ~100 MiB; the ring holds a few MiB
    assert ops.estimated_size() < 20 * 2**20
    if rss_before is not None and rss_after is not None:  # 300,000 more rows kept as tuples: ~90 MiB
        assert rss_after - rss_before < 30 * 2**20, f"grew by {(rss_after - rss_before) / 2**20:.1f} MiB"


def test_spilling_keeps_every_event_on_disk(tmp_path):
    rec = st.telemetry.record(spill_dir=tmp_path, chunk_rows=1000, memory_every=0)
    rec.start()
    registry.set_dispatch_observer(None)
    try:
        _op_rows(rec, 10_500)
        buf = rec._ops_buf
        assert buf.rows_in_memory == 0 and buf.chunks_in_memory == 0
        # full chunks were converted (on the converter thread, or here once it fell behind)
        # and written out; at most a bounded stage waits
        assert len(buf.spill_files) >= 1 and buf.staged < MAX_STAGED_CHUNKS * 1000
        assert len(buf) == 10_500
    finally:
        registry.set_dispatch_observer(rec)
        rec.stop()
    assert sorted(p.name for p in tmp_path.glob("ops-*.parquet"))[0] == "ops-000000.parquet"
    ops = rec.ops
    assert ops.height == 10_500 and ops["seq"].to_list() == list(range(10_500))
    assert rec.dropped["ops"] == 0
    lazy = rec.scan("ops").select(pl.len()).collect().item()
    assert lazy == 10_500
    rec.clear()
    assert rec.ops.height == 0 and not list(tmp_path.glob("ops-*.parquet"))


def test_two_threads_recording_lose_nothing():
    n = 3000
    barrier = threading.Barrier(2)
    errors = []

    def work(tag):
        try:
            x = st.ones(3)
            barrier.wait()
            for _ in range(n):
                x = x + 1.0
        except Exception as exc:  # surfaced below
            errors.append(exc)

    with st.telemetry.record(chunk_rows=256) as rec:
        threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        reads = 0
        while any(t.is_alive() for t in threads):
            assert rec.ops.height <= 2 * n  # concurrent reads flush while the threads append
            reads += 1
        for t in threads:
            t.join()
    assert not errors
    ops = rec.ops
    assert ops.height == 2 * n
    assert ops["seq"].to_list() == list(range(2 * n))
    per_thread = ops.group_by("thread").len()
    assert sorted(per_thread["len"].to_list()) == [n, n]
    assert reads > 0


def test_recording_from_a_background_thread():
    out = {}

    def trainer_loop():
        x = st.ones(4, requires_grad=True)
        (x * x).sum().backward()
        out["ident"] = threading.get_ident()

    with st.telemetry.record() as rec:
        t = threading.Thread(target=trainer_loop)
        t.start()
        t.join()
    ops = rec.ops
    assert set(ops["thread"]) == {out["ident"]}
    assert ops.filter(phase="forward")["op"].to_list() == ["mul", "sum"]
    assert sorted(ops.filter(phase="backward")["op"]) == ["add", "expand", "mul", "mul"]


def test_flush_soon_converts_on_the_converter_thread():
    threads = []

    def convert(rows):
        threads.append(threading.current_thread().name)
        return _convert(rows)

    buf = EventBuffer("t", SCHEMA, convert, chunk_rows=10_000)
    done = threading.Event()
    buf.on_flushed = done.set
    for i in range(100):
        buf.append((i, i))
    buf.flush_soon()
    assert done.wait(10)
    assert threads == ["spiraltorch-telemetry-t"] and buf.staged == 0 and buf.rows_in_memory == 100
    buf.close_worker()
    assert buf._worker is None
    assert buf.frame()["seq"].to_list() == list(range(100))


def _failing(convert, message):
    """``convert`` that raises ValueError(message) until ``fail[0]`` is set False."""
    fail = [True]

    def run(rows):
        if fail[0]:
            raise ValueError(message)
        return convert(rows)

    return run, fail


def test_a_failed_conversion_loses_no_rows():
    convert, fail = _failing(_convert, "bad row")
    buf = EventBuffer("t", SCHEMA, convert, chunk_rows=10_000, sort_by="seq")
    for i in range(5):
        buf.append((i, i))
    with pytest.raises(ValueError, match="bad row"):
        buf.flush()
    assert buf.staged == 5 and buf.drained == 0
    # on the converter thread the error is kept and raised by the next flush or read
    done = threading.Event()
    buf.on_flushed = done.set
    buf.flush_soon()
    assert done.wait(10)
    with pytest.raises(RuntimeError, match="converter thread.*ValueError: bad row"):
        buf.frame()
    buf.close_worker()
    fail[0] = False
    assert buf.frame()["seq"].to_list() == list(range(5))


def _convert_packed(rows):
    import numpy as np

    a = np.frombuffer(b"".join(rows), dtype=np.int64).reshape(-1, 2)
    return pl.DataFrame({"seq": a[:, 0].copy(), "value": a[:, 1].copy()}, schema=SCHEMA)


def test_packed_rows_are_whole_or_not_staged_at_all():
    buf = EventBuffer("t", SCHEMA, _convert_packed, chunk_rows=4, packed=2, sort_by="seq")
    for i in range(10):
        buf.append((i, -i))
    assert buf.staged == 2 and buf.drained == 8  # two chunks of 4 converted on the way
    # a value that is not a 64-bit int fails before anything is staged: no half row
    for bad in ((10, 2**63), (10, None), (10,)):
        with pytest.raises(Exception):  # noqa: B017 - struct.error, TypeError: whichever pack raises
            buf.append(bad)
        assert buf.staged == 2
    df = buf.frame()
    assert df["seq"].to_list() == list(range(10)) and df["value"].to_list() == [-i for i in range(10)]


def test_a_failed_packed_conversion_puts_the_rows_back_in_front():
    convert, fail = _failing(_convert_packed, "bad chunk")
    buf = EventBuffer("t", SCHEMA, convert, chunk_rows=100, packed=2, sort_by="seq")
    for i in range(3):
        buf.append((i, i))
    with pytest.raises(ValueError, match="bad chunk"):
        buf.flush()
    buf.append((3, 3))  # staged after the failure: it stays behind the rows put back
    fail[0] = False
    assert buf.frame()["seq"].to_list() == [0, 1, 2, 3]
    buf.clear()
    assert buf.staged == 0 and len(buf) == 0


def test_recording_leaves_nothing_for_the_garbage_collector():
    """Staged op rows are packed ints: recording keeps no object the garbage collector tracks."""
    import gc

    x = st.ones(8, 8, requires_grad=True)

    def step():
        (x @ x + 1.0).relu().sum().backward()  # 6 ops
        x.grad = None

    def tracked_growth(steps=50):
        """Growth of the gen-0 count (tracked allocations minus deallocations) over ``steps``."""
        for _ in range(20):  # signatures interned, caches warmed
            step()
        gc.collect()
        gc.disable()  # the count keeps counting; no collection resets it meanwhile
        try:
            before = gc.get_count()[0]
            for _ in range(steps):
                step()
            return gc.get_count()[0] - before
        finally:
            gc.enable()

    off = tracked_growth()
    rec = st.telemetry.record(chunk_rows=100_000, memory_every=0)
    with rec:
        on = tracked_growth()
        assert rec._ops_buf.staged >= 70 * 6  # no conversion ran: every row is still staged
    # a row kept as a tuple would add 300 (one per op); as a tuple of tuples, 1,200
    assert on - off < 100, f"recording kept {on - off} more tracked objects over 300 ops"


def test_rows_in_memory_never_reads_over_the_cap_while_the_converter_works():
    """A conversion adds its chunk before trimming the ring; readers must not see in between."""
    buf = EventBuffer("t", SCHEMA, _convert, chunk_rows=64, max_rows=1000)
    over = 0
    try:
        for i in range(60_000):
            buf.stage.append((i, i))
            if len(buf.stage) >= 64:
                buf.flush_soon()
            if buf.rows_in_memory > 1000 or buf.chunks_in_memory > 1000 // 64 + 2:
                over += 1
    finally:
        buf.close_worker()
    assert over == 0, f"{over} reads saw more rows than max_rows"
