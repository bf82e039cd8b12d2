"""Zero-copy exchange with NumPy, PyTorch, CuPy and JAX through DLPack (and CUDA's array interface).

"Zero-copy" is checked the only way that cannot be faked: write through one side, read
the change through the other. Host variants run everywhere; CUDA variants skip with
the reason when there is no GPU (or the library has no CUDA support here).
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

import spiraltorch_nb as st
from spiraltorch_nb.backends import probe

CUDA = probe("cuda")
needs_gpu = pytest.mark.skipif(not CUDA["available"], reason=f"cuda unavailable: {CUDA['reason']}")

try:
    import torch
except ImportError:
    torch = None
needs_torch = pytest.mark.skipif(torch is None, reason="torch is not installed")
HAS_JAX = importlib.util.find_spec("jax") is not None
needs_jax = pytest.mark.skipif(not HAS_JAX, reason="jax is not installed (pip install jax to run the JAX interop checks)")


def _torch_cuda_reason() -> str:
    if torch is None:
        return "torch is not installed"
    if not torch.cuda.is_available():
        return f"torch {torch.__version__} sees no CUDA device (torch.cuda.is_available() is False)"
    return ""


# ---- NumPy ---------------------------------------------------------------------------------------
def test_from_dlpack_numpy_shares_memory() -> None:
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    t = st.from_dlpack(a)
    assert t.device == st.device("cpu") and t.shape == (2, 3) and t.dtype == st.float32
    a[0, 1] = 42.0  # write through numpy ...
    assert t[0, 1].item() == 42.0  # ... read through spiraltorch
    t.add_(1.0)  # write through spiraltorch (in place) ...
    assert a[1, 2] == 6.0 and a[0, 1] == 43.0  # ... read through numpy


def test_numpy_from_dlpack_of_a_tensor_shares_memory() -> None:
    t = st.zeros(4)
    a = np.from_dlpack(t)
    a[2] = 7.0
    assert t.tolist() == [0.0, 0.0, 7.0, 0.0]
    t.mul_(2.0)
    assert a.tolist() == [0.0, 0.0, 14.0, 0.0]


def test_from_dlpack_keeps_integer_dtypes() -> None:
    a = np.array([[1, 2], [3, 4]], dtype=np.int32)
    t = st.from_dlpack(a)
    assert t.dtype == st.int32 and t.sum().item() == 10


def test_from_dlpack_rejects_what_has_no_dlpack() -> None:
    with pytest.raises(TypeError, match="__dlpack__"):
        st.from_dlpack([1.0, 2.0])


def test_dlpack_device_of_a_cpu_tensor() -> None:
    assert tuple(st.ones(2).__dlpack_device__()) == (1, 0)


# ---- PyTorch (cpu) ----------------------------------------------------------------------------------
@needs_torch
def test_from_dlpack_torch_cpu_shares_memory() -> None:
    x = torch.arange(5, dtype=torch.float64)
    t = st.from_dlpack(x)
    assert t.dtype == st.float64 and t.device == st.device("cpu")
    x[3] = -1.0
    assert t[3].item() == -1.0
    t.sub_(1.0)
    assert x.tolist() == [-1.0, 0.0, 1.0, -2.0, 3.0]


@needs_torch
def test_torch_from_dlpack_of_a_tensor_shares_memory() -> None:
    t = st.arange(6.0).reshape(2, 3)
    x = torch.from_dlpack(t)
    assert tuple(x.shape) == (2, 3) and x.dtype == torch.float32
    x[1, 1] = 100.0
    assert t[1, 1].item() == 100.0
    t.add_(1.0)
    assert x[0, 0].item() == 1.0


@needs_torch
def test_torch_from_dlpack_of_a_transposed_tensor() -> None:
    t = st.arange(6.0).reshape(2, 3).T  # a strided view
    x = torch.from_dlpack(t)
    assert x.tolist() == t.tolist()


# ---- CuPy -------------------------------------------------------------------------------------------
@needs_gpu
def test_from_dlpack_cupy_shares_memory() -> None:
    import cupy

    a = cupy.arange(8, dtype=cupy.float32)
    t = st.from_dlpack(a)
    assert t.device == st.device("cuda:0") and t.dtype == st.float32
    a[5] = 50.0
    assert t[5].item() == 50.0
    t.mul_(2.0)
    assert float(a[5]) == 100.0 and float(a[1]) == 2.0


@needs_gpu
def test_cupy_from_dlpack_and_cuda_array_interface_share_memory() -> None:
    import cupy

    t = st.zeros(3, 4, device="cuda")
    assert t.__dlpack_device__() == (2, 0)
    via_dlpack = cupy.from_dlpack(t)
    via_cai = cupy.asarray(t)  # uses __cuda_array_interface__, no copy
    assert via_cai.data.ptr == via_dlpack.data.ptr == t._data.data.ptr
    via_dlpack[1, 2] = 9.0
    assert t[1, 2].item() == 9.0 and float(via_cai[1, 2]) == 9.0
    t.add_(1.0)
    assert float(via_dlpack[0, 0]) == 1.0


def test_cuda_array_interface_only_on_cuda_tensors() -> None:
    with pytest.raises(AttributeError, match="only on cuda tensors"):
        _ = st.ones(2).__cuda_array_interface__


# ---- PyTorch (cuda) ---------------------------------------------------------------------------------
@needs_gpu
def test_torch_cuda_round_trip_shares_memory() -> None:
    reason = _torch_cuda_reason()
    if reason:
        pytest.skip(reason)
    x = torch.zeros(4, device="cuda")
    t = st.from_dlpack(x)
    assert t.device == st.device("cuda:0")
    x[2] = 3.0
    assert t[2].item() == 3.0
    y = torch.from_dlpack(t)
    t.add_(1.0)
    torch.cuda.synchronize()
    assert y.tolist() == [1.0, 1.0, 4.0, 1.0] and y.data_ptr() == x.data_ptr()


# ---- JAX --------------------------------------------------------------------------------------------
@needs_jax
def test_jax_cpu_round_trip() -> None:
    import jax.numpy as jnp

    x = jnp.arange(4.0, dtype=jnp.float32)
    t = st.from_dlpack(x)  # JAX arrays are immutable: check values, both ways
    assert t.tolist() == [0.0, 1.0, 2.0, 3.0]
    back = jnp.from_dlpack(st.tensor([5.0, 6.0]))
    assert back.tolist() == [5.0, 6.0]


@needs_jax
@needs_gpu
def test_jax_cuda_round_trip() -> None:
    import jax
    import jax.numpy as jnp

    gpus = [d for d in jax.devices() if d.platform == "gpu"]
    if not gpus:
        pytest.skip("jax has no GPU device here (install jax[cuda12] or jax[cuda13])")
    x = jax.device_put(jnp.arange(3.0, dtype=jnp.float32), gpus[0])
    t = st.from_dlpack(x)
    assert t.device.type == "cuda" and t.tolist() == [0.0, 1.0, 2.0]
    back = jnp.from_dlpack(st.ones(2, device="cuda") * 2.0)
    assert back.tolist() == [2.0, 2.0]
