"""The cuda backend: availability reasons (everywhere), devices, streams, timing and memory (GPU).

Tests that need a GPU skip with the probe's reason, which names what is missing (CuPy,
the driver, or a device). The conformance suite covers every op on cuda; fused kernels
are checked in ``test_cuda_fused.py``.
"""

from __future__ import annotations

import subprocess
import sys
import types

import numpy as np
import pytest

import spiraltorch_nb as st
from spiraltorch_nb.backends import get_backend, probe
from spiraltorch_nb.backends.cuda import INSTALL_HINT, CUDABackend

CUDA = probe("cuda")
needs_gpu = pytest.mark.skipif(not CUDA["available"], reason=f"cuda unavailable: {CUDA['reason']}")


# ---- availability: these run on every machine -----------------------------------------------
def test_probe_names_the_missing_cupy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "cupy", None)  # makes `import cupy` raise ImportError
    info = CUDABackend.probe()
    assert info["available"] is False
    assert info["devices"] == []
    assert info["reason"].endswith(f"CuPy is not installed: {INSTALL_HINT}")
    assert "pip install 'spiraltorch-nb[cuda13]'" in info["reason"]


def test_probe_says_whether_a_gpu_is_there(monkeypatch: pytest.MonkeyPatch) -> None:
    from spiraltorch_nb.backends.cuda import backend as cuda_backend

    monkeypatch.setitem(sys.modules, "cupy", None)
    monkeypatch.setattr(cuda_backend, "_nvidia_gpu_seen", lambda: False)
    assert CUDABackend.probe()["reason"].startswith("no NVIDIA GPU (no /dev/nvidia* device, no driver)")
    monkeypatch.setattr(cuda_backend, "_nvidia_gpu_seen", lambda: True)
    assert CUDABackend.probe()["reason"].startswith("an NVIDIA GPU is present, but CuPy is not installed")


def _fake_cupy(get_count: object, driver: int = 0) -> types.ModuleType:
    mod = types.ModuleType("cupy")
    runtime = types.SimpleNamespace(getDeviceCount=get_count, driverGetVersion=lambda: driver,
                                    runtimeGetVersion=lambda: 13000)
    mod.cuda = types.SimpleNamespace(runtime=runtime)
    return mod


def test_probe_names_the_driver_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail() -> int:
        raise RuntimeError("cudaErrorNoDevice: no CUDA-capable device is detected")

    monkeypatch.setitem(sys.modules, "cupy", _fake_cupy(fail, driver=12040))
    info = CUDABackend.probe()
    assert info["available"] is False
    assert info["reason"].startswith("no CUDA device: cudaErrorNoDevice: no CUDA-capable device is detected")
    assert "CUDA_VISIBLE_DEVICES" in info["reason"]


