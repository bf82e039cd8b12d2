"""The autograd engine: backward, grad, grad modes, graphs kept or freed, higher derivatives,
accumulation, hooks, retain_grad, gradcheck, thread-local grad mode, multi-output custom ops."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import pytest

import spiraltorch_nb as st
from spiraltorch_nb.errors import AutogradError


def _x(*values: float, dtype: Any = st.float64) -> st.Tensor:
    return st.tensor(list(values), dtype=dtype, requires_grad=True)


# ---- backward and grad ---------------------------------------------------------------------

def test_backward_fills_leaf_grads_and_not_intermediates() -> None:
    x = _x(1.0, 2.0, 3.0)
    w = _x(0.5, -1.0, 2.0)
    h = x * w
    loss = (h * h).sum()
    loss.backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * (x * w * w).detach().numpy())
    np.testing.assert_allclose(w.grad.numpy(), 2 * (w * x * x).detach().numpy())
    assert h.grad is None and not h.is_leaf and x.is_leaf
    assert loss.grad_fn is not None and x.grad_fn is None
    assert not x.grad.requires_grad  # without create_graph, gradients are plain tensors


def test_backward_with_an_explicit_gradient_for_a_non_scalar() -> None:
    x = _x(1.0, 2.0)
    y = x * x
    y.backward(st.tensor([1.0, 10.0], dtype=st.float64))
    np.testing.assert_allclose(x.grad.numpy(), [2.0, 40.0])


def test_grad_returns_gradients_and_leaves_dot_grad_alone() -> None:
    x = _x(1.0, 2.0)
    y = _x(3.0)
    out = (x * y).sum() + y * y
    gx, gy = st.grad(out.sum(), (x, y))
    np.testing.assert_allclose(gx.numpy(), [3.0, 3.0])
    np.testing.assert_allclose(gy.numpy(), [3.0 + 6.0])
    assert x.grad is None and y.grad is None


def test_grad_with_respect_to_an_intermediate_and_unused_inputs() -> None:
    x = _x(2.0)
    u = _x(5.0)
    h = x * 3.0
    out = (h * h).sum()
    (gh,) = st.grad(out, h, retain_graph=True)
    np.testing.assert_allclose(gh.numpy(), [12.0])
    with pytest.raises(AutogradError, match="allow_unused=True"):
        st.grad(out, (x, u), retain_graph=True)
    gx, gu = st.grad(out, (x, u), allow_unused=True)
    np.testing.assert_allclose(gx.numpy(), [36.0])
    assert gu is None


def test_a_chain_deeper_than_the_recursion_limit() -> None:
    x = _x(1.0)
    y = x
    for _ in range(3000):
        y = y * 1.0001
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [1.0001 ** 3000], rtol=1e-9)


def test_gradient_flows_through_shared_subexpressions_once_each() -> None:
    x = _x(2.0)
    a = x * x  # used three times
    y = a * a + a * 3.0 + a
    y.sum().backward()
    # y = x^4 + 4 x^2 -> 4 x^3 + 8 x
    np.testing.assert_allclose(x.grad.numpy(), [4 * 8 + 16])


# ---- grad modes -------------------------------------------------------------------------------

def test_no_grad_records_nothing_and_enable_grad_records_again() -> None:
    x = _x(1.0, 2.0)
    with st.no_grad():
        y = x * 2
        assert not st.is_grad_enabled()
        with st.enable_grad():
            z = x * 2
            assert st.is_grad_enabled()
    assert st.is_grad_enabled()
    assert not y.requires_grad and y.grad_fn is None
    assert z.requires_grad and z.grad_fn is not None


def test_set_grad_enabled_as_call_context_and_decorator() -> None:
    x = _x(1.0)
    with st.set_grad_enabled(False):
        assert not (x * 2).requires_grad
    assert st.is_grad_enabled()
    st.set_grad_enabled(False)
    try:
        assert not st.is_grad_enabled()
        assert not (x * 2).requires_grad
    finally:
        st.set_grad_enabled(True)
    assert (x * 2).requires_grad

    @st.set_grad_enabled(False)
    def frozen(t: st.Tensor) -> st.Tensor:
        return t * 2

    @st.no_grad()
    def also_frozen(t: st.Tensor) -> st.Tensor:
        return t * 2

    @st.enable_grad()
    def recording(t: st.Tensor) -> st.Tensor:
        return t * 2

    assert not frozen(x).requires_grad and not also_frozen(x).requires_grad
    assert st.is_grad_enabled()
    with st.no_grad():
        assert recording(x).requires_grad
        assert not st.is_grad_enabled()


def test_grad_mode_is_restored_when_the_block_raises() -> None:
    with pytest.raises(ValueError), st.no_grad():
        raise ValueError("boom")
    assert st.is_grad_enabled()


def test_grad_mode_is_thread_local() -> None:
    """no_grad in one thread does not change what another thread records."""
    inside = threading.Event()
    checked = threading.Event()
    seen: dict[str, Any] = {}

    def worker() -> None:
        with st.no_grad():
            seen["worker_enabled"] = st.is_grad_enabled()
            inside.set()
            checked.wait(5)
            seen["worker_records"] = (_x(1.0) * 2).requires_grad

    t = threading.Thread(target=worker)
    t.start()
    assert inside.wait(5)
    seen["main_enabled"] = st.is_grad_enabled()
    seen["main_records"] = (_x(1.0) * 2).requires_grad
    checked.set()
    t.join(5)
    assert seen == {"worker_enabled": False, "main_enabled": True, "main_records": True, "worker_records": False}


# ---- retain_graph, create_graph, higher derivatives -----------------------------------------------

def test_retain_graph_allows_a_second_backward_that_accumulates() -> None:
    x = _x(1.0, -2.0)
    y = (x * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), [4.0, -8.0])
    with pytest.raises(AutogradError, match="retain_graph=True"):
        y.backward()


def test_create_graph_gives_second_and_third_derivatives() -> None:
    x = st.tensor(1.5, dtype=st.float64, requires_grad=True)
    y = x ** 4 + x.sin()
    (d1,) = st.grad(y, x, create_graph=True)
    (d2,) = st.grad(d1, x, create_graph=True)
    (d3,) = st.grad(d2, x)
    v = 1.5
    np.testing.assert_allclose(d1.item(), 4 * v ** 3 + np.cos(v))
    np.testing.assert_allclose(d2.item(), 12 * v ** 2 - np.sin(v))
    np.testing.assert_allclose(d3.item(), 24 * v - np.cos(v))
    assert d1.requires_grad and d2.requires_grad and not d3.requires_grad


def test_backward_with_create_graph_makes_a_differentiable_grad() -> None:
    x = _x(2.0, 3.0)
    (x ** 3).sum().backward(create_graph=True)
    g = x.grad
    assert g.requires_grad
    (gg,) = st.grad(g.sum(), x)
    np.testing.assert_allclose(gg.numpy(), [12.0, 18.0])


def test_hypergradient_of_a_validation_loss_with_respect_to_the_learning_rate() -> None:
    """d L_val(w - lr * dL_train/dw) / d lr = -dL_val/dw' . dL_train/dw (one unrolled SGD step)."""
    w = _x(1.0, -1.0)
    lr = st.tensor(0.1, dtype=st.float64, requires_grad=True)
    a = st.tensor([2.0, 1.0], dtype=st.float64)
    train = ((w * a).sum() - 1.0) ** 2
    (gw,) = st.grad(train, w, create_graph=True)
    w2 = w - lr * gw
    val = (w2 * w2).sum()
    (glr,) = st.grad(val, lr)
    gw_np = gw.detach().numpy()
    expected = -(2 * w2.detach().numpy()) @ gw_np
    np.testing.assert_allclose(glr.item(), expected)


