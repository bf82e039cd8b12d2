"""Creation functions: values, shapes, dtypes and devices, against torch where it has the same function,
and reproducibility of the random ones with ``st.manual_seed``."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import spiraltorch_nb as st
from spiraltorch_nb.errors import DTypeError, ShapeError

torch = pytest.importorskip("torch")


def _same(got: st.Tensor, want: Any) -> None:
    assert got.dtype.name == str(want.dtype).removeprefix("torch.")
    assert got.shape == tuple(want.shape)
    np.testing.assert_array_equal(got.numpy(), want.numpy())


# ---- from data -------------------------------------------------------------------------------

def test_tensor_copies_its_data() -> None:
    a = np.array([1.0, 2.0])
    t = st.tensor(a)
    a[0] = 99.0
    assert t.tolist() == [1.0, 2.0]
    u = st.tensor(t)  # from a tensor: a detached copy
    t.numpy()[1] = -1.0
    assert u.tolist() == [1.0, 2.0]


def test_tensor_options() -> None:
    t = st.tensor([[1, 2], [3, 4]], dtype=st.float64, device="cpu", requires_grad=True)
    assert t.dtype is st.float64 and t.device == st.device("cpu") and t.requires_grad and t.is_leaf
    assert st.tensor(t, dtype="float32").dtype is st.float32
    nested = st.tensor([st.tensor([1.0, 2.0]), st.tensor([3.0, 4.0])])
    assert nested.tolist() == [[1.0, 2.0], [3.0, 4.0]]


def test_as_tensor_shares_memory_when_it_can() -> None:
    a = np.array([1.0, 2.0], np.float32)
    t = st.as_tensor(a)
    a[0] = 7.0
    assert t.tolist() == [7.0, 2.0]
    c = st.as_tensor(a, dtype=st.float64)  # a dtype change must copy
    a[1] = 9.0
    assert c.tolist() == [7.0, 2.0] and c.dtype is st.float64
    x = st.ones(2)
    assert st.as_tensor(x) is x
    assert st.as_tensor([1, 2]).dtype is st.int64


def test_from_numpy_shares_memory_both_ways() -> None:
    a = np.arange(6, dtype=np.float64).reshape(2, 3)
    t = st.from_numpy(a)
    assert t.dtype is st.float64 and t.shape == (2, 3)
    a[0, 0] = 100.0
    assert t[0, 0].item() == 100.0
    with st.no_grad():
        t[1, 2] = -5.0
    assert a[1, 2] == -5.0
    with pytest.raises(TypeError, match="numpy.ndarray"):
        st.from_numpy([1, 2])
    with pytest.raises(DTypeError):
        st.from_numpy(np.zeros(2, np.complex64))


# ---- filled --------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["zeros", "ones", "empty"])
def test_filled(name: str) -> None:
    fn = getattr(st, name)
    for args in ((2, 3), ((2, 3),), ([4],), (0, 2), ((),)):
        t = fn(*args)
        want = getattr(torch, name)(*args)
        assert t.shape == tuple(want.shape) and t.dtype is st.float32
        if name != "empty":
            np.testing.assert_array_equal(t.numpy(), want.numpy())
    assert fn(2, dtype=st.int32).dtype is st.int32
    assert fn(2, requires_grad=True).requires_grad
    with pytest.raises(ShapeError, match="non-negative"):
        fn(-1)


def test_full_infers_its_dtype_like_torch() -> None:
    for value in (7, 7.5, True, -2):
        _same(st.full((2, 3), value), torch.full((2, 3), value))
    _same(st.full((2,), 3, dtype=st.float64), torch.full((2,), 3, dtype=torch.float64))


@pytest.mark.parametrize("args", [(5,), (2, 7), (1, 10, 3), (10, 1, -2), (0.0, 1.0, 0.25), (3.0,), (-1, 1, 0.5),
                                  (0,)])
def test_arange_matches_torch(args: tuple) -> None:
    _same(st.arange(*args), torch.arange(*args))
    _same(st.arange(*args, dtype=st.float64), torch.arange(*args, dtype=torch.float64))


def test_arange_rejects_a_zero_step() -> None:
    with pytest.raises(ValueError, match="step"):
        st.arange(0, 5, 0)


@pytest.mark.parametrize("args", [(0.0, 1.0, 5), (-2.0, 3.0, 1), (1.0, 1.0, 3), (0.0, 10.0, 0), (5.0, -5.0, 11)])
def test_linspace_matches_torch(args: tuple) -> None:
    got, want = st.linspace(*args), torch.linspace(*args)
    assert got.dtype is st.float32 and got.shape == tuple(want.shape)
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("args", [(3,), (2, 4), (4, 2), (0,)])
def test_eye_matches_torch(args: tuple) -> None:
    _same(st.eye(*args), torch.eye(*args))
    assert st.eye(2, dtype=st.int64).dtype is st.int64


@pytest.mark.parametrize("name", ["zeros_like", "ones_like", "empty_like", "rand_like", "randn_like"])
def test_like_functions(name: str) -> None:
    base = st.ones(2, 3, dtype=st.float64)
    t = getattr(st, name)(base)
    assert t.shape == (2, 3) and t.dtype is st.float64 and t.device == base.device and not t.requires_grad
    assert getattr(st, name)(base, dtype=st.float32).dtype is st.float32
    assert getattr(st, name)(base, requires_grad=True).requires_grad
    full = st.full_like(base, 2.5)
    assert full.tolist() == [[2.5] * 3] * 2 and full.dtype is st.float64
    ints = st.randint_like(st.zeros(50, dtype=st.int64), 3, 6)
    assert ints.dtype is st.int64 and set(ints.tolist()) <= {3, 4, 5}


# ---- random ----------------------------------------------------------------------------------------

def test_rand_and_randn_shapes_ranges_and_moments() -> None:
    u = st.rand(100_000)
    n = st.randn(200, 500)
    assert u.dtype is st.float32 and u.shape == (100_000,) and n.shape == (200, 500)
    a = u.numpy()
    assert a.min() >= 0.0 and a.max() < 1.0
    assert abs(a.mean() - 0.5) < 0.01 and abs(a.var() - 1 / 12) < 0.005
    b = n.numpy()
    assert abs(b.mean()) < 0.02 and abs(b.std() - 1.0) < 0.02
    assert st.rand(2, 3, dtype=st.float64).dtype is st.float64
    assert st.randn((4,)).shape == (4,)


def test_randint_and_randperm() -> None:
    r = st.randint(3, 7, (1000,))
    assert r.dtype is st.int64 and set(r.tolist()) == {3, 4, 5, 6}
    assert set(st.randint(4, size=(500,)).tolist()) == {0, 1, 2, 3}
    assert st.randint(0, 2, (3,), dtype=st.int32).dtype is st.int32
    with pytest.raises(ValueError, match="greater than low"):
        st.randint(5, 5, (2,))
    p = st.randperm(20)
    assert p.dtype is st.int64 and sorted(p.tolist()) == list(range(20))
    assert st.randperm(0).shape == (0,)


@pytest.mark.parametrize("draw", [
    lambda: st.rand(5), lambda: st.randn(2, 3), lambda: st.randint(0, 100, (6,)), lambda: st.randperm(10),
    lambda: st.rand_like(st.zeros(4)), lambda: st.nn.functional.dropout(st.ones(20), 0.5),
], ids=["rand", "randn", "randint", "randperm", "rand_like", "dropout"])
def test_manual_seed_makes_random_tensors_repeat(draw: Any) -> None:
    st.manual_seed(1234)
    first = [draw().tolist() for _ in range(2)]
    st.manual_seed(1234)
    again = [draw().tolist() for _ in range(2)]
    st.manual_seed(4321)
    other = draw().tolist()
    assert first == again
    assert first[0] != first[1] or len(first[0]) <= 1  # the stream moves on
    assert other != first[0]
    assert st.initial_seed() == 4321


def test_manual_seed_checks_its_argument() -> None:
    with pytest.raises(TypeError, match="integer"):
        st.manual_seed(1.5)
