"""Every wgpu kernel against the cpu kernel of the same name, on small random inputs.

The kernels are called directly (native arrays in, native arrays out) so each row checks
one kernel: broadcasting, non-contiguous views, empty tensors, integer and bool
dtypes, and special values (zeros, infinities, NaN). Forward and backward through the
Tensor API are checked on composite functions at the end. The cross-backend
conformance suite (tests/conformance) covers the public ops more broadly.
"""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import spiraltorch_nb as st
from spiraltorch_nb.backends import get_backend, probe

_INFO = probe("wgpu")
if not _INFO["available"]:
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"wgpu must be available in CI but is not: {_INFO['reason']}", pytrace=False)
    pytest.skip(f"wgpu unavailable: {_INFO['reason']}", allow_module_level=True)

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from helpers import check_op  # noqa: E402

CPU = get_backend("cpu")
WG = get_backend("wgpu")
KC = CPU.kernels()
KW = WG.kernels()

SPECIAL = np.array([0.0, -0.0, 1e-8, -1e-8, 0.5, -0.5, 1.5, 2.5, -2.5, 10.0, -10.0, 88.0, -100.0, np.inf, -np.inf,
                    np.nan, 3.14159, 1e-3], np.float32)


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def f32(*shape: int, seed: int = 0) -> np.ndarray:
    return np.asarray(_rng(seed).standard_normal(shape), np.float32)


def i32(*shape: int, seed: int = 0) -> np.ndarray:
    return np.asarray(_rng(seed).integers(-5, 6, shape), np.int32)


def bools(*shape: int, seed: int = 0) -> np.ndarray:
    return np.asarray(_rng(seed).random(shape) < 0.5)


def up(a: Any) -> Any:
    return WG.from_numpy(np.asarray(a)) if isinstance(a, np.ndarray | np.bool_ | np.number) else a


def transposed(a: np.ndarray) -> tuple[np.ndarray, Any]:
    """The same values as a non-contiguous (transposed) view, on both sides."""
    from spiraltorch_nb.backends.wgpu.layout import permute

    t = np.ascontiguousarray(a.T)
    return t.T, permute(up(t), tuple(reversed(range(a.ndim))))


def assert_same(got: np.ndarray, want: np.ndarray, what: str, rtol: float = 1e-4, atol: float = 1e-5) -> None:
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}"
    if want.dtype.kind in "biu":
        assert got.dtype.kind == want.dtype.kind or {got.dtype.kind, want.dtype.kind} <= {"i", "u"}, what
        np.testing.assert_array_equal(got.astype(np.int64), want.astype(np.int64), err_msg=what)
    else:
        np.testing.assert_allclose(got, want, rtol=rtol, atol=atol, equal_nan=True, err_msg=what)


def run(name: str, *args: Any, wargs: tuple | None = None, rtol: float = 1e-4, atol: float = 1e-5,
        **attrs: Any) -> None:
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # NumPy's "mean of empty slice"
        want = KC[name](*args, **attrs)
    got = KW[name](*(wargs if wargs is not None else [up(a) for a in args]), **attrs)
    assert_same(WG.to_numpy(got), want, f"{name}{tuple(getattr(a, 'shape', a) for a in args)} {attrs}", rtol, atol)


UNARY = ["neg", "abs", "sign", "exp", "log", "log1p", "expm1", "sqrt", "rsqrt", "sin", "cos", "tanh", "floor", "ceil",
         "round", "logical_not", "erf", "sigmoid", "relu", "silu"]


@pytest.mark.parametrize("name", UNARY)
def test_unary(name: str) -> None:
    run(name, f32(3, 4))
    run(name, SPECIAL)
    run(name, f32(0, 3))
    run(name, f32(4, 6) * 20)
    a, wa = transposed(f32(3, 5))
    run(name, a, wargs=(wa,))
    if name in ("neg", "abs", "sign", "floor", "relu", "logical_not"):
        run(name, i32(7))


