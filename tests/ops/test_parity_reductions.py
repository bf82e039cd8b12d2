"""PyTorch parity of reductions and matmul: forward, gradients and second derivatives."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from helpers import PARITY_SETTINGS, broadcast_shapes, check_op, lib, shapes, values
from hypothesis import given
from hypothesis import strategies as hst

import spiraltorch_nb as st

DTYPES = ("float32", "float64")
SEEDS = hst.integers(0, 2**32 - 1)


@hst.composite
def shape_and_dim(draw: Any, min_dims: int = 1, max_dims: int = 4, min_side: int = 0, max_side: int = 4,
                  multi: bool = True) -> tuple:
    """A shape and a reduction dim: None, one (maybe negative) axis, or a tuple of axes."""
    shape = draw(shapes(min_dims, max_dims, min_side, max_side))
    nd = len(shape)
    choices = [hst.integers(-nd, nd - 1)] if nd else []
    if multi and nd:
        choices.append(hst.lists(hst.integers(0, nd - 1), min_size=1, max_size=nd, unique=True).map(tuple))
    dim = draw(hst.one_of(hst.none(), *choices)) if choices else None
    return shape, dim


def _kw(dim: Any) -> dict:
    return {} if dim is None else {"dim": dim}


SUMLIKE = {
    "sum": lambda x, dim, keep: x.sum(**_kw(dim), keepdim=keep) if dim is not None else x.sum(),
    "mean": lambda x, dim, keep: x.mean(**_kw(dim), keepdim=keep) if dim is not None else x.mean(),
    "logsumexp": lambda x, dim, keep: x.logsumexp(dim=dim, keepdim=keep),
    "amax": lambda x, dim, keep: x.amax(dim=() if dim is None else dim, keepdim=keep),
    "amin": lambda x, dim, keep: x.amin(dim=() if dim is None else dim, keepdim=keep),
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", sorted(SUMLIKE))
@PARITY_SETTINGS
@given(sd=shape_and_dim(min_dims=0), keep=hst.booleans(), seed=SEEDS)
def test_reduce(name: str, dtype: str, sd: tuple, keep: bool, seed: int) -> None:
    shape, dim = sd
    if name in ("amax", "amin", "logsumexp"):
        if dim is None and name == "logsumexp":
            dim = tuple(range(len(shape)))
        if 0 in shape:
            return  # max/min of nothing raises in both libraries (tested in tests/core)
    if name == "mean" and 0 in shape:
        return  # the mean of nothing is NaN in both, with different warnings; forward-only below
    rng = np.random.default_rng(seed)
    x = values(rng, shape)
    fn = SUMLIKE[name]
    # torch's amax(dim=()) reduces everything, like ours with dim=None
    sfn = (lambda x: fn(x, dim, keep)) if not (name in ("amax", "amin") and dim is None) else (
        lambda x: getattr(x, name)(keepdim=keep))
    check_op(sfn, x, torch_fn=lambda x: fn(x, dim, keep), dtype=dtype, seed=seed, label=f"{name}({dim}, {keep})")


@pytest.mark.filterwarnings("ignore:Mean of empty slice:RuntimeWarning")
@pytest.mark.parametrize("dtype", DTYPES)
def test_sum_of_empty_and_mean_of_empty(dtype: str) -> None:
    x = np.zeros((0, 3))
    check_op(lambda x: x.sum(dim=0), x, dtype=dtype, label="sum_empty")
    check_op(lambda x: x.sum(), x, dtype=dtype, label="sum_all_empty")
    check_op(lambda x: x.logsumexp(0), x, dtype=dtype, label="logsumexp_empty")  # -inf, no warning
    check_op(lambda x: x.logsumexp(1, keepdim=True), x, dtype=dtype, label="logsumexp_empty_rows")
    with np.errstate(all="ignore"):
        check_op(lambda x: x.mean(dim=0), x, dtype=dtype, order=0, label="mean_empty")
        check_op(lambda x: x.mean(), x, dtype=dtype, order=0, label="mean_all_empty")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("fn", ["var", "std"])
@PARITY_SETTINGS
@given(sd=shape_and_dim(min_side=3, max_dims=3), keep=hst.booleans(),
       corr=hst.sampled_from(["default", 0, 1, 2, False, True]),
       seed=SEEDS)
def test_var_std(fn: str, dtype: str, sd: tuple, keep: bool, corr: Any, seed: int) -> None:
    """var/std with every way of giving the correction (sizes >= 3, so n - correction > 0)."""
    shape, dim = sd
    rng = np.random.default_rng(seed)
    x = values(rng, shape)
    kw: dict = {} if dim is None else {"dim": dim, "keepdim": keep}
    if isinstance(corr, bool):
        kw["unbiased"] = corr
        if dim is None:
            kw = {"unbiased": corr}
    elif corr != "default":
        kw["correction"] = corr
    check_op(lambda x: getattr(x, fn)(**kw), x, dtype=dtype, seed=seed, label=f"{fn}({kw})")


@pytest.mark.parametrize("dtype", DTYPES)
@PARITY_SETTINGS
@given(sd=shape_and_dim(min_dims=0, max_side=3), keep=hst.booleans(), seed=SEEDS)
def test_prod(dtype: str, sd: tuple, keep: bool, seed: int) -> None:
    shape, dim = sd
    if isinstance(dim, tuple):
        dim = dim[0]  # torch's prod takes one dim
    rng = np.random.default_rng(seed)
    x = values(rng, shape, "nonzero")
    kw = {} if dim is None else {"dim": dim, "keepdim": keep}
    check_op(lambda x: x.prod(**kw), x, dtype=dtype, seed=seed, label=f"prod({kw})")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("zeros", [1, 2])
def test_prod_with_zeros(dtype: str, zeros: int) -> None:
    """prod's gradient where inputs are exactly zero (a formula dividing by x would give NaN)."""
    rng = np.random.default_rng(zeros)
    x = rng.uniform(0.5, 2.0, (3, 4))
    x[0, :zeros] = 0.0
    x[2, 1:1 + zeros] = 0.0
    # with two or more zeros in a slice our second derivative is 0 where torch's is exact:
    # a known limitation, so only first derivatives are compared there
    order = 2 if zeros == 1 else 1
    check_op(lambda x: x.prod(dim=1), x, dtype=dtype, order=order, label="prod_dim_zeros")
    check_op(lambda x: x.prod(), x.reshape(-1)[:6], dtype=dtype, order=order, label="prod_all_zeros")


