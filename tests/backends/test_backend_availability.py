"""``st.backends.available`` and ``st.backends.reason``: whether a device can be used, and why not."""

from __future__ import annotations

import subprocess
import sys

import pytest

import spiraltorch_nb as st
from spiraltorch_nb import backends
from spiraltorch_nb.backends import probe
from spiraltorch_nb.errors import DeviceError


def test_cpu_is_always_available() -> None:
    assert backends.available("cpu") is True and backends.reason("cpu") is None
    assert backends.available(st.device("cpu")) is True


def test_wgpu_matches_its_probe() -> None:
    info = probe("wgpu")
    if not info["available"]:  # CI requires an adapter (the conformance fixture fails there)
        assert backends.available("wgpu") is False and backends.reason("wgpu") == info["reason"]
        pytest.skip(f"wgpu unavailable: {info['reason']}")
    assert backends.available("wgpu") is True and backends.reason("wgpu") is None
    assert backends.available("webgpu") is True


def test_cuda_without_a_gpu_gives_the_reason() -> None:
    info = probe("cuda")
    if info["available"]:
        assert backends.available("cuda") is True and backends.reason("cuda:0") is None
        index = len(info["devices"])
        assert backends.available(f"cuda:{index}") is False
        assert f"cuda:{index}" in backends.reason(f"cuda:{index}") and "cuda:0" in backends.reason(f"cuda:{index}")
        return
    why = backends.reason("cuda")
    assert backends.available("cuda") is False and backends.available("gpu") is False
    assert why == info["reason"] and why
    assert "GPU" in why or "CUDA" in why or "CuPy" in why
    assert backends.reason("cuda:1") == why


def test_an_unavailable_probe_is_reported_not_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(backends._probes, "wgpu", {"available": False, "devices": [],
                                                    "reason": "no WebGPU adapter: none of vulkan, gl found"})
    assert backends.available("wgpu") is False
    assert backends.reason("wgpu") == "no WebGPU adapter: none of vulkan, gl found"


def test_an_unknown_name_is_a_device_error() -> None:
    with pytest.raises(DeviceError, match="unknown device 'tpu'.*'cpu', 'cuda', 'wgpu'"):
        backends.available("tpu")
    with pytest.raises(DeviceError, match="unknown device"):
        backends.reason("tpu")
    with pytest.raises(DeviceError, match="only one cpu"):
        backends.available("cpu:1")


def test_importing_and_looking_up_probes_nothing() -> None:
    code = ("import sys, spiraltorch_nb as st; f = st.backends.available, st.backends.reason; "
            "from spiraltorch_nb import backends; "
            "print(bool(backends._probes), 'wgpu' in sys.modules, 'cupy' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False", "False"]
