"""Initialization: the distributions (bounds, means, spreads) of torch.nn.init and of torch's layer defaults."""

from __future__ import annotations

import math

import numpy as np
import pytest
from nn_parity import torch

import spiraltorch_nb as st

init = st.nn.init
SHAPE = (384, 96, 3)  # fan_in 288, fan_out 1152; 110k samples


def _stats(a: np.ndarray) -> tuple[float, float, float, float]:
    a = np.asarray(a, dtype=np.float64)
    return a.mean(), a.std(), a.min(), a.max()


def _compare(ours: np.ndarray, theirs: np.ndarray, bounded: bool) -> None:
    """Same mean and spread within ~5 standard errors; uniform draws reach the same bounds."""
    n = min(ours.size, theirs.size)
    m1, s1, lo1, hi1 = _stats(ours)
    m2, s2, lo2, hi2 = _stats(theirs)
    assert abs(m1 - m2) < 6 * s2 / math.sqrt(n), (m1, m2)
    assert abs(s1 - s2) < 6 * s2 / math.sqrt(n), (s1, s2)
    if bounded:  # the gap between a sample's extreme and the bound is ~ width / n
        width = hi2 - lo2
        assert abs(hi1 - hi2) < 12 * width / n and abs(lo1 - lo2) < 12 * width / n, (lo1, hi1, lo2, hi2)


CASES = [
    ("uniform_", {"a": -0.3, "b": 0.7}, True),
    ("normal_", {"mean": 0.5, "std": 2.0}, False),
    ("xavier_uniform_", {}, True),
    ("xavier_uniform_", {"gain": 2.0}, True),
    ("xavier_normal_", {"gain": 0.5}, False),
    ("kaiming_uniform_", {}, True),
    ("kaiming_uniform_", {"a": math.sqrt(5)}, True),
    ("kaiming_uniform_", {"mode": "fan_out", "nonlinearity": "relu"}, True),
    ("kaiming_normal_", {}, False),
    ("kaiming_normal_", {"mode": "fan_out", "nonlinearity": "tanh"}, False),
    ("trunc_normal_", {"std": 0.02, "a": -0.03, "b": 0.03}, True),
]


@pytest.mark.parametrize("name,kw,bounded", CASES, ids=[f"{c[0]}{i}" for i, c in enumerate(CASES)])
def test_init_distribution_matches_torch(name: str, kw: dict, bounded: bool) -> None:
    ours = getattr(init, name)(st.empty(*SHAPE), **kw)
    theirs = getattr(torch.nn.init, name)(torch.empty(SHAPE), **kw)
    _compare(ours.numpy(), theirs.numpy(), bounded)


def test_constant_inits_and_eye() -> None:
    assert np.all(init.zeros_(st.ones(3, 2)).numpy() == 0)
    assert np.all(init.ones_(st.zeros(3, 2)).numpy() == 1)
    assert np.all(init.constant_(st.zeros(4), 2.5).numpy() == 2.5)
    np.testing.assert_array_equal(init.eye_(st.zeros(2, 3)).numpy(), np.eye(2, 3))


@pytest.mark.parametrize("nl,param", [("linear", None), ("conv2d", None), ("sigmoid", None), ("tanh", None),
                                      ("relu", None), ("leaky_relu", None), ("leaky_relu", 0.2), ("selu", None)])
def test_calculate_gain_matches_torch(nl: str, param: float | None) -> None:
    assert init.calculate_gain(nl, param) == pytest.approx(torch.nn.init.calculate_gain(nl, param))


def test_init_is_reproducible_with_manual_seed_and_runs_on_parameters() -> None:
    st.manual_seed(7)
    a = st.nn.Linear(5, 4)
    st.manual_seed(7)
    b = st.nn.Linear(5, 4)
    np.testing.assert_array_equal(a.weight.numpy(), b.weight.numpy())
    st.manual_seed(8)
    c = st.nn.Linear(5, 4)
    assert not np.array_equal(a.weight.numpy(), c.weight.numpy())
    w = a.weight
    init.normal_(w)  # a leaf that requires grad is filled without touching the tape
    assert w.is_leaf and w.requires_grad and w.grad_fn is None


def test_init_errors() -> None:
    with pytest.raises(st.ShapeError, match="at least 2 dimensions"):
        init.xavier_uniform_(st.zeros(5))
    with pytest.raises(ValueError, match="'fan_in' or 'fan_out'"):
        init.kaiming_uniform_(st.zeros(3, 3), mode="fan")
    with pytest.raises(ValueError, match="unknown nonlinearity"):
        init.calculate_gain("swish")


LAYER_DEFAULTS = [
    ("Linear", (300, 200), {}),
    ("Conv2d", (16, 32, 3), {}),
    ("Embedding", (500, 64), {}),
    ("MultiheadAttention", (64, 4), {}),
    ("LayerNorm", (32,), {}),
    ("BatchNorm2d", (8,), {}),
]


@pytest.mark.parametrize("name,args,kw", LAYER_DEFAULTS, ids=[c[0] for c in LAYER_DEFAULTS])
def test_layer_default_initialization_matches_torch(name: str, args: tuple, kw: dict) -> None:
    torch.manual_seed(0)
    ours = dict(getattr(st.nn, name)(*args, **kw).state_dict())
    theirs = {k: v.detach().numpy() for k, v in getattr(torch.nn, name)(*args, **kw).state_dict().items()}
    assert list(ours) == list(theirs)
    for key, want in theirs.items():
        got = ours[key].numpy()
        assert got.shape == want.shape and got.dtype == want.dtype, key
        if np.all(want == want.flat[0]):  # norms' ones/zeros, attention's zero biases: exactly
            np.testing.assert_array_equal(got, want, err_msg=key)
        else:
            _compare(got, want, bounded=name != "Embedding")
