"""PyTorch parity of the elementwise ops: forward, gradients and second derivatives.

Each row names an op, the lambda that runs it (the same spelling works for both
libraries unless a ``torch_fn`` is given) and the input domain that keeps it away from
kinks and poles, where finite precision makes any two libraries disagree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from helpers import PARITY_SETTINGS, F, broadcast_shapes, check_op, lib, shapes, values
from hypothesis import given
from hypothesis import strategies as hst

import spiraltorch_nb as st

DTYPES = ("float32", "float64")
SEEDS = hst.integers(0, 2**32 - 1)


@dataclass(frozen=True)
class Case:
    name: str
    fn: Any
    domain: str = "real"
    order: int = 2
    torch_fn: Any = None
    domain2: str | None = None  # the second input's domain, when it differs

    def __str__(self) -> str:
        return self.name


def _ids(case: Case) -> str:
    return case.name


UNARY = [
    Case("abs", lambda x: abs(x), "nonzero"),
    Case("abs_method", lambda x: x.abs(), "nonzero"),
    Case("neg", lambda x: -x),
    Case("neg_method", lambda x: x.neg()),
    Case("pos", lambda x: +x),
    Case("sign", lambda x: x.sign(), "nonzero"),
    Case("exp", lambda x: x.exp()),
    Case("log", lambda x: x.log(), "positive"),
    Case("log1p", lambda x: x.log1p(), "unit"),
    Case("expm1", lambda x: x.expm1()),
    Case("sqrt", lambda x: x.sqrt(), "positive"),
    Case("rsqrt", lambda x: x.rsqrt(), "positive"),
    Case("sin", lambda x: x.sin(), "wide"),
    Case("cos", lambda x: x.cos(), "wide"),
    Case("tanh", lambda x: x.tanh(), "wide"),
    Case("sigmoid", lambda x: x.sigmoid(), "wide"),
    Case("erf", lambda x: x.erf()),
    Case("relu", lambda x: x.relu(), "nonzero"),
    Case("F.relu", lambda x: F(x).relu(x), "nonzero"),
    Case("leaky_relu", lambda x: F(x).leaky_relu(x), "nonzero"),
    Case("leaky_relu_0.2", lambda x: F(x).leaky_relu(x, 0.2), "nonzero"),
    Case("gelu", lambda x: F(x).gelu(x), "wide"),
    Case("gelu_tanh", lambda x: F(x).gelu(x, approximate="tanh"), "wide"),
    Case("silu", lambda x: F(x).silu(x), "wide"),
    Case("softplus", lambda x: F(x).softplus(x), "wide"),
    Case("softplus_beta", lambda x: F(x).softplus(x, beta=2.0, threshold=3.0), "wide"),
    Case("F.sigmoid", lambda x: F(x).sigmoid(x), "wide"),
    Case("F.tanh", lambda x: F(x).tanh(x), "wide"),
    Case("clamp", lambda x: x.clamp(-0.5, 0.7), "wide"),
    Case("clamp_min", lambda x: x.clamp(min=-0.3), "wide"),
    Case("clamp_max", lambda x: x.clamp(max=0.4), "wide"),
    Case("clip", lambda x: lib(x).clip(x, -1.0, 1.0), "wide"),
    Case("square", lambda x: x.square()),
    Case("reciprocal", lambda x: x.reciprocal(), "nonzero"),
    Case("pow_2", lambda x: x ** 2),
    Case("pow_3", lambda x: x ** 3),
    Case("pow_0", lambda x: x ** 0),
    Case("pow_half", lambda x: x ** 0.5, "positive"),
    Case("pow_neg1", lambda x: x ** -1, "nonzero"),
    Case("pow_neg_float", lambda x: x ** -1.5, "positive"),
    Case("add_scalar", lambda x: x + 2.5),
    Case("sub_scalar", lambda x: x - 2),
    Case("mul_scalar", lambda x: x * -3.0),
    Case("div_scalar", lambda x: x / 4.0),
    Case("floordiv_scalar", lambda x: x // 0.7, "wide", order=0),
    Case("mod_scalar", lambda x: x % 0.7, "wide", order=1),
    Case("radd", lambda x: 2.5 + x),
    Case("rsub", lambda x: 1.5 - x),
    Case("rsub_int", lambda x: 3 - x),
    Case("rmul", lambda x: 2 * x),
    Case("rdiv", lambda x: 2.0 / x, "nonzero"),
    Case("rpow", lambda x: 2.0 ** x),
    Case("rpow_e", lambda x: 0.5 ** x),
    Case("rfloordiv", lambda x: 3.0 // x, "nonzero", order=0),
    # torch has no derivative of a scalar % tensor; test_scalar_remainder_gradient checks ours
    Case("rmod", lambda x: 3.0 % x, "nonzero", order=0),
    Case("add_alpha", lambda x: x.add(x, alpha=2.0)),
    Case("sub_alpha", lambda x: x.sub(x * x, alpha=0.5)),
    Case("chain", lambda x: ((x * 2).sin() * x.exp()).tanh() + x.sigmoid() / (1.0 + x * x)),
]

BINARY = [
    Case("add", lambda a, b: a + b),
    Case("sub", lambda a, b: a - b),
    Case("mul", lambda a, b: a * b),
    Case("div", lambda a, b: a / b, domain2="nonzero"),
    Case("floordiv", lambda a, b: a // b, "wide", order=0, domain2="nonzero"),
    Case("remainder", lambda a, b: a % b, "wide", order=1, domain2="nonzero"),
    Case("pow", lambda a, b: a ** b, "positive"),
    Case("maximum", lambda a, b: lib(a).maximum(a, b)),
    Case("minimum", lambda a, b: lib(a).minimum(a, b)),
    Case("max_tensor", lambda a, b: a.max(b), torch_fn=lambda a, b: a.maximum(b)),
    Case("min_tensor", lambda a, b: a.min(b), torch_fn=lambda a, b: a.minimum(b)),
    Case("atan2", lambda a, b: lib(a).atan2(a, b), domain2="nonzero"),
    Case("add_method", lambda a, b: a.add(b)),
    Case("sub_method", lambda a, b: a.sub(b)),
    Case("mul_method", lambda a, b: a.mul(b)),
    Case("div_method", lambda a, b: a.div(b), domain2="nonzero"),
    Case("pow_method", lambda a, b: a.pow(b), "positive"),
    Case("st.add", lambda a, b: lib(a).add(a, b, alpha=3)),
    Case("st.sub", lambda a, b: lib(a).sub(a, b)),
    Case("st.mul", lambda a, b: lib(a).mul(a, b)),
    Case("st.div", lambda a, b: lib(a).div(a, b), domain2="nonzero"),
    Case("st.pow", lambda a, b: lib(a).pow(a, b), "positive"),
    Case("mixed", lambda a, b: (a * b).exp() / (1.0 + b * b) - a.sin() * b),
]

COMPARE = [
    Case("eq", lambda a, b: a == b),
    Case("ne", lambda a, b: a != b),
    Case("lt", lambda a, b: a < b),
    Case("le", lambda a, b: a <= b),
    Case("gt", lambda a, b: a > b),
    Case("ge", lambda a, b: a >= b),
    Case("eq_method", lambda a, b: a.eq(b)),
    Case("lt_method", lambda a, b: a.lt(b)),
    Case("ge_method", lambda a, b: a.ge(b)),
    Case("gt_scalar", lambda a, b: a > 0.0),
    Case("le_scalar", lambda a, b: 1 <= b),
    Case("logical", lambda a, b: ((a > 0) & (b < 1)) | ~(a == b) ^ (b > a)),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", UNARY, ids=_ids)
@PARITY_SETTINGS
@given(shape=shapes(max_dims=3), seed=SEEDS)
def test_unary(case: Case, dtype: str, shape: tuple, seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = values(rng, shape, case.domain)
    check_op(case.fn, x, torch_fn=case.torch_fn, dtype=dtype, order=case.order, seed=seed, label=case.name)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", BINARY, ids=_ids)
@PARITY_SETTINGS
@given(pair=broadcast_shapes(2), seed=SEEDS)
def test_binary_broadcasting(case: Case, dtype: str, pair: tuple, seed: int) -> None:
    rng = np.random.default_rng(seed)
    a = values(rng, pair[0], case.domain)
    b = values(rng, pair[1], case.domain2 or case.domain)
    check_op(case.fn, a, b, torch_fn=case.torch_fn, dtype=dtype, order=case.order, seed=seed, label=case.name)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", COMPARE, ids=_ids)
@PARITY_SETTINGS
@given(pair=broadcast_shapes(2), seed=SEEDS)
def test_comparisons(case: Case, dtype: str, pair: tuple, seed: int) -> None:
    rng = np.random.default_rng(seed)
    # small integers as floats, so that equal values (ties) actually occur
    a = np.asarray(rng.integers(-2, 3, pair[0]), dtype=np.float64)
    b = np.asarray(rng.integers(-2, 3, pair[1]), dtype=np.float64)
    check_op(case.fn, a, b, dtype=dtype, order=0, label=case.name)


INT_ARITH = [
    Case("int_add", lambda a, b: a + b),
    Case("int_sub", lambda a, b: a - b),
    Case("int_mul", lambda a, b: a * b),
    Case("int_truediv", lambda a, b: a / b),
    Case("int_floordiv", lambda a, b: a // b),
    Case("int_mod", lambda a, b: a % b),
    Case("int_pow", lambda a, b: a ** 2),
    Case("int_neg_abs", lambda a, b: abs(-a)),
    Case("int_float_scalar", lambda a, b: a * 1.5),
    Case("int_int_scalar", lambda a, b: 7 - a),
    Case("int_max", lambda a, b: lib(a).maximum(a, b)),
    Case("int_where", lambda a, b: lib(a).where(a > b, a, b)),
    Case("int_sign", lambda a, b: a.sign()),
]


@pytest.mark.parametrize("case", INT_ARITH, ids=_ids)
@PARITY_SETTINGS
@given(pair=broadcast_shapes(2, min_side=1), seed=SEEDS)
def test_integer_arithmetic(case: Case, pair: tuple, seed: int) -> None:
    """int64 arithmetic: values and result dtypes (true division gives float32, as in torch)."""
    rng = np.random.default_rng(seed)
    a = np.asarray(rng.integers(-9, 10, pair[0]))
    b = np.asarray(rng.integers(1, 5, pair[1]) * rng.choice([-1, 1], pair[1]))
    check_op(case.fn, a, b, order=0, label=case.name)


@pytest.mark.parametrize("dtype", DTYPES)
@PARITY_SETTINGS
@given(shapes3=broadcast_shapes(3), seed=SEEDS)
def test_where(dtype: str, shapes3: tuple, seed: int) -> None:
    rng = np.random.default_rng(seed)
    c = np.asarray(rng.random(shapes3[0]) > 0.5)
    a = values(rng, shapes3[1])
    b = values(rng, shapes3[2])
    check_op(lambda c, a, b: lib(a).where(c, a, b), c, a, b, dtype=dtype, seed=seed, label="where")
    check_op(lambda c, a, b: lib(a).where(c, a * a, 0.5), c, a, b, dtype=dtype, seed=seed, label="where_scalar_b")
    check_op(lambda c, a, b: lib(a).where(c, -1.0, b.exp()), c, a, b, dtype=dtype, seed=seed,
             label="where_scalar_a")
    check_op(lambda c, a, b: a.masked_fill(c, 2.0), c, a, b, dtype=dtype, seed=seed, label="masked_fill")
    check_op(lambda c: lib(c).where(c, 1.0, -2.0), c, order=0, label="where_float_scalars")
    check_op(lambda c: lib(c).where(c, 3, -1), c, order=0, label="where_int_scalars")
    check_op(lambda c: lib(c).where(c, True, False), c, order=0, label="where_bool_scalars")


@pytest.mark.parametrize("dtype", DTYPES)
@PARITY_SETTINGS
@given(shapes3=broadcast_shapes(3, min_side=1), seed=SEEDS)
def test_clamp_tensor_bounds(dtype: str, shapes3: tuple, seed: int) -> None:
    rng = np.random.default_rng(seed)
    # torch's clamp does not broadcast x itself: x takes the full broadcast shape
    x = values(rng, np.broadcast_shapes(*shapes3), "wide")
    lo = np.asarray(values(rng, shapes3[1]) - 1.0)
    hi = np.asarray(values(rng, shapes3[2]) + 1.0)
    check_op(lambda x, lo, hi: x.clamp(min=lo, max=hi), x, lo, hi, dtype=dtype, seed=seed, label="clamp_tensor")


INPLACE = [
    Case("iadd", lambda z, y: z.__iadd__(y)),
    Case("isub", lambda z, y: z.__isub__(y)),
    Case("imul", lambda z, y: z.__imul__(y)),
    Case("itruediv", lambda z, y: z.__itruediv__(y), domain2="nonzero"),
    Case("ipow", lambda z, y: z.__ipow__(2.0)),
    Case("add_", lambda z, y: z.add_(y)),
    Case("add_alpha_", lambda z, y: z.add_(y, alpha=-0.5)),
    Case("sub_", lambda z, y: z.sub_(y)),
    Case("mul_", lambda z, y: z.mul_(y)),
    Case("div_", lambda z, y: z.div_(y), domain2="nonzero"),
    Case("clamp_", lambda z, y: z.clamp_(-0.5, 0.5)),
    Case("mul_scalar_", lambda z, y: z.mul_(3.0)),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", INPLACE, ids=_ids)
@PARITY_SETTINGS
@given(shape=shapes(min_dims=1, max_dims=3), seed=SEEDS, keep=hst.lists(hst.booleans(), min_size=3, max_size=3))
def test_inplace_on_intermediate(case: Case, dtype: str, shape: tuple, seed: int, keep: list) -> None:
    """In-place ops on a non-leaf record the right gradients, including into the other operand."""
    rng = np.random.default_rng(seed)
    x = values(rng, shape, "wide")
    # y broadcasts into x: a suffix of x's shape with some sizes set to 1
    y_shape = tuple(s if k else 1 for s, k in zip(shape[-len(keep):], keep, strict=False))
    y = values(rng, y_shape, case.domain2 or "real")

    def fn(x: Any, y: Any) -> Any:
        z = x * 1.5
        out = case.fn(z, y)
        assert out is z  # the same object, changed in place
        return z * x

    check_op(fn, x, y, dtype=dtype, seed=seed, label=case.name)


def test_tie_gradients_of_maximum_split_evenly() -> None:
    """maximum/minimum with equal inputs send half the gradient to each side, as torch does."""
    a = np.array([1.0, 2.0, 3.0])
    b = np.array([1.0, 0.0, 3.0])
    check_op(lambda a, b: lib(a).maximum(a, b), a, b, dtype="float64", label="maximum_ties")
    check_op(lambda a, b: lib(a).minimum(a, b), a, b, dtype="float64", label="minimum_ties")


def test_scalar_remainder_gradient() -> None:
    """d(3 % x)/dx = -floor(3 / x), which torch does not implement; checked by finite differences."""
    import spiraltorch_nb as st

    x = st.tensor([0.7, -1.3, 2.2, 4.0], dtype=st.float64, requires_grad=True)
    assert st.autograd.gradcheck(lambda t: 3.0 % t, (x,))
    (g,) = st.grad((3.0 % x).sum(), x)
    np.testing.assert_allclose(g.numpy(), -np.floor(3.0 / x.detach().numpy()))


@pytest.mark.parametrize("dtype", ["float32", "float64", "int64"])
@pytest.mark.parametrize("shape", [(40,), (3, 16), (2, 3, 33), (5, 15)])  # rows of 16 or more take a vector loop
def test_relu_of_wide_rows_with_nan_and_signed_zero(dtype: str, shape: tuple) -> None:
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(len(shape))
    x = rng.standard_normal(shape) * 3
    if dtype != "int64":
        x.reshape(-1)[:3] = [np.nan, -0.0, 0.0]
    x = x.astype(dtype)
    for _ in range(2):  # the second call reuses the cached row of zeros, which must stay zero
        got = st.tensor(x).relu().numpy()
        np.testing.assert_array_equal(got, torch.relu(torch.tensor(x)).numpy())
        assert got.dtype == x.dtype