def test_probe_explains_a_missing_driver(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail() -> int:
        raise RuntimeError("cudaErrorInsufficientDriver: CUDA driver version is insufficient")

    monkeypatch.setitem(sys.modules, "cupy", _fake_cupy(fail, driver=0))
    reason = CUDABackend.probe()["reason"]
    assert reason.startswith("no CUDA device: cudaErrorInsufficientDriver")
    assert "no NVIDIA driver" in reason


def test_probe_explains_an_old_driver(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail() -> int:
        raise RuntimeError("cudaErrorInsufficientDriver: CUDA driver version is insufficient")

    monkeypatch.setitem(sys.modules, "cupy", _fake_cupy(fail, driver=12040))
    reason = CUDABackend.probe()["reason"]
    assert "supports CUDA 12.4" in reason and "needs 13.0" in reason


def test_probe_with_zero_devices(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "cupy", _fake_cupy(lambda: 0, driver=13000))
    info = CUDABackend.probe()
    assert info == {"available": False, "reason": "no CUDA device: the driver reports 0 GPUs", "devices": []}


def test_probe_lists_every_device(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "cupy", _fake_cupy(lambda: 3, driver=13000))
    info = CUDABackend.probe()
    assert info["available"] is True
    assert info["devices"] == ["cuda:0", "cuda:1", "cuda:2"]


def test_importing_the_package_never_imports_cupy() -> None:
    code = ("import sys, spiraltorch_nb as st, spiraltorch_nb.backends.cuda, spiraltorch_nb.ops.fused;"
            "x = st.ones(3); (x * 2).sum().item();"
            "assert 'cupy' not in sys.modules, 'cupy was imported'")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_cpu_works_when_cupy_is_unimportable() -> None:
    code = ("import sys; sys.modules['cupy'] = None\n"
            "import spiraltorch_nb as st\n"
            "from spiraltorch_nb.backends import probe\n"
            "info = probe('cuda'); assert not info['available'] and 'CuPy is not installed' in info['reason'], info\n"
            "assert 'cuda' not in ''.join(st.available_devices())\n"
            "assert st.describe_device('cuda')['available'] is False\n"
            "print((st.arange(4.0) * 2).tolist())\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[0.0, 2.0, 4.0, 6.0]"


@pytest.mark.skipif(CUDA["available"], reason="a CUDA device is present: the unavailable path is not reachable")
def test_unavailable_cuda_raises_with_the_reason() -> None:
    with pytest.raises(st.DeviceUnavailableError) as err:
        st.zeros(2, device="cuda")
    assert CUDA["reason"] in str(err.value)
    assert err.value.reason == CUDA["reason"]
    desc = st.describe_device("cuda")
    assert desc["available"] is False and desc["reason"] == CUDA["reason"]
    assert not any(d.startswith("cuda") for d in st.available_devices())


# ---- with a GPU ---------------------------------------------------------------------------------
@needs_gpu
def test_every_cpu_kernel_has_a_cuda_kernel() -> None:
    cpu = set(get_backend("cpu").kernels())
    cuda = set(get_backend("cuda").kernels())
    assert cpu <= cuda, f"ops the cpu has and cuda lacks: {sorted(cpu - cuda)}"


@needs_gpu
def test_tensors_live_on_the_requested_device() -> None:
    import cupy

    for name in CUDA["devices"]:
        index = int(name.split(":")[1])
        x = st.arange(6.0, device=name).reshape(2, 3)
        assert x.device == st.device(name)
        assert isinstance(x._data, cupy.ndarray) and x._data.device.id == index
        y = (x @ x.T).softmax(-1) + st.ones(2, 2, device=name)
        assert y._data.device.id == index and y.device == x.device
        np.testing.assert_allclose(y.numpy(), (x.cpu() @ x.cpu().T).softmax(-1).numpy() + 1, rtol=1e-5)


@needs_gpu
def test_a_missing_device_index_names_the_available_ones() -> None:
    missing = f"cuda:{len(CUDA['devices'])}"
    with pytest.raises(st.DeviceUnavailableError, match="available cuda devices: cuda:0"):
        st.zeros(1, device=missing)


@needs_gpu
def test_mixing_cuda_devices_is_an_error() -> None:
    if len(CUDA["devices"]) < 2:
        pytest.skip("needs two CUDA devices; this machine has one")
    with pytest.raises(st.DeviceError, match="cuda:0 and cuda:1"):
        st.ones(2, device="cuda:0") + st.ones(2, device="cuda:1")


@needs_gpu
def test_work_runs_on_the_current_stream_and_numpy_waits() -> None:
    import cupy

    be = get_backend("cuda")
    stream = be.stream(non_blocking=True)  # no implicit ordering with the default stream
    a = st.randn(512, 512, device="cuda")
    be.synchronize()  # `a` was made on the default stream
    with stream:
        assert cupy.cuda.get_current_stream() == stream
        b = a @ a + 1.0
        c = b.sum(dim=1)
    got = c.numpy()  # outside the stream: must still wait for the stream's work
    ref = (a.numpy().astype(np.float64) @ a.numpy().astype(np.float64) + 1.0).sum(axis=1)
    np.testing.assert_allclose(got, ref, rtol=1e-3, atol=1e-2)
    be.synchronize()


@needs_gpu
def test_timer_measures_device_time() -> None:
    be = get_backend("cuda")
    a = st.randn(1024, 1024, device="cuda")
    with be.timer() as t:
        with pytest.raises(st.DeviceError, match="after the `with` block"):
            _ = t.elapsed_ms
        for _ in range(3):
            a = a @ a * 1e-3
    assert t.elapsed_ms > 0.0
    assert t.elapsed_ns == pytest.approx(t.elapsed_ms * 1e6, rel=1e-6)


@needs_gpu
def test_memory_stats_follow_allocations() -> None:
    be = get_backend("cuda")
    be.synchronize()
    before = be.memory_stats()
    big = st.zeros(64, 1024, 1024, device="cuda")  # 256 MiB of float32
    during = be.memory_stats()
    assert during["used"] >= before["used"] + big.numel() * 4
    assert during["total"] >= during["used"]
    assert during["peak"] >= during["used"]
    assert 0 < during["device_free"] <= during["device_total"]
    del big
    after = be.memory_stats()
    assert after["used"] < during["used"]
    assert after["peak"] >= during["used"]
    be.reset_peak_memory()
    assert be.memory_stats()["peak"] == be.memory_stats()["used"]
    desc = be.describe()
    assert set(desc["pool"]) == {"used", "total", "peak"}
    assert desc["device_name"] and desc["memory_total"] > 0


@needs_gpu
def test_random_is_reproducible_on_cuda() -> None:
    st.manual_seed(3)
    a = st.rand(1000, device="cuda").numpy()
    st.manual_seed(3)
    b = st.rand(1000, device="cuda").numpy()
    np.testing.assert_array_equal(a, b)
    assert 0.0 <= a.min() and a.max() < 1.0 and abs(a.mean() - 0.5) < 0.05
    perm = st.randperm(50, device="cuda").numpy()
    assert sorted(perm.tolist()) == list(range(50))
    n = st.randn(20000, device="cuda", dtype="float16").numpy().astype(np.float64)
    assert abs(n.mean()) < 0.05 and abs(n.std() - 1.0) < 0.05


@needs_gpu
def test_training_step_matches_cpu() -> None:
    rng = np.random.default_rng(0)
    x, w, t = rng.standard_normal((16, 8)), rng.standard_normal((5, 8)) * 0.3, rng.integers(0, 5, 16)
    grads = {}
    for dev in ("cpu", "cuda"):
        W = st.tensor(w, dtype="float32", device=dev, requires_grad=True)
        logits = st.tensor(x, dtype="float32", device=dev) @ W.T
        loss = st.nn.functional.cross_entropy(logits, st.tensor(t, device=dev))
        loss.backward()
        grads[dev] = (loss.item(), W.grad.numpy())
    assert grads["cuda"][0] == pytest.approx(grads["cpu"][0], rel=1e-5)
    np.testing.assert_allclose(grads["cuda"][1], grads["cpu"][1], rtol=1e-4, atol=1e-6)


@needs_gpu
def test_device_timer_gives_one_span_per_op() -> None:
    be = get_backend("cuda")
    a = st.randn(256, 256, device="cuda")
    with be.device_timer() as timer:
        tokens = []
        for _ in range(3):
            a = a @ a * 1e-2
            tokens.append(timer.mark())
        spans = timer.elapsed_ns(tokens)
    assert len(spans) == 3 and all(isinstance(s, int) and s >= 0 for s in spans)
    assert timer.elapsed_ns(tokens[:1]) == [None]  # a token resolves once


@needs_gpu
def test_telemetry_records_device_time_and_memory_on_cuda() -> None:
    x = st.randn(64, 64, device="cuda")
    with st.telemetry.record() as rec:
        (x @ x).relu().sum().item()
    rows = rec.ops.filter(backend="cuda")
    assert rows.height >= 3
    assert "device" in set(rows["timing"].to_list())


@needs_gpu
def test_host_transfers_are_reported_to_telemetry() -> None:
    with st.telemetry.record() as rec:
        x = st.arange(1000.0).to("cuda")
        x.numpy()
    moves = rec.transfers
    assert ("host", "cuda:0", 4000) in set(zip(moves["src"], moves["dst"], moves["bytes"], strict=True))
    assert ("cuda:0", "host", 4000) in set(zip(moves["src"], moves["dst"], moves["bytes"], strict=True))