@pytest.mark.parametrize("name,attrs", [
    ("leaky_relu", {"negative_slope": 0.2}), ("gelu", {}), ("gelu", {"approximate": "tanh"}), ("softplus", {}),
    ("softplus", {"beta": 2.0, "threshold": 3.0}), ("clamp", {"min": -0.5}), ("clamp", {"min": -0.5, "max": 0.5}),
])
def test_unary_with_attributes(name: str, attrs: dict) -> None:
    run(name, f32(4, 5), **attrs)
    run(name, SPECIAL, **attrs)


BINARY = ["add", "sub", "mul", "div", "floordiv", "remainder", "pow", "maximum", "minimum", "eq", "ne", "lt", "le",
          "gt", "ge", "logical_and", "logical_or", "logical_xor", "atan2", "relu_grad"]


@pytest.mark.parametrize("name", BINARY)
def test_binary(name: str) -> None:
    for sa, sb in (((3, 4), (3, 4)), ((3, 1), (1, 4)), ((4,), (2, 3, 4)), ((), (3,)), ((0, 3), (1, 3))):
        a, b = f32(*sa, seed=1), f32(*sb, seed=2)
        if name == "pow":
            a = np.abs(a) + 0.1
        run(name, a, b)
    run(name, SPECIAL[:, None], SPECIAL[None, :])
    for s in (2.0, -1.5, 3):
        run(name, f32(3, 4), s)
        if name != "relu_grad":
            run(name, s, f32(3, 4))
    a, wa = transposed(f32(3, 4, seed=3))
    b, wb = transposed(f32(3, 4, seed=4))
    run(name, a, b, wargs=(wa, wb))
    if name not in ("div", "atan2"):
        b = np.abs(i32(4, 5, seed=5)) if name == "pow" else i32(4, 5, seed=5)
        run(name, i32(4, 5), b)
        run(name, i32(4, 5), 3)
    if name not in ("sub", "div", "floordiv", "remainder", "pow", "atan2"):
        run(name, bools(6, seed=1), bools(6, seed=2))


def test_where_cast_clone() -> None:
    run("where", bools(3, 4), f32(3, 4, seed=1), f32(3, 4, seed=2))
    run("where", bools(3, 1), f32(1, 4), 0.5)
    run("where", bools(4), 1.0, f32(4))
    run("where", np.array([0.0, np.nan, 2.0], np.float32), f32(3), f32(3, seed=1))  # NaN is true
    for dt in (st.float32, st.int32, st.uint32, st.bool_):
        for a in (f32(3, 4) * 10, i32(3, 4), bools(3, 4), SPECIAL[np.isfinite(SPECIAL)]):
            run("cast", a, dtype=dt)
    run("clone", f32(2, 3))


@pytest.mark.parametrize("name", ["sum", "mean", "prod", "amax", "amin", "argmax", "argmin"])
def test_reductions(name: str) -> None:
    for shape in ((3, 4), (2, 3, 4), (5,), (), (0, 3), (5, 300), (300, 5)):
        a = f32(*shape) if name != "prod" else f32(*shape) * 0.3 + 1.0
        dims: list[Any] = [None, 0, -1, (0, -1)] if len(shape) >= 2 else ([None, 0] if shape else [None])
        if name in ("argmax", "argmin"):
            dims = [d for d in dims if not isinstance(d, tuple)]
        for d in dims:
            for keep in (False, True):
                axes = range(len(shape)) if d is None else (d if isinstance(d, tuple) else (d,))
                if name in ("amax", "amin", "argmax", "argmin") and any(shape[a] == 0 for a in axes):
                    with pytest.raises(ValueError, match="empty"):
                        KW[name](up(a), dim=d, keepdim=keep)
                    continue
                run(name, a, dim=d, keepdim=keep, atol=1e-4)
    a, wa = transposed(f32(4, 6))
    run(name, a, wargs=(wa,), dim=1)
    if name != "mean":
        run(name, i32(3, 4), dim=1)
        run(name, bools(3, 4), dim=None)
    if name in ("amax", "argmax", "argmin"):
        run(name, np.array([1.0, np.nan, 3.0, np.nan], np.float32))


