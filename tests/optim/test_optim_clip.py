"""Gradient clipping against torch.nn.utils."""

from __future__ import annotations

import math

import numpy as np
import pytest

import spiraltorch_nb as st
from spiraltorch_nb.optim import OptimizerError

torch = pytest.importorskip("torch")


def _pair(seed: int, scale: float) -> tuple[list, list]:
    rng = np.random.default_rng(seed)
    grads = [rng.standard_normal(s) * scale for s in [(3, 4), (5,), (2, 2)]]
    ours = [st.zeros(g.shape, dtype=st.float64, requires_grad=True) for g in grads]
    ref = [torch.zeros(g.shape, dtype=torch.float64, requires_grad=True) for g in grads]
    for o, r, g in zip(ours, ref, grads, strict=True):
        o.grad = st.tensor(g)
        r.grad = torch.tensor(g)
    return ours, ref


@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.0, "inf"])
@pytest.mark.parametrize("max_norm", [0.5, 1e6])
def test_clip_grad_norm_matches_torch(norm_type: object, max_norm: float) -> None:
    ours, ref = _pair(0, 2.0)
    total = st.optim.clip_grad_norm_(ours, max_norm, norm_type=norm_type)
    t_total = torch.nn.utils.clip_grad_norm_(ref, max_norm, norm_type=math.inf if norm_type == "inf" else norm_type)
    assert total.item() == pytest.approx(t_total.item(), rel=1e-12)
    for o, r in zip(ours, ref, strict=True):
        np.testing.assert_allclose(o.grad.numpy(), r.grad.numpy(), rtol=1e-12, atol=1e-15)
    after = st.optim.grad_norm(ours, norm_type)
    assert after.item() <= max_norm * (1 + 1e-9)


def test_clip_grad_value_matches_torch_and_skips_missing_grads() -> None:
    ours, ref = _pair(1, 3.0)
    extra = st.zeros(2, requires_grad=True)  # no gradient: skipped
    st.optim.clip_grad_value_([*ours, extra], 1.5)
    torch.nn.utils.clip_grad_value_(ref, 1.5)
    for o, r in zip(ours, ref, strict=True):
        np.testing.assert_array_equal(o.grad.numpy(), r.grad.numpy())
    assert extra.grad is None
    assert max(float(np.abs(o.grad.numpy()).max()) for o in ours) == 1.5


def test_clip_errors() -> None:
    ours, _ = _pair(2, 1.0)
    ours[0].grad = st.tensor(np.full((3, 4), np.nan))
    with pytest.raises(OptimizerError, match="nan"):
        st.optim.clip_grad_norm_(ours, 1.0, error_if_nonfinite=True)
    with pytest.raises(OptimizerError, match="norm_type"):
        st.optim.clip_grad_norm_(ours, 1.0, norm_type=0)
    with pytest.raises(OptimizerError, match="clip_value"):
        st.optim.clip_grad_value_(ours, -1.0)
    assert st.optim.clip_grad_norm_([st.zeros(2, requires_grad=True)], 1.0).item() == 0.0
