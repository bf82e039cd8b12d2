"""Dtypes: inference as ``torch.tensor`` does it, the promotion table against ``torch.result_type``,
tensor-scalar promotion, and conversions with ``.to(dtype)``."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest

import spiraltorch_nb as st
from spiraltorch_nb.dtypes import ALL_DTYPES, promote_types, result_type
from spiraltorch_nb.errors import DTypeError

torch = pytest.importorskip("torch")

NAMES = [d.name for d in ALL_DTYPES]
# torch refuses to promote uint32 with any other type; those pairs are checked against our own rule below
TORCH_PAIRS = [(a, b) for a, b in itertools.product(NAMES, NAMES) if "uint32" not in (a, b) or a == b]


def _tdt(name: str) -> Any:
    return getattr(torch, name)


def _name(dt: Any) -> str:
    return str(dt).removeprefix("torch.")


@pytest.mark.parametrize("data", [
    [1.0, 2.0], [1, 2], [True, False], [1, 2.5], [True, 2], [[1, 2], [3, 4]], 3.5, 7, True, [],
    np.array([1.0, 2.0]), np.array([1.0], np.float32), np.array([1], np.int32), np.array([1, 2]),
    np.array([True]), np.array(2.0), np.float64(1.5), np.int32(3), np.array([1], np.float16),
], ids=lambda d: f"{type(d).__name__}:{np.asarray(d).dtype}:{np.shape(d)}")
def test_inferred_dtype_matches_torch_tensor(data: Any) -> None:
    """Python floats -> float32, ints -> int64, bools -> bool; NumPy arrays keep their dtype."""
    got = st.tensor(data)
    want = torch.tensor(data)
    assert got.dtype.name == _name(want.dtype)
    assert got.shape == tuple(want.shape)
    np.testing.assert_array_equal(got.numpy(), want.numpy())


@pytest.mark.parametrize("a, b", TORCH_PAIRS)
def test_promotion_table_matches_torch(a: str, b: str) -> None:
    want = _name(torch.promote_types(_tdt(a), _tdt(b)))
    assert promote_types(st.dtypes.get_dtype(a), st.dtypes.get_dtype(b)).name == want
    x, y = st.ones(2, dtype=a), st.ones(2, dtype=b)
    tx, ty = torch.ones(2, dtype=_tdt(a)), torch.ones(2, dtype=_tdt(b))
    assert result_type(x, y).name == _name(torch.result_type(tx, ty))
    # the rule is the one every binary op applies
    assert (x + y).dtype.name == want
    assert (x * y).dtype.name == want
    assert lib_where(x, y).dtype.name == want
    # true division always gives a floating type
    assert (x / y).dtype.name == _name((tx / ty).dtype)


def lib_where(x: Any, y: Any) -> Any:
    return st.where(st.tensor([True, False]), x, y)


def test_uint32_promotion_follows_the_category_rule() -> None:
    """torch cannot promote uint32; ours treats it as a 32-bit integer (with int32 it widens to int64)."""
    u = st.dtypes.uint32
    assert promote_types(u, st.int32) is st.int64
    assert promote_types(u, st.int64) is st.int64
    assert promote_types(u, st.bool_) is u
    for f in (st.float16, st.float32, st.float64):
        assert promote_types(u, f) is f
    assert (st.ones(2, dtype="uint32") + st.ones(2, dtype="int32")).dtype is st.int64


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("scalar", [True, 2, -3, 2.5], ids=["bool", "int", "negint", "float"])
def test_tensor_scalar_promotion_matches_torch(name: str, scalar: Any) -> None:
    """A Python scalar never widens a tensor of its own category (float32 * 2.5 stays float32)."""
    x = st.zeros(2, dtype=name)
    if name == "uint32" and scalar == -3:
        # torch leaves this undefined; our rule: an int scalar never widens an integer tensor
        assert result_type(x, scalar) is st.uint32
        return
    want = _name(torch.result_type(torch.zeros(2, dtype=_tdt(name)), scalar))
    assert result_type(x, scalar).name == want
    assert (x + scalar).dtype.name == want
    assert (scalar * x).dtype.name == want
    if name != "bool":  # bool - bool is an error in both libraries
        assert (x - scalar).dtype.name == want
    if name != "uint32":  # torch has no comparisons for uint32
        t = torch.zeros(2, dtype=_tdt(name))
        assert st.where(x > 0, x, scalar).dtype.name == _name(torch.where(t > 0, t, scalar).dtype)


def test_float_scalar_with_integer_tensor_gives_the_default_float() -> None:
    assert (st.arange(3) * 0.5).dtype is st.float32
    assert (st.arange(3) / 2).dtype is st.float32
    assert (st.tensor([True]) + 1).dtype is st.int64
    assert st.arange(3).float().mean().dtype is st.float32


@pytest.mark.parametrize("src, dst", [(a, b) for a, b in itertools.product(NAMES, NAMES) if "uint32" not in (a, b)])
def test_to_dtype_matches_torch(src: str, dst: str) -> None:
    vals = [-2.7, -1.0, 0.0, 0.4, 1.0, 3.6] if src in ("float16", "float32", "float64") else [-2, -1, 0, 1, 3, 5]
    if src == "bool":
        vals = [True, False, True, True, False, False]
    t = torch.tensor(vals, dtype=_tdt(src))
    x = st.tensor(t.numpy())
    got = x.to(dst)
    want = t.to(_tdt(dst))
    assert got.dtype.name == dst
    np.testing.assert_array_equal(got.numpy(), want.numpy())


def test_to_accepts_names_python_types_and_other_tensors() -> None:
    x = st.tensor([1.5, -2.5])
    assert x.to("float64").dtype is st.float64
    assert x.to(float).dtype is st.float32
    assert x.to(int).dtype is st.int64
    assert x.to(bool).dtype is st.bool_
    assert x.to(dtype=st.float16).dtype is st.float16
    assert x.to(st.zeros(1, dtype=st.int32)).dtype is st.int32
    assert x.to(st.float32) is x  # no change, no copy
    assert x.to(st.float32, copy=True) is not x
    assert x.double().dtype is st.float64 and x.half().dtype is st.float16 and x.long().dtype is st.int64
    assert x.int().dtype is st.int32 and x.bool().dtype is st.bool_ and x.float().dtype is st.float32
    assert x.type_as(st.zeros(1, dtype=st.float64)).dtype is st.float64


def test_dtype_aliases_and_names() -> None:
    assert st.float is st.float32 and st.double is st.float64 and st.half is st.float16
    assert st.long is st.int64 and st.int is st.int32 and st.bool is st.bool_
    assert repr(st.float32) == "spiraltorch_nb.float32"
    assert st.float32.is_floating_point and not st.int64.is_floating_point and st.bool_.is_bool
    assert st.dtypes.get_dtype("double") is st.float64 and st.dtypes.get_dtype(np.int32) is st.int32
    with pytest.raises(DTypeError, match="unsupported dtype"):
        st.dtypes.get_dtype("complex64")


def test_cast_gradient_flows_back_in_the_source_dtype() -> None:
    x = st.tensor([1.0, 2.0], dtype=st.float64, requires_grad=True)
    y = x.to(st.float32) * 3.0
    y.sum().backward()
    assert x.grad.dtype is st.float64
    np.testing.assert_allclose(x.grad.numpy(), [3.0, 3.0])
