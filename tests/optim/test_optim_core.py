"""Optimizer mechanics: native vs Tensor executors, state dicts, groups, zero_grad, errors, devices."""

from __future__ import annotations

import numpy as np
import pytest

import spiraltorch_nb as st
from spiraltorch_nb.optim import OptimizerError, set_native_enabled

CONFIGS = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.05, momentum=0.9, dampening=0.1)),
    ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01, maximize=True)),
    ("Adam", dict(lr=0.01, weight_decay=0.1)),
    ("Adam", dict(lr=0.01, amsgrad=True, betas=(0.3, 0.7))),  # beta1 < 0.5: the other lerp branch
    ("AdamW", dict(lr=0.01, amsgrad=True)),
    ("RMSprop", dict(lr=0.01, centered=True, momentum=0.5, weight_decay=0.1)),
    ("RMSprop", dict(lr=0.01, alpha=0.3, centered=True)),
    ("HyperSGD", dict(lr=0.01, hyper_lr=0.01, momentum=0.5)),
    ("HyperAdam", dict(lr=0.01, hyper_lr=1e-4, weight_decay=0.01)),
]


def _train(name: str, kw: dict, dtype: str, steps: int = 12, params: list | None = None,
           opt: object | None = None, start: int = 0) -> tuple[list, object]:
    rng = np.random.default_rng(3)
    shapes = [(5, 4), (4,)]
    init = [rng.standard_normal(s).astype(dtype) for s in shapes]
    noise = [[rng.standard_normal(s).astype(dtype) for s in shapes] for _ in range(40)]
    if params is None:
        params = [st.tensor(a, requires_grad=True) for a in init]
    if opt is None:
        opt = getattr(st.optim, name)(params, **kw)
    for t in range(start, start + steps):
        for p, n in zip(params, noise[t], strict=True):
            p.grad = st.tensor((p.numpy() * 0.7 + n).astype(dtype))
        opt.step()
    return params, opt


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name,kw", CONFIGS, ids=[f"{c[0]}{i}" for i, c in enumerate(CONFIGS)])
def test_native_and_tensor_executors_agree_bitwise(name: str, kw: dict, dtype: str) -> None:
    fast, _ = _train(name, kw, dtype)
    prev = set_native_enabled(False)
    try:
        slow, _ = _train(name, kw, dtype)
    finally:
        set_native_enabled(prev)
    for a, b in zip(fast, slow, strict=True):
        assert a.dtype.name == dtype
        np.testing.assert_array_equal(a.numpy(), b.numpy())