MINMAX = ("max", "min")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", MINMAX)
@PARITY_SETTINGS
@given(sd=shape_and_dim(min_dims=1, min_side=1, multi=False), keep=hst.booleans(), seed=SEEDS)
def test_max_min(name: str, dtype: str, sd: tuple, keep: bool, seed: int) -> None:
    """max()/min() of everything, and (values, indices) along a dim (continuous data: no ties)."""
    shape, dim = sd
    rng = np.random.default_rng(seed)
    x = values(rng, shape)
    if dim is None:
        check_op(lambda x: getattr(x, name)(), x, dtype=dtype, seed=seed, label=name)
        check_op(lambda x: getattr(lib(x), name)(x), x, dtype=dtype, seed=seed, label=f"st.{name}")
        return

    def fn(x: Any) -> Any:
        out = getattr(x, name)(dim, keepdim=keep)
        assert out.values is out[0] and out.indices is out[1]
        return out.values, out.indices

    check_op(fn, x, dtype=dtype, seed=seed, label=f"{name}(dim={dim}, keepdim={keep})")


@pytest.mark.parametrize("name", ["argmax", "argmin"])
@PARITY_SETTINGS
@given(sd=shape_and_dim(min_dims=0, min_side=1, multi=False), keep=hst.booleans(), seed=SEEDS)
def test_argmax_argmin(name: str, sd: tuple, keep: bool, seed: int) -> None:
    shape, dim = sd
    rng = np.random.default_rng(seed)
    # with ties, both libraries return the first index
    x = np.asarray(rng.integers(0, 3, shape), dtype=np.float64)
    kw = {} if dim is None else {"dim": dim, "keepdim": keep}
    check_op(lambda x: getattr(x, name)(**kw), x, order=0, label=f"{name}({kw})")
    check_op(lambda x: getattr(lib(x), name)(x, **kw), x, order=0, label=f"st.{name}({kw})")