def test_cumsum_softmax_cross_entropy() -> None:
    for shape, d in (((3, 4), 0), ((3, 4), 1), ((2, 3, 4), -1), ((5,), 0), ((0, 3), 1)):
        run("cumsum", f32(*shape), dim=d)
        run("cumsum", i32(*shape), dim=d)
        run("softmax", f32(*shape) * 5, dim=d)
        run("log_softmax", f32(*shape) * 5, dim=d)
    run("softmax", f32(3, 1000), dim=1)
    run("softmax", np.array([[0, -np.inf, 1], [5, 5, -np.inf]], np.float32), dim=1)
    t = np.asarray(_rng().integers(0, 5, 6), np.int32)
    t[2] = -100
    for reduction in ("mean", "sum", "none"):
        for smoothing in (0.0, 0.1):
            run("cross_entropy", f32(6, 5), t, reduction=reduction, label_smoothing=smoothing)


def test_matmul_and_linear() -> None:
    for sa, sb in (((3, 4), (4, 5)), ((4,), (4, 5)), ((3, 4), (4,)), ((4,), (4,)), ((2, 3, 4), (4, 5)),
                   ((2, 1, 3, 4), (5, 4, 2)), ((70, 33), (33, 90)), ((3, 0), (0, 4)), ((0, 3), (3, 2))):
        run("matmul", f32(*sa), f32(*sb, seed=1), atol=1e-4)
    a, wa = transposed(f32(3, 4))
    b, wb = transposed(f32(4, 5, seed=1))
    run("matmul", a, b, wargs=(wa, wb))
    run("matmul", i32(3, 4), i32(4, 2, seed=1))
    run("matmul", bools(3, 4), bools(4, 2, seed=1))
    with pytest.raises(ValueError, match="mismatch"):
        KW["matmul"](up(f32(3, 4)), up(f32(5, 2)))
    run("linear", f32(3, 4), f32(5, 4, seed=1), f32(5, seed=2))
    run("linear", f32(2, 3, 4), f32(5, 4, seed=1))


@pytest.mark.parametrize("needs", [(True, True, True), (False, True, True), (True, False, False), (False, False, True)])
@pytest.mark.parametrize("shape", [(3, 4), (2, 3, 4), (0, 4)])
def test_linear_backward(shape: tuple, needs: tuple) -> None:
    g, x, w = f32(*shape[:-1], 5), f32(*shape, seed=1), f32(5, 4, seed=2)
    want = KC["linear_backward"](g, x, w, needs=needs)
    got = KW["linear_backward"](up(g), up(x), up(w), needs=needs)
    for name, a, b in zip(("dx", "dweight", "dbias"), got, want, strict=True):
        assert (a is None) == (b is None), name
        if a is not None:
            assert_same(WG.to_numpy(a), b, f"linear_backward {name} {shape} {needs}", 1e-4, 1e-5)


@pytest.mark.parametrize("needs", [(True, True), (True, False), (False, True)])
@pytest.mark.parametrize(("m", "k", "n"), [(3, 4, 5), (0, 4, 5), (3, 0, 5)])
def test_matmul_backward(m: int, k: int, n: int, needs: tuple) -> None:
    g, a, b = f32(m, n), f32(m, k, seed=1), f32(k, n, seed=2)
    want = KC["matmul_backward"](g, a, b, needs=needs)
    got = KW["matmul_backward"](up(g), up(a), up(b), needs=needs)
    for name, x, y in zip(("da", "db"), got, want, strict=True):
        assert (x is None) == (y is None), name
        if x is not None:
            assert_same(WG.to_numpy(x), y, f"matmul_backward {name} {(m, k, n)} {needs}", 1e-4, 1e-5)
    with pytest.raises(ValueError, match="2-d"):
        KW["matmul_backward"](up(f32(2, 3, 4)), up(f32(2, 3, 5)), up(f32(5, 4)))


