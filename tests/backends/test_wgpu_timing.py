"""Device-true op timing on wgpu: timestamp queries behind the telemetry ``device_timer`` hook."""

from __future__ import annotations

import os

import numpy as np
import pytest

import spiraltorch_nb as st
from spiraltorch_nb.backends import get_backend, probe

_INFO = probe("wgpu")
if not _INFO["available"]:
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"wgpu must be available in CI but is not: {_INFO['reason']}", pytrace=False)
    pytest.skip(f"wgpu unavailable: {_INFO['reason']}", allow_module_level=True)


@pytest.fixture(scope="module")
def be():
    backend = get_backend("wgpu")
    if not backend.handle.has_timestamps:
        pytest.skip("this wgpu adapter lacks the timestamp-query feature")
    return backend


def _chain(x, w, rounds: int):
    y = x
    for _ in range(rounds):  # 5 ops per round: matmul, add, tanh, mul, sub(mean)
        y = (y @ w + 0.1).tanh() * 0.9
        y = y - y.mean(dim=1, keepdim=True)
    return y


def test_the_device_opens_with_timestamp_queries(be) -> None:
    assert "timestamp-query" in be.handle.features
    assert be.device_timer() is not None


def test_recorded_wgpu_ops_get_positive_device_durations(be) -> None:
    x = st.randn(32, 64, device="wgpu")
    w = st.randn(64, 64, device="wgpu")
    be.synchronize()
    with st.telemetry.record() as rec:
        _chain(x, w, 6).numpy()
    ops = rec.ops.filter(rec.ops["backend"] == "wgpu")
    assert ops.height >= 30
    timing = ops["timing"].to_list()
    # the first op ran before the recorder saw the backend and opened its timer
    assert timing[0] == "host"
    assert timing[1:] == ["device"] * (ops.height - 1)
    dev = ops.filter(ops["timing"] == "device")
    assert (dev["duration_ns"] > 0).all()
    # device time is measured, not copied from the host clock
    assert dev["duration_ns"].to_list() != dev["host_ns"].to_list()
    assert be.queue.timer is None  # stop() detached the timer


def test_bigger_matmuls_take_more_device_time(be) -> None:
    small = st.randn(16, 16, device="wgpu")
    big = st.randn(256, 256, device="wgpu")
    be.synchronize()
    with st.telemetry.record() as rec:
        small + 0.0  # the first op is untimed (the timer opens when the recorder sees it)
        for _ in range(5):
            small @ small
            big @ big
        be.synchronize()
    mm = rec.ops.filter((rec.ops["op"] == "matmul") & (rec.ops["timing"] == "device"))
    assert mm.height == 10
    ns = np.array(mm["duration_ns"].to_list()).reshape(5, 2)
    assert np.median(ns[:, 1]) > np.median(ns[:, 0])


def test_timing_adds_no_transfers_during_a_50_op_chain(be) -> None:
    x = st.randn(8, 16, device="wgpu")
    w = st.randn(16, 16, device="wgpu")
    be.synchronize()
    before = dict(be.stats)
    with st.telemetry.record(chunk_rows=16) as rec:  # small chunks: several resolves mid-chain
        y = _chain(x, w, 10)
        assert rec.ops.height >= 50  # reading the frame resolves timings: still no transfer
        assert rec.transfers.height == 0
        assert be.stats["downloads"] == before["downloads"] and be.stats["uploads"] == before["uploads"]
        out = y.numpy()
    assert rec.transfers.height == 1 and rec.transfers["bytes"][0] == out.nbytes
    assert be.stats["downloads"] == before["downloads"] + 1
    assert (rec.ops["timing"] == "device").sum() >= 50
    ref = x.numpy()
    wn = w.numpy()
    for _ in range(10):
        ref = np.tanh(ref @ wn + 0.1) * 0.9
        ref = ref - ref.mean(axis=1, keepdims=True)
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-5)


def test_query_sets_are_reused_across_resolves(be) -> None:
    from spiraltorch_nb.backends.wgpu.timing import CHUNK_QUERIES

    x = st.randn(4, 4, device="wgpu")
    with be.device_timer() as timer:
        tokens = []
        for _ in range(CHUNK_QUERIES):  # two chunks' worth of passes
            x = x + 1.0
            tokens.append(timer.mark())
        first = timer.elapsed_ns(tokens)
        sets = len(timer._sets)
        more = []
        for _ in range(CHUNK_QUERIES):
            x = x + 1.0
            more.append(timer.mark())
        second = timer.elapsed_ns(more)
    assert all(v is not None and v > 0 for v in first + second)
    assert sets == 2 and len(timer._sets) == sets
    assert timer.elapsed_ns(tokens[:1]) == [None]  # a token resolves once
    assert float(x.numpy()[0, 0]) != 0.0


def test_an_op_without_passes_resolves_to_none(be) -> None:
    x = st.randn(4, 4, device="wgpu")
    with be.device_timer() as timer:
        empty = timer.mark()
        x = x * 2.0
        real = timer.mark()
        assert timer.elapsed_ns([empty, real])[0] is None
    assert empty[0] == empty[1]


def test_a_second_timer_is_refused_and_the_recorder_falls_back(be) -> None:
    with be.device_timer():
        with pytest.warns(RuntimeWarning, match="already active"):
            with st.telemetry.record() as rec:
                st.ones(4, device="wgpu") + 1
                st.ones(4, device="wgpu") + 1
    assert set(rec.ops["timing"]) == {"host"}
    assert be.queue.timer is None


def test_without_a_timer_ops_are_timed_on_the_host(be, monkeypatch) -> None:
    monkeypatch.setattr(type(be), "device_timer", lambda self: None)
    with st.telemetry.record() as rec:
        _chain(st.randn(4, 8, device="wgpu"), st.randn(8, 8, device="wgpu"), 2).numpy()
    assert rec.ops.height >= 10
    assert set(rec.ops["timing"]) == {"host"}
    assert rec.ops["duration_ns"].to_list() == rec.ops["host_ns"].to_list()
    assert be.queue.timer is None


def test_device_timing_false_leaves_passes_untimed(be) -> None:
    with st.telemetry.record(device_timing=False) as rec:
        st.ones(4, device="wgpu") + 1
        assert be.queue.timer is None
    assert set(rec.ops["timing"]) == {"host"}
