"""Tensor properties, conversions, memory sharing (numpy, DLPack) and printing."""

from __future__ import annotations

import numpy as np
import pytest

import spiraltorch_nb as st
from spiraltorch_nb.backends import probe
from spiraltorch_nb.errors import ShapeError

torch = pytest.importorskip("torch")


# ---- properties ------------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(), (0,), (3,), (2, 3), (2, 0, 4), (1, 2, 3, 4)])
def test_properties_match_torch(shape: tuple) -> None:
    x = st.zeros(shape)
    t = torch.zeros(shape)
    assert x.shape == tuple(t.shape) and isinstance(x.shape, tuple)
    assert x.ndim == t.ndim == x.dim()
    assert x.numel() == t.numel() == st.numel(x)
    assert x.size() == tuple(t.size())
    assert x.dtype is st.float32 and x.device == st.device("cpu") and str(x.device) == "cpu"
    if shape:
        assert len(x) == shape[0] and x.size(-1) == shape[-1]
    else:
        with pytest.raises(TypeError):
            len(x)


@pytest.mark.parametrize("shape", [(3,), (2, 3), (2, 3, 4)])
def test_T_reverses_the_dimensions(shape: tuple) -> None:
    a = np.arange(int(np.prod(shape)), dtype=np.float32).reshape(shape)
    x = st.tensor(a)
    np.testing.assert_array_equal(x.T.numpy(), a.T)
    if len(shape) == 2:
        np.testing.assert_array_equal(x.t().numpy(), a.T)
        np.testing.assert_array_equal(x.mT.numpy(), a.T)


def test_max_and_min_of_nothing_raise_like_torch() -> None:
    for fn in (lambda x: x.max(), lambda x: x.amin(dim=0), lambda x: x.argmax(), lambda x: x.max(dim=0)):
        with pytest.raises(ShapeError, match="empty"):
            fn(st.zeros(0, 3))
        with pytest.raises((RuntimeError, IndexError)):
            fn(torch.zeros(0, 3))
    assert st.zeros(0, 3).amax(dim=1).shape == (0,)  # reducing a non-empty dim of an empty tensor is fine


# ---- conversions -----------------------------------------------------------------------------------

def test_numpy_shares_memory_on_cpu() -> None:
    x = st.zeros(3)
    a = x.numpy()
    a[1] = 5.0
    assert x.tolist() == [0.0, 5.0, 0.0]
    assert isinstance(a, np.ndarray) and a.dtype == np.float32


def test_item_and_tolist_give_python_types() -> None:
    assert st.tensor(2.5).item() == 2.5 and isinstance(st.tensor(2.5).item(), float)
    assert isinstance(st.tensor([7]).item(), int) and st.tensor([[7]]).item() == 7
    assert st.tensor(True).item() is True
    assert st.tensor([[1, 2], [3, 4]]).tolist() == [[1, 2], [3, 4]]
    assert st.tensor(3.0).tolist() == 3.0
    assert float(st.tensor(1.5)) == 1.5 and int(st.tensor(3)) == 3 and bool(st.tensor(0.0)) is False
    with pytest.raises(ShapeError, match="exactly one element"):
        st.ones(2).item()
    with pytest.raises(ShapeError, match="ambiguous"):
        bool(st.ones(2))


def test_index_protocol_for_integer_scalars() -> None:
    assert [10, 20, 30][st.tensor(1)] == 20
    with pytest.raises(TypeError):
        [1, 2][st.tensor(1.0)]


def test_detach_shares_memory_and_the_version_counter() -> None:
    x = st.tensor([1.0, 2.0], requires_grad=True)
    y = x * 2
    d = y.detach()
    assert not d.requires_grad and d.grad_fn is None
    d.numpy()[0] = 10.0
    assert y.detach().tolist()[0] == 10.0
    d.add_(1.0)
    assert y._version == d._version == 1
    assert x.data.tolist() == [1.0, 2.0] and not x.data.requires_grad


def test_clone_copies_and_stays_differentiable() -> None:
    x = st.tensor([1.0, 2.0], requires_grad=True)
    c = x.clone()
    assert c.grad_fn is not None
    (c * 3.0).sum().backward()
    assert x.grad.tolist() == [3.0, 3.0]
    c2 = x.detach().clone()
    c2.numpy()[0] = 50.0
    assert x.detach().tolist() == [1.0, 2.0]


def test_array_protocol() -> None:
    x = st.tensor([[1.0, 2.0], [3.0, 4.0]])
    a = np.asarray(x)
    assert a.dtype == np.float32 and a.shape == (2, 2)
    assert np.array(x, dtype=np.float64).dtype == np.float64
    c = np.array(x, copy=True)
    c[0, 0] = -1.0
    assert x[0, 0].item() == 1.0
    # NumPy defers to our operators when a tensor is on the right
    assert isinstance(np.float32(2.0) * x, st.Tensor)