@pytest.mark.parametrize("tiled", [True, False], ids=["workgroup-tiled", "registers-only"])
def test_both_matmul_kernels(tiled: bool) -> None:
    # the tiled kernel (workgroup memory) runs on GPUs, the register-only one on CPU
    # adapters; both are checked here whatever the adapter is
    saved = WG.rt.cpu_adapter
    WG.rt.cpu_adapter = not tiled
    try:
        for sa, sb in (((70, 33), (33, 90)), ((3, 130, 17), (17, 5)), ((2, 1, 64, 64), (3, 64, 64)), ((1, 5), (5, 1))):
            run("matmul", f32(*sa), f32(*sb, seed=1), atol=1e-4)
        a, wa = transposed(f32(40, 20))
        b, wb = transposed(f32(20, 70, seed=1))
        run("matmul", a, b, wargs=(wa, wb), atol=1e-4)
        run("matmul", i32(33, 20), i32(20, 40, seed=1))
    finally:
        WG.rt.cpu_adapter = saved


def test_layout() -> None:
    run("reshape", f32(3, 4), shape=(2, 6))
    for shape in ((12,), (2, 2, 3), (4, 3)):
        a, wa = transposed(f32(3, 4))
        run("reshape", a, wargs=(wa,), shape=shape)
    run("permute", f32(2, 3, 4), dims=(2, 0, 1))
    run("expand", f32(3, 1), shape=(2, 3, 4))
    run("flip", f32(3, 4), dims=(0,))
    run("flip", f32(2, 3, 4), dims=(0, 2))
    run("cat", f32(2, 3), f32(4, 3, seed=1), dim=0)
    run("cat", f32(2, 3), f32(2, 1, seed=1), dim=1)
    run("cat", f32(2, 3), i32(2, 3), dim=0)
    run("pad", f32(2, 3, 4), pad=(1, 2))
    run("pad", f32(2, 3, 4), pad=(1, -1, -1, 2), value=5.0)
    run("pad", i32(3, 3), pad=(1, 1, 1, 1))


_X = f32(4, 5, 6)
_I1 = np.array([0, 2, -1])
_I2 = np.array([[1, 0], [3, 3]])
_MASK = bools(4, 5)
KEYS = [(1,), (slice(1, 3),), (slice(None, None, -1),), (Ellipsis, 2), (None, 1, slice(None), None), (_I1,),
        (slice(None), _I1), (_I1, _I1), (_I2, slice(None), 1), (slice(None), _I2, _I2), (1, _I1),
        (_I1, slice(None), _I1), (_MASK,), (_I1, None, _I1), (Ellipsis, _I1), (_MASK, 2),
        (-1, slice(None, None, 2), _I1), (np.array([True, False, True, True]),)]


def _wkey(key: tuple) -> tuple:
    return tuple(up(k.astype(np.int32) if k.dtype.kind == "i" else k) if isinstance(k, np.ndarray) else k for k in key)


@pytest.mark.parametrize("key", KEYS, ids=[str(i) for i in range(len(KEYS))])
def test_getitem_and_its_gradient_and_index_put(key: tuple) -> None:
    want = KC["getitem"](_X, key)
    assert_same(WG.to_numpy(KW["getitem"](up(_X), key=_wkey(key))), want, f"getitem {key}")
    g = f32(*want.shape, seed=3)
    assert_same(WG.to_numpy(KW["getitem_grad"](up(g), key=_wkey(key), shape=_X.shape)),
                KC["getitem_grad"](g, key, _X.shape), f"getitem_grad {key}")
    for accumulate in (False, True):
        for v in (g, 2.5, g[..., :1]):
            assert_same(WG.to_numpy(KW["index_put"](up(_X), up(v), key=_wkey(key), accumulate=accumulate)),
                        KC["index_put"](_X, v, key, accumulate=accumulate), f"index_put {key} {accumulate}")


def test_repeated_indices_accumulate_in_order() -> None:
    g = f32(6, 3)
    key = (np.array([1, 1, 0, 1, 3, 0]),)
    assert_same(WG.to_numpy(KW["getitem_grad"](up(g), key=_wkey(key), shape=(4, 3))),
                KC["getitem_grad"](g, key, (4, 3)), "scatter-add", rtol=0, atol=0)