@pytest.mark.parametrize("name,kw", CONFIGS, ids=[f"{c[0]}{i}" for i, c in enumerate(CONFIGS)])
def test_state_dict_round_trip_continues_identically(name: str, kw: dict) -> None:
    params, opt = _train(name, kw, "float64", steps=6)
    saved = opt.state_dict()
    copies = [st.tensor(p.numpy().copy(), requires_grad=True) for p in params]
    # the snapshot does not move on with training
    before = {k: {n: (v.numpy().copy() if isinstance(v, st.Tensor) else v) for n, v in s.items()}
              for k, s in saved["state"].items()}
    other = getattr(st.optim, name)(copies, lr=123.0)
    other.load_state_dict(saved)
    _train(name, kw, "float64", steps=6, params=params, opt=opt, start=6)
    _train(name, kw, "float64", steps=6, params=copies, opt=other, start=6)
    for a, b in zip(params, copies, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    for k, s in saved["state"].items():
        for n, v in s.items():
            if isinstance(v, st.Tensor):
                np.testing.assert_array_equal(v.numpy(), before[k][n])
    assert saved["param_groups"][0]["params"] == [0, 1]


def test_state_dict_structure_is_torch_like() -> None:
    a = st.zeros(2, requires_grad=True)
    b = st.zeros(3, requires_grad=True)
    opt = st.optim.SGD([{"params": [a]}, {"params": [b], "lr": 0.5}], lr=0.1, momentum=0.9)
    a.grad = st.ones(2)
    opt.step()
    sd = opt.state_dict()
    assert set(sd) == {"state", "param_groups"}
    assert list(sd["state"]) == [0]  # b had no gradient, so no state
    assert set(sd["state"][0]) == {"momentum_buffer"}
    assert [g["params"] for g in sd["param_groups"]] == [[0], [1]]
    assert [g["lr"] for g in sd["param_groups"]] == [0.1, 0.5]


def test_load_state_dict_rejects_mismatched_groups() -> None:
    a, b = st.zeros(2, requires_grad=True), st.zeros(3, requires_grad=True)
    opt = st.optim.Adam([a, b])
    other = st.optim.Adam([a])
    with pytest.raises(OptimizerError, match="group sizes differ"):
        other.load_state_dict(opt.state_dict())
    with pytest.raises(OptimizerError, match="'state' and 'param_groups'"):
        other.load_state_dict({"state": {}})


def test_zero_grad_set_to_none_and_zeros() -> None:
    w = st.ones(3, requires_grad=True)
    opt = st.optim.SGD([w], lr=0.1)
    (w * 2).sum().backward()
    g = w.grad
    opt.zero_grad(set_to_none=False)
    assert w.grad is g and w.grad.tolist() == [0.0, 0.0, 0.0]
    opt.zero_grad()
    assert w.grad is None
    opt.step()  # no gradient: nothing changes
    assert w.tolist() == [1.0, 1.0, 1.0]


def test_add_param_group_and_errors() -> None:
    a, b = st.zeros(2, requires_grad=True), st.zeros(2, requires_grad=True)
    opt = st.optim.SGD([a], lr=0.1)
    opt.add_param_group({"params": b, "lr": 0.3, "momentum": 0.5})
    assert opt.param_groups[1]["lr"] == 0.3 and opt.param_groups[1]["dampening"] == 0.0
    with pytest.raises(OptimizerError, match="another group"):
        opt.add_param_group({"params": [a]})
    with pytest.raises(OptimizerError, match="not a set"):
        st.optim.SGD({a}, lr=0.1)
    with pytest.raises(OptimizerError, match="empty parameter list"):
        st.optim.Adam([])
    with pytest.raises(OptimizerError, match="not a leaf"):
        st.optim.SGD([a * 2], lr=0.1)
    with pytest.raises(OptimizerError, match="nesterov"):
        st.optim.SGD([a], lr=0.1, nesterov=True)
    with pytest.raises(OptimizerError, match="betas"):
        st.optim.Adam([a], betas=(0.9, 1.0))
    with pytest.raises(OptimizerError, match="lr must be"):
        st.optim.RMSprop([a], lr=-1.0)
    with pytest.raises(OptimizerError, match="single Tensor"):
        st.optim.SGD(a, lr=0.1)


def test_named_parameters_are_accepted() -> None:
    w = st.zeros(2, requires_grad=True)
    opt = st.optim.AdamW([("layer.weight", w)])
    assert opt.param_groups[0]["param_names"] == ["layer.weight"]
    assert "AdamW (" in repr(opt) and "weight_decay: 0.01" in repr(opt)


def test_closure_is_evaluated_with_grad() -> None:
    w = st.tensor([2.0], requires_grad=True)
    opt = st.optim.SGD([w], lr=0.25)

    def closure():
        opt.zero_grad()
        loss = (w * w).sum()
        loss.backward()
        return loss

    with st.no_grad():
        loss = opt.step(closure)
    assert loss.item() == 4.0 and w.item() == 1.0


@pytest.mark.parametrize("name", ["SGD", "Adam", "RMSprop", "HyperSGD", "HyperAdam"])
def test_zero_dimensional_parameters(name: str) -> None:
    w = st.tensor(3.0, dtype=st.float64, requires_grad=True)
    kw = {"momentum": 0.5} if name in ("SGD", "RMSprop", "HyperSGD") else {}
    opt = getattr(st.optim, name)([w], lr=0.1, **kw)
    for _ in range(3):
        opt.zero_grad()
        (w * w).backward()
        opt.step()
    assert w.shape == () and 0 < w.item() < 3.0


def test_update_bumps_version_so_stale_graphs_are_caught() -> None:
    w = st.tensor([1.0, 2.0], requires_grad=True)
    opt = st.optim.SGD([w], lr=0.1)
    y = (w * w).sum()  # saves w for its backward
    w.grad = st.ones(2)
    opt.step()
    with pytest.raises(st.AutogradError, match="modified by an in-place operation"):
        y.backward()


def test_optimizer_runs_on_every_backend(device: str) -> None:
    """The Tensor executor serves non-cpu devices: the same values as on cpu."""
    dtype = "float32"
    ref, _ = _train("Adam", dict(lr=0.01, amsgrad=True), dtype, steps=3)
    rng = np.random.default_rng(3)
    shapes = [(5, 4), (4,)]
    init = [rng.standard_normal(s).astype(dtype) for s in shapes]
    noise = [[rng.standard_normal(s).astype(dtype) for s in shapes] for _ in range(3)]
    params = [st.tensor(a, device=device, requires_grad=True) for a in init]
    opt = st.optim.Adam(params, lr=0.01, amsgrad=True)
    for t in range(3):
        for p, n in zip(params, noise[t], strict=True):
            p.grad = st.tensor((p.numpy() * 0.7 + n).astype(dtype), device=device)
        opt.step()
    for a, b in zip(params, ref, strict=True):
        assert a.device.type == device
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6)
