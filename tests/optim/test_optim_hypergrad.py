"""Hypergradients: d(validation loss)/d(lr or weight decay) through unrolled steps vs finite differences.

Also the online hypergradient optimizers (HyperSGD, HyperAdam): their update rule and
the direction in which the learning rate moves.
"""

from __future__ import annotations

import numpy as np
import pytest

import spiraltorch_nb as st
from spiraltorch_nb.optim import functional as OF

RNG = np.random.default_rng(7)
X_TRAIN = RNG.standard_normal((3, 12, 4))  # one batch per unrolled step
Y_TRAIN = RNG.standard_normal((3, 12, 2))
X_VAL = RNG.standard_normal((10, 4))
Y_VAL = RNG.standard_normal((10, 2))
W0 = RNG.standard_normal((4, 2)) * 0.5
B0 = RNG.standard_normal(2) * 0.1


def _loss(params: list, x: np.ndarray, y: np.ndarray) -> st.Tensor:
    w, b = params
    pred = (st.tensor(x) @ w + b).tanh()
    return ((pred - st.tensor(y)) ** 2).mean()


def _unroll(kind: str, lr: object, wd: object, steps: int, create_graph: bool) -> st.Tensor:
    params = [st.tensor(W0, requires_grad=True), st.tensor(B0, requires_grad=True)]
    bufs: list = [None, None]
    adam = OF.AdamState.for_params(params)
    for t in range(steps):
        grads = st.grad(_loss(params, X_TRAIN[t], Y_TRAIN[t]), params, create_graph=create_graph)
        if kind == "sgd":
            params = OF.sgd_step(params, grads, lr, momentum=0.9, weight_decay=wd, momentum_buffers=bufs)
        elif kind == "nesterov":
            params = OF.sgd_step(params, grads, lr, momentum=0.5, nesterov=True, weight_decay=wd,
                                 momentum_buffers=bufs)
        else:
            params = OF.adam_step(params, grads, adam, lr, weight_decay=wd, decoupled_weight_decay=(kind == "adamw"),
                                  amsgrad=(kind == "adamw"))
        if not create_graph:  # plain values: start each step from fresh leaves
            params = [p.detach().requires_grad_() for p in params]
    return _loss(params, X_VAL, Y_VAL)


def _central_difference(kind: str, which: str, lr: float, wd: float, steps: int, h: float = 1e-6) -> float:
    def f(delta: float) -> float:
        a, b = (lr + delta, wd) if which == "lr" else (lr, wd + delta)
        return _unroll(kind, a, b, steps, create_graph=False).item()

    return (f(h) - f(-h)) / (2 * h)


@pytest.mark.parametrize("steps", [1, 3])
@pytest.mark.parametrize("kind", ["sgd", "nesterov", "adam", "adamw"])
def test_hypergradient_wrt_lr_matches_finite_differences(kind: str, steps: int) -> None:
    lr0, wd0 = (0.2, 0.01) if kind in ("sgd", "nesterov") else (0.05, 0.01)
    lr = st.tensor(lr0, dtype=st.float64, requires_grad=True)
    val = _unroll(kind, lr, wd0, steps, create_graph=True)
    (dlr,) = st.grad(val, lr)
    fd = _central_difference(kind, "lr", lr0, wd0, steps)
    assert abs(fd) > 1e-4  # the check is not vacuous
    assert dlr.item() == pytest.approx(fd, rel=1e-6, abs=1e-9)


@pytest.mark.parametrize("kind", ["sgd", "adam", "adamw"])
def test_hypergradient_wrt_weight_decay_matches_finite_differences(kind: str) -> None:
    lr0, wd0 = (0.2, 0.05) if kind == "sgd" else (0.05, 0.05)
    wd = st.tensor(wd0, dtype=st.float64, requires_grad=True)
    val = _unroll(kind, lr0, wd, 3, create_graph=True)
    (dwd,) = st.grad(val, wd)
    fd = _central_difference(kind, "wd", lr0, wd0, 3)
    assert abs(fd) > 1e-6
    assert dwd.item() == pytest.approx(fd, rel=1e-6, abs=1e-10)


def test_functional_steps_match_the_optimizers() -> None:
    """The functional forms compute the same update as SGD/AdamW (no hyperparameter tensors)."""
    for kind, make in [("sgd", lambda p: st.optim.SGD(p, lr=0.2, momentum=0.9, weight_decay=0.01)),
                       ("adamw", lambda p: st.optim.AdamW(p, lr=0.05, weight_decay=0.01, amsgrad=True))]:
        params = [st.tensor(W0, requires_grad=True), st.tensor(B0, requires_grad=True)]
        opt = make(params)
        for t in range(3):
            opt.zero_grad()
            _loss(params, X_TRAIN[t], Y_TRAIN[t]).backward()
            opt.step()
        expected = _loss(params, X_VAL, Y_VAL).item()
        assert _unroll(kind, 0.2 if kind == "sgd" else 0.05, 0.01, 3, False).item() == pytest.approx(expected, rel=1e-12)