def test_gather_and_gather_grad() -> None:
    for xs, ix, d in (((4, 5), (4, 2), 1), ((4, 5), (3, 5), 0), ((2, 3, 4), (2, 3, 6), 2), ((4, 5), (2, 3), 1)):
        a = f32(*xs)
        idx = np.asarray(_rng(1).integers(-xs[d], xs[d], ix), np.int32)
        run("gather", a, idx, dim=d)
        run("gather_grad", f32(*ix, seed=2), idx, dim=d, shape=xs)


@pytest.mark.parametrize("args", [((2, 3, 5, 6), (2, 2), (1, 1), (0, 0), (1, 1)),
                                  ((1, 2, 7, 7), (3, 3), (1, 1), (1, 1), (2, 2)),
                                  ((2, 1, 8, 8), (3, 2), (2, 1), (2, 1), (1, 3))])
def test_unfold_fold(args: tuple) -> None:
    shape, k, d, p, s = args
    run("unfold", f32(*shape), kernel_size=k, dilation=d, padding=p, stride=s)
    run("unfold", f32(*shape), kernel_size=k, dilation=d, padding=p, stride=s, fill=-np.inf)
    cols = KC["unfold"](f32(*shape), k, d, p, s)
    run("fold", f32(*cols.shape, seed=1), output_size=shape[2:], kernel_size=k, dilation=d, padding=p, stride=s)


@pytest.mark.parametrize("name", ["add_", "sub_", "mul_", "div_"])
def test_native_in_place_kernels(name: str) -> None:
    a, b = f32(3, 4), f32(4, seed=1)
    target = up(a)
    assert KW[name](target, up(b)) is target
    assert_same(WG.to_numpy(target), KC[name](a.copy(), b), name)
    target = up(a)
    KW[name](target, 2.0)
    assert_same(WG.to_numpy(target), KC[name](a.copy(), np.float32(2.0)), name)
    t_np, t_view = transposed(a.copy())
    KW[name](t_view, up(f32(3, 4, seed=2)))
    assert_same(WG.to_numpy(t_view), KC[name](t_np.copy(), f32(3, 4, seed=2)), name + " view")


@pytest.mark.parametrize("name,n_in,attrs", [
    ("axpy_", 1, {"alpha": -0.1}), ("axpy_", 1, {}), ("lerp_", 1, {"weight": 0.1}), ("lerp_", 1, {"weight": 0.9}),
    ("addcmul_", 2, {"value": 0.3}), ("addcdiv_", 2, {"value": -0.3}), ("maximum_", 1, {}),
])
def test_optimizer_update_kernels(name: str, n_in: int, attrs: dict) -> None:
    x = f32(3, 4)
    others = [f32(3, 4, seed=1), np.abs(f32(4, seed=2)) + 0.1][:n_in]
    if name == "maximum_":
        others = [np.array([np.nan, 1.0, -2.0, 3.0], np.float32)]
    want = KC[name](x.copy(), *others, **attrs)
    target = up(x)
    assert KW[name](target, *[up(o) for o in others], **attrs) is target  # written in place
    assert_same(WG.to_numpy(target), want, name, rtol=1e-6, atol=1e-7)
    t_np, t_view = transposed(x.copy())
    KW[name](t_view, *[up(o) for o in others], **attrs)
    assert_same(WG.to_numpy(t_view), KC[name](t_np.copy(), *others, **attrs), name + " view", rtol=1e-6, atol=1e-7)


def test_optimizers_step_like_on_cpu() -> None:
    results = {}
    for device in ("cpu", "wgpu"):
        w = st.tensor(np.linspace(-1, 1, 12, dtype=np.float32).reshape(3, 4), device=device, requires_grad=True)
        opts = [st.optim.SGD([w], lr=0.1, momentum=0.9), st.optim.Adam([w], lr=0.05, amsgrad=True)]
        for opt in opts:
            for _ in range(3):
                opt.zero_grad()
                ((w * w).sum() + w.sin().sum()).backward()
                opt.step()
        results[device] = w.numpy()
    assert_same(results["wgpu"], results["cpu"], "SGD + Adam steps", rtol=1e-5, atol=1e-6)


