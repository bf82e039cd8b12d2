"""The devices API: names, the default device and its scopes, availability, descriptions."""

from __future__ import annotations

import threading

import pytest

import spiraltorch_nb as st
from spiraltorch_nb.backends import probe
from spiraltorch_nb.errors import DeviceError, DeviceUnavailableError

WGPU = probe("wgpu")
CUDA = probe("cuda")


def test_device_names_parse_and_compare() -> None:
    cpu = st.device("cpu")
    assert cpu.type == "cpu" and cpu.index is None and str(cpu) == "cpu" and repr(cpu) == "device(type='cpu')"
    c1 = st.device("cuda:1")
    assert (c1.type, c1.index, str(c1)) == ("cuda", 1, "cuda:1")
    assert repr(c1) == "device(type='cuda', index=1)"
    assert st.device("cuda") == st.device("cuda:0") == "cuda:0"
    assert st.device("gpu") == st.device("cuda") and st.device("webgpu") == st.device("wgpu")
    assert st.device(" CPU ") == "cpu" and st.device(cpu) == cpu
    assert st.device("cuda", 2) == "cuda:2"
    assert len({st.device("cpu"), st.device("cpu"), st.device("wgpu")}) == 2
    assert st.device("cpu") != "not a device"


@pytest.mark.parametrize("bad, part", [("tpu", "unknown device"), ("cuda:x", "bad device index"), ("cpu:1", "only one cpu"),
                                       (3, "named by a string")])
def test_bad_device_names(bad: object, part: str) -> None:
    with pytest.raises(DeviceError, match=part):
        st.device(bad)


def test_set_default_device_and_its_scope() -> None:
    assert st.get_default_device() == "cpu"
    assert st.set_default_device("cpu") == st.device("cpu")
    with st.default_device("cpu") as dev:
        assert dev == "cpu" and st.zeros(1).device == "cpu"
    if not WGPU["available"]:
        pytest.skip(f"a second device is needed for the scope test: wgpu unavailable ({WGPU['reason']})")
    with st.default_device("wgpu"):
        assert st.zeros(2).device == "wgpu" and st.tensor([1, 2]).device == "wgpu"
        with st.default_device("cpu"):
            assert st.ones(1).device == "cpu"
        assert st.rand(2).device == "wgpu"
    assert st.zeros(1).device == "cpu"
    st.set_default_device("wgpu")
    try:
        assert st.arange(3).device == "wgpu" and st.get_default_device() == "wgpu"
    finally:
        st.set_default_device("cpu")


def test_default_device_scope_is_per_thread() -> None:
    if not WGPU["available"]:
        pytest.skip(f"a second device is needed: wgpu unavailable ({WGPU['reason']})")
    seen = {}
    inside = threading.Event()
    done = threading.Event()

    def worker() -> None:
        with st.default_device("wgpu"):
            inside.set()
            done.wait(5)

    t = threading.Thread(target=worker)
    t.start()
    assert inside.wait(5)
    seen["main"] = str(st.zeros(1).device)
    done.set()
    t.join(5)
    assert seen == {"main": "cpu"}


def test_an_unavailable_device_says_why() -> None:
    if CUDA["available"]:
        pytest.skip("cuda is available here")
    with pytest.raises(DeviceUnavailableError) as info:
        st.set_default_device("cuda")
    assert CUDA["reason"] in str(info.value) and info.value.reason == CUDA["reason"]
    assert st.get_default_device() == "cpu"
    with pytest.raises(DeviceUnavailableError):
        with st.default_device("cuda"):
            pass


def test_available_devices() -> None:
    devices = st.available_devices()
    assert devices[0] == "cpu"
    assert ("wgpu" in devices) == bool(WGPU["available"])
    assert any(d.startswith("cuda") for d in devices) == bool(CUDA["available"])


def test_describe_cpu() -> None:
    info = st.describe_device("cpu")
    assert info["name"] == "cpu" and info["backend"] == "cpu" and info["available"] is True
    assert info["reason"] == "" and info["device_name"] and info["cores"] >= 1
    assert st.describe_device()["name"] == "cpu"  # the default argument


def test_describe_cuda_here() -> None:
    info = st.describe_device("cuda")
    assert info["name"] == "cuda:0" and info["backend"] == "cuda"
    if CUDA["available"]:
        assert info["available"] is True and info["device_name"]
    else:
        assert info["available"] is False
        assert isinstance(info["reason"], str) and len(info["reason"]) > 10
        assert info["device_name"] is None and info["memory_total"] is None


def test_describe_wgpu() -> None:
    info = st.describe_device("wgpu")
    assert info["name"] == "wgpu" and info["backend"] == "wgpu"
    assert info["available"] is bool(WGPU["available"])
    if WGPU["available"]:
        assert info["device_name"] and isinstance(info.get("limits"), dict)
    else:
        assert info["reason"]