def test_functional_argument_errors() -> None:
    w = st.zeros(2, requires_grad=True)
    with pytest.raises(st.optim.OptimizerError, match="momentum_buffers"):
        OF.sgd_step([w], [st.ones(2)], 0.1, momentum=0.9)
    with pytest.raises(st.optim.OptimizerError, match="one gradient"):
        OF.sgd_step([w], [], 0.1)
    with pytest.raises(st.optim.OptimizerError, match="AdamState.for_params"):
        OF.adam_step([w], [st.ones(2)], OF.AdamState(), 0.1)
    (same,) = OF.sgd_step([w], [None], 0.1)
    assert same is w


# ---- online hypergradient descent ---------------------------------------------------

A = np.array([1.0, 3.0, 0.5])


def _quadratic_run(opt_cls: type, lr: float, hyper_lr: float, steps: int, **kw: object) -> tuple:
    w = st.tensor([2.0, -1.0, 3.0], dtype=st.float64, requires_grad=True)
    opt = opt_cls([w], lr=lr, hyper_lr=hyper_lr, **kw)
    grads = []
    for _ in range(steps):
        opt.zero_grad()
        (0.5 * st.tensor(A) * w * w).sum().backward()
        grads.append(w.grad.numpy().copy())
        opt.step()
    return opt, grads, w


def test_hyper_sgd_rule_and_direction() -> None:
    # a small rate: successive gradients agree, the rate grows
    opt, grads, _ = _quadratic_run(st.optim.HyperSGD, lr=0.01, hyper_lr=0.001, steps=6)
    hist = opt.lr_history
    assert len(hist) == 6 and hist[0] == 0.01
    assert all(b > a for a, b in zip(hist, hist[1:], strict=False))
    # the rule: lr_t = lr_{t-1} + beta * <g_t, g_{t-1}>
    assert hist[1] == pytest.approx(0.01 + 0.001 * float(grads[1] @ grads[0]), rel=1e-12)
    assert opt.param_groups[0]["hypergrad"] == pytest.approx(-float(grads[-1] @ grads[-2]), rel=1e-12)
    # too large a rate (the 3.0 direction oscillates): successive gradients disagree, it shrinks
    opt, _, w = _quadratic_run(st.optim.HyperSGD, lr=0.9, hyper_lr=0.01, steps=8)
    hist = opt.lr_history
    assert hist[-1] < 0.9 and hist[1] < hist[0]


def test_hyper_sgd_with_momentum_uses_the_momentum_direction() -> None:
    opt, grads, _ = _quadratic_run(st.optim.HyperSGD, lr=0.01, hyper_lr=0.001, steps=3, momentum=0.9)
    buf1 = grads[0]
    buf2 = 0.9 * buf1 + grads[1]
    hist = opt.lr_history
    assert hist[1] == pytest.approx(0.01 + 0.001 * float(grads[1] @ buf1), rel=1e-12)
    assert hist[2] == pytest.approx(hist[1] + 0.001 * float(grads[2] @ buf2), rel=1e-12)


def test_hyper_adam_rule_and_direction() -> None:
    opt, grads, _ = _quadratic_run(st.optim.HyperAdam, lr=0.01, hyper_lr=0.001, steps=6)
    hist = opt.lr_history
    # after one Adam step the direction is m_hat / (sqrt(v_hat) + eps) = g / (|g| + eps)
    d1 = grads[0] / (np.abs(grads[0]) + 1e-8)
    assert hist[1] == pytest.approx(0.01 + 0.001 * float(grads[1] @ d1), rel=1e-9)
    assert all(b > a for a, b in zip(hist, hist[1:], strict=False))
    # with a zero hyper rate it is Adam
    w = st.tensor([2.0, -1.0, 3.0], dtype=st.float64, requires_grad=True)
    ref = st.optim.Adam([w], lr=0.01)
    for _ in range(6):
        ref.zero_grad()
        (0.5 * st.tensor(A) * w * w).sum().backward()
        ref.step()
    _, _, w_hd = _quadratic_run(st.optim.HyperAdam, lr=0.01, hyper_lr=0.0, steps=6)
    np.testing.assert_allclose(w_hd.numpy(), w.numpy(), rtol=1e-12)


def test_hyper_optimizer_state_dict_keeps_the_history() -> None:
    opt, _, w = _quadratic_run(st.optim.HyperSGD, lr=0.01, hyper_lr=0.001, steps=3)
    sd = opt.state_dict()
    w2 = st.tensor(w.numpy().copy(), requires_grad=True)
    opt2 = st.optim.HyperSGD([w2])
    opt2.load_state_dict(sd)
    assert opt2.lr_history == opt.lr_history and opt2.param_groups[0]["hyper_lr"] == 0.001
    assert "hyper_direction" in opt2.state[w2]