# ---- accumulation and leaf updates ---------------------------------------------------------------

def test_gradients_accumulate_until_set_to_none() -> None:
    p = _x(1.0, 2.0)
    (p * 3.0).sum().backward()
    (p * 3.0).sum().backward()
    np.testing.assert_allclose(p.grad.numpy(), [6.0, 6.0])
    p.grad = None
    (p * p).sum().backward()
    np.testing.assert_allclose(p.grad.numpy(), [2.0, 4.0])


def test_sgd_step_updates_a_leaf_in_place_under_no_grad() -> None:
    p = _x(1.0, -2.0)
    before = p._version
    loss = (p * p).sum()
    loss.backward()
    with st.no_grad():
        p -= 0.25 * p.grad
    assert p.is_leaf and p.requires_grad and p.grad_fn is None
    assert p._version > before
    np.testing.assert_allclose(p.detach().numpy(), [0.5, -1.0])
    p.grad = None
    (p * p).sum().backward()
    np.testing.assert_allclose(p.grad.numpy(), [1.0, -2.0])
    with st.no_grad():
        p.mul_(2.0).add_(1.0)
        p.zero_()
    np.testing.assert_allclose(p.detach().numpy(), [0.0, 0.0])


def test_in_place_on_a_leaf_outside_no_grad_is_refused() -> None:
    p = _x(1.0)
    with pytest.raises(AutogradError, match="no_grad"):
        p += 1.0
    with pytest.raises(AutogradError, match="no_grad"):
        p.fill_(0.0)


