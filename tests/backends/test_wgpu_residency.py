"""Data stays on the wgpu device: no transfers until a read, batched submits, reused buffers.

Transfers are counted twice, independently: by the backend's own ``stats`` and by a
dispatch observer's ``on_transfer`` (the telemetry path).
"""

from __future__ import annotations

import gc
import os

import numpy as np
import pytest

import spiraltorch_nb as st
from spiraltorch_nb.backends import get_backend, probe
from spiraltorch_nb.ops.registry import set_dispatch_observer

_INFO = probe("wgpu")
if not _INFO["available"]:
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"wgpu must be available in CI but is not: {_INFO['reason']}", pytrace=False)
    pytest.skip(f"wgpu unavailable: {_INFO['reason']}", allow_module_level=True)


class TransferLog:
    """A dispatch observer that records ops and host<->device transfers."""

    def __init__(self) -> None:
        self.ops: list[str] = []
        self.transfers: list[tuple[str, str, int]] = []

    def on_op(self, op, backend, args, outputs, start_ns, duration_ns, phase) -> None:  # noqa: ANN001
        self.ops.append(op.name)

    def on_transfer(self, src: str, dst: str, nbytes: int, start_ns: int, duration_ns: int) -> None:
        self.transfers.append((src, dst, nbytes))


@pytest.fixture
def log():
    rec = TransferLog()
    prev = set_dispatch_observer(rec)
    yield rec
    set_dispatch_observer(prev)


@pytest.fixture(scope="module")
def be():
    return get_backend("wgpu")


def _snapshot(be) -> dict[str, int]:
    return dict(be.stats)


def test_a_50_op_chain_makes_no_transfer_until_the_final_read(be, log: TransferLog) -> None:
    x = st.randn(8, 16, device="wgpu")
    w = st.randn(16, 16, device="wgpu")
    be.synchronize()
    before = _snapshot(be)
    log.transfers.clear()
    y = x
    for _ in range(10):  # 5+ ops per round: matmul, add, tanh, mul, mean, sub
        y = (y @ w + 0.1).tanh() * 0.9
        y = y - y.mean(dim=1, keepdim=True)
    assert len(log.ops) >= 50
    assert log.transfers == []
    assert be.stats["uploads"] == before["uploads"] and be.stats["downloads"] == before["downloads"]
    out = y.numpy()  # the one read
    assert log.transfers == [("wgpu", "host", out.nbytes)]
    assert be.stats["downloads"] == before["downloads"] + 1
    # and the values are right
    xn, wn = x.numpy(), w.numpy()
    ref = xn
    for _ in range(10):
        ref = np.tanh(ref @ wn + 0.1) * 0.9
        ref = ref - ref.mean(axis=1, keepdims=True)
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-5)


def test_uploads_are_counted_and_reported(be, log: TransferLog) -> None:
    before = _snapshot(be)
    st.tensor(np.ones((3, 4), np.float32), device="wgpu")
    assert be.stats["uploads"] == before["uploads"] + 1
    assert log.transfers == [("host", "wgpu", 48)]


def test_an_upload_into_a_reused_buffer_waits_for_pending_reads(be) -> None:
    # x's buffer goes back to the pool while an op that reads it is still only recorded;
    # the next upload of the same size gets that buffer and must land after the read
    be.synchronize()
    gc.collect()  # garbage of earlier tests frees its buffers now, not at the collection below
    be.empty_cache()  # no free buffers left over from earlier tests: x's is the only candidate
    x = st.tensor(np.arange(64, dtype=np.float32), device="wgpu")
    be.synchronize()
    doubled = x * 2.0
    block_id = id(x._data.block.buffer)
    del x
    gc.collect()
    y = st.tensor(np.full(64, -1.0, np.float32), device="wgpu")
    assert id(y._data.block.buffer) == block_id  # the freed buffer was reused
    np.testing.assert_array_equal(doubled.numpy(), np.arange(64, dtype=np.float32) * 2)
    np.testing.assert_array_equal(y.numpy(), np.full(64, -1.0, np.float32))


def test_creation_and_random_need_no_upload(be, log: TransferLog) -> None:
    before = _snapshot(be)
    st.zeros(100, device="wgpu")
    st.full((4, 4), 3.5, device="wgpu")
    st.arange(10, device="wgpu")
    st.rand(64, device="wgpu")
    st.randn(64, device="wgpu")
    st.randperm(16, device="wgpu")
    assert be.stats["uploads"] == before["uploads"] and log.transfers == []