def test_to_device_round_trip_and_gradients() -> None:
    x = st.tensor([1.0, 2.0], requires_grad=True)
    assert x.to("cpu") is x and x.cpu() is x
    devices = st.available_devices()
    other = next((d for d in devices if d != "cpu"), None)
    if other is None:
        pytest.skip(f"only the cpu is available (wgpu unavailable: {probe('wgpu')['reason']})")
    y = x.to(other)
    assert str(y.device) == other and y.tolist() == [1.0, 2.0]
    (y * y).sum().to("cpu").backward()
    assert x.grad.tolist() == [2.0, 4.0]
    assert y.to("cpu").device == st.device("cpu")


# ---- DLPack ---------------------------------------------------------------------------------------

def test_dlpack_with_numpy_is_zero_copy_both_ways() -> None:
    x = st.zeros(4)
    a = np.from_dlpack(x)
    a[0] = 1.0
    assert x.tolist()[0] == 1.0
    b = np.arange(3, dtype=np.float64)
    y = st.from_dlpack(b)
    b[2] = -7.0
    assert y.dtype is st.float64 and y.tolist() == [0.0, 1.0, -7.0]
    with st.no_grad():
        y[0] = 42.0
    assert b[0] == 42.0
    assert x.__dlpack_device__()[0] == 1  # kDLCPU


def test_dlpack_with_torch_is_zero_copy_both_ways() -> None:
    x = st.tensor([1.0, 2.0, 3.0])
    t = torch.from_dlpack(x)
    t[1] = 20.0
    assert x.tolist() == [1.0, 20.0, 3.0]
    u = torch.arange(4, dtype=torch.int64)
    y = st.from_dlpack(u)
    u[3] = 99
    assert y.dtype is st.int64 and y.tolist() == [0, 1, 2, 99]
    with st.no_grad():
        y[0] = -1
    assert u[0].item() == -1
    with pytest.raises(TypeError, match="__dlpack"):
        st.from_dlpack([1, 2])


# ---- printing ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("make", [
    lambda m: m.tensor([1.0, 2.0, 3.0]),
    lambda m: m.tensor([[1.0, -2.0], [3.0, 40.0]]),
    lambda m: m.tensor([1, 2, 3]),
    lambda m: m.tensor([[True, False]]),
    lambda m: m.tensor(7),
    lambda m: m.tensor(-3.0),
    lambda m: m.tensor([1.0, 2.0], dtype=m.float64),
    lambda m: m.tensor([1, 2], dtype=m.int32),
    lambda m: m.tensor([1.0, 2.0], requires_grad=True),
    lambda m: m.tensor(float("nan")),
    lambda m: m.zeros(2, 3),
], ids=["floats", "matrix", "ints", "bools", "int_scalar", "float_scalar", "float64", "int32", "requires_grad",
        "nan", "zeros"])
def test_repr_matches_torch(make) -> None:
    """Where the formats agree (integral floats, integers, bools, suffixes) the text is torch's."""
    ours = repr(make(st))
    theirs = repr(make(torch)).replace("torch.", "st.")
    assert ours == theirs


def test_repr_in_the_cases_that_differ_from_torch() -> None:
    """Non-integral floats print NumPy's shortest form (torch pads to 4 decimals); the values round-trip."""
    x = st.tensor([0.5, -1.25])
    assert repr(x) == "tensor([ 0.5 , -1.25])"
    y = st.tensor([1.0, 2.0], requires_grad=True) * 2
    assert repr(y).startswith("tensor([2., 4.], grad_fn=<") and "mul" in repr(y)
    big = st.arange(3000.0)
    assert "..." in repr(big) and len(repr(big)) < 200
    assert repr(st.zeros(0)) == "tensor([], dtype=st.float32)"
    if probe("wgpu")["available"]:
        assert repr(st.tensor([1.0], device="wgpu")) == "tensor([1.], device='wgpu')"


def test_repr_html_is_a_card_with_summary_statistics() -> None:
    x = st.tensor([[1.0, 2.0], [3.0, float("inf")]], requires_grad=True)
    html = x._repr_html_()
    for part in ("spiraltorch-tensor", "(2, 2)", "float32", "cpu", "requires_grad", "non-finite", "1 / 2 / 3"):
        assert part in html, part
    y = (x * 2)
    assert "grad_fn" in y._repr_html_() and "&lt;" in y._repr_html_()  # escaped
    assert "(0,)" in st.zeros(0)._repr_html_()
