"""Optimizers against torch.optim: the same parameters and gradients give the same values.

Each run takes 20 steps. The gradients depend on the current parameters (a
quadratic pull plus fixed noise), so a wrong update shows up in later gradients too.
Float64 runs must agree to ~1e-12 relative (PyTorch's kernels may fuse a multiply-add,
so bitwise equality is not expected); one float32 run per optimizer checks dtype
handling with a float32 tolerance.
"""

from __future__ import annotations

import numpy as np
import pytest

import spiraltorch_nb as st

torch = pytest.importorskip("torch")

SHAPES = [(4, 3), (3,), (2, 2, 2)]
STEPS = 20

CASES = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.05, momentum=0.9)),
    ("SGD", dict(lr=0.05, momentum=0.9, dampening=0.3)),
    ("SGD", dict(lr=0.05, momentum=0.8, nesterov=True)),
    ("SGD", dict(lr=0.1, weight_decay=0.05)),
    ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01, maximize=True)),
    ("Adam", dict(lr=0.01)),
    ("Adam", dict(lr=0.02, betas=(0.8, 0.95), weight_decay=0.1)),
    ("Adam", dict(lr=0.01, amsgrad=True)),
    ("Adam", dict(lr=0.01, amsgrad=True, weight_decay=0.05, eps=1e-6, maximize=True)),
    ("AdamW", dict(lr=0.01)),
    ("AdamW", dict(lr=0.02, weight_decay=0.2, amsgrad=True)),
    ("RMSprop", dict(lr=0.01)),
    ("RMSprop", dict(lr=0.01, momentum=0.9)),
    ("RMSprop", dict(lr=0.01, centered=True)),
    ("RMSprop", dict(lr=0.005, alpha=0.9, centered=True, momentum=0.5, weight_decay=0.1, eps=1e-5)),
]


def _ids(case: tuple) -> str:
    name, kw = case
    return name + "-" + "-".join(f"{k}={v}" for k, v in kw.items())