def test_detach_cuts_the_graph() -> None:
    x = _x(2.0)
    y = x * x
    z = y.detach() * x
    z.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [4.0])  # y treated as a constant


# ---- hooks and retain_grad -----------------------------------------------------------------------

def test_leaf_hook_sees_and_replaces_the_gradient_and_can_be_removed() -> None:
    x = _x(1.0, 2.0)
    seen: list[np.ndarray] = []

    def double(g: st.Tensor) -> st.Tensor:
        seen.append(g.numpy().copy())
        return g * 2

    handle = x.register_hook(double)
    (x * 3.0).sum().backward()
    np.testing.assert_allclose(seen[0], [3.0, 3.0])
    np.testing.assert_allclose(x.grad.numpy(), [6.0, 6.0])
    handle.remove()
    x.grad = None
    (x * 3.0).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [3.0, 3.0])
    assert len(seen) == 1


def test_non_leaf_hook_changes_what_flows_upstream_until_removed() -> None:
    x = _x(1.0, 2.0)
    h = x * x
    calls = []
    handle = h.register_hook(lambda g: calls.append(g.numpy().copy()) or st.ones_like(g))
    y = (h * 5.0).sum()
    y.backward(retain_graph=True)
    np.testing.assert_allclose(calls[0], [5.0, 5.0])
    np.testing.assert_allclose(x.grad.numpy(), [2.0, 4.0])  # dh replaced by ones: 1 * 2x
    handle.remove()
    x.grad = None
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), [10.0, 20.0])
    assert len(calls) == 1


def test_a_hook_handle_is_a_context_manager() -> None:
    x = _x(3.0)
    with x.register_hook(lambda g: g * 0.0):
        (x * x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [0.0])
    x.grad = None
    (x * x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [6.0])


def test_hooks_refuse_tensors_without_grad() -> None:
    with pytest.raises(AutogradError, match="does not require grad"):
        st.ones(2).register_hook(lambda g: g)


def test_retain_grad_keeps_and_accumulates_a_non_leaf_gradient() -> None:
    x = _x(1.0, 2.0)
    h = x * 3.0
    h.retain_grad()
    y = (h * h).sum()
    y.backward(retain_graph=True)
    np.testing.assert_allclose(h.grad.numpy(), [6.0, 12.0])
    y.backward()
    np.testing.assert_allclose(h.grad.numpy(), [12.0, 24.0])
    x.retain_grad()  # a leaf: a no-op
    assert x.grad is not None