# ---- forward and backward through the Tensor API ----------------------------------------------
F = st.nn.functional


@pytest.mark.parametrize("label,fn,shapes", [
    ("mlp", lambda x, w, b: F.linear(x, w, b).relu().sum(1).tanh(), [(5, 4), (3, 4), (3,)]),
    ("softmax", lambda x: x.softmax(-1) * x.log_softmax(0), [(3, 5)]),
    ("layer_norm", lambda x, w: F.layer_norm(x, (4,), weight=w), [(3, 4), (4,)]),
    ("conv2d", lambda x, w: F.conv2d(x, w, padding=1, stride=2), [(2, 3, 6, 6), (4, 3, 3, 3)]),
    ("pools", lambda x: F.max_pool2d(x, 2) + F.avg_pool2d(x, 2), [(1, 2, 4, 6)]),
    ("attention", lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True), [(2, 3, 4)] * 3),
    ("indexing", lambda x: x[1:, ::2].exp() * x[[0, 2, 0]].sum(0, keepdim=True)[:, :3], [(4, 6)]),
    ("cumsum_prod", lambda x: x.cumsum(1) * x.prod(0), [(3, 4)]),
    ("var_norm", lambda x: x.var(0) + x.norm(dim=1).sum(), [(5, 3)]),
])
def test_forward_and_gradients_match_cpu(label: str, fn: Any, shapes: list) -> None:
    rng = _rng(7)
    inputs = [rng.uniform(0.5, 1.5, s) * rng.choice([-1.0, 1.0], s) for s in shapes]
    check_op(fn, *inputs, against="cpu", device="wgpu", order=2, label=label)


@pytest.mark.parametrize("order", [1, 2], ids=["fused-first-order", "recorded-second-order"])
def test_fused_kernels_match_cpu(order: int) -> None:
    # first-order gradients go through the fused *_backward kernels, second-order ones
    # through the recorded formulas: both must agree with the cpu
    from spiraltorch_nb.ops.fused import bias_gelu, layer_norm

    rng = _rng(9)
    x, b = rng.standard_normal((4, 6)), rng.standard_normal(6)
    for approximate in ("none", "tanh"):
        check_op(lambda x, b, a=approximate: bias_gelu(x, b, approximate=a), x, b, against="cpu", device="wgpu",
                 order=order, label=f"bias_gelu {approximate}")
    x3, w, bb = rng.standard_normal((2, 3, 4)), rng.standard_normal(4), rng.standard_normal(4)
    check_op(lambda x, w, b: layer_norm(x, 4, w, b), x3, w, bb, against="cpu", device="wgpu", order=order,
             label="layer_norm")
    check_op(lambda x: layer_norm(x.transpose(0, 1), 2), x3[:, :, :2].copy(), against="cpu", device="wgpu",
             order=order, label="layer_norm of a view, no weight")
    check_op(lambda x: x.softmax(0) * x.log_softmax(1), x, against="cpu", device="wgpu", order=order,
             label="softmax backwards")
    t = np.array([0, 5, 2, -100])
    for reduction in ("mean", "sum", "none"):
        check_op(lambda x, t, r=reduction: F.cross_entropy(x, t, reduction=r, label_smoothing=0.1), x, t,
                 against="cpu", device="wgpu", order=order, label=f"cross_entropy {reduction}")


def test_cross_entropy_and_embedding_gradients_match_cpu() -> None:
    rng = _rng(8)
    logits = rng.standard_normal((6, 5))
    target = np.array([0, 4, 2, 2, -100, 1])
    weight = rng.standard_normal((7, 3))
    idx = np.array([[0, 6, 2], [2, 2, 5]])
    check_op(lambda x, t: F.cross_entropy(x, t, label_smoothing=0.1), logits, target, against="cpu",
             device="wgpu", label="cross_entropy")
    check_op(lambda w, i: F.embedding(i, w).tanh(), weight, idx, against="cpu", device="wgpu", label="embedding")