def _start(dtype: str = "float64", seed: int = 0) -> tuple[list[np.ndarray], list[list[np.ndarray]], list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    init = [rng.standard_normal(s).astype(dtype) for s in SHAPES]
    noise = [[rng.standard_normal(s).astype(dtype) * 0.3 for s in SHAPES] for _ in range(STEPS)]
    pull = [rng.uniform(0.5, 2.0, s).astype(dtype) for s in SHAPES]
    return init, noise, pull


def _grad(values: np.ndarray, pull: np.ndarray, noise: np.ndarray) -> np.ndarray:
    return (pull * values + noise).astype(values.dtype)


def run_torch(name: str, groups_kw: list[dict], init: list, noise: list, pull: list, steps: int = STEPS) -> list[list[np.ndarray]]:
    params = [torch.tensor(a.copy(), requires_grad=True) for a in init]
    groups = _split_groups(params, groups_kw)
    opt = getattr(torch.optim, name)(groups, foreach=False)
    trace = []
    for t in range(steps):
        for p, n, c in zip(params, noise[t], pull, strict=True):
            p.grad = torch.tensor(_grad(p.detach().numpy(), c, n))
        opt.step()
        trace.append([p.detach().numpy().copy() for p in params])
    return trace


def run_st(name: str, groups_kw: list[dict], init: list, noise: list, pull: list, steps: int = STEPS) -> list[list[np.ndarray]]:
    params = [st.tensor(a.copy(), requires_grad=True) for a in init]
    groups = _split_groups(params, groups_kw)
    opt = getattr(st.optim, name)(groups)
    trace = []
    for t in range(steps):
        for p, n, c in zip(params, noise[t], pull, strict=True):
            p.grad = st.tensor(_grad(p.numpy(), c, n))
        opt.step()
        trace.append([p.numpy().copy() for p in params])
    return trace


def _split_groups(params: list, groups_kw: list[dict]) -> list[dict]:
    if len(groups_kw) == 1:
        return [dict(params=params, **groups_kw[0])]
    # first group: the first parameter; second group: the rest
    return [dict(params=params[:1], **groups_kw[0]), dict(params=params[1:], **groups_kw[1])]


def _compare(ours: list, ref: list, rtol: float, atol: float) -> None:
    for t, (a_step, b_step) in enumerate(zip(ours, ref, strict=True)):
        for i, (a, b) in enumerate(zip(a_step, b_step, strict=True)):
            np.testing.assert_allclose(a, b, rtol=rtol, atol=atol, err_msg=f"step {t + 1}, parameter {i}")


@pytest.mark.parametrize("case", CASES, ids=[_ids(c) for c in CASES])
def test_matches_torch_float64(case: tuple) -> None:
    name, kw = case
    init, noise, pull = _start()
    ours = run_st(name, [kw], init, noise, pull)
    ref = run_torch(name, [kw], init, noise, pull)
    _compare(ours, ref, rtol=1e-12, atol=1e-13)
    # the run actually moved the parameters
    assert not np.allclose(ours[-1][0], init[0])


@pytest.mark.parametrize("name,kw", [("SGD", dict(lr=0.05, momentum=0.9, nesterov=True)),
                                     ("Adam", dict(lr=0.01, weight_decay=0.01)),
                                     ("AdamW", dict(lr=0.01, amsgrad=True)),
                                     ("RMSprop", dict(lr=0.01, centered=True, momentum=0.5))])
def test_matches_torch_float32(name: str, kw: dict) -> None:
    init, noise, pull = _start("float32")
    ours = run_st(name, [kw], init, noise, pull)
    ref = run_torch(name, [kw], init, noise, pull)
    assert ours[-1][0].dtype == np.float32
    _compare(ours, ref, rtol=2e-5, atol=2e-6)


@pytest.mark.parametrize("name,groups", [
    ("SGD", [dict(lr=0.1), dict(lr=0.02, momentum=0.9, nesterov=True)]),
    ("Adam", [dict(lr=0.01, amsgrad=True), dict(lr=0.03, betas=(0.5, 0.9), weight_decay=0.1)]),
    ("AdamW", [dict(lr=0.01, weight_decay=0.0), dict(lr=0.02)]),
    ("RMSprop", [dict(lr=0.01, centered=True), dict(lr=0.02, momentum=0.3)]),
])
def test_param_groups_match_torch(name: str, groups: list[dict]) -> None:
    init, noise, pull = _start(seed=1)
    ours = run_st(name, groups, init, noise, pull)
    ref = run_torch(name, groups, init, noise, pull)
    _compare(ours, ref, rtol=1e-12, atol=1e-13)


def test_torch_state_dict_loads_and_continues_identically() -> None:
    """A torch Adam checkpoint (state names match) resumes here exactly as in torch."""
    init, noise, pull = _start(seed=2)
    tparams = [torch.tensor(a.copy(), requires_grad=True) for a in init]
    topt = torch.optim.Adam(tparams, lr=0.01, amsgrad=True, foreach=False)
    for t in range(10):
        for p, n, c in zip(tparams, noise[t], pull, strict=True):
            p.grad = torch.tensor(_grad(p.detach().numpy(), c, n))
        topt.step()
    sparams = [st.tensor(p.detach().numpy().copy(), requires_grad=True) for p in tparams]
    sopt = st.optim.Adam(sparams, lr=0.5)  # options come from the state dict
    sopt.load_state_dict(topt.state_dict())
    assert sopt.param_groups[0]["lr"] == 0.01 and sopt.param_groups[0]["amsgrad"] is True
    assert sopt.state[sparams[0]]["step"] == 10
    for t in range(10, STEPS):
        for tp, sp, n, c in zip(tparams, sparams, noise[t], pull, strict=True):
            tp.grad = torch.tensor(_grad(tp.detach().numpy(), c, n))
            sp.grad = st.tensor(_grad(sp.numpy(), c, n))
        topt.step()
        sopt.step()
    for tp, sp in zip(tparams, sparams, strict=True):
        np.testing.assert_allclose(sp.numpy(), tp.detach().numpy(), rtol=1e-12, atol=1e-13)