def test_amax_ties_split_evenly_like_torch() -> None:
    x = np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0]])
    check_op(lambda x: x.amax(dim=1), x, dtype="float64", label="amax_ties")
    check_op(lambda x: x.amin(dim=0), x, dtype="float64", label="amin_ties")


def test_max_dim_ties_give_the_gradient_to_the_returned_index() -> None:
    """As in torch: ``max(dim)`` sends a tie's gradient to the index it returns (the first
    maximum); ``amax`` splits it evenly among the tied entries (see above)."""
    x = st.tensor([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0]], requires_grad=True)
    values_, indices = x.max(dim=1)
    values_.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    assert indices.tolist() == [1, 0]


@pytest.mark.parametrize("dtype", DTYPES)
@PARITY_SETTINGS
@given(sd=shape_and_dim(min_dims=1, multi=False), seed=SEEDS)
def test_cumsum(dtype: str, sd: tuple, seed: int) -> None:
    shape, dim = sd
    dim = 0 if dim is None else dim
    rng = np.random.default_rng(seed)
    x = values(rng, shape)
    check_op(lambda x: x.cumsum(dim) * x, x, dtype=dtype, seed=seed, label=f"cumsum({dim})")
    check_op(lambda x: lib(x).cumsum(x, dim=dim), x, dtype=dtype, seed=seed, label=f"st.cumsum({dim})")


def test_integer_reductions() -> None:
    """Integer sums/prods/cumsums are int64, as in torch; max keeps the dtype; mean needs a float."""
    x = np.arange(-3, 9).reshape(3, 4)
    for fn in (lambda x: x.sum(), lambda x: x.sum(dim=1), lambda x: x.prod(dim=0), lambda x: x.cumsum(1),
               lambda x: x.amax(dim=0), lambda x: x.max(), lambda x: x.argmax(dim=1)):
        check_op(fn, x, order=0, label="int_reduce")
        check_op(fn, x.astype(np.int32), order=0, label="int32_reduce")
    check_op(lambda x: (x > 0).sum(), x, order=0, label="bool_sum")


# ---- matmul -----------------------------------------------------------------------------

@hst.composite
def matmul_shapes(draw: Any) -> tuple:
    """Shapes for matmul: 1-D cases, batched with broadcasting, zero sizes."""
    n, k, m = draw(hst.integers(0, 4)), draw(hst.integers(0, 4)), draw(hst.integers(0, 4))
    kind = draw(hst.sampled_from(["vv", "vm", "mv", "mm", "batched"]))
    if kind == "vv":
        return (k,), (k,)
    if kind == "vm":
        batch = draw(shapes(0, 2, 1, 3))
        return (k,), (*batch, k, m)
    if kind == "mv":
        batch = draw(shapes(0, 2, 1, 3))
        return (*batch, n, k), (k,)
    if kind == "mm":
        return (n, k), (k, m)
    ba, bb = draw(broadcast_shapes(2, min_dims=0, max_dims=2, min_side=1, max_side=3))
    return (*ba, n, k), (*bb, k, m)


@pytest.mark.parametrize("dtype", DTYPES)
@PARITY_SETTINGS
@given(ab=matmul_shapes(), seed=SEEDS)
def test_matmul(dtype: str, ab: tuple, seed: int) -> None:
    rng = np.random.default_rng(seed)
    a = values(rng, ab[0])
    b = values(rng, ab[1])
    check_op(lambda a, b: a @ b, a, b, dtype=dtype, seed=seed, label=f"matmul {ab}")
    check_op(lambda a, b: lib(a).matmul(a, b), a, b, dtype=dtype, seed=seed, label=f"st.matmul {ab}")
    check_op(lambda a, b: a.matmul(b).tanh(), a, b, dtype=dtype, seed=seed, label=f"matmul_tanh {ab}")


def test_rmatmul_with_a_nested_list() -> None:
    a = np.array([[1.0, 2.0], [3.0, 4.0]])
    check_op(lambda a: [[1.0, -1.0]] @ a, a, torch_fn=lambda a: a.new_tensor([[1.0, -1.0]]) @ a, dtype="float32",
             label="rmatmul")
    check_op(lambda a: a @ [[0.5], [2.0]], a, torch_fn=lambda a: a @ a.new_tensor([[0.5], [2.0]]), dtype="float64",
             label="matmul_list")