# ---- gradcheck / gradgradcheck --------------------------------------------------------------------

@pytest.mark.parametrize("fn", [
    lambda a, b: (a * b).sin() + a / (b * b + 1.0),
    lambda a, b: (a @ b.T).tanh().sum(dim=0),
    lambda a, b: st.nn.functional.softmax(a * b, dim=-1),
    lambda a, b: st.cat([a, b], dim=0).logsumexp(dim=1),
    lambda a, b: (a.exp() * b).amax(dim=1) + a.var(dim=0).sum(),
], ids=["elementwise", "matmul", "softmax", "cat_logsumexp", "amax_var"])
def test_gradcheck_and_gradgradcheck_pass_on_composites(fn: Any) -> None:
    a = st.randn(2, 3, dtype=st.float64, requires_grad=True)
    b = st.randn(2, 3, dtype=st.float64, requires_grad=True)
    assert st.autograd.gradcheck(fn, (a, b))
    assert st.autograd.gradgradcheck(fn, (a, b))


def _square_op(name: str, backward: Any) -> Any:
    return (st.ops.OperatorBuilder(name, 1, 1)
            .with_backend("cpu", lambda x: x * x)
            .with_backward(backward)
            .build())


def test_gradcheck_catches_a_wrong_backward() -> None:
    wrong = _square_op("test_wrong_square", lambda i, o, g: [3.0 * i[0] * g[0]])  # should be 2x
    x = st.randn(4, dtype=st.float64, requires_grad=True)
    with pytest.raises(AutogradError, match="differs from finite differences"):
        st.autograd.gradcheck(wrong, (x,))
    assert st.autograd.gradcheck(wrong, (x,), raise_exception=False) is False


def test_gradgradcheck_catches_a_backward_that_is_not_differentiable() -> None:
    """A backward that detaches is right to first order and wrong to second."""
    op = _square_op("test_detached_square", lambda i, o, g: [2.0 * i[0].detach() * g[0]])
    x = st.randn(3, dtype=st.float64, requires_grad=True)
    assert st.autograd.gradcheck(op, (x,))
    assert st.autograd.gradgradcheck(op, (x,), raise_exception=False) is False
    good = _square_op("test_good_square", lambda i, o, g: [2.0 * i[0] * g[0]])
    assert st.autograd.gradgradcheck(good, (x,))


# ---- multi-output custom ops -----------------------------------------------------------------------

def _sincos() -> Any:
    return (st.ops.OperatorBuilder("test_sincos", 1, 2)
            .with_backend("cpu", lambda x: (np.sin(x), np.cos(x)))
            .with_backward(lambda i, o, g: [g[0] * i[0].cos() - g[1] * i[0].sin()])
            .build())


def test_multi_output_custom_op_forward_backward_and_checks() -> None:
    sincos = _sincos()
    x = st.tensor([0.3, -1.2, 2.0], dtype=st.float64, requires_grad=True)
    s, c = sincos(x)
    np.testing.assert_allclose(s.detach().numpy(), np.sin(x.detach().numpy()))
    assert s.grad_fn is c.grad_fn
    (s * 2.0 + c * 3.0).sum().backward()
    xs = x.detach().numpy()
    np.testing.assert_allclose(x.grad.numpy(), 2 * np.cos(xs) - 3 * np.sin(xs))
    assert st.autograd.gradcheck(lambda t: sincos(t), (x,))
    assert st.autograd.gradgradcheck(lambda t: sincos(t), (x,))


def test_multi_output_op_with_only_one_output_used() -> None:
    sincos = _sincos()
    x = st.tensor([0.5, 1.0], dtype=st.float64, requires_grad=True)
    _, c = sincos(x)
    c.sum().backward()  # the unused output's gradient is taken as zeros
    np.testing.assert_allclose(x.grad.numpy(), -np.sin([0.5, 1.0]))
