"""The wgpu backend's contract: adapter selection, dtypes, limits, description, capabilities.

Runs on any WebGPU adapter, including Mesa's lavapipe/llvmpipe on a CPU-only machine.
Without an adapter the module is skipped, except in CI (``CI=true``) where that is a
failure: CI must exercise this backend for real.
"""

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

from spiraltorch_nb.backends.wgpu import adapter as wgpu_adapter  # noqa: E402
from spiraltorch_nb.backends.wgpu import configure  # noqa: E402


@pytest.fixture(scope="module")
def be():
    return get_backend("wgpu")


def test_importing_the_backend_does_not_import_wgpu() -> None:
    import subprocess
    import sys

    code = ("import sys, spiraltorch_nb, spiraltorch_nb.backends.wgpu as w; "
            "from spiraltorch_nb.backends.wgpu import WGPUBackend, WGPUStorage; print('wgpu' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_probe_reports_available_without_raising() -> None:
    info = probe("wgpu")
    assert info["available"] is True and info["devices"] == ["wgpu"]


def test_probe_gives_a_reason_when_no_adapter_matches(monkeypatch: pytest.MonkeyPatch) -> None:
    import wgpu

    from spiraltorch_nb.backends.wgpu import WGPUBackend

    present = {str(a.info.get("backend_type")) for a in wgpu.gpu.enumerate_adapters_sync()}
    missing = [k for k, v in wgpu_adapter.BACKEND_TYPES.items() if v not in present]
    if not missing:
        pytest.skip("every backend type has an adapter here")
    monkeypatch.setenv(wgpu_adapter.ENV_BACKEND, missing[0])
    info = WGPUBackend.probe()
    assert info["available"] is False
    assert missing[0] in info["reason"] and "available backend types" in info["reason"]


def test_the_environment_chooses_the_backend_type() -> None:
    import subprocess
    import sys

    import wgpu

    present = {str(a.info.get("backend_type")) for a in wgpu.gpu.enumerate_adapters_sync()}
    choice = next((k for k, v in wgpu_adapter.BACKEND_TYPES.items() if v in present), None)
    if choice is None:
        pytest.skip("no adapter reports a known backend type")
    code = ("import spiraltorch_nb as st; from spiraltorch_nb.backends import get_backend; "
            "x = st.arange(6, device='wgpu').float(); print((x * x).sum().item(), "
            "get_backend('wgpu').describe()['backend_type'])")
    env = {**os.environ, wgpu_adapter.ENV_BACKEND: choice, wgpu_adapter.ENV_POWER: "low-power"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    total, backend = out.stdout.split()
    assert float(total) == 55.0 and backend == wgpu_adapter.BACKEND_TYPES[choice]


def test_bad_settings_are_clear_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(st.DeviceError, match="power preference"):
        configure(power_preference="fastest")
    with pytest.raises(st.DeviceError, match="backend type"):
        configure(backend_type="cuda")
    monkeypatch.setenv(wgpu_adapter.ENV_POWER, "low_power")
    assert wgpu_adapter.current_settings().power_preference == "low-power"


def test_configure_after_first_use_is_refused(be) -> None:
    with pytest.raises(st.DeviceError, match="already open"):
        configure(power_preference="low-power")


def test_describe_names_adapter_limits_and_memory(be) -> None:
    d = be.describe()
    assert d["device_name"] and d["backend_type"] and d["adapter_type"]
    lim = d["limits"]
    assert lim["max_buffer_size"] >= lim["max_storage_buffer_binding_size"] > 0
    assert len(lim["max_compute_workgroup_size"]) == 3 and lim["max_compute_invocations_per_workgroup"] >= 256
    before = d["memory_used"]
    keep = st.zeros(100_000, device="wgpu")
    assert be.describe()["memory_used"] >= before + 400_000
    del keep
    assert st.describe_device("wgpu")["available"] is True


def test_capabilities_and_kernels_cover_every_cpu_op(be) -> None:
    caps = be.capabilities()
    cpu_ops = set(get_backend("cpu").kernels())
    assert cpu_ops <= set(be.kernels()), sorted(cpu_ops - set(be.kernels()))
    assert set(caps["ops"]) == set(be.kernels())
    assert {"float32", "int32", "uint32", "bool"} <= set(caps["dtypes"])
    assert "float64" not in caps["dtypes"] and "int64" not in caps["dtypes"]
    assert ("float16" in caps["dtypes"]) == be.handle.has_f16


@pytest.mark.parametrize("bad", ["float64", "int64"])
def test_64_bit_dtypes_are_clear_errors(bad: str) -> None:
    alt = "float32" if bad == "float64" else "int32"
    with pytest.raises(st.DTypeError, match=f"{bad}.*{alt}"):
        st.zeros(3, dtype=bad, device="wgpu")
    with pytest.raises(st.DTypeError, match=bad):
        st.tensor([1, 2], dtype=bad, device="wgpu")
    with pytest.raises(st.DTypeError, match=bad):
        st.tensor(np.zeros(3, dtype=bad)).to("wgpu")
    x = st.ones(3, device="wgpu")
    with pytest.raises(st.DTypeError, match=bad):
        x.to(bad)


def test_float64_numpy_data_is_an_error_not_a_downcast() -> None:
    with pytest.raises(st.DTypeError, match="float64.*float32"):
        st.tensor(np.arange(3.0), device="wgpu")


def test_integers_default_to_int32_on_wgpu() -> None:
    assert st.tensor([1, 2], device="wgpu").dtype is st.int32
    assert st.arange(5, device="wgpu").dtype is st.int32
    assert st.arange(5, device="wgpu").tolist() == [0, 1, 2, 3, 4]
    r = st.randint(0, 7, (50,), device="wgpu")
    assert r.dtype is st.int32 and 0 <= int(r.numpy().min()) and int(r.numpy().max()) < 7
    assert st.randperm(9, device="wgpu").dtype is st.int32
    assert sorted(st.randperm(9, device="wgpu").tolist()) == list(range(9))
    assert st.tensor(np.array([3, 4]), device="wgpu").dtype is st.int32  # exact, range-checked
    with pytest.raises(st.DTypeError, match="do not fit int32"):
        st.tensor([2**40], device="wgpu")
    b = st.tensor([True, False, True], device="wgpu")
    assert b.sum().dtype is st.int32 and b.sum().item() == 2
    assert st.tensor([[1.0, 5.0, 2.0]], device="wgpu").argmax(dim=1).dtype is st.int32


def test_promotions_to_int64_count_in_int32_on_wgpu() -> None:
    x = st.tensor([-1.0, 2.0, 0.5], device="wgpu")
    m = (x > 0) * 2  # bool * int is int64 on the cpu; wgpu has no int64
    assert m.dtype is st.int32 and m.tolist() == [0, 2, 2]
    u = st.tensor([1, 2], dtype=st.uint32, device="wgpu") + st.tensor([3, 4], device="wgpu")
    assert u.dtype is st.int32 and u.tolist() == [4, 6]
    assert ((st.tensor([1.0]) > 0) * 2).dtype is st.int64  # the cpu keeps torch's rule


def test_buffer_over_the_binding_limit_is_a_limit_error(be) -> None:
    limit = be.describe()["limits"]["max_storage_buffer_binding_size"]
    n = limit // 4 + 1
    with pytest.raises(st.errors.LimitError, match="max_storage_buffer_binding_size") as info:
        st.zeros(n, device="wgpu")
    assert info.value.limit == "max_storage_buffer_binding_size" and info.value.requested == 4 * n
    big = be.describe()["limits"]["max_buffer_size"] // 4 + 1
    with pytest.raises(st.errors.LimitError, match="max_buffer_size"):
        st.zeros(big, device="wgpu")


def test_more_workgroups_than_one_grid_dimension_holds() -> None:
    # 70000 rows -> 70000 workgroups: more than the 65535 of one dimension, so a 2-D grid
    rng = np.random.default_rng(0)
    x = rng.standard_normal((70_000, 4)).astype(np.float32)
    got = st.tensor(x, device="wgpu").softmax(-1).numpy()
    want = np.exp(x - x.max(1, keepdims=True))
    want /= want.sum(1, keepdims=True)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_a_dispatch_over_the_workgroup_grid_is_a_limit_error(be, monkeypatch: pytest.MonkeyPatch) -> None:
    # a real adapter allows 65535 workgroups per dimension (65535**2 in the 2-D grid the
    # kernels use); a small patched limit reaches the same check without huge buffers
    x_np = np.arange(10 * 256, dtype=np.float32)
    x = st.tensor(x_np, device="wgpu")
    big = st.tensor(np.ones(17 * 256, np.float32), device="wgpu")
    be.synchronize()
    monkeypatch.setattr(be.rt, "max_groups", 4)
    assert be.rt.grid(4) == (4, 1, 1) and be.rt.grid(10) == (4, 3, 1) and be.rt.grid(16) == (4, 4, 1)
    # 10 workgroups of 256 fit a 4 x 3 grid: the kernels skip the two spare workgroups
    np.testing.assert_array_equal((x + 1).numpy(), x_np + 1)
    with pytest.raises(st.errors.LimitError, match="max_compute_workgroups_per_dimension") as info:
        big + 1  # 17 workgroups of 256 need a 4 x 5 grid
    err = info.value
    assert err.limit == "max_compute_workgroups_per_dimension"
    assert err.requested == 17 and err.maximum == 16
    assert "17 workgroups" in str(err) and "of 4" in str(err) and "split the work" in str(err)


def test_float16_when_the_adapter_has_it(be) -> None:
    if not be.handle.has_f16:
        with pytest.raises(st.DTypeError, match="float16"):
            st.zeros(2, dtype="float16", device="wgpu")
        return
    x = st.tensor(np.array([1.5, -2.0, 3.25], np.float16), device="wgpu")
    y = (x * 2 + 1).numpy()
    assert y.dtype == np.float16 and y.tolist() == [4.0, -3.0, 7.5]


def test_printing_and_moves_read_back(be) -> None:
    x = st.tensor([[1.0, 2.0], [3.0, 4.0]], device="wgpu")
    assert "device='wgpu'" in repr(x)
    back = x.T.to("cpu")
    assert back.device == "cpu" and back.tolist() == [[1.0, 3.0], [2.0, 4.0]]


def test_manual_seed_repeats_random_tensors() -> None:
    st.manual_seed(123)
    a = st.rand(1000, device="wgpu").numpy()
    n = st.randn(1001, device="wgpu").numpy()
    st.manual_seed(123)
    assert np.array_equal(a, st.rand(1000, device="wgpu").numpy())
    assert np.array_equal(n, st.randn(1001, device="wgpu").numpy())
    assert not np.array_equal(a, st.rand(1000, device="wgpu").numpy())  # the stream moves on
    assert 0.0 <= a.min() and a.max() < 1.0 and abs(a.mean() - 0.5) < 0.05
    assert abs(n.mean()) < 0.15 and abs(n.std() - 1.0) < 0.1
    st.manual_seed(7)
    m = (st.rand(2000, device="wgpu") < 0.25).numpy()
    assert 0.2 < m.mean() < 0.3


def test_philox_matches_the_random123_known_answer(be) -> None:
    # Random123's kat_vectors: philox4x32_10, counter 0 and key 0
    from spiraltorch_nb.backends.wgpu.runtime import EXTRA

    out = be.rt.empty((4,), st.uint32)
    pipe = be.rt.pipeline("sort", "ww", entry="perm_init")
    idx = be.rt.empty((4,), st.uint32)
    words = [0] * EXTRA
    words[0], words[1] = 4, 4
    be.rt.launch(pipe, (out.buffer, idx.buffer), words, 4)
    assert [hex(v) for v in be.to_numpy(out).tolist()] == ["0x6627e8d5", "0xe169c58d", "0xbc57ac4c", "0x9b00dbd8"]
