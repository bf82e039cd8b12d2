"""PyTorch parity of the neural-network functions (``nn.functional``), forward and derivatives."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from helpers import PARITY_SETTINGS, F, check_op, shapes, values
from hypothesis import assume, given
from hypothesis import strategies as hst

import spiraltorch_nb as st

DTYPES = ("float32", "float64")
SEEDS = hst.integers(0, 2**32 - 1)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
@PARITY_SETTINGS
@given(shape=shapes(1, 4, 0, 4), data=hst.data(), seed=SEEDS)
def test_softmax(name: str, dtype: str, shape: tuple, data: Any, seed: int) -> None:
    nd = len(shape)
    dim = data.draw(hst.integers(-nd, nd - 1))
    x = values(np.random.default_rng(seed), shape, "wide")
    check_op(lambda x: getattr(F(x), name)(x, dim=dim), x, dtype=dtype, seed=seed, label=f"F.{name}({dim})")
    check_op(lambda x: getattr(x, name)(dim), x, dtype=dtype, seed=seed, label=f"x.{name}({dim})")


def test_softmax_of_large_logits_is_stable() -> None:
    x = np.array([[1000.0, 0.0, -1000.0], [-1e4, -1e4, -1e4]])
    check_op(lambda x: F(x).softmax(x, dim=1), x, dtype="float32", label="softmax_large")
    check_op(lambda x: F(x).log_softmax(x, dim=1), x, dtype="float32", label="log_softmax_large")


@hst.composite
def ce_case(draw: Any) -> dict:
    n = draw(hst.integers(1, 4))
    c = draw(hst.integers(1, 5))
    extra = draw(shapes(0, 2, 1, 3))
    return {
        "shape": (n, c, *extra), "one_d": draw(hst.booleans()) and not extra,
        "reduction": draw(hst.sampled_from(["mean", "sum", "none"])),
        "smoothing": draw(hst.sampled_from([0.0, 0.1, 0.35])),
        "ignore": draw(hst.booleans()), "weight": draw(hst.booleans()),
    }


@pytest.mark.parametrize("dtype", DTYPES)
@PARITY_SETTINGS
@given(case=ce_case(), seed=SEEDS)
def test_cross_entropy_class_indices(dtype: str, case: dict, seed: int) -> None:
    """Class-index targets with reductions, label smoothing, ignore_index and class weights."""
    rng = np.random.default_rng(seed)
    shape = case["shape"]
    n, c = shape[:2]
    x = values(rng, shape, "wide")
    target = np.asarray(rng.integers(0, c, (n, *shape[2:])))
    kw: dict = {"reduction": case["reduction"], "label_smoothing": case["smoothing"]}
    if case["ignore"]:
        target.reshape(-1)[0] = -1  # with a single target every one is ignored: NaN loss, zero gradient
        kw["ignore_index"] = -1
    inputs: list = [x, target]
    if case["weight"]:
        inputs.append(rng.uniform(0.5, 2.0, c))
    if case["one_d"]:
        inputs[0] = x[0]
        inputs[1] = np.asarray(target[0])

    def fn(x: Any, t: Any, *w: Any) -> Any:
        return F(x).cross_entropy(x, t, weight=w[0] if w else None, **kw)

    # torch does not differentiate class weights (nondiff=(2,))
    check_op(fn, *inputs, dtype=dtype, seed=seed, nondiff=(2,), label=f"cross_entropy {case}")


@pytest.mark.parametrize("dtype", DTYPES)
@PARITY_SETTINGS
@given(case=ce_case(), seed=SEEDS)
def test_cross_entropy_probabilities(dtype: str, case: dict, seed: int) -> None:
    """Probability targets (soft labels), with label smoothing and class weights."""
    rng = np.random.default_rng(seed)
    shape = case["shape"]
    x = values(rng, shape, "wide")
    p = rng.uniform(0.0, 1.0, shape)
    p = p / p.sum(axis=1, keepdims=True)
    kw: dict = {"reduction": case["reduction"], "label_smoothing": case["smoothing"]}
    inputs: list = [x, p]
    if case["weight"]:
        inputs.append(rng.uniform(0.5, 2.0, shape[1]))
    if case["one_d"]:
        inputs[0], inputs[1] = x[0], p[0]

    def fn(x: Any, p: Any, *w: Any) -> Any:
        return F(x).cross_entropy(x, p, weight=w[0] if w else None, **kw)

    # the target's gradient is checked too (soft labels can be learned)
    check_op(fn, *inputs, dtype=dtype, seed=seed, nondiff=(2,), label=f"cross_entropy_probs {case}")


@pytest.mark.parametrize("dtype", DTYPES)
@PARITY_SETTINGS
@given(case=ce_case(), seed=SEEDS)
def test_nll_loss(dtype: str, case: dict, seed: int) -> None:
    rng = np.random.default_rng(seed)
    shape = case["shape"]
    x = values(rng, shape)
    target = np.asarray(rng.integers(0, shape[1], (shape[0], *shape[2:])))
    red = case["reduction"]
    check_op(lambda x, t: F(x).nll_loss(F(x).log_softmax(x, 1), t, reduction=red), x, target, dtype=dtype,
             seed=seed, label=f"nll_loss({red})")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@PARITY_SETTINGS
@given(shape=shapes(0, 3, 1, 4), seed=SEEDS)
def test_mse_l1_loss(dtype: str, reduction: str, shape: tuple, seed: int) -> None:
    rng = np.random.default_rng(seed)
    a, b = values(rng, shape), values(rng, shape)
    check_op(lambda a, b: F(a).mse_loss(a, b, reduction=reduction), a, b, dtype=dtype, seed=seed, label="mse_loss")
    check_op(lambda a, b: F(a).l1_loss(a, b, reduction=reduction), a, b, dtype=dtype, seed=seed, label="l1_loss")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@PARITY_SETTINGS
@given(shape=shapes(1, 3, 1, 4), weighted=hst.booleans(), pos=hst.booleans(), seed=SEEDS)
def test_binary_cross_entropy_with_logits(dtype: str, reduction: str, shape: tuple, weighted: bool, pos: bool,
                                          seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = values(rng, shape, "wide")
    y = rng.uniform(0.0, 1.0, shape)
    inputs = [x, y, rng.uniform(0.5, 2.0, shape[-1:]), rng.uniform(0.5, 3.0, shape[-1:])]

    def fn(x: Any, y: Any, w: Any, pw: Any) -> Any:
        return F(x).binary_cross_entropy_with_logits(x, y, weight=w if weighted else None, reduction=reduction,
                                                     pos_weight=pw if pos else None)

    # torch differentiates neither the weight nor pos_weight
    check_op(fn, *inputs, dtype=dtype, seed=seed, nondiff=(2, 3), label=f"bce_logits w={weighted} pos={pos}")
    p = 1.0 / (1.0 + np.exp(-x))
    check_op(lambda p, y: F(p).binary_cross_entropy(p, y, reduction=reduction), np.clip(p, 0.05, 0.95), y,
             dtype=dtype, seed=seed, label="bce")


@pytest.mark.parametrize("dtype", DTYPES)
@PARITY_SETTINGS
@given(shape=shapes(1, 4, 1, 4), data=hst.data(), affine=hst.booleans(), seed=SEEDS)
def test_layer_norm(dtype: str, shape: tuple, data: Any, affine: bool, seed: int) -> None:
    k = data.draw(hst.integers(1, len(shape)))
    ns = shape[-k:]
    assume(int(np.prod(ns)) > 1)  # a single element normalizes to 0 with a 1/sqrt(eps) slope
    rng = np.random.default_rng(seed)
    x = values(rng, shape, "wide")
    w, b = values(rng, ns) + 1.0, values(rng, ns)

    def fn(x: Any, w: Any, b: Any) -> Any:
        return F(x).layer_norm(x, ns, w if affine else None, b if affine else None, eps=1e-5)

    # second derivatives through 1/sqrt(var) lose a few float32 digits
    check_op(fn, x, np.asarray(w), b, dtype=dtype, seed=seed, tol_scale=3.0, label=f"layer_norm{ns}")


@hst.composite
def conv_case(draw: Any) -> dict:
    groups = draw(hst.sampled_from([1, 1, 2]))
    cin = groups * draw(hst.integers(1, 2))
    cout = groups * draw(hst.integers(1, 2))
    kh, kw = draw(hst.integers(1, 3)), draw(hst.integers(1, 3))
    stride = draw(hst.sampled_from([1, 2, (1, 2)]))
    padding = draw(hst.sampled_from([0, 1, (1, 0)]))
    dilation = draw(hst.sampled_from([1, 2, (2, 1)]))
    d = dilation if isinstance(dilation, tuple) else (dilation, dilation)
    p = padding if isinstance(padding, tuple) else (padding, padding)
    h = draw(hst.integers(max(1, d[0] * (kh - 1) + 1 - 2 * p[0]), 6))
    w = draw(hst.integers(max(1, d[1] * (kw - 1) + 1 - 2 * p[1]), 6))
    return {"x": (draw(hst.integers(1, 2)), cin, h, w), "w": (cout, cin // groups, kh, kw), "groups": groups,
            "stride": stride, "padding": padding, "dilation": dilation, "bias": draw(hst.booleans())}


@pytest.mark.parametrize("dtype", DTYPES)
@PARITY_SETTINGS
@given(case=conv_case(), seed=SEEDS)
def test_conv2d(dtype: str, case: dict, seed: int) -> None:
    rng = np.random.default_rng(seed)
    x, w, b = values(rng, case["x"]), values(rng, case["w"]), values(rng, case["w"][:1])
    kw = {k: case[k] for k in ("stride", "padding", "dilation", "groups")}

    def fn(x: Any, w: Any, b: Any) -> Any:
        return F(x).conv2d(x, w, b if case["bias"] else None, **kw)

    check_op(fn, x, w, b, dtype=dtype, seed=seed, label=f"conv2d {case}")


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel:UserWarning")
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("padding, dilation", [("same", 1), ("same", 2), ("valid", 1)])
def test_conv2d_padding_same_and_valid(dtype: str, padding: str, dilation: int) -> None:
    """'same' with an even kernel pads one more at the end, as torch does."""
    rng = np.random.default_rng(0)
    x, w = values(rng, (2, 3, 5, 6)), values(rng, (4, 3, 3, 2))
    check_op(lambda x, w: F(x).conv2d(x, w, padding=padding, dilation=dilation), x, w, dtype=dtype,
             label=f"conv2d {padding} dilation={dilation}")


@hst.composite
def pool_case(draw: Any, dilation: bool) -> dict:
    k = draw(hst.sampled_from([1, 2, 3, (2, 3)]))
    kk = k if isinstance(k, tuple) else (k, k)
    stride = draw(hst.sampled_from([None, 1, 2, (2, 1)]))
    padding = draw(hst.sampled_from([0, 1, (1, 0)]))
    pp = padding if isinstance(padding, tuple) else (padding, padding)
    if pp[0] > kk[0] // 2 or pp[1] > kk[1] // 2:  # torch allows padding up to half the kernel
        padding = 0
        pp = (0, 0)
    d = draw(hst.sampled_from([1, 2])) if dilation else 1
    # every window must hold a real element: torch's max_pool2d backward writes out of bounds
    # (and aborts the process) for a window made only of padding, e.g. k=2, padding=1, dilation=2, h=1
    h = draw(hst.integers(d * (kk[0] - 1) + 1, 6))
    w = draw(hst.integers(d * (kk[1] - 1) + 1, 6))
    case = {"x": (draw(hst.integers(1, 2)), draw(hst.integers(1, 3)), h, w), "kernel_size": k, "stride": stride,
            "padding": padding}
    if dilation:
        case["dilation"] = d
    return case


@pytest.mark.parametrize("dtype", DTYPES)
@PARITY_SETTINGS
@given(case=pool_case(dilation=True), seed=SEEDS)
def test_max_pool2d(dtype: str, case: dict, seed: int) -> None:
    x = values(np.random.default_rng(seed), case["x"])  # continuous values: no ties in a window
    kw = {k: v for k, v in case.items() if k != "x"}
    check_op(lambda x: F(x).max_pool2d(x, **kw), x, dtype=dtype, seed=seed, label=f"max_pool2d {kw}")


@pytest.mark.parametrize("dtype", DTYPES)
@PARITY_SETTINGS
@given(case=pool_case(dilation=False), seed=SEEDS)
def test_avg_pool2d(dtype: str, case: dict, seed: int) -> None:
    x = values(np.random.default_rng(seed), case["x"])
    kw = {k: v for k, v in case.items() if k != "x"}
    check_op(lambda x: F(x).avg_pool2d(x, **kw), x, dtype=dtype, seed=seed, label=f"avg_pool2d {kw}")


@pytest.mark.parametrize("dtype", DTYPES)
@PARITY_SETTINGS
@given(vocab=hst.integers(1, 6), dim=hst.integers(1, 4), idx_shape=shapes(0, 3, 0, 3),
       padding=hst.booleans(), seed=SEEDS)
def test_embedding(dtype: str, vocab: int, dim: int, idx_shape: tuple, padding: bool, seed: int) -> None:
    rng = np.random.default_rng(seed)
    w = values(rng, (vocab, dim))
    idx = np.asarray(rng.integers(0, vocab, idx_shape))  # repeated rows: their gradients add up
    kw = {"padding_idx": 0} if padding else {}
    check_op(lambda i, w: F(w).embedding(i, w, **kw), idx, w, dtype=dtype, seed=seed, label=f"embedding {kw}")


@pytest.mark.parametrize("dtype", DTYPES)
@PARITY_SETTINGS
@given(shape=shapes(1, 3, 0, 4), out=hst.integers(0, 3), bias=hst.booleans(), seed=SEEDS)
def test_linear(dtype: str, shape: tuple, out: int, bias: bool, seed: int) -> None:
    rng = np.random.default_rng(seed)
    x, w, b = values(rng, shape), values(rng, (out, shape[-1])), values(rng, (out,))
    check_op(lambda x, w, b: F(x).linear(x, w, b if bias else None), x, w, b, dtype=dtype, seed=seed, label="linear")


# ---- dropout: random, so checked by its statistics and its own consistency ---------------

@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_dropout_statistics(p: float) -> None:
    n = 40_000
    x = st.ones(n)
    y = F(x).dropout(x, p=p).numpy()
    kept = y != 0
    # the dropped fraction is Binomial(n, p)/n: 5 standard deviations is a safe bound
    assert abs((~kept).mean() - p) < 5 * np.sqrt(p * (1 - p) / n)
    np.testing.assert_allclose(y[kept], 1.0 / (1.0 - p), rtol=1e-6)
    assert abs(y.mean() - 1.0) < 5 * np.sqrt(p / (1 - p) / n)  # E[y] = x: unbiased


def test_dropout_mask_is_the_same_in_forward_and_backward() -> None:
    x = st.randn(64, 33, requires_grad=True)
    y = F(x).dropout(x, p=0.4)
    w = st.randn(64, 33)
    (y * w).sum().backward()
    mask = (y.detach().numpy() != 0)
    np.testing.assert_allclose(x.grad.numpy(), w.numpy() * mask / 0.6, rtol=1e-6)
    # the same mask in the second derivative's graph: d/dx of (grad . v) is 0 (dropout is linear)
    x2 = st.randn(8, 8, requires_grad=True)
    y2 = F(x2).dropout(x2, p=0.5)
    (g,) = st.grad((y2 * y2).sum(), x2, create_graph=True)
    m2 = (y2.detach().numpy() != 0) / 0.5
    np.testing.assert_allclose(g.detach().numpy(), 2 * x2.detach().numpy() * m2 * m2, rtol=1e-5)
    (gg,) = st.grad(g.sum(), x2)
    np.testing.assert_allclose(gg.numpy(), 2 * m2 * m2, rtol=1e-5)


def test_dropout_eval_mode_and_edge_probabilities() -> None:
    x = st.randn(5, 7, requires_grad=True)
    assert F(x).dropout(x, p=0.5, training=False) is x
    assert F(x).dropout(x, p=0.0) is x
    np.testing.assert_array_equal(F(x).dropout(x, p=1.0).detach().numpy(), np.zeros((5, 7)))
    with pytest.raises(ValueError, match="p must be in"):
        F(x).dropout(x, p=1.5)
    drop = st.nn.Dropout(0.5)
    assert drop(x) is not x and drop.eval()(x) is x  # the module: random while training, identity in eval


def test_dropout_is_reproducible_with_manual_seed() -> None:
    x = st.ones(100)
    st.manual_seed(123)
    a = F(x).dropout(x, 0.5).numpy()
    st.manual_seed(123)
    b = F(x).dropout(x, 0.5).numpy()
    st.manual_seed(124)
    c = F(x).dropout(x, 0.5).numpy()
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


@pytest.mark.parametrize("smoothing", [0.0, 0.2])
@pytest.mark.parametrize("weighted", [False, True])
def test_cross_entropy_with_every_target_ignored(smoothing: float, weighted: bool) -> None:
    """The mean over no targets is NaN, as in torch; the gradient is 0 there, not NaN."""
    rng = np.random.default_rng(0)
    x = values(rng, (3, 4))
    t = np.full(3, -1)
    w = rng.uniform(0.5, 2.0, 4)

    def fn(x: Any, t: Any, w: Any) -> Any:
        return F(x).cross_entropy(x, t, weight=w if weighted else None, ignore_index=-1, label_smoothing=smoothing)

    res = check_op(fn, x, t, w, dtype="float64", nondiff=(2,), label="ce_all_ignored")
    assert np.isnan(res.outputs[0]) and np.all(res.grads[0] == 0)


def _first_order_kernel_matches_formula(name: str, args: tuple, needs: tuple) -> None:
    """A one-call first-order backward gives exactly the gradients asked for, as its formula does."""
    with st.no_grad():
        fast = st.ops.dispatch(name, *args, needs=needs)
    formula = st.ops.global_operator_registry().get(name).composite(*args, needs)
    for want, got, ref in zip(needs, fast, formula, strict=True):
        assert (got is None) == (not want) == (ref is None)
        if want:
            np.testing.assert_allclose(got.numpy(), ref.numpy(), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("needs", [(x, w, b) for x in (True, False) for w in (True, False) for b in (True, False)
                                   if x or w or b])
@pytest.mark.parametrize("shape", [(5, 3), (2, 4, 3), (0, 3)])
def test_linear_first_order_kernel_matches_the_tensor_formula(needs: tuple, shape: tuple) -> None:
    """The one-call first-order backward computes exactly the gradients asked for, as the formula does."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    x = st.tensor(values(rng, shape), requires_grad=needs[0])
    w = st.tensor(values(rng, (4, 3)), requires_grad=needs[1])
    b = st.tensor(values(rng, (4,)), requires_grad=needs[2])
    g = st.tensor(values(rng, (*shape[:-1], 4)))
    _first_order_kernel_matches_formula("linear_backward", (g, x, w), needs)
    # and backward() takes that route: leaves get their gradients, the others stay None
    y = st.nn.functional.linear(x, w, b)
    (y * g).sum().backward()
    tx = torch.tensor(x.detach().numpy(), requires_grad=True)
    tw = torch.tensor(w.detach().numpy(), requires_grad=True)
    tb = torch.tensor(b.detach().numpy(), requires_grad=True)
    (torch.nn.functional.linear(tx, tw, tb) * torch.tensor(g.numpy())).sum().backward()
    for mine, theirs, want in ((x, tx, needs[0]), (w, tw, needs[1]), (b, tb, needs[2])):
        assert (mine.grad is None) == (not want)
        if want:
            np.testing.assert_allclose(mine.grad.numpy(), theirs.grad.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("needs", [(True, True), (True, False), (False, True)])
@pytest.mark.parametrize(("m", "k", "n"), [(5, 3, 4), (0, 3, 4), (5, 0, 4), (1, 1, 1)])
def test_matmul_first_order_kernel_matches_the_tensor_formula(needs: tuple, m: int, k: int, n: int) -> None:
    """2-d ``a @ b``: the one-call first-order backward gives the gradients asked for, as torch does."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    a = st.tensor(values(rng, (m, k)), requires_grad=needs[0])
    b = st.tensor(values(rng, (k, n)), requires_grad=needs[1])
    g = st.tensor(values(rng, (m, n)))
    _first_order_kernel_matches_formula("matmul_backward", (g, a, b), needs)
    # backward() takes that route (one op), and leaves get torch's gradients
    with st.telemetry.record() as rec:
        (a @ b * g).sum().backward()
    assert rec.ops.filter(phase="backward", op="matmul_backward").height == 1
    assert rec.ops.filter(phase="backward", op="permute").height == 0
    ta = torch.tensor(a.detach().numpy(), requires_grad=True)
    tb = torch.tensor(b.detach().numpy(), requires_grad=True)
    (ta @ tb * torch.tensor(g.numpy())).sum().backward()
    for mine, theirs, want in ((a, ta, needs[0]), (b, tb, needs[1])):
        assert (mine.grad is None) == (not want)
        if want:
            np.testing.assert_allclose(mine.grad.numpy(), theirs.grad.numpy(), rtol=1e-5, atol=1e-6)


def test_matmul_second_order_goes_through_the_formula() -> None:
    """With create_graph the gradient is built from differentiable ops, so it has a gradient itself."""
    rng = np.random.default_rng(1)
    a = st.tensor(values(rng, (3, 4)), requires_grad=True)
    b = st.tensor(values(rng, (4, 2)), requires_grad=True)
    (ga,) = st.autograd.grad((a @ b).pow(2).sum(), [a], create_graph=True)
    (gb,) = st.autograd.grad(ga.sum(), [b])
    # d/db of sum_ij (2 (a b) b^T)_ij = 2 (a^T 1 1^T b + ...): compare with a finite difference
    eps = 1e-3
    base = b.detach().numpy().astype(np.float64)
    num = np.zeros_like(base)
    an = a.detach().numpy().astype(np.float64)
    for idx in np.ndindex(*base.shape):
        for sign in (1, -1):
            bb = base.copy()
            bb[idx] += sign * eps
            num[idx] += sign * (2 * (an @ bb) @ bb.T).sum() / (2 * eps)
    np.testing.assert_allclose(gb.numpy(), num, rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("classes", [3, 64, 65, 200])  # the cpu kernels work class-major up to 64 classes
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("smoothing", [0.0, 0.15])
@pytest.mark.parametrize("ignore", [None, -1, 2])  # none ignored, ignore_index outside and inside [0, classes)
def test_cross_entropy_first_order_kernels_match_torch(classes: int, reduction: str, smoothing: float,
                                                        ignore: int | None) -> None:
    """The fused forward and the one-call backward (taken when no graph is recorded), both layouts."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(classes)
    x_np = values(rng, (7, classes), "wide").astype(np.float32)
    t_np = rng.integers(0, classes, 7)
    kw: dict = {"reduction": reduction, "label_smoothing": smoothing}
    if ignore is not None:
        t_np[[1, 4]] = ignore
        kw["ignore_index"] = ignore
    x = st.tensor(x_np, requires_grad=True)
    loss = st.nn.functional.cross_entropy(x, st.tensor(t_np), **kw)
    g = values(rng, (7,)).astype(np.float32) if reduction == "none" else np.float32(1.5)
    loss.backward(st.tensor(g))
    tx = torch.tensor(x_np, requires_grad=True)
    tloss = torch.nn.functional.cross_entropy(tx, torch.tensor(t_np), **kw)
    tloss.backward(torch.tensor(g))
    np.testing.assert_allclose(loss.numpy(), tloss.detach().numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-5, atol=1e-6)


def test_cross_entropy_rejects_targets_out_of_range() -> None:
    x = st.randn(4, 3)
    for bad in ([0, 1, 3, 0], [0, -2, 1, 0]):
        with pytest.raises(st.SpiralTorchError, match=r"target values must be in \[0, 3\)"):
            st.nn.functional.cross_entropy(x, st.tensor(bad))


@pytest.mark.parametrize("layout", ["one row", "transposed", "contiguous"])
def test_cross_entropy_leaves_its_input_unchanged(layout: str) -> None:
    """The kernels shift the logits in a work array: never in the caller's tensor, whatever its layout."""
    rng = np.random.default_rng(1)
    base = values(rng, {"one row": (1, 4), "transposed": (4, 6), "contiguous": (6, 4)}[layout]).astype(np.float32)
    x = st.tensor(base, requires_grad=True)
    logits = x.T if layout == "transposed" else x
    before = logits.detach().numpy().copy()
    t = st.tensor(rng.integers(0, 4, logits.shape[0]))
    loss = st.nn.functional.cross_entropy(logits, t)
    loss.backward()
    np.testing.assert_array_equal(logits.detach().numpy(), before)
    np.testing.assert_array_equal(x.detach().numpy(), base)


@pytest.mark.parametrize("fn", ["softmax", "log_softmax"])
@pytest.mark.filterwarnings("error")  # NumPy's divide/invalid warnings would fail here
def test_softmax_of_infinite_rows_matches_torch_without_warnings(fn: str) -> None:
    torch = pytest.importorskip("torch")
    x = np.array([[-np.inf, -np.inf], [-np.inf, 0.0], [np.inf, 0.0], [np.nan, 1.0], [3.0, -1.0]], np.float32)
    got = getattr(st.tensor(x), fn)(-1).numpy()
    want = getattr(torch, fn)(torch.tensor(x), -1).numpy()
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("fn", ["max", "min"])
@pytest.mark.parametrize("dim", [0, 1, -1])
@pytest.mark.parametrize("keepdim", [False, True])
def test_max_min_along_a_dim_route_the_gradient_to_the_index_as_torch_does(fn: str, dim: int, keepdim: bool) -> None:
    """Tied values: torch gives the gradient to the element the index names; amax/amin split it."""
    torch = pytest.importorskip("torch")
    x = np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 0.0], [0.0, 0.0, 0.0]], np.float32)
    a = st.tensor(x, requires_grad=True)
    t = torch.tensor(x, requires_grad=True)
    v, i = getattr(a, fn)(dim, keepdim=keepdim)
    tv, ti = getattr(t, fn)(dim, keepdim=keepdim)
    w = np.arange(1, tv.numel() + 1, dtype=np.float32).reshape(tuple(tv.shape))
    (v * st.tensor(w)).sum().backward()
    (tv * torch.tensor(w)).sum().backward()
    np.testing.assert_array_equal(v.detach().numpy(), tv.detach().numpy())
    np.testing.assert_array_equal(i.numpy(), ti.numpy())
    np.testing.assert_array_equal(a.grad.numpy(), t.grad.numpy())


def test_max_of_a_0d_tensor_along_dim_0() -> None:
    s = st.tensor(3.0, requires_grad=True)
    v, i = s.max(0)
    v.backward()
    assert (v.item(), i.item(), s.grad.item()) == (3.0, 0, 1.0)
    with pytest.raises(IndexError, match="0-d tensor: dim must be 0 or -1"):
        s.min(1)