def test_a_bool_mask_index_reads_back_and_says_so(be, log: TransferLog) -> None:
    x = st.randn(5, 6, device="wgpu")
    mask = x > 0
    log.transfers.clear()
    picked = x[mask]  # data-dependent shape: the mask is read back (and its positions uploaded)
    kinds = [(s, d) for s, d, _ in log.transfers]
    assert ("wgpu", "host") in kinds and ("host", "wgpu") in kinds
    np.testing.assert_array_equal(picked.numpy(), x.numpy()[mask.numpy()])
    log.transfers.clear()
    y = x.clone()
    y[mask] = 0.0  # a full-shape mask with a scalar is a where(): no read-back
    assert log.transfers == []
    assert (y.numpy() <= 0).all()


def test_many_ops_are_submitted_in_few_batches(be) -> None:
    x = st.randn(32, device="wgpu")
    be.synchronize()
    before = _snapshot(be)
    y = x
    for _ in range(200):
        y = y * 1.001 + 0.001
    y.numpy()
    dispatches = be.stats["dispatches"] - before["dispatches"]
    submits = be.stats["submits"] - before["submits"]
    assert dispatches == 400
    assert submits <= dispatches // be.queue.max_ops + 3  # batches of max_ops, plus the read


def test_submit_every_op_mode_is_available_for_comparison(be) -> None:
    x = st.randn(32, device="wgpu")
    be.synchronize()
    be.queue.submit_every_op = True
    try:
        before = _snapshot(be)
        y = x
        for _ in range(10):
            y = y + 1.0
        be.synchronize()
        assert be.stats["submits"] - before["submits"] >= 10
    finally:
        be.queue.submit_every_op = False
    np.testing.assert_allclose(y.numpy(), x.numpy() + 10.0, rtol=1e-6)


def test_the_pool_reuses_buffers_in_a_loop(be) -> None:
    w = st.randn(16, 16, device="wgpu")
    x = st.randn(4, 16, device="wgpu")

    def step() -> None:
        h = (x @ w).relu()
        (h * h).sum().numpy()

    for _ in range(3):
        step()
    gc.collect()
    allocated = be.pool.stats["allocations"]
    reused = be.pool.stats["reuses"]
    for _ in range(20):
        step()
    assert be.pool.stats["allocations"] == allocated  # no new GPU buffers once warm
    assert be.pool.stats["reuses"] > reused + 20


def test_freed_buffers_return_to_the_pool(be) -> None:
    be.synchronize()
    gc.collect()
    in_use = be.pool.stats["bytes_in_use"]
    x = st.zeros(10_000, device="wgpu")
    assert be.pool.stats["bytes_in_use"] >= in_use + 40_000
    del x
    gc.collect()
    assert be.pool.stats["bytes_in_use"] == in_use
    assert be.empty_cache() > 0 and be.pool.stats["bytes_cached"] == 0


def test_views_share_the_buffer(be) -> None:
    x = st.randn(4, 6, device="wgpu")
    before = be.stats["dispatches"]
    v = x.reshape(2, 12).T[3:7].unsqueeze(0).expand(3, 4, 2)
    assert be.stats["dispatches"] == before  # views cost no kernel
    assert v._data.block is x._data.block
    np.testing.assert_array_equal(v.numpy(), np.broadcast_to(x.numpy().reshape(2, 12).T[3:7][None], (3, 4, 2)))


def test_pipelines_compile_once(be) -> None:
    x = st.randn(8, device="wgpu")
    (x.sin() + 1.0).numpy()
    misses = be.pipelines.stats["misses"]
    hits = be.pipelines.stats["hits"]
    for _ in range(5):
        (x.sin() + 1.0).numpy()
    assert be.pipelines.stats["misses"] == misses
    assert be.pipelines.stats["hits"] >= hits + 10


def test_in_place_updates_write_into_the_same_buffer(be) -> None:
    p = st.randn(5, 3, device="wgpu", requires_grad=True)
    block = p._data.block
    g = st.randn(5, 3, device="wgpu")
    want = p.numpy() - 0.1 * g.numpy()
    with st.no_grad():
        p -= 0.1 * g
    assert p._data.block is block
    np.testing.assert_allclose(p.numpy(), want, rtol=1e-6, atol=1e-7)
